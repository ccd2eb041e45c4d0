"""Grasp quality on contact arrays: contact weights, Q1 upper bound, SOS lower bound, exact Q1.

Conventions (every function in this module and in :mod:`jaxgrasp.quality.sdp` follows them):

* Contact ``i``: position ``p_i`` (metres, object frame, origin at the object's centre of mass),
  object outward normal ``n_i``, gripper outward normal ``n_g,i``, signed distance ``d_i`` of the
  gripper point to the object (metres, negative inside). Normals are normalized inside (a zero
  normal gives an empty cone).
* Forces push into the object: the cone axis is the inward normal ``u_i = -n_i``; friction cone
  ``|f_t| <= mu f.u_i``, ``mu = 0.7``. (Q1 does not depend on this sign: flipping every cone maps
  the wrench set to its mirror image ``-W``, which has the same inscribed ball.)
* Scaled wrench ``w = (f, lambda p x f)`` with one explicit ``torque_scale`` lambda [1/m], about
  1 / the object's characteristic size (:func:`characteristic_length`), and Euclidean norms in
  every bound, so that upper bound, lower bound and exact Q1 measure the same ball. The paper's
  metric ``||sqrt(M) w||`` with ``M = diag(1,1,1,m,m,m)`` is exactly this with
  ``lambda = sqrt(m)``: ``m = 0.001`` means ``lambda = 0.0316``, a characteristic length of
  31.6 length units (in metres, torques would be all but ignored for hand-sized objects). The
  paper's eq. 3 uses ``s^T M w`` (a factor ``m``, not ``sqrt(m)``, on torques), which does not
  match its eq. 1 ball; we use ``lambda`` everywhere.
* Generalized contact weight (eq. 2): ``c_i = exp(-alpha |d_i| - beta (1 + n_i . n_g,i))``. The
  force budget ``sum_i f_i.u_i / c_i <= 1`` of eq. 2 makes the wrench set
  ``W = conv(union_i W_i)`` with ``W_i = {w(f): f.u_i <= c_i, f in cone_i}``: contact i can carry
  a normal force up to c_i. ``c_i = 0`` removes the contact. ``beta = 8`` is dimensionless: the
  weight is 1 for opposed normals, ``e^-8 = 3e-4`` at 90 degrees. ``alpha`` has units 1/length:
  ``alpha = 6`` per metre would keep 55% of the weight at a 10 cm gap, which rewards "contacts"
  far from the object; we read the paper's value per unit of object size, ``alpha = 6 / L``,
  default 60 / m for ``L = 0.1 m`` (weight 0.55 at 1 cm, 0.05 at 5 cm). ``QualityConfig.for_size``
  rescales ``alpha`` and ``lambda`` together.
* Friction cones are linearized with ``T`` edges ``f_ik = c_i (u_i + mu t_k)``,
  ``t_k = cos(2 pi k / T) t1 + sin(2 pi k / T) t2`` (inscribed pyramid, normal force c_i), with the
  tangent frame of Duff et al. 2017 (smooth except where ``u_z`` changes sign). Exact Q1 and the
  SOS lower bound use the same edges (:func:`edge_wrenches`); the upper bound uses the true cone.
  Hence ``q1_lower(T) <= q1_exact(T) <= Q1(true cone) <= q1_upper``.

Metrics:

* :func:`q1_upper` (eq. 3): ``min_s max_i c_i max(0, g_perp + mu |g_par|)`` over D fixed unit
  directions s, with ``g = s_f + lambda s_tau x p_i`` the direction in force space: the exact
  support of the cone slice, no case split. A loss surrogate, not a metric: with D = 64 it sits
  well above Q1 (about 2x at the median), and its gradient reaches a single contact
  (measurements: docs/decisions.md, "Q1 bounds and the loss").
* :func:`q1_lower` (eq. 4): SOS/SDP certificate (:mod:`jaxgrasp.quality.sdp`); can be negative (no force
  closure certified), smooth, close below the exact Q1 of the same edges; its gradient reaches
  the contacts active in the certificate, and all of them with a larger barrier
  ``SDPOptions(mu_final=1e-5)`` (a smoothing temperature). (Tightness and cost:
  ``benchmarks/quality.py``; docs/decisions.md, "Q1 bounds and the loss".)
* :func:`q1_exact` (eq. 1): host-side, scipy ConvexHull of the edge wrenches, 0 unless the origin
  is strictly inside. For evaluation only.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import ConvexHull, QhullError

from jaxgrasp.core.compile_cache import cache_root
from jaxgrasp.quality.sdp import SDPOptions, SOSSolution, sos_lower_bound, sos_solution


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """Defaults for the quality terms (paper Table I, lengths in metres for L = 0.1 m objects).

    Attributes:
        alpha: distance decay of the contact weight [1/m] (= 6 / L).
        beta: normal-alignment decay (dimensionless).
        mu: friction coefficient.
        torque_scale: lambda [1/m] (= 1 / L).
        num_directions: D for the upper bound.
        num_tangents: T, cone edges for the lower bound (and for exact Q1 when comparing them).
        k_contacts: K highest-weight contacts kept in the SDP (None: all).
    """

    alpha: float = 60.0
    beta: float = 8.0
    mu: float = 0.7
    torque_scale: float = 10.0
    num_directions: int = 64
    num_tangents: int = 4
    k_contacts: int | None = 16

    @classmethod
    def for_size(cls, length: float, **kw) -> "QualityConfig":
        """Config for an object of characteristic length ``length`` [m]: alpha = 6/L, lambda = 1/L."""
        if not length > 0:
            raise ValueError(f"characteristic length must be > 0 metres, got {length}")
        return cls(alpha=6.0 / length, torque_scale=1.0 / length, **kw)


def characteristic_length(points: np.ndarray) -> float:
    """Host-side: RMS distance of object points (vertices or surface samples) to the origin (COM).

    Args:
        points: (P, 3) in the object frame, metres.

    Returns:
        L [m]; use ``torque_scale = 1 / L``.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise ValueError(f"points must be a non-empty (P, 3) array, got shape {pts.shape}")
    L = float(np.sqrt(np.mean(np.sum(pts**2, axis=1))))
    if not L > 0:
        raise ValueError("all points are at the origin: cannot define a characteristic length")
    return L


