"""Validity decided by the hand file's real collision geoms (jaxgrasp.planning.geom_check), with
MuJoCo as the independent reference.

The scene: the bundled Shadow Hand at mid-range joint angles, and a 6 cm cube placed (found once by a
seeded search over tilted cubes) so that a corner of the palm box pokes 2 mm into it between the
palm's surface samples: the sampled check sees 0.54 mm.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
import trimesh

from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.hand.model import load_hand
from jaxgrasp.planning.evaluation import evaluate, with_geom_metrics
from jaxgrasp.planning.prepared import prepare_object
from jaxgrasp.planning.settings import EvalConfig

T_WORLD_CUBE = np.array([[0.5345257224814638, -0.2592286989011217, -0.804414528506106, 0.06452360623192685],
                         [-0.2592286989011217, 0.8556321550307527, -0.4479889473452013, 0.024043690548017374],
                         [0.804414528506106, 0.4479889473452013, 0.39015787751221653, -0.013924419199435234],
                         [0.0, 0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def corner_scene():
    hand = load_hand("shadow")
    cube = trimesh.creation.box(extents=[0.06, 0.06, 0.06])
    cube.apply_transform(T_WORLD_CUBE)
    prep = prepare_object(cube)
    x = np.zeros(6 + hand.num_independent, np.float32)
    x[:3] = -np.asarray(prep.obj.center_of_mass)  # the palm at the hand file's own pose (centred frame)
    return hand, cube, prep, x


def _mujoco_depth(hand, cube: trimesh.Trimesh, q: np.ndarray) -> float:
    """Deepest hand-cube contact MuJoCo reports [m] (hand at its file pose, joint angles ``q``)."""
    spec = mujoco.MjSpec.from_file(hand.path)
    spec.add_mesh(name="cube", uservert=cube.vertices.ravel().tolist(), userface=cube.faces.ravel().tolist())
    body = spec.worldbody.add_body(name="cube")
    body.add_freejoint()  # MuJoCo does not collide two bodies welded to the world
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname="cube", contype=1, conaffinity=1)
    model = spec.compile()
    model.geom_margin[:] = 0.0
    data = mujoco.MjData(model)
    for name, angle in zip(hand.joint_names, q):
        data.joint(name).qpos = angle
    mujoco.mj_forward(model, data)
    cube_geom = model.ngeom - 1
    depths = [-c.dist for c in data.contact[:data.ncon] if cube_geom in (c.geom1, c.geom2)]
    return max(depths, default=0.0)


def test_a_box_corner_between_samples_makes_a_grasp_invalid(corner_scene):
    hand, cube, prep, x = corner_scene
    sampled = evaluate(hand, prep, x, EvalConfig(real_geoms=False), extras=False)
    assert sampled["penetration_mm"] < 1.0  # the samples miss the corner
    # Whatever the rest of the grasp, a 2 mm corner makes it invalid; MuJoCo measures the same depth.
    claimed = {**sampled, "valid": True}
    m = with_geom_metrics(hand, prep, x, claimed, EvalConfig())
    assert not m["valid"] and m["deepest_geom"] == "palm"
    q = np.asarray(pose_hand(hand, jnp.asarray(x)).joint_angles, np.float64)
    ref = 1e3 * _mujoco_depth(hand, cube, q)
    assert 1.8 < ref < 2.2
    assert abs(m["geom_penetration_mm"] - ref) < 0.1
    assert m["penetration_mm"] == m["geom_penetration_mm"] and m["sampled_penetration_mm"] == sampled["penetration_mm"]
    # The verdict follows the limit: with 2.5 mm allowed the same grasp passes.
    assert with_geom_metrics(hand, prep, x, {**claimed, "penetration_mm": 0.0}, dataclasses.replace(
        EvalConfig(), max_penetration=0.0025))["valid"]


def test_evaluate_reports_the_geoms_only_for_grasps_the_samples_accept(corner_scene):
    hand, _, prep, x = corner_scene
    m = evaluate(hand, prep, x, EvalConfig(), extras=False)
    assert not m["valid"] and "geom_penetration_mm" not in m  # no force closure: not checked
