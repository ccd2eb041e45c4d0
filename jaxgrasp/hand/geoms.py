"""The hand's real collision geoms (those MuJoCo collides) and their penetration with an object mesh.

:func:`load_geoms` (host) reads them into a :class:`HandGeoms` pytree; the kernels are pure JAX for one
item (vmap them), with ``T_world_body`` in the frame of ``obj.vertices``. Per geom, both ways:

* object into geom (:func:`object_in_geoms`): over the object's vertices, given samples and edges
  (the concave depth maximised along each by golden section). Depth in a sphere, capsule, box,
  cylinder: exact; ellipsoid: to float precision (bisection on the closest point's multiplier);
  mesh geom: exact, by the planes of its convex hull (which MuJoCo collides).
* geom into object (:func:`geoms_in_object`), by the object's exact signed distance: sphere
  ``r - sd(centre)``, capsule ``r - min sd(axis)`` (33 axis samples, then golden section: exact where
  sd is convex along the axis, as for convex objects); box corners, hull vertices, cylinder rims as
  n-gons within 1e-5 m, and edge and face points ~4 mm apart; ellipsoids: 2,562 points (error <=
  a_max (1 - cos 2.8 deg) = 0.0012 a_max, a_max the largest radius).
* contact depth (:func:`geom_penetration`; box, hull, and cylinder and ellipsoid as polytopes on their
  points): near object edges point depths fall short of MuJoCo's penetration depth (boxes crossing
  edge on edge by ``d``: no point deeper than ``d / sqrt 2``), the smallest overlap of two convex
  bodies over their Minkowski difference's face normals (SAT: object face / geom vertex, geom face /
  object vertex, edge x edge with crossing normal arcs). The contact depth is the smallest such
  overlap over the pairs in contact (features inside the other body; per geom: the 16 deepest object
  vertices, of valence <= 16; 32 object edges x every geom edge) and over all faces; 0 without a pair
  in contact. Convex object, shallow contact: MuJoCo's depth (within 0.1 mm: tests/test_geoms.py).

``per_geom = max(point depths, contact depth)``. For a convex object the point depths are at most the
penetration depth and the contact depth at least it (when a pair is in contact); for a non-convex
one the point depths are exact at the points tested (between them short by ~spacing^2 x curvature)
and the contact depth, a local overlap, falls below them where the object is not locally convex.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import trimesh
from flax import struct
from scipy.spatial import ConvexHull, QhullError

from jaxgrasp.core.lie import quat_to_matrix_np
from jaxgrasp.hand.mjcf import HandLoadError, compile_model
from jaxgrasp.hand.model import HandModel
from jaxgrasp.mesh import geometry
from jaxgrasp.mesh.objects import Object

_G = mujoco.mjtGeom
SPHERE, CAPSULE, ELLIPSOID = int(_G.mjGEOM_SPHERE), int(_G.mjGEOM_CAPSULE), int(_G.mjGEOM_ELLIPSOID)
CYLINDER, BOX, MESH = int(_G.mjGEOM_CYLINDER), int(_G.mjGEOM_BOX), int(_G.mjGEOM_MESH)
_POLY = (BOX, CYLINDER, ELLIPSOID, MESH)
_FAR = -1.0  # "nothing here" in a max (padding, masked rows): finite, so no inf * 0 in gradients
_NONE = 1e3  # "no pair" in a min
_TOL = 1e-7  # slack of the feature tests (metres, cosines)


@struct.dataclass
class HandGeoms:
    """A hand's collision geoms: ``G`` geoms; ``P`` surface points and ``E`` edges of all of them. Static,
    per geom: ``names``, ``types`` (MuJoCo ``mjtGeom`` codes), ``point_start`` (its first row of
    ``points``), ``num_vertices`` (its first points that are polytope vertices: box corners, prism
    rims, hull vertices), ``num_planes``, ``num_edges``. Arrays: ``body`` (G,) HandModel body index;
    ``pos`` (G, 3), ``rot`` (G, 3, 3): geom frame in the body frame; ``size`` (G, 3): geom_size;
    ``planes`` (G, H, 4), ``plane_mask`` (G, H): polytope faces (mesh geoms: the convex hull's), geom
    frame, inside where ``n . x + d <= 0``; ``points`` (P, 3), ``point_geom`` (P,): geom-frame surface
    points; ``edge_points`` (E, 2) rows of ``points``, ``edge_normals`` (E, 2, 3), ``edge_geom`` (E,)."""

    names: tuple[str, ...] = struct.field(pytree_node=False)
    types: tuple[int, ...] = struct.field(pytree_node=False)
    point_start: tuple[int, ...] = struct.field(pytree_node=False)
    num_vertices: tuple[int, ...] = struct.field(pytree_node=False)
    num_planes: tuple[int, ...] = struct.field(pytree_node=False)
    num_edges: tuple[int, ...] = struct.field(pytree_node=False)
    body: jnp.ndarray
    pos: jnp.ndarray
    rot: jnp.ndarray
    size: jnp.ndarray
    planes: jnp.ndarray
    plane_mask: jnp.ndarray
    points: jnp.ndarray
    point_geom: jnp.ndarray
    edge_points: jnp.ndarray
    edge_normals: jnp.ndarray
    edge_geom: jnp.ndarray

    def of(self, *kinds: int) -> np.ndarray:
        """Indices of the geoms of the given types (static)."""
        return np.array([g for g, t in enumerate(self.types) if t in kinds], np.int32)


class GeomPenetration(NamedTuple):
    """Metres, world frame, depths >= 0: ``depth`` () the largest of ``per_geom`` (G,), each the max of
    ``hand_in_object`` (G,: deepest geom point in the object), ``object_in_hand`` (G,: deepest object
    point in the geom) and ``contact`` (G,: contact depth); ``hand_witness``, ``object_witness``
    (G, 3): the points of the first two."""

    depth: jax.Array
    per_geom: jax.Array
    hand_in_object: jax.Array
    object_in_hand: jax.Array
    contact: jax.Array
    hand_witness: jax.Array
    object_witness: jax.Array


# interior parameters in (0, 1) cutting a length into parts at most `spacing` long (at most `cap` parts)
_inner = lambda length, spacing, cap: np.linspace(0, 1, int(min(max(np.ceil(length / spacing), 1), cap)) + 1)[1:-1]  # noqa: E731


def _hull(vertices, spacing, name, facets=True):
    """Convex hull of ``vertices``: (points: its vertices, then points on edges and facets at most
    ``spacing`` apart (capped), vertex count, edges (k, 2), their faces' normals (k, 2, 3), planes)."""
    try:
        hull = ConvexHull(vertices)
    except QhullError as e:
        raise HandLoadError(f"geom '{name}': its vertices span no 3-D convex hull ({e})") from e
    eq, remap = hull.equations, np.full(len(vertices), -1)
    remap[hull.vertices] = np.arange(len(hull.vertices))
    verts = vertices[hull.vertices]
    edges, normals, pts = [], [], [verts]
    for i, (tri, nb) in enumerate(zip(hull.simplices, hull.neighbors)):
        for k, j in enumerate(nb):
            if j > i and eq[i, :3] @ eq[j, :3] < 1.0 - 1e-9:  # each edge once, none inside a facet
                a, b = remap[np.delete(tri, k)]
                edges.append((a, b)), normals.append((eq[i, :3], eq[j, :3]))
                pts.append(verts[a] + np.outer(_inner(np.linalg.norm(verts[b] - verts[a]), spacing, 8), verts[b] - verts[a]))
        m = len(_inner(np.ptp(vertices[tri], 0).max(), spacing, 6)) + 1 if facets else 0  # barycentric lattice
        pts.append(np.array([(i, j, m - i - j) for i in range(1, m) for j in range(1, m - i)]).reshape(-1, 3) @ vertices[tri] / m)
    keep = np.sort(np.unique(np.round(eq, 9), axis=0, return_index=True)[1])
    return np.vstack(pts), len(verts), np.array(edges).reshape(-1, 2), np.array(normals).reshape(-1, 2, 3), eq[keep]


def _cylinder(r, h, spacing, name):
    """The prism on n-gon rims inscribed within 1e-5 m of the cylinder (n >= 64), and cylinder points."""
    n = 8 * int(np.ceil(max(64, np.pi / np.arccos(1.0 - min(1e-5 / r, 1.0))) / 8))  # min: arccos' domain
    ang, ez = 2 * np.pi * np.arange(n) / n, np.array([0.0, 0.0, 1.0])
    ring = np.c_[r * np.cos(ang), r * np.sin(ang), np.zeros(n)]
    pts, *rest = _hull(np.r_[ring + h * ez, ring - h * ez], spacing, name, facets=False)
    gen = (ring[:: n // 8, None] + np.outer((2 * _inner(2 * h, spacing, 8) - 1) * h, ez)[None]).reshape(-1, 3)
    caps = np.vstack([ring[:: n // 8] * f for f in _inner(r, spacing, 3)] + [np.zeros((1, 3))])
    return np.vstack([pts, gen, caps + h * ez, caps - h * ez]), *rest


def load_geoms(hand: HandModel, *, spacing: float = 0.004, dtype=None) -> HandGeoms:
    """The hand's collision geoms (``contype`` or ``conaffinity`` non-zero: MuJoCo collides them with
    an object) on its bodies, from the same MuJoCo compile as the hand.

    Args:
        hand: the hand (``hand.path`` is compiled again; bodies are matched by name).
        spacing: target spacing [m] of the extra edge and face points (capped per edge and face).
        dtype: float dtype of the arrays (default: the hand's).

    Raises:
        HandLoadError: no collision geom, or a plane, height field or SDF one (no penetration depth).
    """
    model, index, rows = compile_model(hand.path), {n: i for i, n in enumerate(hand.body_names)}, []
    for g in range(model.ngeom):
        b = int(model.geom_bodyid[g])
        bname = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) or f"body{b}"
        if (model.geom_contype[g] == 0 and model.geom_conaffinity[g] == 0) or bname not in index:
            continue
        t, s, kind = int(model.geom_type[g]), model.geom_size[g].astype(float), _G(int(model.geom_type[g])).name[7:].lower()
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or f"{bname}/{kind}{g}"
        shape = (np.zeros((0, 3)), 0, np.zeros((0, 2), int), np.zeros((0, 2, 3)), np.zeros((0, 4)))
        if t == BOX:
            shape = _hull(np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]) * s, spacing, name)
        elif t == CYLINDER:
            shape = _cylinder(s[0], s[1], spacing, name)
        elif t == ELLIPSOID:
            shape = _hull(np.asarray(trimesh.creation.icosphere(subdivisions=4).vertices) * s, spacing, name, facets=False)
        elif t == MESH:
            m = model.geom_dataid[g]
            v = model.mesh_vert[model.mesh_vertadr[m]:model.mesh_vertadr[m] + model.mesh_vertnum[m]]
            if (adr := model.mesh_graphadr[m]) >= 0:  # the vertices of MuJoCo's own hull (maxhullvert)
                v = v[model.mesh_graph[adr + 2 + model.mesh_graph[adr]:adr + 2 + 2 * model.mesh_graph[adr]]]
            shape = _hull(np.asarray(v, float), spacing, name)
        elif t in (SPHERE, CAPSULE):  # centre or axis ends (the core terms give their depths)
            shape = (np.array([[0.0, 0.0, s[1] if t == CAPSULE else 0.0]]) * [[1], [-1]], *shape[1:])
        else:
            raise HandLoadError(f"{hand.path}: collision geom '{name}' on body '{bname}' is a {kind}, whose "
                                "penetration cannot be measured; give it contype=\"0\" conaffinity=\"0\" and "
                                "model the link with spheres, capsules, boxes, cylinders, ellipsoids or meshes")
        rows.append((name, t, index[bname], model.geom_pos[g], quat_to_matrix_np(model.geom_quat[g]), s, *shape))
    if not rows:
        raise HandLoadError(f"{hand.path}: no collision geom on the hand (contype and conaffinity are 0 everywhere)")
    name, types, body, pos, rot, size, pts, nv, edges, normals, planes = zip(*rows)
    start = np.cumsum([0] + [len(p) for p in pts])
    H = max(max(len(p) for p in planes), 1)
    f = lambda x: jnp.asarray(np.asarray(x, float), dtype=hand.body_pos.dtype if dtype is None else dtype)  # noqa: E731
    i32 = lambda x: jnp.asarray(np.asarray(x, np.int64), dtype=jnp.int32)  # noqa: E731
    return HandGeoms(
        names=name, types=types, point_start=tuple(int(x) for x in start[:-1]), num_vertices=nv,
        num_planes=tuple(len(p) for p in planes), num_edges=tuple(len(e) for e in edges), body=i32(body), pos=f(pos), rot=f(rot), size=f(size),
        planes=f([np.r_[p, np.zeros((H - len(p), 4))] for p in planes]), points=f(np.vstack(pts)),
        plane_mask=jnp.asarray(np.arange(H) < np.array([len(p) for p in planes])[:, None]),
        point_geom=i32(np.repeat(np.arange(len(rows)), np.diff(start))),
        edge_points=i32(np.vstack([e + s0 for e, s0 in zip(edges, start)])), edge_normals=f(np.vstack(normals)),
        edge_geom=i32(np.concatenate([np.full(len(e), g) for g, e in enumerate(edges)])))


def _norm(v):
    """|v| over the last axis. Double where: sqrt'(0) is infinite, so a point exactly at a sphere's
    centre or on a capsule's axis gets a zero (finite) gradient instead of NaN."""
    s = jnp.sum(v * v, -1)
    return jnp.where(s > 0, jnp.sqrt(jnp.where(s > 0, s, 1.0)), 0.0)


def _ellipsoid_closest(x, a, steps: int = 60):
    """Closest point of the ellipsoid of radii ``a`` to ``x``: bisection on ``t`` in ``y = a^2 x / (t + a^2)``
    (``|y / a|^2`` falls on ``t > -min a^2``); the smallest radius' coordinate then follows from the
    others, which keeps ``y`` on the surface, also where no root lies above ``-min a^2`` (medial)."""
    a2, floor = a * a, 1e-12 * jnp.min(a * a, -1, keepdims=True)  # maximum with floor: t + a^2 > 0 (no 0 / 0)
    y_of = lambda t: a2 * x / jnp.maximum(t[..., None] + a2, floor)  # noqa: E731
    def step(_, lh):
        mid = 0.5 * (lh[0] + lh[1])
        right = jnp.sum((y_of(mid) / a) ** 2, -1) > 1
        return jnp.where(right, mid, lh[0]), jnp.where(right, lh[1], mid)
    _, t = jax.lax.fori_loop(0, steps, step, (-jnp.min(a2, -1), jnp.max(a, -1) * _norm(x)))
    y, k = y_of(t), jnp.argmin(a, -1)[..., None] == jnp.arange(3)
    rest = jnp.sum(jnp.where(k, 0.0, (y / a) ** 2), -1, keepdims=True)  # maximum below: rounding
    return jnp.where(k, jnp.where(x >= 0, 1.0, -1.0) * a * jnp.sqrt(jnp.maximum(1.0 - rest, 0.0)), y)


def _phi(geoms, kind, idx, x):
    """Depth of geom-frame points ``x (Gk, N, 3)`` in geoms ``idx`` of one type: the distance to
    the boundary inside (exact), negative outside, concave in ``x``."""
    s = geoms.size[idx][:, None, :].astype(x.dtype)
    if kind == SPHERE:
        return s[..., 0] - _norm(x)
    if kind == CAPSULE:
        return s[..., 0] - _norm(x.at[..., 2].add(-jnp.clip(x[..., 2], -s[..., 1], s[..., 1])))
    if kind == CYLINDER:
        return jnp.minimum(s[..., 0] - _norm(x[..., :2]), s[..., 1] - jnp.abs(x[..., 2]))
    if kind == BOX:
        return jnp.min(s - jnp.abs(x), -1)
    if kind == ELLIPSOID:  # signed distance, the closest point held fixed (Danskin: the exact gradient)
        a = jnp.broadcast_to(s, x.shape)
        y = _ellipsoid_closest(*jax.lax.stop_gradient((x, a)))
        return jnp.where(jnp.sum((x / a) ** 2, -1) < 1, 1.0, -1.0) * _norm(x - y)
    # hulls: the nearest plane picked without gradient in one fused pass, then differentiated alone
    H = max(geoms.num_planes[g] for g in idx)
    P, xs = geoms.planes[idx, :H].astype(x.dtype), jax.lax.stop_gradient(x)
    val = sum(xs[..., None, i] * P[:, None, :, i] for i in range(3)) + P[:, None, :, 3]
    p = P[jnp.arange(len(idx))[:, None], jnp.argmax(jnp.where(geoms.plane_mask[idx, None, :H], val, -1e30), -1)]
    return -(jnp.sum(p[..., :3] * x, -1) + p[..., 3])


def geom_poses(geoms: HandGeoms, T_world_body: jax.Array) -> tuple[jax.Array, jax.Array]:
    """World rotations ``(G, 3, 3)`` and positions ``(G, 3)`` of the geoms; bodies ``(B, 4, 4)``."""
    Tb = T_world_body[geoms.body]
    return Tb[:, :3, :3] @ geoms.rot.astype(Tb.dtype), jnp.einsum("gij,gj->gi", Tb[:, :3, :3], geoms.pos.astype(Tb.dtype)) + Tb[:, :3, 3]


def _local(R, t, idx, x, vec=False):
    """World points (or vectors) ``x (N, 3)`` in the frames of geoms ``idx``: ``(Gk, N, 3)``."""
    return jnp.einsum("nk,gkj->gnj", x, R[idx]) - (0.0 if vec else jnp.einsum("gk,gkj->gj", t[idx], R[idx])[:, None])


def _depths(geoms, R, t, x, kinds):
    """Depth ``(G, N)`` of world points in the geoms of ``kinds`` (``_FAR`` in the others)."""
    out = jnp.full((len(geoms.types), x.shape[0]), _FAR, x.dtype)
    for kind in sorted(set(geoms.types) & set(kinds)):
        out = out.at[geoms.of(kind)].set(_phi(geoms, kind, geoms.of(kind), _local(R, t, geoms.of(kind), x)))
    return out


def geom_depth(geoms: HandGeoms, T_world_body: jax.Array, points: jax.Array, kinds=None) -> jax.Array:
    """Depth ``(N, G)`` of world points ``(N, 3)`` inside every geom (of ``kinds``, default all; 0 in
    the others): the distance to its boundary inside, 0 outside. ``T_world_body``: (B, 4, 4)."""
    R, t = geom_poses(geoms, T_world_body)
    return jnp.maximum(_depths(geoms, R, t, points, set(geoms.types) if kinds is None else set(kinds)), 0.0).T


def _object_edges(obj: Object, rows):
    """(start, end - start, its faces' normals n1, n2, real (each edge once), convex), each (3 F, ...)."""
    n1 = jnp.broadcast_to(rows["normals"][:, None], rows["corners"].shape)
    psn = rows["edge_pseudonormals"]  # (n1 + n2) / |n1 + n2|: n1 reflected about it is n2
    n2 = 2.0 * jnp.sum(n1 * psn, -1, keepdims=True) * psn - n1
    real = obj.face_mask[:, None] & (obj.faces < jnp.roll(obj.faces, -1, axis=1))
    convex = jnp.sum(n2 * rows["edge_inward"], -1) < -1e-6
    return tuple(x.reshape((-1,) + x.shape[2:]) for x in (rows["corners"], rows["edges"], n1, n2, real, convex))


def _segment_max(fn, a, d, steps: int = 40):
    """Argmax ``t`` in [0, 1] of a concave ``fn(a + t d)``: golden section (to 0.618^40 = 4e-9 of the
    edge), then the best of it and the ends. No gradient (the caller re-evaluates there)."""
    a, d, g = *jax.lax.stop_gradient((a, d)), float(np.sqrt(5.0) - 1.0) / 2.0
    f = lambda t: fn(a + t[..., None] * d)  # noqa: E731
    def step(_, s):
        lo, hi, c, e, fc, fe = s
        left = fc >= fe  # the maximum lies in [lo, e]
        lo, hi = jnp.where(left, lo, c), jnp.where(left, e, hi)
        c, e = jnp.where(left, hi - g * (hi - lo), e), jnp.where(left, c, lo + g * (hi - lo))
        new = f(jnp.where(left, c, e))
        return lo, hi, c, e, jnp.where(left, new, fe), jnp.where(left, fc, new)
    z = jnp.zeros(a.shape[:-1], a.dtype)
    *_, c, e, fc, fe = jax.lax.fori_loop(0, steps, step, (z, z + 1, z + 1 - g, z + g, f(z + 1 - g), f(z + g)))
    cand, val = jnp.stack([jnp.where(fc >= fe, c, e), z, z + 1], -1), jnp.stack([jnp.maximum(fc, fe), f(z), f(z + 1)], -1)
    return jnp.take_along_axis(cand, jnp.argmax(val, -1)[..., None], -1)[..., 0]


def _cores(geoms, R, t, sd):
    """Spheres, capsules: (indices, (object-in-geom depth, witness, geom-in-object depth, witness)) from
    the core's smallest signed distance: the best of 33 axis samples, refined by golden section (to
    0.618^25 = 6e-6 of the two sample spacings around it)."""
    idx = geoms.of(SPHERE, CAPSULE)
    if not len(idx):
        return idx, None
    ez, r = R[idx, :, 2], geoms.size[idx, 0]
    half = jnp.where(jnp.asarray([geoms.types[g] == CAPSULE for g in idx]), geoms.size[idx, 1], 0.0)
    p0, d = t[idx] - half[:, None] * ez, 2 * half[:, None] * ez
    k = jnp.argmin(sd(p0[:, None] + jnp.linspace(0.0, 1.0, 33, dtype=R.dtype)[:, None] * d[:, None])[0], 1)
    lo, hi = (jnp.maximum(k - 1, 0) / 32).astype(R.dtype), (jnp.minimum(k + 1, 32) / 32).astype(R.dtype)
    c = p0 + (lo + (hi - lo) * _segment_max(lambda x: -sd(x)[0], p0 + lo[:, None] * d, (hi - lo)[:, None] * d, 25))[:, None] * d
    core, n = sd(c)  # Danskin: the axis point held fixed
    return idx, (r - jnp.maximum(core, 0.0), c - core[:, None] * n, r - core, c - r[:, None] * n)


def _best(val, pts, depth=None, wit=None, idx=None):
    """Each row's largest value of ``val (Gk, N)`` and its point, merged into ``depth``/``wit`` at ``idx``."""
    j, n = jnp.argmax(val, -1), jnp.arange(val.shape[0])
    v, p = val[n, j], jnp.broadcast_to(pts, val.shape + (3,))[n, j]
    if depth is None:
        return v, p
    better = v > depth[idx]
    return depth.at[idx].set(jnp.where(better, v, depth[idx])), wit.at[idx].set(jnp.where(better[:, None], p, wit[idx]))


def _object_side(geoms, R, t, obj, oe, object_points, cores):
    """Object into geoms: (depth (G,), witness (G, 3), depth of the object's vertices (G, V))."""
    pts, ok = obj.vertices.astype(R.dtype), obj.vertex_mask
    if object_points is not None and object_points.shape[0]:
        pts, ok = jnp.concatenate([pts, object_points.astype(R.dtype)]), jnp.concatenate([ok, jnp.ones(len(object_points), bool)])
    val = jnp.where(ok, _depths(geoms, R, t, pts, (BOX, CYLINDER, ELLIPSOID, MESH)), _FAR)
    depth, wit = _best(val, pts)
    for kind in sorted(set(geoms.types) & {BOX, CYLINDER, ELLIPSOID}):  # along the object's edges
        idx = geoms.of(kind)
        a, d = _local(R, t, idx, oe[0]), _local(R, t, idx, oe[1], vec=True)
        s = _segment_max(lambda x: _phi(geoms, kind, idx, x), a, d)
        v = jnp.where(oe[4], _phi(geoms, kind, idx, a + s[..., None] * d), _FAR)
        depth, wit = _best(v, oe[0] + s[..., None] * oe[1], depth, wit, idx)
    if len(cores[0]):
        depth, wit = _best(cores[1][0][:, None], cores[1][1][:, None], depth, wit, cores[0])
    return jnp.maximum(depth, 0.0), wit, val[:, :obj.vertices.shape[0]]


def _hand_side(geoms, R, t, sd, cores):
    """Geoms into the object: (depth (G,), witness (G, 3), world points (P, 3), their distances)."""
    pg = geoms.point_geom
    gpts = jnp.einsum("pij,pj->pi", R[pg], geoms.points.astype(R.dtype)) + t[pg]
    dist = sd(gpts)[0]
    depth, wit = _best(jnp.where(pg == jnp.arange(len(geoms.types))[:, None], -dist, _FAR), gpts)
    if len(cores[0]):
        depth, wit = _best(cores[1][2][:, None], cores[1][3][:, None], depth, wit, cores[0])
    return jnp.maximum(depth, 0.0), wit, gpts, dist  # maximum: 0 = not penetrating (as everywhere)


def _clip(alpha, beta, mask):
    """The interval of ``s`` in [0, 1] with ``alpha + beta s <= 0`` in every masked-in last-axis row."""
    r = -alpha / jnp.where(beta == 0, 1.0, beta)  # where: no division for lines parallel to a plane
    out = (beta == 0) & (alpha > 0)
    hi = jnp.where(mask & (beta > 0), r, jnp.where(mask & out, -1.0, 2.0))
    lo = jnp.where(mask & (beta < 0), r, jnp.where(mask & out, 2.0, -1.0))
    return jnp.maximum(jnp.max(lo, -1), 0.0), jnp.minimum(jnp.min(hi, -1), 1.0)


def _contact(geoms, R, t, obj, rows, oe, gpts, gsd, vdepth, K=16, D=16, k1=128, k2=32):
    """Per geom (G,): the smallest overlap over the SAT pairs in contact, and over all faces. Object face
    ``f`` / geom support ``v`` along ``-n_f``: ``n_f . (c_f - v)``, in contact when ``v`` is in the object,
    over the face. Geom face ``m`` / object support ``w``: ``-(n_m . w + d_m)``, in contact when ``w`` is
    one of the K deepest object vertices in the geom and no corner of its (<= D) faces is lower."""
    G, dt, F = len(geoms.types), R.dtype, obj.face_mask.shape[0]
    touch, every = jnp.full(G, _NONE, dt), jnp.full(G, _NONE, dt)
    c, n = rows["corners"], rows["normals"]
    flat = jnp.where(obj.face_mask[:, None], obj.faces, obj.vertices.shape[0]).reshape(-1)
    order = jnp.argsort(flat)  # the face corners at each vertex lie together in `order`
    verts = jnp.where(obj.vertex_mask[:, None], obj.vertices.astype(dt), jnp.mean(c[:, 0], 0, where=obj.face_mask[:, None]))
    for kind in sorted(set(geoms.types) & set(_POLY)):
        idx, H = geoms.of(kind), max(geoms.num_planes[g] for g in geoms.of(kind))
        nv = max(geoms.num_vertices[g] for g in idx)
        vid = jnp.asarray([[geoms.point_start[g] + min(k, geoms.num_vertices[g] - 1) for k in range(nv)] for g in idx])
        V = jax.lax.stop_gradient(gpts[vid])  # fused: the (Gk, F, nv) products are never stored
        k = vid[np.arange(len(idx))[:, None], jnp.argmax(-sum(n[:, None, i] * V[:, None, :, i] for i in range(3)), -1)]
        val = jnp.sum(n * (c[:, 0] - gpts[k]), -1)  # (Gk, F)
        over = jnp.all(jnp.sum(rows["edge_inward"] * (gpts[k][..., None, :] - c), -1) >= -_TOL, -1)
        touch = touch.at[idx].set(jnp.min(jnp.where(obj.face_mask & over & (gsd[k] < 0) & (val > 0), val, _NONE), -1))
        every = every.at[idx].set(jnp.min(jnp.where(obj.face_mask, val, _NONE), -1))
        nm = jnp.einsum("gij,ghj->ghi", R[idx], geoms.planes[idx, :H, :3])
        dm, live = geoms.planes[idx, :H, 3] - jnp.einsum("ghi,gi->gh", nm, t[idx]), geoms.plane_mask[idx, :H]
        sv = jax.lax.stop_gradient((nm, verts))  # the object's support along -n_m, fused (Danskin)
        wj = jnp.argmin(sum(sv[0][:, :, None, i] * sv[1][None, None, :, i] for i in range(3)), -1)
        every = every.at[idx].min(jnp.min(jnp.where(live, -(jnp.sum(nm * verts[wj], -1) + dm), _NONE), -1))
        dv, cand = jax.lax.top_k(vdepth[idx], min(K, vdepth.shape[1]))
        w = verts[cand]  # (Gk, K, 3)
        e = jnp.clip(jnp.searchsorted(flat[order], cand)[..., None] + jnp.arange(D), 0, 3 * F - 1)
        nb = jnp.where((flat[order][e] == cand[..., None])[..., None, None], c[order[e] // 3] - w[:, :, None, None], 0.0)
        nb = nb.reshape(nb.shape[:2] + (1, -1, 3))
        rise = jnp.min(sum(nm[:, None, :, None, i] * nb[..., i] for i in range(3)), -1)  # (Gk, K, H)
        val = -(jnp.einsum("ghi,gki->gkh", nm, w) + dm[:, None])
        ok = (dv > 0)[..., None] & live[:, None] & (rise >= -_TOL) & (val > 0)
        touch = touch.at[idx].min(jnp.min(jnp.where(ok, val, _NONE), (1, 2)))
    # edge x edge: geom edges x convex object edges whose normal arcs cross at u (out of the object),
    # the lines' closest points inside both segments, the object's in the geom, the geom's in the
    # object edge's wedge: u . (x_object - x_geom)
    idx, E = geoms.of(*_POLY), geoms.edge_geom.shape[0]
    if not len(idx) or not E:
        return touch, every
    os, ov, n1, n2, real, convex = oe
    a, d = _local(R, t, idx, os), _local(R, t, idx, ov, vec=True)
    # candidates: the convex edges longest inside the geom's bounding box, then inside the geom
    box = jnp.stack([f(geoms.points.astype(dt), geoms.point_geom, G) for f in (jax.ops.segment_min, jax.ops.segment_max)], 1)[idx][:, None]
    s0, s1 = _clip(jnp.concatenate([a - box[..., 1, :], box[..., 0, :] - a], -1), jnp.concatenate([d, -d], -1), True)
    c1 = jax.lax.top_k(jnp.where(real & convex & (s1 >= s0), s1 - s0, -1.0), min(k1, a.shape[1]))[1]
    ga, gd, P = *(jnp.take_along_axis(x, c1[..., None], 1)[:, :, None] for x in (a, d)), geoms.planes[idx][:, None]
    tin, tout = _clip(jnp.sum(ga * P[..., :3], -1) + P[..., 3], jnp.sum(gd * P[..., :3], -1), geoms.plane_mask[idx][:, None])
    ok = (real & convex)[c1] & (tout >= tin)
    c2 = jax.lax.top_k(jnp.where(ok, tout - tin, -1.0), min(k2, c1.shape[1]))[1]
    cand, tin, tout, ok = (jnp.take_along_axis(x, c2, 1) for x in (c1, tin, tout, ok))
    e0, e1 = gpts[geoms.edge_points[:, 0]], gpts[geoms.edge_points[:, 1]]
    eg = geoms.edge_geom  # every geom edge x the geom's object edge candidates
    row = jnp.asarray(np.searchsorted(idx, np.arange(G)).clip(0, len(idx) - 1), jnp.int32)[eg]
    xa, gv = e0[:, None], (e1 - e0)[:, None]
    gn = jnp.einsum("eij,ekj->eki", R[eg], geoms.edge_normals.astype(dt))[:, None]
    os, ov, n1, n2 = (x[cand[row]] for x in (os, ov, n1, n2))
    cr = jnp.cross(jnp.broadcast_to(gv, ov.shape), ov)
    c2 = jnp.sum(cr * cr, -1)
    par = c2 <= 1e-12 * jnp.sum(gv * gv, -1) * jnp.sum(ov * ov, -1)
    u = cr / jnp.where(par, 1.0, jnp.sqrt(jnp.where(par, 1.0, c2)))[..., None]  # double where: parallel pairs
    u = jnp.where((jnp.sum(u * (n1 + n2), -1) < 0)[..., None], -u, u)
    def arc(v, m1, m2):  # v (perpendicular to the edge) between the face normals m1 and m2
        b = (m1 + m2) / jnp.where(_norm(m1 + m2) > 0, _norm(m1 + m2), 1.0)[..., None]  # where: a sheet's edge
        return jnp.sum(v * b, -1) >= jnp.sum(m1 * b, -1) - _TOL
    wedge = (jnp.sum(u * n1, -1) >= -_TOL) & (jnp.sum(u * n2, -1) >= -_TOL)
    r, den = xa - os, jnp.where(par, 1.0, c2)  # den = |gv|^2 |ov|^2 - (gv . ov)^2; where: masked pairs
    gr, orr, go = jnp.sum(gv * r, -1), jnp.sum(ov * r, -1), jnp.sum(gv * ov, -1)
    s, w = (go * orr - gr * jnp.sum(ov * ov, -1)) / den, (jnp.sum(gv * gv, -1) * orr - go * gr) / den
    inside = (s >= -_TOL) & (s <= 1 + _TOL) & (w >= tin[row] - _TOL) & (w <= tout[row] + _TOL)
    depth = jnp.sum(u * (os - xa), -1)
    good = ok[row] & ~par & arc(u, n1, n2) & arc(-u, gn[..., 0, :], gn[..., 1, :]) & wedge & inside & (depth > 0)
    return jnp.minimum(touch, jax.ops.segment_min(jnp.min(jnp.where(good, depth, _NONE), 1), eg, num_segments=G)), every


def _setup(geoms, T_world_body, obj, exact, grid):
    R, t = geom_poses(geoms, T_world_body)
    rows = geometry.face_rows(geometry.face_columns(obj, R.dtype), jnp.arange(obj.face_mask.shape[0]))
    sd = lambda p, n=256: geometry.signed_distance(obj, p, grid=grid, exact=exact, chunk_size=n)  # noqa: E731
    return R, t, rows, sd, _cores(geoms, R, t, lambda p: sd(p, 32))


def object_in_geoms(geoms: HandGeoms, T_world_body: jax.Array, obj: Object, object_points: jax.Array | None = None,
                    *, exact: bool = False, grid=None) -> tuple[jax.Array, jax.Array]:
    """Object into hand: ``(depth (G,) >= 0, witness (G, 3))``, the deepest object point inside each
    geom. Arguments as :func:`geom_penetration` (``exact``, ``grid``: sphere centres, capsule axes)."""
    R, t, rows, _, cores = _setup(geoms, T_world_body, obj, exact, grid)
    return _object_side(geoms, R, t, obj, _object_edges(obj, rows), object_points, cores)[:2]


def geoms_in_object(geoms: HandGeoms, T_world_body: jax.Array, obj: Object, *, exact: bool = False,
                    grid=None) -> tuple[jax.Array, jax.Array]:
    """Hand into object: ``(depth (G,) >= 0, witness (G, 3))``, the deepest point of each geom inside
    the object. Arguments as :func:`geom_penetration`."""
    R, t, _, sd, cores = _setup(geoms, T_world_body, obj, exact, grid)
    return _hand_side(geoms, R, t, sd, cores)[:2]


def geom_penetration(geoms: HandGeoms, T_world_body: jax.Array, obj: Object, object_points: jax.Array | None = None,
                     *, exact: bool = False, grid=None) -> GeomPenetration:
    """Penetration between the hand's collision geoms and the object, both ways (one item).

    Args:
        geoms: from :func:`load_geoms`.
        T_world_body: (B, 4, 4) posed bodies (``pose_hand(...).T_world_body``) in the frame of
            ``obj.vertices``.
        obj: the object.
        object_points: optional (N, 3) object surface samples in the same frame.
        exact: recompute on the host the signed distances floating point cannot decide (a callback;
            False keeps compiled code cacheable; a wrong sign is then possible only within ~1e-6 m
            of the surface, where the depth is ~0 either way).
        grid: optional culling grid of the object (:func:`jaxgrasp.mesh.culling.build_grid`).

    Returns:
        :class:`GeomPenetration`, differentiable in ``T_world_body`` (finite gradients everywhere).
    """
    R, t, rows, sd, cores = _setup(geoms, T_world_body, obj, exact, grid)
    oe = _object_edges(obj, rows)
    o, ow, vdepth = _object_side(geoms, R, t, obj, oe, object_points, cores)
    h, hw, gpts, gsd = _hand_side(geoms, R, t, sd, cores)
    touch, every = _contact(geoms, R, t, obj, rows, oe, gpts, gsd, vdepth)
    # a pair in contact proves the bodies intersect; the other faces' overlaps can only lower it
    c = jnp.where(touch < _NONE, jnp.maximum(jnp.minimum(touch, every), 0.0), 0.0)
    per = jnp.maximum(jnp.maximum(o, h), c)
    return GeomPenetration(jnp.max(per), per, h, o, c, hw, ow)
