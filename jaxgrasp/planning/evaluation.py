"""Exact evaluation of a grasp on the full-resolution object (host side + one jitted kernel).

:func:`evaluate` gives the metrics every planner ranks by (exact Q1 of the touching contacts,
penetration both ways, self-penetration, validity); :func:`evaluate_extras` adds the costlier
reporting-only metrics (Q1 with the generalized weights of all candidates, the Q1 upper bound)
for the grasps that are returned.

Cost. The device part (posing, distances, hull tests) is one compiled call per hand and padded
object size. On a large scan most of the work is the exact signed distance of the hand's 45 contact
candidates and ~2k surface samples to ~16k triangles, so they are first measured against a
decimated mesh (:class:`~jaxgrasp.planning.prepared.PreparedObject`'s ``screening``: 1,024 or 2,048
faces), and only those within ``screening_bound + contact_tolerance`` of it (the distance
between the two surfaces, measured when the object is prepared), and of the points deeper
inside those that may be the deepest, are measured again on the full mesh, in one call padded
to 256, 512... points (on a large mesh, against the faces that can be nearest:
:mod:`jaxgrasp.mesh.local`). That is exact: any other point outside is farther than the contact
tolerance from the full surface, so it cannot touch it, nor be inside the full mesh (it would
have to lie between the two surfaces); any other point inside is neither touching nor the
deepest, which is all the metrics take from it. Force closure is decided by a small LP before the 6-D hull
(:func:`jaxgrasp.quality.q1.hull_q1`).
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrasp.hand.collision import object_in_hand, self_penetration
from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.hand.model import HandModel
from jaxgrasp.mesh import local
from jaxgrasp.mesh.geometry import closest_features, resolve_on_host, signed_distance
from jaxgrasp.mesh.objects import Object, pow2_bucket
from jaxgrasp.planning.engine import compile_ahead
from jaxgrasp.planning.geom_check import compile_geom_check, geom_metrics
from jaxgrasp.planning.prepared import PreparedObject, prepare_object
from jaxgrasp.planning.settings import EvalConfig
from jaxgrasp.quality.q1 import (
    contact_weights,
    q1_exact,
    q1_lower,
    q1_upper,
    wrench_directions,
)

log = logging.getLogger(__name__)


@functools.cache
def _warn_unprepared() -> None:
    log.warning("evaluate() was given an Object, not a PreparedObject: the object is prepared again on "
                "every call (decimation, samples); pass jaxgrasp.planning.prepared.prepare_object(...) instead")


def eval_config(cfg) -> EvalConfig:
    """The :class:`EvalConfig` of ``cfg`` (an ``EvalConfig``, or a config holding one as
    ``evaluation``: :class:`jaxgrasp.planning.settings.PlanConfig`)."""
    return getattr(cfg, "evaluation", cfg)


@jax.jit
def _device(hand: HandModel, obj: Object, screening: Object | None, eval_points, x):
    """Posed arrays, distances and penetrations of one configuration (centred frame); the contacts'
    and samples' closest features are to the screening mesh when there is one (to be completed on
    the full mesh for the points near it), else floating-point ones to the full mesh (to be made
    exact on the host: :func:`jaxgrasp.mesh.geometry.resolve_on_host`)."""
    com = obj.center_of_mass.astype(x.dtype)
    posed = pose_hand(hand, x)
    target = obj if screening is None else screening
    pts = jnp.concatenate([posed.contact_pos, posed.sample_pos]) + com
    res = closest_features(target, pts, exact=False)
    pen_obj = object_in_hand(hand, posed.T_world_body, eval_points.astype(x.dtype) - com)
    pen_self = self_penetration(hand, posed.T_world_body, posed.sample_pos)
    return posed, pts, res, pen_obj, pen_self


@jax.jit
def _full_mesh(obj: Object, points):
    """Floating-point closest features of ``points (n, 3)`` (input frame) to the full mesh."""
    return closest_features(obj, points, exact=False)


# Widens the window of possibly deepest points beyond twice the screening bound [m] (rounding of
# the float32 coarse distances).
_DEEP_SLACK = 1e-5


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


def evaluate(hand: HandModel, prep: PreparedObject | Object, config, cfg, tm=None, *,
             screen: bool = True, extras: bool = True) -> dict:
    """Exact metrics of one configuration (centred frame) on the full-resolution object.

    Args:
        hand: the hand.
        prep: the prepared object (:func:`jaxgrasp.planning.prepared.prepare_object`). An
            ``Object`` (with its trimesh ``tm``, the older form) is prepared on each call, which
            costs a decimation and is logged once.
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
        at most ``max_penetration``), and with ``extras`` those of :func:`evaluate_extras`.
    """
    cfg = eval_config(cfg)
    if not isinstance(prep, PreparedObject):
        _warn_unprepared()
        prep = prepare_object((prep, None), screen=screen)  # tm (older form): the same mesh as obj
    if not screen and prep.screening is not None:
        prep = prep.replace(screening=None)
    obj = prep.obj
    x = jnp.asarray(config, dtype=hand.body_pos.dtype)
    posed, pts_all, res, pen_obj, pen_self = _device(hand, obj, prep.screening, prep.eval_points, x)
    p_all = np.asarray(pts_all)
    nc = hand.num_contacts
    if prep.screening is None:
        d_all, n_all = resolve_on_host(obj, p_all, res)
    else:
        # Every contact candidate and sample inside the coarse mesh or within the band of it is
        # measured on the full mesh, all in one call (module docstring); the others are outside
        # and not touching on both meshes.
        d_all, n_all = np.array(res.distance, np.float64), np.array(res.normal, np.float64)
        bound = float(prep.screening_bound)
        band = bound + cfg.contact_tolerance
        # Points deeper than the band count only through the deepest of them (the penetration):
        # measure those that may be the deepest on the full mesh (coarse depth within 2 bounds of
        # the coarsely deepest); the others keep their coarse distances, off by at most the bound
        # and never touching. Deep points are the costly ones: the full mesh's faces near them
        # span their whole depth.
        deep = d_all < -band
        if deep.any():
            deep &= -d_all < float((-d_all[deep]).max()) - 2 * bound - _DEEP_SLACK
        near = np.nonzero((d_all <= band) & ~deep)[0]
        if len(near):
            idx = np.resize(near, _screen_bucket(len(near), len(p_all)))  # pads by repeating
            if prep.index is None:
                full = _full_mesh(obj, jnp.asarray(p_all[idx]))
            else:  # a large mesh: on the faces that can be nearest (jaxgrasp.mesh.local)
                upper = local.nearest_upper_bound(prep.index, p_all[idx].astype(np.float64))
                full = local.local_closest_features(obj, prep.index, p_all[idx], upper)
            d_near, n_near = resolve_on_host(obj, p_all[idx], full)
            d_all[idx], n_all[idx] = d_near, n_near
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
    if m["valid"] and cfg.real_geoms:  # only grasps the sampled check accepts (module docstring)
        m = with_geom_metrics(hand, prep, x, m, cfg)
    if extras:
        m.update(evaluate_extras(hand, prep, x, cfg))
    return m


def with_geom_metrics(hand: HandModel, prep: PreparedObject, config, metrics: dict, cfg) -> dict:
    """``metrics`` (of :func:`evaluate`) completed with the real geoms' penetration
    (:func:`jaxgrasp.planning.geom_check.geom_metrics`): ``sampled_penetration_mm`` keeps the
    sampled check's value, ``penetration_mm`` becomes the larger of the two, and ``valid`` also
    requires the geoms' penetration at most ``max_penetration``."""
    if "geom_penetration_mm" in metrics:
        return metrics
    cfg = eval_config(cfg)
    g = geom_metrics(hand, prep, config)
    pen = max(metrics["penetration_mm"], g["geom_penetration_mm"])
    valid = metrics["valid"] and g["geom_penetration_mm"] <= 1e3 * cfg.max_penetration
    return {**metrics, **g, "sampled_penetration_mm": metrics["penetration_mm"], "penetration_mm": pen, "valid": valid}


