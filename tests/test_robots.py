"""Checks of the hand description files: bundled hands (robots/) and test hands (tests/data/).

References are MuJoCo 4.0 itself (compiled model, mj_forward, mj_geomDistance, the
equality-constraint residuals efc_pos), the XML text (ElementTree) and trimesh for the STL
assets. See robots/README.md and tests/data/README.md for what each file must satisfy.
"""

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np
import pytest
import trimesh

REPO = Path(__file__).resolve().parents[1]
ROBOTS = REPO / "robots"
DATA = Path(__file__).resolve().parent / "data"

FINGERS = ("FF", "MF", "RF")
SHADOW_JOINTS = (
    [f"{f}J{k}" for f in FINGERS for k in (4, 3, 2, 1)]
    + [f"LFJ{k}" for k in (5, 4, 3, 2, 1)]
    + [f"THJ{k}" for k in (5, 4, 3, 2, 1)]
)
SHADOW_SITES = {"palm": 10}
for _digit in ("ff", "mf", "rf", "lf", "th"):
    SHADOW_SITES.update({f"{_digit}distal": 3, f"{_digit}middle": 2, f"{_digit}proximal": 2})

HANDS = {
    "shadow": dict(
        root="palm", joints=SHADOW_JOINTS, n_independent=18, sites=SHADOW_SITES,
        palmar=np.array([0.0, -1.0, 0.0]),
    ),
    "threefinger": dict(
        root="palm",
        joints=["F1J1", "F1J2", "F1J3", "F2J1", "F2J2", "F2J3", "F3J2", "F3J3"],
        n_independent=4,
        sites={"palm": 6, **{f"f{k}_{link}": 3 for k in (1, 2, 3)
                             for link in ("proximal", "distal")}},
        palmar=np.array([0.0, 0.0, 1.0]),
    ),
    "parallel_jaw": dict(
        root="hand", joints=["finger_joint1", "finger_joint2"], n_independent=1,
        sites={"finger1": 4, "finger2": 4}, palmar=np.array([0.0, 0.0, 1.0]),
    ),
}
PRIMITIVES = {mujoco.mjtGeom.mjGEOM_SPHERE, mujoco.mjtGeom.mjGEOM_CAPSULE,
              mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_CYLINDER,
              mujoco.mjtGeom.mjGEOM_ELLIPSOID}
EQ = mujoco.mjtConstraint.mjCNSTR_EQUALITY
PROBE_RADIUS = 1e-4  # radius of the probe sphere used for point-to-geom distances


def hand_path(name):
    return ROBOTS / name / f"{name}.xml"


def load(path):
    model = mujoco.MjModel.from_xml_path(str(path))
    return model, mujoco.MjData(model)


def set_joints(model, data, values):
    for name, value in values.items():
        data.qpos[model.joint(name).qposadr[0]] = value


def excluded_pairs(path):
    """Body-name pairs listed in <contact><exclude>, read from the XML text."""
    root = ET.parse(path).getroot()
    return {frozenset((e.get("body1"), e.get("body2"))) for e in root.iter("exclude")}


def equality_residual(data):
    """Residuals of all equality constraints after mj_forward (efc_pos rows)."""
    return data.efc_pos[: data.nefc][data.efc_type[: data.nefc] == EQ]


def coupled_config(name, model, rng):
    """Random in-range configuration that satisfies the hand's couplings exactly."""
    lo, hi = model.jnt_range.T
    q = rng.uniform(lo, hi)
    idx = {model.joint(i).name: i for i in range(model.njnt)}
    if name == "shadow":
        for f in ("FF", "MF", "RF", "LF"):
            q[idx[f"{f}J1"]] = q[idx[f"{f}J2"]]
    elif name == "threefinger":
        q[idx["F2J1"]] = q[idx["F1J1"]]
        for k in (1, 2, 3):
            q[idx[f"F{k}J3"]] = q[idx[f"F{k}J2"]] / 3.0
    else:
        q[idx["finger_joint2"]] = q[idx["finger_joint1"]]
    return q


