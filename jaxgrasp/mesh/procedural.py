"""Deterministic, procedurally generated graspable objects (no data files needed).

Shapes a hand can hold, 4 to 12 cm across, in metres, centred near the origin: spheres, boxes,
cylinders, capsules, ellipsoids, superellipsoids, lathed bottles and random convex blobs. A
seed fixes every object, so object sets, tests and benchmarks are reproducible.
"""

from __future__ import annotations

import numpy as np
import trimesh

KINDS = ("sphere", "box", "cylinder", "capsule", "ellipsoid", "superellipsoid", "bottle", "blob")


def _superellipsoid(rng: np.random.Generator) -> trimesh.Trimesh:
    m = trimesh.creation.icosphere(subdivisions=3)
    e = rng.uniform(0.3, 0.8)  # < 1: boxy, rounded edges
    v = m.vertices
    # Signed power keeps the octant; |v|^e pushes points towards the faces of the cube.
    v = np.sign(v) * np.abs(v) ** e
    m = trimesh.Trimesh(v, m.faces, process=False)
    m.apply_scale(rng.uniform(0.025, 0.05, size=3))
    return m


def _bottle(rng: np.random.Generator) -> trimesh.Trimesh:
    h = rng.uniform(0.10, 0.18)
    r_body = rng.uniform(0.025, 0.04)
    r_neck = rng.uniform(0.01, 0.6 * r_body)
    z = np.linspace(0.0, h, 24)
    shoulder = 0.6 * h + rng.uniform(-0.05, 0.05) * h
    r = np.where(z < shoulder, r_body, r_neck + (r_body - r_neck) * np.exp(-((z - shoulder) / (0.08 * h)) ** 2))
    profile = np.column_stack([np.concatenate([[0.0], r, [0.0]]), np.concatenate([[0.0], z, [h]])])
    m = trimesh.creation.revolve(profile, sections=32)
    m.apply_translation([0.0, 0.0, -h / 2])
    return m


def _blob(rng: np.random.Generator) -> trimesh.Trimesh:
    pts = rng.normal(size=(40, 3)) * rng.uniform(0.02, 0.045, size=3)
    return trimesh.convex.convex_hull(pts)


def procedural_object(seed: int, kind: str | None = None) -> trimesh.Trimesh:
    """One object, fully determined by ``seed`` (and ``kind``).

    Args:
        seed: integer seed.
        kind: one of :data:`KINDS`; default ``KINDS[seed % len(KINDS)]``.

    Returns:
        A watertight, consistently oriented triangle mesh in metres, randomly rotated.
    """
    rng = np.random.default_rng(seed)
    kind = kind or KINDS[seed % len(KINDS)]
    if kind == "sphere":
        m = trimesh.creation.icosphere(subdivisions=3, radius=rng.uniform(0.03, 0.045))
    elif kind == "box":
        m = trimesh.creation.box(extents=rng.uniform(0.04, 0.10, size=3))
    elif kind == "cylinder":
        m = trimesh.creation.cylinder(radius=rng.uniform(0.02, 0.04), height=rng.uniform(0.06, 0.15), sections=32)
    elif kind == "capsule":
        m = trimesh.creation.capsule(height=rng.uniform(0.04, 0.10), radius=rng.uniform(0.02, 0.035), count=[16, 16])
    elif kind == "ellipsoid":
        m = trimesh.creation.icosphere(subdivisions=3)
        m.apply_scale(rng.uniform(0.025, 0.055, size=3))
    elif kind == "superellipsoid":
        m = _superellipsoid(rng)
    elif kind == "bottle":
        m = _bottle(rng)
    elif kind == "blob":
        m = _blob(rng)
    else:
        raise ValueError(f"unknown procedural kind {kind!r}; choose from {KINDS}")
    R = trimesh.transformations.random_rotation_matrix(rng.uniform(size=3))
    m.apply_transform(R)
    m.fix_normals()
    return m


def procedural_set(n: int, seed: int = 0) -> list[tuple[str, trimesh.Trimesh]]:
    """``n`` objects cycling through :data:`KINDS`, named ``"<kind>_<seed>"``."""
    out = []
    for i in range(n):
        s = seed * 1000 + i
        kind = KINDS[i % len(KINDS)]
        out.append((f"{kind}_{s:04d}", procedural_object(s, kind)))
    return out
