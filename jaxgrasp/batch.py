"""Batch planning over object sets: one compiled, vmapped and sharded optimization.

See :func:`plan_batch`; :func:`grasp_diversity` measures how different an object's grasps are.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrasp.hand import HandModel, load_hand
from jaxgrasp.planner import (
    GraspResult,
    PlanConfig,
    as_object,
    evaluate,
    face_bucket,
    make_adam,
    make_result,
    make_scene,
    rank_key,
    run_steps_batch,
    select_active_batch,
    squeeze_starts,
    start_configs,
    variable_scale,
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
    step is vmapped over objects and over starts, and the object axis is sharded across all local
    devices (``jax.sharding``; on a CPU-only machine that is one device). On several machines,
    call ``jax.distributed.initialize()`` first in every process and give each process its own
    slice of the object list (e.g. ``meshes[jax.process_index()::jax.process_count()]``): the
    objects are independent, so no cross-process communication is needed.

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
        :func:`jaxgrasp.planner.plan_grasps`, each start is evaluated, squeezed and keeps the
        better of the two (per object, after the batched steps).
    """
    cfg = config or PlanConfig()
    if cfg.num_starts < num_grasps:
        cfg = dataclasses.replace(cfg, num_starts=num_grasps)
    t0 = time.perf_counter()
    hand_model = hand if isinstance(hand, HandModel) else load_hand(hand)
    dtype = hand_model.body_pos.dtype
    loaded = [as_object(m, units=units) for m in meshes]
    if not loaded:
        return []
    pad = max(face_bucket(min(len(tm.faces), cfg.opt_faces)) for _, _, tm in loaded)
    scenes = [make_scene(obj, tm, cfg, dtype=dtype, pad_faces=pad) for obj, _, tm in loaded]
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed), len(loaded))
    x0 = [start_configs(hand_model, obj, cfg, k) for (obj, _, _), k in zip(loaded, keys)]
    # One optimization per watertightness group: inside a group the flag is one scalar, so the
    # distance's sign test is a real branch under vmap (see planner.scene_axes).
    x = [None] * len(scenes)
    for flag in (True, False):
        idx = [i for i, sc in enumerate(scenes) if bool(sc.obj.watertight) == flag]
        if idx:
            xg = _optimize_group(hand_model, [scenes[i] for i in idx], [x0[i] for i in idx], cfg, progress)
            for i, xi in zip(idx, xg):
                x[i] = xi
    elapsed = time.perf_counter() - t0
    out = []
    for (obj, report, tm), xo, scene in zip(loaded, x, scenes):
        xo = np.array(xo)  # a writable copy (the squeeze replaces rows)
        starts = [evaluate(hand_model, obj, xi, cfg, tm, extras=False) for xi in xo]
        squeeze_starts(hand_model, obj, tm, scene, xo, starts, cfg)  # as plan_grasps
        order = sorted(range(len(starts)), key=lambda i: rank_key(starts[i]))
        out.append([make_result(hand_model, obj, report, tm, xo[i], starts[i], starts, elapsed, cfg) for i in order[:num_grasps]])
    return out


def _optimize_group(hand: HandModel, scenes: list, x0: list, cfg: PlanConfig, progress) -> np.ndarray:
    """``cfg.steps`` Adam steps on objects of equal watertightness; returns ``(n, S, 6 + I)``."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    # Pad the object axis to a multiple of the device count (repeat the last object).
    n_dev = jax.local_device_count()
    n = len(scenes)
    extra = (-n) % n_dev
    scenes, x0 = scenes + scenes[-1:] * extra, x0 + x0[-1:] * extra
    stack = lambda xs: jax.tree.map(lambda *a: jnp.stack(a), *xs)  # noqa: E731
    mesh = Mesh(np.array(jax.local_devices()), ("obj",))
    shard = lambda tree: jax.device_put(tree, NamedSharding(mesh, PartitionSpec("obj")))  # noqa: E731
    scene_b = shard(stack(scenes))
    scene_b = dataclasses.replace(scene_b, obj=scene_b.obj.replace(watertight=scenes[0].obj.watertight))
    scale = variable_scale(hand, cfg)
    y = shard(jnp.stack(x0) / scale)
    state = jax.vmap(make_adam(cfg).init)(y)
    done = 0
    while done < cfg.steps:
        k = min(25, cfg.steps - done)
        si, oi = select_active_batch(hand, scene_b, y, cfg)
        y, state, total, terms = run_steps_batch(hand, scene_b, y, state, si, oi, cfg, k)
        done += k
        if progress is not None:
            progress(done, {"total": total, **terms})
    return np.asarray(y * scale)[:n]
