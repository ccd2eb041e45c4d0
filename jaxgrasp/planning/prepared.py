"""One object, prepared once for planning and evaluation (host phase, then arrays).

:func:`prepare_object` takes a mesh (path, trimesh, or loaded ``(Object, LoadReport)``) and
builds a :class:`PreparedObject`: the full-resolution :class:`~jaxgrasp.mesh.objects.Object`, the
optimizer's decimated mesh, the evaluation's pre-screening mesh with its distance bound to the full
surface, and the evaluation's surface samples. Every planner driver, the baseline, training and
evaluation take it, so nothing is recomputed per call and nothing is cached in a caller's trimesh.

The pre-screening mesh (see :mod:`jaxgrasp.planning.evaluation`) is the first of
:data:`SCREEN_FACES` whose surface lies within :data:`SCREEN_TOLERANCE` of the full one; meshes
with at most four times its face count are not screened (it would not pay).
"""

from __future__ import annotations

import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import trimesh
from flax import struct

from jaxgrasp.mesh import local
from jaxgrasp.mesh.geometry import signed_distance
from jaxgrasp.mesh.objects import LoadReport, Object, load_object, make_object

log = logging.getLogger(__name__)

# Faces of the decimated mesh that pre-screens hand samples, coarsest first: the first whose
# surface is within SCREEN_TOLERANCE of the full one is used (the optimizer's own mesh is coarser).
SCREEN_FACES = (1024, 2048)
SCREEN_TOLERANCE = 0.002
# Surface samples of the full mesh for the object-in-hand test of the evaluation.
EVAL_POINTS = 2000
# Default face count of the optimizer's mesh (Shapes.opt_faces).
OPT_FACES = 1024
# Faces aimed at by the vertex clustering that replaces a stalled decimation (once per object:
# every smaller level is decimated from it).
CLUSTER_FACES = 8192
# Full-mesh vertices the screening bound measures at most (a seeded subset beyond).
BOUND_VERTICES = 200_000


@struct.dataclass
class PreparedObject:
    """An object with everything planning and evaluation derive from its mesh, built once.

    Attributes:
        obj: the full-resolution object (input frame).
        screening: the evaluation's pre-screening object (decimated), or None (no screening).
        screening_bound: () [m] a bound on the distance between the screening surface and the
            full one (both one-sided distances over vertices and dense samples); 0 without.
        eval_points: (EVAL_POINTS, 3) even surface samples of the full mesh, input frame.
        mesh: static: the full mesh as a float64 trimesh (after the loader's repairs).
        loop_mesh: static: the optimizer's mesh (``mesh`` decimated to ``opt_faces``, or ``mesh``).
        opt_faces: static: the face limit ``loop_mesh`` was built with.
        report: static: the loader's report (None for an ``Object`` given directly).
        index: static: for meshes of more than :data:`~jaxgrasp.mesh.local.LARGE_FACES` faces,
            the host index through which full-mesh queries run on local sub-meshes; else None.
        decimations: static: ``((faces, trimesh), ...)`` the decimations made so far (reused).
        shift: static: None, or ``(3,)`` the vector [m] the loader added to the input's
            coordinates to plan an object far from the origin near it (the report's ``offset``,
            :data:`~jaxgrasp.mesh.objects.FAR_M`); ``obj``, ``mesh`` and the samples are in that
            shifted frame, and the planner moves results back.
    """

    obj: Object
    screening: Object | None
    screening_bound: jax.Array
    eval_points: jax.Array
    mesh: trimesh.Trimesh = struct.field(pytree_node=False)
    loop_mesh: trimesh.Trimesh = struct.field(pytree_node=False)
    opt_faces: int = struct.field(pytree_node=False)
    report: LoadReport | None = struct.field(pytree_node=False)
    index: local.LocalIndex | None = struct.field(pytree_node=False, default=None)
    decimations: tuple = struct.field(pytree_node=False, default=())
    shift: tuple[float, float, float] | None = struct.field(pytree_node=False, default=None)


def object_trimesh(obj: Object) -> trimesh.Trimesh:
    """The object's real (unpadded) mesh as a trimesh, input frame, float64."""
    vmask = np.asarray(obj.vertex_mask)
    remap = np.cumsum(vmask) - 1  # padded vertex rows come after the real ones
    faces = remap[np.asarray(obj.faces)[np.asarray(obj.face_mask)]]
    return trimesh.Trimesh(np.asarray(obj.vertices, np.float64)[vmask], faces, process=False)


