"""MuJoCo Menagerie's Shadow Hand, bundled as ``shadow_menagerie`` (robots/README.md), and what
the derivation of contact candidates does for third-party hands (jaxgrasp/hand/derive.py).

References are MuJoCo itself (mj_kinematics of the bundled file) and the hand's own frames: the
Menagerie palm's palmar direction is its -y axis (its ``grasp_site`` sits at y = -0.035).
"""

from __future__ import annotations

import json

import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
import trimesh
from handcases import mujoco_poses

from jaxgrasp import PlanConfig, Schedule, Shapes, plan_grasps
from jaxgrasp.hand import annotate
from jaxgrasp.hand.derive import failure_hint
from jaxgrasp.hand.kinematics import couple, forward_kinematics
from jaxgrasp.hand.model import load_hand

NAME = "shadow_menagerie"
WRIST = ["rh_WRJ2", "rh_WRJ1"]
FINGERS = ("ff", "mf", "rf", "lf")


@pytest.fixture(scope="module")
def hand():
    return load_hand(NAME)


def _rest_candidates(hand):
    """Candidates' bodies, positions and normals in MuJoCo's world at qpos0, and MuJoCo's data."""
    model = mujoco.MjModel.from_xml_path(hand.path)
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    ids = np.array([model.body(n).id for n in hand.body_names])[np.asarray(hand.contact_body)]
    R = data.xmat[ids].reshape(-1, 3, 3)
    p = np.einsum("cij,cj->ci", R, np.asarray(hand.contact_pos, np.float64)) + data.xpos[ids]
    n = np.einsum("cij,cj->ci", R, np.asarray(hand.contact_normal, np.float64))
    return [hand.body_names[b] for b in np.asarray(hand.contact_body)], p, n, model, data


def test_loads_from_its_shipped_cache_with_the_wrist_held(hand, monkeypatch):
    assert hand.name == NAME and hand.num_joints == 24 and hand.body_names[0] == "rh_forearm"
    assert hand.body_names[hand.palm] == "rh_palm"
    assert [hand.joint_names[j] for j in hand.fixed_joints] == WRIST
    # 24 joints - 2 wrist joints held; J1/J2 share an actuated tendon, no equality: independent.
    assert hand.num_independent == 22 and hand.num_dof == 28
    assert not hand.findings and hand.num_contacts == 45
    assert hand.hull_normal.shape[1] <= 96  # the meshes' hulls (>2,000 planes) simplified
    q = couple(hand, jnp.asarray(np.asarray(hand.joint_upper)[np.asarray(hand.independent)]))
    np.testing.assert_array_equal(np.asarray(q)[[hand.joint_names.index(j) for j in WRIST]], 0.0)
    # The annotations come from the cache beside the hand file: nothing is computed.
    monkeypatch.setattr(annotate, "compute_annotations", lambda *a, **k: pytest.fail("cache not used"))
    load_hand(NAME)


def test_fk_matches_mujoco():
    """50 random configurations, the wrist included, body by body within 1e-6."""
    hand = load_hand(NAME, dtype=jnp.float64)
    q = np.random.default_rng(0).uniform(np.asarray(hand.joint_lower), np.asarray(hand.joint_upper),
                                         size=(50, hand.num_joints))
    ours = np.asarray(forward_kinematics(hand, jnp.asarray(q)))
    ref = mujoco_poses(NAME, q)
    assert np.abs(ours[..., :3, :] - ref[..., :3, :]).max() <= 1e-6
    assert np.abs(ref[:, -1, :3, 3] - ref[0, -1, :3, 3]).max() > 1e-2  # the check is not vacuous


def test_candidates_are_on_the_grasping_side(hand):
    """At rest (fingers straight): palm candidates on the palm's front, facing palmar; finger pads
    facing palmar; thumb pads facing palmar or the fingers; none on the forearm or wrist."""
    names, p, n, model, data = _rest_candidates(hand)
    palm = model.body("rh_palm").id
    palmar = -data.xmat[palm].reshape(3, 3)[:, 1]
    fingers = np.mean([data.xpos[model.body(f"rh_{f}middle").id] for f in FINGERS], axis=0)
    counts = {}
    for name, pi, ni in zip(names, p, n):
        counts[name] = counts.get(name, 0) + 1
        if name == "rh_palm":
            assert ni @ palmar > np.cos(np.deg2rad(30)) and (pi - data.xpos[palm]) @ palmar > 0.005, name
        elif name.startswith("rh_th"):
            towards = (fingers - pi) / np.linalg.norm(fingers - pi)
            assert max(ni @ palmar, ni @ towards) > 0.3 and ni @ palmar > -0.2, name
        else:
            assert name[3:5] in FINGERS and ni @ palmar > 0.7, name
    assert counts["rh_palm"] == 10 and "rh_forearm" not in counts and "rh_wrist" not in counts
    for digit in (*FINGERS, "th"):
        assert counts[f"rh_{digit}distal"] == 3 and counts[f"rh_{digit}middle"] == 2
        assert counts[f"rh_{digit}proximal"] == 2


