"""The hand's real collision geoms against an object mesh (jaxgrasp.hand.geoms), with MuJoCo as the
independent reference.

Scenes: the hand file (posed by our forward kinematics and by MuJoCo's own) and a convex object as a
mesh geom (a box, an icosphere, a cylinder) placed to penetrate one hand geom by 0.5-3 mm, plus
whatever else it touches. The reference depth of a hand geom is the larger of MuJoCo's signed
distance to the object (``mj_geomDistance``, the penetration depth of the convex pair) and the
deepest ``mj_forward`` contact: they agree within microns, except for capsules, whose mesh contacts
MuJoCo places along the axis, shallower than its own penetration depth.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
import trimesh

from jaxgrasp.core.lie import matrix_to_quat_np
from jaxgrasp.hand.collision import object_in_hand
from jaxgrasp.hand.geoms import (
    BOX,
    CAPSULE,
    SPHERE,
    geom_depth,
    geom_penetration,
    geom_poses,
    geoms_in_object,
    load_geoms,
    object_in_geoms,
)
from jaxgrasp.hand.kinematics import forward_kinematics
from jaxgrasp.hand.mjcf import HandLoadError, compile_model, read_tree
from jaxgrasp.hand.model import load_hand
from jaxgrasp.mesh.geometry import signed_distance
from jaxgrasp.mesh.objects import make_object

MENAGERIE = Path(__file__).resolve().parents[2] / "shared" / "hands" / "shadow_hand" / "right_hand.xml"
needs_menagerie = pytest.mark.skipif(not MENAGERIE.is_file(), reason=f"{MENAGERIE} not present (third-party hand)")
TOL = 1e-4  # 0.1 mm
penetration = jax.jit(geom_penetration)
SHALLOW = 4e-3  # compared within TOL below this MuJoCo depth; deeper: both must call it penetrating

# A test hand with every geom type MuJoCo collides analytically, and a mesh.
ALL_TYPES_XML = """
<mujoco><compiler angle="radian" autolimits="true"/>
<asset><mesh name="gem" vertex="0.012 0 0  -0.012 0 0  0 0.009 0  0 -0.009 0  0 0 0.016  0 0 -0.006  0.006 0.006 0.01"/></asset>
<worldbody><body name="palm"><geom type="box" size="0.03 0.01 0.03"/>
 <geom type="ellipsoid" size="0.012 0.008 0.015" pos="-0.02 0.015 0"/>
 <body name="f1" pos="0.02 0 0.03"><joint name="j1" axis="1 0 0" range="-0.5 1.2"/>
  <geom type="capsule" fromto="0 0 0 0 0 0.04" size="0.008"/><geom type="sphere" size="0.011" pos="0 0 0.05"/>
  <body name="f2" pos="0 0 0.06"><joint name="j2" axis="1 0 0" range="0 1.2"/>
   <geom type="cylinder" size="0.009 0.012" pos="0 0 0.012"/><geom type="mesh" mesh="gem" pos="0 0 0.03"/></body></body>
 <body name="f3" pos="-0.02 0 0.03"><joint name="j3" axis="1 0 0" range="-0.5 1.2"/>
  <geom type="box" size="0.008 0.006 0.02" pos="0 0 0.02" euler="0.3 0.2 0.1"/></body>
