"""The MuJoCo scene of a grasp: the object's convex pieces, the hand's squeeze and the compiled model.

Used by :mod:`jaxgrasp.simulate` (the protocol, results and command line); host side, NumPy and
``mujoco.MjSpec``.

* **hand** (:func:`build_scene`): the hand file as written (joint equalities, tendons, contact
  exclusions kept); its root body is a *mocap* body (DexGraspBench's ``fc_mocap``: a kinematic
  body that the simulation moves through ``d.mocap_pos`` / ``d.mocap_quat``, :func:`set_palm`),
  at the grasp's palm pose after ``mj_resetData`` (the grasp JSON's ``palm_pose`` places the root
  body in the object's input frame, which is the simulation's world frame). A root that cannot be
  a mocap body (one with joints, or below a static parent) stays welded (``Scene.mocap`` -1; the
  palm then cannot move). Joints driven by the file's position actuators, or, for a hand without
  actuators, one added position actuator per independent joint (``SimConfig.kp``). Hand bodies
  are gravity compensated.
* **object** (:func:`convex_pieces`): a free body at its centre of mass, made of convex pieces: the
  mesh itself when it is convex, else a CoACD convex decomposition (cached under
  ``$JAXGRASP_CACHE`` or ``~/.cache/jaxgrasp/coacd``, keyed by a hash of the mesh and the
  settings), or its convex hull with a warning when ``coacd`` is not installed.
* **contact**: elliptic friction cones, ``condim 4``, ``impratio 10``, ``noslip_iterations 2``,
  implicit-fast integrator and DexGraspBench's stiff contacts (``solref 0.005 1``, ``solimp 0.5
  0.99 0.0001``), zero margin and gap.
* **MJX variant** (``build_scene(..., cylinder_sides=16, numeric={"max_contact_points": 32})``,
  used by :mod:`jaxgrasp.sim.mjx`): cylinders become convex prisms of equal area, mass and
  pose (MJX collides no cylinder with a box or mesh), and MJX's contact cap is stored in the model.
* **fallback squeeze** (:func:`closing_signs`, :func:`squeeze_angles`; the contact-force squeeze is
  :mod:`jaxgrasp.sim.forces`): each independent joint moves by a
  fraction of its range in its closing direction, the direction that moves the hand's contact
  candidates (pads) along their outward normals at the grasp configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import trimesh

from jaxgrasp.hand.kinematics import couple, forward_kinematics
from jaxgrasp.hand.mjcf import _urdf_to_xml_string

OBJECT = "jaxgrasp_object"  # name prefix of the object's body, joint, meshes and geoms


# ----------------------------------------------------------------------------------------------
# Object pieces
# ----------------------------------------------------------------------------------------------


def _cache_dir() -> Path:
    env = os.environ.get("JAXGRASP_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "jaxgrasp") / "coacd"


# Decimation target and CoACD settings of convex_pieces (the threshold and piece cap come from
# SimConfig). "preprocess_mode": CoACD's ("auto": remesh the input through a voxel grid of
# "preprocess_resolution" cells when CoACD finds it not manifold; "on"; "off") or "watertight":
# "off" when the cleaned input mesh is watertight, else "on". "clean": first drop zero-area faces
# and both copies of doubled ones. CoACD's remesh (its "auto" found every decimated scan not
# manifold) gave ~38k faces at resolution 30, whatever the decimation, and cost most of the time
# and 1-2.5 mm of fidelity (95th percentile); a watertight mesh skips it (benchmarks/sim_new_object.py; the
# settings before: 2,000 faces, "auto", resolution 1000, MCTS 60 iterations, depth 3, no cleaning).
MAX_FACES = 1000
COACD_SETTINGS = {"preprocess_mode": "watertight", "preprocess_resolution": 30, "resolution": 500,
                  "mcts_iterations": 30, "mcts_nodes": 10, "mcts_max_depth": 2, "clean": True}


def convex_pieces(mesh: trimesh.Trimesh, *, threshold: float = 0.05, max_pieces: int = 32,
                  max_faces: int = MAX_FACES, settings: dict | None = None,
                  cache: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """Convex pieces ``[(vertices (V, 3), faces (F, 3))]`` of a mesh, in its frame.

    A convex mesh is its own single piece; otherwise CoACD (Wei et al. 2022) decomposes it, the
    result cached by a hash of the mesh and all the settings. Meshes over ``max_faces`` are
    decimated first, and CoACD's MCTS search runs lighter than its defaults, to bound its time
    (:data:`COACD_SETTINGS`, overridden key by key by ``settings``; measurements:
    benchmarks/sim_new_object.py; the earlier 2,000-face settings: docs/decisions.md, "CoACD on a
    2,000-face decimation").
    Without the ``coacd`` package the convex hull is used, with a warning (grasps inside
    concavities then look penetrating).
    """
    v = np.asarray(mesh.vertices, np.float64)
    f = np.asarray(mesh.faces, np.int64)
    if mesh.is_convex or len(f) <= 4:
        return [(v, f)]
    s = {**COACD_SETTINGS, **(settings or {})}
    unknown = set(s) - set(COACD_SETTINGS)
    if unknown:
        raise ValueError(f"unknown convex_pieces settings {sorted(unknown)}; known: {sorted(COACD_SETTINGS)}")
    tag = f"{threshold}/{max_pieces}/{max_faces}/" + "/".join(f"{k}={s[k]}" for k in sorted(s))
    key = hashlib.sha256(v.tobytes() + f.tobytes() + tag.encode()).hexdigest()[:20]
    file = _cache_dir() / f"{key}.npz"
    if cache and file.is_file():
        z = np.load(file)
        return [(z[f"v{i}"], z[f"f{i}"]) for i in range(int(z["n"]))]
    try:
        import coacd  # third-party, imported here: without it (no wheel for the platform) the convex hull
    except ImportError:
        warnings.warn("coacd is not installed: the object is simulated as its convex hull "
                      "(pip install coacd for a convex decomposition)", stacklevel=2)
        h = mesh.convex_hull
        return [(np.asarray(h.vertices), np.asarray(h.faces))]
    coacd.set_log_level("error")
    work = mesh
    if s["clean"]:  # scans' stray slivers (zero-area or doubled faces) make a closed mesh look open
        _, inv, count = np.unique(np.sort(f, axis=1), axis=0, return_inverse=True, return_counts=True)
        keep = (count[inv.ravel()] == 1) & mesh.nondegenerate_faces()
        work = trimesh.Trimesh(v, f[keep], process=True)
        work.remove_unreferenced_vertices()
    mode = s["preprocess_mode"]
    if mode == "watertight":
        mode = "off" if work.is_watertight else "on"
    if len(work.faces) > max_faces:
        work = work.simplify_quadric_decimation(face_count=max_faces)
    wv, wf = np.asarray(work.vertices, np.float64), np.asarray(work.faces, np.int64)
    parts = coacd.run_coacd(coacd.Mesh(wv, wf), threshold=threshold, max_convex_hull=max_pieces, seed=0,
                            preprocess_mode=mode, preprocess_resolution=s["preprocess_resolution"],
                            resolution=s["resolution"], mcts_iterations=s["mcts_iterations"],
                            mcts_nodes=s["mcts_nodes"], mcts_max_depth=s["mcts_max_depth"])
    pieces = [(np.asarray(pv, np.float64), np.asarray(pf, np.int64)) for pv, pf in parts]
    if cache:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp.npz")
        np.savez(tmp, n=len(pieces), **{f"v{i}": p[0] for i, p in enumerate(pieces)},
                 **{f"f{i}": p[1] for i, p in enumerate(pieces)})
        os.replace(tmp, file)
    return pieces


# ----------------------------------------------------------------------------------------------
# Squeeze direction
# ----------------------------------------------------------------------------------------------


def closing_signs(hand, q: np.ndarray, min_ratio: float = 0.3) -> np.ndarray:
    """Closing direction of every independent joint at joint angles ``q (J,)``: +1, -1 or 0.

    A joint closes in the direction that moves the contact candidates it carries along their
    outward normals (towards what the pads face): ``s_i = sign(sum_c n_c . dp_c/dq_i)``. Joints
    whose pads mostly move sideways (``|sum| < min_ratio * sum |.|``, e.g. finger spread) get 0.

    Returns:
        ``(I,)`` float array over ``hand.independent``.
    """
    idx = np.asarray(hand.independent)
    dtype = hand.body_pos.dtype

    def pads(qi):
        T = forward_kinematics(hand, couple(hand, qi))[hand.contact_body]
        return jnp.einsum("cij,cj->ci", T[:, :3, :3], hand.contact_pos) + T[:, :3, 3]

    qi = jnp.asarray(np.asarray(q)[idx], dtype)
    J = np.asarray(jax.jacfwd(pads)(qi), np.float64)  # (C, 3, I)
    T = np.asarray(forward_kinematics(hand, couple(hand, qi)), np.float64)[np.asarray(hand.contact_body)]
    n = np.einsum("cij,cj->ci", T[:, :3, :3], np.asarray(hand.contact_normal, np.float64))
    along = np.einsum("ci,cik->ck", n, J)  # (C, I) normal speed of each pad per joint
    s, total = along.sum(0), np.abs(along).sum(0)
    return np.where(np.abs(s) >= min_ratio * np.maximum(total, 1e-12), np.sign(s), 0.0)


def squeeze_angles(hand, q: np.ndarray, squeeze: float) -> np.ndarray:
    """Joint angles ``(J,)``: the independent joints moved by ``squeeze`` of their range in their
    closing direction (clipped to the limits), the dependent ones through the couplings."""
    idx = np.asarray(hand.independent)
    lo, hi = np.asarray(hand.joint_lower, np.float64)[idx], np.asarray(hand.joint_upper, np.float64)[idx]
    qi = np.asarray(q, np.float64)[idx] + closing_signs(hand, q) * squeeze * (hi - lo)
    qi = np.clip(qi, lo, hi)
    return np.asarray(couple(hand, np.asarray(qi, np.asarray(hand.joint_ref).dtype)), np.float64)


# ----------------------------------------------------------------------------------------------
# Scene
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Scene:
    """A compiled simulation scene (host objects; not a pytree)."""

    model: mujoco.MjModel
    hand_qadr: np.ndarray  # (J,) qpos address of every hand joint, hand.joint_names order
    object_body: int
    object_qadr: int  # qpos address of the object's free joint
    object_geoms: np.ndarray  # geom ids of the object
    hand_geoms: np.ndarray  # geom ids of the hand
    mass: float
    num_pieces: int
    root_body: int = 0  # body id of the hand's root
    mocap: int = -1  # mocap id of the root body (-1: welded at its build pose, cannot move)


def _hand_spec(hand) -> mujoco.MjSpec:
    path = Path(hand.path)
    head = path.read_bytes()[:4096].decode("utf-8", errors="replace")
    if path.suffix.lower() == ".urdf" or "<robot" in head:
        return mujoco.MjSpec.from_string(_urdf_to_xml_string(path))
    return mujoco.MjSpec.from_file(str(path))


def _cylinders_to_prisms(spec: mujoco.MjSpec, sides: int) -> int:
    """Replace every cylinder geom of ``spec`` by a convex ``sides``-gon prism mesh of the same
    pose, half-height and cross-section area (so the same mass at the same density): its
    vertices lie ``sqrt(2 pi / (n sin(2 pi / n)))`` times the radius from the axis (1.3% out for
    n = 16), its edge midpoints that times ``cos(pi / n)`` (0.6% in). Cylinders of one size
    share one mesh (MJX traces one collision function per distinct mesh). Returns how many."""
    cyl = int(mujoco.mjtGeom.mjGEOM_CYLINDER)
    if not any(int(g.type) == cyl for g in spec.geoms):
        return 0
    m0 = spec.compile()  # resolved geom frames (fromto, defaults, alternative orientations)
    meshes: dict[tuple[float, float], str] = {}
    k = 0
    for bi, b in enumerate(spec.bodies):
        bid = mujoco.mj_name2id(m0, mujoco.mjtObj.mjOBJ_BODY, b.name) if b.name else bi
        for j, g in enumerate(b.geoms):  # a body's geoms compile in spec order
            if int(g.type) != cyl:
                continue
            gid = int(m0.body_geomadr[bid]) + j
            assert int(m0.geom_type[gid]) == cyl
            r, h = float(m0.geom_size[gid, 0]), float(m0.geom_size[gid, 1])
            if (r, h) not in meshes:
                t = 2.0 * np.pi * (np.arange(sides) + 0.5) / sides
                re = r * np.sqrt(2.0 * np.pi / (sides * np.sin(2.0 * np.pi / sides)))
                ring = np.stack([re * np.cos(t), re * np.sin(t)], 1)
                v = np.concatenate([np.c_[ring, np.full(sides, -h)], np.c_[ring, np.full(sides, h)]])
                meshes[r, h] = f"jaxgrasp_prism{len(meshes)}"
                spec.add_mesh(name=meshes[r, h], uservert=v.astype(np.float32).flatten())  # its hull
            g.type = mujoco.mjtGeom.mjGEOM_MESH
            g.meshname = meshes[r, h]
            g.fromto = [np.nan] * 6
            g.alt.type = mujoco.mjtOrientation.mjORIENTATION_QUAT
            g.pos, g.quat = np.array(m0.geom_pos[gid]), np.array(m0.geom_quat[gid])
            k += 1
    return k


def build_scene(hand, pieces: list[tuple[np.ndarray, np.ndarray]], T_world_palm: np.ndarray,
                center_of_mass: np.ndarray, cfg, *, cylinder_sides: int | None = None,
                numeric: dict[str, float] | None = None) -> Scene:
    """Compile the hand (root a mocap body at ``T_world_palm``, module docstring) and the free object.

    Args:
        hand: the :class:`jaxgrasp.hand.model.HandModel` (its file is read again with MjSpec).
        pieces: convex pieces of the object in the world (object input) frame, metres.
        T_world_palm: ``(4, 4)`` pose of the hand's root body.
        center_of_mass: ``(3,)`` where the object's body frame is put (world frame).
        cfg: :class:`jaxgrasp.sim.protocol.SimConfig` (timestep, gains, mass, friction).
        cylinder_sides: replace the hand's cylinder geoms by convex prisms with this many sides
            (:func:`_cylinders_to_prisms`; MJX has no cylinder-box or cylinder-mesh collision).
            None (default): keep them.
        numeric: custom numeric fields to add (name -> value; MuJoCo ignores them, MJX reads
            ``max_contact_points`` and ``max_geom_pairs``).
    """
    spec = _hand_spec(hand)
    if cylinder_sides:
        _cylinders_to_prisms(spec, int(cylinder_sides))
    for name, value in (numeric or {}).items():
        spec.add_numeric(name=name, data=[float(value)])
    spec.option.timestep = cfg.timestep
    spec.option.impratio = 10.0
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.noslip_iterations = 2
    spec.option.gravity = [0.0, 0.0, 0.0]  # set per phase (gravity6) on the compiled model

    root = spec.body(hand.body_names[0])
    if root is None:
        raise ValueError(f"{hand.path}: root body {hand.body_names[0]!r} not found by MjSpec")
    # The root's parent is static (no joint above the hand's root): its world pose at qpos0.
    T_w_parent = np.eye(4)
    if root.parent is not None and root.parent.name != "world":
        m0 = spec.compile()
        d0 = mujoco.MjData(m0)
        mujoco.mj_kinematics(m0, d0)
        pid = mujoco.mj_name2id(m0, mujoco.mjtObj.mjOBJ_BODY, root.parent.name)
        T_w_parent[:3, :3] = d0.xmat[pid].reshape(3, 3)
        T_w_parent[:3, 3] = d0.xpos[pid]
    T = np.linalg.inv(T_w_parent) @ np.asarray(T_world_palm, np.float64)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(T[:3, :3]).flatten())
    root.pos, root.quat = T[:3, 3], quat
    # a mocap body: a child of the world without joints (MuJoCo's rule); its pose at mj_resetData
    # is the body's pos/quat, i.e. the grasp's palm pose
    can_move = (root.parent is None or root.parent.name == "world") and len(root.joints) == 0
    root.mocap = bool(can_move)
    for b in spec.bodies:
        if b.name in hand.body_names:
            b.gravcomp = 1.0  # the hand holds itself (matters only for gravity6)

    # Position actuators: the file's (gains overridden on request) or one per independent joint.
    if len(spec.actuators) == 0:
        for j in hand.independent:
            name = hand.joint_names[j]
            a = spec.add_actuator(name=f"jaxgrasp_{name}", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            a.set_to_position(kp=cfg.kp or 5.0)
            a.ctrllimited = True
            a.ctrlrange = [float(hand.joint_lower[j]), float(hand.joint_upper[j])]
    for a in spec.actuators:
        if cfg.kp is not None:
            a.gainprm[0] = cfg.kp
            a.biasprm[1] = -cfg.kp
        if cfg.force_limit is not None:
            a.forcelimited = True
            a.forcerange = [-cfg.force_limit, cfg.force_limit]

    body = spec.worldbody.add_body(name=OBJECT, pos=np.asarray(center_of_mass, np.float64))
    body.add_freejoint(name=f"{OBJECT}_free")
    com = np.asarray(center_of_mass, np.float64)
    volume = sum(abs(trimesh.Trimesh(v, f, process=False).convex_hull.volume) for v, f in pieces)
    density = cfg.object_density if cfg.object_mass is None else cfg.object_mass / max(volume, 1e-12)
    for i, (v, f) in enumerate(pieces):
        spec.add_mesh(name=f"{OBJECT}_piece{i}", uservert=(v - com).astype(np.float32).flatten(),
                      userface=np.asarray(f, np.int32).flatten())
        body.add_geom(name=f"{OBJECT}_geom{i}", type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"{OBJECT}_piece{i}",
                      density=density, contype=1, conaffinity=1)
    for g in spec.geoms:
        g.friction = [cfg.friction, cfg.torsional_friction, 0.0001]
        g.condim = 4
        # DexGraspBench's stiff contacts: large forces at small penetrations.
        g.solref = [0.005, 1.0]
        g.solimp = [0.5, 0.99, 0.0001, 0.5, 2.0]
        g.margin, g.gap = 0.0, 0.0

    model = spec.compile()
    jid = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in hand.joint_names]
    if min(jid) < 0:
        raise ValueError(f"{hand.path}: a hand joint is missing from the compiled scene")
    obj = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, OBJECT)
    geom_body = np.asarray(model.geom_bodyid)
    hand_bodies = {mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in hand.body_names}
    rid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, hand.body_names[0])
    return Scene(
        model=model,
        hand_qadr=np.asarray(model.jnt_qposadr[jid]),
        object_body=obj,
        object_qadr=int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"{OBJECT}_free")]),
        object_geoms=np.nonzero(geom_body == obj)[0],
        hand_geoms=np.nonzero(np.isin(geom_body, list(hand_bodies)))[0],
        mass=float(model.body_subtreemass[obj]),
        num_pieces=len(pieces),
        root_body=rid,
        mocap=int(model.body_mocapid[rid]),
    )


def palm_mocap(T_world_palm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pos (3,), quat (4,) wxyz)`` of a palm pose ``(4, 4)`` (the root's mocap pose)."""
    T = np.asarray(T_world_palm, np.float64)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(T[:3, :3]).flatten())
    return T[:3, 3].copy(), quat


