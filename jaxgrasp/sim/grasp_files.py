"""The inputs of a simulation: grasps read from grasp and plan files, and their object meshes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import trimesh

from jaxgrasp.mesh.procedural import procedural_object
from jaxgrasp.planning.grasp_io import SCHEMAS, load_grasp

__all__ = ["collect_grasp_files", "object_mesh_of", "read_grasps"]


def read_grasps(path: str | os.PathLike) -> list[dict]:
    """The grasps of a file: a ``jaxgrasp.grasp/1`` or ``/2`` file (one) or a ``jaxgrasp.plan/1``
    file (its list). Relative ``object.file`` paths are resolved against the file's folder when they exist
    there. Raises ValueError for other files."""
    path = Path(path)
    data = json.loads(path.read_text())
    if data.get("schema") in SCHEMAS:
        grasps = [load_grasp(path)]
    elif data.get("schema") == "jaxgrasp.plan/1":
        grasps = list(data["grasps"])
    else:
        raise ValueError(f"{path}: not a jaxgrasp grasp or plan file (schema={data.get('schema')!r})")
    for g in grasps:
        f = Path(str(g["object"]["file"]))
        if not f.is_absolute() and (path.parent / f).is_file():
            g["object"]["file"] = str((path.parent / f).resolve())
        g.setdefault("_source", str(path))
    return grasps


def collect_grasp_files(paths: list[str]) -> list[Path]:
    """JSON files from files and folders (recursively, sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*.json") if f.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist")
    return out


def object_mesh_of(grasp: dict) -> trimesh.Trimesh:
    """The grasp's object mesh in metres, in the object's input frame."""
    spec = str(grasp["object"]["file"])
    if spec.startswith("procedural:"):
        _, kind, seed = spec.split(":")
        return procedural_object(int(seed), kind)
    if not Path(spec).is_file():
        raise FileNotFoundError(f"object mesh {spec!r} of the grasp not found (pass object_mesh=...)")
    m = trimesh.load(spec, force="mesh", process=True)
    m.apply_scale(float(grasp["object"].get("units_scale", 1.0)))
    return m
