"""Hand loading: bundled and third-party files, couplings, annotations, errors."""

from __future__ import annotations

import json

import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
import trimesh
from handcases import COUPLED_XML, DATA, HAND_CASES, case_id

from jaxgrasp.hand.annotate import hand_annotations, link_meshes
from jaxgrasp.hand.kinematics import couple, forward_kinematics
from jaxgrasp.hand.mjcf import HandLoadError, bundled_hands, compile_model, read_tree
from jaxgrasp.hand.model import load_hand

SHADOW_JOINTS = [f"{f}J{i}" for f in ("FF", "MF", "RF") for i in (4, 3, 2, 1)] + \
    [f"LFJ{i}" for i in (5, 4, 3, 2, 1)] + [f"THJ{i}" for i in (5, 4, 3, 2, 1)]



@pytest.fixture(scope="module")
def coupled_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("hand") / "coupled.xml"
    p.write_text(COUPLED_XML)
    return str(p)


def test_bundled_hands_present():
    assert {"shadow", "threefinger", "parallel_jaw"} <= set(bundled_hands())


def test_shadow_structure():
    hand = load_hand("shadow")
    assert list(hand.joint_names) == SHADOW_JOINTS
    assert hand.num_independent == 18 and hand.num_dof == 24  # the paper's (6 + 18)
    assert {hand.joint_names[j] for j in hand.coupled} == {"FFJ1", "MFJ1", "RFJ1", "LFJ1"}
    assert hand.body_names[0] == "palm"
    assert hand.num_contacts == 45
    # FFJ1 follows FFJ2 one to one.
    idx = list(hand.independent)
    qi = 0.5 * (hand.joint_lower[jnp.asarray(idx)] + hand.joint_upper[jnp.asarray(idx)])
    q = couple(hand, qi)
    assert float(q[hand.joint_names.index("FFJ1")]) == pytest.approx(float(q[hand.joint_names.index("FFJ2")]))


def test_coupled_hand_rules(coupled_path):
    hand = load_hand(coupled_path, dtype=jnp.float64, cache=False)
    names = hand.joint_names
    assert [names[j] for j in hand.coupled] == ["j2", "k2"]
    qi = jnp.array([0.7, 0.1, 0.9, 0.004])  # j1, j1b, k1, k3
    q = couple(hand, qi)
    d = 0.7 - 0.1  # j1 - qpos0(j1)
    assert float(q[names.index("j2")]) == pytest.approx(0.1 + 0.8 * d + 0.2 * d * d)
    assert float(q[names.index("k2")]) == pytest.approx(0.9 / 3.0)
    # Root placed at (0, 0, 0.5) with a rotation in the file: the hand frame is the root frame.
    T = forward_kinematics(hand, q)
    np.testing.assert_allclose(np.asarray(T[0]), np.eye(4), atol=1e-12)


@pytest.mark.parametrize("case", HAND_CASES, ids=case_id)
def test_annotations_lie_on_the_collision_surface(case):
    hand = load_hand(case, dtype=jnp.float64)
    model = compile_model(case)
    tree = read_tree(model)
    meshes = link_meshes(model, tree)
    for name, body, pos in (("contact", hand.contact_body, hand.contact_pos), ("sample", hand.sample_body, hand.sample_pos)):
        body, pos = np.asarray(body), np.asarray(pos)
        for b in np.unique(body):
            sel = pos[body == b]
            _, dist, _ = trimesh.proximity.closest_point(meshes[b], sel)
            assert dist.max() < 1.5e-3, f"{name} points off the surface of {hand.body_names[b]}"
    # Samples are inside (or on) their link's hull; a point pushed out along the normal is not.
    n, o, m = (np.asarray(a) for a in (hand.hull_normal, hand.hull_offset, hand.hull_mask))
    sb, sp, sn = (np.asarray(a) for a in (hand.sample_body, hand.sample_pos, hand.sample_normal))
    val = np.einsum("shk,sk->sh", n[sb], sp) + o[sb]
    depth = np.max(np.where(m[sb], val, -np.inf), axis=1)
    assert depth.max() < 1.5e-3
    out = np.max(np.where(m[sb], np.einsum("shk,sk->sh", n[sb], sp + 0.01 * sn) + o[sb], -np.inf), axis=1)
    # Only on links of one geom: on a link of several geoms (Menagerie's) a point pushed out of
    # one geom can still lie inside the link's hull, between its geoms.
    one = np.array([m_ is not None and "geom_planes" not in m_.metadata for m_ in meshes])
    if one[sb].any():
        assert np.mean(out[one[sb]] > 0) > 0.95
    assert np.allclose(np.linalg.norm(np.asarray(hand.contact_normal), axis=1), 1.0)
    # Contact normals point away from their link (outward).
    cb, cp, cn = (np.asarray(a) for a in (hand.contact_body, hand.contact_pos, hand.contact_normal))
    for b in np.unique(cb):
        c = meshes[b].centroid
        assert np.all(np.sum((cp[cb == b] - c) * cn[cb == b], axis=1) > 0)


