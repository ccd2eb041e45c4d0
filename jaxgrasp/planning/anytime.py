"""Anytime planning: the loop behind ``jaxgrasp.plan(..., time_budget=B)`` (host side).

Rounds of ``schedule.steps`` steps of the engine (:mod:`jaxgrasp.planning.engine`) from new starts run
until the budget is spent. The exact evaluations of the starts
(:func:`jaxgrasp.planning.planner.starts_to_evaluate` says which, after which chunk) and the squeeze passes
after each finished round are *jobs*, recorded into one :class:`~jaxgrasp.planning.engine.Archive`. With
``Schedule.background`` (the default) they run in order on one background thread while the main
thread goes on stepping: the compiled steps leave much of the second core idle (measurements:
docs/decisions.md, "Anytime planning"). Without it every job runs at once, in the loop.

A job's result counts only if it finishes within the budget, so a background result never uses
time past it. Only when nothing at all was evaluated in time does the loop evaluate past the
budget (the last chunk's lowest-loss starts, after the loop, once the jobs have finished), so that
every call that got its steps compiled returns a grasp; what else may run past the budget, and for
how long, is in :func:`plan_anytime`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

import jax
import numpy as np

from jaxgrasp.hand.model import HandModel
from jaxgrasp.planning import engine
from jaxgrasp.planning import planner as P
from jaxgrasp.planning.evaluation import evaluate
from jaxgrasp.planning.settings import PlanConfig
from jaxgrasp.planning.warmup import Warmup, call_within

log = logging.getLogger(__name__)


class Jobs:
    """Runs jobs (callables without arguments) at once, or in order on one background thread.

    Args:
        background: False: :meth:`submit` runs the job before it returns.
    """

    def __init__(self, background: bool):
        self.busy = 0  # jobs submitted and not finished
        self.error: BaseException | None = None
        self._cancelled = False
        self._cv = threading.Condition()
        self._queue: queue.SimpleQueue | None = None
        if background:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._work, name="jaxgrasp-anytime-jobs", daemon=True)
            self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        if self._queue is None:
            job()
            return
        with self._cv:
            self.busy += 1
        self._queue.put(job)

    def idle(self) -> bool:
        """No job waiting or running."""
        return self.busy == 0

    def wait(self) -> None:
        """Block until every submitted job has finished; re-raise a job's error."""
        with self._cv:
            self._cv.wait_for(lambda: self.busy == 0)
        if self.error is not None:
            raise self.error

    def close(self, cancel: bool = False) -> None:
        """Finish the queued jobs (a job skips itself when the budget is spent), stop the thread,
        re-raise a job's error. ``cancel``: skip the queued jobs instead (only the running one
        ends) and raise nothing (the caller is already unwinding an error or an interrupt)."""
        self._cancelled = cancel
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
        if self.error is not None and not cancel:
            raise self.error

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                # After a failure the rest are skipped (close() raises it); after a cancel, too.
                if self.error is None and not self._cancelled:
                    job()
            except BaseException as e:  # noqa: BLE001 (handed to the main thread)
                self.error = e
            finally:
                with self._cv:
                    self.busy -= 1
                    self._cv.notify_all()


class BudgetSpentCompiling(TimeoutError):
    """A budgeted call spent its whole budget (and :data:`OVERTIME_S`) compiling: no grasp could be
    evaluated. The compilation goes on in the background and its code is cached."""


# The most a budgeted call waits past its budget for code still compiling (the evaluation when
# nothing was evaluated yet, the reporting metrics when packaging) before it gives up on it.
OVERTIME_S = 0.5


