"""Shared test setup.

Float64 is enabled for the whole suite so that references (MuJoCo, NumPy, finite
differences) can be compared at 1e-6 and below; tests that check float32 behaviour
create float32 arrays explicitly, and library code keeps the dtype of its inputs.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
