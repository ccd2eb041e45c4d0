"""Atomic file writes of a dataset build: every file is written under a temporary name and
renamed, so it is whole or absent (an interrupted build resumes from the files present)."""

from __future__ import annotations

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
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
    text = trimesh.exchange.obj.export_obj(mesh, include_normals=False, include_color=False,
                                           include_texture=False, digits=10)

    def w(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, w)

