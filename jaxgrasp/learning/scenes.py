"""Planner scenes of a dataset's objects, stacked into one pytree, for the training loss and the
evaluation: every object's scene is built once (``planner.make_scene``), padded to one face count
and stacked, so a jitted step indexes it by ``object_index``."""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp

from jaxgrasp.learning.data import read_mesh
from jaxgrasp.planning.objective import stack_scenes
from jaxgrasp.planning.planner import (
    PlanConfig,
    PreparedObject,
    face_bucket,
    make_scene,
    prepare,
)


@dataclasses.dataclass(frozen=True)
class Scenes:
    """Planner scenes of every object of a dataset, stacked (leading axis = object index)."""

    scenes: object  # planner.Scene with a leading object axis (watertight: a scalar when shared)
    sizes: jnp.ndarray  # (num_objects,) object sizes [m]


jax.tree_util.register_dataclass(Scenes, data_fields=["scenes", "sizes"], meta_fields=[])


def load_objects(root: str, manifest: dict, plan: PlanConfig, dtype=jnp.float32) -> tuple[Scenes, list[PreparedObject]]:
    """Stacked optimization scenes and the prepared full-resolution object of every object."""
    full = [prepare(read_mesh(os.path.join(root, o["mesh"])), plan) for o in manifest["objects"]]
    pad = max(face_bucket(len(p.loop_mesh.faces)) for p in full)
    scenes = [make_scene(p, plan, dtype=dtype, pad_faces=pad) for p in full]
    stacked = stack_scenes(scenes)
    sizes = jnp.asarray([float(p.obj.size) for p in full], dtype)
    return Scenes(stacked, sizes), full
