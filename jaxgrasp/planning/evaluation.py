"""Exact evaluation of a grasp on the full-resolution object (host side + one jitted kernel).

:func:`evaluate` gives the metrics every planner ranks by (exact Q1 of the touching contacts,
penetration both ways, self-penetration, validity); :func:`evaluate_extras` adds the costlier
reporting-only metrics (Q1 with the generalized weights of all candidates, the Q1 upper bound)
for the grasps that are returned.

Cost. The device part (posing, distances, hull tests) is one compiled call per hand and padded
object size. On a large scan most of the work is the exact signed distance of the hand's 45 contact
candidates and ~2k surface samples to ~16k triangles, so they are first measured against a
decimated mesh (:func:`screening_mesh`: 1,024 or 2,048 faces), and only those inside it or within
``hausdorff + contact_tolerance`` of it (``hausdorff``: the distance between the two surfaces,
measured when the decimated mesh is built) are measured again on the full mesh, in one call padded
to 256, 512... points. That is exact: any other point is farther than the contact tolerance from
the full surface, so it cannot touch it, and it cannot be inside the full mesh either (it would
have to lie between the two surfaces). Force closure is decided by a small LP before the 6-D hull
(:func:`jaxgrasp.quality.q1.hull_q1`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import trimesh

from jaxgrasp.hand.collision import object_in_hand, self_penetration
from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.hand.model import HandModel
from jaxgrasp.mesh.geometry import signed_distance
from jaxgrasp.mesh.objects import Object, make_object, pow2_bucket
from jaxgrasp.planning.settings import EvalConfig
from jaxgrasp.quality.q1 import (
    contact_weights,
    q1_exact,
    q1_lower,
    q1_upper,
    wrench_directions,
)


def eval_config(cfg) -> EvalConfig:
    """The :class:`EvalConfig` of ``cfg`` (an ``EvalConfig``, or a config holding one as
    ``evaluation``: :class:`jaxgrasp.planning.settings.PlanConfig`)."""
    return getattr(cfg, "evaluation", cfg)


def object_trimesh(obj: Object) -> trimesh.Trimesh:
    """The object's real (unpadded) mesh as a trimesh, input frame, float64."""
    vmask = np.asarray(obj.vertex_mask)
    remap = np.cumsum(vmask) - 1  # padded vertex rows come after the real ones
    faces = remap[np.asarray(obj.faces)[np.asarray(obj.face_mask)]]
    return trimesh.Trimesh(np.asarray(obj.vertices, np.float64)[vmask], faces, process=False)


# Faces of the decimated mesh that pre-screens hand samples, coarsest first: the first whose
# surface is within SCREEN_TOLERANCE of the full one is used (the optimizer's own mesh is coarser).
SCREEN_FACES = (1024, 2048)
SCREEN_TOLERANCE = 0.002


def screening_mesh(tm: trimesh.Trimesh, obj: Object) -> tuple[Object, float] | None:
    """The pre-screening mesh of :func:`evaluate` (see :data:`SCREEN_FACES`), or None; chosen
    once per mesh and kept in its metadata."""
    if "jaxgrasp_screening" not in tm.metadata:
        for i, faces in enumerate(SCREEN_FACES):
            last = i == len(SCREEN_FACES) - 1
            em = evaluation_mesh(tm, obj, faces, reject_above=float("inf") if last else SCREEN_TOLERANCE)
            if em is None or em[1] <= SCREEN_TOLERANCE:
                break
        tm.metadata["jaxgrasp_screening"] = em
    return tm.metadata["jaxgrasp_screening"]


def evaluation_points(tm: trimesh.Trimesh) -> np.ndarray:
    """2,000 even surface samples of the full mesh for the object-in-hand check, sampled once per
    mesh and kept in its metadata (evaluation runs many times per object)."""
    if "jaxgrasp_eval_points" not in tm.metadata:
        tm.metadata["jaxgrasp_eval_points"] = trimesh.sample.sample_surface_even(tm, 2000, seed=0)[0]
    return tm.metadata["jaxgrasp_eval_points"]


