"""The highest exact Q1 any grasp of an object can have (an upper bound, contacts everywhere).

The planner's exact Q1 (:func:`jaxgrasp.planning.evaluation.evaluate`) is the inscribed ball of
``conv(W ∪ {0})``, ``W`` the cone-edge wrenches of the grasp's contacts (unit force budget each,
:func:`jaxgrasp.quality.q1.q1_exact`). A contact is a hand point within ``contact_tolerance`` of the
surface, with the object's normal at its closest surface point. Two facts bound every such grasp:

* For any unit direction ``s`` in scaled wrench space, ``Q1 <= h(s) = max(0, max_w s.w)``, the
  support of ``conv(W ∪ {0})``: the inscribed ball lies inside every supporting half-space.
* A contact's edge wrenches ``(f_k, lambda p x f_k)`` depend on its normal (edges ``f_k`` and
  their tangent frame, :func:`jaxgrasp.quality.q1.edge_wrenches`) and linearly on its position
  ``p``. For a fixed normal, ``max_k s.w_k`` is therefore convex in ``p``, and its maximum over a
  face's band ``{q + t n_f : q in the triangle, |t| <= tolerance}`` is reached at a corner of
  that prism: 3 vertices x 2 offsets. Along an edge whose faces' normals differ by more than
  ``arc_step_deg``, normals between them are sampled every ``arc_step_deg`` degrees, each with the
  edge's 2 endpoints x 2 offsets; at a vertex whose faces' normals spread wider, its
  (area-weighted) vertex normal is added. So the bound is exact for contacts with a face's
  normal, and for contacts at sharp edges and corners it covers the sampled normals only.
  Over that set (positions ``p_i`` centred, normals ``n_i``), the exact Q1 of any grasp is at
  most ``min_s max_i h_i(s)``, ``h_i(s) = max(0, max_k s.w_ik)``.

:func:`band_contacts` builds that finite contact set (host, NumPy); :func:`q1_ceiling` searches
the direction ``s`` minimizing that (smoothed max, Adam, many starts) and returns the
smallest value found, evaluated with the hard max over the whole set. Any ``s`` gives a valid
bound; the search only makes it tighter. Used by ``benchmarks/q1_ceiling.py`` to show how far a
planner's grasps are from what the object allows.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import trimesh

from jaxgrasp.quality.q1 import edge_wrenches, wrench_directions


def band_contacts(tm: trimesh.Trimesh, com: np.ndarray, tolerance: float, *,
                  arc_step_deg: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """A finite contact set whose cone supports bound those of every contact near the surface.

    Args:
        tm: the object mesh (any frame; ``com`` in the same frame).
        com: (3,) centre of mass: the output is centred on it (the Q1 frame).
        tolerance: [m] contacts within this distance of the surface, either side, are covered.
        arc_step_deg: normal sampling step on sharp edges and corners (module docstring).

    Returns:
        ``(p (M, 3), n (M, 3))`` float64 positions (centred) and unit outward normals.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 metres, got {tolerance}")
    v = np.asarray(tm.vertices, np.float64) - np.asarray(com, np.float64)
    f = np.asarray(tm.faces)
    if len(f) == 0:
        raise ValueError("the mesh has no faces")
    fn = np.asarray(tm.face_normals, np.float64)
    offsets = np.array([-tolerance, tolerance])
    ps, ns = [], []

    def add(q, n):  # q (K, C, 3) corners sharing normal n (K, 3): C corners x 2 offsets each
        p = q[:, :, None, :] + offsets[None, None, :, None] * n[:, None, None, :]
        ps.append(p.reshape(-1, 3))
        ns.append(np.repeat(n, q.shape[1] * 2, axis=0))

    add(v[f], fn)
    step = np.deg2rad(arc_step_deg)
    adj, angles = np.asarray(tm.face_adjacency), np.asarray(tm.face_adjacency_angles)
    sharp = angles > step
    if np.any(sharp):
        n1, n2 = fn[adj[sharp, 0]], fn[adj[sharp, 1]]
        ends = v[np.asarray(tm.face_adjacency_edges)[sharp]]  # (E, 2, 3)
        # a fold (theta = pi, opposite normals) has no unique arc: the clip keeps sin(theta) > 0
        theta = np.minimum(angles[sharp], np.pi - 1e-3)
        k = np.ceil(theta / step).astype(int)  # arcs cut into k pieces: k - 1 interior normals
        for kk in np.unique(k):
            sel = k == kk
            th = theta[sel][:, None]
            for j in range(1, kk):
                phi = th * j / kk  # slerp from n1 to n2
                n = (np.sin(th - phi) * n1[sel] + np.sin(phi) * n2[sel]) / np.sin(th)
                add(ends[sel], n / np.linalg.norm(n, axis=1, keepdims=True))
    # corners: the faces around a vertex whose normals spread wider than the step
    vf = np.asarray(tm.vertex_faces)
    valid = vf >= 0
    cos_min = np.where(valid, np.einsum("vkd,vd->vk", fn[np.where(valid, vf, 0)], tm.vertex_normals), 1.0).min(1)
    corner = np.nonzero(cos_min < np.cos(step / 2))[0]
    if len(corner):
        add(v[corner][:, None, :], np.asarray(tm.vertex_normals, np.float64)[corner])
    return np.concatenate(ps), np.concatenate(ns)