def test_thirdparty_hand_mm_meshes_and_auto_contacts():
    path = DATA / "thirdparty_hand" / "hand.xml"
    hand = load_hand(str(path))
    extent = np.ptp(np.asarray(hand.sample_pos), axis=0)
    assert 0.03 < extent.max() < 0.5, "meshes authored in mm must come out in metres"
    # No contact sites in the file: 3 + 2 + 2 per finger plus palm candidates, derived.
    fingers = hand.num_contacts - int(np.sum(np.asarray(hand.contact_body) == 0))
    assert fingers > 0 and hand.num_contacts >= 20
    # Pads face the palm side: at the open rest pose every derived contact normal has a
    # positive component along the palm normal (none sits on a link's back or end face).
    T = forward_kinematics(hand, hand.joint_ref)
    cb = np.asarray(hand.contact_body)
    n_world = np.einsum("cij,cj->ci", np.asarray(T[cb, :3, :3]), np.asarray(hand.contact_normal))
    assert np.all(n_world @ np.asarray(hand.palm_normal) > 0.2)
    # The palm normal points from the palm towards where the fingertips close.
    assert abs(float(np.asarray(hand.palm_normal) @ np.asarray(hand.finger_direction))) < 1e-6


def test_contact_override_file(tmp_path, coupled_path):
    override = tmp_path / "over.json"
    override.write_text(json.dumps({"contacts": [{"body": "f2", "pos": [0, -0.01, 0.01], "normal": [0, -1, 0]},
                                                 {"body": "palm", "pos": [0, -0.01, 0], "normal": [0, -2, 0]}]}))
    hand = load_hand(coupled_path, contacts=str(override), cache=False)
    assert hand.num_contacts == 2
    np.testing.assert_allclose(np.asarray(hand.contact_normal[1]), [0, -1, 0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"contacts": [{"body": "nope", "pos": [0, 0, 0], "normal": [0, 0, 1]}]}))
    with pytest.raises(ValueError, match="unknown body"):
        load_hand(coupled_path, contacts=str(bad), cache=False)


def test_annotation_cache_roundtrip(tmp_path, monkeypatch):
    """The cache goes to the user's cache folder, never beside the user's hand file."""
    monkeypatch.setenv("JAXGRASP_CACHE", str(tmp_path / "cache"))
    p = tmp_path / "h.xml"
    p.write_text(COUPLED_XML)
    model = compile_model(str(p))
    tree = read_tree(model)
    a = hand_annotations(model, tree, p, num_samples=256)
    cache = tmp_path / "cache" / "annotations"
    files = list(cache.glob("h.annotations.*.npz"))
    assert len(files) == 1
    b = hand_annotations(model, tree, p, num_samples=256)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    hand_annotations(model, tree, p, num_samples=128)  # other options: another cache entry
    assert len(list(cache.glob("h.annotations.*.npz"))) == 2
    assert not list(tmp_path.glob("*.npz"))


def test_urdf_hand_loads():
    hand = load_hand(str(DATA / "urdf_hand" / "hand.urdf"))
    assert hand.num_joints >= 4 and hand.num_contacts > 0
    assert all(name for name in hand.joint_names)


@pytest.mark.parametrize(
    "fname, pattern",
    [
        ("ball_joint.xml", "ball joint"),
        ("free_inside.xml", "free joint|MuJoCo could not compile"),
        ("missing_mesh.xml", "missing|not found"),
        ("not_a_hand.xml", "not a hand"),
        ("not_xml.xml", "not an MJCF or URDF"),
    ],
)
def test_bad_files_give_clear_errors(fname, pattern):
    with pytest.raises(HandLoadError, match=pattern):
        load_hand(str(DATA / "bad" / fname), cache=False)


def test_unknown_name_lists_bundled_hands():
    with pytest.raises(HandLoadError, match="shadow"):
        load_hand("no_such_hand")


def test_root_choice_with_several_hands(tmp_path):
    two = COUPLED_XML.replace("<worldbody>", '<worldbody><body name="other"><joint name="o" range="0 1"/><geom size=".01"/></body>')
    p = tmp_path / "two.xml"
    p.write_text(two)
    with pytest.raises(HandLoadError, match="root="):
        load_hand(str(p), cache=False)
    hand = load_hand(str(p), root="palm", cache=False)
    assert hand.body_names[0] == "palm" and "o" not in hand.joint_names
    assert mujoco.MjModel.from_xml_path(str(p)).njnt == hand.num_joints + 1