def _safe_norm(x: jax.Array, axis: int = -1, keepdims: bool = False) -> jax.Array:
    """Euclidean norm with a zero (not NaN) gradient at 0 (double-where trick)."""
    sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def _unit(x, xp=jnp):
    """x / |x| along the last axis; 0 where x = 0 (double-where keeps the gradient finite)."""
    sq = xp.sum(x * x, axis=-1, keepdims=True)
    pos = sq > 0
    return xp.where(pos, x / xp.sqrt(xp.where(pos, sq, 1.0)), 0.0)


def contact_weights(d: jax.Array, n_obj: jax.Array, n_grip: jax.Array, alpha: float, beta: float) -> jax.Array:
    """Generalized contact weight of eq. 2, ``c = exp(-alpha |d| - beta (1 + n_obj . n_grip))``.

    Args:
        d: (..., N) signed distances [m].
        n_obj: (..., N, 3) object outward normals (unit).
        n_grip: (..., N, 3) gripper outward normals (unit).
        alpha: [1/m]; beta: dimensionless.

    Returns:
        (..., N) weights in (0, 1]; 1 for a touching contact with opposed normals.
    """
    # jnp.abs: finite subgradient at d = 0 (no norm involved, no guard needed)
    cos = jnp.sum(n_obj * n_grip, axis=-1)
    return jnp.exp(-alpha * jnp.abs(d) - beta * (1.0 + cos))


def tangent_frame(u, xp=jnp):
    """Orthonormal tangents (t1, t2) of unit vectors u (..., 3) (Duff et al. 2017, branch-light).

    ``1 / (s + u_z)`` has ``|s + u_z| >= 1``: no division guard needed. A zero u gives (e_x, e_y).
    ``xp`` is ``jax.numpy`` (traced) or ``numpy`` (host, exact Q1): one formula for both.
    """
    s = xp.where(u[..., 2] >= 0, 1.0, -1.0).astype(u.dtype)
    a = -1.0 / (s + u[..., 2])
    b = u[..., 0] * u[..., 1] * a
    t1 = xp.stack([1.0 + s * u[..., 0] ** 2 * a, s * b, -s * u[..., 0]], axis=-1)
    t2 = xp.stack([b, s + u[..., 1] ** 2 * a, -u[..., 1]], axis=-1)
    return t1, t2


def edge_wrenches(p, n, c, *, mu: float, torque_scale: float, num_edges: int, xp=jnp):
    """Wrenches of the T cone edges of each contact, ``(f_ik, lambda p_i x f_ik)``.

    Args:
        p: (N, 3) positions [m]; n: (N, 3) object outward normals; c: (N,) weights.
        mu: friction coefficient; torque_scale: lambda [1/m]; num_edges: T.
        xp: array module, ``jax.numpy`` (default) or ``numpy`` (host float64, for q1_exact).

    Returns:
        (N, T, 6) scaled wrenches, ``f_ik = c_i (u_i + mu t_k)``, ``u_i = -n_i / |n_i|``.
    """
    u = -_unit(n, xp)
    t1, t2 = tangent_frame(u, xp)
    ang = 2.0 * np.pi * np.arange(num_edges) / num_edges
    cs = xp.asarray(np.cos(ang), dtype=p.dtype)[None, :, None]
    sn = xp.asarray(np.sin(ang), dtype=p.dtype)[None, :, None]
    dirs = u[:, None, :] + mu * (cs * t1[:, None, :] + sn * t2[:, None, :])
    f = c[:, None, None] * dirs
    tau = torque_scale * xp.cross(xp.broadcast_to(p[:, None, :], f.shape), f)
    return xp.concatenate([f, tau], axis=-1)


