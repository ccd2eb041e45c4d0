"""The planning engine: a state pytree with pure ``init`` / ``select`` / ``step`` (in the spirit
of optax's ``(init, update)``), and the host-side :class:`Archive` every driver records into.

Every planner is a thin host loop over these: the fixed-step planner and anytime planning
(:mod:`jaxgrasp.planning.planner`, :mod:`jaxgrasp.planning.anytime`), batch planning (:mod:`jaxgrasp.planning.batch`, the
same kernels vmapped over objects), dataset ground truth, the squeeze and refinement phases, and
the annealing baseline's bookkeeping (:class:`Archive`).

Static vs traced. A compiled step is keyed by the hand's structure, the padded problem sizes, the
:class:`~jaxgrasp.planning.objective.Phase` (which terms, which Q1 bound, sample counts) and the chunk
length. Everything numeric (weights, margins, friction, the learning rate and its schedule, the
variable scales) is a traced :class:`StepParams` leaf: changing it never recompiles.

The optimizer is Adam (``optax.scale_by_adam``) on scaled variables ``y = x / scale``, with a
cosine-decayed step ``lr(t) = lr0 (alpha + (1 - alpha) (1 + cos(pi min(t, T) / T)) / 2)`` whose
``lr0``, ``T`` and ``alpha`` are traced.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from typing import Callable, Hashable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxgrasp.hand.model import HandModel
from jaxgrasp.planning.objective import (
    LossParams,
    Phase,
    Scene,
    active_sets,
    grasp_loss,
)


@struct.dataclass
class StepParams:
    """The traced numbers of a phase's steps.

    Attributes:
        loss: the loss's weights and parameters.
        scale: ``(6 + I,)`` variable scale (``x = y * scale``).
        learning_rate: () initial Adam step.
        decay_steps: () steps of the cosine decay (a round's length).
        decay_floor: () the step's final fraction of ``learning_rate``.
    """

    loss: LossParams
    scale: jax.Array
    learning_rate: jax.Array
    decay_steps: jax.Array
    decay_floor: jax.Array


@struct.dataclass
class PlannerState:
    """The state of ``S`` starts of one object.

    Attributes:
        y: ``(S, 6 + I)`` scaled variables (``x = y * params.scale``).
        adam: ``optax.scale_by_adam`` state.
        count: () int32 steps taken (drives the learning-rate schedule).
        sample_idx: ``(S, k)`` int32 active hand samples per start.
        object_idx: ``(S, m)`` int32 active object points per start.
    """

    y: jax.Array
    adam: optax.OptState
    count: jax.Array
    sample_idx: jax.Array
    object_idx: jax.Array


class StepInfo(struct.PyTreeNode):
    """What one chunk of steps reports: the last step's ``total (S,)`` and ``terms {name: (S,)}``."""

    total: jax.Array
    terms: dict


def _adam() -> optax.GradientTransformation:
    return optax.scale_by_adam()


def _map_starts(fn: Callable, how: str) -> Callable:
    """``fn`` of one start mapped over the leading axis of its arguments: ``lax.map`` or ``vmap``
    (:attr:`Phase.start_map`)."""
    if how == "map":
        return lambda *args: jax.lax.map(lambda a: fn(*a), args)
    return jax.vmap(fn)


def _select(hand: HandModel, scene: Scene, y: jax.Array, scale: jax.Array, phase: Phase):
    k_s = min(phase.opt_samples, hand.num_samples)
    return _map_starts(lambda yi: active_sets(hand, scene, yi * scale, k_s, phase.object_points), phase.start_map)(y)


def init_kernel(hand: HandModel, scene: Scene, x0: jax.Array, params: StepParams, phase: Phase) -> PlannerState:
    """The state of starts ``x0 (S, 6 + I)`` (centred frame), active sets chosen (one object)."""
    y = x0 / params.scale
    si, oi = _select(hand, scene, y, params.scale, phase)
    return PlannerState(y=y, adam=_adam().init(y), count=jnp.zeros((), jnp.int32), sample_idx=si, object_idx=oi)


def select_kernel(hand: HandModel, scene: Scene, state: PlannerState, params: StepParams, phase: Phase) -> PlannerState:
    """``state`` with its active sets chosen anew for the current configurations (one object)."""
    si, oi = _select(hand, scene, state.y, params.scale, phase)
    return state.replace(sample_idx=si, object_idx=oi)


def learning_rate(params: StepParams, count: jax.Array) -> jax.Array:
    """The cosine-decayed step at step ``count``."""
    t = jnp.minimum(count.astype(params.learning_rate.dtype), params.decay_steps) / params.decay_steps
    return params.learning_rate * (params.decay_floor + (1.0 - params.decay_floor) * 0.5 * (1.0 + jnp.cos(jnp.pi * t)))


def step_kernel(hand: HandModel, scene: Scene, state: PlannerState, params: StepParams, phase: Phase,
                num_steps: int) -> tuple[PlannerState, StepInfo]:
    """``num_steps`` Adam steps on all starts of one object (un-jitted; :func:`step` jits it)."""

    def loss_y(yi, si, oi):
        return grasp_loss(hand, scene, yi * params.scale, si, oi, params.loss, phase)

    grad_fn = _map_starts(jax.value_and_grad(loss_y, has_aux=True), phase.start_map)
    tx = _adam()

    def body(carry, _):
        y, adam, count = carry
        (total, terms), g = grad_fn(y, state.sample_idx, state.object_idx)
        upd, adam = tx.update(g, adam, y)
        y = y - learning_rate(params, count) * upd
        return (y, adam, count + 1), StepInfo(total, terms)

    (y, adam, count), info = jax.lax.scan(body, (state.y, state.adam, state.count), None, length=num_steps)
    return state.replace(y=y, adam=adam, count=count), jax.tree.map(lambda a: a[-1], info)


# Public entry points: jitted once here; the hand and scene are arguments, so calls with the same
# hand structure, padded sizes and phase share one compilation.
init = jax.jit(init_kernel, static_argnames=("phase",))
select = jax.jit(select_kernel, static_argnames=("phase",))
step = jax.jit(step_kernel, static_argnames=("phase", "num_steps"))


def configs(state: PlannerState, params: StepParams) -> jax.Array:
    """The configurations ``(..., S, 6 + I)`` (centred frame) of a state."""
    return state.y * params.scale


@functools.partial(jax.jit, static_argnames=("phase",))
def init_batch(hand, scenes: Scene, x0: jax.Array, params: StepParams, phase: Phase) -> PlannerState:
    """:func:`init` for objects stacked on a leading axis (``scenes``, ``x0 (n, S, 6 + I)``)."""
    return jax.vmap(lambda sc, x: init_kernel(hand, sc, x, params, phase))(scenes, x0)


@functools.partial(jax.jit, static_argnames=("phase",))
def select_batch(hand, scenes: Scene, state: PlannerState, params: StepParams, phase: Phase) -> PlannerState:
    """:func:`select` for stacked objects."""
    return jax.vmap(lambda sc, st: select_kernel(hand, sc, st, params, phase))(scenes, state)


@functools.partial(jax.jit, static_argnames=("phase", "num_steps"))
def step_batch(hand, scenes: Scene, state: PlannerState, params: StepParams, phase: Phase,
               num_steps: int) -> tuple[PlannerState, StepInfo]:
    """:func:`step` for stacked objects (the step vmapped over objects, starts mapped inside)."""
    return jax.vmap(lambda sc, st: step_kernel(hand, sc, st, params, phase, num_steps))(scenes, state)


def run(hand: HandModel, scene: Scene, x0: jax.Array, params: StepParams, phase: Phase, num_steps: int, *,
        chunk: int = 25, progress: Callable[[int, StepInfo], None] | None = None,
        batch: bool = False) -> tuple[jax.Array, StepInfo]:
    """A fixed number of steps from ``x0 (S, 6 + I)``, active sets re-chosen every ``chunk``.

    Args:
        batch: ``scene`` and ``x0 (n, S, 6 + I)`` are stacked objects (:func:`init_batch`...).

    Returns:
        ``(configurations (S, 6 + I) centred frame, or (n, S, 6 + I), the last chunk's StepInfo)``.
    """
    init_fn, select_fn, step_fn = (init_batch, select_batch, step_batch) if batch else (init, select, step)
    state = init_fn(hand, scene, x0, params, phase)
    done, info = 0, None
    while done < num_steps:
        n = min(chunk, num_steps - done)
        if done:
            state = select_fn(hand, scene, state, params, phase)
        state, info = step_fn(hand, scene, state, params, phase, n)
        done += n
        if progress is not None:
            progress(done, info)
    return configs(state, params), info


# (function, argument structure and shapes) compiled ahead of time in this process: jit.lower()
# traces every time it is called, so a warm-up of shapes already compiled would still cost a trace.
_compiled_ahead: set = set()
_compiled_ahead_lock = threading.Lock()


def compile_ahead(fn, *args) -> None:
    """``fn.lower(*args).compile()`` (``fn`` jitted; static arguments positionally, as its callers
    pass them), once per argument signature in this process. Arrays may be given as
    ``jax.ShapeDtypeStruct``."""
    leaves, tree = jax.tree.flatten(args)
    sig = tuple((tuple(a.shape), str(a.dtype), bool(getattr(a, "weak_type", False))) if hasattr(a, "dtype") else a
                for a in leaves)
    key = (fn, tree, sig)
    with _compiled_ahead_lock:
        if key in _compiled_ahead:
            return
    fn.lower(*args).compile()
    with _compiled_ahead_lock:
        _compiled_ahead.add(key)


def compile_run(hand: HandModel, scene: Scene, x0: jax.Array, params: StepParams, phase: Phase, num_steps: int, *,
                chunk: int = 25) -> None:
    """Compile what :func:`run` (one object) calls for these shapes, without running it: ahead of
    time (``lower().compile()`` fills the same caches a first call would), so a warm-up costs no
    steps."""
    # Static arguments positionally, as the drivers pass them (jit keys its cache on how they are passed).
    compile_ahead(init, hand, scene, x0, params, phase)
    state = jax.eval_shape(functools.partial(init_kernel, phase=phase), hand, scene, x0, params)
    if num_steps > chunk:
        compile_ahead(select, hand, scene, state, params, phase)
    for n in {min(chunk, num_steps), num_steps % chunk} - {0}:
        compile_ahead(step, hand, scene, state, params, phase, n)


# ----------------------------------------------------------------------------------------------
# The archive: best grasp per key, time to the first valid grasp, ranking (host side)
# ----------------------------------------------------------------------------------------------


def rank_key(m: dict) -> tuple:
    """Sort key of evaluated grasps, best first: valid before not valid; then higher Q1, then
    lower penetration."""
    return (not m["valid"], -m["q1"], m["penetration_mm"])


@dataclasses.dataclass
class Entry:
    """One archived grasp: its exact metrics and configuration ``(6 + I,)`` (centred frame)."""

    metrics: dict
    config: np.ndarray
    data: dict = dataclasses.field(default_factory=dict)  # a driver's own bookkeeping


class Archive:
    """The best evaluated grasp per key (a start, a chain, a squeezed copy), thread-safe.

    Every planner records its exact evaluations here; it keeps the first-valid time and step,
    counts evaluations, and ranks (:func:`rank_key`).

    Args:
        t0: ``time.perf_counter()`` at the call's start (first-valid times count from it).
    """

    def __init__(self, t0: float | None = None):
        self.t0 = time.perf_counter() if t0 is None else t0
        self.entries: dict[Hashable, Entry] = {}
        self.evaluations = 0
        self.first_valid_s: float | None = None
        self.first_valid_steps: int | None = None
        self.lock = threading.RLock()  # reentrant: a driver may call ranked() while holding it

    def record(self, key: Hashable, metrics: dict, config: np.ndarray, *, steps: int | None = None,
               **data) -> bool:
        """Count an evaluation; keep it when it ranks at least as well as ``key``'s best so far.

        Returns:
            whether it was kept.
        """
        with self.lock:
            self.evaluations += 1
            if metrics["valid"] and self.first_valid_s is None:
                self.first_valid_s, self.first_valid_steps = time.perf_counter() - self.t0, steps
            old = self.entries.get(key)
            if old is None or rank_key(metrics) <= rank_key(old.metrics):
                self.entries[key] = Entry(metrics, np.array(config), dict(data))
                return True
            return False

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.entries

    def __getitem__(self, key: Hashable) -> Entry:
        return self.entries[key]

    def ranked(self) -> list[tuple[Hashable, Entry]]:
        """``(key, entry)`` best first."""
        with self.lock:
            return sorted(self.entries.items(), key=lambda kv: rank_key(kv[1].metrics))

    def best(self, n: int) -> list[Entry]:
        """The ``n`` best entries."""
        return [e for _, e in self.ranked()[:n]]

    def stats(self) -> dict:
        """``time_to_first_valid_s``, ``steps_to_first_valid``, ``evaluations``."""
        return {"time_to_first_valid_s": self.first_valid_s, "steps_to_first_valid": self.first_valid_steps,
                "evaluations": self.evaluations}