def set_palm(scene: Scene, d: mujoco.MjData, pos: np.ndarray, quat: np.ndarray | None = None) -> None:
    """Put the hand's root (mocap) body at ``pos (3,)`` (and ``quat (4,)`` wxyz when given); kinematics
    not recomputed.

    Raises:
        ValueError: the scene's root is welded (``scene.mocap`` -1).
    """
    if scene.mocap < 0:
        raise ValueError("this scene's hand root is welded (not a mocap body): the palm cannot move")
    d.mocap_pos[scene.mocap] = pos
    if quat is not None:
        d.mocap_quat[scene.mocap] = quat


def ctrl_for(scene: Scene, q: np.ndarray) -> np.ndarray:
    """Actuator targets that hold joint angles ``q (J,)``: each actuator's transmission length at
    ``q`` (so joint, tendon and geared transmissions all work), clipped to its control range."""
    m = scene.model
    d = mujoco.MjData(m)
    d.qpos[scene.hand_qadr] = q
    mujoco.mj_fwdPosition(m, d)
    ctrl = np.array(d.actuator_length, np.float64)
    lim = np.asarray(m.actuator_ctrllimited, bool)
    rng = np.asarray(m.actuator_ctrlrange)
    ctrl[lim] = np.clip(ctrl[lim], rng[lim, 0], rng[lim, 1])
    return ctrl


def penetrations(scene: Scene, d: mujoco.MjData) -> tuple[float, float, int]:
    """Deepest hand-object and hand-hand penetration [m] and the hand-object contact count."""
    obj, hand = set(scene.object_geoms.tolist()), set(scene.hand_geoms.tolist())
    ho, hh, n = 0.0, 0.0, 0
    for c in d.contact[: d.ncon]:
        g1, g2 = int(c.geom1), int(c.geom2)
        if (g1 in obj) != (g2 in obj) and (g1 in hand or g2 in hand):
            ho, n = max(ho, -float(c.dist)), n + 1
        elif g1 in hand and g2 in hand:
            hh = max(hh, -float(c.dist))
    return ho, hh, n


__all__ = ["OBJECT", "Scene", "build_scene", "closing_signs", "convex_pieces", "ctrl_for", "palm_mocap",
           "penetrations", "set_palm", "squeeze_angles"]
