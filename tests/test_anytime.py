"""Anytime planning's jobs: the background thread, and what counts within the budget."""

from __future__ import annotations

import threading
import time

import pytest
import trimesh

from jaxgrasp.hand.model import load_hand
from jaxgrasp.planning import anytime, engine, planner, warmup
from jaxgrasp.planning.anytime import BudgetSpentCompiling, Jobs
from jaxgrasp.planning.api import plan_grasps
from jaxgrasp.planning.planner import (
    PlanConfig,
    Schedule,
    Shapes,
    compile_plan,
    prepare,
)

CFG = PlanConfig(shapes=Shapes(num_starts=4), schedule=Schedule(steps=25), seed=3)  # the shapes of test_batch.py: compiled once


def test_jobs_run_in_order_on_another_thread_and_hand_back_errors():
    main = threading.get_ident()
    seen = []
    gate = threading.Event()
    jobs = Jobs(background=True)
    jobs.submit(lambda: (gate.wait(10), seen.append(("a", threading.get_ident()))))
    jobs.submit(lambda: seen.append(("b", threading.get_ident())))
    # submit() returned while the first job still waits: it runs elsewhere.
    assert seen == [] and not jobs.idle()
    gate.set()
    jobs.wait()
    assert [s for s, _ in seen] == ["a", "b"] and all(t != main for _, t in seen) and jobs.idle()
    # A failing job: the ones after it are skipped, and close() raises its error.
    jobs.submit(lambda: 1 / 0)
    jobs.submit(lambda: seen.append("after the error"))
    with pytest.raises(ZeroDivisionError):
        jobs.close()
    assert "after the error" not in seen
    # close(cancel=True) lets the running job end, skips the queued ones and raises nothing.
    jobs, gate, started = Jobs(background=True), threading.Event(), threading.Event()
    jobs.submit(lambda: (started.set(), gate.wait(10), seen.append("running")))
    jobs.submit(lambda: seen.append("queued"))
    jobs.submit(lambda: 1 / 0)
    assert started.wait(10)
    threading.Timer(0.2, gate.set).start()
    jobs.close(cancel=True)
    assert seen[-1] == "running" and "queued" not in seen
    # Without a thread a job runs before submit() returns.
    inline = Jobs(background=False)
    inline.submit(lambda: seen.append(("now", threading.get_ident())))
    assert seen[-1] == ("now", main) and inline.idle()
    inline.close()


@pytest.mark.parametrize("budget_ends_at_round_end", [False, True])
def test_background_results_finishing_after_the_budget_do_not_count(monkeypatch, budget_ends_at_round_end):
    """Evaluations on the background thread are made to end after the budget: none may count.
    The call still returns grasps, all from evaluations on the main thread. With
    ``budget_ends_at_round_end`` the budget runs out just after round 0's last in-time check
    (the progress callback sleeps past it), so the loop ends with nothing counted in time."""
    hand = load_hand("shadow")
    prep = prepare(trimesh.creation.icosphere(subdivisions=2, radius=0.035), CFG)
    obj = prep.obj
    compile_plan(hand, prep, CFG)
    budget = 3.0
    calls = {"main": 0, "background": 0}
    real = planner.evaluate

    def slow_in_background(*args, **kw):
        where = "main" if threading.current_thread() is threading.main_thread() else "background"
        calls[where] += 1
        if where == "background":
            threading.Event().wait(budget + 0.5)  # ends after the budget whenever it started
        return {**real(*args, **kw), "thread": where}

    # Both names the loop evaluates by: its own, and the planner's (squeeze passes).
    monkeypatch.setattr(anytime, "evaluate", slow_in_background)
    monkeypatch.setattr(planner, "evaluate", slow_in_background)
    t_call = time.perf_counter()  # (the budget counts from a little later, inside the call)

    def sleep_past_budget_at_round_end(step, terms):
        if budget_ends_at_round_end and step == CFG.schedule.steps:
            assert time.perf_counter() < t_call + budget, "round 0 was too slow for this test"
            time.sleep(t_call + budget + 0.2 - time.perf_counter())

    results = plan_grasps((obj, None), hand, config=CFG, time_budget=budget, progress=sleep_past_budget_at_round_end)
    assert len(results) == 1
    r = results[0]
    assert calls["background"] >= 1  # the first round ended in time: its squeeze ran on the thread
    assert r.starts and all(m["thread"] == "main" for m in r.starts)
    assert r.metrics["evaluations"] <= calls["main"]


def _compiled_sphere(hand):
    prep = prepare(trimesh.creation.icosphere(subdivisions=2, radius=0.035), CFG)
    compile_plan(hand, prep, CFG)
    return prep


def test_a_budget_spent_compiling_the_steps_raises_at_the_budget(monkeypatch):
    """The steps' first call is made to take 6 s, as a cold compilation would: a call with a 1 s
    budget raises BudgetSpentCompiling at about 1 s (the compilation goes on elsewhere), instead of
    returning after it."""
    hand = load_hand("shadow")
    prep = _compiled_sphere(hand)
    real = engine.step

    def cold(*args):
        time.sleep(6.0)
        return real(*args)

    cold.lower = real.lower  # the warm-up's ahead-of-time compilation of the squeeze uses it
    monkeypatch.setattr(engine, "step", cold)
    t = time.perf_counter()
    with pytest.raises(BudgetSpentCompiling, match="compiling .the steps"):
        plan_grasps(prep, hand, config=CFG, time_budget=1.0)
    assert time.perf_counter() - t < 1.0 + anytime.OVERTIME_S + 0.5


def test_a_budget_spent_before_the_evaluation_is_ready_raises_and_without_extras_returns(monkeypatch):
    """The warm-up's evaluation is made to be ready only after 8 s: a 1.5 s call steps, waits at
    most OVERTIME_S past its budget and raises (nothing could be evaluated). With the evaluation
    ready and only the reporting metrics slow, the call returns in time with them left out (None)."""
    hand = load_hand("shadow")
    prep = _compiled_sphere(hand)
    real_screen, real_extras = warmup.add_screening, warmup.compile_extras
    monkeypatch.setattr(warmup, "add_screening", lambda p: (time.sleep(8.0), real_screen(p))[1])
    t = time.perf_counter()
    with pytest.raises(BudgetSpentCompiling, match="the evaluation"):
        plan_grasps(prep.obj, hand, config=CFG, time_budget=1.5)
    assert time.perf_counter() - t < 1.5 + anytime.OVERTIME_S + 1.0
    monkeypatch.setattr(warmup, "add_screening", real_screen)
    monkeypatch.setattr(warmup, "compile_extras", lambda *a: (time.sleep(8.0), real_extras(*a))[1])
    t = time.perf_counter()
    r = plan_grasps(prep.obj, hand, config=CFG, time_budget=2.0)[0]
    assert time.perf_counter() - t < 2.0 + anytime.OVERTIME_S + 1.0
    assert r.metrics["q1_generalized_upper"] is None and r.metrics["q1_generalized"] is None and r.metrics["evaluations"] >= 1
    # The same call without the delay has them.
    monkeypatch.setattr(warmup, "compile_extras", real_extras)
    r = plan_grasps(prep.obj, hand, config=CFG, time_budget=2.0)[0]
    assert isinstance(r.metrics["q1_generalized_upper"], float) and isinstance(r.metrics["q1_generalized"], float)
