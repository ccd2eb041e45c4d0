"""Background warm-up of a planning call: what the optimization does not need, made ready beside it.

A planning call needs its compiled steps first and everything else only later: the evaluation's
pre-screening mesh (a decimation and two distance sweeps, about 1 s on a 16k-face scan), the
evaluation kernels, the reporting metrics' kernels (``evaluate_extras``: the Q1 upper bound and
the SDP lower bound) and the squeeze phase's steps. :class:`Warmup` builds and compiles (or loads
from the persistent compilation cache) those on one background thread while the calling thread
compiles and runs the steps; the optimization leaves much of a second core idle (docs/decisions.md).
The call waits for the part it needs at the point it needs it, so nothing is compiled twice.

The thread is a daemon: a budgeted call may return while it still compiles (see
:mod:`jaxgrasp.planning.anytime`); :func:`pending` lists such threads, and a command line waits for
them before it exits, so that their compiled code reaches the cache for the next run.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Callable

import jax.numpy as jnp
import numpy as np

from jaxgrasp.hand.model import HandModel
from jaxgrasp.planning.evaluation import compile_evaluation, compile_extras
from jaxgrasp.planning.objective import Scene
from jaxgrasp.planning.planner import compile_squeeze, pose_jit
from jaxgrasp.planning.prepared import PreparedObject, add_screening
from jaxgrasp.planning.settings import PlanConfig

log = logging.getLogger(__name__)

THREAD_NAME = "jaxgrasp-warmup"
COMPILE_THREAD_NAME = "jaxgrasp-compile"


class Warmup:
    """The background preparation of one planning call (see the module docstring).

    Args:
        hand: the hand.
        prep: the object, prepared without its screening mesh (``screen=False``) or with it.
        scene: the optimization scene of ``prep`` (for the squeeze phase's steps).
        x0: ``(S, 6 + I)`` the call's starts (example inputs of the kernels).
        cfg: the call's settings.
        background: False: do everything now, on the calling thread (for tests and debugging).
    """

    def __init__(self, hand: HandModel, prep: PreparedObject, scene: Scene, x0, cfg: PlanConfig, *,
                 background: bool = True):
        self.evaluation_ready = threading.Event()  # the screened object and the evaluation kernels
        self.done = threading.Event()  # everything
        self._args = (hand, prep, scene, x0, cfg)
        self.prepared_light = prep  # as given (without the screening mesh): the object itself
        self._prep: PreparedObject | None = None
        self._error: BaseException | None = None
        self._go = threading.Event()
        if background:
            threading.Thread(target=self._run, name=THREAD_NAME, daemon=True).start()
        else:
            self._go.set()
            self._run()

    def go(self) -> None:
        """Let the background work begin. The caller says when: after its steps' first chunk has
        compiled, so that the compilation on the critical path does not share the CPU (and
        Python's lock: tracing) with the warm-up. Waiting for the warm-up lets it begin too."""
        self._go.set()

    def _run(self) -> None:
        self._go.wait()
        hand, prep, scene, x0, cfg = self._args
        t = time.perf_counter()

        def done(what: str) -> None:
            nonlocal t
            log.debug("warm-up: %s in %.2f s", what, time.perf_counter() - t)
            t = time.perf_counter()

        try:
            prep = add_screening(prep)
            done("screening mesh")
            x = np.asarray(x0[0])
            compile_evaluation(hand, prep, x, cfg.evaluation, all_sizes=False)
            done("evaluation compiled")
            pose_jit(hand, jnp.asarray(x, hand.body_pos.dtype))  # packaging's pose
            self._prep = prep
            self.evaluation_ready.set()
            compile_extras(hand, prep, cfg.evaluation)
            done("reporting metrics compiled")
            compile_squeeze(hand, scene, x0, cfg)
            done("squeeze compiled")
        except BaseException as e:  # noqa: BLE001 (handed to the calling thread)
            self._error = e
        finally:
            self.evaluation_ready.set()
            self.done.set()

    def prepared(self, timeout: float | None = None) -> PreparedObject | None:
        """The object with its screening mesh once the evaluation is ready: waits up to
        ``timeout`` seconds (None: as long as it takes); None when not ready by then. Re-raises
        an error of the background work."""
        self.go()
        if not self.evaluation_ready.wait(timeout):
            return None
        if self._error is not None:
            raise self._error
        return self._prep

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for everything (None: as long as it takes); whether it
        is done. Re-raises an error of the background work."""
        self.go()
        ok = self.done.wait(timeout)
        if ok and self._error is not None:
            raise self._error
        return ok


class Heartbeat:
    """While a call runs, logs its current stage again every ``every`` seconds the stage lasts, so
    that a console or a log never stays silent longer (a first call compiles for many seconds).

    Use as a context manager; :meth:`stage` logs a new stage and restarts its clock.

    Args:
        logger: where the records go (INFO).
        every: seconds between repeats.
    """

    def __init__(self, logger: logging.Logger, every: float = 4.0):
        self._log, self._every = logger, every
        self._what, self._since = "", time.perf_counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def stage(self, msg: str, *args, announce: bool = True) -> None:
        """Log ``msg % args`` now (unless not ``announce``: the stage logs itself), and again every
        ``every`` seconds until the next stage."""
        if announce:
            self._log.info(msg, *args)
        with self._lock:
            self._what, self._since = msg % args if args else msg, time.perf_counter()

    def __enter__(self) -> "Heartbeat":
        threading.Thread(target=self._beat, name="jaxgrasp-heartbeat", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def _beat(self) -> None:
        last = time.perf_counter()  # the last record of this heartbeat or of a stage
        while not self._stop.wait(0.5):  # checks twice a second: a repeat is never late by more
            with self._lock:
                what, since = self._what, self._since
            now = time.perf_counter()
            if what and now - max(last, since) >= self._every:
                self._log.info("%s (%.0f s so far)", what, now - since)
                last = now


def pending() -> list[threading.Thread]:
    """Warm-up and compilation threads of earlier calls that are still running."""
    return [t for t in threading.enumerate() if t.name in (THREAD_NAME, COMPILE_THREAD_NAME) and t.is_alive()]


def finish_pending(report: Callable[[float], None] | None = None, every: float = 4.0) -> None:
    """Wait for :func:`pending` threads. Registered to run at interpreter exit: their compiled
    code then reaches the persistent cache, and the interpreter is not torn down under a running
    XLA compilation (which can crash it).

    Args:
        report: called with the seconds waited so far, every ``every`` seconds of waiting.
    """
    t0 = time.perf_counter()
    for t in pending():
        while t.is_alive():
            t.join(every if report is not None else None)
            if t.is_alive() and report is not None:
                report(time.perf_counter() - t0)


atexit.register(finish_pending)


def call_within(deadline: float, fn, *args):
    """``fn(*args)`` on a helper thread, waited for until ``deadline`` (``time.perf_counter()``).

    A first call with new shapes compiles, which cannot be interrupted: running it on a daemon
    thread lets the caller keep a time budget (the compilation goes on and reaches the persistent
    cache; :func:`pending` lists it).

    Returns:
        ``(True, result)``, or ``(False, None)`` when the deadline passed first.
    """
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 (handed to the caller)
            box["error"] = e

    t = threading.Thread(target=target, name=COMPILE_THREAD_NAME, daemon=True)
    t.start()
    with Heartbeat(log) as hb:
        hb.stage("compiling", announce=False)
        t.join(max(0.0, deadline - time.perf_counter()))
    if t.is_alive():
        return False, None
    if "error" in box:
        raise box["error"]
    return True, box["result"]

