"""Starting configurations of the planners: approach directions spread on a sphere, the palm
facing the object, fingers open (paper VI.A's initialization; shared by the annealing baseline).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrasp.hand import HandModel, has_joint_above
from jaxgrasp.kinematics import default_config, pose_hand
from jaxgrasp.lie import matrix_to_rotvec_np


def fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (golden-angle spiral), ``(n, 3)``."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = np.pi * (1.0 + 5**0.5) * i
    r = np.sqrt(1.0 - z * z)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


@jax.jit
def _contact_pos(hand: HandModel, config: jnp.ndarray) -> jnp.ndarray:
    """``(N, 3)`` contact candidates of one configuration (jitted: starts are made every
    anytime round, and the eager forward kinematics took ~0.1 s of each)."""
    return pose_hand(hand, config).contact_pos


def grasp_point(hand: HandModel, opening: float) -> np.ndarray:
    """The palm's grasp point in the hand frame with the fingers at ``opening``: the centroid
    of the palm's contact candidates, moved 30% of the finger reach along the finger direction.
    Starts place it just outside the object; the annealing baseline rotates about it."""
    cp = np.asarray(_contact_pos(hand, default_config(hand, opening)), np.float64)
    f = np.asarray(hand.finger_direction, np.float64)
    on_palm = np.array([not has_joint_above(hand, int(b)) for b in np.asarray(hand.contact_body)])
    palm_c = cp[on_palm].mean(0) if on_palm.any() else np.zeros(3)
    reach = max(float(np.max((cp - palm_c) @ f)), 0.0)
    return palm_c + 0.3 * reach * f


def initial_configs(hand: HandModel, radius: float, num: int, key: jax.Array, *, opening: float,
                    standoff: float) -> jnp.ndarray:
    """Starts around an object of bounding radius ``radius`` centred at the origin.

    Each start approaches along a direction on a Fibonacci sphere, the palm facing the object
    (``hand.palm_normal`` towards the centre), a random roll about the approach axis, fingers
    open at ``opening``; the palm's grasp point sits ``standoff`` outside the bounding sphere.
    (Measured alternatives that were not better on the scans, 24 runs each, steps until a start
    is valid: palm placed by the object's support function instead of the bounding sphere, and
    fingers rolled across the object's least extent: median 70 vs 60 steps.)

    Returns:
        ``(num, 6 + I)`` configurations.
    """
    x0 = default_config(hand, opening)
    a = np.asarray(hand.palm_normal, np.float64)
    f = np.asarray(hand.finger_direction, np.float64)
    s = np.cross(a, f)
    gp = grasp_point(hand, opening)
    rolls = np.asarray(jax.random.uniform(key, (num,), minval=0.0, maxval=2 * np.pi))
    out = []
    for u, roll in zip(fibonacci_sphere(num), rolls):
        e1 = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(u, e1)
        f_w = np.cos(roll) * e1 + np.sin(roll) * e2
        a_w = -u
        R = np.column_stack([a_w, f_w, np.cross(a_w, f_w)]) @ np.column_stack([a, f, s]).T
        t = u * (radius + standoff) - R @ gp
        out.append(np.concatenate([t, matrix_to_rotvec_np(R), np.asarray(x0[6:])]))
    return jnp.asarray(np.stack(out), dtype=hand.body_pos.dtype)
