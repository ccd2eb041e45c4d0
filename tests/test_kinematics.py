"""Forward kinematics against MuJoCo, gradients against finite differences, batch shapes."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from handcases import COUPLED_XML, HAND_CASES, case_id, mujoco_poses
from scipy.spatial.transform import Rotation

from jaxgrasp.core.lie import so3_exp
from jaxgrasp.hand.kinematics import (
    config_to_joint_angles,
    couple,
    default_config,
    forward_kinematics,
    independent_angles,
    pose_hand,
)
from jaxgrasp.hand.mjcf import compile_model, read_tree
from jaxgrasp.hand.model import load_hand


@functools.lru_cache(maxsize=None)
def hand64(case):
    return load_hand(case, dtype=jnp.float64)


@pytest.mark.parametrize("case", HAND_CASES, ids=case_id)
def test_fk_matches_mujoco(case):
    """100 random configurations, body by body, within 1e-6 m (and 1e-6 in rotation)."""
    hand = hand64(case)
    rng = np.random.default_rng(0)
    q = rng.uniform(np.asarray(hand.joint_lower), np.asarray(hand.joint_upper), size=(100, hand.num_joints))
    ours = np.asarray(jax.jit(forward_kinematics)(hand, jnp.asarray(q)))
    ref = mujoco_poses(case, q)
    assert ours.shape == (100, hand.num_bodies, 4, 4)
    assert np.abs(ours[..., :3, 3] - ref[..., :3, 3]).max() <= 1e-6
    assert np.abs(ours[..., :3, :3] - ref[..., :3, :3]).max() <= 1e-6
    # The check can fail: a joint moved away from the sampled value changes some body.
    q2 = q.copy()
    q2[:, -1] = np.where(q[:, -1] > 0.5 * (hand.joint_lower[-1] + hand.joint_upper[-1]),
                         hand.joint_lower[-1], hand.joint_upper[-1])
    moved = np.asarray(forward_kinematics(hand, jnp.asarray(q2)))
    assert np.abs(moved[..., :3, :] - ref[..., :3, :]).max() > 1e-4


def test_fk_matches_mujoco_with_joint_ref_and_offset_root(tmp_path):
    """A joint with ``ref`` (qpos0 != 0), a slide, a jointless tip and a root placed off the
    origin: the bundled hands have none of these, so they are checked here."""
    path = tmp_path / "coupled.xml"
    path.write_text(COUPLED_XML)
    hand = load_hand(str(path), dtype=jnp.float64, cache=False)
    assert float(np.max(np.abs(np.asarray(hand.joint_ref)))) > 0
    rng = np.random.default_rng(4)
    q = rng.uniform(np.asarray(hand.joint_lower), np.asarray(hand.joint_upper), size=(50, hand.num_joints))
    ours = np.asarray(forward_kinematics(hand, jnp.asarray(q)))
    ref = mujoco_poses(str(path), q)
    assert np.abs(ours[..., :3, :] - ref[..., :3, :]).max() <= 1e-6


@pytest.mark.parametrize("case", HAND_CASES, ids=case_id)
def test_couplings_satisfy_mujoco_equalities(case):
    """Angles from ``couple`` give zero residual in MuJoCo's own equality constraints."""
    hand = hand64(case)
    model = compile_model(case)
    tree = read_tree(model)
    data = mujoco.MjData(model)
    adr = model.jnt_qposadr[list(tree.joint_ids)]
    rng = np.random.default_rng(1)
    idx = np.asarray(hand.independent)
    for _ in range(5):
        qi = rng.uniform(np.asarray(hand.joint_lower)[idx], np.asarray(hand.joint_upper)[idx])
        data.qpos[:] = model.qpos0
        data.qpos[adr] = np.asarray(couple(hand, jnp.asarray(qi)))
        mujoco.mj_forward(model, data)
        eq = data.efc_type == int(mujoco.mjtConstraint.mjCNSTR_EQUALITY)
        if eq.any():
            assert np.abs(data.efc_pos[eq]).max() < 1e-9


@pytest.mark.parametrize("case", HAND_CASES, ids=case_id)
def test_pose_gradient_matches_central_differences(case):
    hand = hand64(case)
    key = jax.random.PRNGKey(0)
    x0 = default_config(hand, 0.4) + 0.3 * jax.random.normal(key, (hand.num_dof,), dtype=jnp.float64)
    w = jax.random.normal(jax.random.PRNGKey(1), (hand.num_contacts, 3), dtype=jnp.float64)

    def scalar(x):
        posed = pose_hand(hand, x)
        return jnp.sum(w * posed.contact_pos) + jnp.sum(posed.contact_normal[:, 2] ** 2)

    g = jax.jit(jax.grad(scalar))(x0)
    eps = 1e-6
    fd = np.array([(scalar(x0.at[i].add(eps)) - scalar(x0.at[i].add(-eps))) / (2 * eps) for i in range(hand.num_dof)])
    np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(np.asarray(g)))


