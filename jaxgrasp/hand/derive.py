"""Contact candidates derived from a hand's structure, the checks that flag a doubtful result,
and link hulls simplified to a bounded number of planes (host side, NumPy).

Used by :mod:`jaxgrasp.hand.annotate` when a hand file has no ``contact_*`` sites and no
override file gives its candidates. The derivation:

* **fingers** (:func:`chains`): for each leaf body, the bodies with collision geometry that move
  relative to the palm, palm first. *Hubs* (a body whose only child has a joint and sits at its
  origin: a second joint axis at the same point, as Shadow's knuckles and ``thhub``) are left
  out, so the last three bodies of a chain are the distal, middle and proximal phalanges;
* **closing direction** of a link (:func:`closing_directions`): how its centroid moves when its
  finger *flexes*: the velocity the nearest flexing joint above it gives it, towards the larger
  side of that joint's range. Hinges whose range is nearly symmetric about ``qpos0`` (spread,
  thumb rotation) do not flex (LEAP's ``*_rot`` sits between its flexing joints); slides
  (grippers, open or closed at ``qpos0``) and links that only symmetric hinges move close
  towards the *grasp centre* (in front of the palm, among the fingertips);
* **pads** (:func:`auto_contacts`): surface points of a link whose normal is within 40 deg of its
  closing direction, spread by farthest-point sampling; the **palm normal** is the mean closing
  direction of the proximal phalanges; **palm candidates** lie on the palm (and bodies rigidly
  joined to it), never on an arm above it (:func:`jaxgrasp.hand.structure.arm_bodies`), on faces
  within 30 deg of the palm normal in the palm's front half. No candidate lies where one geom of
  a link is buried in another (:func:`on_surface`).

:func:`findings` lists what looks wrong, whatever the candidates' source (candidates facing away
from their link's closing direction or on the back of the palm, fingers without candidates or
closing away from the palm or from the palm normal, no two fingers able to point at each
other), each with what to change;
:func:`failure_hint` turns them into a hint for a planning result without a valid grasp.
"""

from __future__ import annotations

import mujoco
import numpy as np
import trimesh
from scipy.spatial import HalfspaceIntersection, QhullError

from jaxgrasp.hand.mjcf import has_joint_above
from jaxgrasp.hand.structure import arm_bodies

DERIVATION_VERSION = 2  # in the cache key of hands whose candidates are derived: bump on changes
DEFAULT_COUNTS = {"distal": 3, "middle": 2, "proximal": 2, "palm": 10}
_PAD_COS = np.cos(np.deg2rad(40.0))  # a pad point's normal is within 40 deg of closing
_PALM_COS = np.cos(np.deg2rad(30.0))
_SYMMETRIC = 0.75  # a range whose shorter side (from qpos0) is over 75% of its longer one
_HUB = 0.25  # a hub's child sits within 25% of the hub's geometric extent of its origin
MAX_HULL_PLANES = 96  # a link hull with more planes is simplified (the bundled Shadow's: <= 80)
HULL_TOLERANCE = 2e-4  # m, how far the simplified hull may reach beyond the exact one
HULL_WARN = 1e-3  # m, a simplified hull reaching farther than this is a finding


# ----------------------------------------------------------------------------------------------
# Fingers and closing directions
# ----------------------------------------------------------------------------------------------


def _moving(tree, b: int) -> list[int]:
    fixed = set(tree.fixed_joints)
    return [j for j in tree.body_joints[b] if j not in fixed]


def _is_hub(tree, meshes, b: int) -> bool:
    kids = [c for c, p in enumerate(tree.body_parent) if p == b]
    if len(kids) != 1 or meshes[b] is None or not _moving(tree, kids[0]):
        return False
    return float(np.linalg.norm(tree.body_pos[kids[0]])) < _HUB * float(np.max(meshes[b].extents))


