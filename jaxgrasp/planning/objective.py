"""The planner's objective: the problem arrays (:class:`Scene`) and the loss of one configuration.

:func:`grasp_terms` evaluates the compound loss of paper VI.A (generalized Q1 bound, collision,
self-collision, object-in-hand, guide) plus the *touch* term of the contact-closing phase
(:func:`jaxgrasp.planning.losses.loss_touch`) for one configuration in the centred frame; the planner
vmaps it over starts and the trainer over predictions. :func:`active_sets` picks the hand samples
and object points that the collision terms check.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxgrasp.hand.collision import nearest_hull_depth
from jaxgrasp.hand.geom_cores import geom_core_points
from jaxgrasp.hand.geoms import BOX, CAPSULE, CYLINDER, ELLIPSOID, SPHERE, geom_depth
from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.hand.model import HandModel
from jaxgrasp.mesh.geometry import signed_distance
from jaxgrasp.mesh.objects import Object
from jaxgrasp.planning import losses
from jaxgrasp.planning.settings import EvalConfig, LossConfig, SqueezeConfig
from jaxgrasp.quality.q1 import contact_weights, q1_lower, q1_upper

PRIMITIVES = (SPHERE, CAPSULE, CYLINDER, BOX, ELLIPSOID)  # geoms whose depth is analytic


@dataclasses.dataclass(frozen=True)
class Scene:
    """Arrays of one planning problem (centred frame); a pytree so it can be a jit argument."""

    obj: Object  # the (decimated) optimization mesh, in the input frame
    com: jnp.ndarray  # (3,) input-frame centre of mass
    object_points: jnp.ndarray  # (P, 3) surface samples, centred frame
    directions: jnp.ndarray  # (D, 6)
    alpha: jnp.ndarray
    torque_scale: jnp.ndarray


jax.tree_util.register_dataclass(
    Scene, data_fields=["obj", "com", "object_points", "directions", "alpha", "torque_scale"], meta_fields=[]
)


def stack_scenes(scenes: list[Scene]) -> Scene:
    """Scenes of equal padded sizes stacked on a leading axis (host side).

    ``Object.watertight`` is static, so a stack shares one value: when the scenes mix closed and
    open meshes, all use the winding-number sign (correct for closed meshes too, only slower);
    group objects by ``scene.obj.watertight`` first to keep the closed ones' cheap test.
    """
    if len({bool(sc.obj.watertight) for sc in scenes}) > 1:
        scenes = [dataclasses.replace(sc, obj=sc.obj.replace(watertight=False)) for sc in scenes]
    return jax.tree.map(lambda *a: jnp.stack(a), *scenes)


@struct.dataclass
class LossParams:
    """The numbers of the loss, all traced (changing one never recompiles the steps).

    Attributes:
        weights: ``{term name: weight}`` for the terms of the phase (:data:`TERMS`).
        mu, beta: friction and the contact weights' normal penalty (:class:`EvalConfig`).
        penetration_scale: depth [m] at which a penetrating sample costs 1.
        collision_margin: hand samples are pushed this far [m] outside the object.
        touch_capture, touch_target, touch_scale, contact_cos: the touch term
            (:func:`touch_weights`, :func:`jaxgrasp.planning.losses.loss_touch`), [m] but ``contact_cos``.
    """

    weights: dict
    mu: jax.Array
    beta: jax.Array
    penetration_scale: jax.Array
    collision_margin: jax.Array
    touch_capture: jax.Array
    touch_target: jax.Array
    touch_scale: jax.Array
    contact_cos: jax.Array


@dataclasses.dataclass(frozen=True)
class Phase:
    """What a compiled step optimizes (static: its hash keys the compilation).

    Attributes:
        terms: the loss terms summed, names of :data:`TERMS`; their weights are traced
            (:attr:`LossParams.weights`).
        q1_bound: ``"upper"`` (eq. 3) or ``"lower"`` (SOS/SDP, eq. 4) for the ``"q1"`` term.
        self_samples: the first hand samples checked for self-collision.
        opt_samples: hand samples in the active set (checked against the object).
        object_points: object points in the active set (checked against the hand's hulls).
        start_map: ``"map"`` (one start after the other, ``lax.map``: faster on the CPU) or
            ``"vmap"`` (batched: faster on accelerators); :func:`default_start_map`.
    """

    terms: tuple[str, ...] = ("q1", "coll", "self", "guide")
    q1_bound: str = "upper"
    self_samples: int = 256
    opt_samples: int = 256
    object_points: int = 128
    start_map: str = "map"

    def __post_init__(self):
        unknown = set(self.terms) - set(TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; known: {sorted(TERMS)}")


class Context(NamedTuple):
    """What the terms of one configuration share (computed once per evaluation of the loss)."""

    hand: HandModel
    scene: Scene
    posed: object  # kinematics.PosedHand
    d_c: jax.Array  # (N,) contact candidates' signed distances [m]
    n_c: jax.Array  # (N, 3) object normals at them
    sample_idx: jax.Array  # (k,) active hand samples
    object_idx: jax.Array  # (m,) active object points


def term_q1(ctx: Context, p: LossParams, phase: Phase) -> tuple[jax.Array, jax.Array]:
    """``exp(-Q1)`` of the generalized Q1 bound (paper eq. 3 or 4); also returns the bound."""
    posed = ctx.posed
    c = contact_weights(ctx.d_c, ctx.n_c, posed.contact_normal, ctx.scene.alpha, p.beta)
    if phase.q1_bound == "lower":
        q1 = q1_lower(posed.contact_pos, ctx.n_c, c, mu=p.mu, torque_scale=ctx.scene.torque_scale,
                      k_contacts=min(16, ctx.hand.num_contacts))
    else:
        q1 = q1_upper(posed.contact_pos, ctx.n_c, c, mu=p.mu, torque_scale=ctx.scene.torque_scale,
                      directions=ctx.scene.directions)
    return losses.loss_q1(q1), q1


def term_coll(ctx: Context, p: LossParams, phase: Phase) -> jax.Array:
    """Active hand samples inside the object plus active object points inside the hand.

    With the hand file's collision geoms attached (``hand.geoms``,
    :func:`jaxgrasp.planning.geom_check.with_geoms`), the hand is those geoms: their core points
    (:func:`jaxgrasp.hand.geom_cores.geom_core_points`: sphere centres, capsule axes, polytope
    vertices) are pushed ``radius + collision_margin`` out of the object beside the samples, and the
    object points are measured inside the geoms themselves; otherwise inside the link hulls.
    """
    hand, posed, scene = ctx.hand, ctx.posed, ctx.scene
    d_s, _ = signed_distance(scene.obj, posed.sample_pos[ctx.sample_idx] + scene.com, exact=False)
    loss = losses.loss_collision((d_s - p.collision_margin) / p.penetration_scale)
    obj_pts = scene.object_points[ctx.object_idx]
    no_skip = jnp.zeros((obj_pts.shape[0], hand.num_bodies), bool)
    pen_obj = nearest_hull_depth(hand, posed.T_world_body, obj_pts, no_skip)
    if hand.geoms is not None:
        core, radius = geom_core_points(hand.geoms, posed.T_world_body)
        d_core, _ = signed_distance(scene.obj, core + scene.com, exact=False)
        loss = loss + losses.loss_collision((d_core - radius - p.collision_margin) / p.penetration_scale)
        # the primitives exactly; a mesh geom through its link hull (the same convex hull, simplified
        # to <= 96 planes: its own hull has up to ~2,300 and made a step 10x slower)
        exact = geom_depth(hand.geoms, posed.T_world_body, obj_pts, kinds=PRIMITIVES)
        pen_obj = jnp.maximum(pen_obj, jnp.max(exact, axis=1))
    return loss + losses.loss_collision(-pen_obj / p.penetration_scale)


def term_self(ctx: Context, p: LossParams, phase: Phase) -> jax.Array:
    """The first ``phase.self_samples`` hand samples inside other links' hulls."""
    k = min(phase.self_samples, ctx.hand.num_samples)
    pen_self = nearest_hull_depth(ctx.hand, ctx.posed.T_world_body, ctx.posed.sample_pos[:k],
                                  ctx.hand.collision_exclude[ctx.hand.sample_body[:k]])
    return losses.loss_self_collision(pen_self / p.penetration_scale)


