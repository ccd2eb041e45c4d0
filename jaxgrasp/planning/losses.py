"""Array-level planner losses (paper IV.B-E) and the combiner ``(total, {name: term})``.

Distances are in metres and are divided by a length ``scale`` (default 1: the paper's literal
forms) before squaring. The paper's Table I weights were tuned in its own length unit, which we
read as the object's size (see :mod:`jaxgrasp.quality.q1`: ``alpha = 6 / L``); ``scale = L`` keeps
their balance against ``e^-Q1``, which lies in (0, 1] for Q1 >= 0. Callers may also pass
pre-scaled distances with the default scale.

Terms (names used by :func:`combine` and :class:`LossWeights`):

* ``"q1"``: :func:`loss_q1` ``= exp(-Q1)``, any Q1 estimate (the SOS lower bound can be negative
  when no closure is certified; the loss then exceeds 1 and still has a gradient).
* ``"coll"``: :func:`loss_collision`, penetration of hand samples into the object, plus
  ``"coll_hull"``: :func:`loss_object_in_hull`, object surface points inside the hand's link
  hulls (both weighted by ``c_coll``). The paper's ``exp(-beta min(d, 0)^2)`` is bounded and, as
  printed, decreases with penetration; its ``1 - exp`` reading saturates (vanishing gradient for
  deep penetration). We use the sum of squared penetrations: zero and C^1 at contact, gradient
  growing with depth, same units for every collision term.
* ``"self"``: :func:`loss_self_collision`, points of each link inside the convex hulls of other,
  non-adjacent links (H-representation ``A x <= b``), squared depth.
* ``"guide"``: :func:`loss_guide` ``= sum d^2`` over the contact points.
* ``"touch"``: :func:`loss_touch`, weighted candidates pulled to within a target distance of the
  surface (not in the paper: the planner's contact-closing phase, off in the main loss).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxgrasp.hand.collision import hull_depth


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Loss weights, paper Table I: c_coll 1, c_self 1, c_guide 0.1, c_data 1 (and 1 for e^-Q1);
    ``touch`` (not in the paper) is 0 except in the planner's contact-closing phase."""

    q1: float = 1.0
    coll: float = 1.0
    self_coll: float = 1.0
    guide: float = 0.1
    data: float = 1.0
    touch: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """Weights keyed by term name; ``coll`` weighs both collision terms."""
        return {"q1": self.q1, "coll": self.coll, "coll_hull": self.coll, "self": self.self_coll,
                "guide": self.guide, "data": self.data, "touch": self.touch}


def _masked_sum(x: jax.Array, mask: jax.Array | None, axis=-1) -> jax.Array:
    if mask is not None:
        x = jnp.where(mask, x, 0.0)
    return jnp.sum(x, axis=axis)


def loss_q1(q1: jax.Array) -> jax.Array:
    """``exp(-Q1)`` (elementwise)."""
    return jnp.exp(-q1)


def loss_collision(d_hand_samples: jax.Array, mask: jax.Array | None = None, *,
                   scale: float = 1.0) -> jax.Array:
    """Penetration of hand samples into the object, ``sum max(-d, 0)^2 / scale^2``.

    Args:
        d_hand_samples: (..., P) signed distances of hand sample points to the object [m],
            negative inside.
        mask: optional (..., P) bool, False for padding.
        scale: length unit [m].

    Returns:
        (...) loss.
    """
    pen = jnp.maximum(-d_hand_samples, 0.0) / scale
    return _masked_sum(pen * pen, mask)


def loss_object_in_hull(points_obj_world: jax.Array, hull_A: jax.Array, hull_b: jax.Array,
                        face_mask: jax.Array, point_mask: jax.Array | None = None, *,
                        scale: float = 1.0) -> jax.Array:
    """Object surface points inside the hand's link hulls, ``sum depth^2 / scale^2``.

    Args:
        points_obj_world: (P, 3) object surface samples [m]; point_mask: optional (P,) bool.
        hull_A, hull_b, face_mask: link hulls, see :func:`hull_depth`.
        scale: length unit [m].

    Returns:
        Scalar loss.
    """
    depth = hull_depth(points_obj_world, hull_A, hull_b, face_mask) / scale
    per_point = jnp.sum(depth * depth, axis=-1)
    return _masked_sum(per_point, point_mask)


