"""The pregrasp of a grasp: fingers opened and palm backed off (host side: NumPy and C MuJoCo on a
scene of :func:`jaxgrasp.sim.scene.build_scene`), and the scene-state helpers the contact-force
module (:mod:`jaxgrasp.sim.forces`) shares.

DexGraspBench's ``fc_mocap`` sequence starts each push direction at a pregrasp and closes onto the
object; its hand base is a mocap body that moves too. Here:

**Fingers** (:func:`pregrasp_angles`): the closing joints (:func:`jaxgrasp.sim.scene.closing_signs`)
opened together, by steps of 2.5% of their ranges, until no hand geom that the opening moves is
within ``pregrasp_clearance`` (5 mm, MuJoCo's collision with that margin) of the object, clipped to
the joint limits. Geoms the opening does not move (the palm, spread-only links) are not checked:
no opening can clear them; a hand that is not clear even fully open says so (``clear`` False).

**Palm** (:func:`pregrasp_palm_pose`): the grasp's palm pose (the root body's) translated away
from the object along the palm normal reversed (``-R hand.palm_normal``: ``palm_normal`` is in the
root body's frame, the frame ``palm_pose`` places, also for a root forearm), rotation unchanged.
By how much: ``SimConfig.pregrasp_palm_backoff`` when set (0: the palm stays at the grasp, the
welded-palm sequence), else the smallest backoff, in 1 mm steps up to :data:`MAX_PALM_BACKOFF`,
at which the hand geoms that the finger opening left within ``pregrasp_clearance`` of the object
(the palm, a knuckle: the planner's grasps read 1-2 mm deep in MuJoCo) are that far from it and
no hand geom touches it. Only those: on an enclosing grasp a finger on the object's far side comes
*closer* as the palm backs off (the sphere fixture's little finger: no backoff clears the whole
hand), so "the whole hand clear" has no answer there; it is reported (``clear``) where it holds.
Smallest, because the palm is kinematic (it presses the free object with unbounded force) and
its travel over ``close_time`` sets its speed on arrival: about the penetration plus the clearance
(6-7 mm over 0.4 s on the planned grasps measured), where a fixed few centimetres would arrive
several times faster and sweep far-side fingers through the object.
"""

from __future__ import annotations

import mujoco
import numpy as np

from jaxgrasp.hand.kinematics import couple
from jaxgrasp.sim.scene import Scene, closing_signs, palm_mocap

__all__ = ["MAX_PALM_BACKOFF", "backoff_direction", "collide_with_margin", "couple_np", "data_at", "independent_np",
           "palm_pose_of", "pregrasp_angles", "pregrasp_palm_pose"]

MAX_PALM_BACKOFF = 0.05  # [m] the derived palm backoff's limit
BACKOFF_STEP = 0.001  # [m] the derived palm backoff's resolution


def data_at(scene: Scene, q: np.ndarray, T_palm: np.ndarray | None = None) -> mujoco.MjData:
    """Fresh data with the hand at joint angles ``q (J,)`` (its root at ``T_palm (4, 4)`` when given,
    else at the grasp's palm pose) and the object at rest; nothing computed."""
    m = scene.model
    d = mujoco.MjData(m)
    d.qpos[scene.hand_qadr] = q
    d.qpos[scene.object_qadr:scene.object_qadr + 3] = m.body_pos[scene.object_body]
    d.qpos[scene.object_qadr + 3:scene.object_qadr + 7] = (1.0, 0.0, 0.0, 0.0)
    if T_palm is not None and scene.mocap >= 0:
        d.mocap_pos[scene.mocap], d.mocap_quat[scene.mocap] = palm_mocap(T_palm)
    return d


def collide_with_margin(scene: Scene, d: mujoco.MjData, margin: float) -> None:
    """Kinematics and collision with the object geoms' margin set to ``margin`` (restored after)."""
    m = scene.model
    old = m.geom_margin[scene.object_geoms].copy()
    m.geom_margin[scene.object_geoms] = margin
    try:
        mujoco.mj_fwdPosition(m, d)
    finally:
        m.geom_margin[scene.object_geoms] = old


def independent_np(hand, q: np.ndarray) -> np.ndarray:
    """The independent joints' angles ``(I,)`` of ``q (J,)``, float64."""
    return np.asarray(q, np.float64)[np.asarray(hand.independent)]


def couple_np(hand, qi: np.ndarray) -> np.ndarray:
    """All joint angles ``(J,)`` (float64) of independent angles ``qi (I,)`` through the couplings."""
    return np.asarray(couple(hand, np.asarray(qi, np.asarray(hand.joint_ref).dtype)), np.float64)