# --------------------------------------------------------------------------- bundled hands


@pytest.mark.parametrize("name", list(HANDS))
def test_bundled_hand_structure(name):
    spec = HANDS[name]
    path = hand_path(name)
    compiler = ET.parse(path).getroot().find("compiler")
    assert compiler.get("angle") == "radian" and compiler.get("autolimits") == "true"

    model, data = load(path)
    # one root body, directly in worldbody, at the identity, named as specified
    roots = [b for b in range(1, model.nbody) if model.body_parentid[b] == 0]
    assert [model.body(b).name for b in roots] == [spec["root"]]
    np.testing.assert_array_equal(model.body_pos[roots[0]], 0.0)
    np.testing.assert_array_equal(model.body_quat[roots[0]], [1.0, 0.0, 0.0, 0.0])
    # joints: names/order, hinge or slide only, limited, qpos0 = 0 inside the range
    names = [model.joint(i).name for i in range(model.njnt)]
    assert names == list(spec["joints"]) and len(set(names)) == len(names)
    joint_types = {mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE}
    assert {int(t) for t in model.jnt_type} <= joint_types
    assert model.jnt_limited.all()
    lo, hi = model.jnt_range.T
    assert (lo < hi).all() and (lo <= 0).all() and (hi >= 0).all()
    # collision-only primitives, all colliding
    assert {int(t) for t in model.geom_type} <= PRIMITIVES
    assert (model.geom_contype == 1).all() and (model.geom_conaffinity == 1).all()
    # one position actuator per independent joint, ctrlrange = joint range
    assert model.nu == spec["n_independent"]
    for a in range(model.nu):
        j = model.actuator_trnid[a, 0]
        assert model.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_AFFINE
        np.testing.assert_allclose(model.actuator_ctrlrange[a], model.jnt_range[j])
    # every parent-child pair of bodies is listed in <contact><exclude>
    excluded = excluded_pairs(path)
    for b in range(2, model.nbody):
        pair = frozenset((model.body(b).name, model.body(model.body_parentid[b]).name))
        assert pair in excluded, pair


@pytest.mark.parametrize("name", list(HANDS))
def test_independent_dof_from_equality_jacobian(name):
    """njnt - rank(equality constraint Jacobian) = number of independent DOF."""
    model, data = load(hand_path(name))
    assert model.opt.jacobian != mujoco.mjtJacobian.mjJAC_SPARSE
    data.qpos[:] = coupled_config(name, model, np.random.default_rng(0))
    mujoco.mj_forward(model, data)
    jac = data.efc_J[: data.nefc * model.nv].reshape(data.nefc, model.nv)
    jac_eq = jac[data.efc_type[: data.nefc] == EQ]
    assert model.njnt - np.linalg.matrix_rank(jac_eq) == HANDS[name]["n_independent"]


@pytest.mark.parametrize("name", list(HANDS))
def test_couplings_residual_matches_algebra(name):
    """efc_pos of the equality rows equals the hand-written residual at random configs."""
    model, data = load(hand_path(name))
    rng = np.random.default_rng(1)
    idx = {model.joint(i).name: model.jnt_qposadr[i] for i in range(model.njnt)}
    for _ in range(5):
        lo, hi = model.jnt_range.T
        q = rng.uniform(lo, hi)  # NOT satisfying the couplings
        data.qpos[:] = q
        mujoco.mj_forward(model, data)
        if name == "shadow":
            expected = [q[idx[f"{f}J1"]] - q[idx[f"{f}J2"]] for f in ("FF", "MF", "RF", "LF")]
        elif name == "threefinger":  # spread F2J1 = F1J1, then tendon L = J2 - 3 J3 held at 0
            expected = [q[idx["F2J1"]] - q[idx["F1J1"]]] + [
                q[idx[f"F{k}J2"]] - 3.0 * q[idx[f"F{k}J3"]] for k in (1, 2, 3)]
        else:
            expected = [q[idx["finger_joint2"]] - q[idx["finger_joint1"]]]
        np.testing.assert_allclose(equality_residual(data), expected, atol=1e-12)
        assert np.abs(expected).max() > 1e-3  # the check is not vacuous


