"""Batch planning over object sets, and the screened exact evaluation on large meshes."""

from __future__ import annotations

import jax
import numpy as np
import trimesh

from jaxgrasp.batch import grasp_diversity, plan_batch
from jaxgrasp.hand import load_hand
from jaxgrasp.planner import PlanConfig, as_object, evaluate, face_bucket, initial_configs, make_scene, optimize

CFG = PlanConfig(num_starts=4, steps=25, seed=3)


def _objects():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.035)
    box = trimesh.creation.box(extents=(0.05, 0.06, 0.08))
    tube = trimesh.creation.cylinder(radius=0.03, height=0.09, sections=24)
    # Open tube (caps removed): not watertight, so the batch holds both sign tests.
    keep = np.abs(tube.face_normals[:, 2]) < 0.5
    tube = trimesh.Trimesh(tube.vertices, tube.faces[keep], process=False)
    return [sphere, tube, box]


def test_plan_batch_matches_one_object_batches_in_input_order():
    hand = load_hand("shadow")
    meshes = _objects()
    assert [as_object(m)[0].watertight.item() for m in meshes] == [True, False, True]
    together = plan_batch(meshes, hand, num_grasps=2, config=CFG)
    assert len(together) == 3 and all(len(r) == 2 for r in together)
    for i, m in enumerate(meshes):
        # plan_batch draws each object's starts from split keys, so compare with the same key:
        # re-plan object i alone with the key it had in the batch.
        key = jax.random.split(jax.random.PRNGKey(CFG.seed), 3)[i]
        obj, _, tm = as_object(m)
        scene = make_scene(obj, tm, CFG, pad_faces=face_bucket(min(len(tm.faces), CFG.opt_faces)))
        x0 = initial_configs(hand, float(obj.size), CFG.num_starts, key, opening=CFG.opening, standoff=CFG.standoff)
        x, _ = optimize(hand, scene, x0, CFG)
        got = np.stack([r.config for r in together[i]])
        # Each returned grasp is one of the starts optimized alone (vmap = the same computation).
        dist = np.min(np.abs(got[:, None, :] - np.asarray(x)[None]).max(-1), axis=1)
        assert np.all(dist < 1e-4), dist
        assert together[i][0].metrics.keys() >= {"q1", "q1_generalized", "q1_upper", "valid"}
        d = grasp_diversity(together[i])
        assert d["rotation_deg"] > 0 and d["translation_mm"] > 0


def test_screened_evaluation_equals_full_evaluation_on_a_large_mesh():
    hand = load_hand("shadow")
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.04)  # 20,480 faces: screened
    obj, _, tm = as_object(mesh)
    cfg = CFG  # same settings and padded size as above: one compiled step
    x0 = initial_configs(hand, float(obj.size), cfg.num_starts, jax.random.PRNGKey(1), opening=0.1, standoff=0.015)
    x, _ = optimize(hand, make_scene(obj, tm, cfg, pad_faces=face_bucket(min(len(tm.faces), CFG.opt_faces))), x0, cfg)
    for xi in np.asarray(x):
        a = evaluate(hand, obj, xi, cfg, tm, extras=False)
        b = evaluate(hand, obj, xi, cfg, tm, extras=False, screen=False)
        for k in ("q1", "penetration_mm", "self_penetration_mm", "num_contacts", "valid"):
            assert np.isclose(a[k], b[k], rtol=1e-9, atol=1e-9), (k, a[k], b[k])
    assert tm.metadata["jaxgrasp_eval_mesh_1024"] is not None
