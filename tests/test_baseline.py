"""The simulated-annealing baseline (jaxgrasp.planning.baseline): energy, determinism, grasp files, validity."""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import trimesh

from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.hand.model import load_hand
from jaxgrasp.planning import baseline as B
from jaxgrasp.planning import planner
from jaxgrasp.planning.grasp_io import grasp_to_dict, load_grasp, save_grasp

# One chain count and chunk for every test: the annealing step compiles once.
CFG = B.AnnealConfig(chains=8, steps=40, chunk=20, seed=0)
OFFSET = np.array([0.2, -0.1, 0.05])  # results must come back in the input frame


@functools.cache
def _hand():
    return load_hand("shadow")


def _sphere() -> trimesh.Trimesh:
    # 320 faces: under opt_faces, so the energy sees this very mesh (no decimation).
    m = trimesh.creation.icosphere(subdivisions=2, radius=0.035)
    m.apply_translation(OFFSET)
    return m


@functools.cache
def _run(seed: int):
    return B.anneal_grasps(_sphere(), _hand(), num_grasps=2, config=dataclasses.replace(CFG, seed=seed))


def _energies(hand, scene, xs, p, rows: int = 32):
    # Always `rows` configurations (padded by repeating the last): one compilation.
    x = np.stack(list(xs) + [xs[-1]] * (rows - len(xs)))
    e, terms = B.batch_energy(hand, scene, jnp.asarray(x, hand.body_pos.dtype), p)
    return np.asarray(e)[: len(xs)], {k: np.asarray(v)[: len(xs)] for k, v in terms.items()}


def test_energy_lower_touching_than_away_and_matches_trimesh():
    hand, mesh = _hand(), _sphere()
    prep = planner.prepare_object(mesh, opt_faces=CFG.opt_faces)
    obj = prep.obj
    scene = B.anneal_scene(hand, prep, CFG)
    p = B.anneal_params(CFG, hand)
    x0 = np.asarray(planner.initial_configs(hand, float(obj.size), 8, jax.random.PRNGKey(0),
                                            opening=CFG.starts.opening, standoff=CFG.starts.standoff))
    u = planner.fibonacci_sphere(8)[0]  # start 0 approaches along -u (palm at +u)
    # Slide the hand towards the object in 1 mm steps; the legal state of lowest energy touches it.
    shifts = np.linspace(0.0, 0.03, 31)
    xs = [np.concatenate([x0[0, :3] - s * u, x0[0, 3:]]) for s in shifts]
    e, terms = _energies(hand, scene, xs, p)
    assert np.isfinite(e[0]) and not np.isfinite(e[-1])  # 3 cm in: illegal (hard penetration)
    k = int(np.argmin(e))
    assert terms["max_pen"][k] <= CFG.hard_penetration
    x_touch = xs[k]
    x_away = np.concatenate([x_touch[:3] + 0.05 * u, x_touch[3:]])
    x_deep = xs[-1]
    e2, t2 = _energies(hand, scene, [x_touch, x_away, x_deep], p)
    assert e2[0] < e2[1]
    # Moving every point 5 cm away raises each outside distance by at most 5 cm.
    assert 0.0 < t2["contact"][1] - t2["contact"][0] <= 50.0 + 1e-3

    # Independent reference (trimesh, float64): the contact term is the mean |distance| of the
    # candidates in mm, and the deep state really has hand samples inside the object.
    posed = pose_hand(hand, jnp.asarray(x_touch, hand.body_pos.dtype))
    d_touch = trimesh.proximity.signed_distance(mesh, np.asarray(posed.sample_pos, np.float64)
                                                + np.asarray(obj.center_of_mass, np.float64))
    # the closest hand sample is within the contact tolerance (3 mm) of the surface
    assert -CFG.hard_penetration <= -d_touch.max() <= CFG.evaluation.contact_tolerance
    for x, t in ((x_touch, t2["contact"][0]), (x_away, t2["contact"][1])):
        posed = pose_hand(hand, jnp.asarray(x, hand.body_pos.dtype))
        cp = np.asarray(posed.contact_pos, np.float64) + np.asarray(obj.center_of_mass, np.float64)
        d = trimesh.proximity.closest_point(mesh, cp)[1]
        np.testing.assert_allclose(t, 1e3 * d.mean(), rtol=1e-4, atol=1e-3)
    posed = pose_hand(hand, jnp.asarray(x_deep, hand.body_pos.dtype))
    sp = np.asarray(posed.sample_pos, np.float64)[: p.hand_samples] + np.asarray(obj.center_of_mass, np.float64)
    depth = trimesh.proximity.signed_distance(mesh, sp)  # positive inside
    assert depth.max() > CFG.hard_penetration
    # The energy's penetration covers these samples (plus object points in the links' hulls).
    assert t2["max_pen"][2] >= depth.max() * (1 - 1e-3)
    assert t2["penetration"][2] >= 1e3 * np.maximum(depth, 0).sum() * (1 - 1e-3)


