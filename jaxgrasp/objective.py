"""The planner's objective: the problem arrays (:class:`Scene`) and the loss of one configuration.

:func:`grasp_terms` evaluates the compound loss of paper VI.A (generalized Q1 bound, collision,
self-collision, object-in-hand, guide) plus the *touch* term of the contact-closing phase
(:func:`jaxgrasp.losses.loss_touch`) for one configuration in the centred frame; the planner
vmaps it over starts and the trainer over predictions. :func:`active_sets` picks the hand samples
and object points that the collision terms check.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxgrasp import losses
from jaxgrasp.collision import nearest_hull_depth
from jaxgrasp.geometry import signed_distance
from jaxgrasp.hand import HandModel
from jaxgrasp.kinematics import pose_hand
from jaxgrasp.objects import Object
from jaxgrasp.quality import contact_weights, q1_lower, q1_upper


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


def grasp_terms(hand: HandModel, scene: Scene, config: jnp.ndarray, sample_idx: jnp.ndarray,
                object_idx: jnp.ndarray, *, beta: float, mu: float, penetration_scale: float,
                collision_margin: float, self_samples: int, bound: str = "upper", touch_capture: float = 0.01,
                touch_target: float = 0.001, touch_scale: float = 0.003, contact_cos: float = 0.5,
                q1_temperature: float = 0.0, q1_search_steps: int = 0) -> dict[str, jnp.ndarray]:
    """The loss terms of one configuration (centred frame), before weighting.

    Args:
        hand: the hand model.
        scene: the problem arrays.
        config: ``(6 + I,)`` configuration.
        sample_idx: ``(k,)`` hand samples checked against the object (the active set).
        object_idx: ``(m,)`` object points checked against the hand's link hulls.
        beta, mu: contact weight and friction; penetration_scale, collision_margin: see
            :class:`PlanConfig`; self_samples: the first samples used for self-collision.
        touch_capture, touch_target, touch_scale, contact_cos: the touch term (:func:`touch_weights`,
            :func:`jaxgrasp.losses.loss_touch`); [m] except ``contact_cos``.
        q1_temperature: soft minimum over the Q1 bound's directions (``temperature`` of
            :func:`jaxgrasp.quality.q1_upper`; 0: the hard minimum; the upper bound only).
        q1_search_steps: descent steps of the upper bound's direction search (``search_steps``
            of :func:`jaxgrasp.quality.q1_upper`; 0: the fixed directions only).

    Returns:
        ``{"q1": exp(-Q1_upper), "coll", "self", "guide", "touch"}`` and the raw ``"q1_upper"``.
    """
    posed = pose_hand(hand, config)
    d_c, n_c = signed_distance(scene.obj, posed.contact_pos + scene.com, exact=False)
    c = contact_weights(d_c, n_c, posed.contact_normal, scene.alpha, beta)
    if bound == "lower":
        q1 = q1_lower(posed.contact_pos, n_c, c, mu=mu, torque_scale=scene.torque_scale,
                      k_contacts=min(16, hand.num_contacts))
    else:
        q1 = q1_upper(posed.contact_pos, n_c, c, mu=mu, torque_scale=scene.torque_scale, directions=scene.directions,
                      temperature=q1_temperature, search_steps=q1_search_steps)
    d_s, _ = signed_distance(scene.obj, posed.sample_pos[sample_idx] + scene.com, exact=False)
    obj_pts = scene.object_points[object_idx]
    no_skip = jnp.zeros((obj_pts.shape[0], hand.num_bodies), bool)
    pen_obj = nearest_hull_depth(hand, posed.T_world_body, obj_pts, no_skip)
    k = self_samples
    pen_self = nearest_hull_depth(hand, posed.T_world_body, posed.sample_pos[:k],
                                  hand.collision_exclude[hand.sample_body[:k]])
    return {
        "q1": losses.loss_q1(q1),
        "coll": losses.loss_collision((d_s - collision_margin) / penetration_scale)
        + losses.loss_collision(-pen_obj / penetration_scale),
        "self": losses.loss_self_collision(pen_self / penetration_scale),
        "guide": losses.loss_guide(d_c * scene.torque_scale),
        "touch": losses.loss_touch(d_c, touch_weights(d_c, n_c, posed.contact_normal, touch_capture, contact_cos),
                                   target=touch_target, scale=touch_scale),
        "q1_upper": q1,
    }


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


def grasp_loss(hand, scene, config, sample_idx, object_idx, weights: losses.LossWeights, **kw):
    """``(total, terms)`` of one configuration: the weighted sum of :func:`grasp_terms`."""
    terms = grasp_terms(hand, scene, config, sample_idx, object_idx, **kw)
    q1 = terms.pop("q1_upper")
    total, terms = losses.combine(terms, weights)
    return total, {**terms, "q1_upper": q1}
