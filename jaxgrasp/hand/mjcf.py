"""Reading hand files: MJCF/URDF through MuJoCo's compiler, then the kinematic tree and couplings.

Host phase (NumPy): the file is compiled by MuJoCo (so meshes with ``scale``, default classes,
``childclass``, includes, fixed bodies and URDF all behave exactly as in MuJoCo), validated, and
its kinematic tree (:class:`TreeSpec`), joint limits and joint couplings (:class:`CouplingSpec`)
are read off the compiled ``MjModel``. :func:`jaxgrasp.hand.model.load_hand` turns them into a
:class:`~jaxgrasp.hand.model.HandModel`.

Couplings: every dependent joint follows one rule, evaluated in dependency order::

    q_dep = offset + A . q + sum_{p=1..4} c_p (B . q - s0)^p

which covers MuJoCo joint equalities (``q1 - q1_0 = poly(q2 - q2_0)``) and fixed-tendon
equalities (``L1 - L1_0 = poly(L2 - L2_0)``, ``L = sum_k coef_k q_k``; the last joint of
tendon1 that is still free becomes the dependent one).
"""

from __future__ import annotations

import dataclasses
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np

from jaxgrasp.core.lie import quat_to_matrix_np
from jaxgrasp.hand.structure import palm_index

HINGE = "hinge"
SLIDE = "slide"

_ROBOTS_ENV = "JAXGRASP_ROBOTS"


class HandLoadError(ValueError):
    """Raised when a hand file cannot be used; the message says what is wrong and what to do."""


# ----------------------------------------------------------------------------------------------
# Finding and compiling files
# ----------------------------------------------------------------------------------------------


