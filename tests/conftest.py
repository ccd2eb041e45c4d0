"""Shared test setup.

Float64 is enabled for the whole suite so that references (MuJoCo, NumPy, finite
differences) can be compared at 1e-6 and below; tests that check float32 behaviour
create float32 arrays explicitly, and library code keeps the dtype of its inputs.

The suite uses JAX's persistent compilation cache like the library does (the user's cache
folder, ``~/.cache/jaxgrasp/xla`` by default; ``JAXGRASP_CACHE_DIR`` moves it, ``=off``
disables it): a second run loads most compiled code from disk instead of compiling it again.
"""

import gc
import os

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from jaxgrasp.core.compile_cache import enable_compilation_cache  # noqa: E402

enable_compilation_cache()  # (importing jaxgrasp turns it on too; explicit: the suite relies on it)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Drop JAX's compiled executables after each test module.

    Every XLA:CPU executable keeps its code in many small memory mappings, and the suite compiles
    hundreds of distinct functions in one process: without this the process reached ~62,000
    mappings by the last module, next to Linux's default ``vm.max_map_count`` of 65,530, and the
    run segfaulted inside an XLA compile (test_train) in two of four runs, most likely on a
    refused mapping (with this fixture the peak is ~17,000 and no run crashed).
    """
    yield
    jax.clear_caches()
    gc.collect()
