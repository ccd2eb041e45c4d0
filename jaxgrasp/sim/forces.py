"""Contact forces of a grasp, and the pregrasp and squeeze poses derived from them (host side:
NumPy, SciPy and C MuJoCo on a scene of :func:`jaxgrasp.sim.scene.build_scene`).

:func:`grasp_poses` fills a grasp dict's schema-2 fields (``pregrasp_joint_angles``,
``squeeze_joint_angles``, ``forces``; :mod:`jaxgrasp.planning.grasp_io`);
:func:`derive_poses` does the same on a built scene (the simulation calls it when a grasp file
has no pregrasp or squeeze).

**Contacts** (:func:`hand_object_contacts`): the hand-object contacts MuJoCo's collision finds at
the grasp (hand at its joint angles, object at rest), with every object geom's margin raised to
``SimConfig.contact_margin`` (3 mm) for this query only: a pad a few tenths of a millimetre off the
surface (the planner stops at contact, the MuJoCo geoms differ slightly from its annotation,
docs/decisions.md) still counts, while a finger a centimetre away does not; the squeeze closes
that small gap. Each contact: MuJoCo's point (midway between the surfaces), its normal (the
direction of the force on the object, into it), the hand body.

**Forces** (:func:`solve_forces`): for each test wrench ``w_k`` (force ``force_safety *
force_per_kg * mass`` along +-x, +-y, +-z at the centre of mass, as the protocol pushes) one linear
program (SciPy HiGHS): contact forces on the object ``f_i = sum_j w_ij e_ij``, ``w_ij >= 0``, over
the ``E = 8`` edges ``e_ij = n_i + mu cos(pi/E) (cos a_j t1_i + sin a_j t2_i)`` of the polyhedral
cone *inscribed* in the friction cone (so every solution lies in MuJoCo's elliptic cone), normal
forces ``min_normal_force <= f_n,i <= max_normal_force`` (the lower bound makes every contact
press), and the grasp's wrench balancing the test wrench: ``sum_i [f_i; (p_i - c) x f_i] = -w_k``.
The objective is the largest normal force (plus 1e-3 times their sum, which picks the least
pressing among equal maxima). The grasp is *feasible* when all six programs are, and the squeeze
program below too.

**Squeeze force set**: one set of position targets must serve all six pushes, so the squeeze is
one more program of the same kind: a *self-balanced* (internal) force set, ``sum_i [f_i; (p_i - c)
x f_i] = 0``, in the cones, whose every normal force is at least the largest any push needs at
that contact (``f_n,i >= max_k f_n,k,i``). Balanced, because the squeeze alone must not push the
free object (an unbalanced set, e.g. the normals' envelope, moves it until the compliant fingers
balance it, and that motion counts against the thresholds); at least the push's normal forces, because the pads' pressing sets the friction each
direction can draw on. ``force_safety`` (3): the programs are quasi-static and rigid, while the
simulated fingers are compliant position servos (``kp`` 5: about 1 N per mm at a fingertip) that
close onto a free object; on the sphere fixture a squeeze solved for 1x the push lets the sphere
turn away at 10 N/kg and 98.1 N/kg, 3x holds both.

**Squeeze targets** (:func:`squeeze_from_forces`, as Dexonomy: ``q_squeeze = q_grasp + K^-1 J^T
f``): joint torques ``tau = sum_i J_i^T f_i`` (``mj_jac`` of the hand body at the contact point:
the torques the actuators must hold for the hand to press with ``f`` while the object blocks it),
on the independent joints through the couplings (``C^T tau``, ``C = dq / dq_independent``), mapped
to actuator forces ``a`` by least squares on the actuators' transmission (``A^T a = C^T tau``,
``A = d length / d q_independent``: joint, tendon and geared actuators alike), targets ``ctrl =
length(q_grasp) + a / kp`` (the scene's position gains), clipped to the control ranges; the
squeeze joint angles are the independent angles that reach those lengths (clipped to the joint
limits), coupled. Palm contacts have no joint: the welded palm supplies their force. A grasp
without contacts, or whose programs are infeasible, falls back to the old fixed fraction-of-range
squeeze (:func:`jaxgrasp.sim.scene.squeeze_angles`, ``SimConfig.squeeze``); ``squeeze_source``
says which (``"forces"``, ``"fallback:no_contacts"``, ``"fallback:infeasible"``).

**Pregrasp** (:mod:`jaxgrasp.sim.pregrasp`): the closing joints opened until the fingers are
``pregrasp_clearance`` from the object, and the palm backed off along its normal until the whole
hand is (or by ``SimConfig.pregrasp_palm_backoff``).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import jax
import mujoco
import numpy as np
import trimesh
from scipy.optimize import linprog

from jaxgrasp.hand.kinematics import couple
from jaxgrasp.hand.model import load_hand
from jaxgrasp.planning.grasp_io import SCHEMA
from jaxgrasp.sim.grasp_files import object_mesh_of
from jaxgrasp.sim.pregrasp import (
    collide_with_margin,
    couple_np,
    data_at,
    independent_np,
    palm_pose_of,
    pregrasp_angles,
    pregrasp_palm_pose,
)
from jaxgrasp.sim.protocol import DIRECTIONS, SimConfig
from jaxgrasp.sim.scene import (
    Scene,
    build_scene,
    convex_pieces,
    palm_mocap,
    squeeze_angles,
)

__all__ = ["Contacts", "ForceSolution", "GraspPoses", "derive_poses", "grasp_poses", "grasp_protocol_poses", "grasp_scene",
           "hand_object_contacts", "joint_torques", "point_jacobians", "joint_vector", "push_wrenches", "pregrasp_angles", "solve_forces", "squeeze_from_forces"]

@dataclasses.dataclass(frozen=True)
class Contacts:
    """Hand-object contacts, world frame.

    Attributes:
        points: ``(C, 3)`` contact points (midway between the surfaces).
        frames: ``(C, 3, 3)`` rows: normal (force direction on the object, into it), two tangents.
        dist: ``(C,)`` signed distances (negative: penetrating).
        bodies: ``(C,)`` hand body ids.
        names: hand body names.
        com: ``(3,)`` the object's centre of mass.
    """

    points: np.ndarray
    frames: np.ndarray
    dist: np.ndarray
    bodies: np.ndarray
    names: tuple[str, ...]
    com: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


@dataclasses.dataclass(frozen=True)
class ForceSolution:
    """Contact forces that resist the six test wrenches.

    Attributes:
        forces: ``(6, C, 3)`` force on the object at each contact, per direction (DIRECTIONS
            order; NaN where that direction's program is infeasible).
        feasible: ``(6,)`` per direction.
        wrenches: ``(6, 6)`` the test wrenches ``[force; torque about the centre of mass]``.
        squeeze: ``(C, 3)`` the squeeze force set (module docstring; NaN when none exists).
    """

    forces: np.ndarray
    feasible: np.ndarray
    wrenches: np.ndarray
    squeeze: np.ndarray

    @property
    def all_feasible(self) -> bool:
        """Every push resisted, and a balanced squeeze exists."""
        return bool(np.all(self.feasible)) and bool(np.all(np.isfinite(self.squeeze)))

    @property
    def max_normal_force(self) -> float:
        """Largest squeeze normal force [N] (NaN without contacts)."""
        return float(np.linalg.norm(self.squeeze, axis=-1).max()) if len(self.squeeze) else float("nan")


@dataclasses.dataclass(frozen=True)
class GraspPoses:
    """Pregrasp, grasp and squeeze joint angles ``(J,)``, the pregrasp's palm pose, and how they
    were derived."""

    pregrasp: np.ndarray
    grasp: np.ndarray
    squeeze: np.ndarray
    squeeze_source: str
    contacts: Contacts
    solution: ForceSolution | None
    pregrasp_clear: bool
    actuator_forces: np.ndarray | None  # (nu,) the squeeze's actuator forces [N or N m]
    pregrasp_palm: np.ndarray | None = None  # (4, 4) the pregrasp's palm (root body) pose
    palm_backoff: float = 0.0  # [m] how far it is backed off from the grasp's
    palm_clear: bool = True  # every hand geom pregrasp_clearance from the object there (derived backoff)


# ----------------------------------------------------------------------------------------------
# Contacts and forces
# ----------------------------------------------------------------------------------------------


def hand_object_contacts(scene: Scene, q: np.ndarray, margin: float) -> Contacts:
    """Hand-object contacts at joint angles ``q (J,)`` (object at rest) within ``margin`` [m]."""
    m = scene.model
    d = data_at(scene, q)
    collide_with_margin(scene, d, margin)
    obj, hand = set(scene.object_geoms.tolist()), set(scene.hand_geoms.tolist())
    pts, frames, dist, bodies = [], [], [], []
    for c in d.contact[: d.ncon]:
        g1, g2 = int(c.geom1), int(c.geom2)
        if not ((g1 in hand and g2 in obj) or (g2 in hand and g1 in obj)) or c.dist >= margin:
            continue
        fr = np.asarray(c.frame, np.float64).reshape(3, 3)  # normal from geom1 to geom2
        if g1 in obj:
            fr = np.stack([-fr[0], fr[2], fr[1]])  # into the object, still right-handed
        pts.append(np.asarray(c.pos, np.float64))
        frames.append(fr)
        dist.append(float(c.dist))
        bodies.append(int(m.geom_bodyid[g1 if g1 in hand else g2]))
    names = tuple(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) or str(b) for b in bodies)
    return Contacts(np.reshape(pts, (-1, 3)), np.reshape(frames, (-1, 3, 3)), np.asarray(dist, np.float64),
                    np.asarray(bodies, np.int64), names, np.array(d.xipos[scene.object_body]))


def push_wrenches(force: float) -> np.ndarray:
    """``(6, 6)`` the protocol's pushes as wrenches ``[force; torque]`` at the centre of mass."""
    w = np.zeros((len(DIRECTIONS), 6))
    w[:, :3] = force * np.asarray([u for _, u in DIRECTIONS], np.float64)
    return w


def solve_forces(contacts: Contacts, wrenches: np.ndarray, *, mu: float, min_normal: float, max_normal: float,
                 edges: int = 8) -> ForceSolution:
    """The linear programs of the module docstring, one per wrench.

    Args:
        contacts: ``C >= 1`` contacts.
        wrenches: ``(K, 6)`` external wrenches to resist.
        mu: friction coefficient.
        min_normal, max_normal: bounds on every contact's normal force [N].
        edges: edges of the inscribed polyhedral cone.

    Returns:
        :class:`ForceSolution` (``forces (K, C, 3)``).
    """
    C, E = len(contacts), int(edges)
    a = 2.0 * np.pi * np.arange(E) / E
    mu_in = mu * np.cos(np.pi / E)
    n, t1, t2 = contacts.frames[:, 0], contacts.frames[:, 1], contacts.frames[:, 2]
    e = n[:, None] + mu_in * (np.cos(a)[None, :, None] * t1[:, None] + np.sin(a)[None, :, None] * t2[:, None])  # (C,E,3)
    r = contacts.points - contacts.com
    G = np.concatenate([e, np.cross(r[:, None], e)], -1).reshape(C * E, 6).T  # (6, CE)
    S = np.kron(np.eye(C), np.ones((1, E)))  # (C, CE): normal force of each contact
    A_ub = np.block([[-S, np.zeros((C, 1))], [S, -np.ones((C, 1))]])
    b_ub = np.concatenate([np.full(C, -min_normal), np.zeros(C)])
    cost = np.concatenate([np.full(C * E, 1e-3), [1.0]])
    bounds = [(0, None)] * (C * E) + [(0, max_normal)]
    K = len(wrenches)
    forces, ok = np.full((K, C, 3), np.nan), np.zeros(K, bool)
    for k in range(K):
        res = linprog(cost, A_ub=A_ub, b_ub=b_ub, A_eq=np.c_[G, np.zeros(6)], b_eq=-wrenches[k],
                      bounds=bounds, method="highs")
        if res.status == 0:
            ok[k] = True
            forces[k] = np.einsum("ce,cei->ci", res.x[:-1].reshape(C, E), e)
    fn = np.einsum("kci,ci->kc", forces, n)
    need = np.nanmax(np.where(ok[:, None], fn, np.nan), axis=0) if ok.any() else np.full(C, min_normal)
    # the squeeze: a self-balanced (internal) force set pressing at least as hard as any push needs
    res = linprog(cost, A_ub=A_ub, b_ub=np.concatenate([-need, np.zeros(C)]), A_eq=np.c_[G, np.zeros(6)],
                  b_eq=np.zeros(6), bounds=[(0, None)] * (C * E) + [(0, None)], method="highs")
    squeeze = (np.einsum("ce,cei->ci", res.x[:-1].reshape(C, E), e) if res.status == 0
               else np.full((C, 3), np.nan))
    return ForceSolution(forces, ok, np.asarray(wrenches, np.float64), squeeze)


def point_jacobians(scene: Scene, q: np.ndarray, points: np.ndarray, bodies: np.ndarray) -> np.ndarray:
    """``(C, 3, J)`` Jacobians ``d p_i / d q`` (``mj_jac``) of the points ``points (C, 3)`` fixed to
    the hand bodies ``bodies (C,)``, over the hand joints (``hand.joint_names`` order; hinge and
    slide joints), at joint angles ``q (J,)``."""
    m = scene.model
    d = data_at(scene, q)
    mujoco.mj_fwdPosition(m, d)
    dof = m.jnt_dofadr[_joint_ids(scene)]
    out = np.zeros((len(points), 3, len(dof)))
    jacp = np.zeros((3, m.nv))
    for i, (p, b) in enumerate(zip(points, bodies)):
        mujoco.mj_jac(m, d, jacp, None, np.asarray(p, np.float64), int(b))
        out[i] = jacp[:, dof]
    return out


def joint_torques(scene: Scene, q: np.ndarray, points: np.ndarray, bodies: np.ndarray,
                  forces: np.ndarray) -> np.ndarray:
    """``(J,)`` torques on the hand joints (``hand.joint_names`` order) that press with ``forces
    (C, 3)`` on the object at ``points (C, 3)`` of hand bodies ``bodies (C,)``: ``sum_i J_i^T f_i``."""
    return np.einsum("cij,ci->j", point_jacobians(scene, q, points, bodies), np.asarray(forces, np.float64))


def _joint_ids(scene: Scene) -> np.ndarray:
    m = scene.model
    qadr = np.asarray(m.jnt_qposadr)
    return np.array([int(np.nonzero(qadr == a)[0][0]) for a in scene.hand_qadr])


def _lengths(scene: Scene, q: np.ndarray) -> np.ndarray:
    d = data_at(scene, q)
    mujoco.mj_fwdPosition(scene.model, d)
    return np.array(d.actuator_length, np.float64)


def squeeze_from_forces(scene: Scene, hand, q: np.ndarray, contacts: Contacts, forces: np.ndarray,
                        h: float = 1e-4) -> tuple[np.ndarray, np.ndarray, float]:
    """Squeeze joint angles ``(J,)`` whose position targets press with ``forces (C, 3)`` at the
    contacts of the grasp ``q (J,)``: ``q + K^-1 J^T f`` through the actuators (module docstring).
    The contacts' gaps (up to the margin) are not closed on top: a least-squares motion that moves
    every contact along its normal by its gap also drives links whose gap no joint closes (a
    knuckle beside the object: large spread motions), and on the planned grasps measured it
    pushed objects out (a planned tomato-can grasp holds at 10 N/kg without it and fails with it).

    Returns:
        ``(q_squeeze (J,), actuator forces a (nu,), residual)``: ``residual`` is ``|A^T a - C^T tau|``,
        the torque the actuators cannot give (0 for a fully actuated hand).
    """
    m = scene.model
    Jp = point_jacobians(scene, q, contacts.points, contacts.bodies)  # (C, 3, J)
    tau = np.einsum("cij,ci->j", Jp, np.asarray(forces, np.float64))
    qi = independent_np(hand, q)
    Cm = np.asarray(jax.jacfwd(lambda x: couple(hand, x))(np.asarray(qi, np.asarray(hand.joint_ref).dtype)), np.float64)
    tau_i = Cm.T @ tau
    l0 = _lengths(scene, q)
    A = np.stack([(_lengths(scene, couple_np(hand, qi + h * ek)) - _lengths(scene, couple_np(hand, qi - h * ek))) / (2 * h)
                  for ek in np.eye(len(qi))], 1)  # (nu, I)
    a, *_ = np.linalg.lstsq(A.T, tau_i, rcond=None)
    kp = np.asarray(m.actuator_gainprm[:, 0], np.float64)
    ctrl = l0 + a / np.where(kp > 0, kp, np.inf)
    lim = np.asarray(m.actuator_ctrllimited, bool)
    rng = np.asarray(m.actuator_ctrlrange)
    ctrl[lim] = np.clip(ctrl[lim], rng[lim, 0], rng[lim, 1])
    dqi, *_ = np.linalg.lstsq(A, ctrl - l0, rcond=None)
    idx = np.asarray(hand.independent)
    lo, hi = np.asarray(hand.joint_lower, np.float64)[idx], np.asarray(hand.joint_upper, np.float64)[idx]
    return couple_np(hand, np.clip(qi + dqi, lo, hi)), a, float(np.linalg.norm(A.T @ a - tau_i))


# ----------------------------------------------------------------------------------------------
# Grasp poses
# ----------------------------------------------------------------------------------------------


def derive_poses(scene: Scene, hand, q: np.ndarray, cfg: SimConfig) -> GraspPoses:
    """Pregrasp and squeeze of the grasp ``q (J,)`` on a built scene (module docstring)."""
    q = np.asarray(q, np.float64)
    contacts = hand_object_contacts(scene, q, cfg.contact_margin)
    pre, clear = pregrasp_angles(scene, hand, q, cfg.pregrasp_clearance)
    palm = pregrasp_palm_pose(scene, hand, pre, palm_pose_of(scene), cfg.pregrasp_clearance, cfg.pregrasp_palm_backoff)
    if len(contacts) == 0:
        return GraspPoses(pre, q, squeeze_angles(hand, q, cfg.squeeze), "fallback:no_contacts", contacts, None,
                          clear, None, *palm)
    sol = solve_forces(contacts, push_wrenches(cfg.force_safety * cfg.force_per_kg * scene.mass), mu=cfg.friction,
                       min_normal=cfg.min_normal_force, max_normal=cfg.max_normal_force)
    if not sol.all_feasible:
        return GraspPoses(pre, q, squeeze_angles(hand, q, cfg.squeeze), "fallback:infeasible", contacts, sol,
                          clear, None, *palm)
    q_sq, a, _ = squeeze_from_forces(scene, hand, q, contacts, sol.squeeze)
    return GraspPoses(pre, q, q_sq, "forces", contacts, sol, clear, a, *palm)


def grasp_protocol_poses(grasp: dict, scene: Scene, hand, q: np.ndarray, cfg: SimConfig) -> dict:
    """The pregrasp and squeeze the simulation uses for a grasp: the file's
    ``pregrasp_joint_angles`` / ``squeeze_joint_angles`` / ``pregrasp_palm_pose`` when present
    (schema 2), else derived (:func:`derive_poses`; the palm pose alone:
    :func:`jaxgrasp.sim.pregrasp.pregrasp_palm_pose` at the pregrasp's angles). Without
    ``cfg.start_at_pregrasp`` the pregrasp is the grasp (angles and palm).

    Returns:
        ``{"pregrasp" (J,), "squeeze" (J,), "pregrasp_palm" (4, 4), "palm" (4, 4) the grasp's,
        "squeeze_source", "max_normal_force_n"}``.
    """
    pre, sq = grasp.get("pregrasp_joint_angles"), grasp.get("squeeze_joint_angles")
    derived = None
    if pre is None or sq is None:
        derived = derive_poses(scene, hand, q, cfg)
    block = grasp.get("forces") or {}
    if sq is not None:
        source = f"file:{block.get('squeeze_source', 'unknown')}"
        fn = block.get("max_normal_force")
        fn = float("nan") if fn is None else float(fn)
    else:
        source = derived.squeeze_source
        fn = derived.solution.max_normal_force if derived.solution is not None and source == "forces" else float("nan")
    palm = np.asarray(grasp["palm_pose"]["matrix"], np.float64)
    if not cfg.start_at_pregrasp:
        pre_q, pre_palm = q, palm
    else:
        pre_q = joint_vector(hand, pre) if pre is not None else derived.pregrasp
        if grasp.get("pregrasp_palm_pose") is not None and scene.mocap >= 0:
            pre_palm = np.asarray(grasp["pregrasp_palm_pose"]["matrix"], np.float64)
        elif derived is not None and pre is None:
            pre_palm = derived.pregrasp_palm
        else:
            pre_palm = pregrasp_palm_pose(scene, hand, pre_q, palm, cfg.pregrasp_clearance, cfg.pregrasp_palm_backoff)[0]
    return {"pregrasp": pre_q, "pregrasp_palm": pre_palm, "palm": palm,
            "squeeze": joint_vector(hand, sq) if sq is not None else derived.squeeze,
            "squeeze_source": source, "max_normal_force_n": fn}


def grasp_scene(grasp: dict, cfg: SimConfig, *, hand=None, object_mesh=None):
    """The hand, the built scene and the grasp's joint angles ``(J,)`` of a grasp dict.

    Args:
        grasp: a grasp dict (schema 1 or 2).
        cfg: settings.
        hand: a loaded hand to reuse when it is the grasp's (default: loads ``hand.file``).
        object_mesh: the mesh, a path to it, or None (``object.file``).

    Returns:
        ``(hand, scene, q)``.
    """
    if hand is None or Path(hand.path).resolve() != Path(grasp["hand"]["file"]).resolve():
        f = grasp["hand"]["file"]
        hand = load_hand(f) if Path(f).is_file() else load_hand(grasp["hand"]["name"])
    if object_mesh is None:
        mesh = object_mesh_of(grasp)
    elif isinstance(object_mesh, trimesh.Trimesh):
        mesh = object_mesh
    else:
        mesh = trimesh.load(str(object_mesh), force="mesh")
    q = joint_vector(hand, grasp["joint_angles"])
    pieces = convex_pieces(mesh, threshold=cfg.coacd_threshold, max_pieces=cfg.max_pieces)
    com = np.asarray(grasp["object"].get("center_of_mass", mesh.center_mass), np.float64)
    return hand, build_scene(hand, pieces, np.asarray(grasp["palm_pose"]["matrix"], np.float64), com, cfg), q


def joint_vector(hand, angles: dict) -> np.ndarray:
    """``(J,)`` joint angles in ``hand.joint_names`` order from a ``{name: angle}`` dict."""
    missing = [n for n in hand.joint_names if n not in angles]
    if missing:
        raise ValueError(f"grasp lacks joint angles for {missing} of hand {hand.name}")
    return np.array([angles[n] for n in hand.joint_names], np.float64)


def forces_block(poses: GraspPoses, cfg: SimConfig, test_force: float) -> dict:
    """The schema-2 ``forces`` block (JSON-ready) of derived poses."""
    c, sol = poses.contacts, poses.solution
    out = {"squeeze_source": poses.squeeze_source, "feasible": bool(sol is not None and sol.all_feasible),
           "points": c.points.tolist(), "normals": c.frames[:, 0].tolist(), "links": list(c.names),
           "distances": c.dist.tolist(), "test_force": float(test_force), "pregrasp_clear": bool(poses.pregrasp_clear),
           "palm_backoff": float(poses.palm_backoff), "palm_clear": bool(poses.palm_clear),
           "settings": {"contact_margin": cfg.contact_margin, "min_normal_force": cfg.min_normal_force,
                        "max_normal_force": cfg.max_normal_force, "friction": cfg.friction,
                        "force_safety": cfg.force_safety,
                        "pregrasp_clearance": cfg.pregrasp_clearance,
                        "pregrasp_palm_backoff": cfg.pregrasp_palm_backoff},
           "feasible_directions": {}, "direction_forces": {}, "squeeze_forces": [], "max_normal_force": None}
    if sol is not None:
        for (name, _), ok, f in zip(DIRECTIONS, sol.feasible, sol.forces):
            out["feasible_directions"][name] = bool(ok)
            out["direction_forces"][name] = f.tolist() if ok else None
        out["squeeze_forces"] = sol.squeeze.tolist()
        out["max_normal_force"] = sol.max_normal_force
    return out


def grasp_poses(grasp: dict, *, hand=None, object_mesh=None, config: SimConfig | None = None) -> dict:
    """A schema-2 copy of a grasp dict with ``pregrasp_joint_angles``, ``squeeze_joint_angles``,
    ``pregrasp_palm_pose`` and ``forces`` filled (derived as in the module docstring; any the grasp already had are replaced).

    Args:
        grasp: a grasp dict (``jaxgrasp.grasp/1`` or ``/2``).
        hand: a loaded :class:`jaxgrasp.hand.model.HandModel` to reuse.
        object_mesh: the object mesh (metres, input frame) or its path (default: ``object.file``).
        config: :class:`SimConfig` (friction, force, margins, gains: those of the simulation).

    Returns:
        the new dict (``schema`` ``jaxgrasp.grasp/2``).
    """
    cfg = config or SimConfig()
    hand, scene, q = grasp_scene(grasp, cfg, hand=hand, object_mesh=object_mesh)
    poses = derive_poses(scene, hand, q, cfg)
    out = copy.deepcopy({k: v for k, v in grasp.items() if k != "_source"})
    out["schema"] = SCHEMA
    out["pregrasp_joint_angles"] = dict(zip(hand.joint_names, map(float, poses.pregrasp)))
    out["squeeze_joint_angles"] = dict(zip(hand.joint_names, map(float, poses.squeeze)))
    T = np.asarray(poses.pregrasp_palm, np.float64)
    pos, quat = palm_mocap(T)
    out["pregrasp_palm_pose"] = {"position": pos.tolist(), "quaternion_wxyz": quat.tolist(), "matrix": T.tolist()}
    out["forces"] = forces_block(poses, cfg, cfg.force_safety * cfg.force_per_kg * scene.mass)
    return out