@jax.jit
def _candidate_points(hand: HandModel, x):
    """(C, 3) the posed contact candidates, centred frame."""
    return pose_hand(hand, x).contact_pos


@jax.jit
def _candidate_terms(hand: HandModel, x, d_c, n_c, alpha, beta, mu, torque_scale, directions):
    """The candidates' positions and generalized weights, and the Q1 upper bound, from their
    distances ``d_c (C,)`` and object normals ``n_c (C, 3)``."""
    posed = pose_hand(hand, x)
    c = contact_weights(d_c, n_c, posed.contact_normal, alpha, beta)
    q1u = q1_upper(posed.contact_pos, n_c, c, mu=mu, torque_scale=torque_scale, directions=directions)
    return posed.contact_pos, c, q1u


def _candidate_distances(prep: PreparedObject | Object, cp) -> tuple[jax.Array, jax.Array]:
    """Signed distances (C,) and normals (C, 3) of the candidates ``cp (C, 3)`` (centred frame).

    Floating-point distances (``exact=False``): these feed reporting metrics, where a sign or
    normal undecided within rounding at a tie would move a weight by a rounding error; and an
    executable without the exact path's host callback can be kept in the persistent compile
    cache (one with a callback is compiled again in every process). A large mesh is queried on
    the faces that can be nearest (:mod:`jaxgrasp.mesh.local`).
    """
    obj = prep.obj if isinstance(prep, PreparedObject) else prep
    if isinstance(prep, PreparedObject) and prep.index is not None:
        p = np.asarray(cp + obj.center_of_mass.astype(cp.dtype))
        res = local.local_closest_features(obj, prep.index, p, local.nearest_upper_bound(prep.index, p.astype(np.float64)))
        return res.distance, res.normal
    return _full_candidate_distances(obj, cp)


