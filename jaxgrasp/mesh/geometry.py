"""Signed distance d(p), outward normal n(p) and their derivatives to a raw triangle mesh.

Paper section IV.C, BVH-free and vectorized: every (point, triangle) pair is evaluated (or every
pair of a point and its grid cell's candidate list, see :mod:`jaxgrasp.mesh.culling`), in chunks of
points to bound memory.

* Closest point on a triangle: the point's projection if it lies inside the triangle (tested
  against the edges' precomputed in-plane normals, well conditioned also for slivers), else the
  nearest of the three edge segments. The closest feature is the face, an edge or a vertex.
* Sign (d > 0 outside): watertight meshes use the angle-weighted pseudonormal of the closest
  feature (Baerentzen & Aanaes 2005), which is correct at edges and vertices where the paper's
  face-normal test (eq. 5) is not; other meshes use the generalized winding number
  (Jacobson et al. 2013): inside where it exceeds 1/2.
* Exact path (``exact=True``, the default): points whose sign or closest feature floating point
  cannot decide are recomputed on the host with rational arithmetic through
  ``jax.pure_callback`` (see :mod:`jaxgrasp.mesh.exact`). Flagged (error bound tol, see
  ``TOL_FACTOR`` in :mod:`jaxgrasp.mesh.culling`): |pseudonormal . (p - q)| <= tol; a face on the other side of its plane
  within tol of the nearest distance (a near-tie that may hide the opposite sign); for open
  meshes |d| <= tol or a winding number near 1/2. The flags cost one extra pass over the pairs.
* Derivatives (custom JVP, as in the paper): dd/dp = n(p); dn/dp = 0 for a face,
  (I - e e^T - n n^T) / d for an edge with unit direction e, (I - n n^T) / d for a vertex.
  The paper prints the edge/vertex formulas for its eq. 6 normal, which points inward for
  outside points, and with a stray (1 - |d|) factor; the formulas here are the derivatives of the
  outward n = sign * (p - q) / |p - q| and are checked against central differences. Below the
  floating-point resolution of the surface (|d| <= tol) dn/dp = 0, and exactly on the surface
  n is the pseudonormal of the closest feature, so gradients are finite on vertices, edges and
  the surface itself.
  The object is a constant: no derivatives flow to its arrays (they are precomputed on the host).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgrasp.mesh import culling
from jaxgrasp.mesh import exact as exact_mod
from jaxgrasp.mesh.culling import TOL_FACTOR
from jaxgrasp.mesh.objects import Object

# Feature codes of the closest point: 0 face, 1 + k edge k (corner k -> k + 1), 4 + k vertex k.
FACE, EDGE0, VERTEX0 = 0, 1, 4

# Per-face tables (see Object.columns) and their per-face shapes.
TABLE_SHAPES = {"corners": (3, 3), "normals": (3,), "edges": (3, 3), "edge_inv_len2": (3,),
                "edge_inward": (3, 3), "edge_pseudonormals": (3, 3),
                "vertex_pseudonormals": (3, 3)}


class ClosestFeatures(NamedTuple):
    """Per-point result of the distance query (batch shape ``...`` of the points).

    Attributes:
      distance: (...) signed distance, > 0 outside.
      normal: (..., 3) unit outward normal n(p) (the feature's pseudonormal on the surface).
      face: (...) int32 index of the closest face.
      feature: (...) int32 closest feature of that face: 0 face, 1-3 edge k, 4-6 vertex k.
      ambiguous: (...) bool, points floating point could not decide (recomputed exactly when
        ``exact=True``).
    """

    distance: jax.Array
    normal: jax.Array
    face: jax.Array
    feature: jax.Array
    ambiguous: jax.Array


def face_columns(obj: Object, dtype) -> dict[str, jax.Array]:
    """The object's per-face columns (Object.columns) in the compute dtype."""
    return {k: v.astype(dtype) for k, v in obj.columns.items()}


def face_rows(cols, idx, keys=tuple(TABLE_SHAPES)):
    """Per-face tables ``keys`` of the faces ``idx`` (any shape): idx.shape + table shape."""
    out = {}
    for key in keys:
        shape = TABLE_SHAPES[key]
        n = int(np.prod(shape))
        out[key] = jnp.stack([cols[f"{key}{i}"][idx] for i in range(n)], -1).reshape(
            idx.shape + shape)
    return out


def point_triangle(p, tri):
    """Closest point of one triangle to one point.

    Args:
      p: (3,) point.
      tri: one face's tables (:func:`face_rows`: corners (3, 3), normals (3,), ...).

    Returns:
      d2: () squared distance.
      feature: () int32 feature code (FACE, EDGE0 + k, VERTEX0 + k).
      u: (3,) p - q with q the closest point.
      psi: (3,) unit pseudonormal of the feature.
    """
    rel = p - tri["corners"]                                   # (3, 3): p - corner k
    h = jnp.dot(tri["normals"], rel[0])
    inside = jnp.all(jnp.sum(tri["edge_inward"] * rel, axis=-1) >= 0)
    along = jnp.sum(rel * tri["edges"], axis=-1) * tri["edge_inv_len2"]
    t = jnp.clip(along, 0.0, 1.0)
    diff = rel - t[:, None] * tri["edges"]                     # p - closest point of edge k
    d2e = jnp.sum(diff * diff, axis=-1)
    k = jnp.where(d2e[0] <= d2e[1], jnp.where(d2e[0] <= d2e[2], 0, 2),
                  jnp.where(d2e[1] <= d2e[2], 1, 2))
    pick = lambda x: jnp.where(k == 0, x[0], jnp.where(k == 1, x[1], x[2]))  # noqa: E731
    tk = pick(t)
    edge_feature = jnp.where(tk <= 0, VERTEX0 + k,
                             jnp.where(tk >= 1, VERTEX0 + (k + 1) % 3, EDGE0 + k))
    feature = jnp.where(inside, FACE, edge_feature).astype(jnp.int32)
    d2 = jnp.where(inside, h * h, pick(d2e))
    u = jnp.where(inside, h * tri["normals"], pick(diff))
    return d2, feature, u, feature_normal(tri, feature)


def feature_normal(tri, feature):
    """Unit pseudonormal of a feature code of one face (see :func:`point_triangle`)."""
    k = jnp.clip(feature - jnp.where(feature >= VERTEX0, VERTEX0, EDGE0), 0, 2)
    pn = jnp.where(feature >= VERTEX0, tri["vertex_pseudonormals"][k],
                   tri["edge_pseudonormals"][k])
    return jnp.where(feature == FACE, tri["normals"], pn)


def _dot3(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _vec(t, key, k):
    """Row k of a per-face (3, 3) table, as a 3-tuple of SoA scalars."""
    return tuple(t[f"{key}{3 * k + a}"] for a in range(3))


def pair_distance(p, t):
    """Squared distance of one point to one face, and the point's side of the face's plane.

    Same closest point as :func:`point_triangle`, written on scalar components without
    small-axis reductions so that the (points x faces) pass fuses into one vectorized loop.

    Args:
      p: 3-tuple of scalars.
      t: one face's columns (:func:`face_columns`, as scalars).

    Returns:
      (d2, h) scalars: squared distance and n . (p - corner 0).
    """
    rel = [tuple(p[a] - t[f"corners{3 * k + a}"] for a in range(3)) for k in range(3)]
    inside = True
    d2e = []
    for k in range(3):
        inside = inside & (_dot3(_vec(t, "edge_inward", k), rel[k]) >= 0)
        e = _vec(t, "edges", k)
        tk = jnp.clip(_dot3(rel[k], e) * t[f"edge_inv_len2{k}"], 0.0, 1.0)
        diff = tuple(rel[k][a] - tk * e[a] for a in range(3))
        d2e.append(_dot3(diff, diff))
    h = _dot3(tuple(t[f"normals{a}"] for a in range(3)), rel[0])
    d2_edges = jnp.minimum(jnp.minimum(d2e[0], d2e[1]), d2e[2])
    return jnp.where(inside, h * h, d2_edges), h


def _nearest(points, soa, valid, ids, cols, tie):
    """Nearest face among candidates, for a chunk of points.

    Args:
      points: (C, 3).
      soa: candidate columns, each (M,) shared by all points or (C, M) per point.
      valid: (M,) or (C, M) bool, real candidates.
      ids: (M,) or (C, M) int32 global face index of each candidate.
      cols: all face columns (for the closest face's feature).
      tie: also return d_alt, the distance to the nearest candidate on the other side (below).

    Returns:
      dict with d2, face, feature, u, psi (C, ...) and d_alt (C,) (inf without ``tie``).
    """
    per_point = valid.ndim == 2
    pair = jax.vmap(jax.vmap(lambda p, t: pair_distance((p[0], p[1], p[2]), t), (None, 0)),
                    (0, 0 if per_point else None))

    def distances():
        d2, h = pair(points, soa)
        return jnp.where(valid, d2, jnp.inf), h  # padded faces / empty slots never closest

    # Separate single-output passes: XLA's CPU backend runs multi-output reductions over the
    # same (points x faces) producer several times slower than recomputing the producer.
    d2, _ = distances()
    m = jnp.min(d2, axis=1)
    # Index of the minimum by a plain min-reduction (argmin is several times slower on CPU);
    # the 4-ulp window only guards against a recomputation that rounds differently.
    n_cand = d2.shape[1]
    eps = jnp.finfo(d2.dtype).eps
    iota = jnp.arange(n_cand, dtype=jnp.int32)
    j = jnp.min(jnp.where(d2 <= m[:, None] * (1 + 4 * eps), iota, n_cand - 1), axis=1)
    face = ids[jnp.arange(ids.shape[0]), j] if per_point else ids[j]
    d2_b, feat_b, u_b, psi_b = jax.vmap(point_triangle)(points, face_rows(cols, face))
    d_alt = jnp.full(d2_b.shape, jnp.inf, d2_b.dtype)
    if tie:
        # Nearest face whose plane side differs from the chosen sign (a zero side counts as
        # different). If the true nearest feature has the other sign, one of its faces has that
        # plane side (pseudonormals are positive combinations of the face normals), so
        # d_alt - d <= tol flags every point the float search may have signed wrongly.
        pos = jnp.sum(psi_b * u_b, axis=-1) > 0
        d2, h = distances()
        other = ((h > 0) != pos[:, None]) | (h == 0)
        d_alt = jnp.sqrt(jnp.min(jnp.where(other, d2, jnp.inf), axis=1))
    return dict(d2=d2_b, face=face.astype(jnp.int32), feature=feat_b, u=u_b, psi=psi_b,
                d_alt=d_alt)


def solid_angle(p, t):
    """Signed solid angle of one face seen from p (Van Oosterom & Strackee 1983).

    Args:
      p: 3-tuple of scalars.
      t: one face's columns (:func:`face_columns`, as scalars; only the corners are read).

    Returns:
      () solid angle in [-2 pi, 2 pi]; positive when p is behind the counter-clockwise face.
    """
    a, b, c = (tuple(t[f"corners{3 * k + i}"] - p[i] for i in range(3)) for k in range(3))
    la, lb, lc = (jnp.sqrt(_dot3(x, x)) for x in (a, b, c))
    bxc = (b[1] * c[2] - b[2] * c[1], b[2] * c[0] - b[0] * c[2], b[0] * c[1] - b[1] * c[0])
    den = la * lb * lc + _dot3(a, b) * lc + _dot3(b, c) * la + _dot3(c, a) * lb
    return 2.0 * jnp.arctan2(_dot3(a, bxc), den)  # atan2(0, 0) = 0 at a corner: no NaN


def _winding_number(points, soa, face_mask):
    """Generalized winding number (C,) of the real faces at points (C, 3)."""
    omega = jax.vmap(jax.vmap(lambda p, t: solid_angle((p[0], p[1], p[2]), t),
                              (None, 0)), (0, None))(points, soa)
    return jnp.sum(jnp.where(face_mask, omega, 0.0), axis=1) / (4.0 * jnp.pi)


def _chunk(obj, cols, grid, points, tol, tie):
    """Closest features, sign and ambiguity flags for one chunk of points (C, 3)."""
    nf = obj.face_mask.shape[0]
    all_ids = jnp.arange(nf, dtype=jnp.int32)

    def brute(p):
        return _nearest(p, cols, obj.face_mask, all_ids, cols, tie)

    if grid is None:
        near = brute(points)
    else:
        cells, ok = culling.lookup(grid, points)

        def culled(p):
            ids = grid.cell_faces[cells]                       # (C, K), -1 = empty slot
            safe = jnp.maximum(ids, 0)
            sub = {k: v[safe] for k, v in cols.items()}
            return _nearest(p, sub, (ids >= 0) & obj.face_mask[safe], safe, cols, tie)

        # One conditional per chunk: points are sorted so that points without a complete list
        # (outside the grid, or in a cell whose list overflowed) share as few chunks as possible.
        near = lax.cond(jnp.all(ok), culled, brute, points)

    d = jnp.sqrt(near["d2"])
    dot = jnp.sum(near["psi"] * near["u"], axis=-1)

    def closed(p):
        ambiguous = (jnp.abs(dot) <= tol) | (near["d_alt"] - d <= tol)
        return jnp.where(dot > 0, 1.0, -1.0).astype(d.dtype), ambiguous

    def open_(p):
        w = _winding_number(p, cols, obj.face_mask)
        # Float sum of F solid angles, each with a few eps of error.
        w_tol = jnp.minimum(0.25, TOL_FACTOR * jnp.finfo(d.dtype).eps * nf)
        ambiguous = (d <= tol) | (jnp.abs(w - 0.5) <= w_tol)
        return jnp.where(w > 0.5, -1.0, 1.0).astype(d.dtype), ambiguous

    sign, ambiguous = closed(points) if obj.watertight else open_(points)  # static flag
    return dict(d=sign * d, sign=sign, u=near["u"], psi=near["psi"], face=near["face"],
                feature=near["feature"], ambiguous=ambiguous)


def _tolerance(obj, points):
    """Absolute floating-point error bound (N,) for distances/sign tests at the points."""
    eps = jnp.finfo(points.dtype).eps
    scale = jnp.max(jnp.abs(points), axis=-1) + obj.coord_bound.astype(points.dtype)
    return TOL_FACTOR * eps * scale


def _compute(obj, grid, points, n_valid, chunk_size, exact):
    """ClosestFeatures for points (N, 3), N a multiple of chunk_size; rows >= n_valid are
    padding (never sent to the exact path)."""
    dtype = points.dtype
    cols = face_columns(obj, dtype)
    n = points.shape[0]
    tol = _tolerance(obj, points)
    if grid is not None:
        # Points without a complete candidate list go last (see _chunk).
        _, ok = culling.lookup(grid, points)
        order = jnp.argsort(~ok, stable=True)
        pts, tl = points[order], tol[order]
    else:
        pts, tl = points, tol
    res = lax.map(lambda a: _chunk(obj, cols, grid, a[0], a[1], exact),
                  (pts.reshape(-1, chunk_size, 3), tl.reshape(-1, chunk_size)))
    res = jax.tree.map(lambda x: x.reshape((n,) + x.shape[2:]), res)
    if grid is not None:
        res = jax.tree.map(lambda x: x[jnp.argsort(order)], res)

    u2 = jnp.sum(res["u"] ** 2, axis=-1)
    # Double where: the normal is u / |u| off the surface, the pseudonormal exactly on it.
    safe_len = jnp.sqrt(jnp.where(u2 > 0, u2, 1.0))
    normal = jnp.where((u2 > 0)[:, None], res["sign"][:, None] * res["u"] / safe_len[:, None],
                       res["psi"])
    dist, face, feature = res["d"], res["face"], res["feature"]
    amb = res["ambiguous"] & (jnp.arange(n) < n_valid)
    if exact:
        dist, normal, face, feature = _exact_fixup(obj, cols, points, amb, dist, normal, face,
                                                   feature, tol)
    return ClosestFeatures(dist, normal, face, feature, amb)


def _exact_fixup(obj, cols, points, amb, dist, normal, face, feature, tol):
    """Replaces the ambiguous points' results by the host's exact recomputation."""
    dtype = points.dtype
    n = points.shape[0]
    shapes = (jax.ShapeDtypeStruct((n,), dtype), jax.ShapeDtypeStruct((n, 3), dtype),
              jax.ShapeDtypeStruct((n,), jnp.int32), jax.ShapeDtypeStruct((n,), jnp.int32))

    def host(_):
        return jax.pure_callback(
            functools.partial(exact_mod.resolve, watertight=obj.watertight), shapes, points, amb,
            jnp.abs(dist) + 4 * tol, obj.corners.astype(dtype), obj.face_mask, vmap_method="sequential")

    def skip(_):
        return tuple(jnp.zeros(s.shape, s.dtype) for s in shapes)

    d_x, n_x, f_x, feat_x = lax.cond(jnp.any(amb), host, skip, None)
    row = face_rows(cols, f_x)
    psi_x = jax.vmap(feature_normal)(row, feat_x)
    n_len2 = jnp.sum(n_x ** 2, axis=-1)
    n_x = jnp.where((n_len2 > 0)[:, None], n_x, psi_x)  # on the surface: psi
    return (jnp.where(amb, d_x, dist), jnp.where(amb[:, None], n_x, normal),
            jnp.where(amb, f_x, face), jnp.where(amb, feat_x, feature))


def _normal_jacobian(obj, res, tol):
    """dn/dp (N, 3, 3) from the closest feature (paper section IV.C, outward convention)."""
    d, n = res.distance, res.normal
    dtype = d.dtype
    eye = jnp.eye(3, dtype=dtype)
    k = jnp.clip(res.feature - EDGE0, 0, 2)
    edges = face_rows(face_columns(obj, dtype), res.face, ("edges",))["edges"]  # (N, 3, 3)
    e = edges[jnp.arange(edges.shape[0]), k]
    e2 = jnp.sum(e * e, axis=-1)
    # Double where for the unit edge direction (zero-length edges do not survive the loader).
    e_hat = e / jnp.sqrt(jnp.where(e2 > 0, e2, 1.0))[:, None]
    nn = n[:, :, None] * n[:, None, :]
    proj = eye - nn - jnp.where((res.feature < VERTEX0)[:, None, None],
                                e_hat[:, :, None] * e_hat[:, None, :], 0.0)
    curved = (res.feature != FACE) & (jnp.abs(d) > tol)
    # Below the error bound the point is on the surface: no curvature term (finite gradients).
    inv_d = jnp.where(curved, 1.0 / jnp.where(curved, d, 1.0), 0.0)
    return proj * inv_d[:, None, None]


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def _signed_distance_flat(obj, grid, points, n_valid, chunk_size, exact):
    res = _compute(obj, grid, points, n_valid, chunk_size, exact)
    return res.distance, res.normal


@_signed_distance_flat.defjvp
def _signed_distance_flat_jvp(chunk_size, exact, primals, tangents):
    obj, grid, points, n_valid = primals
    dp = tangents[2]
    res = _compute(obj, grid, points, n_valid, chunk_size, exact)
    jac = _normal_jacobian(obj, res, _tolerance(obj, points))
    dd = jnp.sum(res.normal * dp, axis=-1)
    dn = jnp.einsum("nij,nj->ni", jac, dp)
    return (res.distance, res.normal), (dd, dn)


@functools.partial(jax.jit, static_argnames=("chunk_size", "exact"))
def _signed_distance_padded(obj, grid, points, n_valid, chunk_size, exact):
    obj, grid = lax.stop_gradient((obj, grid))  # the object is a constant (see module doc)
    return _signed_distance_flat(obj, grid, points, n_valid, chunk_size, exact)


@functools.partial(jax.jit, static_argnames=("chunk_size", "exact"))
def _closest_features_padded(obj, grid, points, n_valid, chunk_size, exact):
    return _compute(obj, grid, points, n_valid, chunk_size, exact)


def _prepare(points, chunk_size):
    """Flattens points (..., 3) and pads them to a multiple of chunk_size by repeating the first
    point, so that every batch size up to the same multiple shares one compiled function."""
    points = jnp.asarray(points)
    if not jnp.issubdtype(points.dtype, jnp.floating):
        points = points.astype(jnp.result_type(float))
    if points.shape[-1:] != (3,):
        raise ValueError(f"points must have shape (..., 3), got {points.shape}")
    batch = points.shape[:-1]
    flat = points.reshape(-1, 3)
    n = flat.shape[0]
    if n == 0:
        raise ValueError("points is empty")
    n_pad = -(-n // chunk_size) * chunk_size
    return jnp.pad(flat, ((0, n_pad - n), (0, 0)), mode="edge"), batch, n


def signed_distance(obj: Object, points, *, grid: culling.Grid | None = None,
                    chunk_size: int = 256, exact: bool = True):
    """Signed distance and outward normal of points in the object's frame (jitted inside).

    Args:
      obj: the object (from :func:`jaxgrasp.mesh.objects.load_object`).
      points: (..., 3) points in the object's (input) frame; their dtype sets the precision.
      grid: optional culling grid (:func:`jaxgrasp.mesh.culling.build_grid`); without it every point
        is tested against every face.
      chunk_size: points per chunk; memory is O(chunk_size x faces) (x list length with a
        grid), and the number of points is padded to a multiple of it.
      exact: recompute the points floating point cannot decide with exact rational arithmetic
        on the host (default on).

    Returns:
      d: (...) signed distance, > 0 outside.
      n: (..., 3) unit outward normal; custom derivatives dd/dp = n and dn/dp by feature.
    """
    flat, batch, n = _prepare(points, chunk_size)
    d, nrm = _signed_distance_padded(obj, grid, flat, n, chunk_size, exact)
    return d[:n].reshape(batch), nrm[:n].reshape(batch + (3,))


def closest_features(obj: Object, points, *, grid: culling.Grid | None = None,
                     chunk_size: int = 256, exact: bool = True) -> ClosestFeatures:
    """Like :func:`signed_distance`, plus the closest face/feature and the ambiguity flags.

    No custom derivatives: differentiate :func:`signed_distance`.
    """
    flat, batch, n = _prepare(points, chunk_size)
    res = _closest_features_padded(obj, grid, flat, n, chunk_size, exact)
    return jax.tree.map(lambda x: x[:n].reshape(batch + x.shape[1:]), res)


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _winding_padded(obj, points, chunk_size):
    cols = face_columns(obj, points.dtype)
    return lax.map(lambda p: _winding_number(p, cols, obj.face_mask),
                   points.reshape(-1, chunk_size, 3)).reshape(-1)


def winding_number(obj: Object, points, *, chunk_size: int = 256):
    """Generalized winding number (...) of the object's surface at points (..., 3)."""
    flat, batch, n = _prepare(points, chunk_size)
    return _winding_padded(obj, flat, chunk_size)[:n].reshape(batch)


def resolve_on_host(obj: Object, points, res: ClosestFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances and normals from a floating-point query (``exact=False``), host side.

    The same recomputation as ``exact=True``, done after the device call instead of inside it
    through a callback, so that the device call stays free of host callbacks (an executable with
    one cannot be kept in the persistent compilation cache).

    Args:
      obj: the object the query ran on.
      points: (N, 3) the queried points (object frame, the query's dtype).
      res: the query's :class:`ClosestFeatures` for ``points`` (from :func:`closest_features`
        with ``exact=False``).

    Returns:
      d (N,) float64 signed distances and n (N, 3) float64 unit outward normals.
    """
    d, n = np.array(res.distance, np.float64), np.array(res.normal, np.float64)
    amb = np.asarray(res.ambiguous)
    if not amb.any():
        return d, n
    p = np.asarray(points)
    idx = np.nonzero(amb)[0]
    # The error bound of _tolerance, on the host: d_upper = |d| + 4 tol as in _exact_fixup.
    eps = np.finfo(p.dtype).eps
    tol = TOL_FACTOR * eps * (np.abs(p[idx]).max(axis=-1) + float(obj.coord_bound))
    d_x, n_x, f_x, feat_x = exact_mod.resolve(p[idx], np.ones(len(idx), bool), np.abs(d[idx]) + 4 * tol,
                                              np.asarray(obj.corners, p.dtype), np.asarray(obj.face_mask),
                                              watertight=obj.watertight)
    n_x = np.asarray(n_x, np.float64)
    on_surface = np.sum(n_x ** 2, axis=-1) == 0  # exactly on the surface: the feature's pseudonormal
    if on_surface.any():
        rows = face_rows(face_columns(obj, p.dtype), jnp.asarray(f_x[on_surface]))
        n_x[on_surface] = np.asarray(jax.vmap(feature_normal)(rows, jnp.asarray(feat_x[on_surface])), np.float64)
    d[idx], n[idx] = np.asarray(d_x, np.float64), n_x
    return d, n
