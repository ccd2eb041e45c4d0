"""Queries on large meshes through local sub-meshes: only the faces that can be nearest.

A query point ``p`` with an upper bound ``u`` on its distance to the mesh (from a coarse mesh, or
the nearest face centroid) can only be nearest to a face whose bounding sphere (centroid ``c``,
radius ``r``: the farthest corner) meets the ball ``B(p, u)``: ``|p - c| <= u + r``. A k-d tree
over the centroids (scipy, host side) lists those faces for a set of points; the union becomes a
sub-:class:`~jaxgrasp.mesh.objects.Object` (padded to a power of two, so few shapes compile) on
which the usual device query runs. Distances, closest features and the pseudonormal sign of a
watertight mesh are then the full mesh's (the per-face tables are copied, not recomputed). The
winding number of an open mesh needs every face, so for open meshes the sign comes from a
brute-force winding number of the full mesh at the points.

For meshes of millions of triangles this replaces a brute-force sweep of every face per point
(the evaluation's and the screening bound's cost); see :data:`LARGE_FACES`.
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from jaxgrasp.mesh.culling import (
    TOL_FACTOR,
    point_triangle_distance_np,
    triangle_tables_np,
)
from jaxgrasp.mesh.geometry import ClosestFeatures, closest_features, winding_number
from jaxgrasp.mesh.objects import Object, pow2_bucket

# Meshes with more real faces than this are queried through local sub-meshes (below it a
# brute-force sweep over every face is as fast and needs no host round trip).
LARGE_FACES = 1 << 17
# Smallest padded face count of a sub-mesh (a few shapes compile, each reused).
MIN_SUB_FACES = 4096
# Pairs per block of the host distance (bounds the temporaries to ~100 MB).
_BLOCK = 1 << 19


@dataclasses.dataclass(frozen=True)
class LocalIndex:
    """Host-side index of an object's faces (not a pytree: NumPy and a scipy tree).

    Attributes:
        tree: k-d tree of the real faces' centroids.
        radius: (F,) distance from each real face's centroid to its farthest corner [m].
        max_radius: the largest of ``radius``.
        face_ids: (F,) row of each real face in the object's padded arrays.
        tables: float64 per-face tables of :func:`~jaxgrasp.mesh.culling.triangle_tables_np`.
    """

    tree: cKDTree
    radius: np.ndarray
    max_radius: float
    face_ids: np.ndarray
    tables: dict


def build_index(obj: Object) -> LocalIndex:
    """The :class:`LocalIndex` of an object's real faces (host side; ~2 s for 2 M faces)."""
    ids = np.nonzero(np.asarray(obj.face_mask))[0]
    tri = np.asarray(obj.corners, np.float64)[ids]
    centroid = tri.mean(axis=1)
    radius = np.linalg.norm(tri - centroid[:, None], axis=-1).max(axis=1)
    return LocalIndex(tree=cKDTree(centroid), radius=radius, max_radius=float(radius.max()),
                      face_ids=ids, tables=triangle_tables_np(tri))


