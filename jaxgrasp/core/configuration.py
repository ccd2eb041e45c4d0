"""The hand configuration vector ``x = (t, r, z)`` every planner optimizes.

* ``t`` (3,): the palm's translation in the world (centred object) frame [m];
* ``r`` (3,): the palm's rotation vector [rad], ``R_world_palm = exp(r)``;
* ``z`` (I,): the independent joint variables, mapped into the joint limits by
  ``q = (u - l) * sigmoid(z) + l`` (:func:`jaxgrasp.hand.kinematics.independent_angles`).

``x`` has ``6 + I`` entries; batches put them on the last axis. The helpers below are the one place
that knows the layout: the rest of the package splits and joins through them.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

NUM_POSE = 6  # entries of (t, r) before the joint variables


def split(x):
    """``(t (..., 3), r (..., 3), z (..., I))`` of configurations ``x (..., 6 + I)`` (views)."""
    return x[..., :3], x[..., 3:NUM_POSE], x[..., NUM_POSE:]


def translation(x):
    """``t (..., 3)``: the palm's translation."""
    return x[..., :3]


def rotation(x):
    """``r (..., 3)``: the palm's rotation vector."""
    return x[..., 3:NUM_POSE]


def joints(x):
    """``z (..., I)``: the independent joint variables."""
    return x[..., NUM_POSE:]


def join(t, r, z):
    """``x (..., 6 + I)`` from its parts (NumPy in, NumPy out; otherwise a JAX array)."""
    if all(isinstance(a, np.ndarray) for a in (t, r, z)):
        return np.concatenate([t, r, z], axis=-1)
    return jnp.concatenate([jnp.asarray(t), jnp.asarray(r), jnp.asarray(z)], axis=-1)