</body></worldbody></mujoco>
"""


@functools.cache
def _hand(name: str):
    hand = load_hand(name)
    return hand, load_geoms(hand), read_tree(compile_model(hand.path)).T_world_root


@pytest.fixture(scope="module")
def all_types(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("geoms") / "all_types.xml"
    path.write_text(ALL_TYPES_XML)
    return str(path)


OBJECTS = {"box": lambda: trimesh.creation.box(extents=[0.05, 0.04, 0.03]),
           "icosphere": lambda: trimesh.creation.icosphere(subdivisions=2, radius=0.025),
           "cylinder": lambda: trimesh.creation.cylinder(radius=0.02, height=0.05, sections=24)}


def _scene(path: str, mesh: trimesh.Trimesh) -> mujoco.MjModel:
    """The hand file plus the object as a free mesh body, margins off (contacts only when penetrating)."""
    spec = mujoco.MjSpec.from_file(path)
    spec.add_mesh(name="jg_object", uservert=mesh.vertices.ravel().tolist(), userface=mesh.faces.ravel().tolist())
    body = spec.worldbody.add_body(name="jg_object")
    body.add_freejoint()
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname="jg_object", contype=1, conaffinity=1)
    model = spec.compile()
    model.geom_margin[:] = 0.0
    model.geom_gap[:] = 0.0
    return model


def _hand_geom_ids(model, hand, geoms) -> list[int]:
    ids = [g for g in range(model.ngeom - 1) if (model.geom_contype[g] or model.geom_conaffinity[g])
           and (mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, model.geom_bodyid[g]) or "") in hand.body_names]
    assert len(ids) == len(geoms.names)
    return ids


def _compare(name: str, objects, num_configs: int, seed: int) -> dict:
    """Ours against MuJoCo in random penetrating scenes; returns the largest errors (mm) per geom type."""
    hand, geoms, T_world_root = _hand(name)
    tree = read_tree(compile_model(hand.path))
    rng = np.random.default_rng(seed)
    worst, checked = {}, 0
    for oname in objects:
        mesh = OBJECTS[oname]()
        model = _scene(hand.path, mesh)
        data, obj_geom = mujoco.MjData(model), model.ngeom - 1
        ids = _hand_geom_ids(model, hand, geoms)
        obj, _ = make_object(mesh.vertices, mesh.faces, pad_to=512, dtype=np.float64)
        qadr = model.jnt_qposadr[list(tree.joint_ids)]
        oadr = model.jnt_qposadr[model.body_jntadr[model.nbody - 1]]
        for _ in range(num_configs):
            q = rng.uniform(np.asarray(hand.joint_lower), np.asarray(hand.joint_upper))
            target, depth = ids[rng.integers(len(ids))], rng.uniform(0.5e-3, 3e-3)
            u, R_obj = rng.normal(size=3), trimesh.transformations.random_rotation_matrix(rng.random(3))[:3, :3]
            data.qpos[:] = model.qpos0
            data.qpos[qadr] = q
            mujoco.mj_kinematics(model, data)
            centre, u = data.geom_xpos[target].copy(), u / np.linalg.norm(u)

            def place(dist):  # the object's centre at `dist` from the target geom's, along u
                data.qpos[oadr:oadr + 3] = centre + dist * u
                data.qpos[oadr + 3:oadr + 7] = matrix_to_quat_np(R_obj)
                mujoco.mj_kinematics(model, data)
                return mujoco.mj_geomDistance(model, data, target, obj_geom, 1.0, None)

            lo, hi = 0.0, 0.2
            for _ in range(40):  # bisection: MuJoCo's signed distance of the target = -depth
                lo, hi = ((lo + hi) / 2, hi) if place((lo + hi) / 2) < -depth else (lo, (lo + hi) / 2)
            place(hi)
            mujoco.mj_forward(model, data)
            ref = np.array([max(0.0, -mujoco.mj_geomDistance(model, data, g, obj_geom, 1.0, None)) for g in ids])
            for c in data.contact[:data.ncon]:  # and the deepest contact (a few microns apart, capsules aside)
                if obj_geom in (c.geom1, c.geom2) and (g := c.geom1 + c.geom2 - obj_geom) in ids:
                    ref[ids.index(g)] = max(ref[ids.index(g)], -c.dist)
            T_obj = np.eye(4)
            T_obj[:3, :3], T_obj[:3, 3] = data.xmat[-1].reshape(3, 3), data.xpos[-1]
            T = np.linalg.inv(T_obj) @ T_world_root @ np.asarray(forward_kinematics(hand, jnp.asarray(q)))
            ours = np.asarray(penetration(geoms, jnp.asarray(T), obj).per_geom)
            for k in np.nonzero((ref > 0) | (ours > 0))[0]:
                checked += 1
                where = f"{name} {oname} q={np.round(q, 3).tolist()} {geoms.names[k]}: ours {1e3 * ours[k]:.4f} mm, MuJoCo {1e3 * ref[k]:.4f} mm"
                if ref[k] < SHALLOW:
                    assert abs(ours[k] - ref[k]) <= TOL, where
                    worst[geoms.types[k]] = max(worst.get(geoms.types[k], 0.0), 1e3 * abs(ours[k] - ref[k]))
                else:
                    assert ours[k] > 1e-3, where
    assert checked >= len(objects) * num_configs  # every scene had at least its target geom
    return worst


@pytest.mark.parametrize("name", ["parallel_jaw", "threefinger", "shadow"])
def test_matches_mujoco_bundled(name):
    _compare(name, OBJECTS, 3, seed=7)


@needs_menagerie
def test_matches_mujoco_menagerie_shadow():
    _compare(str(MENAGERIE), OBJECTS, 2, seed=7)


def test_matches_mujoco_every_geom_type(all_types):
    _compare(all_types, OBJECTS, 3, seed=3)


def test_geom_frames_match_mujoco(all_types):
    for name in ("shadow", all_types):
        hand, geoms, T_world_root = _hand(name)
        model = compile_model(hand.path)
        data, tree = mujoco.MjData(model), read_tree(model)
        q = np.random.default_rng(0).uniform(np.asarray(hand.joint_lower), np.asarray(hand.joint_upper))
        data.qpos[model.jnt_qposadr[list(tree.joint_ids)]] = q
        mujoco.mj_kinematics(model, data)
        R, t = geom_poses(geoms, jnp.asarray(T_world_root @ np.asarray(forward_kinematics(hand, jnp.asarray(q)))))
        ids = [g for g in range(model.ngeom) if model.geom_contype[g] or model.geom_conaffinity[g]]
        np.testing.assert_allclose(np.asarray(t), data.geom_xpos[ids], atol=1e-6)
        np.testing.assert_allclose(np.asarray(R), data.geom_xmat[ids].reshape(-1, 3, 3), atol=1e-6)
        assert geoms.types == tuple(int(x) for x in model.geom_type[ids])


def test_box_corner_between_samples_is_caught():
    """A flat object face 2 mm past a box corner: the hand's surface samples and the link hulls (the
    older measure) see under 1 mm, the geoms 2.0 mm, as MuJoCo does; the grasp is invalid."""
    hand, geoms, _ = _hand("parallel_jaw")
    k = geoms.names.index("finger1/box1")  # local +y: away from the other finger
    T = forward_kinematics(hand, jnp.asarray(0.5 * (hand.joint_lower + hand.joint_upper), jnp.float64))
    R, t = (np.asarray(x[k]) for x in geom_poses(geoms, T))
    samples = np.einsum("nij,nj->ni", np.asarray(T)[np.asarray(hand.sample_body), :3, :3], np.asarray(hand.sample_pos)) \
        + np.asarray(T)[np.asarray(hand.sample_body), :3, 3]
    corners = [np.array([i, 1.0, 1.0]) for i in (-1, 1)]  # the fingertip's outer corners
    gap = [np.linalg.norm(samples - (t + R @ (c * np.asarray(geoms.size[k]))), axis=1).min() for c in corners]
    sign = corners[int(np.argmax(gap))]  # the one farthest from any sample
    corner, n = t + R @ (sign * np.asarray(geoms.size[k])), R @ (sign / np.sqrt(3.0))  # outward diagonal
    cube = trimesh.creation.box(extents=[0.06] * 3)
    R_obj = trimesh.geometry.align_vectors([0, 0, 1], n)[:3, :3]  # the cube's -z face faces the corner
    cube.apply_transform(np.r_[np.c_[R_obj, corner + (0.03 - 0.002) * n], [[0, 0, 0, 1]]])
    obj, _ = make_object(cube.vertices, cube.faces, pad_to=512, dtype=np.float64)
    res = penetration(geoms, T, obj)
    assert abs(float(res.per_geom[k]) - 2e-3) <= TOL and float(res.depth) > 1e-3  # invalid: over 1 mm
    np.testing.assert_allclose(np.asarray(res.hand_witness[k]), corner, atol=1e-6)
    old_hand = -float(np.min(np.asarray(signed_distance(obj, jnp.asarray(samples))[0])))
    surface = jnp.asarray(trimesh.sample.sample_surface_even(cube, 2048, seed=0)[0])
    old_obj = float(jnp.max(object_in_hand(hand, T, surface)))
    assert max(old_hand, old_obj) < 1e-3  # the older measure calls this grasp valid
    model = _scene(hand.path, trimesh.creation.box(extents=[0.06] * 3))  # MuJoCo: also 2.0 mm
    data = mujoco.MjData(model)
    tree = read_tree(model)
    data.qpos[model.jnt_qposadr[list(tree.joint_ids)]] = np.asarray(0.5 * (hand.joint_lower + hand.joint_upper))
    oadr = model.jnt_qposadr[model.body_jntadr[model.nbody - 1]]
    data.qpos[oadr:oadr + 7] = [*(tree.T_world_root[:3, :3] @ (corner + 0.028 * n) + tree.T_world_root[:3, 3]),
                               *matrix_to_quat_np(tree.T_world_root[:3, :3] @ R_obj)]
    mujoco.mj_forward(model, data)
    ids = _hand_geom_ids(model, hand, geoms)
    assert abs(-mujoco.mj_geomDistance(model, data, ids[k], model.ngeom - 1, 1.0, None) - 2e-3) <= 1e-6


def test_directions_and_separation():
    """object_in_geoms / geoms_in_object are the combiner's two point measures; far apart: all 0."""
    hand, geoms, _ = _hand("shadow")
    T = forward_kinematics(hand, jnp.asarray(0.5 * (hand.joint_lower + hand.joint_upper), jnp.float64))
    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.03)
    centre = np.asarray(geom_poses(geoms, T)[1][geoms.types.index(CAPSULE)])
    for offset, pen in ((np.array([0.0, 0.0, 0.0]), True), (np.array([0.0, 0.0, 1.0]), False)):
        obj, _ = make_object(ball.vertices + centre + offset, ball.faces, pad_to=512, dtype=np.float64)
        res = penetration(geoms, T, obj)
        np.testing.assert_allclose(jax.jit(object_in_geoms)(geoms, T, obj)[0], res.object_in_hand, atol=1e-9)
        np.testing.assert_allclose(jax.jit(geoms_in_object)(geoms, T, obj)[0], res.hand_in_object, atol=1e-9)
        assert (float(res.depth) > 0.01) == pen and (pen or float(jnp.max(jnp.abs(res.per_geom))) == 0.0)


