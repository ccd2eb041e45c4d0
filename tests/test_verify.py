"""``plan_grasps(..., verify="mujoco")``: only grasps that held in simulation come back."""

from __future__ import annotations

import dataclasses
import json

import pytest
import trimesh

from jaxgrasp.cli.plan import main as plan_main
from jaxgrasp.planning.api import plan_grasps as plan_unverified
from jaxgrasp.planning.settings import PlanConfig, Schedule, Shapes
from jaxgrasp.sim import verify
from jaxgrasp.sim.protocol import SimConfig
from jaxgrasp.sim.verify import NoGraspHeld, plan, verify_in_simulation

CFG = PlanConfig(shapes=Shapes(num_starts=8), schedule=Schedule(steps=150), seed=0)  # as test_planner
STRICT = dataclasses.replace(SimConfig(), force_per_kg=1e4)  # a push of about a thousand times the weight


def _sphere():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.035)
    mesh.apply_translation([0.2, -0.1, 0.05])
    return mesh


@pytest.fixture(scope="module")
def candidates():
    return plan_unverified(_sphere(), "shadow", num_grasps=CFG.shapes.num_starts, config=CFG)


def test_verified_grasps_held_and_the_rest_are_counted(candidates):
    out = verify_in_simulation(candidates, 2)
    assert 1 <= len(out) <= 2
    for r in out:
        assert r.metrics["valid"] and r.metrics["simulation"]["success"]
        v = r.metrics["verify"]
        assert v["simulated"] == len(out) + v["rejected_in_simulation"]
        assert v["invalid_not_simulated"] == sum(not c.metrics["valid"] for c in candidates)


def test_nothing_holds_a_thousand_times_the_weight(candidates, monkeypatch):
    assert verify_in_simulation(candidates, 1, STRICT) == []
    with pytest.raises(ValueError, match="verify"):
        plan(_sphere(), "shadow", config=CFG, verify="bullet")
    # plan() with nothing held (what plan_grasps(verify=...) returned above) raises; the planning
    # itself is not repeated here (the CLI test below runs the whole path).
    monkeypatch.setattr(verify, "plan_grasps", lambda *a, **k: [])
    with pytest.raises(NoGraspHeld):
        plan(_sphere(), "shadow", config=CFG, verify="mujoco", sim_config=STRICT)


def test_cli_verify_writes_held_grasps_with_their_poses(tmp_path):
    path = tmp_path / "sphere.stl"
    _sphere().export(path)
    assert plan_main([str(path), "--out", str(tmp_path / "out"), "--starts", "8", "--steps", "150",
                      "--no-pictures", "--verify", "mujoco"]) == 0
    g = json.loads((tmp_path / "out" / "sphere.json").read_text())["grasps"][0]
    assert g["schema"] == "jaxgrasp.grasp/2" and g["metrics"]["simulation"]["success"]
    assert set(g["pregrasp_joint_angles"]) == set(g["squeeze_joint_angles"]) == set(g["joint_angles"])
    assert g["forces"]["squeeze_source"] in ("forces", "fallback:no_contacts", "fallback:infeasible")
