"""Exact recomputation of the points floating point cannot decide (host side, NumPy + fractions).

Called from :func:`jaxgrasp.mesh.geometry.signed_distance` through ``jax.pure_callback`` for the
points flagged ambiguous (see the geometry module). Inputs are floats, i.e. exact dyadic
rationals; every decision below is made exactly:

* Closest triangle and feature: a float64 axis-aligned-box lower bound keeps only triangles that
  can be within the device's distance upper bound; on those, Ericson's closest-point algorithm
  runs in ``fractions.Fraction`` and the exact minimum squared distance wins. The feature (face,
  edge, vertex) follows from which exact barycentric coordinates are zero.
* Sign, watertight mesh: parity of exact ray/triangle crossings. Orientation determinants are
  first evaluated in float64 with a forward error bound (a Shewchuk-style filter) and only the
  undecided ones in rationals. A ray through an edge or vertex (an exact zero) is retried with the
  next of a fixed list of directions.
* Sign, open mesh: generalized winding number in float64, with the orientation of every triangle
  that float64 cannot decide taken from its exact determinant (the solid angle jumps by 4 pi
  across a triangle's plane, so only this sign is discontinuous; the rest is smooth, and the
  float64 sum is far from 1/2 except near holes).
* Outputs: d = sign * sqrt(d2) with d2 exact (rounded once), n = sign * (p - q) / |p - q| from the
  exact p - q, and n = 0 on the surface (the caller substitutes the feature's pseudonormal).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

_EPS = np.finfo(np.float64).eps
# Float64 orientation filter: |fl(det) - det| <= 16 eps * permanent covers the rounding of the
# coordinate differences (2 eps * permanent) and of the 3x3 determinant (< 8 eps * permanent).
_FILTER = 16 * _EPS
# Ray directions: fixed generic floats (exact rationals); a retry uses the next one.
_RAYS = np.random.default_rng(20200712).normal(size=(8, 3))
# Points per block for the (points x faces) float64 filters.
_BLOCK = 32


def resolve(points, ambiguous, d_upper, corners, face_mask, watertight):
    """Exact distance, normal and closest feature for the flagged points.

    Args:
      points: (N, 3) float points.
      ambiguous: (N,) bool, the points to recompute; the other rows are returned as zeros.
      d_upper: (N,) upper bound of each point's unsigned distance (float result + error bound).
      corners: (F, 3, 3) triangle corners (same float dtype as the points).
      face_mask: (F,) bool, real faces.
      watertight: () bool, sign by ray parity (True) or winding number (False).

    Returns:
      d (N,), n (N, 3) in the points' dtype, face (N,) int32, feature (N,) int32.
    """
    points = np.asarray(points)
    dtype = points.dtype
    n_pts = len(points)
    d_out = np.zeros(n_pts, dtype)
    n_out = np.zeros((n_pts, 3), dtype)
    f_out = np.zeros(n_pts, np.int32)
    feat_out = np.zeros(n_pts, np.int32)
    idx = np.nonzero(np.asarray(ambiguous))[0]
    if len(idx) == 0:
        return d_out, n_out, f_out, feat_out
    ids = np.nonzero(np.asarray(face_mask))[0]
    tri = np.asarray(corners, np.float64)[ids]
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    slabs = _Slabs(lo, hi)
    lo_t, hi_t = lo.T.copy(), hi.T.copy()
    d_upper = np.asarray(d_upper, np.float64)
    for start in range(0, len(idx), _BLOCK):
        block = idx[start:start + _BLOCK]
        p = np.asarray(points[block], np.float64)
        box_d2 = 0.0                                            # (B, F) squared lower bound
        for a in range(3):
            gap = np.maximum(np.maximum(lo_t[a] - p[:, a, None], p[:, a, None] - hi_t[a]), 0.0)
            box_d2 = box_d2 + gap * gap
        for row, i in enumerate(block):
            bound = d_upper[i] * (1 + 1e-9) + 1e-300
            cand = np.nonzero(box_d2[row] <= bound * bound)[0]
            if len(cand) == 0:  # cannot happen for a valid bound; stay correct regardless
                cand = np.arange(len(tri))
            d2, u, j, feature = _closest_exact(p[row], tri[cand])
            if d2 == 0:
                sign = 1.0
            elif bool(watertight):
                sign = -1.0 if _inside_by_parity(p[row], tri, slabs) else 1.0
            else:
                sign = -1.0 if _winding_exact_sign(p[row], tri) > 0.5 else 1.0
            d_out[i] = sign * np.sqrt(float(d2))
            n_out[i] = sign * _unit_fraction(u)
            f_out[i] = ids[cand[j]]
            feat_out[i] = feature
    return d_out, n_out, f_out, feat_out


def _frac3(x):
    return tuple(Fraction(float(c)) for c in x)


def _sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _unit_fraction(u):
    """Float64 unit vector of an exact rational vector (0 for the zero vector)."""
    m = max(abs(c) for c in u)
    if m == 0:
        return np.zeros(3)
    v = np.array([float(c / m) for c in u])
    return v / np.linalg.norm(v)


def closest_point_exact(p, a, b, c):
    """Ericson's closest point on triangle (a, b, c) to p, in exact rationals.

    Args:
      p, a, b, c: 3-tuples of Fraction.

    Returns:
      (q, barycentric) with q a 3-tuple of Fraction and barycentric a 3-tuple (sums to 1).
    """
    ab, ac, ap = _sub(b, a), _sub(c, a), _sub(p, a)
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    if d1 <= 0 and d2 <= 0:
        return a, (1, 0, 0)
    bp = _sub(p, b)
    d3, d4 = _dot(ab, bp), _dot(ac, bp)
    if d3 >= 0 and d4 <= d3:
        return b, (0, 1, 0)
    vc = d1 * d4 - d3 * d2
    if vc <= 0 and d1 >= 0 and d3 <= 0:
        v = d1 / (d1 - d3)
        return tuple(a[i] + v * ab[i] for i in range(3)), (1 - v, v, 0)
    cp = _sub(p, c)
    d5, d6 = _dot(ab, cp), _dot(ac, cp)
    if d6 >= 0 and d5 <= d6:
        return c, (0, 0, 1)
    vb = d5 * d2 - d1 * d6
    if vb <= 0 and d2 >= 0 and d6 <= 0:
        w = d2 / (d2 - d6)
        return tuple(a[i] + w * ac[i] for i in range(3)), (1 - w, 0, w)
    va = d3 * d6 - d5 * d4
    if va <= 0 and d4 - d3 >= 0 and d5 - d6 >= 0:
        w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        return tuple(b[i] + w * (c[i] - b[i]) for i in range(3)), (0, 1 - w, w)
    denom = va + vb + vc
    v, w = vb / denom, vc / denom
    return tuple(a[i] + ab[i] * v + ac[i] * w for i in range(3)), (1 - v - w, v, w)


def feature_of(bary) -> int:
    """Feature code (0 face, 1 + k edge k, 4 + k vertex k) from exact barycentrics."""
    zero = [b == 0 for b in bary]
    if sum(zero) >= 2:
        return 4 + zero.index(False)
    if sum(zero) == 1:
        return 1 + (zero.index(True) + 1) % 3  # edge k joins corners k and k + 1
    return 0


def _closest_exact(p, tri):
    """Exact nearest of the candidate triangles: (d2, p - q, candidate index, feature)."""
    pf = _frac3(p)
    best = None
    for j, t in enumerate(tri):
        q, bary = closest_point_exact(pf, _frac3(t[0]), _frac3(t[1]), _frac3(t[2]))
        u = _sub(pf, q)
        d2 = _dot(u, u)
        if best is None or d2 < best[0]:
            best = (d2, u, j, feature_of(bary))
    return best


def _perm(x, y):
    """Permanent-style bound of x . (y cross z) terms: |y_j z_k| + |y_k z_j| per row."""
    ax, ay = np.abs(x), np.abs(y)
    return np.stack([ax[..., 1] * ay[..., 2] + ax[..., 2] * ay[..., 1],
                     ax[..., 2] * ay[..., 0] + ax[..., 0] * ay[..., 2],
                     ax[..., 0] * ay[..., 1] + ax[..., 1] * ay[..., 0]], axis=-1)


def _filtered_sign(first, y, z):
    """Float64 sign of det[first, y, z] per row, 0 where the error bound cannot decide."""
    value = np.sum(first * np.cross(y, z), axis=-1)
    bound = _FILTER * np.sum(np.abs(first) * _perm(y, z), axis=-1)
    return np.where(np.abs(value) > bound, np.sign(value), 0.0), value


def _exact_det(x, y, z):
    return _dot(x, _cross(y, z))


def _sgn(x):
    return (x > 0) - (x < 0)


class _Slabs:
    """Conservative ray/box slab test against all triangle boxes, per ray direction.

    Boxes are grown by 1e-9 of the coordinate scale, far above the rounding of the scaled
    entry/exit parameters, so no triangle the ray crosses is skipped.
    """

    def __init__(self, lo, hi):
        grow = 1e-9 * max(np.abs(lo).max(), np.abs(hi).max())
        self.lo, self.hi, self.grow = lo - grow, hi + grow, grow
        self.cache = {}

    def candidates(self, p, ray_index):
        """Indices of the triangles whose box the ray from p along _RAYS[ray_index] may cross."""
        if ray_index not in self.cache:
            inv = 1.0 / _RAYS[ray_index]
            a, b = self.lo * inv, self.hi * inv
            # Column-wise (SoA): reductions over a length-3 axis are slow in NumPy.
            self.cache[ray_index] = (inv, np.minimum(a, b).T.copy(), np.maximum(a, b).T.copy())
        inv, t_in, t_out = self.cache[ray_index]
        # p may lie far out: its own rounding is covered by growing by |p| too.
        slack = 1e-9 * np.abs(p).max() * np.abs(inv).max()
        s = p * inv
        enter = np.maximum(np.maximum(t_in[0] - s[0], t_in[1] - s[1]), t_in[2] - s[2]) - slack
        leave = np.minimum(np.minimum(t_out[0] - s[0], t_out[1] - s[1]), t_out[2] - s[2]) + slack
        return np.nonzero((enter <= leave) & (leave >= 0))[0]


def _inside_by_parity(p, tri, slabs):
    """Exact inside test of a closed mesh: odd number of ray crossings."""
    pf = _frac3(p)
    for index, ray in enumerate(_RAYS):
        sub = slabs.candidates(p, index)
        rel = tri[sub] - p  # rounding here is covered by the filter bound
        a, b, c = rel[:, 0], rel[:, 1], rel[:, 2]
        r = np.broadcast_to(ray, a.shape)
        s1, _ = _filtered_sign(r, a, b)
        s2, _ = _filtered_sign(r, b, c)
        s3, _ = _filtered_sign(r, c, a)
        st, _ = _filtered_sign(a, b, c)
        s = np.stack([s1, s2, s3], axis=1)
        opposite = (s > 0).any(axis=1) & (s < 0).any(axis=1)
        same = (s != 0).all(axis=1) & ((s > 0).all(axis=1) | (s < 0).all(axis=1))
        hit = same & (st == s1)
        miss = opposite | (same & (st != 0) & (st != s1))
        hits, degenerate = int(hit.sum()), False
        rf = _frac3(ray)
        for j in sub[~(hit | miss)]:  # undecided in float64: exact rationals
            A, B, C = (_sub(_frac3(tri[j, k]), pf) for k in range(3))
            se = [_sgn(_exact_det(rf, A, B)), _sgn(_exact_det(rf, B, C)),
                  _sgn(_exact_det(rf, C, A))]
            te = _sgn(_exact_det(A, B, C))
            if 1 in se and -1 in se:
                continue                                   # the line misses the triangle
            sigma = 1 if 1 in se else (-1 if -1 in se else 0)
            if sigma == 0:                                 # ray parallel to the plane
                if te == 0:
                    degenerate = True
                continue
            if te == -sigma:
                continue                                   # crossing behind the point
            if te == 0 or 0 in se:
                degenerate = True                          # through an edge/vertex/the point
                break
            hits += 1
        if not degenerate:
            return hits % 2 == 1
    # Every direction grazed an edge (not seen in practice): fall back to the winding number.
    return _winding_exact_sign(p, tri) > 0.5


def _winding_exact_sign(p, tri):
    """Generalized winding number with exact per-triangle orientation where float64 is unsure."""
    rel = tri - p
    a, b, c = rel[:, 0], rel[:, 1], rel[:, 2]
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    st, det = _filtered_sign(a, b, c)
    den = la * lb * lc + np.sum(a * b, -1) * lc + np.sum(b * c, -1) * la + np.sum(c * a, -1) * lb
    pf = _frac3(p)
    for j in np.nonzero(st == 0)[0]:
        A, B, C = (_sub(_frac3(tri[j, k]), pf) for k in range(3))
        st[j] = _sgn(_exact_det(A, B, C))
    # Exactly coplanar (and not on the triangle, d > 0): solid angle 0.
    omega = np.where(st == 0, 0.0,
                     2 * np.arctan2(st * np.maximum(np.abs(det), np.finfo(float).tiny), den))
    return omega.sum() / (4 * np.pi)
