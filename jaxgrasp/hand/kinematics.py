"""Differentiable forward kinematics of a :class:`~jaxgrasp.hand.model.HandModel` (paper section IV.F).

Two levels:

* :func:`forward_kinematics` ``(hand, joint_angles) -> T_palm_body`` for angles over every joint in
  ``hand.joint_names``, the root at the identity; it reproduces MuJoCo's ``mj_kinematics``.
* :func:`pose_hand` ``(hand, config) -> PosedHand`` for the optimizer's configuration
  ``x = (t, r, z)`` of size ``6 + I``:

  - ``t`` (3): the palm's position in the world (object) frame, metres;
  - ``r`` (3): the palm's orientation as a rotation vector (axis * angle, radians), mapped through
    the SO(3) exponential. It is smooth (analytic) everywhere, has no gimbal lock, and at the
    small angles that an optimizer step makes it is well conditioned; its only non-uniqueness
    (``|r| = pi`` vs ``-pi``) does not hurt gradient descent;
  - ``z`` (I): unconstrained variables of the independent joints, mapped to angles by
    ``(u - l) * sigmoid(z) + l`` (always within the limits, non-vanishing gradients), then the
    couplings give the dependent joints.

All functions work on one item; ``jax.vmap`` them for batches (or use the batched wrappers, which
accept any leading batch shape). They keep the dtype of the hand model's arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxgrasp.core.configuration import joints, rotation, translation
from jaxgrasp.core.lie import axis_angle_to_matrix, make_transform, so3_exp
from jaxgrasp.hand.mjcf import HINGE
from jaxgrasp.hand.model import HandModel


def _fk_rt(hand: HandModel, q: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Body rotations ``(B, 3, 3)`` and positions ``(B, 3)`` in the hand frame for angles ``(J,)``.

    Mirrors ``mj_kinematics``: a body is placed at its parent's frame times its file offset; each
    of its joints then rotates about (hinge) or translates along (slide) its axis, by
    ``q - qpos0``, about the joint's anchor.
    """
    Rs: list[jnp.ndarray] = []
    ts: list[jnp.ndarray] = []
    for b, parent in enumerate(hand.body_parent):
        if parent < 0:
            R, t = hand.body_rot[b], hand.body_pos[b]
        else:
            R = Rs[parent] @ hand.body_rot[b]
            t = ts[parent] + Rs[parent] @ hand.body_pos[b]
        for j in hand.body_joints[b]:
            delta = q[j] - hand.joint_ref[j]
            if hand.joint_types[j] == HINGE:
                anchor = t + R @ hand.joint_anchor[j]
                R = R @ axis_angle_to_matrix(hand.joint_axis[j], delta)
                t = anchor - R @ hand.joint_anchor[j]
            else:
                t = t + (R @ hand.joint_axis[j]) * delta
        Rs.append(R)
        ts.append(t)
    return jnp.stack(Rs), jnp.stack(ts)


def _fk_one(hand: HandModel, q: jnp.ndarray) -> jnp.ndarray:
    R, t = _fk_rt(hand, q)
    return make_transform(R, t)


def _over_leading_axes(fn, a: jnp.ndarray):
    """``fn`` of one item (the last axis of ``a``) vmapped over all leading axes of ``a``."""
    for _ in range(a.ndim - 1):
        fn = jax.vmap(fn)
    return fn(a)


def forward_kinematics(hand: HandModel, joint_angles: jnp.ndarray) -> jnp.ndarray:
    """Poses of all bodies in the hand (root) frame.

    Args:
        hand: the hand model.
        joint_angles: angles (rad) or positions (m) over ``hand.joint_names``, shape ``(..., J)``.

    Returns:
        ``T_palm_body``, shape ``(..., B, 4, 4)``, in ``hand.body_names`` order.
    """
    q = jnp.asarray(joint_angles)
    if q.shape[-1] != hand.num_joints:
        raise ValueError(f"expected {hand.num_joints} joint angles (hand.joint_names), got shape {q.shape}")
    return _over_leading_axes(lambda qq: _fk_one(hand, qq), q)


def independent_angles(hand: HandModel, z: jnp.ndarray) -> jnp.ndarray:
    """Map unconstrained variables ``(I,)`` into the independent joints' limits:
    ``(u - l) * sigmoid(z) + l``."""
    idx = jnp.asarray(hand.independent, dtype=jnp.int32)
    lo, hi = hand.joint_lower[idx], hand.joint_upper[idx]
    return (hi - lo) * jax.nn.sigmoid(z) + lo


def independent_to_unconstrained(hand: HandModel, q_independent: jnp.ndarray) -> jnp.ndarray:
    """Inverse of :func:`independent_angles` (logit), for angles strictly inside the limits."""
    idx = jnp.asarray(hand.independent, dtype=jnp.int32)
    lo, hi = hand.joint_lower[idx], hand.joint_upper[idx]
    s = (q_independent - lo) / (hi - lo)
    return jnp.log(s) - jnp.log1p(-s)