@pytest.mark.parametrize("name", list(HANDS))
def test_couplings_hold_under_simulation(name):
    """From a coupled configuration held by the actuators, couplings survive mj_step."""
    model, data = load(hand_path(name))
    model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT  # random q may collide
    data.qpos[:] = coupled_config(name, model, np.random.default_rng(2))
    data.ctrl[:] = data.qpos[model.jnt_qposadr[model.actuator_trnid[:, 0]]]
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(equality_residual(data), 0.0, atol=1e-12)
    for _ in range(100):
        mujoco.mj_step(model, data)
    mujoco.mj_forward(model, data)
    assert np.abs(equality_residual(data)).max() < 2e-3


def _probe_model(path):
    """The hand plus a tiny mocap sphere used to measure point-to-geom distances."""
    spec = mujoco.MjSpec.from_file(str(path))
    body = spec.worldbody.add_body(name="__probe", mocap=True)
    body.add_geom(name="__probe", type=mujoco.mjtGeom.mjGEOM_SPHERE,
                  size=[PROBE_RADIUS, 0, 0], contype=0, conaffinity=0)
    model = spec.compile()
    return model, mujoco.MjData(model), model.geom("__probe").id


def _body_distance(model, data, probe, body, point):
    """Signed distance from `point` to the union of `body`'s geoms, and the nearest point."""
    data.mocap_pos[0] = point
    mujoco.mj_kinematics(model, data)
    best, nearest = np.inf, None
    for g in np.flatnonzero(model.geom_bodyid == body):
        fromto = np.zeros(6)
        dist = mujoco.mj_geomDistance(model, data, g, probe, 0.05, fromto) + PROBE_RADIUS
        if dist < best:
            best, nearest = dist, fromto[:3].copy()
    return best, nearest


@pytest.mark.parametrize("name", list(HANDS))
def test_contact_sites_on_pad_surfaces(name):
    spec = HANDS[name]
    model, data, probe = _probe_model(hand_path(name))
    mujoco.mj_forward(model, data)
    sites = [i for i in range(model.nsite) if model.site(i).name.startswith("contact_")]
    assert len(sites) == sum(spec["sites"].values())
    counts = {}
    for s in sites:
        body = model.body(model.site_bodyid[s]).name
        k = counts.get(body, 0)
        assert model.site(s).name == f"contact_{body}_{k}"
        counts[body] = k + 1
        assert model.site_group[s] == 4
        p = data.site_xpos[s].copy()
        n = data.site_xmat[s].reshape(3, 3)[:, 2].copy()
        dist, _ = _body_distance(model, data, probe, model.site_bodyid[s], p)
        assert abs(dist) < 5e-4, (model.site(s).name, dist)
        # outward normal: 2 mm along z gains ~2 mm of distance, and the nearest surface
        # point from there is the site itself (z is the surface normal at the site)
        dist_out, nearest = _body_distance(model, data, probe, model.site_bodyid[s], p + 0.002 * n)
        assert dist_out - dist > 0.0019, (model.site(s).name, dist_out - dist)
        assert np.linalg.norm(nearest - p) < 2.5e-4, (model.site(s).name, nearest - p)
    assert counts == spec["sites"]


@pytest.mark.parametrize("name", list(HANDS))
def test_palm_sites_face_palmar_direction(name):
    model, data = load(hand_path(name))
    mujoco.mj_forward(model, data)
    root = model.body(HANDS[name]["root"]).id
    for s in np.flatnonzero(model.site_bodyid == root):
        np.testing.assert_allclose(data.site_xmat[s].reshape(3, 3)[:, 2], HANDS[name]["palmar"],
                                   atol=1e-6)


