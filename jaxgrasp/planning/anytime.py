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
budget (the last chunk's starts, after the loop, once the jobs have finished), so that every call
returns a grasp.
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
from jaxgrasp.planning.prepared import PreparedObject
from jaxgrasp.planning.settings import PlanConfig

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


def plan_anytime(hand: HandModel, prep: PreparedObject, scene, cfg: PlanConfig,
                 num_grasps: int, time_budget: float, t0: float, progress) -> list:
    """The anytime loop of :func:`jaxgrasp.planning.api.plan_grasps` (see ``time_budget`` there).

    Args:
        t0: ``time.perf_counter()`` at the call's start (the budget counts from it).

    Returns:
        ``num_grasps`` :class:`jaxgrasp.planning.planner.GraspResult`, best first.
    """
    sch = cfg.schedule
    phase, params = P.main_phase(hand, cfg)
    # keys (round, start); squeezed grasps (round, -1 - j)
    archive = P.Archive(t0)
    squeezed: set = set()  # keys already squeezed (guarded by archive.lock)
    steps, rnd = 0, 0

    def left() -> float:  # seconds of the budget left
        return t0 + time_budget - time.perf_counter()

    def evaluation(key: tuple[int, int], x: np.ndarray, at_steps: int, in_time: bool = True) -> Callable[[], None]:
        def job() -> None:
            if in_time and left() <= 0:
                return
            m = evaluate(hand, prep, x, cfg.evaluation, extras=False)
            if in_time and left() <= 0:  # finished after the budget: not counted
                return
            archive.record(key, m, x, steps=at_steps)
        return job

    def squeeze_pass(r: int) -> Callable[[], None]:
        # The best grasps found so far that were not squeezed yet (squeezed ones included: a good
        # squeezed grasp is squeezed again after the next round), chosen when the job runs.
        def job() -> None:
            if left() <= 0:
                return
            with archive.lock:
                todo = [k for k, _ in archive.ranked() if k not in squeezed][:cfg.shapes.num_starts]
                squeezed.update(todo)
            candidates = [(archive[k].metrics, archive[k].config) for k in todo]
            for j, (m, xi) in enumerate(P.squeeze_best(hand, prep, scene, candidates, cfg, t0 + time_budget)):
                archive.record((r, -1 - j), m, xi, steps=steps)
        return job

    jobs = Jobs(sch.background)
    log.info("anytime planning, budget %.3g s (the first call with new shapes compiles inside it)", time_budget)
    try:
        while rnd == 0 or left() > 0:
            x0 = P.start_configs(hand, prep.obj, cfg, jax.random.PRNGKey(cfg.seed + rnd))
            state = engine.init(hand, scene, x0, params, phase)
            done = 0
            while done < sch.steps and (not len(archive) or left() > 0):
                n = min(sch.eval_every, sch.steps - done)
                if done and done % (2 * sch.eval_every) == 0:  # active sets: every other chunk (they move slowly)
                    state = engine.select(hand, scene, state, params, phase)
                state, info = engine.step(hand, scene, state, params, phase, n)
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
                for i in idx:
                    job = evaluation((rnd, int(i)), xs[i], steps)
                    job() if now else jobs.submit(job)
                if progress is not None:
                    progress(steps, {"total": info.total, **info.terms})
                if spent:
                    break
            if done == sch.steps and left() > 0:
                jobs.submit(squeeze_pass(rnd))
            rnd += 1
    except BaseException:  # e.g. Ctrl-C: do not run the queued jobs first
        jobs.close(cancel=True)
        raise
    jobs.close()
    if not len(archive):  # nothing was evaluated in time (the budget ran out before any job
        # finished, or after a round's last check): evaluate the last chunk's starts now, past it
        log.info("budget spent before any evaluation finished: evaluating the last starts past it")
        for i in P.starts_to_evaluate(total, done, cfg, early=False, found_valid=False):
            evaluation((rnd - 1, int(i)), xs[i], steps, in_time=False)()
    return P.archive_results(hand, prep, archive, num_grasps, cfg, t0, extra={"steps": steps})