def test_fk_gradient_wrt_joint_angles():
    hand = hand64("shadow")
    q0 = 0.5 * (hand.joint_lower + hand.joint_upper)
    f = lambda q: jnp.sum(jnp.sin(forward_kinematics(hand, q)[:, :3, :]))  # noqa: E731
    g = jax.grad(f)(q0)
    eps = 1e-6
    fd = np.array([(f(q0.at[i].add(eps)) - f(q0.at[i].add(-eps))) / (2 * eps) for i in range(hand.num_joints)])
    np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("batch", [(), (7,), (2, 3)], ids=str)
@pytest.mark.parametrize("case", ["shadow", "parallel_jaw"])
def test_batch_shapes_jit_and_vmap(case, batch):
    hand = hand64(case)
    key = jax.random.PRNGKey(2)
    x = default_config(hand, 0.5) + 0.2 * jax.random.normal(key, batch + (hand.num_dof,), dtype=jnp.float64)
    posed = jax.jit(pose_hand)(hand, x)
    assert posed.T_world_body.shape == batch + (hand.num_bodies, 4, 4)
    assert posed.contact_pos.shape == batch + (hand.num_contacts, 3)
    assert posed.sample_pos.shape == batch + (hand.num_samples, 3)
    flat = x.reshape(-1, hand.num_dof)
    looped = np.stack([np.asarray(pose_hand(hand, xi).contact_pos) for xi in flat])
    np.testing.assert_allclose(np.asarray(posed.contact_pos).reshape(looped.shape), looped, atol=1e-12)
    q = jax.vmap(lambda xi: config_to_joint_angles(hand, xi))(flat)
    T = jax.jit(forward_kinematics)(hand, q.reshape(batch + (hand.num_joints,)))
    assert T.shape == batch + (hand.num_bodies, 4, 4)


def test_float32_matches_float64():
    h64, h32 = hand64("shadow"), load_hand("shadow", dtype=jnp.float32)
    x = default_config(h64, 0.5) + 0.1
    p64 = pose_hand(h64, x)
    p32 = pose_hand(h32, x.astype(jnp.float32))
    assert p32.contact_pos.dtype == jnp.float32 and p64.contact_pos.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(p32.contact_pos), np.asarray(p64.contact_pos), atol=1e-5)


def test_pose_places_palm_and_contacts_rigidly():
    """The palm pose is (t, exp(r)); contacts move rigidly with it."""
    hand = hand64("shadow")
    x = default_config(hand, 0.5)
    t, r = jnp.array([0.1, -0.2, 0.3]), jnp.array([0.3, -0.5, 1.1])
    moved = pose_hand(hand, x.at[:3].set(t).at[3:6].set(r))
    base = pose_hand(hand, x)
    R = Rotation.from_rotvec(np.array(r)).as_matrix()
    np.testing.assert_allclose(np.asarray(moved.T_world_palm[:3, :3]), R, atol=1e-12)
    np.testing.assert_allclose(np.asarray(moved.contact_pos), np.asarray(base.contact_pos) @ R.T + np.asarray(t), atol=1e-12)
    np.testing.assert_allclose(np.asarray(moved.contact_normal), np.asarray(base.contact_normal) @ R.T, atol=1e-12)


def test_sigmoid_keeps_limits_and_gradients():
    hand = hand64("shadow")
    z = jnp.linspace(-40.0, 40.0, hand.num_independent)
    q = independent_angles(hand, z)
    idx = np.asarray(hand.independent)
    assert np.all(np.asarray(q) >= np.asarray(hand.joint_lower)[idx] - 1e-12)
    assert np.all(np.asarray(q) <= np.asarray(hand.joint_upper)[idx] + 1e-12)
    g = jax.grad(lambda zz: jnp.sum(independent_angles(hand, zz)))(jnp.zeros(hand.num_independent))
    assert np.all(np.asarray(g) > 0)


def test_so3_exp_matches_scipy_and_is_smooth_at_zero():
    rng = np.random.default_rng(3)
    r = rng.normal(size=(50, 3)) * np.array([[1.0], [1e-5], [3.0], [1e-9], [0.0]] * 10)
    np.testing.assert_allclose(np.asarray(so3_exp(jnp.asarray(r))), Rotation.from_rotvec(r).as_matrix(), atol=1e-12)
    J = jax.jacfwd(lambda v: so3_exp(v))(jnp.zeros(3))
    assert np.all(np.isfinite(np.asarray(J)))
    # d exp(r)/dr at 0 is the generator: d R / d r_k = skew(e_k).
    np.testing.assert_allclose(np.asarray(J[:, :, 0]), [[0, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