def plan_anytime(hand: HandModel, warm: Warmup, scene, cfg: PlanConfig, num_grasps: int, time_budget: float,
                 t0: float, progress) -> list:
    """The anytime loop of :func:`jaxgrasp.planning.api.plan_grasps` (see ``time_budget`` there).

    A budget is a promise: the steps' first calls (which compile) run on a helper thread
    (:func:`~jaxgrasp.planning.warmup.call_within`) so the loop never waits for a compilation past
    the budget; evaluations wait for the background warm-up (``warm``) without blocking the steps.
    Past the budget the call only finishes the chunk of steps in flight, evaluates the lowest-loss
    starts when nothing was evaluated in time (waiting at most :data:`OVERTIME_S` for the evaluation
    to compile) and packages the results (without the reporting metrics of
    :func:`~jaxgrasp.planning.evaluation.evaluate_extras` when they are still compiling then).

    Args:
        warm: the call's :class:`~jaxgrasp.planning.warmup.Warmup`.
        t0: ``time.perf_counter()`` at the call's start (the budget counts from it).

    Returns:
        ``num_grasps`` :class:`jaxgrasp.planning.planner.GraspResult`, best first.

    Raises:
        BudgetSpentCompiling: nothing could be evaluated (the budget went on compilation).
    """
    sch = cfg.schedule
    deadline = t0 + time_budget
    phase, params = P.main_phase(hand, cfg)
    # keys (round, start); squeezed grasps (round, -1 - j)
    archive = P.Archive(t0)
    squeezed: set = set()  # keys already squeezed (guarded by archive.lock)
    compiled: set = set()  # engine calls that ran once (compiled) in this call
    steps, rnd = 0, 0
    xs = total = None  # the last chunk's configurations and losses

    def left() -> float:  # seconds of the budget left
        return deadline - time.perf_counter()

    def call(name: str, fn, *args):
        """``fn(*args)``; its first call (a compilation, or a lookup when compiled already) on a
        helper thread, waited for until OVERTIME_S past the budget. None when that ran out first."""
        if name in compiled:
            return fn(*args)
        ok, out = call_within(deadline + OVERTIME_S, fn, *args)
        if not ok:
            log.info("budget spent while compiling the steps (the compiled code is cached for the next call)")
            return None
        compiled.add(name)
        return out

    def evaluation(key: tuple[int, int], x: np.ndarray, at_steps: int) -> Callable[[], None]:
        def job() -> None:
            if left() <= 0:
                return
            prep = warm.prepared(timeout=max(left(), 0.0))
            if prep is None or left() <= 0:
                return
            m = evaluate(hand, prep, x, cfg.evaluation, extras=False)
            if left() <= 0:  # finished after the budget: not counted
                return
            archive.record(key, m, x, steps=at_steps)
        return job

    def squeeze_pass(r: int) -> Callable[[], None]:
        # The best grasps found so far that were not squeezed yet (squeezed ones included: a good
        # squeezed grasp is squeezed again after the next round), chosen when the job runs.
        def job() -> None:
            if not warm.wait(max(left(), 0.0)) or left() <= 0:  # the squeeze's steps compile in the warm-up
                return
            with archive.lock:
                todo = [k for k, _ in archive.ranked() if k not in squeezed][:cfg.shapes.num_starts]
                squeezed.update(todo)
            candidates = [(archive[k].metrics, archive[k].config) for k in todo]
            for j, (m, xi) in enumerate(P.squeeze_best(hand, warm.prepared(), scene, candidates, cfg, deadline)):
                archive.record((r, -1 - j), m, xi, steps=steps)
        return job

    jobs = Jobs(sch.background)
    log.info("anytime planning, budget %.3g s", time_budget)
    try:
        while rnd == 0 or left() > 0:
            x0 = P.start_configs(hand, warm.prepared_light.obj, cfg, jax.random.PRNGKey(cfg.seed + rnd))
            state = call("init", engine.init, hand, scene, x0, params, phase)
            done = 0
            while state is not None and done < sch.steps and (not len(archive) or left() > 0):
                n = min(sch.eval_every, sch.steps - done)
                if done and done % (2 * sch.eval_every) == 0:  # active sets: every other chunk (they move slowly)
                    state = call("select", engine.select, hand, scene, state, params, phase)
                    if state is None:
                        break
                out = call(f"step{n}", engine.step, hand, scene, state, params, phase, n)
                if out is None:
                    state = None
                    break
                state, info = out
                warm.go()  # the steps have compiled: the warm-up may use the CPU now
                done += n
                steps += n
                xs = np.asarray(engine.configs(state, params))  # (waits for the steps: the check below sees their time)
                total = np.asarray(info.total)
                # The budget is spent and nothing counted yet: this is the last chunk (after the loop,
                # the jobs finish, and if they count nothing either its starts are evaluated).
                spent = not len(archive) and left() <= 0
                found = archive.first_valid_s is not None
                early = done < min(sch.eval_from, sch.steps)
                idx = [] if spent else P.starts_to_evaluate(total, done, cfg, early=early, found_valid=found)
                # Before a grasp is valid the evaluations run at once, in turn with the steps, unless
                # schedule.background_before_valid (docs/decisions.md has what each measured).
                now = not found and not sch.background_before_valid
                if not now and done < sch.steps and not jobs.idle():
                    idx = []  # a mid-round check while the last one still runs: skip it
                if done < sch.steps and not warm.evaluation_ready.is_set():
                    idx = []  # the evaluation is still being prepared: do not queue behind it
                for i in idx:
                    job = evaluation((rnd, int(i)), xs[i], steps)
                    job() if now else jobs.submit(job)
                if progress is not None:
                    progress(steps, {"total": info.total, **info.terms})
                if spent:
                    break
            if state is None:
                break
            if done == sch.steps and left() > 0:
                jobs.submit(squeeze_pass(rnd))
            rnd += 1
    except BaseException:  # e.g. Ctrl-C: do not run the queued jobs first
        jobs.close(cancel=True)
        raise
    jobs.close()
    if not len(archive):  # nothing was evaluated in time: evaluate the last chunk's best starts now,
        # past the budget, if the evaluation is ready (or becomes ready within OVERTIME_S)
        prep = warm.prepared(timeout=max(left(), 0.0) + OVERTIME_S)
        if xs is None or prep is None:
            raise BudgetSpentCompiling(
                f"the time budget ({time_budget:g} s) was spent compiling ({'the steps' if xs is None else 'the evaluation'}); "
                "the compiled code is cached: call again, or give a larger budget")
        best = np.argsort(total)[:max(sch.eval_top, num_grasps)]
        log.info("budget spent before any evaluation finished: evaluating the %d best starts past it", len(best))
        for i in best:
            m = evaluate(hand, prep, xs[i], cfg.evaluation, extras=False)
            archive.record((rnd - 1 if rnd else 0, int(i)), m, xs[i], steps=steps)
    extras = warm.wait(max(left(), 0.0) + OVERTIME_S)
    if not extras:
        log.info("the reporting metrics (q1_generalized and its bounds) are still compiling: left out")
    return P.archive_results(hand, warm.prepared(), archive, num_grasps, cfg, t0, extra={"steps": steps},
                             extras=extras)