def _pairs(index: LocalIndex, points: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(point row, face position) of every face whose bounding sphere meets ``B(p, upper)``."""
    lists = index.tree.query_ball_point(points, upper + index.max_radius)
    rows = np.repeat(np.arange(len(points)), [len(s) for s in lists])
    faces = np.fromiter(itertools.chain.from_iterable(lists), np.int64, len(rows))
    c = index.tree.data[faces]
    keep = np.linalg.norm(points[rows] - c, axis=1) <= upper[rows] + index.radius[faces]
    return rows[keep], faces[keep]


def nearest_upper_bound(index: LocalIndex, points: np.ndarray, k: int = 4) -> np.ndarray:
    """(N,) upper bounds on the points' distances to the mesh: over the ``k`` nearest centroids,
    the least ``dist(p, T)`` (computed exactly, float64)."""
    k = min(k, len(index.radius))
    _, near = index.tree.query(points, k=k)
    near = np.asarray(near).reshape(len(points), k)
    d = point_triangle_distance_np(np.repeat(points, k, axis=0), index.tables, near.reshape(-1))
    return d.reshape(-1, k).min(axis=1)


def unsigned_distance(index: LocalIndex, points, upper=None) -> np.ndarray:
    """(N,) float64 unsigned distances of ``points (N, 3)`` to the mesh (host, exact candidates).

    Args:
        upper: (N,) optional upper bounds on the distances (default: :func:`nearest_upper_bound`).
    """
    p = np.asarray(points, np.float64)
    upper = nearest_upper_bound(index, p) if upper is None else np.asarray(upper, np.float64)
    out = np.array(upper, np.float64)  # the bound is attained by some face, or beaten below
    for a in range(0, len(p), max(1, _BLOCK // 64)):
        rows, faces = _pairs(index, p[a:a + _BLOCK // 64], upper[a:a + _BLOCK // 64])
        for b in range(0, len(rows), _BLOCK):
            r, f = rows[b:b + _BLOCK], faces[b:b + _BLOCK]
            d = point_triangle_distance_np(p[a + r], index.tables, f)
            np.minimum.at(out, a + r, d)
    return out


def _slack(obj: Object) -> float:
    """Widening of the distance bounds [m]: covers the query's float32 error bound (the window of
    its tie tests, TOL_FACTOR * eps * coordinate scale) so that the sub-mesh also holds every face
    a tie test of the full mesh would compare."""
    scale = 2 * float(obj.coord_bound)
    return 2 * TOL_FACTOR * float(np.finfo(np.float32).eps) * scale + 1e-6 * float(obj.size)


def sub_object(obj: Object, index: LocalIndex, points, upper) -> tuple[Object, np.ndarray]:
    """The faces of ``obj`` that can be nearest to some of ``points (N, 3)`` given the distance
    upper bounds ``upper (N,)``.

    Returns:
        ``(sub, rows)``: the sub-mesh as an Object padded to a power of two (>= MIN_SUB_FACES
        faces; vertices, centre of mass, size and coordinate bound stay the full object's), and
        ``rows (Fsub,)`` int32, the full object's row of each of its faces (padding repeats one).
    """
    _, faces = _pairs(index, np.asarray(points, np.float64), np.asarray(upper, np.float64) + _slack(obj))
    real = index.face_ids[np.unique(faces)]
    n = min(pow2_bucket(len(real), MIN_SUB_FACES), obj.face_mask.shape[0])
    rows = np.concatenate([real, np.full(n - len(real), real[0] if len(real) else 0)]).astype(np.int32)
    take = lambda x: jnp.asarray(np.asarray(x)[rows])  # noqa: E731
    sub = obj.replace(faces=take(obj.faces), face_mask=jnp.asarray(np.arange(n) < len(real)),
                      corners=take(obj.corners), normals=take(obj.normals),
                      columns={k: take(v) for k, v in obj.columns.items()})
    return sub, rows


def local_closest_features(obj: Object, index: LocalIndex, points, upper) -> ClosestFeatures:
    """Floating-point closest features (``exact=False``) of ``points (N, 3)`` on the full mesh,
    computed on the sub-mesh of :func:`sub_object`; face indices are the full object's rows.

    Complete them with :func:`jaxgrasp.mesh.geometry.resolve_on_host` on ``obj`` as for a
    full-mesh query (it recomputes the ambiguous points against every face).

    Args:
        obj: the full object; index: its :func:`build_index`.
        points: (N, 3) query points (object frame; their dtype sets the precision).
        upper: (N,) upper bounds [m] on the points' distances to the mesh.
    """
    pts = jnp.asarray(points)
    # A watertight sub-mesh: its sign test (pseudonormals of the nearest feature) is the full
    # mesh's; an open mesh's sign is replaced below.
    sub, rows = sub_object(obj.replace(watertight=True), index, points, upper)
    res = closest_features(sub, pts, exact=False)
    res = res._replace(face=jnp.asarray(rows)[res.face])
    if obj.watertight:
        return res
    # Open mesh: the sign is the full mesh's winding number's, and (as in the full query) a point
    # is ambiguous within rounding of the surface or of winding number 1/2.
    w = winding_number(obj, pts)
    dt = res.distance.dtype
    sign = jnp.where(w > 0.5, -1.0, 1.0).astype(dt)
    old = jnp.where(res.distance < 0, -1.0, 1.0).astype(dt)
    eps = jnp.finfo(dt).eps
    tol = TOL_FACTOR * eps * (jnp.max(jnp.abs(pts), axis=-1) + obj.coord_bound.astype(dt))
    w_tol = jnp.minimum(0.25, TOL_FACTOR * eps * obj.face_mask.shape[0])
    amb = (jnp.abs(res.distance) <= tol) | (jnp.abs(w - 0.5) <= w_tol)
    return res._replace(distance=sign * jnp.abs(res.distance), normal=(sign * old)[:, None] * res.normal,
                        ambiguous=amb)


def is_large(obj: Object) -> bool:
    """Whether ``obj`` has more than :data:`LARGE_FACES` real faces."""
    return int(jax.device_get(obj.num_faces)) > LARGE_FACES