def _gaps(scene: Scene, d: mujoco.MjData, clearance: float, geoms: set) -> dict:
    """``{geom: smallest distance [m] to the object}`` of the geoms of ``geoms`` within
    ``clearance`` of it in state ``d``."""
    collide_with_margin(scene, d, clearance)
    obj, out = set(scene.object_geoms.tolist()), {}
    for c in d.contact[: d.ncon]:
        g1, g2 = int(c.geom1), int(c.geom2)
        if c.dist < clearance and ((g1 in geoms and g2 in obj) or (g2 in geoms and g1 in obj)):
            g = g1 if g1 in geoms else g2
            out[g] = min(out.get(g, np.inf), float(c.dist))
    return out


def _near(scene: Scene, d: mujoco.MjData, clearance: float, geoms: set) -> set:
    """Geoms of ``geoms`` within ``clearance`` [m] of the object in state ``d``."""
    return set(_gaps(scene, d, clearance, geoms))


def pregrasp_angles(scene: Scene, hand, q: np.ndarray, clearance: float, step: float = 0.025) -> tuple[np.ndarray, bool]:
    """Joint angles ``(J,)`` with the closing joints opened until the moving geoms are
    ``clearance`` [m] from the object (module docstring), and whether that clearance was reached."""
    m = scene.model
    idx = np.asarray(hand.independent)
    lo, hi = np.asarray(hand.joint_lower, np.float64)[idx], np.asarray(hand.joint_upper, np.float64)[idx]
    qi, s = independent_np(hand, q), closing_signs(hand, q)
    opened = lambda t: couple_np(hand, np.clip(qi - s * t * (hi - lo), lo, hi))  # noqa: E731
    d0, d1 = data_at(scene, q), data_at(scene, opened(1.0))
    mujoco.mj_kinematics(m, d0)
    mujoco.mj_kinematics(m, d1)
    moved = np.nonzero(np.abs(d1.geom_xpos - d0.geom_xpos).max(1) + np.abs(d1.geom_xmat - d0.geom_xmat).max(1) > 1e-9)[0]
    moving = set(np.intersect1d(moved, scene.hand_geoms).tolist())
    stuck = _near(scene, data_at(scene, opened(1.0)), clearance, moving)  # no opening clears these (a knuckle)
    for t in np.arange(0.0, 1.0 + 1e-9, step):
        if not (_near(scene, data_at(scene, opened(t)), clearance, moving) - stuck):
            return opened(t), not stuck
    return opened(1.0), not stuck


def palm_pose_of(scene: Scene) -> np.ndarray:
    """``(4, 4)`` world pose of the hand's root body as the scene was built (the grasp's palm pose)."""
    d = mujoco.MjData(scene.model)
    mujoco.mj_kinematics(scene.model, d)
    T = np.eye(4)
    T[:3, :3] = d.xmat[scene.root_body].reshape(3, 3)
    T[:3, 3] = d.xpos[scene.root_body]
    return T


def backoff_direction(hand, T_palm: np.ndarray) -> np.ndarray:
    """``(3,)`` unit world direction the palm backs off along: ``-R hand.palm_normal``."""
    u = -np.asarray(T_palm, np.float64)[:3, :3] @ np.asarray(hand.palm_normal, np.float64)
    return u / np.linalg.norm(u)


def pregrasp_palm_pose(scene: Scene, hand, q_pregrasp: np.ndarray, T_palm: np.ndarray, clearance: float,
                       backoff: float | None = None) -> tuple[np.ndarray, float, bool]:
    """The pregrasp's palm pose (module docstring).

    Args:
        scene: the grasp's scene.
        hand: its :class:`jaxgrasp.hand.model.HandModel` (``palm_normal``).
        q_pregrasp: ``(J,)`` the pregrasp's joint angles.
        T_palm: ``(4, 4)`` the grasp's palm (root body) pose.
        clearance: [m] every hand geom this far from the object (derived backoff).
        backoff: a fixed backoff [m] (None: derived).

    Returns:
        ``(T (4, 4), backoff [m], clear)``: ``clear`` True when every hand geom is
        ``clearance`` from the object there (a fixed backoff: True), False also when the scene's
        palm cannot move (its root is welded: ``T`` is then the grasp's).
    """
    T0 = np.asarray(T_palm, np.float64)
    if scene.mocap < 0:
        return T0.copy(), 0.0, False
    u = backoff_direction(hand, T0)

    def at(t: float) -> np.ndarray:
        T = T0.copy()
        T[:3, 3] += t * u
        return T

    if backoff is not None:
        return at(float(backoff)), float(backoff), True
    hand_geoms = set(scene.hand_geoms.tolist())
    near0 = _near(scene, data_at(scene, q_pregrasp, T0), clearance, hand_geoms)
    first = None  # the first backoff that clears near0, touching or not
    for t in np.arange(0.0, MAX_PALM_BACKOFF + 1e-9, BACKOFF_STEP):
        gaps = _gaps(scene, data_at(scene, q_pregrasp, at(t)), clearance, hand_geoms)
        if not (near0 & set(gaps)):
            first = t if first is None else first
            if min(gaps.values(), default=np.inf) >= 0.0:
                return at(float(t)), float(t), not gaps
    t = MAX_PALM_BACKOFF if first is None else float(first)
    return at(t), t, False