def decimated(tm: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """``tm`` decimated to at most ``max_faces`` faces (quadric decimation), cached in its metadata:
    the optimizer's scene and the evaluation's pre-screen share it."""
    if len(tm.faces) <= max_faces:
        return tm
    key = f"jaxgrasp_decimated_{max_faces}"
    if key not in tm.metadata:
        tm.metadata[key] = tm.simplify_quadric_decimation(face_count=max_faces)
    return tm.metadata[key]


def evaluation_mesh(tm: trimesh.Trimesh, obj: Object, max_faces: int,
                    reject_above: float = float("inf")) -> tuple[Object, float] | None:
    """The decimated mesh used to pre-screen hand samples, and its distance bound to the full mesh.

    Args:
        reject_above: [m] when the distance from the full mesh to the decimated one already
            exceeds this, that one-sided distance is returned without measuring the other side
            (a lower bound of the two-sided distance, enough to reject the mesh) and nothing is
            cached.

    Returns:
        ``(coarse object, hausdorff [m])``, or ``None`` when the mesh has at most ``4 *
        max_faces`` faces (pre-screening would not pay). Cached in the mesh's metadata.
    """
    key = f"jaxgrasp_eval_mesh_{max_faces}"
    if key not in tm.metadata:
        if len(tm.faces) <= 4 * max_faces:
            tm.metadata[key] = None
        else:
            small = decimated(tm, max_faces)
            dtype = np.dtype(obj.vertices.dtype.name)
            coarse = make_object(small.vertices, small.faces, check_units=False, dtype=dtype)[0]
            # Both one-sided distances, over vertices and dense surface samples of each side; the
            # cheaper one (full-mesh points to the decimated mesh) first.
            full_pts = np.concatenate([np.asarray(tm.vertices), evaluation_points(tm)])
            d1 = float(np.abs(np.asarray(signed_distance(coarse, jnp.asarray(full_pts, dtype), exact=False)[0])).max())
            if d1 > reject_above:
                return coarse, d1
            small_pts = np.concatenate([small.vertices, trimesh.sample.sample_surface_even(small, 2000, seed=0)[0]])
            d2 = float(np.abs(np.asarray(signed_distance(obj, jnp.asarray(small_pts, dtype), exact=False)[0])).max())
            tm.metadata[key] = (coarse, max(d1, d2))
    return tm.metadata[key]


@jax.jit
def _device(hand: HandModel, obj: Object, coarse: Object | None, x, eval_points):
    """Posed arrays, distances and penetrations of one configuration (centred frame); the contacts'
    and samples' distances are to ``coarse`` when given (to be completed by :func:`_exact_distances`)."""
    com = obj.center_of_mass.astype(x.dtype)
    posed = pose_hand(hand, x)
    target, exact = (obj, True) if coarse is None else (coarse, False)
    d_c, n_c = signed_distance(target, posed.contact_pos + com, exact=exact)
    d_s, n_s = signed_distance(target, posed.sample_pos + com, exact=exact)
    pen_obj = object_in_hand(hand, posed.T_world_body, eval_points)
    pen_self = self_penetration(hand, posed.T_world_body, posed.sample_pos)
    return posed, d_c, n_c, d_s, n_s, pen_obj, pen_self


@jax.jit
def _exact_distances(obj: Object, points):
    """Exact signed distances and normals of ``points (n, 3)`` (input frame) to the full mesh."""
    return signed_distance(obj, points)


def _screen_bucket(n: int, total: int) -> int:
    """Padded count of samples measured on the full mesh: the next power of two, at least 256
    (one compilation per bucket), or all samples."""
    return min(pow2_bucket(n, 256), total)


def find_contacts(hand: HandModel, posed, d_c, n_c, d_s, n_s, cfg):
    """The contacts of a posed hand (host side, centred frame).

    A contact is a touching contact candidate (``|d| <= contact_tolerance`` and its normal
    facing the object), plus, for every link that touches the object anywhere, its closest
    surface sample under the same test: fixed candidates alone miss flat faces that a pad touches
    between two candidates.

    Returns:
        ``(points (K, 3), object normals (K, 3), candidate index or -1 (K,), link (K,))``.
    """
    cfg = eval_config(cfg)
    cp, cn = np.asarray(posed.contact_pos, np.float64), np.asarray(posed.contact_normal, np.float64)
    sp, sn = np.asarray(posed.sample_pos, np.float64), np.asarray(posed.sample_normal, np.float64)
    ok_c = (np.abs(d_c) <= cfg.contact_tolerance) & (np.sum(n_c * cn, 1) < -cfg.contact_cos)
    idx = np.nonzero(ok_c)[0]
    pts, nrm, cand, link = [cp[idx]], [n_c[idx]], [idx], [np.asarray(hand.contact_body)[idx]]
    ok_s = (np.abs(d_s) <= cfg.contact_tolerance) & (np.sum(n_s * sn, 1) < -cfg.contact_cos)
    sb = np.asarray(hand.sample_body)
    for b in np.unique(sb[ok_s]):
        i = np.nonzero(ok_s & (sb == b))[0]
        j = i[np.argmin(np.abs(d_s[i]))]
        pts.append(sp[j][None]), nrm.append(n_s[j][None]), cand.append([-1]), link.append([b])
    return (np.concatenate(pts), np.concatenate(nrm), np.concatenate(cand).astype(int), np.concatenate(link).astype(int))


def evaluate(hand: HandModel, obj: Object, config, cfg, tm: trimesh.Trimesh | None = None, *,
             screen: bool = True, extras: bool = True) -> dict:
    """Exact metrics of one configuration (centred frame) on the full-resolution object.

    Args:
        hand, obj: the hand and the full-resolution object; tm: the same mesh as a trimesh
            (rebuilt from ``obj`` when omitted).
        config: ``(6 + I,)`` configuration in the centred frame.
        cfg: the contact model and thresholds (:class:`EvalConfig`, or a :class:`PlanConfig`:
            its ``evaluation``).
        screen: pre-screen samples on the decimated mesh (False: all on the full mesh).
        extras: also compute :func:`evaluate_extras` (slower; planners skip it in their loops).

    Returns:
        dict with ``q1`` (exact Q1 of the contacts of :func:`find_contacts`, unit force budget
        each), ``penetration_mm`` (max of hand into object and object into the hand's links),
        ``self_penetration_mm``, ``num_contacts``, ``contacts`` (points, normals, candidate index
        or -1, link; centred frame), ``valid`` (force closure, penetration and self-penetration
        at most ``max_penetration``), and with ``extras`` ``q1_generalized`` and ``q1_upper``.
    """
    cfg = eval_config(cfg)
    x = jnp.asarray(config, dtype=hand.body_pos.dtype)
    tm = object_trimesh(obj) if tm is None else tm
    com = np.asarray(obj.center_of_mass, np.float64)
    coarse = screening_mesh(tm, obj) if screen else None
    eval_pts = jnp.asarray(evaluation_points(tm) - com, x.dtype)
    out = _device(hand, obj, None if coarse is None else coarse[0], x, eval_pts)
    posed, d_c, n_c, d_s, n_s, pen_obj, pen_self = out
    d_c, n_c, d_s, n_s = (np.array(a, np.float64) for a in (d_c, n_c, d_s, n_s))
    if coarse is not None:
        # Every contact candidate and sample inside the coarse mesh or within the band of it is
        # measured on the full mesh, all in one call (module docstring); the others are outside
        # and not touching on both meshes.
        band = coarse[1] + cfg.contact_tolerance
        nc = hand.num_contacts
        d_all, n_all = np.concatenate([d_c, d_s]), np.concatenate([n_c, n_s])
        near = np.nonzero(d_all <= band)[0]
        if len(near):
            idx = np.resize(near, _screen_bucket(len(near), nc + hand.num_samples))  # pads by repeating
            p_all = np.concatenate([np.asarray(posed.contact_pos), np.asarray(posed.sample_pos)])
            d_near, n_near = _exact_distances(obj, jnp.asarray(p_all[idx] + com, x.dtype))
            d_all[idx], n_all[idx] = np.asarray(d_near, np.float64), np.asarray(n_near, np.float64)
        d_c, d_s, n_c, n_s = d_all[:nc], d_all[nc:], n_all[:nc], n_all[nc:]
    pts, nrm, cand, link = find_contacts(hand, posed, d_c, n_c, d_s, n_s, cfg)
    pen_hand = float(np.maximum(-d_s, 0.0).max())
    pen_o = float(np.asarray(pen_obj).max())
    pen = 1e3 * max(pen_hand, pen_o)
    self_pen = 1e3 * float(np.asarray(pen_self).max())
    limit = 1e3 * cfg.max_penetration
    size = float(obj.size)
    q1 = q1_exact(pts, nrm, np.ones(len(pts)), mu=cfg.mu, torque_scale=1.0 / size,
                  num_edges=cfg.num_edges) if len(pts) >= 2 else 0.0
    m = {
        "q1": float(q1), "penetration_mm": pen, "self_penetration_mm": self_pen,
        "hand_in_object_mm": 1e3 * pen_hand, "object_in_hand_mm": 1e3 * pen_o,
        "num_contacts": int(len(pts)),
        "contacts": {"points": pts.tolist(), "normals": nrm.tolist(), "candidate": cand.tolist(),
                     "link": [hand.body_names[b] for b in link]},
        "valid": bool(q1 > 0 and pen <= limit and self_pen <= limit),
    }
    if extras:
        m.update(evaluate_extras(hand, obj, x, cfg))
    return m


@jax.jit
def _candidate_terms(hand: HandModel, obj: Object, x, alpha, beta, mu, torque_scale, directions):
    """The candidates' positions, normals and generalized weights, and the Q1 upper bound.

    Floating-point distances (``exact=False``): these are reporting metrics, where a sign or
    normal undecided within rounding at a tie would move a weight by a rounding error; and an
    executable without the exact path's host callback can be kept in the persistent compile
    cache (one with a callback is compiled again in every process).
    """
    posed = pose_hand(hand, x)
    d_c, n_c = signed_distance(obj, posed.contact_pos + obj.center_of_mass.astype(x.dtype), exact=False)
    c = contact_weights(d_c, n_c, posed.contact_normal, alpha, beta)
    q1u = q1_upper(posed.contact_pos, n_c, c, mu=mu, torque_scale=torque_scale, directions=directions)
    return posed.contact_pos, n_c, c, q1u


@functools.partial(jax.jit, static_argnames=("mu", "k_contacts"))
def _lower_bound(p, n, c, torque_scale, mu: float, k_contacts: int):
    return q1_lower(p, n, c, mu=mu, torque_scale=torque_scale, k_contacts=k_contacts)


def evaluate_extras(hand: HandModel, obj: Object, config, cfg) -> dict:
    """Reporting metrics of one configuration, all with the generalized weights of every contact
    candidate: ``q1_generalized`` (exact Q1 by convex hull of 45 x T wrenches, ~0.1-0.3 s),
    ``q1_upper`` (eq. 3) and ``q1_lower`` (the SOS/SDP certificate of eq. 4 over the 16
    highest-weight candidates, in the hand's dtype)."""
    cfg = eval_config(cfg)
    x = jnp.asarray(config, dtype=hand.body_pos.dtype)
    size = float(obj.size)
    f = lambda v: jnp.asarray(v, x.dtype)  # noqa: E731
    cp, n_c, c, q1u = _candidate_terms(hand, obj, x, f(cfg.alpha_per_size / size), f(cfg.beta), f(cfg.mu),
                                       f(1.0 / size), f(wrench_directions(cfg.num_directions)))
    q1u = float(q1u)
    q1g = q1_exact(cp, n_c, c, mu=cfg.mu, torque_scale=1.0 / size, num_edges=cfg.num_edges)
    q1l = float(_lower_bound(cp, n_c, c, jnp.asarray(1.0 / size, x.dtype), mu=cfg.mu,
                             k_contacts=min(16, hand.num_contacts)))
    return {"q1_generalized": float(q1g), "q1_upper": q1u, "q1_lower": q1l}


def compile_evaluation(hand: HandModel, obj: Object, tm: trimesh.Trimesh, config, cfg) -> None:
    """Compile everything :func:`evaluate` may run for this hand and padded mesh size (the device
    kernel and every padded size of the full-mesh pass), so timed runs exclude compilation.

    Args:
        config: any ``(6 + I,)`` configuration (centred frame), e.g. a start.
    """
    evaluate(hand, obj, config, cfg, tm, extras=False)
    coarse = screening_mesh(tm, obj)
    if coarse is None:
        return
    total, n = hand.num_contacts + hand.num_samples, 256
    dtype = hand.body_pos.dtype
    while True:
        size = _screen_bucket(n, total)
        _exact_distances(obj, jnp.zeros((size, 3), dtype) + obj.center_of_mass.astype(dtype))
        if size == total:
            break
        n = 2 * size
