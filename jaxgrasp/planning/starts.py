"""Starting configurations of the planners: approach directions spread on a sphere, the palm
facing the object, fingers open (paper VI.A's initialization; shared by the annealing baseline).
The sphere is laid out in the object's principal axes (:func:`principal_axes`), so the starts
turn with the object: a mesh gets the same starts in whatever frame it comes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrasp.core import configuration
from jaxgrasp.core.lie import matrix_to_rotvec_np
from jaxgrasp.hand.kinematics import default_config, pose_hand
from jaxgrasp.hand.mjcf import has_joint_above
from jaxgrasp.hand.model import HandModel
from jaxgrasp.mesh.objects import Object


def fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (golden-angle spiral), ``(n, 3)``."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = np.pi * (1.0 + 5**0.5) * i
    r = np.sqrt(1.0 - z * z)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def principal_axes(obj: Object) -> np.ndarray:
    """The object's principal axes about its centre of mass (host side, float64).

    Eigenvectors of the surface's second moment (uniform over area, so open scans work too;
    exact per triangle), largest first. Each of the first two points to the side where the
    surface's third moment along it is positive; the third is their cross product, so the axes
    form a rotation. Rotating the object rotates its axes with it, except where the shape leaves
    them undetermined (equal second moments, or a third moment of zero: a symmetry, under which
    every choice sees the same shape).

    Returns:
        ``(3, 3)``: column ``k`` is axis ``k`` in the object's frame.
    """
    mask = np.asarray(obj.face_mask)
    tri = np.asarray(obj.corners, np.float64)[mask] - np.asarray(obj.center_of_mass, np.float64)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    s = tri.sum(axis=1)
    # Uniform on a triangle with corners v_k: E[x x^T] = (sum_k v_k v_k^T + s s^T) / 12, s = sum_k v_k.
    second = np.einsum("f,fki,fkj->ij", area, tri, tri) + np.einsum("f,fi,fj->ij", area, s, s)
    _, vecs = np.linalg.eigh(second)  # (the moment times 12 x area: same eigenvectors)
    axes = vecs[:, ::-1]
    # Third moment along each axis. Uniform on a triangle whose corners have coordinates p_k
    # along it: E[p^3] = h3(p) / 10 = (sum_k p_k * sum_k p_k^2 + p_1 p_2 p_3) / 10.
    p = tri @ axes  # (F, corner, axis)
    third = area @ (p.sum(1) * (p**2).sum(1) + p.prod(1)) / 10.0
    axes = axes * np.where(third < 0, -1.0, 1.0)
    axes[:, 2] = np.cross(axes[:, 0], axes[:, 1])
    return axes


@jax.jit
def _contact_pos(hand: HandModel, config: jnp.ndarray) -> jnp.ndarray:
    """``(N, 3)`` contact candidates of one configuration (jitted: starts are made every anytime
    round; docs/decisions.md, "Starts' grasp point through a jitted forward kinematics")."""
    return pose_hand(hand, config).contact_pos


# One compiled call each (cacheable) instead of op-by-op dispatch: starts are made on every planning call.
_default_config = jax.jit(default_config)


@functools.partial(jax.jit, static_argnums=(1,))
def _rolls(key: jax.Array, num: int) -> jax.Array:
    """``(num,)`` uniform roll angles in ``[0, 2 pi)``."""
    return jax.random.uniform(key, (num,), minval=0.0, maxval=2 * jnp.pi)


def grasp_point(hand: HandModel, opening: float) -> np.ndarray:
    """The palm's grasp point in the hand frame with the fingers at ``opening``: the centroid
    of the palm's contact candidates, moved 30% of the finger reach along the finger direction.
    Starts place it just outside the object; the annealing baseline rotates about it."""
    cp = np.asarray(_contact_pos(hand, _default_config(hand, opening)), np.float64)
    f = np.asarray(hand.finger_direction, np.float64)
    on_palm = np.array([not has_joint_above(hand, int(b)) for b in np.asarray(hand.contact_body)])
    palm_c = cp[on_palm].mean(0) if on_palm.any() else np.zeros(3)
    reach = max(float(np.max((cp - palm_c) @ f)), 0.0)
    return palm_c + 0.3 * reach * f


def initial_configs(hand: HandModel, radius: float, num: int, key: jax.Array, *, opening: float,
                    standoff: float, axes: np.ndarray | None = None) -> jnp.ndarray:
    """Starts around an object of bounding radius ``radius`` centred at the origin.

    Each start approaches along a direction on a Fibonacci sphere, the palm facing the object
    (``hand.palm_normal`` towards the centre), a random roll about the approach axis, fingers
    open at ``opening``; the palm's grasp point sits ``standoff`` outside the bounding sphere
    (alternatives measured: docs/decisions.md, "Palm on the bounding sphere, random roll").

    Args:
        axes: ``(3, 3)`` rotation whose columns are the frame the sphere and the rolls are laid
            out in, the sphere's poles on the first column (the planners pass
            :func:`principal_axes`: poles on the longest axis); None: the object's own frame,
            poles on its z axis.

    Returns:
        ``(num, 6 + I)`` configurations.
    """
    x0 = _default_config(hand, opening)
    a = np.asarray(hand.palm_normal, np.float64)
    f = np.asarray(hand.finger_direction, np.float64)
    s = np.cross(a, f)
    gp = grasp_point(hand, opening)
    rolls = np.asarray(_rolls(key, num))
    # The sphere's poles (its z) on the first axis: columns (2, 3, 1), a cyclic order, so a rotation.
    A = np.eye(3) if axes is None else np.asarray(axes, np.float64)[:, [1, 2, 0]]
    out = []
    for u, roll in zip(fibonacci_sphere(num), rolls):
        e1 = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(u, e1)
        f_w = np.cos(roll) * e1 + np.sin(roll) * e2
        a_w = -u
        R = A @ np.column_stack([a_w, f_w, np.cross(a_w, f_w)]) @ np.column_stack([a, f, s]).T
        t = A @ u * (radius + standoff) - R @ gp
        out.append(configuration.join(t, matrix_to_rotvec_np(R), np.asarray(configuration.joints(x0))))
    return jnp.asarray(np.stack(out), dtype=hand.body_pos.dtype)
