"""Validity by the hand file's real collision geoms (issue 23.1).

The planner's loss and its first, cheap check use the hand's surface samples and link hulls. What
decides validity, and what is reported, is the penetration between the hand file's own collision
geoms (the ones MuJoCo collides: spheres, capsules, boxes, cylinders, ellipsoids, mesh hulls) and
the object mesh, both ways (:func:`jaxgrasp.hand.geoms.geom_penetration`, within 0.01 mm of MuJoCo
on convex objects). A box corner between two samples, a capsule tessellated into samples or the
object's edge inside a geom are what the sampled check misses (by 0.5-1 mm on the YCB scans).

The geom check costs ~0.3-0.7 s on a 16k-face scan on this CPU, so :func:`jaxgrasp.planning.evaluation.evaluate`
runs it only on grasps the sampled check already accepts.

Large meshes (:data:`~jaxgrasp.mesh.local.LARGE_FACES`) are checked on the faces whose bounding
spheres meet each geom's bounding sphere widened by :data:`MARGIN`. That is exact for every geom
point within ``MARGIN`` of the surface (its nearest face is among them). A geom point deeper than
``MARGIN`` would put the hand's samples on that geom's surface within the sample spacing (< 5 mm)
of it more than ``MARGIN - 5 mm`` deep. The grasp would then have failed the sampled check, and
this check is not run on such a grasp.
"""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrasp.hand.geoms import (
    BOX,
    CAPSULE,
    CYLINDER,
    ELLIPSOID,
    SPHERE,
    HandGeoms,
    geom_penetration,
    geom_poses,
    load_geoms,
)
from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.hand.model import HandModel
from jaxgrasp.mesh import local
from jaxgrasp.mesh.objects import Object
from jaxgrasp.planning.engine import compile_ahead
from jaxgrasp.planning.prepared import PreparedObject

__all__ = ["MARGIN", "compile_geom_check", "geom_metrics", "geom_radii", "hand_geoms", "with_geoms"]

MARGIN = 0.01  # [m] widening of the geoms' bounding spheres on large meshes (module docstring)

_cache: dict = {}
_lock = threading.Lock()


def hand_geoms(hand: HandModel) -> HandGeoms:
    """The hand's collision geoms (:func:`jaxgrasp.hand.geoms.load_geoms`), loaded once per hand
    file, body list and dtype in this process (loading compiles the hand file with MuJoCo), or
    the ones attached to it (:func:`with_geoms`)."""
    if hand.geoms is not None:
        return hand.geoms
    key = (hand.path, tuple(hand.body_names), str(hand.body_pos.dtype))
    with _lock:
        if key not in _cache:
            _cache[key] = load_geoms(hand)
        return _cache[key]


def with_geoms(hand: HandModel) -> HandModel:
    """``hand`` with its collision geoms attached (``hand.geoms``): the planner's collision term then
    measures the geoms themselves (:func:`jaxgrasp.planning.objective.term_coll`)."""
    return hand if hand.geoms is not None else hand.replace(geoms=hand_geoms(hand))


def geom_radii(geoms: HandGeoms) -> np.ndarray:
    """(G,) radius [m] of a ball about each geom's origin that contains the geom."""
    size, pts, owner = (np.asarray(a, np.float64) for a in (geoms.size, geoms.points, geoms.point_geom))
    out = np.zeros(len(geoms.names))
    for g, kind in enumerate(geoms.types):
        s = size[g]
        base = {SPHERE: s[0], CAPSULE: s[0] + s[1], ELLIPSOID: s[:3].max(), CYLINDER: np.hypot(s[0], s[1]),
                BOX: np.linalg.norm(s[:3])}.get(kind, 0.0)
        own = pts[owner == g]
        out[g] = max(base, np.linalg.norm(own, axis=1).max() if len(own) else 0.0)
    return out


def _posed(hand: HandModel, obj: Object, x):
    """Body poses ``(B, 4, 4)`` of configuration ``x`` (centred frame) in the object's frame."""
    T = pose_hand(hand, x).T_world_body
    return T.at[:, :3, 3].add(obj.center_of_mass.astype(T.dtype))


@jax.jit
def _check(hand: HandModel, geoms: HandGeoms, obj: Object, points, x):
    return geom_penetration(geoms, _posed(hand, obj, x), obj, points)


@jax.jit
def _centres(hand: HandModel, geoms: HandGeoms, obj: Object, x):
    return geom_poses(geoms, _posed(hand, obj, x))[1]


def geom_metrics(hand: HandModel, prep: PreparedObject, x) -> dict:
    """Penetration of the hand's collision geoms at configuration ``x (6 + I,)`` (centred frame)
    with the full object, both ways.

    Returns:
        ``geom_penetration_mm`` (the largest of the three below, per geom), ``geom_hand_in_object_mm``
        (deepest geom point inside the object), ``geom_object_in_hand_mm`` (deepest object point
        inside a geom), ``geom_contact_mm`` (the contact depth, as MuJoCo's), ``deepest_geom`` (its
        name).
    """
    geoms = hand_geoms(hand)
    obj = prep.obj
    x = jnp.asarray(x, hand.body_pos.dtype)
    if prep.index is not None:  # a large mesh: the faces near the geoms (module docstring)
        c = np.asarray(_centres(hand, geoms, obj, x), np.float64)
        obj, _ = local.sub_object(obj, prep.index, c, geom_radii(geoms) + MARGIN)
    pen = jax.device_get(_check(hand, geoms, obj, prep.eval_points, x))
    g = int(np.argmax(pen.per_geom))
    return {"geom_penetration_mm": 1e3 * float(pen.depth),
            "geom_hand_in_object_mm": 1e3 * float(np.max(pen.hand_in_object)),
            "geom_object_in_hand_mm": 1e3 * float(np.max(pen.object_in_hand)),
            "geom_contact_mm": 1e3 * float(np.max(pen.contact)),
            "deepest_geom": geoms.names[g]}


def compile_geom_check(hand: HandModel, prep: PreparedObject) -> None:
    """Compile :func:`geom_metrics`'s kernel for this hand and padded mesh size ahead of time
    (nothing runs; a large mesh's sub-meshes compile as they come)."""
    if prep.index is not None:
        return
    x = jax.ShapeDtypeStruct((6 + hand.num_independent,), hand.body_pos.dtype)
    compile_ahead(_check, hand, hand_geoms(hand), prep.obj, prep.eval_points, x)
