"""Penetration depths against the hand's link hulls (paper IV.D), one item at a time.

Each link's convex hull is stored in H-representation, ``n . x + offset <= 0`` inside (body
frame). The depth of a point in a hull is ``-max_h (n_h . x + offset_h)``: positive inside (the
distance to the nearest facet plane, exact for points inside). These kernels feed the
self-collision loss (hand samples inside other links' hulls) and the object-in-hand term (object
surface points inside the hand's links); the depth itself is :func:`hull_depth`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgrasp.hand.model import HandModel

# Depth reported for links that are not tested (and padded planes): far outside, never inside.
_OUTSIDE = -1e3


def hull_depth(points: jax.Array, hull_A: jax.Array, hull_b: jax.Array, face_mask: jax.Array) -> jax.Array:
    """Depth of points inside convex hulls ``{x: A x <= b}``, 0 outside.

    Args:
        points: (P, 3) world points [m].
        hull_A: (L, F, 3) unit outward face normals per hull (world frame), padded.
        hull_b: (L, F) offsets [m]; face_mask: (L, F) bool, False for padded faces.

    Returns:
        (P, L) ``max(0, min_f (b_f - a_f . x))``: the distance to the hull boundary for points
        inside (exact for unit normals), 0 outside and for hulls without any valid face.
    """
    slack = hull_b[None] - jnp.einsum("lfk,pk->plf", hull_A, points)  # (P, L, F)
    # padded faces must not bound the hull: a large finite slack (not inf: inf * 0 in the
    # backward pass of the where would give NaN)
    big = jnp.asarray(1e6, slack.dtype)
    depth = jnp.maximum(jnp.min(jnp.where(face_mask[None], slack, big), axis=-1), 0.0)
    return jnp.where(jnp.any(face_mask, axis=-1)[None, :], depth, 0.0)


def world_hulls(hand: HandModel, T_world_body: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """The link hulls in the world as ``{x: A x <= b}`` (the form of :func:`hull_depth`).

    Moving the B*H planes is cheaper than moving every point into every link frame.

    Returns:
        ``A (B, H, 3)`` unit outward normals, ``b (B, H)`` offsets, ``mask (B, H)``.
    """
    R, t = T_world_body[:, :3, :3], T_world_body[:, :3, 3]
    A = jnp.einsum("bij,bhj->bhi", R, hand.hull_normal)
    b = jnp.einsum("bhi,bi->bh", A, t) - hand.hull_offset
    return A, b, hand.hull_mask


def link_spheres(hand: HandModel) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Bounding sphere of every link's surface samples, in the link frame.

    Returns:
        ``(centers (B, 3), radii (B,))``; links without samples get radius -inf (never near).
    """
    B = hand.num_bodies
    count = jnp.zeros(B, hand.sample_pos.dtype).at[hand.sample_body].add(1.0)
    # maximum(count, 1): links without samples would divide by zero; their sphere is unused.
    center = jnp.zeros((B, 3), hand.sample_pos.dtype).at[hand.sample_body].add(hand.sample_pos)
    center = center / jnp.maximum(count, 1.0)[:, None]
    r = jnp.linalg.norm(hand.sample_pos - center[hand.sample_body], axis=-1)
    radius = jnp.full(B, -jnp.inf, r.dtype).at[hand.sample_body].max(r)
    return center, radius


