"""The planning command line's objects: which files, under which output names, and which are done.

Output names never collide: a file given by path is named by its stem, a file found in a folder by
its path relative to that folder (``scans/a/mug.stl`` -> ``a/mug``, written to ``OUT/a/mug.json``),
and names that two inputs of one run would share (``x/mug.stl y/mug.stl``, ``mug.stl mug.obj``,
or names equal up to case) get the first 8 hex digits of a hash of the file's absolute path
(``mug-1a2b3c4d``). Every plan file records its input (absolute path, SHA-256 of the content,
units); a rerun skips an object only when ``OUT/<name>.json`` records the same input, plans
again when the same file changed, and writes beside (``<name>-<hash>``) when the name holds
another file's results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

from jaxgrasp.mesh.objects import MESH_FORMATS


@dataclasses.dataclass(frozen=True)
class Job:
    """One object to plan.

    Attributes:
        name: output name, relative to the output folder without ``.json`` ("a/mug").
        source: the input as the user gave it (a path, or "procedural:bottle:6").
        mesh: what the planner loads: the file path, or a ``trimesh.Trimesh``.
        path: absolute path of the file (None for a generated object).
    """

    name: str
    source: str
    mesh: object
    path: Path | None = None

    def identity(self, units: str) -> dict:
        """What a finished plan file records of its input, and what a rerun compares."""
        if self.path is not None:
            return {"path": str(self.path), "sha256": file_sha256(self.path), "units": units}
        v, f = np.asarray(self.mesh.vertices, np.float64), np.asarray(self.mesh.faces, np.int64)
        h = hashlib.sha256(v.tobytes() + f.tobytes()).hexdigest()
        return {"path": self.source, "sha256": h, "units": units}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def path_tag(path: str | Path) -> str:
    """8 hex digits of a hash of an absolute path: the suffix that separates equal names."""
    return hashlib.sha256(str(path).encode()).hexdigest()[:8]


def collect_jobs(paths: list[str]) -> list[Job]:
    """Jobs for mesh files and folders (searched recursively for :data:`jaxgrasp.mesh.objects.MESH_FORMATS`).

    A file given by path is planned whatever its suffix (the loader says when it cannot read
    it); the same file reached twice is planned once.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    found: list[tuple[str, Path, str]] = []  # (name, absolute path, source)
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.suffix.lower() in MESH_FORMATS and f.is_file():
                    found.append((f.relative_to(p).with_suffix("").as_posix(), f.resolve(), str(f)))
        elif p.is_file():
            found.append((p.stem, p.resolve(), str(p)))
        else:
            raise FileNotFoundError(f"{arg} does not exist: pass mesh files or folders of them")
    seen: set[Path] = set()
    unique = []
    for name, path, source in found:
        if path not in seen:
            seen.add(path)
            unique.append((name, path, source))
    # Names shared by two inputs (compared without case: case-insensitive file systems) get
    # a tag of the path, so that no input overwrites another's results.
    counts = Counter(name.casefold() for name, _, _ in unique)
    return [Job(name=name if counts[name.casefold()] == 1 else f"{name}-{path_tag(path)}",
                source=source, mesh=str(path), path=path)
            for name, path, source in unique]


def read_identity(plan_file: Path) -> dict | None:
    """The ``input`` a plan file records; for a file written before inputs were recorded, only
    its ``path`` (the object's file, resolved); None when the file cannot be read."""
    try:
        data = json.loads(plan_file.read_text())
        ident = data.get("input")
        if isinstance(ident, dict):
            return ident
        return {"path": str(Path(data["object"]["file"]).resolve())}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None


def output_for(job: Job, identity: dict, out: Path) -> tuple[str, str]:
    """Where ``job``'s results go, and why.

    Returns:
        ``(name, status)``: status ``"done"`` (``OUT/<name>.json`` records this input: skip),
        ``"new"`` (no file yet), ``"changed"`` (the file records this path with other content or
        units, or cannot be read: plan again and replace it); when the plain name holds another
        input's results, the same for the tagged name ``<name>-<path tag>``.
    """
    name = job.name
    for _ in range(2):
        target = out / f"{name}.json"
        if not target.exists():
            return name, "new"
        recorded = read_identity(target)
        if recorded == identity:
            return name, "done"
        if recorded is None or recorded.get("path") == identity["path"]:
            return name, "changed"
        name = f"{job.name}-{path_tag(identity['path'])}"  # the name holds another input
    return name, "changed"