def test_plans_a_valid_grasp_of_a_sphere(hand):
    cfg = PlanConfig(shapes=Shapes(num_starts=4), schedule=Schedule(steps=60), seed=3)
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.035)
    r = plan_grasps(sphere, hand, config=cfg)[0]
    assert r.metrics["valid"] and r.metrics["q1"] > 0 and r.metrics["penetration_mm"] <= 1.0
    assert all(r.joint_angles[j] == 0.0 for j in WRIST)
    assert failure_hint(hand, r.metrics) is None
    assert "by 8.0 mm" in failure_hint(hand, {**r.metrics, "valid": False, "self_penetration_mm": 8.0})
    assert failure_hint(hand, {**r.metrics, "valid": False, "self_penetration_mm": 1.1}) is None  # no cause seen


# --------------------------------------------------------------------------- findings

SMALL_ARM_HAND = """
<mujoco>
  <compiler angle="radian" autolimits="true"/>
  <default><geom type="capsule" size="0.008 0.015"/></default>
  <worldbody>
    <body name="forearm">
      <geom type="box" size="0.02 0.02 0.06" pos="0 0 -0.06"/>
      <body name="wrist" pos="0 0 0.01">
        <joint name="wrj" axis="0 1 0" range="-0.5 0.5"/>
        <body name="palm" pos="0 0 0.01">
          <geom type="box" size="0.04 0.01 0.04" pos="0 0 0.04"/>
          {fingers}
        </body>
      </body>
    </body>
  </worldbody>
</mujoco>
"""
FINGER = """
          <body name="{f}1" pos="{x} 0 0.09">
            <joint name="{f}j1" axis="1 0 0" range="{range}"/>
            <geom pos="0 0 0.02"/>
            <body name="{f}2" pos="0 0 0.04">
              <joint name="{f}j2" axis="1 0 0" range="{range}"/>
              <geom pos="0 0 0.02"/>
            </body>
          </body>"""


def _small_hand(tmp_path, reversed_finger: bool):
    fingers = "".join(FINGER.format(f=f, x=x, range="-1.5 0.1" if reversed_finger and f == "c" else "-0.1 1.5")
                      for f, x in (("a", -0.025), ("b", 0.0), ("c", 0.025)))
    path = tmp_path / "arm_hand.xml"
    path.write_text(SMALL_ARM_HAND.format(fingers=fingers))
    return path


def test_derivation_skips_the_arm_and_flags_what_looks_wrong(tmp_path):
    path = _small_hand(tmp_path, reversed_finger=False)
    hand = load_hand(str(path), cache=False)
    assert hand.body_names[hand.palm] == "palm" and [hand.joint_names[j] for j in hand.fixed_joints] == ["wrj"]
    cb = [hand.body_names[b] for b in np.asarray(hand.contact_body)]
    assert cb.count("palm") == 10 and "forearm" not in cb and "wrist" not in cb
    np.testing.assert_allclose(np.asarray(hand.palm_normal), [0, -1, 0], atol=1e-6)  # +x hinges close to -y
    # Three parallel fingers, none opposing another: said, with what to change.
    assert len(hand.findings) == 1 and "no two fingers" in hand.findings[0]
    assert "contacts.json" in failure_hint(hand, {"valid": False})
    # One finger whose range says it closes the other way: its pads face the back.
    hand = load_hand(str(_small_hand(tmp_path, reversed_finger=True)), cache=False)
    assert any("finger 'c2' closes away from the palm side" in f for f in hand.findings)
    # Candidates given on the forearm and the back of the palm.
    override = tmp_path / "over.json"
    override.write_text(json.dumps({"contacts": [{"body": "forearm", "pos": [0, -0.02, -0.06], "normal": [0, -1, 0]},
                                                 {"body": "palm", "pos": [0, 0.01, 0.04], "normal": [0, 1, 0]},
                                                 {"body": "a2", "pos": [0, 0.008, 0.02], "normal": [0, 1, 0]}],
                                    "palm_normal": [0, -1, 0]}))
    hand = load_hand(str(path), contacts=str(override), cache=False)
    text = " ".join(hand.findings)
    assert "on ['forearm'], above the palm 'palm'" in text and "1 palm candidates face away" in text
    assert "candidates on ['a2'] face away from the way their finger closes" in text
