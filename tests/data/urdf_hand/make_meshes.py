"""Generate meshes/palm.stl (convex, millimetres) for the URDF test hand; deterministic.

    python tests/data/urdf_hand/make_meshes.py
"""

from pathlib import Path

import numpy as np
import trimesh

MESHES = Path(__file__).resolve().parent / "meshes"


def palm_mm():
    """Palm: 70 x 20 x 80 mm bevelled box, origin at the wrist (mesh spans z = 0..80 mm)."""
    hx, hy, b = 35.0, 10.0, 4.0
    ring = np.array([[hx - b, hy], [hx, hy - b], [hx, -hy + b], [hx - b, -hy],
                     [-hx + b, -hy], [-hx, -hy + b], [-hx, hy - b], [-hx + b, hy]])
    points = np.concatenate([np.column_stack([ring, np.zeros(8)]),
                             np.column_stack([ring, np.full(8, 80.0)])])
    return trimesh.convex.convex_hull(points)


if __name__ == "__main__":
    MESHES.mkdir(exist_ok=True)
    mesh = palm_mm()
    assert mesh.is_watertight and mesh.is_convex and len(mesh.faces) < 100
    (MESHES / "palm.stl").write_bytes(trimesh.exchange.stl.export_stl(mesh))
    print(f"palm.stl: {len(mesh.faces)} faces")