def robots_dir() -> Path:
    """The folder of bundled hands (``$JAXGRASP_ROBOTS`` or ``robots/`` beside the package)."""
    env = os.environ.get(_ROBOTS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "robots"


def bundled_hands() -> tuple[str, ...]:
    """Names of the bundled hands (``robots/<name>/<name>.xml``)."""
    root = robots_dir()
    if not root.is_dir():
        return ()
    return tuple(sorted(p.name for p in root.iterdir() if (p / f"{p.name}.xml").is_file()))


def resolve_hand_path(name_or_path: str | os.PathLike) -> Path:
    """Turn a bundled hand name or a file path into an existing file path.

    A bundled hand's bare name (``"shadow"``) always means the bundled hand, never a file or
    folder of that name in the working directory (write ``./shadow`` for those). A folder stands
    for the one MJCF/URDF file inside it.

    Raises:
        HandLoadError: no such hand, or a folder without exactly one hand file.
    """
    s = str(name_or_path)
    bundled = robots_dir() / s / f"{s}.xml"
    if "/" not in s and "\\" not in s and "." not in s and bundled.is_file():
        return bundled.resolve()
    p = Path(s).expanduser()
    if p.is_file():
        return p.resolve()
    if p.is_dir():
        cands = sorted(p.glob("*.xml")) + sorted(p.glob("*.urdf"))
        if len(cands) == 1:
            return cands[0].resolve()
        found = ", ".join(c.name for c in cands[:5]) + (", ..." if len(cands) > 5 else "")
        raise HandLoadError(f"{p} is a folder with {len(cands)} MJCF/URDF files"
                            + (f" ({found})" if cands else "") + "; pass the hand file itself")
    raise HandLoadError(
        f"no hand file '{s}': not an existing path and not a bundled hand "
        f"(bundled: {', '.join(bundled_hands()) or 'none found'})"
    )


def _urdf_to_xml_string(path: Path) -> str:
    """Prepare a URDF for MuJoCo: absolute mesh paths, no fusing of fixed links, no visuals."""
    try:
        tree = ET.parse(path)
    except ET.ParseError as e:
        raise HandLoadError(f"{path}: not a readable XML file ({e})") from e
    robot = tree.getroot()
    if robot.tag != "robot":
        raise HandLoadError(f"{path}: a URDF file must have <robot> as its root element, found <{robot.tag}>")
    for mesh in robot.iter("mesh"):
        fn = mesh.get("filename")
        if fn is None:
            continue
        if fn.startswith("package://"):
            rel = fn[len("package://"):]
            # Try the package path relative to the URDF's folder and its parents.
            found = None
            for base in [path.parent, *path.parent.parents][:4]:
                for cand in (base / rel, base / rel.split("/", 1)[-1]):
                    if cand.is_file():
                        found = cand
                        break
                if found:
                    break
            if found is None:
                raise HandLoadError(f"{path}: mesh '{fn}' not found (package:// paths are looked up beside the URDF)")
            mesh.set("filename", str(found.resolve()))
        else:
            f = Path(fn[len("file://"):] if fn.startswith("file://") else fn)
            f = f if f.is_absolute() else (path.parent / f)
            if not f.is_file():
                raise HandLoadError(f"{path}: mesh file '{fn}' not found (looked for {f})")
            mesh.set("filename", str(f.resolve()))
    mj = robot.find("mujoco")
    if mj is None:
        mj = ET.SubElement(robot, "mujoco")
    comp = mj.find("compiler")
    if comp is None:
        comp = ET.SubElement(mj, "compiler")
    comp.set("strippath", "false")
    comp.set("fusestatic", "false")
    comp.set("discardvisual", "true")
    return ET.tostring(robot, encoding="unicode")


def compile_model(path: str | os.PathLike) -> mujoco.MjModel:
    """Compile an MJCF or URDF file with MuJoCo, turning MuJoCo's errors into clear ones."""
    path = resolve_hand_path(path)
    text = path.read_bytes()[:4096].decode("utf-8", errors="replace").lstrip()
    if not text.startswith("<"):
        raise HandLoadError(f"{path}: not an MJCF or URDF file (it does not start with an XML element)")
    try:
        if path.suffix.lower() == ".urdf" or re.search(r"<robot[\s>]", text):
            return mujoco.MjModel.from_xml_string(_urdf_to_xml_string(path))
        return mujoco.MjModel.from_xml_path(str(path))
    except HandLoadError:  # the URDF preparation's own, already clear
        raise
    except ValueError as e:
        msg = str(e)
        low = msg.lower()
        if any(k in low for k in ("resource not found", "could not open file", "file not found",
                                  "error opening file")):
            raise HandLoadError(f"{path}: a file it references is missing: {' '.join(msg.split())}; "
                                "check the paths (compiler meshdir, file=) relative to the hand file") from e
        raise HandLoadError(f"{path}: MuJoCo could not compile it: {' '.join(msg.split())}") from e


# ----------------------------------------------------------------------------------------------
# Reading the kinematic tree
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TreeSpec:
    """Host-side (NumPy) description of the hand's kinematic tree, read off an ``MjModel``."""

    body_ids: tuple[int, ...]  # MuJoCo body ids of the hand, root first
    joint_ids: tuple[int, ...]  # MuJoCo joint ids of the hand's hinge/slide joints
    body_names: tuple[str, ...]
    body_parent: tuple[int, ...]
    body_joints: tuple[tuple[int, ...], ...]
    joint_names: tuple[str, ...]
    joint_types: tuple[str, ...]
    body_pos: np.ndarray
    body_rot: np.ndarray
    joint_axis: np.ndarray
    joint_anchor: np.ndarray
    joint_ref: np.ndarray
    joint_lower: np.ndarray
    joint_upper: np.ndarray
    T_world_root: np.ndarray  # (4, 4) the root's pose in the file's world at qpos0
    notes: tuple[str, ...]
    palm: int = 0  # index of the palm body (see :func:`palm_index`)
    fixed_joints: tuple[int, ...] = ()  # wrist joints held at qpos0 (see :func:`read_tree`)


def _name(model: mujoco.MjModel, obj: mujoco.mjtObj, i: int) -> str:
    return mujoco.mj_id2name(model, obj, i) or ""


def _find_root(model: mujoco.MjModel, root: str | None) -> int:
    if root is not None:
        bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, root)
        if bid < 0:
            raise HandLoadError(f"no body named '{root}' (bodies: {[_name(model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(1, model.nbody)]})")
        return bid
    parents = model.body_parentid
    top = [b for b in range(1, model.nbody) if parents[b] == 0]

    def subtree_has_joints(b: int) -> bool:
        ids = _subtree(model, b)
        movable = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
        return any(int(model.jnt_type[j]) in movable for j in range(model.njnt) if model.jnt_bodyid[j] in ids)

    with_joints = [b for b in top if subtree_has_joints(b)]
    if not with_joints:
        raise HandLoadError(
            "not a hand: the file has no hinge or slide joints (a hand needs movable fingers)"
        )
    if len(with_joints) > 1:
        names = [_name(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in with_joints]
        raise HandLoadError(f"several top-level bodies with joints ({names}); pass root=NAME to choose the hand")
    return with_joints[0]


def _subtree(model: mujoco.MjModel, root: int) -> list[int]:
    out = [root]
    for b in range(root + 1, model.nbody):
        if model.body_parentid[b] in out:
            out.append(b)
    return out


def _equality_joints(model: mujoco.MjModel) -> set[int]:
    """MuJoCo ids of the joints that active joint or fixed-tendon equalities mention."""
    out: set[int] = set()
    for e in range(model.neq):
        if not model.eq_active0[e]:
            continue
        if int(model.eq_type[e]) == int(mujoco.mjtEq.mjEQ_JOINT):
            out |= {int(model.eq_obj1id[e]), int(model.eq_obj2id[e])}
        elif int(model.eq_type[e]) == int(mujoco.mjtEq.mjEQ_TENDON):
            for t in (int(model.eq_obj1id[e]), int(model.eq_obj2id[e])):
                if t >= 0:
                    adr, num = model.tendon_adr[t], model.tendon_num[t]
                    out |= {int(model.wrap_objid[w]) for w in range(adr, adr + num)}
    return out


def read_tree(model: mujoco.MjModel, root: str | None = None, fix_wrist: bool = True) -> TreeSpec:
    """Read the hand's kinematic tree from a compiled model and validate it.

    With ``fix_wrist`` the *wrist joints*, those on the palm (:func:`palm_index`) or above it
    (on the root, a forearm, a wrist), are held at their ``qpos0`` values through constant
    couplings (:func:`read_couplings`): they only move the whole hand, which the planner's
    global pose already does, and left free they swing an arm into the object. Joints that a
    MuJoCo equality mentions are left as they are.

    Raises:
        HandLoadError: ball joints, free joints below the root, unlimited slide joints, or a file
            without joints.
    """
    mj = mujoco.mjtJoint
    root_id = _find_root(model, root)
    bodies = _subtree(model, root_id)
    index = {b: i for i, b in enumerate(bodies)}
    notes: list[str] = []

    joint_ids: list[int] = []
    body_joints: list[list[int]] = [[] for _ in bodies]
    for j in range(model.njnt):
        b = int(model.jnt_bodyid[j])
        if b not in index:
            continue
        jt = int(model.jnt_type[j])
        jname = _name(model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}"
        bname = _name(model, mujoco.mjtObj.mjOBJ_BODY, b)
        if jt == int(mj.mjJNT_BALL):
            raise HandLoadError(f"ball joint '{jname}' in body '{bname}' is not supported: model it as up to three hinges")
        if jt == int(mj.mjJNT_FREE):
            if b == root_id:
                notes.append(f"free joint '{jname}' on the root ignored: the planner sets the hand's global pose")
                continue
            raise HandLoadError(f"free joint '{jname}' in body '{bname}' inside the hand is not supported")
        body_joints[index[b]].append(len(joint_ids))
        joint_ids.append(j)
    if not joint_ids:
        raise HandLoadError("not a hand: no hinge or slide joints below the root body")

    names = [_name(model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}" for j in joint_ids]
    if len(set(names)) != len(names):
        raise HandLoadError(f"duplicate joint names: {sorted(n for n in set(names) if names.count(n) > 1)}")
    types = [HINGE if int(model.jnt_type[j]) == int(mj.mjJNT_HINGE) else SLIDE for j in joint_ids]
    lower = np.empty(len(joint_ids))
    upper = np.empty(len(joint_ids))
    for k, j in enumerate(joint_ids):
        if model.jnt_limited[j]:
            lower[k], upper[k] = model.jnt_range[j]
        elif types[k] == HINGE:
            lower[k], upper[k] = -np.pi, np.pi
            notes.append(f"joint '{names[k]}' has no range; using [-pi, pi]")
        else:
            raise HandLoadError(f"slide joint '{names[k]}' has no range: give it range=\"lo hi\"")
        if not upper[k] > lower[k]:
            raise HandLoadError(f"joint '{names[k]}' has an empty range [{lower[k]}, {upper[k]}]")

    body_pos = model.body_pos[bodies].copy()
    body_quat = model.body_quat[bodies].copy()
    # The root's own placement in the file's world is dropped: the hand frame is the root frame.
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    T_world_root = np.eye(4)
    T_world_root[:3, :3] = data.xmat[root_id].reshape(3, 3)
    T_world_root[:3, 3] = data.xpos[root_id]
    # Joints on the root body itself move it relative to its file pose; that stays in the tree.
    if body_joints[0]:
        notes.append("joints on the root body move the root relative to the hand frame")
        # The hand frame is the root frame at qpos0, so keep no extra offset.
    body_pos[0] = 0.0
    body_quat[0] = (1.0, 0.0, 0.0, 0.0)
    parent = tuple(-1 if b == root_id else index[int(model.body_parentid[b])] for b in bodies)
    palm = palm_index(parent, body_joints)
    fixed: tuple[int, ...] = ()
    if fix_wrist:
        above = [palm]
        while parent[above[-1]] >= 0:
            above.append(parent[above[-1]])
        coupled = _equality_joints(model)
        fixed = tuple(sorted(k for b in above for k in body_joints[b] if joint_ids[k] not in coupled))
        if fixed:
            notes.append(f"wrist joints {[names[k] for k in fixed]} (on or above the palm "
                         f"'{_name(model, mujoco.mjtObj.mjOBJ_BODY, bodies[palm])}') held at qpos0: the planner's "
                         "global pose moves the palm (load_hand(..., fix_wrist=False) frees them)")
    return TreeSpec(
        body_ids=tuple(bodies),
        joint_ids=tuple(joint_ids),
        body_names=tuple(_name(model, mujoco.mjtObj.mjOBJ_BODY, b) or f"body{b}" for b in bodies),
        body_parent=parent,
        body_joints=tuple(tuple(js) for js in body_joints),
        joint_names=tuple(names),
        joint_types=tuple(types),
        body_pos=body_pos,
        body_rot=quat_to_matrix_np(body_quat),
        joint_axis=model.jnt_axis[joint_ids].copy(),
        joint_anchor=model.jnt_pos[joint_ids].copy(),
        joint_ref=model.qpos0[model.jnt_qposadr[joint_ids]].copy(),
        joint_lower=lower,
        joint_upper=upper,
        T_world_root=T_world_root,
        notes=tuple(notes),
        palm=palm,
        fixed_joints=fixed,
    )


def has_joint_above(tree, b: int) -> bool:
    """Whether a joint that is not held fixed (``tree.fixed_joints``, the wrist) lies between
    body ``b`` and the root (the root's own joints aside), i.e. whether ``b`` moves relative to
    the palm. ``tree``: a :class:`TreeSpec` or :class:`~jaxgrasp.hand.model.HandModel`."""
    fixed = set(tree.fixed_joints)
    while b > 0:
        if any(j not in fixed for j in tree.body_joints[b]):
            return True
        b = tree.body_parent[b]
    return False


# ----------------------------------------------------------------------------------------------
# Couplings
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CouplingSpec:
    dependent: tuple[int, ...]
    offset: np.ndarray  # (R,)
    linear: np.ndarray  # (R, J)
    poly_dir: np.ndarray  # (R, J)
    poly_ref: np.ndarray  # (R,)
    poly: np.ndarray  # (R, 4)


def read_couplings(model: mujoco.MjModel, tree: TreeSpec) -> CouplingSpec:
    """Active joint and fixed-tendon equality constraints as dependent-joint rules, plus a
    constant rule (``q = qpos0``) per wrist joint held fixed (``tree.fixed_joints``).

    Raises:
        HandLoadError: a tendon that is not a fixed (joint) tendon, a coupling to a joint outside
            the hand, a joint fixed to a constant, or cyclic couplings.
    """
    J = len(tree.joint_ids)
    jindex = {j: k for k, j in enumerate(tree.joint_ids)}
    ref = tree.joint_ref
    rules: list[tuple[int, float, np.ndarray, np.ndarray, float, np.ndarray]] = []
    dependent: set[int] = set()

    def tendon_coefs(t: int) -> tuple[np.ndarray, float]:
        coef = np.zeros(J)
        adr, num = model.tendon_adr[t], model.tendon_num[t]
        for w in range(adr, adr + num):
            if int(model.wrap_type[w]) != int(mujoco.mjtWrap.mjWRAP_JOINT):
                tname = _name(model, mujoco.mjtObj.mjOBJ_TENDON, t)
                raise HandLoadError(f"tendon '{tname}' couples joints through a spatial path; only fixed tendons are supported")
            j = int(model.wrap_objid[w])
            if j not in jindex:
                raise HandLoadError(f"tendon couples joint {_name(model, mujoco.mjtObj.mjOBJ_JOINT, j)} outside the hand")
            coef[jindex[j]] += model.wrap_prm[w]
        return coef, float(coef @ ref)  # tendon length at qpos0

    # Wrist joints held at qpos0 (read_tree): constant rules; no equality mentions them.
    for k in tree.fixed_joints:
        rules.append((k, ref[k], np.zeros(J), np.zeros(J), 0.0, np.zeros(4)))
        dependent.add(k)
    eqs = [e for e in range(model.neq) if model.eq_active0[e]]
    # Joint equalities first: their dependent joint is explicit (joint1).
    for e in eqs:
        if int(model.eq_type[e]) != int(mujoco.mjtEq.mjEQ_JOINT):
            continue
        j1, j2 = int(model.eq_obj1id[e]), int(model.eq_obj2id[e])
        if j1 not in jindex:
            continue
        k1 = jindex[j1]
        if j2 < 0:
            raise HandLoadError(f"joint '{tree.joint_names[k1]}' is fixed by an equality; remove the joint instead")
        if j2 not in jindex:
            raise HandLoadError(f"joint '{tree.joint_names[k1]}' is coupled to a joint outside the hand")
        if k1 in dependent:
            raise HandLoadError(f"joint '{tree.joint_names[k1]}' has several couplings")
        a = model.eq_data[e, :5]
        d = np.zeros(J)
        d[jindex[j2]] = 1.0
        rules.append((k1, ref[k1] + a[0], np.zeros(J), d, ref[jindex[j2]], a[1:5].copy()))
        dependent.add(k1)
    for e in eqs:
        if int(model.eq_type[e]) != int(mujoco.mjtEq.mjEQ_TENDON):
            continue
        t1, t2 = int(model.eq_obj1id[e]), int(model.eq_obj2id[e])
        c1, l1 = tendon_coefs(t1)
        cands = [k for k in np.nonzero(c1)[0][::-1] if k not in dependent]
        if not cands:
            raise HandLoadError(f"tendon '{_name(model, mujoco.mjtObj.mjOBJ_TENDON, t1)}' couples only joints that are already coupled")
        k = int(cands[0])
        a = model.eq_data[e, :5]
        lin = -c1 / c1[k]
        lin[k] = 0.0
        if t2 >= 0:
            c2, l2 = tendon_coefs(t2)
            poly = a[1:5] / c1[k]
        else:
            c2, l2, poly = np.zeros(J), 0.0, np.zeros(4)
        rules.append((k, (l1 + a[0]) / c1[k], lin, c2, l2, poly))
        dependent.add(k)

    # Order rules so that each one only reads independent joints or earlier rules' joints.
    ordered: list = []
    done = set(range(J)) - dependent
    pending = list(rules)
    while pending:
        progress = False
        for r in list(pending):
            reads = set(np.nonzero(r[2])[0]) | set(np.nonzero(r[3])[0] if np.any(r[5]) else [])
            if reads <= done:
                ordered.append(r)
                done.add(r[0])
                pending.remove(r)
                progress = True
        if not progress:
            raise HandLoadError(f"cyclic joint couplings among {[tree.joint_names[r[0]] for r in pending]}")
    R = len(ordered)
    return CouplingSpec(
        dependent=tuple(int(r[0]) for r in ordered),
        offset=np.array([r[1] for r in ordered]).reshape(R),
        linear=np.array([r[2] for r in ordered]).reshape(R, J),
        poly_dir=np.array([r[3] for r in ordered]).reshape(R, J),
        poly_ref=np.array([r[4] for r in ordered]).reshape(R),
        poly=np.array([r[5] for r in ordered]).reshape(R, 4),
    )