def chains(tree, meshes) -> list[list[int]]:
    """Finger chains: for every leaf body, its bodies with geometry that move relative to the
    palm, hubs left out, palm side first."""
    has_child = {p for p in tree.body_parent if p >= 0}
    out = []
    for leaf in (i for i in range(1, len(tree.body_parent)) if i not in has_child):
        chain, b = [], leaf
        while b > 0:
            if meshes[b] is not None and has_joint_above(tree, b) and not _is_hub(tree, meshes, b):
                chain.append(b)
            b = tree.body_parent[b]
        if chain:
            out.append(chain[::-1])
    return out


def _range_sign(tree, j: int) -> float:
    """A hinge's closing side: +1 or -1, the side of its range farther from qpos0; 0 for a
    nearly symmetric range (spread, thumb rotation) and for slides (a gripper's qpos0 may be
    open or closed): those close towards the grasp centre (:func:`joint_signs`)."""
    if tree.joint_types[j] != "hinge":
        return 0.0
    up, down = tree.joint_upper[j] - tree.joint_ref[j], tree.joint_ref[j] - tree.joint_lower[j]
    if min(up, down) > _SYMMETRIC * max(up, down):
        return 0.0
    return 1.0 if up > down else -1.0


def _joint_velocity(tree, j: int, a: int, x: np.ndarray, R_rest, t_rest) -> np.ndarray:
    axis = R_rest[a] @ tree.joint_axis[j]
    if tree.joint_types[j] != "hinge":
        return axis
    return np.cross(axis, x - (R_rest[a] @ tree.joint_anchor[j] + t_rest[a]))


def _centroids(tree, meshes, R_rest, t_rest) -> list:
    """Per body, the centroid (hand frame, rest pose) of its geometry, else of its first
    descendant's with geometry, else None."""
    out: list = [None] * len(meshes)
    for b in reversed(range(len(meshes))):
        if meshes[b] is not None:
            out[b] = meshes[b].centroid @ R_rest[b].T + t_rest[b]
        kids = [c for c, p in enumerate(tree.body_parent) if p == b and out[c] is not None]
        if out[b] is None and kids:
            out[b] = out[kids[0]]
    return out


def joint_signs(tree, meshes, R_rest, t_rest, centre: np.ndarray | None) -> np.ndarray:
    """Per joint, the direction it closes: :func:`_range_sign`, else (``centre`` given) the
    sign that moves its body's centroid towards ``centre``; 0 when undetermined or fixed."""
    cents = _centroids(tree, meshes, R_rest, t_rest)
    out = np.zeros(len(tree.joint_names))
    for a in range(1, len(meshes)):
        for j in _moving(tree, a):
            out[j] = _range_sign(tree, j)
            if out[j] == 0.0 and centre is not None and cents[a] is not None:
                out[j] = np.sign(_joint_velocity(tree, j, a, cents[a], R_rest, t_rest) @ (centre - cents[a]))
    return out


def _primary(tree, j: int) -> bool:
    """Whether a joint flexes its finger: a hinge with an asymmetric range, or a slide."""
    return tree.joint_types[j] != "hinge" or _range_sign(tree, j) != 0.0


def closing_directions(tree, meshes, R_rest, t_rest, centre: np.ndarray | None = None) -> list:
    """Per body, the unit direction its centroid moves when its finger closes (hand frame, rest
    pose), or None (the palm, the arm, bodies without geometry): the velocity given by the
    nearest joint above it (itself included) that flexes (:func:`_primary`; the widest-ranged
    one of its body), signed by :func:`joint_signs`; a link that only symmetric hinges move
    takes the nearest of those. ``centre``: the grasp centre (None: slides and symmetric hinges
    have no sign, so they give no direction)."""
    signs = joint_signs(tree, meshes, R_rest, t_rest, centre)
    out: list = [None] * len(meshes)
    for b, m in enumerate(meshes):
        if m is None or not has_joint_above(tree, b):
            continue
        c = m.centroid @ R_rest[b].T + t_rest[b]
        for flexing in (True, False):
            a, v = b, None
            while a > 0 and v is None:
                js = [j for j in _moving(tree, a) if _primary(tree, j) == flexing]
                if js:
                    j = max(js, key=lambda k: tree.joint_upper[k] - tree.joint_lower[k])
                    v = signs[j] * _joint_velocity(tree, j, a, c, R_rest, t_rest)
                a = tree.body_parent[a]
            # A joint whose axis passes through the centroid only turns the link: no direction.
            if v is not None and np.linalg.norm(v) > 1e-9:
                out[b] = v / np.linalg.norm(v)
                break
    return out


