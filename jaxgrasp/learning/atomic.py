"""Atomic file writes of a dataset build: every file is written under a temporary name and
renamed, so it is whole or absent (an interrupted build resumes from the files present).

A writer killed before its rename (SIGKILL, a crash) leaves its temporary ``<base>.tmp<pid><ext>``
behind; the next write of the same file removes those of processes no longer running.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable

import numpy as np
import trimesh


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write ``path`` through ``write(tmp)`` and a rename, so a file is whole or absent."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    base, ext = os.path.splitext(path)
    tmp = f"{base}.tmp{os.getpid()}{ext}"  # keep the extension: np.savez appends ".npz" otherwise
    _remove_stale(base, ext)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _remove_stale(base: str, ext: str) -> None:
    """Removes the temporaries of ``base + ext`` left by writers that were killed (their pid is
    not running; a live pid's file is another writer's, in flight, and stays)."""
    for stale in glob.glob(f"{glob.escape(base)}.tmp*{glob.escape(ext)}"):
        pid = stale[len(base) + 4: len(stale) - len(ext)]
        if pid.isdigit() and not _running(int(pid)):
            try:
                os.remove(stale)
            except FileNotFoundError:  # removed meanwhile by another writer
                pass


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def write_text(path: str, text: str) -> None:
    """A text file."""

    def w(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, w)


def write_json(path: str, data) -> None:
    """``data`` as indented JSON."""

    def w(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)

    atomic_write(path, w)


def write_npz(path: str, **arrays) -> None:
    """Arrays as a compressed ``.npz``."""
    atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))


def write_mesh(path: str, mesh: trimesh.Trimesh) -> None:
    """A mesh as OBJ, vertices with 10 decimals, in order (read back by ``data.read_mesh``)."""
    write_text(path, trimesh.exchange.obj.export_obj(mesh, include_normals=False, include_color=False,
                                                     include_texture=False, digits=10))