@jax.jit
def _full_candidate_distances(obj: Object, cp):
    """Floating-point signed distances (C,) and normals (C, 3) of ``cp (C, 3)`` (centred frame)
    on every face."""
    return signed_distance(obj, cp + obj.center_of_mass.astype(cp.dtype), exact=False)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _lower_bound(p, n, c, torque_scale, mu: float, k_contacts: int):
    return q1_lower(p, n, c, mu=mu, torque_scale=torque_scale, k_contacts=k_contacts)


def evaluate_extras(hand: HandModel, prep: PreparedObject | Object, config, cfg) -> dict:
    """Reporting metrics of one configuration, all of one quantity: the generalized Q1 of every
    contact candidate with its generalized weight (paper eq. 2), ``q1_generalized`` (exact, by the
    convex hull of 45 x T wrenches, ~0.1-0.3 s), ``q1_generalized_upper`` (its upper bound, eq. 3)
    and ``q1_generalized_lower`` (its lower bound, the SOS/SDP certificate of eq. 4 over the 16
    highest-weight candidates, in the hand's dtype). So ``lower <= q1_generalized <= upper``; none
    of them bounds ``q1`` (the exact Q1 of the touching contacts at unit force each, another
    contact set and normalisation).

    Args:
        prep: the prepared object (or an ``Object``: its full mesh, swept face by face).
    """
    cfg = eval_config(cfg)
    obj = prep.obj if isinstance(prep, PreparedObject) else prep
    x = jnp.asarray(config, dtype=hand.body_pos.dtype)
    size = float(obj.size)
    f = lambda v: jnp.asarray(v, x.dtype)  # noqa: E731
    d_c, n_c = _candidate_distances(prep, _candidate_points(hand, x))
    cp, c, q1u = _candidate_terms(hand, x, d_c, n_c, f(cfg.alpha_per_size / size), f(cfg.beta), f(cfg.mu),
                                  f(1.0 / size), f(wrench_directions(cfg.num_directions)))
    q1u = float(q1u)
    q1g = q1_exact(cp, n_c, c, mu=cfg.mu, torque_scale=1.0 / size, num_edges=cfg.num_edges)
    q1l = float(_lower_bound(cp, n_c, c, jnp.asarray(1.0 / size, x.dtype), cfg.mu, min(16, hand.num_contacts)))
    return {"q1_generalized": float(q1g), "q1_generalized_upper": q1u, "q1_generalized_lower": q1l}


def compile_extras(hand: HandModel, prep: PreparedObject | Object, cfg) -> None:
    """Compile the kernels of :func:`evaluate_extras` for this hand and padded mesh size, ahead of
    time (nothing runs; a large mesh's local sub-meshes compile as they come)."""
    cfg = eval_config(cfg)
    obj = prep.obj if isinstance(prep, PreparedObject) else prep
    dtype = hand.body_pos.dtype
    S = jax.ShapeDtypeStruct
    scalar, nc = S((), dtype), hand.num_contacts
    x = S((6 + hand.num_independent,), dtype)
    compile_ahead(_candidate_points, hand, x)
    if not (isinstance(prep, PreparedObject) and prep.index is not None):
        compile_ahead(_full_candidate_distances, obj, S((nc, 3), dtype))
    compile_ahead(_candidate_terms, hand, x, S((nc,), dtype), S((nc, 3), dtype), scalar, scalar, scalar, scalar,
                  S((cfg.num_directions, 6), dtype))
    compile_ahead(_lower_bound, S((nc, 3), dtype), S((nc, 3), dtype), S((nc,), dtype), scalar, cfg.mu, min(16, nc))


def compile_evaluation(hand: HandModel, prep: PreparedObject, config, cfg, *, all_sizes: bool = True) -> None:
    """Compile everything :func:`evaluate` may run for this hand and padded mesh size (the device
    kernel and every padded size of the full-mesh pass; :func:`compile_extras` does
    :func:`evaluate_extras`), so that timed runs exclude compilation.

    Args:
        config: any ``(6 + I,)`` configuration (centred frame), e.g. a start.
        all_sizes: every padded size of the full-mesh pass (False: the first, 256 points, which
            planned grasps need; deep penetrations need more and compile then).
    """
    evaluate(hand, prep, config, cfg, extras=False)
    if eval_config(cfg).real_geoms:
        compile_geom_check(hand, prep)
    if prep.screening is None or prep.index is not None:  # local sub-meshes compile as they come
        return
    total, n = hand.num_contacts + hand.num_samples, 256
    dtype = hand.body_pos.dtype
    while True:
        size = _screen_bucket(n, total)
        compile_ahead(_full_mesh, prep.obj, jax.ShapeDtypeStruct((size, 3), dtype))  # ahead of time: no run
        if size == total or not all_sizes:
            break
        n = 2 * size
