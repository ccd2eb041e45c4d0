"""``jaxgrasp.learning.predict(checkpoint, depth_images_or_mesh)``: a trained network's grasp, from code.

Given depth views (in the dataset's camera rig, see :mod:`jaxgrasp.learning.data`) the network's
configuration is returned as it is, in the rig's object frame. Given a mesh (a path, a trimesh or
a loaded object), it is centred at its centre of mass, rendered with the run's cameras
(:func:`jaxgrasp.learning.data.render_sample`, the renderer the dataset used), the prediction is mapped to
the mesh file's frame (``T_input_palm``), optionally refined with a few planner steps and
evaluated exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax.numpy as jnp
import numpy as np
import trimesh

from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.hand.model import HandModel, load_hand
from jaxgrasp.learning import checkpoint as C
from jaxgrasp.learning import model as M
from jaxgrasp.learning.data import render_sample
from jaxgrasp.mesh.render import Camera
from jaxgrasp.planning.planner import (
    PlanConfig,
    Schedule,
    make_scene,
    optimize,
    prepare,
)
from jaxgrasp.planning.planner import evaluate as evaluate_grasp


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A predicted grasp.

    Attributes:
        config: ``(6 + I,)`` configuration ``(t, r, z)``: in the camera rig's object frame for depth
            input, in the mesh's centred frame (centre of mass at the origin) for a mesh.
        T_input_palm: ``(4, 4)`` palm pose: the rig's object frame (depth input) or the mesh
            file's frame (mesh input).
        joint_angles: ``{joint name: angle}`` over the hand's joints.
        metrics: exact metrics (``planner.evaluate``) when a mesh was given with ``evaluate``.
    """

    config: np.ndarray
    T_input_palm: np.ndarray
    joint_angles: dict
    metrics: dict | None = None


@functools.lru_cache(maxsize=4)
def _load(path: str):
    mcfg, params, run = C.load_model(path)
    return mcfg, params, run, load_hand(run["hand"])


def _cameras(run: dict):
    c = run["cameras"]
    return Camera(K=jnp.asarray(c["intrinsics"], jnp.float32), T_object_camera=jnp.asarray(c["T_object_camera"], jnp.float32),
                  width=int(c["width"]), height=int(c["height"]))


def _package(hand: HandModel, x: np.ndarray, com: np.ndarray, metrics=None) -> Prediction:
    posed = pose_hand(hand, jnp.asarray(x, hand.body_pos.dtype))
    T = np.asarray(posed.T_world_palm, np.float64).copy()
    T[:3, 3] += com
    names = hand.joint_names
    return Prediction(config=np.asarray(x, np.float64), T_input_palm=T,
                      joint_angles={k: float(v) for k, v in zip(names, np.asarray(posed.joint_angles))}, metrics=metrics)


def predict(checkpoint: str | os.PathLike, depth_images_or_mesh, *, units: str = "m", refine_steps: int = 0,
            evaluate: bool = False):
    """Predict a grasp with a trained network.

    Args:
        checkpoint: a run folder (its ``final/`` parameters) or a ``phase1/`` / ``final/`` folder.
        depth_images_or_mesh: depth views ``(V, H, W)`` (or a batch ``(B, V, H, W)``) in metres,
            0 = background, seen by the run's cameras; or a mesh (file path, ``trimesh.Trimesh``,
            or :func:`jaxgrasp.load_object`'s result) in any frame.
        units: unit of a mesh file / trimesh ("m", "cm", "mm").
        refine_steps: mesh input only: planner steps from the prediction (``planner.optimize``).
        evaluate: mesh input only: exact metrics of the returned grasp.

    Returns:
        A :class:`Prediction` (a list of them for a batch of depth views).
    """
    mcfg, params, run, hand = _load(os.path.abspath(os.fspath(checkpoint)))
    cams = run["cameras"]
    if isinstance(depth_images_or_mesh, (np.ndarray, jnp.ndarray)) and not isinstance(depth_images_or_mesh, trimesh.Trimesh):
        d = np.asarray(depth_images_or_mesh, np.float32)
        single = d.ndim == 3
        d = d[None] if single else d
        want = (cams["num_views"], cams["height"], cams["width"])
        if d.ndim != 4 or d.shape[1:] != tuple(want):
            raise ValueError(f"depth images must be (V, H, W) = {want} or (B, V, H, W), got {np.shape(depth_images_or_mesh)}")
        x = np.asarray(M.apply(mcfg, params, jnp.asarray(d)), np.float64)
        out = [_package(hand, xi, np.zeros(3)) for xi in x]
        return out[0] if single else out
    prep = prepare(depth_images_or_mesh, PlanConfig(), units=units, screen=evaluate)
    obj, tm = prep.obj, prep.mesh
    com = np.asarray(obj.center_of_mass, np.float64)
    centred = trimesh.Trimesh(np.asarray(tm.vertices) - com, tm.faces, process=False)
    depth = render_sample(centred, np.eye(3), _cameras(run))
    x = np.asarray(M.apply(mcfg, params, jnp.asarray(depth[None])), np.float64)[0]
    pcfg = PlanConfig()
    if refine_steps > 0:
        rcfg = dataclasses.replace(pcfg, schedule=Schedule(steps=refine_steps))
        scene = make_scene(prep, rcfg, dtype=hand.body_pos.dtype)
        x = np.asarray(optimize(hand, scene, jnp.asarray(x[None], hand.body_pos.dtype), rcfg)[0][0], np.float64)
    metrics = evaluate_grasp(hand, prep, x, pcfg.evaluation, extras=False) if evaluate else None
    return _package(hand, x, com, metrics)