def test_gradients_finite_at_degenerate_points():
    """Points at a sphere's centre, on a box edge and on a capsule's axis; and the combiner."""
    hand, geoms, _ = _hand("shadow")
    T = forward_kinematics(hand, jnp.asarray(0.5 * (hand.joint_lower + hand.joint_upper), jnp.float64))
    R, t = geom_poses(geoms, T)
    s, b, c = geoms.types.index(SPHERE), geoms.types.index(BOX), geoms.types.index(CAPSULE)
    size = np.asarray(geoms.size, np.float64)
    pts = jnp.stack([t[s], t[b] + R[b] @ jnp.asarray([size[b, 0], size[b, 1], 0.0]), t[c] + 0.3 * size[c, 1] * R[c][:, 2]])
    depth = jax.jit(geom_depth)(geoms, T, pts)
    np.testing.assert_allclose(np.asarray(depth[[0, 2], [s, c]]), size[[s, c], 0], rtol=1e-6)
    assert float(depth[1, b]) == pytest.approx(0.0, abs=1e-9)
    grad = jax.jit(jax.grad(lambda p: jnp.sum(geom_depth(geoms, T, p) ** 2) + jnp.sum(geom_depth(geoms, T, p))))(pts)
    assert np.all(np.isfinite(np.asarray(grad)))
    cube = trimesh.creation.box(extents=[0.04] * 3)  # a corner on the capsule's axis
    obj, _ = make_object(cube.vertices + np.asarray(t[c]) + 0.02, cube.faces, pad_to=512, dtype=np.float64)
    grad = jax.jit(jax.grad(lambda T_: geom_penetration(geoms, T_, obj).depth))(T)
    assert np.all(np.isfinite(np.asarray(grad))) and float(jnp.abs(grad).max()) > 0


def test_unsupported_geom_raises(tmp_path):
    path = tmp_path / "plane_hand.xml"
    path.write_text('<mujoco><worldbody><body name="palm"><geom type="box" size=".02 .02 .02"/>'
                    '<body name="f" pos="0 0 .03"><joint name="j" axis="1 0 0" range="0 1"/>'
                    '<geom type="box" size=".01 .01 .02"/><geom type="plane" size=".05 .05 .01"/></body></body></worldbody></mujoco>')
    with pytest.raises(HandLoadError, match="plane"):
        load_geoms(load_hand(str(path), cache=False))
