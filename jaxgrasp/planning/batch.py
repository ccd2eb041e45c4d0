"""Batch planning over object sets: one compiled, vmapped and sharded optimization.

See :func:`plan_batch`; :func:`grasp_diversity` measures how different an object's grasps are.
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxgrasp.hand.model import HandModel, load_hand
from jaxgrasp.planning import engine
from jaxgrasp.planning.engine import Archive
from jaxgrasp.planning.objective import stack_scenes
from jaxgrasp.planning.planner import (
    GraspResult,
    PlanConfig,
    archive_results,
    evaluate_starts,
    face_bucket,
    loss_hand,
    main_phase,
    make_scene,
    prepare,
    squeeze_archive,
    start_configs,
    with_starts,
)


def grasp_diversity(results: list[GraspResult]) -> dict:
    """Spread of a set of grasps of one object: mean pairwise palm rotation angle (deg), palm
    translation (mm) and joint-space distance (rad, Euclidean over all joints)."""
    if len(results) < 2:
        return {"rotation_deg": 0.0, "translation_mm": 0.0, "joints_rad": 0.0}
    rot, tra, jnt = [], [], []
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            Ti, Tj = results[i].T_input_palm, results[j].T_input_palm
            c = np.clip((np.trace(Ti[:3, :3].T @ Tj[:3, :3]) - 1.0) / 2.0, -1.0, 1.0)
            rot.append(np.degrees(np.arccos(c)))
            tra.append(1e3 * np.linalg.norm(Ti[:3, 3] - Tj[:3, 3]))
            qi, qj = (np.array(list(r.joint_angles.values())) for r in (results[i], results[j]))
            jnt.append(np.linalg.norm(qi - qj))
    return {"rotation_deg": float(np.mean(rot)), "translation_mm": float(np.mean(tra)), "joints_rad": float(np.mean(jnt))}


def plan_batch(meshes, hand: str | HandModel = "shadow", *, num_grasps: int = 1, config: PlanConfig | None = None,
               units: str = "m", progress: Callable[[int, dict], None] | None = None) -> list[list[GraspResult]]:
    """Plan grasps for a set of objects in one compiled, vmapped and sharded optimization.

    All objects are padded to one optimization-mesh size, stacked, and optimized together: the
    engine's step (:func:`jaxgrasp.planning.engine.step_batch`) is vmapped over objects, and the object
    axis is sharded across all local devices (``jax.sharding``; on a CPU-only machine that is one
    device). On several machines, call ``jax.distributed.initialize()`` first in every process
    and give each process its own slice of the object list (e.g.
    ``meshes[jax.process_index()::jax.process_count()]``): the objects are independent.

    Args:
        meshes: mesh paths, trimesh meshes or loaded objects.
        hand: a bundled hand name, a hand file, or a loaded :class:`HandModel`.
        num_grasps: grasps per object (from distinct starts, best first; see
            :func:`grasp_diversity`).
        config: planner settings; ``num_starts`` is raised to ``num_grasps`` if smaller.
        units: unit of mesh files / trimesh meshes.
        progress: called as ``progress(step, terms)`` after every chunk of steps.

    Returns:
        Per object, its ``num_grasps`` results (same order as ``meshes``); as in
        :func:`jaxgrasp.planning.api.plan_grasps`, each start is evaluated and the best squeezed,
        each keeping the better of the two (per object, after the batched steps).
    """
    cfg = with_starts(config or PlanConfig(), num_grasps)
    t0 = time.perf_counter()
    hand_model = hand if isinstance(hand, HandModel) else load_hand(hand)
    hand_model = loss_hand(hand_model, cfg)
    dtype = hand_model.body_pos.dtype
    loaded = [prepare(m, cfg, units=units) for m in meshes]
    if not loaded:
        return []
    pad = max(face_bucket(len(p.loop_mesh.faces)) for p in loaded)
    scenes = [make_scene(p, cfg, dtype=dtype, pad_faces=pad) for p in loaded]
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed), len(loaded))
    x0 = [start_configs(hand_model, p.obj, cfg, k) for p, k in zip(loaded, keys)]
    # One optimization per watertightness group (the flag is static: see objective.stack_scenes).
    x = [None] * len(scenes)
    for flag in (True, False):
        idx = [i for i, sc in enumerate(scenes) if bool(sc.obj.watertight) == flag]
        if idx:
            xg = _optimize_group(hand_model, [scenes[i] for i in idx], [x0[i] for i in idx], cfg, progress)
            for i, xi in zip(idx, xg):
                x[i] = xi
    out = []
    for prep, xo, scene in zip(loaded, x, scenes):
        archive = Archive(t0)
        evaluate_starts(hand_model, prep, np.asarray(xo), cfg, archive)
        squeeze_archive(hand_model, prep, scene, [k for k, _ in archive.ranked()], cfg, archive)
        out.append(archive_results(hand_model, prep, archive, num_grasps, cfg, t0))
    return out


def _optimize_group(hand: HandModel, scenes: list, x0: list, cfg: PlanConfig, progress) -> np.ndarray:
    """``schedule.steps`` steps on objects of equal watertightness; returns ``(n, S, 6 + I)``."""
    # Pad the object axis to a multiple of the device count (repeat the last object).
    n_dev = jax.local_device_count()
    n = len(scenes)
    extra = (-n) % n_dev
    scenes, x0 = scenes + scenes[-1:] * extra, x0 + x0[-1:] * extra
    mesh = Mesh(np.array(jax.local_devices()), ("obj",))
    shard = lambda tree: jax.device_put(tree, NamedSharding(mesh, PartitionSpec("obj")))  # noqa: E731
    scene_b = shard(stack_scenes(scenes))
    phase, params = main_phase(hand, cfg)
    cb = None if progress is None else (lambda k, info: progress(k, {"total": info.total, **info.terms}))
    x, _ = engine.run(hand, scene_b, shard(jnp.stack(x0)), params, phase, cfg.schedule.steps, progress=cb, batch=True)
    return np.asarray(x)[:n]