def term_guide(ctx: Context, p: LossParams, phase: Phase) -> jax.Array:
    """Contact candidates' squared distances in object sizes."""
    return losses.loss_guide(ctx.d_c * ctx.scene.torque_scale)


def term_touch(ctx: Context, p: LossParams, phase: Phase) -> jax.Array:
    """Near, facing candidates pulled to within ``touch_target`` of the surface (squeeze)."""
    w = touch_weights(ctx.d_c, ctx.n_c, ctx.posed.contact_normal, p.touch_capture, p.contact_cos)
    return losses.loss_touch(ctx.d_c, w, target=p.touch_target, scale=p.touch_scale)


# The loss terms by name: each a small pure function of the shared context.
TERMS: dict[str, Callable] = {"q1": term_q1, "coll": term_coll, "self": term_self, "guide": term_guide,
                              "touch": term_touch}


def grasp_terms(hand: HandModel, scene: Scene, config: jax.Array, sample_idx: jax.Array, object_idx: jax.Array,
                params: LossParams, phase: Phase) -> dict[str, jax.Array]:
    """The unweighted terms of ``phase`` for one configuration ``(6 + I,)`` (centred frame).

    Returns:
        ``{term: ()}`` for ``phase.terms``, plus the raw Q1 bound ``"q1_bound"`` when the
        ``"q1"`` term is among them.
    """
    posed = pose_hand(hand, config)
    d_c, n_c = signed_distance(scene.obj, posed.contact_pos + scene.com, exact=False)
    ctx = Context(hand, scene, posed, d_c, n_c, sample_idx, object_idx)
    out = {}
    for name in phase.terms:
        value = TERMS[name](ctx, params, phase)
        if name == "q1":
            value, out["q1_bound"] = value
        out[name] = value
    return out


