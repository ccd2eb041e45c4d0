"""Physics simulation of grasps (jaxgrasp.simulate, DexGraspBench protocol in MuJoCo).

The grasp in tests/data/sim/sphere_grasp.json was planned once by jaxgrasp.plan (seed 0, 16
starts) on a 3.5 cm icosphere (tests/data/sim/sphere.stl): the Shadow Hand's fingers wrap it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from jaxgrasp.hand import load_hand
from jaxgrasp.simulate import SimConfig, closing_signs, read_grasps, simulate_grasp

DATA = Path(__file__).parent / "data" / "sim"


@pytest.fixture(scope="module")
def hand():
    return load_hand("shadow")


@pytest.fixture(scope="module")
def grasp():
    g = read_grasps(DATA / "sphere_grasp.json")[0]
    assert Path(g["object"]["file"]) == (DATA / "sphere.stl").resolve()  # resolved beside the JSON
    return g


@pytest.fixture(scope="module")
def enclosing(hand, grasp):
    return simulate_grasp(grasp, SimConfig(), hand=hand)


def test_enclosing_grasp_succeeds(enclosing):
    r = enclosing
    assert r.success, r
    assert r.reason == "ok" and len(r.directions) == 6
    assert r.initial_contacts >= 2
    assert r.initial_penetration_mm < 1.0
    assert r.max_displacement_mm < 50.0 and r.max_rotation_deg < 15.0


def test_closing_signs_shadow(hand, grasp):
    q = np.array([grasp["joint_angles"][n] for n in hand.joint_names])
    s = dict(zip(hand.independent_names, closing_signs(hand, q)))
    for f in ("FF", "MF", "RF", "LF"):
        assert s[f"{f}J3"] == 1.0 and s[f"{f}J2"] == 1.0  # flexion closes (pads face -y)


def test_opened_fingers_fail(hand, grasp):
    g = copy.deepcopy(grasp)
    q = np.array([g["joint_angles"][n] for n in hand.joint_names])
    signs = closing_signs(hand, q)
    lo, hi = np.asarray(hand.joint_lower), np.asarray(hand.joint_upper)
    for k, j in enumerate(hand.independent):
        if signs[k] != 0:  # move every closing joint to its open limit
            g["joint_angles"][hand.joint_names[j]] = float(lo[j] if signs[k] > 0 else hi[j])
    for r in range(len(hand.coupled)):  # the distal joints follow (J1 = J2 on the Shadow Hand)
        j = hand.coupled[r]
        g["joint_angles"][hand.joint_names[j]] = float(np.asarray(hand.coupling_linear)[r] @ np.array(
            [g["joint_angles"][n] for n in hand.joint_names]) + float(hand.coupling_offset[r]))
    r = simulate_grasp(g, SimConfig(), hand=hand)
    assert not r.success
    assert r.reason.startswith(("moved", "turned"))


def test_far_grasp_fails(hand, grasp):
    g = copy.deepcopy(grasp)
    T = np.asarray(g["palm_pose"]["matrix"])
    T[:3, 3] += np.array([0.3, 0.0, 0.0])
    g["palm_pose"]["matrix"] = T.tolist()
    r = simulate_grasp(g, SimConfig(), hand=hand)
    assert not r.success and r.initial_contacts == 0
    assert r.reason.startswith("moved") and r.max_displacement_mm >= 50.0


def test_deep_penetration_fails_outright(hand, grasp):
    g = copy.deepcopy(grasp)
    T = np.asarray(g["palm_pose"]["matrix"])
    com = np.asarray(g["object"]["center_of_mass"])
    T[:3, 3] += 0.5 * (com - T[:3, 3])  # halfway towards the centre: the palm inside the sphere
    g["palm_pose"]["matrix"] = T.tolist()
    r = simulate_grasp(g, SimConfig(), hand=hand)
    assert not r.success and r.reason == "initial_penetration" and r.initial_penetration_mm > 10.0
    assert r.directions == ()


def test_deterministic(hand, grasp, enclosing):
    again = simulate_grasp(grasp, SimConfig(), hand=hand)
    assert again.directions == enclosing.directions
    assert again.initial_penetration_mm == enclosing.initial_penetration_mm
