"""The objects of a dataset build and their ground truth: the object set (the bundled procedural
set or a folder of meshes), each mesh in its centred frame, the train/test split, and the valid
planner grasps of each object (:mod:`jaxgrasp.learning.data` describes the dataset they go into).
"""

from __future__ import annotations

import os

import jax
import numpy as np
import trimesh

from jaxgrasp.learning.config import MESH_SUFFIXES, DatasetConfig
from jaxgrasp.mesh.objects import load_object, make_object
from jaxgrasp.mesh.procedural import procedural_set
from jaxgrasp.planning.engine import Archive
from jaxgrasp.planning.planner import (
    PlanConfig,
    Schedule,
    Shapes,
    evaluate_starts,
    make_scene,
    object_trimesh,
    optimize,
    prepare,
    start_configs,
)


def object_sources(config: DatasetConfig) -> list[tuple[str, object]]:
    """``(name, trimesh or path)`` of the object set, in a fixed order."""
    if config.objects is None:
        return list(procedural_set(config.num_objects, seed=config.seed))
    if not os.path.isdir(config.objects):
        raise FileNotFoundError(f"--objects {config.objects!r} is not a folder")
    files = sorted(f for f in os.listdir(config.objects) if f.lower().endswith(MESH_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"no mesh files ({', '.join(MESH_SUFFIXES)}) in {config.objects!r}")
    if config.num_objects > 0:
        files = files[: config.num_objects]
    out, seen = [], set()
    for f in files:
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.splitext(f)[0])
        while name in seen:
            name += "_"
        seen.add(name)
        out.append((name, os.path.join(config.objects, f)))
    return out


def centred_mesh(source, units: str = "m") -> tuple[trimesh.Trimesh, float]:
    """The checked and repaired mesh in its centred frame (centre of mass at the origin), and
    its size (:attr:`jaxgrasp.mesh.objects.Object.size`)."""
    if isinstance(source, trimesh.Trimesh):
        obj, _ = make_object(source.vertices, source.faces, units=units, dtype=np.float64)
    else:
        obj, _ = load_object(source, units=units, dtype=np.float64)
    tm = object_trimesh(obj)
    com = np.asarray(obj.center_of_mass, np.float64)
    return trimesh.Trimesh(tm.vertices - com, tm.faces, process=False), float(obj.size)


def plan_config(config: DatasetConfig) -> PlanConfig:
    """The planner settings of a build."""
    return PlanConfig(shapes=Shapes(num_starts=max(config.plan_starts, config.grasps)),
                      schedule=Schedule(steps=config.plan_steps), seed=config.seed)


def ground_truth(mesh: trimesh.Trimesh, hand, config: DatasetConfig) -> dict[str, np.ndarray]:
    """Valid planner grasps of one centred mesh, best first, at most ``config.grasps``.

    The fixed-step planner's steps, exact evaluation and ranking (:func:`jaxgrasp.planning.planner.optimize`,
    :func:`~jaxgrasp.planning.planner.evaluate_starts` into an :class:`~jaxgrasp.planning.engine.Archive`), without
    the squeeze and without packaging every start as a :class:`~jaxgrasp.GraspResult` (whose
    reporting-only metrics cost about 20% of the planning time here).

    Returns:
        ``{"configs": (k, 6 + I) centred frame, "q1": (k,), "penetration_mm": (k,),
        "num_starts": ()}`` with ``k <= config.grasps`` (possibly 0).
    """
    pc = plan_config(config)
    prep = prepare(mesh, pc)
    scene = make_scene(prep, pc, dtype=hand.body_pos.dtype)
    x0 = start_configs(hand, prep.obj, pc, jax.random.PRNGKey(pc.seed))
    x, _ = optimize(hand, scene, x0, pc)
    archive = Archive()
    evaluate_starts(hand, prep, np.asarray(x, np.float64), pc, archive)
    best = [e for _, e in archive.ranked() if e.metrics["valid"]][: config.grasps]
    # The planner's centred frame is about the centre of mass it computes for this (already
    # centred) mesh: a float rounding away from the origin, so it is the saved mesh's frame.
    return {
        "configs": np.asarray([e.config for e in best], np.float64).reshape(len(best), x.shape[1]),
        "q1": np.asarray([e.metrics["q1"] for e in best], np.float64),
        "penetration_mm": np.asarray([e.metrics["penetration_mm"] for e in best], np.float64),
        "num_starts": np.asarray(pc.shapes.num_starts),
    }


def split_of(names: list[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Deterministic train/test assignment: a seeded permutation, the first
    ``round(test_fraction * n)`` (at least one when ``test_fraction > 0`` and n >= 2) to test."""
    n = len(names)
    n_test = round(test_fraction * n)
    if test_fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    test = {names[i] for i in perm[:n_test]}
    return {nm: ("test" if nm in test else "train") for nm in names}