def test_shadow_pads_face_palmar_side_and_thumb_opposes():
    model, data = load(hand_path("shadow"))
    mujoco.mj_forward(model, data)
    normal = lambda s: data.site_xmat[model.site(s).id].reshape(3, 3)[:, 2].copy()  # noqa: E731
    # open hand: finger pads (not the rounded tips) face -y
    for f in ("ff", "mf", "rf", "lf"):
        for link, k in (("proximal", 0), ("middle", 1), ("distal", 0)):
            np.testing.assert_allclose(normal(f"contact_{f}{link}_{k}"), [0, -1, 0], atol=1e-6)
    # pinch: thumb tip pad and index tip pad close together and facing each other
    set_joints(model, data, {"FFJ3": 0.8, "FFJ2": 0.8, "FFJ1": 0.8, "THJ5": 0.78,
                             "THJ4": 1.013, "THJ2": -0.3, "THJ1": 0.105})
    mujoco.mj_forward(model, data)
    assert data.ncon == 0
    p_th = data.site_xpos[model.site("contact_thdistal_2").id]
    p_ff = data.site_xpos[model.site("contact_ffdistal_2").id]
    gap = p_ff - p_th
    assert np.linalg.norm(gap) < 0.01
    assert normal("contact_thdistal_2") @ normal("contact_ffdistal_2") < -0.9
    # each pad points at the other one (across the gap, not through the fingers)
    assert normal("contact_thdistal_2") @ gap > 0.8 * np.linalg.norm(gap)
    assert normal("contact_ffdistal_2") @ -gap > 0.8 * np.linalg.norm(gap)


def test_threefinger_and_jaw_pads_face_each_other():
    model, data = load(hand_path("threefinger"))
    set_joints(model, data, {"F1J1": 1.0472, "F2J1": 1.0472,  # 120 deg apart
                             **{f"F{k}J2": 1.0 for k in (1, 2, 3)},
                             **{f"F{k}J3": 1.0 / 3 for k in (1, 2, 3)}})
    mujoco.mj_forward(model, data)
    sites = [model.site(f"contact_f{k}_distal_1").id for k in (1, 2, 3)]
    center = data.site_xpos[sites].mean(axis=0)
    assert abs(center[0]) < 1e-12  # F1/F2 spread symmetrically about the y-z plane
    for s in sites:  # distal pads point at the grasp centre above the palm
        n = data.site_xmat[s].reshape(3, 3)[:, 2]
        v = center - data.site_xpos[s]
        assert n @ v > 0.85 * np.linalg.norm(v)
    model, data = load(hand_path("parallel_jaw"))
    mujoco.mj_forward(model, data)
    for k in range(4):
        s1, s2 = model.site(f"contact_finger1_{k}").id, model.site(f"contact_finger2_{k}").id
        n1 = data.site_xmat[s1].reshape(3, 3)[:, 2]
        assert n1 @ (data.site_xpos[s2] - data.site_xpos[s1]) > 0
        np.testing.assert_allclose(n1, -data.site_xmat[s2].reshape(3, 3)[:, 2], atol=1e-12)


@pytest.mark.parametrize("name", list(HANDS))
def test_no_self_intersection_at_qpos0(name):
    """At qpos0: no contacts, and all non-excluded body pairs are apart (brute force)."""
    path = hand_path(name)
    model, data = load(path)
    mujoco.mj_forward(model, data)
    assert data.ncon == 0
    excluded = excluded_pairs(path)
    min_gap = np.inf
    for g1 in range(model.ngeom):
        for g2 in range(g1 + 1, model.ngeom):
            b1, b2 = model.geom_bodyid[g1], model.geom_bodyid[g2]
            if b1 == b2 or frozenset((model.body(b1).name, model.body(b2).name)) in excluded:
                continue
            min_gap = min(min_gap, mujoco.mj_geomDistance(model, data, g1, g2, 0.1, None))
    assert min_gap > 5e-4, min_gap