def as_object(mesh, *, units: str = "m") -> tuple[Object, LoadReport | None, trimesh.Trimesh]:
    """Accept a path, a trimesh mesh, a loaded ``(Object, LoadReport)`` or an ``Object``; return
    ``(object, report or None, trimesh)``. Paths and trimesh meshes far from the origin are moved
    near it (the report's ``offset``)."""
    if isinstance(mesh, PreparedObject):
        return mesh.obj, mesh.report, mesh.mesh
    if isinstance(mesh, tuple) and len(mesh) == 2 and isinstance(mesh[0], Object):
        obj, report = mesh
    elif isinstance(mesh, Object):
        obj, report = mesh, None
    elif isinstance(mesh, trimesh.Trimesh):
        obj, report = make_object(mesh.vertices, mesh.faces, units=units, recenter=True)
    else:
        obj, report = load_object(mesh, units=units, recenter=True)
    return obj, report, object_trimesh(obj)


def cluster_vertices(tm: trimesh.Trimesh, faces: int) -> trimesh.Trimesh:
    """``tm`` simplified by vertex clustering to about ``faces`` faces: vertices merged per cell of
    a uniform grid (cell edge from the surface area: ``faces`` triangles of that size cover it),
    at their mean; collapsed and duplicated faces dropped. Crude (it may join close sheets) but
    it always reduces; the quadric decimation refines its result."""
    h = np.sqrt(4.0 * tm.area / max(faces, 1))
    v = np.asarray(tm.vertices)
    cell = np.floor((v - v.min(axis=0)) / h).astype(np.int64)
    _, inv = np.unique(cell, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    n = int(inv.max()) + 1
    count = np.bincount(inv, minlength=n)[:, None]
    nv = np.stack([np.bincount(inv, weights=v[:, k], minlength=n) for k in range(3)], axis=1) / count
    f = inv[np.asarray(tm.faces)]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    _, first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    out = trimesh.Trimesh(nv, f[np.sort(first)], process=False)
    out.remove_unreferenced_vertices()
    return out


def _decimate(tm: trimesh.Trimesh, max_faces: int, memo: dict) -> trimesh.Trimesh:
    """``tm`` decimated to at most ``max_faces`` faces (quadric decimation), once per count.

    Large meshes are decimated in halving steps down to :data:`~jaxgrasp.mesh.local.LARGE_FACES`
    (one call on millions of faces stops short of a small target after minutes:
    fast_simplification's iteration limit), each call starting from the smallest decimation
    already made; a mesh that cannot be decimated further (open borders,
    non-manifold edges) is kept at the count reached, with a warning.
    """
    if len(tm.faces) <= max_faces:
        return tm
    if max_faces not in memo:
        done = [m for f, m in memo.items() if f > max_faces and len(m.faces) < len(tm.faces)]
        cur = min(done, key=lambda m: len(m.faces)) if done else tm
        log.info("decimating %d faces to %d for %s", len(tm.faces), max_faces,
                 "the optimizer" if max_faces <= OPT_FACES else "the evaluation's pre-screening")
        while len(cur.faces) > max_faces:
            # Halving steps above LARGE_FACES (fast_simplification reaches a halving of 2 M
            # faces in 3 s, an 8x reduction not even in a minute), one step below it.
            step = max(max_faces, len(cur.faces) // 2) if len(cur.faces) > local.LARGE_FACES else max_faces
            nxt = cur.simplify_quadric_decimation(face_count=step)
            if len(nxt.faces) >= len(cur.faces) and len(cur.faces) > 4 * max_faces:
                # Stalled far above the target (fast_simplification refuses collapses around
                # poles, slivers, borders; its stalled output can be degenerate): cluster the
                # full mesh's vertices on a grid, then go on from there.
                nxt = cluster_vertices(tm, max(4 * max_faces, CLUSTER_FACES))
                memo.setdefault(CLUSTER_FACES, nxt)  # the next levels start from it
                log.info("vertex clustering: %d -> %d faces", len(cur.faces), len(nxt.faces))
            if len(nxt.faces) >= len(cur.faces):  # no progress: stalled
                log.warning("decimation stopped at %d faces (asked for %d): the mesh's borders or "
                            "non-manifold edges block it; planning on it is slower", len(cur.faces), max_faces)
                break
            memo.setdefault(step, nxt)
            cur = nxt
        memo[max_faces] = cur
    return memo[max_faces]


def _max_distance(target: Object, points: np.ndarray, index: local.LocalIndex | None = None) -> float:
    """Largest unsigned distance [m] of ``points (n, 3)`` to ``target`` (floating-point path;
    through ``target``'s local index when given: a brute-force sweep of millions of faces per
    point is what made large meshes slow)."""
    if index is not None:
        return float(local.unsigned_distance(index, points).max())
    d = signed_distance(target, jnp.asarray(points, target.vertices.dtype), exact=False)[0]
    return float(np.abs(np.asarray(d)).max())


def _screening(tm: trimesh.Trimesh, obj: Object, eval_points: np.ndarray, memo: dict,
               index: local.LocalIndex | None) -> tuple[Object | None, float]:
    """The pre-screening object and its distance bound (see the module docstring), or ``(None, 0)``.

    ``index``: the full object's local index (large meshes), through which the distances to the
    full mesh are measured. The full mesh's side uses at most :data:`BOUND_VERTICES` of its
    vertices (a seeded subset, with the even samples)."""
    dtype = np.dtype(obj.vertices.dtype.name)
    verts = np.asarray(tm.vertices)
    if len(verts) > BOUND_VERTICES:
        verts = verts[np.random.default_rng(0).choice(len(verts), BOUND_VERTICES, replace=False)]
    for i, faces in enumerate(SCREEN_FACES):
        if len(tm.faces) <= 4 * faces:
            return None, 0.0
        small = _decimate(tm, faces, memo)
        coarse = make_object(small.vertices, small.faces, check_units=False, dtype=dtype)[0]
        # Both one-sided distances over vertices and dense samples of each side; the cheaper one
        # (full-mesh points to the decimated mesh) first, and a level already farther than the
        # tolerance on that side is rejected without measuring the other (but the last is kept).
        pts = np.concatenate([verts, eval_points])
        d1 = _max_distance(coarse, pts)  # brute force on the coarse mesh's few faces
        if d1 > SCREEN_TOLERANCE and i < len(SCREEN_FACES) - 1:
            continue
        small_pts = np.concatenate([small.vertices, trimesh.sample.sample_surface_even(small, EVAL_POINTS, seed=0)[0]])
        d = max(d1, _max_distance(obj, small_pts, index))
        if d <= SCREEN_TOLERANCE or i == len(SCREEN_FACES) - 1:
            return coarse, d
    return None, 0.0  # not reached: the last level is always returned


def add_screening(prep: PreparedObject) -> PreparedObject:
    """``prep`` with its pre-screening mesh (a prepared object built with ``screen=False``; the
    optimizer mesh's decimations are reused), and for a large mesh its local index."""
    if prep.screening is not None:
        return prep
    index = prep.index
    if index is None and local.is_large(prep.obj):
        t0 = time.perf_counter()
        index = local.build_index(prep.obj)
        log.info("indexed %d faces for local queries in %.1f s", len(index.radius), time.perf_counter() - t0)
    memo = dict(prep.decimations)
    coarse, bound = _screening(prep.mesh, prep.obj, np.asarray(prep.eval_points, np.float64), memo, index)
    return prep.replace(screening=coarse, screening_bound=jnp.asarray(bound, prep.obj.vertices.dtype), index=index)


def prepare_object(mesh, *, units: str = "m", opt_faces: int = OPT_FACES, screen: bool = True) -> PreparedObject:
    """Load (when needed) and prepare one object for planning and evaluation (host side).

    Args:
        mesh: a mesh file path, a ``trimesh.Trimesh``, a loaded ``(Object, LoadReport)``, an
            ``Object``, or a :class:`PreparedObject` (kept, with its screening mesh added when
            asked for, when built with the same ``opt_faces``).
        units: unit of the coordinates ("m", "cm", "mm") for paths and trimesh meshes.
        opt_faces: face limit of the optimizer's mesh (``Shapes.opt_faces``).
        screen: build the evaluation's pre-screening mesh (False: every evaluation measures all
            samples on the full mesh; for objects that are only optimized, e.g. training scenes).

    Returns:
        The :class:`PreparedObject`.
    """
    if isinstance(mesh, PreparedObject) and mesh.opt_faces == opt_faces:
        return add_screening(mesh) if screen else mesh
    obj, report, tm = as_object(mesh, units=units)
    shift = report.offset if report is not None else None
    pts = trimesh.sample.sample_surface_even(tm, EVAL_POINTS, seed=0)[0]
    pts = np.resize(pts, (EVAL_POINTS, 3))  # fixed count (repeats a few when the sampler is short)
    dtype = obj.vertices.dtype
    memo = {}
    loop_mesh = _decimate(tm, opt_faces, memo)
    prep = PreparedObject(obj=obj, screening=None, screening_bound=jnp.zeros((), dtype),
                          eval_points=jnp.asarray(pts, dtype), mesh=tm, loop_mesh=loop_mesh,
                          opt_faces=opt_faces, report=report, decimations=tuple(sorted(memo.items())),
                          shift=shift)
    return add_screening(prep) if screen else prep