def _base(chain: list[int]) -> int:
    """A finger's proximal phalanx: the third link from the tip (the first of a shorter chain)."""
    return chain[-3] if len(chain) >= 3 else chain[0]


def _palm_normal(closing, fingers) -> np.ndarray | None:
    """The mean closing direction of the fingers' proximal phalanges."""
    base = [closing[_base(c)] for c in fingers if closing[_base(c)] is not None]
    if not base:
        return None
    n = np.mean(base, axis=0)
    return n / np.linalg.norm(n) if np.linalg.norm(n) > 1e-9 else None


def palm_bodies(tree, meshes) -> list[int]:
    """Bodies with geometry rigidly joined to the palm, the arm above it excluded."""
    arm = set(arm_bodies(tree))
    return [b for b, m in enumerate(meshes) if m is not None and not has_joint_above(tree, b) and b not in arm]


def grasp_closing(tree, meshes, R_rest, t_rest, palm_normal_override=None):
    """``(closing, fingers, palm_normal, centre)``: :func:`closing_directions` towards the grasp
    centre (``centre``: in front of the palm, half the fingers' reach beyond their tips), the
    chains, and the palm normal: the override, else :func:`_palm_normal` (of the flexing hinges
    first, then again with every direction), else from the palm to the fingertips."""
    fingers = chains(tree, meshes)
    tips = np.array([t_rest[c[-1]] for c in fingers]) if fingers else t_rest[[tree.palm]]
    reach_dir = tips.mean(0) - t_rest[tree.palm]
    pn = _palm_normal(closing_directions(tree, meshes, R_rest, t_rest), fingers)
    if palm_normal_override is not None:
        pn = np.asarray(palm_normal_override, float)
    elif pn is None:
        pn = reach_dir if np.linalg.norm(reach_dir) > 1e-9 else np.array([0.0, 0.0, 1.0])
    pn = pn / np.linalg.norm(pn)
    reach = float(np.mean(np.linalg.norm(tips - t_rest[tree.palm], axis=1)))
    centre = tips.mean(0) + 0.5 * reach * pn
    closing = closing_directions(tree, meshes, R_rest, t_rest, centre)
    if palm_normal_override is None:
        again = _palm_normal(closing, fingers)
        pn = pn if again is None else again
    return closing, fingers, pn, centre


# ----------------------------------------------------------------------------------------------
# Candidates
# ----------------------------------------------------------------------------------------------


