"""Generate the convex STL meshes of the third-party-style test hand (``hand.xml``).

The meshes are authored in MILLIMETRES, the way CAD exports in public robot collections
are, and ``hand.xml`` scales them by 0.001. Each mesh is a small convex hull (< 100
faces): bevelled boxes (octagonal prisms) for the links and the palm, low-resolution
capsules for the fingertips. Mesh origins are deliberately NOT at the mesh centres (links
start at their joint, z = 0, and extend along +z; the palm hangs below its origin), so a
loader must apply the geom/mesh frames exactly as MuJoCo does.

Deterministic: running it again reproduces the committed files byte for byte::

    python tests/data/thirdparty_hand/make_assets.py
"""

from pathlib import Path

import numpy as np
import trimesh

ASSETS = Path(__file__).resolve().parent / "assets"


def bevelled_box(extents, center, bevel):
    """Convex octagonal prism: a box (extents in mm) whose 4 long edges are cut by `bevel`.

    Args:
        extents: (3,) full sizes along x, y, z in mm; the prism's axis is z.
        center: (3,) centre of the box in the mesh frame, mm.
        bevel: size of the 45-degree cut of the edges parallel to z, mm.

    Returns:
        trimesh.Trimesh, convex, watertight, 28 faces.
    """
    hx, hy, hz = 0.5 * np.asarray(extents, float)
    b = float(bevel)
    ring = np.array([
        [hx - b, hy], [hx, hy - b], [hx, -hy + b], [hx - b, -hy],
        [-hx + b, -hy], [-hx, -hy + b], [-hx, hy - b], [-hx + b, hy],
    ])
    points = np.concatenate([
        np.column_stack([ring, np.full(8, -hz)]),
        np.column_stack([ring, np.full(8, hz)]),
    ]) + np.asarray(center, float)
    return trimesh.convex.convex_hull(points)


def capsule(radius, length, base_z):
    """Low-resolution convex capsule along z (mm), lower sphere centre at `base_z`."""
    mesh = trimesh.creation.capsule(height=length, radius=radius, count=[8, 4])
    mesh.apply_translation([0.0, 0.0, base_z])
    return trimesh.convex.convex_hull(mesh.vertices)


def meshes():
    """Mesh name -> trimesh (mm), dimensions in the spirit of the Allegro hand."""
    return {
        # palm hangs below its origin (fingers are mounted at z ~ 0)
        "base_link": bevelled_box([40.8, 113.0, 95.0], [-9.3, 0.0, -47.5], 6.0),
        "link_0": bevelled_box([19.6, 27.5, 16.4], [0.0, 0.0, 8.2], 3.0),
        "link_1": bevelled_box([19.6, 27.5, 54.0], [0.0, 0.0, 27.0], 4.0),
        "link_2": bevelled_box([19.6, 27.5, 38.4], [0.0, 0.0, 19.2], 4.0),
        "link_3": bevelled_box([19.6, 27.5, 16.0], [0.0, 0.0, 8.0], 4.0),
        "link_3_tip": capsule(12.0, 10.0, 9.0),
        "link_12": bevelled_box([35.8, 34.0, 45.5], [-17.9, 9.0, 14.5], 5.0),
        "link_13": bevelled_box([19.6, 27.5, 17.7], [0.0, 0.0, 8.85], 3.0),
        "link_14": bevelled_box([19.6, 27.5, 51.4], [0.0, 0.0, 25.7], 4.0),
        "link_15": bevelled_box([19.6, 27.5, 31.4], [0.0, 0.0, 15.7], 4.0),
        "link_15_tip": capsule(12.0, 8.0, 27.0),
    }


def main():
    ASSETS.mkdir(exist_ok=True)
    for name, mesh in meshes().items():
        assert mesh.is_watertight and mesh.is_convex and len(mesh.faces) < 100, name
        path = ASSETS / f"{name}.stl"
        path.write_bytes(trimesh.exchange.stl.export_stl(mesh))
        print(f"{path.name}: {len(mesh.faces)} faces, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