def loss_self_collision(points: jax.Array, link_ids: jax.Array | None = None, hull_A: jax.Array | None = None,
                        hull_b: jax.Array | None = None, face_mask: jax.Array | None = None,
                        skip: jax.Array | None = None, point_mask: jax.Array | None = None, *,
                        scale: float = 1.0) -> jax.Array:
    """Self-collision (paper IV.D): points of each link inside other links' hulls, squared depth.

    Two call forms:

    * ``loss_self_collision(depths)``: precomputed penetration depths (..., P) [m], positive
      inside; returns ``sum max(depth, 0)^2 / scale^2`` over the last axis.
    * ``loss_self_collision(points, link_ids, hull_A, hull_b, face_mask, skip)``: depths from the
      links' H-representations.

    Args:
        points: (P, 3) samples on the hand's links [m] (or the depths, first form).
        link_ids: (P,) int link of each point.
        hull_A, hull_b, face_mask: (L, F, 3), (L, F), (L, F) link hulls, see :func:`hull_depth`.
        skip: (L, L) bool, True for pairs not to test (a link with itself, adjacent links).
        point_mask: optional (P,) bool, False for padding.
        scale: length unit [m].

    Returns:
        Scalar ``sum_p sum_{l not skipped} depth(p, H_l)^2 / scale^2`` (first form: (...)).
    """
    if link_ids is None:
        pen = jnp.maximum(points, 0.0) / scale
        return _masked_sum(pen * pen, point_mask)
    if hull_A is None or hull_b is None or face_mask is None or skip is None:
        raise ValueError("loss_self_collision with link_ids needs hull_A, hull_b, face_mask and skip")
    depth = hull_depth(points, hull_A, hull_b, face_mask) / scale  # (P, L)
    tested = ~skip[link_ids]  # (P, L)
    per_point = jnp.sum(jnp.where(tested, depth * depth, 0.0), axis=-1)
    return _masked_sum(per_point, point_mask)


def loss_guide(d_contacts: jax.Array, weights: jax.Array | None = None, *, scale: float = 1.0) -> jax.Array:
    """Guide term (paper IV.E), ``sum w_i d_i^2 / scale^2`` over the contact points.

    Args:
        d_contacts: (..., N) signed distances of the contact points [m].
        weights: optional (..., N) weights (e.g. 0 for padding).
        scale: length unit [m].

    Returns:
        (...) loss.
    """
    dd = (d_contacts / scale) ** 2
    if weights is not None:
        dd = weights * dd
    return jnp.sum(dd, axis=-1)


def loss_touch(d_contacts: jax.Array, weights: jax.Array, *, target: float, scale: float = 1.0) -> jax.Array:
    """Touch term, ``sum w_i max(|d_i| - target, 0)^2 / scale^2``: pulls the weighted contact
    candidates to within ``target`` of the surface, from outside or inside.

    The exact Q1 counts a candidate as a contact only within a tolerance (3 mm by default) of the
    surface, while the generalized Q1 bound already rewards near candidates; this term closes
    that gap once a grasp has been found (see ``PlanConfig.squeeze``).

    Args:
        d_contacts: (..., N) signed distances of the contact candidates [m].
        weights: (..., N) weights in [0, 1] (e.g. :func:`jaxgrasp.planning.objective.touch_weights`).
        target: [m] gap below which a candidate costs nothing.
        scale: length unit [m].

    Returns:
        (...) loss.
    """
    gap = jnp.maximum(jnp.abs(d_contacts) - target, 0.0) / scale
    return jnp.sum(weights * gap * gap, axis=-1)


def combine(terms: dict[str, jax.Array], weights: dict[str, float] | LossWeights
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted sum of loss terms.

    Args:
        terms: {name: value} (scalars or equal shapes).
        weights: {name: weight} or a :class:`LossWeights` (its ``as_dict()``); every term needs
            a weight (weights for absent terms are ignored).

    Returns:
        ``(total, terms)`` with the unweighted terms, for logging.
    """
    if isinstance(weights, LossWeights):
        weights = weights.as_dict()
    missing = sorted(set(terms) - set(weights))
    if missing:
        raise ValueError(f"no weight for loss terms {missing}; add them to the weights dict "
                         f"(known: {sorted(weights)})")
    if not terms:
        raise ValueError("combine() needs at least one loss term")
    total = sum(weights[k] * v for k, v in terms.items())
    return total, dict(terms)
