"""Points of the hand's real collision geoms that bound how deep each geom reaches into an object.

A sphere is the ball of radius ``r`` about its centre and a capsule the points within ``r`` of its
axis, so such a geom penetrates an object by ``r - sd(core)`` at a core point, ``sd`` the object's
signed distance; a polytope (box, cylinder's prism, mesh hull) reaches deepest at a vertex when it
crosses a face of the object (``r = 0``). :func:`geom_core_points` poses these points; the planner's
collision term (:func:`jaxgrasp.planning.objective.term_coll`) pushes them out of the object, with
the object's points inside the geoms (:func:`jaxgrasp.hand.geoms.geom_depth`), so the loop aims at
the geometry that decides validity (:mod:`jaxgrasp.planning.geom_check`) rather than at the
tessellated link hulls (8-segment capsules inscribed: up to 7.6% of the radius short).

Between axis points a capsule's depth is interpolated: for a flat face exactly (``sd`` is affine
along the axis), for a face curved at radius ``rho`` short by at most ``(spacing / 2)^2 / (2 rho)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrasp.hand.geoms import CAPSULE, SPHERE, HandGeoms, geom_poses

__all__ = ["AXIS_POINTS", "MAX_VERTICES", "geom_core_points", "vertex_rows"]

AXIS_POINTS = 5  # per capsule axis (ends included): spacing half the axis length / 2
MAX_VERTICES = 16  # polytope vertices kept per geom: every k-th of a mesh hull's, 8 per cylinder rim
# (a rim's deepest point then within r (1 - cos 22.5 deg) = 0.08 r of one; its samples cover the rest)


def vertex_rows(geoms: HandGeoms) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``geoms.points`` that are polytope vertices, at most :data:`MAX_VERTICES` per geom,
    and the geom of each (static, from the geoms' static fields: usable while tracing)."""
    rows, owner = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for g, (start, n) in enumerate(zip(geoms.point_start, geoms.num_vertices)):
        if n:
            rows.append(start + np.arange(0, n, max(1, int(np.ceil(n / MAX_VERTICES)))))
            owner.append(np.full(len(rows[-1]), g))
    return np.concatenate(rows).astype(np.int32), np.concatenate(owner).astype(np.int32)


def geom_core_points(geoms: HandGeoms, T_world_body: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The geoms' core points posed, with the radius around each (one item).

    Args:
        geoms: from :func:`jaxgrasp.hand.geoms.load_geoms`.
        T_world_body: (B, 4, 4) posed bodies.

    Returns:
        ``(points (K, 3), radius (K,))``: a geom point lies within ``radius`` of each; sphere centres,
        :data:`AXIS_POINTS` points along each capsule's axis, polytope vertices (radius 0).
    """
    R, t = geom_poses(geoms, T_world_body)
    dtype = T_world_body.dtype
    pts, rad = [], []
    sph = geoms.of(SPHERE)
    if len(sph):
        pts.append(t[sph])
        rad.append(geoms.size[sph, 0].astype(dtype))
    cap = geoms.of(CAPSULE)
    if len(cap):
        s = jnp.linspace(-1.0, 1.0, AXIS_POINTS, dtype=dtype)
        half = geoms.size[cap, 1].astype(dtype)
        axis = t[cap][:, None, :] + (half[:, None] * s)[..., None] * R[cap][:, None, :, 2]  # (Gc, A, 3)
        pts.append(axis.reshape(-1, 3))
        rad.append(jnp.repeat(geoms.size[cap, 0].astype(dtype), AXIS_POINTS))
    rows, g = vertex_rows(geoms)
    if len(rows):
        pts.append(jnp.einsum("kij,kj->ki", R[g], geoms.points[rows].astype(dtype)) + t[g])
        rad.append(jnp.zeros(len(rows), dtype))
    if not pts:
        return jnp.zeros((0, 3), dtype), jnp.zeros((0,), dtype)
    return jnp.concatenate(pts), jnp.concatenate(rad)
