"""Penetration depths against the hand's link hulls (paper IV.D), one item at a time.

Each link's convex hull is stored in H-representation, ``n . x + offset <= 0`` inside (body
frame). The depth of a point in a hull is ``-max_h (n_h . x + offset_h)``: positive inside (the
distance to the nearest facet plane, exact for points inside), negative outside (a lower bound
on the distance). These kernels feed the self-collision loss (hand samples inside other links'
hulls) and the object-in-hand term (object surface points inside the hand's links).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxgrasp.hand import HandModel

# Depth reported for links without a hull (and for padded planes): far outside, so never inside.
_OUTSIDE = -1e3


def hull_depths(hand: HandModel, T_world_body: jnp.ndarray, points: jnp.ndarray) -> jnp.ndarray:
    """Depth of world points inside every link hull.

    Args:
        hand: the hand model.
        T_world_body: ``(B, 4, 4)`` posed links (``PosedHand.T_world_body``).
        points: ``(P, 3)`` world points.

    Returns:
        ``(P, B)`` depths, positive inside link ``b``'s hull.
    """
    R = T_world_body[:, :3, :3]
    t = T_world_body[:, :3, 3]
    # Move the planes (B*H of them) into the world rather than the points into every link
    # (P*B): then all plane values are one dense (P, 3) x (3, B*H) product.
    n_world = jnp.einsum("bij,bhj->bhi", R, hand.hull_normal)
    o_world = hand.hull_offset - jnp.einsum("bhi,bi->bh", n_world, t)
    B, H = hand.hull_offset.shape
    val = (points @ n_world.reshape(B * H, 3).T + o_world.reshape(B * H)).reshape(-1, B, H)
    val = jnp.where(hand.hull_mask[None], val, _OUTSIDE)
    has_hull = jnp.any(hand.hull_mask, axis=1)
    return jnp.where(has_hull[None], -jnp.max(val, axis=-1), _OUTSIDE)


def self_penetration(hand: HandModel, T_world_body: jnp.ndarray, sample_pos: jnp.ndarray,
                     sample_body: jnp.ndarray | None = None) -> jnp.ndarray:
    """How deep each hand sample sits inside the hull of a link it may collide with.

    Args:
        hand: the hand model.
        T_world_body: ``(B, 4, 4)`` posed links.
        sample_pos: ``(S, 3)`` world positions of the hand's surface samples.
        sample_body: ``(S,)`` link of each sample (default ``hand.sample_body``).

    Returns:
        ``(S,)`` penetration depth >= 0 (0 when outside every non-excluded link).
    """
    body = hand.sample_body if sample_body is None else sample_body
    depth = hull_depths(hand, T_world_body, sample_pos)
    depth = jnp.where(hand.collision_exclude[body], _OUTSIDE, depth)
    return jnp.maximum(jnp.max(depth, axis=-1), 0.0)


def object_in_hand(hand: HandModel, T_world_body: jnp.ndarray, object_points: jnp.ndarray) -> jnp.ndarray:
    """How deep object surface points sit inside the hand's links.

    Args:
        hand: the hand model.
        T_world_body: ``(B, 4, 4)`` posed links.
        object_points: ``(P, 3)`` object surface samples in the world frame.

    Returns:
        ``(P,)`` penetration depth >= 0.
    """
    return jnp.maximum(jnp.max(hull_depths(hand, T_world_body, object_points), axis=-1), 0.0)
