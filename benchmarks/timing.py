"""Shared timing helper for the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import time

import jax
import numpy as np


def time_call(fn, repeats: int) -> tuple[float, float, float]:
    """Time ``fn()`` (blocking on its JAX outputs).

    Returns:
        ``(median, first, best)`` seconds: the median and the best of ``repeats`` runs after a
        first run, and the first run itself (compilation included).
    """
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), first, float(np.min(ts))