def on_surface(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: the points (body frame) of a link's geoms that are not buried more than
    0.1 mm inside another of its geoms (``mesh.metadata["geom_planes"]``, from
    :func:`jaxgrasp.hand.annotate.link_meshes`; all True for a one-geom link). A point lies on
    its own geom's surface (depth ~0 there), so only other geoms can bury it."""
    ok = np.ones(len(points), dtype=bool)
    for planes in mesh.metadata.get("geom_planes", ()):
        if len(planes):
            ok &= np.max(points @ planes[:, :3].T + planes[:, 3], axis=1) > -1e-4
    return ok


def _surface(mesh: trimesh.Trimesh, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    pts, face = trimesh.sample.sample_surface(mesh, count, seed=seed)
    ok = on_surface(mesh, pts)
    return pts[ok], mesh.face_normals[face[ok]]


def farthest_point_sample(points: np.ndarray, k: int, start: int = 0) -> np.ndarray:
    """Indices of ``k`` points spread by greedy farthest-point sampling (deterministic)."""
    n = len(points)
    if k >= n:
        return np.arange(n)
    idx = np.empty(k, dtype=np.int64)
    idx[0] = start
    d = np.sum((points - points[start]) ** 2, axis=1)
    for i in range(1, k):
        idx[i] = int(np.argmax(d))
        d = np.minimum(d, np.sum((points - points[idx[i]]) ** 2, axis=1))
    return idx


def auto_contacts(tree, meshes, R_rest, t_rest, counts, palm_normal_override=None):
    """Derived candidates ``[(body, pos, normal)]`` (body frames) and the palm normal."""
    closing, fingers, palm_normal, _ = grasp_closing(tree, meshes, R_rest, t_rest, palm_normal_override)
    if not fingers:
        raise ValueError("cannot derive contact candidates: no finger link with collision geometry")
    out: list[tuple[int, np.ndarray, np.ndarray]] = []
    for chain in fingers:
        for role, b in zip(["distal", "middle", "proximal"], chain[::-1]):
            if closing[b] is None:
                continue
            pts_b, nrm_b = _surface(meshes[b], 3000, seed=b)
            pts = pts_b @ R_rest[b].T + t_rest[b]
            score = (nrm_b @ R_rest[b].T) @ closing[b]
            cand = np.nonzero(score > _PAD_COS)[0]
            if len(cand) < counts[role]:
                cand = np.argsort(-score)[: max(counts[role] * 20, 20)]
            # Start from the most pad-like point so the sample is centred on the pad.
            sel = cand[farthest_point_sample(pts[cand], counts[role], start=int(np.argmax(score[cand])))]
            out += [(b, pts_b[i], nrm_b[i]) for i in sel]
    palm = palm_bodies(tree, meshes)
    # The palm's front half along the palm normal: faces recessed deeper (a step in a palm of
    # several boxes) sit inside the palm's hull, which objects cannot enter.
    depth = np.concatenate([(np.asarray(meshes[b].vertices) @ R_rest[b].T + t_rest[b]) @ palm_normal for b in palm]
                           or [np.zeros(1)])
    front = depth.max() - 0.5 * np.ptp(depth)
    for b in palm:
        pts_b, nrm_b = _surface(meshes[b], 4000, seed=1000 + b)
        pts, nrm = pts_b @ R_rest[b].T + t_rest[b], nrm_b @ R_rest[b].T
        cand = np.nonzero((nrm @ palm_normal > _PALM_COS) & (pts @ palm_normal >= front))[0]
        if len(cand) == 0:
            continue
        k = max(1, round(counts["palm"] / len(palm)))
        sel = cand[farthest_point_sample(pts[cand], k, start=int(np.argmin(np.linalg.norm(pts[cand] - pts[cand].mean(0), axis=1))))]
        out += [(b, pts_b[i], nrm_b[i]) for i in sel]
    return out, palm_normal


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------


def _closed_normals(model, tree, signs, cb, cp, cn, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidates' positions and normals in the root frame with every joint that closes
    (``signs`` != 0) ``fraction`` of the way from qpos0 to its closing end (MuJoCo kinematics;
    couplings not enforced)."""
    data = mujoco.MjData(model)
    for k, j in enumerate(tree.joint_ids):
        if signs[k] != 0.0:
            end = tree.joint_upper[k] if signs[k] > 0 else tree.joint_lower[k]
            data.qpos[model.jnt_qposadr[j]] = tree.joint_ref[k] + fraction * (end - tree.joint_ref[k])
    mujoco.mj_kinematics(model, data)
    T_root = np.linalg.inv(tree.T_world_root)
    R = np.stack([T_root[:3, :3] @ data.xmat[b].reshape(3, 3) for b in tree.body_ids])
    t = np.stack([T_root[:3, :3] @ data.xpos[b] + T_root[:3, 3] for b in tree.body_ids])
    return np.einsum("cij,cj->ci", R[cb], cp) + t[cb], np.einsum("cij,cj->ci", R[cb], cn)


def _can_oppose(model, tree, signs, fingers, cb, cp, cn) -> bool:
    """Whether candidates of two fingers point at each other (normals within ~110 deg of
    opposite, each within ~70 deg of the line to the other) at some closure from open to closed."""
    of = {b: i for i, c in enumerate(fingers) for b in c}
    own = np.array([of.get(int(b), -1) for b in cb])
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        p, n = _closed_normals(model, tree, signs, cb, cp, cn, fraction)
        for i in range(len(fingers)):
            a, o = np.nonzero(own == i)[0], np.nonzero((own >= 0) & (own != i))[0]
            if len(a) == 0 or len(o) == 0:
                continue
            g = p[o][None] - p[a][:, None]
            # Guard: coincident candidates (zero gap) get no direction rather than a NaN.
            g = g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-12)
            score = np.maximum(n[a] @ n[o].T, np.maximum(-np.einsum("ak,aok->ao", n[a], g), np.einsum("ok,aok->ao", n[o], g)))
            if score.min() < -0.3:
                return True
    return False


def findings(model, tree, meshes, R_rest, t_rest, cb, cp, cn, palm_normal, stem: str) -> list[str]:
    """What looks wrong with a hand's candidates, each with what to change (see the module)."""
    closing, fingers, _, centre = grasp_closing(tree, meshes, R_rest, t_rest, palm_normal)
    names, out = tree.body_names, []
    fix = (f"give the candidates in {stem}.contacts.json beside the hand file (or load_hand(contacts=FILE)): "
           '{"contacts": [{"body", "pos", "normal"}]} in body frames, or contact_* sites in the file')
    arm, palm = set(arm_bodies(tree)), set(palm_bodies(tree, meshes))
    n_hand = np.einsum("cij,cj->ci", R_rest[cb], cn)
    on_arm = sorted({names[b] for b in cb if b in arm})
    if on_arm:
        out.append(f"contact candidates on {on_arm}, above the palm '{names[tree.palm]}' (an arm or a wrist, "
                   f"which never touches what the hand grasps); {fix}")
    back = int(sum(1 for i, b in enumerate(cb) if b in palm and n_hand[i] @ palm_normal < -0.2))
    if back:
        out.append(f"{back} palm candidates face away from the palm normal {np.round(palm_normal, 3).tolist()} "
                   f"(the back of the palm?); give \"palm_normal\" (hand frame) in {stem}.contacts.json, or {fix}")
    away = sorted({names[b] for i, b in enumerate(cb) if closing[b] is not None and n_hand[i] @ closing[b] < -0.2})
    if away:
        out.append(f"candidates on {away} face away from the way their finger closes (the back of the finger?); {fix}")
    mean = np.mean([closing[_base(c)] for c in fingers if closing[_base(c)] is not None] or [np.zeros(3)], axis=0)
    # Fingers closing towards opposite sides (a gripper's jaws) cancel out: no direction to compare.
    if np.linalg.norm(mean) > 0.3 and mean @ palm_normal < 0.5 * np.linalg.norm(mean):
        angle = np.degrees(np.arccos(np.clip(mean @ palm_normal / np.linalg.norm(mean), -1.0, 1.0)))
        out.append(f"the palm normal {np.round(palm_normal, 3).tolist()} is {angle:.0f} deg from the way the fingers "
                   f"close ({np.round(mean / np.linalg.norm(mean), 3).tolist()}): palm candidates may sit on the side "
                   f"or back of the palm; give \"palm_normal\" (hand frame) in {stem}.contacts.json, or {fix}")
    for c in fingers:
        base = _base(c)
        if closing[base] is not None and closing[base] @ palm_normal < -0.2:
            out.append(f"finger '{names[c[-1]]}' closes away from the palm side (palm normal "
                       f"{np.round(palm_normal, 3).tolist()}): check its joints' ranges (it closes towards the end "
                       f"farther from qpos0) or give \"palm_normal\" in {stem}.contacts.json")
        if not np.isin(c, cb).any():
            out.append(f"no contact candidates on the finger '{names[c[-1]]}' ({[names[b] for b in c]}); {fix}")
    signs = joint_signs(tree, meshes, R_rest, t_rest, centre)
    if len(fingers) >= 2 and not _can_oppose(model, tree, signs, fingers, cb, cp, cn):
        out.append("no two fingers' candidates point at each other from open to closed (no finger opposes "
                   "another: only grasps against the palm); check the joints' ranges, or " + fix)
    return out


def failure_hint(hand, metrics: dict) -> str | None:
    """A short hint for a planning result without a valid grasp, when its cause is detectable:
    the hand's own findings first, else a self-penetration over 3 mm (links touching by design,
    not excluded), else fewer than 3 contacts. None for a valid grasp or no detectable cause.
    The planner puts it in an invalid result's ``metrics["hint"]``."""
    if metrics.get("valid"):
        return None
    if hand.findings:
        more = f" (and {len(hand.findings) - 1} more, logged when the hand loads)" if len(hand.findings) > 1 else ""
        return f"the hand's contact candidates look wrong: {hand.findings[0]}{more}"
    self_mm = metrics.get("self_penetration_mm") or 0.0
    if self_mm > 3.0:  # beyond what the optimizer leaves at the threshold: links that cannot part
        return (f"the hand penetrates itself by {self_mm:.1f} mm: links that touch by design need a "
                "<contact><exclude> pair in the hand file; links with concave meshes collide as their convex hulls")
    if (metrics.get("num_contacts") or 0) < 3:
        return ("fewer than 3 contacts: the contact candidates may not be where this hand touches objects; "
                "give them in <hand>.contacts.json or as contact_* sites")
    return None


# ----------------------------------------------------------------------------------------------
# Hull simplification
# ----------------------------------------------------------------------------------------------


def simplify_hull(vertices: np.ndarray, planes: np.ndarray, max_planes: int = MAX_HULL_PLANES,
                  tol: float = HULL_TOLERANCE) -> tuple[np.ndarray, float]:
    """At most ``max_planes`` of a convex hull's planes ``(H, 4)`` whose intersection contains it.

    Greedy and error driven: start from the box of the principal axes, then, while a corner of
    the current polytope lies more than ``tol`` outside a plane of the hull, add the plane it
    violates most. The result contains the exact hull (outer approximation: penetration is
    never missed, at worst over-reported by the error).

    Returns:
        ``(planes (H', 4), error)``: error (m) is the largest violation of a hull plane by a
        corner of the simplified hull; ``(planes, 0.0)`` unchanged when there are few enough.
    """
    if len(planes) <= max_planes:
        return planes, 0.0
    v = np.asarray(vertices, np.float64)
    c = v.mean(0)
    _, _, axes = np.linalg.svd(v - c, full_matrices=False)
    chosen = [np.append(s * a, -np.max(v @ (s * a))) for a in axes for s in (1.0, -1.0)]
    while True:
        try:
            corners = HalfspaceIntersection(np.array(chosen), c).intersections
        except QhullError:  # degenerate (flat) geometry: keep the exact hull
            return planes, 0.0
        excess = corners @ planes[:, :3].T + planes[:, 3]  # (corners, H) > 0: outside that plane
        worst = excess.max(1)
        i = int(np.argmax(worst))
        err = float(worst[i])
        if err <= tol or len(chosen) >= max_planes:
            return np.array(chosen), max(err, 0.0)
        chosen.append(planes[int(np.argmax(excess[i]))])