def grasp_loss(hand: HandModel, scene: Scene, config: jax.Array, sample_idx: jax.Array, object_idx: jax.Array,
               params: LossParams, phase: Phase) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``(total, terms)`` of one configuration: the weighted sum of :func:`grasp_terms`."""
    terms = grasp_terms(hand, scene, config, sample_idx, object_idx, params, phase)
    total = sum(params.weights[k] * terms[k] for k in phase.terms)
    return total, terms


def loss_params(evaluation: EvalConfig, loss: LossConfig, squeeze: SqueezeConfig, *,
                weights: losses.LossWeights | None = None, collision_margin: float | None = None,
                dtype=jnp.float32) -> LossParams:
    """The traced numbers of the loss from the settings (host side).

    Args:
        weights: override ``loss.weights`` (the squeeze phase's raised collision weights).
        collision_margin: override ``loss.collision_margin``.
    """
    w = (weights or loss.weights).as_dict()
    f = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    return LossParams(
        weights={k: f(w[k]) for k in TERMS}, mu=f(evaluation.mu), beta=f(evaluation.beta),
        penetration_scale=f(loss.penetration_scale),
        collision_margin=f(loss.collision_margin if collision_margin is None else collision_margin),
        touch_capture=f(squeeze.capture), touch_target=f(squeeze.target), touch_scale=f(evaluation.contact_tolerance),
        contact_cos=f(evaluation.contact_cos))


def default_start_map() -> str:
    """``"map"`` on the CPU, ``"vmap"`` elsewhere (host side; measured in docs/decisions.md)."""
    return "map" if jax.default_backend() == "cpu" else "vmap"


def touch_weights(d: jnp.ndarray, n_obj: jnp.ndarray, n_grip: jnp.ndarray, capture: float,
                  contact_cos: float) -> jnp.ndarray:
    """Which contact candidates the touch term pulls onto the surface, ``(N,)`` in [0, 1].

    A candidate counts when its hand normal faces the object (smoothly, the exact evaluation's
    test ``n_obj . n_grip < -contact_cos``) and it is near: weight ``exp(-max(d, 0) / capture)``,
    1 inside. The weights are constants of the step (``stop_gradient``): otherwise the cheapest
    way to lower the term would be to move candidates away, out of the capture range.

    Args:
        d: (N,) signed distances [m]; n_obj, n_grip: (N, 3) object and hand normals.
        capture: [m] distance scale of the near weight; contact_cos: see above.
    """
    cos = jnp.sum(n_obj * n_grip, axis=-1)
    facing = jax.nn.sigmoid(20.0 * (-cos - contact_cos))
    return jax.lax.stop_gradient(facing * jnp.exp(-jnp.maximum(d, 0.0) / capture))


def active_sets(hand: HandModel, scene: Scene, config: jnp.ndarray, num_samples: int, num_points: int):
    """The hand samples and object points most likely to collide, for one configuration.

    Proximity is measured against the other side's point sample (one dense product), so the
    loop checks ``num_samples`` hand samples and ``num_points`` object points instead of all,
    without missing the ones in contact. Re-chosen every chunk of steps.

    Returns:
        ``(sample_idx (num_samples,), object_idx (num_points,))`` int32.
    """
    posed = pose_hand(hand, config)
    p, o = posed.sample_pos, scene.object_points
    d2 = jnp.sum(p * p, 1)[:, None] - 2.0 * p @ o.T + jnp.sum(o * o, 1)[None, :]
    _, si = jax.lax.top_k(-jnp.min(d2, axis=1), num_samples)
    _, oi = jax.lax.top_k(-jnp.min(d2, axis=0), num_points)
    return si.astype(jnp.int32), oi.astype(jnp.int32)