def _max_support(V, directions, chunk):
    """``h(s) = max(0, max_j V_j . s)`` for each direction ``(D,)``; wrenches in chunks (bounded
    memory)."""
    m = V.shape[0]
    pad = -m % chunk
    V = jnp.concatenate([V, jnp.zeros((pad, 6), V.dtype)]).reshape(-1, chunk, 6)  # zero rows change no max
    h = jnp.max(jax.lax.map(lambda Vi: jnp.max(Vi @ directions.T, axis=0), V), axis=0)
    return jnp.maximum(h, 0.0)  # the origin is in the hull: without force closure the bound is 0


@functools.partial(jax.jit, static_argnames=("steps",))
def _search(V, s0, steps: int):
    """Adam on each start direction of ``s0 (S, 6)`` minimizing a smoothed ``h(s)``."""
    tx = optax.adam(0.02)
    V = jnp.concatenate([V, jnp.zeros((1, 6), V.dtype)])  # the origin: h >= 0

    def smooth_max(s, temp):
        # s stays near unit length (renormalized every step), so the division is safe;
        # logsumexp / temp lies in [h, h + log(M) / temp]
        return jax.nn.logsumexp(temp * (V @ (s / jnp.linalg.norm(s)))) / temp

    def run(s):
        def body(i, carry):
            s, state = carry
            temp = 20.0 * 100.0 ** (i / steps)  # 20 -> 2000: broad first, then the hard max
            upd, state = tx.update(jax.grad(smooth_max)(s, temp), state, s)
            s = optax.apply_updates(s, upd)
            return s / jnp.linalg.norm(s), state

        return jax.lax.fori_loop(0, steps, body, (s, tx.init(s)))[0]

    return jax.vmap(run)(s0)


def q1_ceiling(p: np.ndarray, n: np.ndarray, *, mu: float, torque_scale: float, num_edges: int,
               key: jax.Array, num_starts: int = 128, steps: int = 300, search_points: int = 4096,
               chunk: int = 8192) -> tuple[float, np.ndarray]:
    """Upper bound of the exact Q1 of any contact set covered by ``(p, n)`` (module docstring).

    Args:
        p: (M, 3) contact positions (centred) [m]; n: (M, 3) outward normals (:func:`band_contacts`).
        mu, torque_scale, num_edges: as in :func:`jaxgrasp.quality.q1.q1_exact`.
        key: PRNG key (the search's random starts and contact subset).
        num_starts: start directions (half the fixed well-spread set, half random).
        steps: Adam steps per start.
        search_points: the search runs on this many random contacts (all when fewer); the result
            is evaluated on all of them.
        chunk: wrenches per block of the final evaluation.

    Returns:
        ``(bound, direction (6,))``: ``h(s)`` over all contacts' edge wrenches at the best
        direction found.
    """
    p = np.asarray(p, np.float64)
    n = np.asarray(n, np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or n.shape != p.shape or p.shape[0] == 0:
        raise ValueError(f"expected p and n of shape (M, 3), M >= 1, got {p.shape} and {n.shape}")
    if num_starts < 2:
        raise ValueError(f"num_starts must be >= 2, got {num_starts}")
    V = edge_wrenches(p, n, np.ones(len(p)), mu=mu, torque_scale=torque_scale, num_edges=num_edges, xp=np)
    V = jnp.asarray(V, jnp.float32)  # (M, T, 6)
    k_sub, k_dir = jax.random.split(key)
    m = p.shape[0]
    sub = jax.random.permutation(k_sub, m)[:search_points] if m > search_points else jnp.arange(m)
    half = num_starts // 2 + num_starts // 2 % 2  # the fixed set comes in antipodal pairs
    s0 = jnp.concatenate([jnp.asarray(wrench_directions(half), jnp.float32),
                          jax.random.normal(k_dir, (num_starts - half, 6), jnp.float32)])
    s0 = s0 / jnp.linalg.norm(s0, axis=1, keepdims=True)
    s = _search(V[sub].reshape(-1, 6), s0, steps=int(steps))
    s = jnp.concatenate([s, s0])  # the starts themselves are bounds too
    h = _max_support_jit(V.reshape(-1, 6), s, chunk=int(chunk))
    i = int(jnp.argmin(h))
    return float(h[i]), np.asarray(s[i], np.float64)


_max_support_jit = jax.jit(_max_support, static_argnames=("chunk",))
