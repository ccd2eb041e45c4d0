"""Validity decided by the hand file's real collision geoms (jaxgrasp.planning.geom_check), with
MuJoCo as the independent reference.

The scene: the bundled Shadow Hand at mid-range joint angles, and a 6 cm cube placed (found once by a
seeded search over tilted cubes) so that a corner of the palm box pokes 2 mm into it between the
palm's surface samples: the sampled check sees 0.54 mm.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
import trimesh

from jaxgrasp.hand.geom_cores import AXIS_POINTS, geom_core_points, vertex_rows
from jaxgrasp.hand.geoms import BOX, CAPSULE, CYLINDER, SPHERE, geoms_in_object
from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.hand.model import load_hand
from jaxgrasp.mesh.geometry import signed_distance
from jaxgrasp.mesh.objects import make_object
from jaxgrasp.planning.evaluation import evaluate, with_geom_metrics
from jaxgrasp.planning.geom_check import with_geoms
from jaxgrasp.planning.objective import Phase, active_sets, grasp_loss, loss_params
from jaxgrasp.planning.planner import PlanConfig, make_scene, prepare
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


def test_the_loss_pushes_the_corner_the_samples_miss(corner_scene):
    """With the geoms attached, the planner's collision term measures the palm corner itself
    (MuJoCo's depth), and a step down its gradient lifts the corner out."""
    hand, cube, _, x = corner_scene
    cfg = PlanConfig()
    geo = with_geoms(hand)
    scene = make_scene(prepare(cube, cfg), cfg, dtype=hand.body_pos.dtype)
    params = loss_params(cfg.evaluation, cfg.loss, cfg.squeeze, dtype=hand.body_pos.dtype)
    phase = Phase(terms=("coll",))

    def corner_depth(xi):  # deepest core point [m], in the frame of scene.obj
        core, radius = geom_core_points(geo.geoms, pose_hand(geo, xi).T_world_body)
        d, _ = signed_distance(scene.obj, core + scene.com, exact=False)
        return float(jnp.max(radius - d))

    q = np.asarray(pose_hand(hand, jnp.asarray(x)).joint_angles, np.float64)
    ref = 1e3 * _mujoco_depth(hand, cube, q)
    assert abs(1e3 * corner_depth(jnp.asarray(x)) - ref) < 0.05
    si, oi = active_sets(geo, scene, jnp.asarray(x), 256, 128)

    def coll(h, xi):
        return grasp_loss(h, scene, xi, si, oi, params, phase)[0]

    assert float(coll(geo, jnp.asarray(x))) > 1.5 * float(coll(hand, jnp.asarray(x)))  # the hulls see less
    g = jax.grad(lambda xi: coll(geo, xi))(jnp.asarray(x))
    assert bool(jnp.all(jnp.isfinite(g)))
    x1 = jnp.asarray(x) - 1e-3 * g / jnp.linalg.norm(g)
    assert corner_depth(x1) < corner_depth(jnp.asarray(x)) - 2e-4


@pytest.mark.parametrize("hand_name", ["shadow", "shadow_menagerie"])
def test_core_points_reach_as_deep_as_the_geoms(hand_name):
    """Per primitive geom, the core points' depth ``radius - sd`` into a half-space (a 2 m box's top)
    equals the geom's exact depth (jaxgrasp.hand.geoms.geoms_in_object; sd is affine there, so the
    capsule's axis ends and a box's corners are exact), a cylinder within r (1 - cos 22.5 deg): its
    16 kept vertices are 8 per rim."""
    hand = load_hand(hand_name, dtype=jnp.float64)
    geoms = with_geoms(hand).geoms
    rng = np.random.default_rng(3)
    owner = np.concatenate([geoms.of(SPHERE), np.repeat(geoms.of(CAPSULE), AXIS_POINTS), vertex_rows(geoms)[1]])
    box = trimesh.creation.box(extents=[2.0, 2.0, 2.0])
    x = np.zeros(hand.num_dof)
    x[3:6] = rng.normal(size=3)  # a random palm rotation: the geoms at random angles to the face
    x[6:] = rng.normal(size=hand.num_independent)  # joint logits: angles spread over the ranges
    T = pose_hand(hand, jnp.asarray(x)).T_world_body
    core, radius = geom_core_points(geoms, T)
    top = float(jnp.min(core[:, 2] - radius)) + 0.004  # the face 4 mm above the lowest geom point
    obj = make_object(box.vertices + [0.0, 0.0, top - 1.0], box.faces, check_units=False)[0]
    exact, _ = geoms_in_object(geoms, T, obj)
    d, _ = signed_distance(obj, core, exact=False)
    depth = np.maximum(np.asarray(radius - d), 0.0)
    for g, kind in enumerate(geoms.types):
        if kind not in (SPHERE, CAPSULE, BOX, CYLINDER):
            continue
        mine = depth[owner == g].max()
        tol = 1e-7 if kind != CYLINDER else float(geoms.size[g, 0]) * (1 - np.cos(np.pi / 8)) + 1e-7
        assert exact[g] - tol <= mine <= exact[g] + 1e-7, (geoms.names[g], mine, float(exact[g]))
    assert float(np.max(exact)) > 0.003  # the face cut into the hand
