"""Rotations and rigid transforms, in JAX (traced) and NumPy (host side).

Conventions: quaternions are ``(w, x, y, z)`` as in MuJoCo; rotation matrices act on column
vectors; a transform ``T_a_b`` (4x4) maps coordinates in frame ``b`` to frame ``a``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# Below this squared angle the closed-form coefficients of the exponential map lose precision
# (catastrophic cancellation in 1 - cos), so their Taylor series are used instead. The series
# are accurate to O(theta^4) there, far below float32/float64 resolution for theta^2 < 1e-6.
_SMALL_ANGLE_SQ = 1e-6


def skew(v: jnp.ndarray) -> jnp.ndarray:
    """Cross-product matrix.

    Args:
        v: vectors, shape ``(..., 3)``.

    Returns:
        ``(..., 3, 3)`` matrices ``K`` with ``K @ u == cross(v, u)``.
    """
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = jnp.zeros_like(x)
    return jnp.stack(
        [
            jnp.stack([zero, -z, y], -1),
            jnp.stack([z, zero, -x], -1),
            jnp.stack([-y, x, zero], -1),
        ],
        -2,
    )


def axis_angle_to_matrix(axis: jnp.ndarray, angle: jnp.ndarray) -> jnp.ndarray:
    """Rotation about a unit axis (Rodrigues' formula; smooth in the angle, no guard needed).

    Args:
        axis: unit axes, shape ``(..., 3)``.
        angle: angles in radians, shape ``(...)``.

    Returns:
        Rotation matrices, shape ``(..., 3, 3)``.
    """
    K = skew(axis)
    s = jnp.sin(angle)[..., None, None]
    c = jnp.cos(angle)[..., None, None]
    eye = jnp.eye(3, dtype=K.dtype)
    return eye + s * K + (1.0 - c) * (K @ K)


def so3_exp(rotvec: jnp.ndarray) -> jnp.ndarray:
    """Exponential map from a rotation vector (axis * angle) to a rotation matrix.

    The map is analytic everywhere; only its closed form divides by the angle. It is smooth at
    the zero rotation through the double-``where`` below, so gradients stay finite there.

    Args:
        rotvec: rotation vectors, shape ``(..., 3)``.

    Returns:
        Rotation matrices, shape ``(..., 3, 3)``.
    """
    theta_sq = jnp.sum(rotvec * rotvec, axis=-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    # Double where: evaluate the closed form only at a safe angle (1.0) where the angle is tiny,
    # so neither the value nor its gradient sees 0/0.
    safe_sq = jnp.where(small, jnp.ones_like(theta_sq), theta_sq)
    theta = jnp.sqrt(safe_sq)
    a = jnp.where(small, 1.0 - theta_sq / 6.0, jnp.sin(theta) / theta)
    b = jnp.where(small, 0.5 - theta_sq / 24.0, (1.0 - jnp.cos(theta)) / safe_sq)
    K = skew(rotvec)
    eye = jnp.eye(3, dtype=K.dtype)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def so3_log(R: jnp.ndarray) -> jnp.ndarray:
    """Logarithm map from a rotation matrix to a rotation vector (angle in ``[0, pi]``).

    ``theta = atan2(|w|, c)`` with ``w = vee(R - R^T) / 2 = sin(theta) axis`` and ``c = (tr R -
    1) / 2 = cos(theta)``; the vector is ``theta / sin(theta) * w``. Three regimes:

    * small angles (``|w|^2 < 1e-6`` and ``c > 0``): ``theta / sin(theta) = 1 + theta^2 / 6 +
      O(theta^4)`` with ``theta^2 ~ |w|^2``; no division, smooth (finite gradients) at the
      identity;
    * near ``pi`` (``c < 0`` and ``sin(theta) < 0.5``): ``w`` no longer fixes the axis well, so
      the axis comes from the symmetric part ``(R + R^T) / 2 - c I = (1 - c) a a^T``: the column
      with the largest diagonal, normalised, its sign taken from ``w`` (at exactly ``pi`` either
      sign is correct);
    * otherwise the closed form.

    Every branch is evaluated on safe inputs (double ``where``), so neither value nor gradient
    sees 0/0.

    Args:
        R: rotation matrices, shape ``(..., 3, 3)``.

    Returns:
        Rotation vectors, shape ``(..., 3)``; ``so3_exp(so3_log(R)) == R``.
    """
    w = 0.5 * jnp.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                         R[..., 1, 0] - R[..., 0, 1]], -1)
    c = jnp.clip(0.5 * (R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2] - 1.0), -1.0, 1.0)
    s_sq = jnp.sum(w * w, -1)
    small = (s_sq < _SMALL_ANGLE_SQ) & (c > 0)
    near_pi = (c < 0) & (s_sq < 0.25)
    # Generic branch: |w| under a sqrt, evaluated at a safe 1.0 where it could be 0.
    safe_s_sq = jnp.where(small | near_pi, jnp.ones_like(s_sq), s_sq)
    s = jnp.sqrt(safe_s_sq)
    theta = jnp.arctan2(s, c)
    generic = (theta / s)[..., None] * w
    tiny = (1.0 + s_sq / 6.0)[..., None] * w
    # Near pi: axis from the symmetric part, B = (1 - c) a a^T with 1 - c >= 1 on this branch.
    B = 0.5 * (R + jnp.swapaxes(R, -1, -2)) - c[..., None, None] * jnp.eye(3, dtype=R.dtype)
    k = jnp.argmax(jnp.stack([B[..., 0, 0], B[..., 1, 1], B[..., 2, 2]], -1), -1)
    col = jnp.take_along_axis(B, k[..., None, None], axis=-1)[..., 0]  # (..., 3) = (1 - c) a_k a
    col_sq = jnp.sum(col * col, -1)
    # |col| = (1 - c) |a_k| >= sqrt(1/3) on this branch; the safe value only matters elsewhere.
    axis = col / jnp.sqrt(jnp.where(near_pi, col_sq, jnp.ones_like(col_sq)))[..., None]
    sign = jnp.where(jnp.sum(axis * w, -1) < 0, -1.0, 1.0).astype(R.dtype)
    # sin(theta) = |w| = sign (axis . w) here: a projection, not a norm, so the gradient stays
    # finite at exactly pi (where w = 0 and a norm's gradient would be 0/0).
    theta_pi = jnp.arctan2(sign * jnp.sum(axis * w, -1), c)
    pi_branch = (sign * theta_pi)[..., None] * axis
    return jnp.where(small[..., None], tiny, jnp.where(near_pi[..., None], pi_branch, generic))


def make_transform(R: jnp.ndarray, t: jnp.ndarray) -> jnp.ndarray:
    """Stack a rotation ``(..., 3, 3)`` and a translation ``(..., 3)`` into ``(..., 4, 4)``."""
    top = jnp.concatenate([R, t[..., :, None]], axis=-1)
    bottom = jnp.broadcast_to(
        jnp.array([0.0, 0.0, 0.0, 1.0], dtype=R.dtype), top.shape[:-2] + (1, 4)
    )
    return jnp.concatenate([top, bottom], axis=-2)


def quat_to_matrix_np(q: np.ndarray) -> np.ndarray:
    """Unit quaternion(s) ``(..., 4)`` in ``(w, x, y, z)`` to rotation matrices ``(..., 3, 3)``."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def matrix_to_quat_np(R: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` to a unit quaternion ``(w, x, y, z)`` with ``w >= 0``."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    # Shepperd's method: divide by the largest of the four candidate pivots for stability.
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = np.array([0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k])
        q = np.empty(4)
        q[0] = (R[k, j] - R[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (R[j, i] + R[i, j]) / s
        q[1 + k] = (R[k, i] + R[i, k]) / s
    q = q / np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def matrix_to_rotvec_np(R: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` to a rotation vector (angle in ``[0, pi]``), host side."""
    q = matrix_to_quat_np(R)
    s = np.linalg.norm(q[1:])
    if s < 1e-12:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(s, q[0])
    return q[1:] / s * angle


def quat_from_rotvec(r: jnp.ndarray) -> jnp.ndarray:
    """Unit quaternion ``(w, x, y, z)`` of a rotation vector (axis * angle), traced.

    ``q = (cos(theta / 2), sin(theta / 2) / theta * r)``. Below ``theta^2 = 1e-8`` both
    coefficients come from their Taylor series (``sin(theta/2)/theta = 1/2 - theta^2/48``,
    ``cos(theta/2) = 1 - theta^2/8``, errors O(theta^4)), and the closed form is evaluated at a safe
    angle there (double ``where``): neither value nor gradient sees 0/0 at the zero rotation.

    Args:
        r: rotation vectors, shape ``(..., 3)``.

    Returns:
        Unit quaternions, shape ``(..., 4)``, with ``w >= 0`` for angles ``<= pi``.
    """
    theta_sq = jnp.sum(r * r, axis=-1, keepdims=True)
    small = theta_sq < 1e-8
    # Double where: sin(theta/2)/theta evaluated at a safe angle where theta ~ 0 (series there).
    theta = jnp.sqrt(jnp.where(small, 1.0, theta_sq))
    k = jnp.where(small, 0.5 - theta_sq / 48.0, jnp.sin(0.5 * theta) / theta)
    w = jnp.where(small, 1.0 - theta_sq / 8.0, jnp.cos(0.5 * theta))
    return jnp.concatenate([w, k * r], axis=-1)


def quat_mul(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """Hamilton product ``a b`` of quaternions ``(..., 4)`` in ``(w, x, y, z)`` (rotation ``b``
    first, then ``a``), traced."""
    w1, v1, w2, v2 = a[..., :1], a[..., 1:], b[..., :1], b[..., 1:]
    return jnp.concatenate([w1 * w2 - jnp.sum(v1 * v2, -1, keepdims=True),
                            w1 * v2 + w2 * v1 + jnp.cross(v1, v2)], axis=-1)


def rotvec_from_quat(q: jnp.ndarray) -> jnp.ndarray:
    """Rotation vector (angle in ``[0, pi]``) of unit quaternions ``(..., 4)`` in ``(w, x, y, z)``, traced.

    ``q`` and ``-q`` are the same rotation: the sign with ``w >= 0`` is taken, whose angle
    ``theta = 2 atan2(|v|, w)`` is at most ``pi``; the vector is ``theta / |v| * v``. Where the
    vector part is tiny (``|v|^2 < 1e-12``) the factor ``theta / |v|`` tends to ``2 / w`` (and
    ``w ~ 1`` there; the ``max`` only keeps the unused branch finite), and the closed form is
    evaluated at a safe ``|v| = 1`` (double ``where``), so the gradient is finite at the identity.

    Args:
        q: unit quaternions, shape ``(..., 4)``.

    Returns:
        Rotation vectors, shape ``(..., 3)``; ``rotvec_from_quat(quat_from_rotvec(r)) == r`` for
        ``|r| < pi``.
    """
    q = jnp.where(q[..., :1] < 0, -q, q)  # w >= 0: the rotation vector of angle <= pi
    w, v = q[..., :1], q[..., 1:]
    s_sq = jnp.sum(v * v, axis=-1, keepdims=True)
    small = s_sq < 1e-12
    # Double where: theta / sin(theta/2) -> 2 / w as the vector part vanishes.
    s = jnp.sqrt(jnp.where(small, 1.0, s_sq))
    f = jnp.where(small, 2.0 / jnp.maximum(w, 0.5), 2.0 * jnp.arctan2(s, w) / s)  # w ~ 1 there
    return f * v


def compose_rotvec(delta: jnp.ndarray, r: jnp.ndarray) -> jnp.ndarray:
    """Rotation vector of ``exp(delta) exp(r)`` (``delta`` a world-frame perturbation of ``r``),
    angle ``<= pi``, traced.

    Composed through quaternions (:func:`quat_from_rotvec`, :func:`quat_mul`,
    :func:`rotvec_from_quat`), so it is smooth at the zero rotation and needs no matrix logarithm.

    Args:
        delta, r: rotation vectors, shape ``(..., 3)``.

    Returns:
        Rotation vectors, shape ``(..., 3)``.
    """
    return rotvec_from_quat(quat_mul(quat_from_rotvec(delta), quat_from_rotvec(r)))


def rotvec_to_matrix_np(r: np.ndarray) -> np.ndarray:
    """Rotation vector ``(3,)`` to a rotation matrix ``(3, 3)``, host side (Rodrigues, float64).

    Only an exactly zero vector is special-cased: for any angle > 0, ``r / angle`` is a unit axis
    and the formula is accurate. Inverse of :func:`matrix_to_rotvec_np`.
    """
    r = np.asarray(r, dtype=np.float64)
    th = float(np.linalg.norm(r))
    if th == 0.0:
        return np.eye(3)
    a = r / th
    K = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + np.sin(th) * K + (1.0 - np.cos(th)) * K @ K


def rotation_angle_sq(R_a: jnp.ndarray, R_b: jnp.ndarray) -> jnp.ndarray:
    """Squared geodesic angle between rotations ``(..., 3, 3)``: ``|log(R_a^T R_b)|^2`` [rad^2].

    Smooth (finite gradients) everywhere, including ``R_a == R_b``, through :func:`so3_log`.
    """
    w = so3_log(jnp.swapaxes(R_a, -1, -2) @ R_b)
    return jnp.sum(w * w, axis=-1)
