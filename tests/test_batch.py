"""Batch planning over object sets, and the screened exact evaluation on large meshes."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import trimesh

from jaxgrasp.hand.model import load_hand
from jaxgrasp.planning.api import plan_grasps
from jaxgrasp.planning.batch import grasp_diversity, plan_batch
from jaxgrasp.planning.planner import (
    PlanConfig,
    Schedule,
    Shapes,
    as_object,
    compile_plan,
    evaluate,
    initial_configs,
    loss_hand,
    make_scene,
    optimize,
    prepare,
    rank_key,
    squeeze,
    start_configs,
)

CFG = PlanConfig(shapes=Shapes(num_starts=4), schedule=Schedule(steps=25), seed=3)


def _objects():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.035)
    box = trimesh.creation.box(extents=(0.05, 0.06, 0.08))
    tube = trimesh.creation.cylinder(radius=0.03, height=0.09, sections=24)
    # Open tube (caps removed): not watertight, so the batch holds both sign tests.
    keep = np.abs(tube.face_normals[:, 2]) < 0.5
    tube = trimesh.Trimesh(tube.vertices, tube.faces[keep], process=False)
    return [sphere, tube, box]


def test_plan_batch_groups_by_watertightness_and_keeps_input_order():
    hand = load_hand("shadow")
    # Open tube first: processing the watertight group first must not reorder the results.
    meshes = [_objects()[1], _objects()[0]]
    assert [as_object(m)[0].watertight for m in meshes] == [False, True]
    results = plan_batch(meshes, hand, num_grasps=2, config=CFG)
    assert len(results) == 2 and all(len(r) == 2 for r in results)
    for m, rs in zip(meshes, results):
        v = as_object(m)[2].vertices  # after the loader's repairs (unused vertices dropped)
        for r in rs:
            # Each object's grasps come back with its own mesh (input frame), best first.
            assert r.object_vertices.shape == v.shape
            assert np.allclose(np.sort(r.object_vertices, 0), np.sort(v, 0), atol=1e-6)
            assert r.metrics.keys() >= {"q1", "q1_generalized", "q1_generalized_upper", "q1_generalized_lower", "valid"}
        assert rank_key(rs[0].metrics) <= rank_key(rs[1].metrics)
    for i, (m, rs) in enumerate(zip(meshes, results)):
        # The same starts optimized alone (the key plan_batch gives object i): each returned
        # grasp is one of them or its squeezed version (vmap over objects = the same
        # computation, in input order).
        key = jax.random.split(jax.random.PRNGKey(CFG.seed), len(meshes))[i]
        prep = prepare(m, CFG)
        obj = prep.obj
        scene = make_scene(prep, CFG, pad_faces=256)
        h = loss_hand(hand, CFG)  # the hand as the loss sees it (its collision geoms attached)
        x, _ = optimize(h, scene, start_configs(h, obj, CFG, key), CFG)
        x = np.concatenate([np.asarray(x), np.asarray(squeeze(h, scene, x, CFG))])
        got = np.stack([r.config for r in rs])
        dist = np.min(np.abs(got[:, None, :] - np.asarray(x)[None]).max(-1), axis=1)
        assert np.all(dist < 1e-4), dist
        d = grasp_diversity(rs)
        assert d["rotation_deg"] > 0 and d["translation_mm"] > 0


def test_screened_evaluation_equals_full_evaluation_on_a_large_mesh():
    hand = load_hand("shadow")
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.04)  # 20,480 faces: screened
    prep = prepare(mesh, CFG)
    obj = prep.obj
    # Hands from 1 cm outside to 2 cm inside the bounding sphere: no contact, touching, deep.
    xs = [np.asarray(initial_configs(hand, float(obj.size), 2, jax.random.PRNGKey(1), opening=0.3,
                                     standoff=s)) for s in (0.01, 0.0, -0.005, -0.02)]
    for xi in np.concatenate(xs):
        a = evaluate(hand, prep, xi, CFG, extras=False)
        b = evaluate(hand, prep, xi, CFG, extras=False, screen=False)
        for k in ("q1", "penetration_mm", "self_penetration_mm", "num_contacts", "valid"):
            assert np.isclose(a[k], b[k], rtol=1e-9, atol=1e-9), (k, a[k], b[k])
    assert prep.screening is not None  # screened
    assert max(evaluate(hand, prep, xi, CFG, extras=False)["penetration_mm"] for xi in xs[-1]) > 5.0


def test_screening_mesh_rejects_a_coarse_level_early_and_bounds_the_chosen_one(monkeypatch):
    """With a tolerance no decimation meets, the 1,024-face level is rejected on its first
    one-sided distance (the other side is never measured) and the last level is measured on both
    sides: its bound is the larger of the two one-sided distances, each measured here by brute
    force over the same points with trimesh's closest points."""
    from jaxgrasp.planning import prepared

    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.04)
    measured = []
    real = prepared._max_distance
    monkeypatch.setattr(prepared, "_max_distance", lambda t, p, *a: measured.append(len(p)) or real(t, p, *a))
    monkeypatch.setattr(prepared, "SCREEN_TOLERANCE", 1e-6)
    prep = prepare(mesh, CFG)
    coarse = prepared.object_trimesh(prep.screening)
    assert len(coarse.faces) > 1024
    full = prep.mesh
    assert len(measured) == 3  # level 1: one side; level 2: both
    pts_full = np.concatenate([full.vertices, np.asarray(prep.eval_points, np.float64)])
    d1 = np.abs(trimesh.proximity.closest_point(coarse, pts_full)[1]).max()
    pts_small = np.concatenate([coarse.vertices, trimesh.sample.sample_surface_even(coarse, prepared.EVAL_POINTS, seed=0)[0]])
    d2 = np.abs(trimesh.proximity.closest_point(full, pts_small)[1]).max()
    assert np.isclose(float(prep.screening_bound), max(d1, d2), rtol=1e-4, atol=1e-7)


def test_anytime_budget_runs_one_chunk_then_stops():
    hand = load_hand("shadow")
    sphere = _objects()[0]
    compile_plan(hand, prepare(sphere, CFG), CFG)  # compiled: the steps' first call is a lookup
    r = plan_grasps(sphere, hand, config=CFG, time_budget=1e-3)[0]
    # The budget is spent before the first chunk ends: exactly one chunk and its evaluations
    # (past the budget: the call may finish the chunk in flight and evaluate its best starts).
    assert r.metrics["steps"] == CFG.schedule.eval_every and r.metrics["evaluations"] == CFG.schedule.eval_top
    assert len(r.starts) == CFG.schedule.eval_top


def test_sdp_refinement_reports_certified_bounds_and_never_ranks_worse():
    hand = load_hand("shadow")
    box = _objects()[2]
    plain = plan_grasps(box, hand, config=CFG)[0]
    refined = plan_grasps(box, hand, config=dataclasses.replace(CFG, schedule=dataclasses.replace(CFG.schedule, refine_steps=5)))[0]
    assert rank_key(refined.metrics) <= rank_key(plain.metrics)
    for r in (plain, refined):
        m = r.metrics
        # The SDP certificate is a lower bound of the generalized Q1 (with fewer contacts, even
        # lower), and the closed-form bound an upper one.
        assert m["q1_generalized_lower"] <= m["q1_generalized"] + 1e-6 <= m["q1_generalized_upper"] + 2e-6