# --------------------------------------------------------------------------- test hands


def test_thirdparty_hand():
    path = DATA / "thirdparty_hand" / "hand.xml"
    model, data = load(path)
    mujoco.mj_forward(model, data)
    assert model.njnt == 16 and (model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE).all()
    assert [model.joint(i).name for i in range(4)] == ["ffj0", "ffj1", "ffj2", "ffj3"]
    assert model.nsite == 0  # the loader must derive contact candidates itself
    palm = model.body("palm").id
    assert model.body_parentid[palm] == 0
    np.testing.assert_allclose(data.xpos[palm], [0, 0, 0.5])
    np.testing.assert_allclose(data.xquat[palm], [0, 2 ** -0.5, 0, 2 ** -0.5])  # normalised
    jointless = [model.body(b).name for b in range(1, model.nbody) if model.body_jntnum[b] == 0]
    assert jointless == ["palm", "ff_tip", "mf_tip", "rf_tip", "th_tip"]
    assert model.neq == 1 and model.eq_type[0] == mujoco.mjtEq.mjEQ_JOINT
    assert model.joint(model.eq_obj1id[0]).name == "rfj3"
    np.testing.assert_allclose(model.eq_data[0, :5], [0, 0.8, 0, 0, 0])
    visual = (model.geom_contype == 0) & (model.geom_conaffinity == 0)
    assert visual.sum() == 5 and (model.geom_type == mujoco.mjtGeom.mjGEOM_MESH).all()
    assert data.ncon == 0
    # STL assets: small convex hulls in mm; MuJoCo's (re-centred) mesh placed by
    # geom_xpos/geom_xmat equals the raw STL * 0.001 placed by the body pose
    stls = sorted((path.parent / "assets").glob("*.stl"))
    assert len(stls) == model.nmesh == 11 and sum(p.stat().st_size for p in stls) < 200_000
    for g in np.flatnonzero(~visual):
        mesh_id = model.geom_dataid[g]
        raw = trimesh.load(path.parent / "assets" / f"{_mesh_file(path, model.mesh(mesh_id).name)}")
        assert raw.is_convex and len(raw.faces) < 100 and np.ptp(raw.vertices, axis=0).max() > 10
        b = model.geom_bodyid[g]
        ref = data.xpos[b] + 0.001 * raw.vertices @ data.xmat[b].reshape(3, 3).T
        start, num = model.mesh_vertadr[mesh_id], model.mesh_vertnum[mesh_id]
        verts = model.mesh_vert[start:start + num]
        got = data.geom_xpos[g] + verts @ data.geom_xmat[g].reshape(3, 3).T
        dist = np.linalg.norm(got[:, None] - ref[None], axis=-1).min(axis=1)
        assert dist.max() < 1e-7


def _mesh_file(path, mesh_name):
    """STL file name of a mesh asset, read from the XML (name defaults to the file stem)."""
    for mesh in ET.parse(path).getroot().iter("mesh"):
        if mesh.get("file") and mesh.get("name", Path(mesh.get("file")).stem) == mesh_name:
            return mesh.get("file")
    raise KeyError(mesh_name)