@functools.lru_cache(maxsize=None)
def _directions_np(num: int, seed: int) -> np.ndarray:
    if num < 2 or num % 2:
        raise ValueError(f"num_directions must be an even number >= 2 (antipodal pairs), got {num}")
    # 2,000 repulsion iterations take ~0.4 s: kept in the user's cache for the next process.
    path = cache_root() / "wrench_directions" / f"{num}_{seed}.npy"
    try:
        return np.load(path)
    except (OSError, ValueError):
        pass
    x = _repulsion(num, seed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, x)
        os.replace(tmp, path)  # atomic: another process never reads half a file
    except OSError:
        pass
    return x


def _repulsion(num: int, seed: int) -> np.ndarray:
    """The directions of :func:`wrench_directions`, computed."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num // 2, 6))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for it in range(2000):  # projected gradient descent on the Riesz s = 6 energy of {x, -x}
        allp = np.concatenate([x, -x])
        diff = x[:, None, :] - allp[None, :, :]
        r2 = np.sum(diff**2, axis=-1)
        r2[np.arange(len(x)), np.arange(len(x))] = np.inf
        force = np.sum(diff / r2[..., None] ** 4, axis=1)
        force -= np.sum(force * x, axis=1, keepdims=True) * x
        step = 0.05 * np.min(np.sqrt(r2)) / (np.max(np.linalg.norm(force, axis=1)) + 1e-300)
        x = x + step * force * (1.0 - it / 2000)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.concatenate([x, -x])


def wrench_directions(num: int = 64, seed: int = 0) -> np.ndarray:
    """D well-spread unit directions in R^6 (host, deterministic, cached), as antipodal pairs.

    Fixed-seed start, then Riesz-energy repulsion on the sphere (the set is closed under
    negation, matching the symmetric ball of Q1).

    Returns:
        (D, 6) float64 NumPy array; convert once with ``jnp.asarray``.
    """
    return _directions_np(int(num), int(seed)).copy()


def _cone_supports(s: jax.Array, p: jax.Array, u: jax.Array, c: jax.Array, mu: float,
                   torque_scale: float) -> jax.Array:
    """Support of every contact's weighted cone slice along wrench directions ``s (D, 6)``:
    ``(D, N)`` ``c_i max(0, g_perp + mu |g_par|)``, ``g = s_f + lambda s_tau x p_i`` (u: inward normals)."""
    g = s[:, None, :3] + torque_scale * jnp.cross(s[:, None, 3:], p[None, :, :])  # (D, N, 3)
    g_perp = jnp.sum(g * u[None], axis=-1)
    g_par = _safe_norm(g - g_perp[..., None] * u[None], axis=-1)
    return c[None, :] * jnp.maximum(g_perp + mu * g_par, 0.0)


def q1_upper(p: jax.Array, n: jax.Array, c: jax.Array, *, mu: float, torque_scale: float,
             directions: jax.Array) -> jax.Array:
    """Upper bound of Q1 (eq. 3) for one grasp, true (circular) friction cones.

    Args:
        p: (N, 3) contact positions [m]; n: (N, 3) object outward normals; c: (N,) weights.
        mu: friction coefficient; torque_scale: lambda [1/m].
        directions: (D, 6) unit directions in scaled wrench space (:func:`wrench_directions`).

    Returns:
        Scalar ``min_s max_i c_i max(0, g_perp + mu |g_par|)``, ``g = s_f + lambda s_tau x p_i``.
    """
    s = jnp.asarray(directions, p.dtype)
    u = -_unit(n)
    return jnp.min(jnp.max(_cone_supports(s, p, u, c, mu, torque_scale), axis=1))


def _select_contacts(p, n, c, k_contacts):
    """The K highest-weight contacts (fixed shape); all of them when K is None or >= N."""
    if k_contacts is None or k_contacts >= c.shape[0]:
        return p, n, c
    if k_contacts < 1:
        raise ValueError(f"k_contacts must be >= 1 or None, got {k_contacts}")
    _, idx = jax.lax.top_k(jax.lax.stop_gradient(c), k_contacts)
    return p[idx], n[idx], c[idx]


def q1_lower(p: jax.Array, n: jax.Array, c: jax.Array, *, mu: float, torque_scale: float,
             num_tangents: int = 4, k_contacts: int | None = None,
             options: SDPOptions = SDPOptions()) -> jax.Array:
    """SOS lower bound of Q1 (eq. 4) for one grasp, differentiable w.r.t. p, n and c.

    Args:
        p: (N, 3) [m]; n: (N, 3) object outward normals; c: (N,) weights.
        mu: friction coefficient; torque_scale: lambda [1/m].
        num_tangents: T cone edges; k_contacts: keep the K highest-weight contacts (None: all).
            Dropping contacts shrinks W, so the value stays a lower bound of the full Q1.
        options: :class:`~jaxgrasp.quality.sdp.SDPOptions` (static).

    Returns:
        Scalar certified lower bound (negative: no force closure certified).
    """
    p, n, c = _select_contacts(p, n, c, k_contacts)
    V = edge_wrenches(p, n, c, mu=mu, torque_scale=torque_scale, num_edges=num_tangents)
    return sos_lower_bound(V.reshape(-1, 6), options)


def q1_lower_solution(p: jax.Array, n: jax.Array, c: jax.Array, *, mu: float, torque_scale: float,
                      num_tangents: int = 4, k_contacts: int | None = None,
                      options: SDPOptions = SDPOptions()) -> SOSSolution:
    """Primal-dual solution behind :func:`q1_lower` (diagnostics: moments, Gram blocks, gap)."""
    p, n, c = _select_contacts(p, n, c, k_contacts)
    V = edge_wrenches(p, n, c, mu=mu, torque_scale=torque_scale, num_edges=num_tangents)
    return sos_solution(V.reshape(-1, 6), options)


def _separated(pts: np.ndarray, scale: float) -> bool:
    """True when a hyperplane through the origin has every point strictly on one side, so the
    origin is outside the hull (Q1 = 0). One small LP, much cheaper than the 6-D hull
    (docs/decisions.md, "Force closure decided by a small LP"): minimize ``s`` over
    ``|d|_inf <= 1`` with ``v_i . d <= s``; the optimum is 0 when the origin is in the hull and
    negative when it is not. Only a clearly negative optimum counts (the hull decides near zero),
    and a failed solve falls back to the hull."""
    from scipy.optimize import linprog

    A = np.hstack([pts, -np.ones((len(pts), 1))])
    r = linprog(np.r_[np.zeros(6), 1.0], A_ub=A, b_ub=np.zeros(len(pts)), bounds=[(-1.0, 1.0)] * 6 + [(None, None)],
                method="highs")
    return bool(r.status == 0 and r.fun < -1e-7 * scale)


def hull_q1(points: np.ndarray, rel_tol: float = 1e-9) -> float:
    """Host-side: radius of the largest origin-centred ball in ``conv(points)`` (R^6), else 0.

    Args:
        points: (P, 6) wrenches.
        rel_tol: the origin counts as strictly inside when every facet is farther than
            ``rel_tol * max |point|``.

    Returns:
        Q1 >= 0; 0 when the origin is on or outside the hull, or the set is rank-deficient.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 6)
    scale = float(np.max(np.linalg.norm(pts, axis=1), initial=0.0))
    if not np.all(np.isfinite(pts)) or scale == 0.0 or len(pts) < 7:
        return 0.0
    if _separated(pts, scale):
        return 0.0
    try:
        hull = ConvexHull(pts)
    except (QhullError, ValueError):  # flat (rank-deficient) wrench set: no interior
        return 0.0
    dist = -hull.equations[:, -1]  # unit facet normals: n.x + offset <= 0 inside
    q = float(np.min(dist))
    return q if q > rel_tol * scale else 0.0


def q1_exact(p, n, c, *, mu: float, torque_scale: float, num_edges: int = 8) -> float:
    """Exact Q1 (eq. 1, Ferrari-Canny) of the T-edge linearized cones, host-side.

    Force budget ``sum_i f_i.u_i / c_i <= 1`` (eq. 2): W is the hull of the edge wrenches
    ``c_i (u_i + mu t_k, lambda p_i x (u_i + mu t_k))`` (and the origin).

    Args:
        p: (N, 3); n: (N, 3); c: (N,) (NumPy or JAX, one grasp).
        mu, torque_scale: as in :func:`q1_upper`; num_edges: T.

    Returns:
        Python float, 0 unless the origin is strictly inside (degenerate sets give 0).
    """
    p64, n64, c64 = (np.asarray(a, dtype=np.float64) for a in (p, n, c))
    if p64.ndim != 2 or p64.shape[1] != 3 or n64.shape != p64.shape or c64.shape != p64.shape[:1]:
        raise ValueError(f"expected p (N,3), n (N,3), c (N,), got {p64.shape}, {n64.shape}, {c64.shape}")
    V = edge_wrenches(p64, n64, c64, mu=mu, torque_scale=torque_scale, num_edges=num_edges, xp=np)
    return hull_q1(V)