def couple(hand: HandModel, q_independent: jnp.ndarray) -> jnp.ndarray:
    """All joint angles ``(J,)`` from the independent ones ``(I,)`` through the couplings."""
    # The promoted dtype: a float64 configuration of a float32 hand is not cast down in the scatter.
    q = jnp.zeros((hand.num_joints,), dtype=jnp.result_type(hand.joint_ref, q_independent))
    q = q.at[jnp.asarray(hand.independent, dtype=jnp.int32)].set(q_independent)
    for r, j in enumerate(hand.coupled):
        s = hand.coupling_poly_dir[r] @ q - hand.coupling_poly_ref[r]
        powers = jnp.stack([s, s * s, s * s * s, s * s * s * s])
        q = q.at[j].set(hand.coupling_offset[r] + hand.coupling_linear[r] @ q + hand.coupling_poly[r] @ powers)
    return q


def config_to_joint_angles(hand: HandModel, config: jnp.ndarray) -> jnp.ndarray:
    """Joint angles ``(J,)`` over ``hand.joint_names`` from a configuration ``(6 + I,)``."""
    return couple(hand, independent_angles(hand, joints(config)))


def config_to_palm_pose(config: jnp.ndarray) -> jnp.ndarray:
    """``T_world_palm`` (4, 4) from the first 6 entries (translation, rotation vector)."""
    return make_transform(so3_exp(rotation(config)), translation(config))


@struct.dataclass
class PosedHand:
    """A hand placed in the world (object) frame by a configuration.

    Attributes:
        T_world_palm: (4, 4) the palm (root) pose.
        T_world_body: (B, 4, 4) every body's pose.
        joint_angles: (J,) over ``hand.joint_names``.
        contact_pos: (C, 3) contact candidates in the world.
        contact_normal: (C, 3) their outward hand-surface normals (the gripper normal n_g).
        sample_pos: (S, 3) dense collision samples in the world.
        sample_normal: (S, 3) their outward normals.
    """

    T_world_palm: jnp.ndarray
    T_world_body: jnp.ndarray
    joint_angles: jnp.ndarray
    contact_pos: jnp.ndarray
    contact_normal: jnp.ndarray
    sample_pos: jnp.ndarray
    sample_normal: jnp.ndarray


def _pose_one(hand: HandModel, config: jnp.ndarray) -> PosedHand:
    q = config_to_joint_angles(hand, config)
    R_palm_body, t_palm_body = _fk_rt(hand, q)
    R_world_palm = so3_exp(rotation(config))
    R_world_body = R_world_palm @ R_palm_body
    t_world_body = translation(config) + t_palm_body @ R_world_palm.T

    def place(body, pos, normal):
        R, t = R_world_body[body], t_world_body[body]
        return jnp.einsum("nij,nj->ni", R, pos) + t, jnp.einsum("nij,nj->ni", R, normal)

    cp, cn = place(hand.contact_body, hand.contact_pos, hand.contact_normal)
    sp, sn = place(hand.sample_body, hand.sample_pos, hand.sample_normal)
    return PosedHand(
        T_world_palm=make_transform(R_world_palm, translation(config)),
        T_world_body=make_transform(R_world_body, t_world_body),
        joint_angles=q,
        contact_pos=cp,
        contact_normal=cn,
        sample_pos=sp,
        sample_normal=sn,
    )


def pose_hand(hand: HandModel, config: jnp.ndarray) -> PosedHand:
    """Place the hand by optimizer configuration(s).

    Args:
        hand: the hand model.
        config: ``(..., 6 + I)``: palm translation, palm rotation vector, unconstrained
            independent joint variables.

    Returns:
        A :class:`PosedHand` whose fields carry the same leading batch shape.
    """
    x = jnp.asarray(config)
    if x.shape[-1] != hand.num_dof:
        raise ValueError(f"expected a configuration of size 6 + {hand.num_independent} = {hand.num_dof}, got shape {x.shape}")
    return _over_leading_axes(lambda xx: _pose_one(hand, xx), x)


def default_config(hand: HandModel, opening: float = 0.0) -> jnp.ndarray:
    """A configuration with the palm at the origin, identity rotation, and every independent
    joint at ``lower + opening * (upper - lower)`` (clipped strictly inside the limits).

    Args:
        hand: the hand model.
        opening: fraction of each independent joint's range, in ``[0, 1]``.

    Returns:
        ``(6 + I,)`` configuration.
    """
    idx = jnp.asarray(hand.independent, dtype=jnp.int32)
    lo, hi = hand.joint_lower[idx], hand.joint_upper[idx]
    # Keep strictly inside (0, 1): the logit of the sigmoid map is infinite at the limits.
    frac = jnp.clip(jnp.full_like(lo, opening), 1e-3, 1.0 - 1e-3)
    z = independent_to_unconstrained(hand, lo + frac * (hi - lo))
    return jnp.concatenate([jnp.zeros(6, dtype=lo.dtype), z])