def test_compose_rotation_matches_matrix_product():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    for shape in [(3,), (5, 3), (2, 4, 3)]:
        a = rng.normal(size=shape) * 1.5
        b = rng.normal(size=shape) * 1.5
        b.reshape(-1, 3)[0] = 0.0  # the identity: the small-angle branch
        r = np.array(B.compose_rotation(jnp.asarray(a), jnp.asarray(b)))
        ref = (Rotation.from_rotvec(a.reshape(-1, 3)) * Rotation.from_rotvec(b.reshape(-1, 3))).as_matrix()
        np.testing.assert_allclose(Rotation.from_rotvec(r.reshape(-1, 3)).as_matrix(), ref, atol=1e-9)
        assert np.all(np.linalg.norm(r, axis=-1) <= np.pi + 1e-9)


def test_schedule_is_graspit_cooling():
    cfg = B.AnnealConfig(steps=700, t_start=10.0, t_end=0.1, schedule_dims=8, k0_fraction=30000 / 70000)
    p = B.anneal_params(cfg, _hand())
    i = np.arange(0, 701, 50)
    T = np.asarray(jax.vmap(lambda k: B.temperature(p, k))(jnp.asarray(i, jnp.float32)))
    np.testing.assert_allclose(T[[0, -1]], [10.0, 0.1], rtol=1e-5)
    # T0 exp(-c k^(1/D)) with k = k0 + i: log T is affine in k^(1/8).
    k = (300.0 + i) ** (1.0 / 8.0)
    slope, icpt = np.polyfit(k, np.log(T), 1)
    np.testing.assert_allclose(np.log(T), slope * k + icpt, atol=1e-5)
    assert np.all(np.diff(T) < 0)


def test_annealing_is_deterministic_under_a_seed():
    a, b = _run(0), B.anneal_grasps(_sphere(), _hand(), num_grasps=2, config=CFG)
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.config, rb.config)
        assert ra.metrics["q1"] == rb.metrics["q1"] and ra.metrics["energy"] == rb.metrics["energy"]
    c = _run(1)
    assert not np.array_equal(a[0].config, c[0].config)
    assert a[0].metrics["anneal_steps"] == CFG.steps and len(a[0].starts) == CFG.chains


def test_grasp_json_roundtrip_with_planner_annealing(tmp_path):
    r = _run(0)[0]
    path = save_grasp(r, tmp_path / "g.json", planner="annealing")
    g = load_grasp(path)
    assert g["planner"] == "annealing"
    assert g == json.loads(json.dumps(grasp_to_dict(r, planner="annealing")))
    assert "time_to_first_valid_s" in g["metrics"] and g["metrics"]["anneal_steps"] == CFG.steps
    assert len(g["config"]) == r.hand.num_dof and set(g["joint_angles"]) == set(r.hand.joint_names)
    # Input frame: the palm pose is the centred-frame pose shifted by the centre of mass.
    T = np.asarray(pose_hand(r.hand, jnp.asarray(g["config"], r.hand.body_pos.dtype)).T_world_palm, np.float64)
    np.testing.assert_allclose(np.asarray(g["palm_pose"]["matrix"])[:3, 3], T[:3, 3] + r.center_of_mass, atol=1e-6)
    np.testing.assert_allclose(r.center_of_mass, OFFSET, atol=1e-3)


def test_sphere_with_small_budget_gives_a_grasp_without_penetration():
    mesh = _sphere()
    _run(0)  # compiled (the budget counts compilation)
    cfg = dataclasses.replace(CFG, steps=400, chains=CFG.chains)
    # A fixed number of steps, not a time budget: the outcome must not depend on machine load.
    r = B.anneal(mesh, _hand(), config=cfg, time_budget=None)
    m = r.metrics
    assert m["penetration_mm"] <= 1.0 and m["self_penetration_mm"] <= 1.0
    assert m["anneal_steps"] >= CFG.chunk
    if m["valid"]:
        assert m["time_to_first_valid_s"] is not None and m["time_to_first_valid_s"] <= r.time_s
    # Independent check: no hand sample more than 1 mm inside the sphere (trimesh, float64).
    posed = pose_hand(r.hand, jnp.asarray(r.config, r.hand.body_pos.dtype))
    depth = trimesh.proximity.signed_distance(mesh, np.asarray(posed.sample_pos, np.float64) + r.center_of_mass)
    assert depth.max() <= 1.0e-3 + 1e-5


def test_sphere_fixed_steps_finds_force_closure():
    """A working baseline: 240 deterministic steps on a sphere give a valid grasp (force closure,
    penetration under 1 mm), checked against trimesh."""
    mesh = _sphere()
    r = B.anneal_grasps(mesh, _hand(), config=dataclasses.replace(CFG, steps=240))[0]
    m = r.metrics
    assert m["valid"] and m["q1"] > 0 and m["num_contacts"] >= 2
    posed = pose_hand(r.hand, jnp.asarray(r.config, r.hand.body_pos.dtype))
    depth = trimesh.proximity.signed_distance(mesh, np.asarray(posed.sample_pos, np.float64) + r.center_of_mass)
    assert depth.max() <= 1.0e-3 + 1e-5
    # the reported contacts lie on the sphere (input frame)
    d = np.abs(trimesh.proximity.signed_distance(mesh, r.contact_pos))
    assert d.max() <= CFG.evaluation.contact_tolerance + 1e-5