def nearest_hull_depth(hand: HandModel, T_world_body: jnp.ndarray, points: jnp.ndarray, skip: jnp.ndarray,
                       num_links: int = 4) -> jnp.ndarray:
    """Largest depth of each point inside the hulls of its ``num_links`` nearest links.

    Only links whose bounding sphere is among the point's nearest are tested (a point can only
    be inside a hull whose bounding sphere contains it), which makes the cost independent of
    the number of links. Which link and facet bound a point's depth is decided without
    gradients; the depth is then recomputed from that one plane, so the backward pass touches
    one plane per point instead of every plane of ``num_links`` links: the same value and
    subgradient, at about half the cost (measurements: docs/decisions.md, "Self-collision:
    differentiate one plane per sample").

    Args:
        hand: the hand model.
        T_world_body: ``(B, 4, 4)`` posed links.
        points: ``(P, 3)`` world points.
        skip: ``(P, B)`` bool, links never tested for a point (its own link, excluded pairs).
        num_links: links tested per point.

    Returns:
        ``(P,)`` depth >= 0.
    """
    T_const, p_const = jax.lax.stop_gradient(T_world_body), jax.lax.stop_gradient(points)
    R, t = T_const[:, :3, :3], T_const[:, :3, 3]
    A_world, b_world, mask = world_hulls(hand, T_world_body)  # B*H planes: cheap to differentiate
    A, b = jax.lax.stop_gradient(A_world), jax.lax.stop_gradient(b_world)
    center, radius = link_spheres(hand)
    c_world = jnp.einsum("bij,bj->bi", R, center) + t
    gap = jnp.linalg.norm(p_const[:, None, :] - c_world[None], axis=-1) - radius[None]
    gap = jnp.where(skip | ~jnp.isfinite(radius)[None], jnp.inf, gap)
    k = min(num_links, hand.num_bodies)
    neg_gap, links = jax.lax.top_k(-gap, k)  # (P, k) nearest links
    val = jnp.einsum("pkhi,pi->pkh", A[links], p_const) - b[links]
    val = jnp.where(mask[links], val, _OUTSIDE)
    face = jnp.argmax(val, axis=-1)  # (P, k) each tested link's facet nearest the point
    depth = -jnp.take_along_axis(val, face[..., None], axis=-1)[..., 0]
    # Links that were skipped (gap = inf) can fill the top-k when few are left: ignore them.
    depth = jnp.where(jnp.isfinite(neg_gap), depth, _OUTSIDE)
    j = jnp.argmax(depth, axis=-1)[:, None]  # (P, 1) the deepest tested link
    inside = jnp.take_along_axis(depth, j, axis=-1)[:, 0] > 0
    link = jnp.take_along_axis(links, j, axis=-1)[:, 0]
    face = jnp.take_along_axis(face, j, axis=-1)[:, 0]
    # The differentiable depth: the chosen world plane of the chosen link.
    d = b_world[link, face] - jnp.sum(A_world[link, face] * points, axis=-1)
    return jnp.where(inside, jnp.maximum(d, 0.0), 0.0)


def self_penetration(hand: HandModel, T_world_body: jnp.ndarray, sample_pos: jnp.ndarray,
                     sample_body: jnp.ndarray | None = None) -> jnp.ndarray:
    """How deep each hand sample sits inside the hull of a link it may collide with (all links
    tested; see :func:`nearest_hull_depth` for the fast version used in the optimizer).

    Args:
        hand: the hand model.
        T_world_body: ``(B, 4, 4)`` posed links.
        sample_pos: ``(S, 3)`` world positions of the hand's surface samples.
        sample_body: ``(S,)`` link of each sample (default ``hand.sample_body``).

    Returns:
        ``(S,)`` penetration depth >= 0 (0 when outside every non-excluded link).
    """
    body = hand.sample_body if sample_body is None else sample_body
    depth = hull_depth(sample_pos, *world_hulls(hand, T_world_body))
    return jnp.max(jnp.where(hand.collision_exclude[body], 0.0, depth), axis=-1)


def object_in_hand(hand: HandModel, T_world_body: jnp.ndarray, object_points: jnp.ndarray) -> jnp.ndarray:
    """How deep object surface points sit inside the hand's links.

    Args:
        hand: the hand model.
        T_world_body: ``(B, 4, 4)`` posed links.
        object_points: ``(P, 3)`` object surface samples in the world frame.

    Returns:
        ``(P,)`` penetration depth >= 0.
    """
    return jnp.max(hull_depth(object_points, *world_hulls(hand, T_world_body)), axis=-1)
