"""Anytime planning: the loop behind ``jaxgrasp.plan(..., time_budget=B)`` (host side).

Rounds of ``cfg.steps`` Adam steps from new starts run until the budget is spent. The exact
evaluations of the starts (:func:`jaxgrasp.planner.starts_to_evaluate` says which, after which
chunk) and the squeeze passes after each finished round (:class:`jaxgrasp.plan_config.SqueezeConfig`)
are *jobs*. With ``PlanConfig.background`` (the default) the squeeze passes, and the evaluations
once a grasp is valid, run in order on one background thread while the main thread goes on
stepping; until a grasp is valid the evaluations run at once, in turn with the steps, so a first
valid grasp found in the first round comes when the serial loop finds it. The compiled steps leave
much of the second core idle: in one run 10 steps (8 starts, sphere_7008) took 144 ms on this
2-core CPU and 165 ms pinned to one core. In another, 115 ms alone and 169 ms with exact
evaluations running beside them on a second thread, which ran at 4.1 per second
(7.1 alone); with a squeeze running beside them 181 ms, the squeezes at 80% of their speed
alone: together ~1.3-1.4x the work of running them in turn. Without ``background`` every job runs
at once, in the loop.

A job's result counts only if it finishes within the budget, so a background result never uses
time past it. Only when nothing at all was evaluated in time does the loop evaluate past the
budget (the last chunk's starts, after the loop, once the jobs have finished), so that every call
returns a grasp.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable

import jax
import numpy as np
import trimesh

from jaxgrasp import planner as P  # (planner imports this module only inside plan_grasps)
from jaxgrasp.evaluation import evaluate
from jaxgrasp.hand import HandModel
from jaxgrasp.objects import Object
from jaxgrasp.plan_config import PlanConfig


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


def plan_anytime(hand: HandModel, obj: Object, report, tm: trimesh.Trimesh, scene, cfg: PlanConfig,
                 num_grasps: int, time_budget: float, t0: float, progress) -> list:
    """The anytime loop of :func:`jaxgrasp.planner.plan_grasps` (see ``time_budget`` there).

    Args:
        t0: ``time.perf_counter()`` at the call's start (the budget counts from it).

    Returns:
        ``num_grasps`` :class:`jaxgrasp.planner.GraspResult`, best first.
    """
    scale = P.variable_scale(hand, cfg)
    # (round, start) -> best evaluation; squeezed grasps are (round, -1 - j)
    best: dict[tuple[int, int], tuple[dict, np.ndarray]] = {}
    squeezed: set[tuple[int, int]] = set()  # keys of ``best`` already squeezed
    lock = threading.Lock()  # guards best, squeezed and the counters below
    stats = {"first_valid": None, "first_valid_steps": None, "evaluations": 0}
    steps, rnd = 0, 0

    def left() -> float:  # seconds of the budget left
        return t0 + time_budget - time.perf_counter()

    def record(key: tuple[int, int], m: dict, x: np.ndarray) -> None:  # under ``lock``
        stats["evaluations"] += 1
        if m["valid"] and stats["first_valid"] is None:
            stats["first_valid"], stats["first_valid_steps"] = time.perf_counter() - t0, steps
        if key not in best or P.rank_key(m) <= P.rank_key(best[key][0]):
            best[key] = (m, x)

    def ranked() -> list[tuple[int, int]]:  # keys of ``best``, best first; under ``lock``
        return sorted(best, key=lambda k: P.rank_key(best[k][0]))

    def evaluation(key: tuple[int, int], x: np.ndarray, in_time: bool = True) -> Callable[[], None]:
        def job() -> None:
            if in_time and left() <= 0:
                return
            m = evaluate(hand, obj, x, cfg, tm, extras=False)
            if in_time and left() <= 0:  # finished after the budget: not counted
                return
            with lock:
                record(key, m, x)
        return job

    def squeeze_pass(r: int) -> Callable[[], None]:
        # The best grasps found so far that were not squeezed yet (squeezed ones included: a good
        # squeezed grasp is squeezed again after the next round), chosen when the job runs.
        def job() -> None:
            if left() <= 0:
                return
            with lock:
                todo = [k for k in ranked() if k not in squeezed][:cfg.num_starts]
                squeezed.update(todo)
                candidates = [best[k] for k in todo]
            for j, (m, xi) in enumerate(P.squeeze_best(hand, obj, tm, scene, candidates, cfg, t0 + time_budget)):
                with lock:
                    record((r, -1 - j), m, xi)
        return job

    jobs = Jobs(cfg.background)
    try:
        while rnd == 0 or left() > 0:
            y = P.start_configs(hand, obj, cfg, jax.random.PRNGKey(cfg.seed + rnd)) / scale
            if cfg.exploit > 0 and rnd > 0:
                with lock:
                    good = [best[k][1] for k in ranked() if best[k][0]["valid"]]
                y = P.exploit_starts(y, good, scale, cfg, jax.random.fold_in(jax.random.PRNGKey(cfg.seed + rnd), 1))
            state = P.make_adam(cfg).init(y)
            done = 0
            while done < cfg.steps and (not best or left() > 0):
                n = min(cfg.eval_every, cfg.steps - done)
                if done % (2 * cfg.eval_every) == 0:  # active sets: every other chunk (they move slowly)
                    si, oi = P.select_active(hand, scene, y, cfg)
                found = stats["first_valid"] is not None
                y, state, total, terms = P.run_steps(hand, scene, y, state, si, oi,
                                                     P.valid_step_config(cfg) if found else cfg, n)
                done += n
                steps += n
                xs = np.asarray(y * scale)  # (waits for the steps, so the check below sees their time)
                # The budget is spent and nothing counted yet: this is the last chunk (after the loop,
                # the jobs finish, and if they count nothing either its starts are evaluated).
                spent = not best and left() <= 0
                early = done < min(cfg.eval_from, cfg.steps)
                idx = [] if spent else P.starts_to_evaluate(np.asarray(total), done, cfg, early=early, found_valid=found)
                # Before a grasp is valid the evaluations run at once, in turn with the steps, unless
                # cfg.background_before_valid (see its docstring for what each measured).
                now = stats["first_valid"] is None and not cfg.background_before_valid
                if not now and done < cfg.steps and not jobs.idle():
                    idx = []  # a mid-round check while the last one still runs: skip it
                for i in idx:
                    job = evaluation((rnd, int(i)), xs[i])
                    job() if now else jobs.submit(job)
                if progress is not None:
                    progress(steps, {"total": total, **terms})
                if spent:
                    break
            if done == cfg.steps and left() > 0:
                jobs.submit(squeeze_pass(rnd))
            rnd += 1
    except BaseException:  # e.g. Ctrl-C: do not run the queued jobs first
        jobs.close(cancel=True)
        raise
    jobs.close()
    if not best:  # nothing was evaluated in time (the budget ran out before any job finished, or
        # after a round's last check): evaluate the last chunk's starts now, past the budget
        for i in P.starts_to_evaluate(np.asarray(total), done, cfg, early=False, found_valid=False):
            evaluation((rnd - 1, int(i)), xs[i], in_time=False)()
    elapsed = time.perf_counter() - t0
    results = [best[k] for k in ranked()]  # the jobs are closed: no lock needed
    starts = [m for m, _ in results]
    out = {"time_to_first_valid_s": stats["first_valid"], "steps_to_first_valid": stats["first_valid_steps"],
           "steps": steps, "evaluations": stats["evaluations"]}
    return [P.make_result(hand, obj, report, tm, x, {**m, **out}, starts, elapsed, cfg) for m, x in results[:num_grasps]]
