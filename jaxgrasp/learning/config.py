"""Settings of the learning pipeline: dataset builds (:class:`DatasetConfig`) and training runs
(:class:`TrainConfig`, :class:`ChamferWeights`).

They sit below every other learning module: :mod:`jaxgrasp.learning.checkpoint` reads a run's
settings back from ``run.json``, :mod:`jaxgrasp.learning.data` builds with a
:class:`DatasetConfig`, :mod:`jaxgrasp.learning.train` trains with a :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses

from jaxgrasp.planning import losses
from jaxgrasp.planning.settings import LossConfig, PlanConfig

MESH_SUFFIXES = (".obj", ".stl", ".ply", ".off", ".glb")
DEFAULT_DATA = "data/bundled"
DEFAULT_OUT = "out/train"


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """Settings of a dataset build (CLI flags of ``python -m jaxgrasp.dataset build``).

    Attributes:
        objects: a folder of meshes (files with the suffixes in :data:`MESH_SUFFIXES`, sorted by
            name), or None for the bundled procedural set.
        num_objects: objects of the procedural set (a folder: use at most this many; 0 = all).
        units: unit of the mesh files ("m", "cm", "mm").
        hand: bundled hand name or hand file.
        grasps: G, ground-truth grasps kept per object (valid ones only; padded to G).
        plan_starts: planner starts per object (at least ``grasps``).
        plan_steps: planner Adam steps.
        views: V, cameras.
        size: image width = height (pixels).
        fov: camera field of view (degrees).
        camera_distance: camera distance from the centre of mass (m); None: just enough for the
            largest object to fit every view (1.15 x its size / sin(fov / 2)).
        num_rotations: augmentation rotations used (the first ones of
            :func:`jaxgrasp.learning.data.augmentation_rotations`, 1 to 8).
        test_fraction: fraction of the objects in the test split.
        seed: fixes the procedural set, the split and the planner.
        shard_size: samples per shard file.
    """

    objects: str | None = None
    num_objects: int = 32
    units: str = "m"
    hand: str = "shadow"
    grasps: int = 16
    plan_starts: int = 16
    plan_steps: int = 200
    views: int = 5
    size: int = 128
    fov: float = 40.0
    camera_distance: float | None = None
    num_rotations: int = 8
    test_fraction: float = 0.2
    seed: int = 0
    shard_size: int = 64

    def __post_init__(self):
        if not 1 <= self.num_rotations <= 8:
            raise ValueError(f"num_rotations must be 1..8, got {self.num_rotations}")
        if self.grasps < 1 or self.views < 1 or self.size < 1 or self.shard_size < 1:
            raise ValueError("grasps, views, size and shard_size must be positive")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")


@dataclasses.dataclass(frozen=True)
class ChamferWeights:
    """Weights of the configuration-space distance of :func:`jaxgrasp.learning.train.config_distance`."""

    translation: float = 1.0  # per (object size)^2
    rotation: float = 1.0  # per rad^2 of geodesic angle
    joints: float = 1.0  # per rad^2, mean over the independent joints


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training settings (CLI flags of ``python -m jaxgrasp.train``).

    Attributes:
        data: dataset folder (:mod:`jaxgrasp.learning.data` format).
        out: run folder (checkpoints, log, results).
        arch: backbone (:data:`jaxgrasp.learning.model.ARCHS`).
        epochs1, epochs2: epochs of phase 1 (Chamfer only) and phase 2 (+ differentiable loss).
        batch_size: samples per step (the last incomplete batch of an epoch is dropped, so
            every step has one shape).
        lr, lr2: Adam learning rates of phase 1 and 2 (``lr2`` None: ``lr``).
        decay_rate, decay_epochs: staircase decay of the learning rate.
        seed: parameters' initialisation and the epochs' sample order.
        weights: loss weights (paper Table I).
        chamfer: weights of the configuration distance.
        plan: planner settings of the differentiable loss (friction, contact weights, the
            collision scale, optimization-mesh size, active-set sizes) and of the evaluation.
        val_samples: test samples evaluated exactly after every epoch (evenly spread, fixed).
        keep: epoch checkpoints kept.
    """

    data: str = DEFAULT_DATA
    out: str = DEFAULT_OUT
    arch: str = "tiny"
    epochs1: int = 40
    epochs2: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    lr2: float | None = 1e-4
    decay_rate: float = 0.9
    decay_epochs: int = 20
    seed: int = 0
    weights: losses.LossWeights = losses.LossWeights(guide=1.0)
    chamfer: ChamferWeights = ChamferWeights()
    plan: PlanConfig = PlanConfig(loss=LossConfig(penetration_scale=0.05))
    val_samples: int = 6
    keep: int = 2
