"""Contact-force squeeze and pregrasp (jaxgrasp.sim.forces) on the sphere fixture of
tests/test_simulate.py (tests/data/sim/sphere_grasp.json: the Shadow Hand's fingers and palm around
a 3.5 cm icosphere), and grasp files of schema 2."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import mujoco
import numpy as np
import pytest

from jaxgrasp.hand.model import load_hand
from jaxgrasp.planning.grasp_io import SCHEMA, load_grasp, save_grasp_dict
from jaxgrasp.sim.forces import (
    derive_poses,
    grasp_poses,
    grasp_scene,
    hand_object_contacts,
    joint_torques,
    push_wrenches,
)
from jaxgrasp.sim.grasp_files import read_grasps
from jaxgrasp.sim.protocol import SimConfig
from jaxgrasp.sim.simulate import simulate_grasp, simulate_scene

DATA = Path(__file__).parent / "data" / "sim"
CFG = SimConfig(start_at_pregrasp=True)  # DexGraspBench's sequence (the default starts at the grasp)


@pytest.fixture(scope="module")
def hand():
    return load_hand("shadow")


@pytest.fixture(scope="module")
def grasp():
    return read_grasps(DATA / "sphere_grasp.json")[0]


@pytest.fixture(scope="module")
def setup(hand, grasp):
    hand, scene, q = grasp_scene(grasp, CFG, hand=hand)
    return hand, scene, q, derive_poses(scene, hand, q, CFG)


def test_forces_resist_the_pushes(setup):
    """Independent check of the LP: per direction, the forces' net wrench about the centre of mass
    cancels the push, every force lies in the friction cone and presses at least the minimum; the
    squeeze set is self-balanced and presses at least as hard as any push needs."""
    _, scene, _, poses = setup
    assert poses.squeeze_source == "forces" and len(poses.contacts) >= 3
    c, sol = poses.contacts, poses.solution
    assert sol.feasible.all()
    push = push_wrenches(CFG.force_safety * CFG.force_per_kg * scene.mass)
    n = c.frames[:, 0]
    r = c.points - c.com
    for k in range(6):
        f = sol.forces[k]
        net = np.concatenate([f.sum(0), np.cross(r, f).sum(0)])
        np.testing.assert_allclose(net, -push[k], atol=1e-6 * np.abs(push).max())
        fn = np.einsum("ci,ci->c", f, n)
        ft = np.linalg.norm(f - fn[:, None] * n, axis=1)
        assert np.all(fn >= CFG.min_normal_force - 1e-7) and np.all(ft <= CFG.friction * fn + 1e-7)
    s = sol.squeeze
    np.testing.assert_allclose(np.concatenate([s.sum(0), np.cross(r, s).sum(0)]), 0.0, atol=1e-6)
    sn = np.einsum("ci,ci->c", s, n)
    assert np.all(sn >= np.einsum("kci,ci->kc", sol.forces, n).max(0) - 1e-6)
    assert sol.max_normal_force == pytest.approx(np.linalg.norm(s, axis=1).max())


def test_joint_torques_match_finite_differences(setup):
    """J^T f (mj_jac) against the virtual work of the contact points moved by each joint."""
    hand, scene, q, poses = setup
    c = poses.contacts
    m = scene.model
    f = np.random.default_rng(0).normal(size=c.points.shape)
    tau = joint_torques(scene, q, c.points, c.bodies, f)

    def points_at(qq):
        d = mujoco.MjData(m)
        d.qpos[scene.hand_qadr] = qq
        mujoco.mj_kinematics(m, d)
        return d

    d0 = points_at(q)
    local = [d0.xmat[b].reshape(3, 3).T @ (p - d0.xpos[b]) for p, b in zip(c.points, c.bodies)]
    h, fd = 1e-6, np.zeros(len(q))
    for j in range(len(q)):
        pts = []
        for sgn in (1, -1):
            qq = q.copy()
            qq[j] += sgn * h
            d = points_at(qq)
            pts.append(np.array([d.xmat[b].reshape(3, 3) @ pl + d.xpos[b] for pl, b in zip(local, c.bodies)]))
        fd[j] = np.sum(f * (pts[0] - pts[1])) / (2 * h)
    np.testing.assert_allclose(tau, fd, atol=1e-6)
    assert np.abs(tau).max() > 1e-3


def test_force_squeeze_needed(hand, grasp, setup):
    """The force-derived squeeze holds the sphere; the same protocol with a squeeze that does not
    press (squeeze = grasp) lets it turn away: the squeeze is what the test measures."""
    _, scene, q, poses = setup
    r = simulate_grasp(grasp, CFG, hand=hand)
    assert r.success and r.squeeze_source == "forces", r
    assert r.sim_normal_force_n > CFG.min_normal_force and np.isfinite(r.max_normal_force_n)
    z = simulate_scene(scene, q, q, CFG, q_pregrasp=poses.pregrasp, palm_pregrasp=poses.pregrasp_palm)
    assert not z["success"] and z["reason"].startswith(("moved", "turned"))


def test_squeeze_closes_and_pregrasp_opens(hand, setup):
    _, scene, q, poses = setup
    lo, hi = np.asarray(hand.joint_lower), np.asarray(hand.joint_upper)
    for qq in (poses.pregrasp, poses.squeeze):
        assert np.all(qq >= lo - 1e-9) and np.all(qq <= hi + 1e-9)
    ff = [hand.joint_names.index(f"FFJ{i}") for i in (3, 2)]
    assert np.all(poses.squeeze[ff] > q[ff])  # the first finger's distal pad presses: it flexes
    flex = [hand.joint_names.index(f"{f}J3") for f in ("FF", "MF", "RF", "LF")]
    assert np.all(poses.pregrasp[flex] < q[flex])  # the fingers open for the pregrasp
    near = hand_object_contacts(scene, poses.pregrasp, CFG.pregrasp_clearance)
    assert set(near.names) <= {"palm", "mfknuckle"}  # only geoms that no opening moves away


def test_far_grasp_falls_back(hand, grasp):
    g = copy.deepcopy(grasp)
    T = np.asarray(g["palm_pose"]["matrix"])
    T[:3, 3] += np.array([0.3, 0.0, 0.0])
    g["palm_pose"]["matrix"] = T.tolist()
    out = grasp_poses(g, hand=hand)
    assert out["forces"]["squeeze_source"] == "fallback:no_contacts" and not out["forces"]["feasible"]


def test_schema2_round_trip(hand, grasp, tmp_path):
    """grasp_poses -> file -> load: same angles and forces; the simulation uses the file's poses
    (same outcome as deriving them); the schema-1 fixture still loads."""
    assert json.loads((DATA / "sphere_grasp.json").read_text())["schema"] == "jaxgrasp.grasp/1"
    g2 = grasp_poses(grasp, hand=hand)
    assert g2["schema"] == SCHEMA == "jaxgrasp.grasp/2"
    path = save_grasp_dict(g2, tmp_path / "g2.json")
    back = load_grasp(path)
    for key in ("joint_angles", "pregrasp_joint_angles", "squeeze_joint_angles", "forces"):
        assert back[key] == json.loads(json.dumps(g2[key]))
    assert back["forces"]["feasible"] and back["forces"]["squeeze_source"] == "forces"
    r_file = simulate_grasp(path, CFG, hand=hand)
    r_derived = simulate_grasp(grasp, CFG, hand=hand)
    assert r_file.squeeze_source == "file:forces" and r_derived.squeeze_source == "forces"
    assert r_file.success == r_derived.success and len(r_file.directions) == len(r_derived.directions)
    bad = copy.deepcopy(g2)
    del bad["squeeze_joint_angles"][hand.joint_names[0]]
    save_grasp_dict(bad, tmp_path / "bad.json")
    with pytest.raises(ValueError):
        load_grasp(tmp_path / "bad.json")