def test_thirdparty_assets_are_reproducible():
    import importlib.util

    script = DATA / "thirdparty_hand" / "make_assets.py"
    spec = importlib.util.spec_from_file_location("make_assets", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, mesh in module.meshes().items():
        committed = (DATA / "thirdparty_hand" / "assets" / f"{name}.stl").read_bytes()
        assert trimesh.exchange.stl.export_stl(mesh) == committed, name


URDF_JOINTS = ["f1_joint1", "f1_joint2", "f2_joint1", "f2_joint2", "th_joint1", "th_joint2"]


def test_urdf_hand_with_mujoco_extension():
    model, data = load(DATA / "urdf_hand" / "hand.urdf")
    mujoco.mj_forward(model, data)
    assert [model.joint(i).name for i in range(model.njnt)] == URDF_JOINTS
    assert model.jnt_limited.all()
    np.testing.assert_allclose(model.jnt_range[0], [-0.2, 1.6])
    # fusestatic="false": the jointless palm and the fixed-joint fingertip stay bodies
    assert model.body_parentid[model.body("palm").id] == 0
    assert model.body_parentid[model.body("f1_tip").id] == model.body("f1_link2").id
    # discardvisual="false": URDF visuals become non-colliding geoms in group 1
    visual = (model.geom_contype == 0) & (model.geom_conaffinity == 0)
    assert visual.sum() == 2 and (model.geom_group[visual] == 1).all()
    # the mm mesh is scaled to metres
    assert model.nmesh == 1 and np.ptp(model.mesh_vert, axis=0).max() < 0.1
    # <mimic> becomes a joint equality f1_joint2 = 0 + 0.8 f1_joint1
    assert model.neq == 1 and model.eq_type[0] == mujoco.mjtEq.mjEQ_JOINT
    assert model.joint(model.eq_obj1id[0]).name == "f1_joint2"
    assert model.joint(model.eq_obj2id[0]).name == "f1_joint1"
    np.testing.assert_allclose(model.eq_data[0, :2], [0.0, 0.8])
    assert data.ncon == 0


def test_urdf_hand_without_mujoco_extension(tmp_path):
    """MuJoCo's URDF defaults (fusestatic, discardvisual) fuse the palm into the world."""
    src = DATA / "urdf_hand"
    text = re.sub(r"<mujoco>.*?</mujoco>", "", (src / "hand.urdf").read_text(), flags=re.S)
    assert "<mujoco>" not in text
    shutil.copytree(src / "meshes", tmp_path / "meshes")
    (tmp_path / "hand.urdf").write_text(text)
    model, _ = load(tmp_path / "hand.urdf")
    assert [model.joint(i).name for i in range(model.njnt)] == URDF_JOINTS
    names = [model.body(b).name for b in range(model.nbody)]
    assert "palm" not in names and "f1_tip" not in names  # fused away
    assert model.body_parentid[model.body("f1_link1").id] == 0  # fingers hang off world
    world_geoms = np.flatnonzero(model.geom_bodyid == 0)
    assert len(world_geoms) == 1 and model.geom_type[world_geoms[0]] == mujoco.mjtGeom.mjGEOM_MESH
    assert ((model.geom_contype == 0) & (model.geom_conaffinity == 0)).sum() == 0
    assert model.neq == 1  # the mimic equality is still there


@pytest.mark.parametrize("filename,check", [
    ("ball_joint.xml", lambda m: (m.jnt_type == mujoco.mjtJoint.mjJNT_BALL).any()),
    ("free_root.xml", lambda m: m.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE
     and m.jnt_bodyid[0] == 1),
    ("two_roots.xml", lambda m: (m.body_parentid[1:] == 0).sum() == 2),
    ("not_a_hand.xml", lambda m: m.njnt == 0 and m.ngeom == 1),
])
def test_bad_files_that_mujoco_accepts(filename, check):
    """These load in MuJoCo; the jaxgrasp loader must reject them for its own reasons
    (free_root.xml: reject, or drop the root free joint with a note)."""
    model, _ = load(DATA / "bad" / filename)
    assert check(model)


@pytest.mark.parametrize("filename,message", [
    ("free_inside.xml", "free joint can only be used on top level"),
    ("missing_mesh.xml", "does_not_exist.stl"),
    ("not_xml.xml", "XML parse error"),
])
def test_bad_files_that_mujoco_rejects(filename, message):
    with pytest.raises(ValueError, match=message):
        load(DATA / "bad" / filename)
