"""The planner's entry points: :func:`plan` and :func:`plan_grasps` (fixed-step or anytime).

A fixed-step call runs one round of the engine (:mod:`jaxgrasp.planning.engine`) from the starts,
evaluates every start exactly into an :class:`~jaxgrasp.planning.engine.Archive`, squeezes the best
(and refines them with ``schedule.refine_steps``); a call with a ``time_budget`` runs the anytime
loop (:mod:`jaxgrasp.planning.anytime`).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import jax
import numpy as np

from jaxgrasp.hand.model import HandModel, load_hand
from jaxgrasp.planning.anytime import plan_anytime
from jaxgrasp.planning.engine import Archive
from jaxgrasp.planning.planner import (
    GraspResult,
    archive_results,
    evaluate_starts,
    loss_hand,
    make_scene,
    optimize,
    prepare,
    refine,
    squeeze_archive,
    start_configs,
)
from jaxgrasp.planning.settings import PlanConfig, with_starts
from jaxgrasp.planning.warmup import Heartbeat, Warmup

log = logging.getLogger(__name__)


def plan_grasps(mesh, hand: str | HandModel = "shadow", *, num_grasps: int = 1, config: PlanConfig | None = None,
                units: str = "m", progress: Callable[[int, dict], None] | None = None,
                time_budget: float | None = None) -> list[GraspResult]:
    """Plan grasps of a raw triangle mesh with the differentiable loss (paper VI.A).

    Args:
        mesh: a mesh file path, a ``trimesh.Trimesh``, a loaded object (``load_object``'s
            ``(Object, LoadReport)`` or an ``Object``) or a prepared one
            (:func:`jaxgrasp.planning.planner.prepare`), in any frame; ``units`` scales files.
        hand: a bundled hand name, a hand file, or a loaded :class:`HandModel`.
        num_grasps: how many grasps to return (from distinct starts, best first).
        config: planner settings (:class:`PlanConfig`); ``num_starts`` is raised to
            ``num_grasps`` if smaller.
        units: unit of the mesh coordinates ("m", "cm", "mm") for paths and trimesh meshes.
        progress: called as ``progress(step, terms)`` after every chunk of steps.
        time_budget: anytime planning (:mod:`jaxgrasp.planning.anytime`): seconds of wall-clock time for
            the whole call (set-up, compilation on the first call with new shapes, steps,
            evaluation); rounds from new starts run until it is spent. The call returns within
            the budget plus the chunk of steps in flight, the evaluation of a few starts when
            none was evaluated in time, and the packaging (see ``plan_anytime``); when the budget
            went on compilation it raises ``BudgetSpentCompiling`` (a ``TimeoutError``). None:
            one round of ``schedule.steps``, every start evaluated, the best squeezed (and refined).

    Returns:
        ``num_grasps`` :class:`GraspResult` in the mesh's input frame: valid grasps first by
        exact Q1, then the others by penetration. ``metrics`` add ``time_to_first_valid_s``
        (from the call's start to the end of the evaluation that first found a valid grasp;
        None if none), ``steps_to_first_valid`` and ``evaluations`` (and with a budget
        ``steps``). A squeezed grasp's ``metrics`` have ``"squeezed": True``.
    """
    cfg = with_starts(config or PlanConfig(), num_grasps)
    t0 = time.perf_counter()
    hand_model = hand if isinstance(hand, HandModel) else load_hand(hand)
    hand_model = loss_hand(hand_model, cfg)
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be > 0 seconds (or None), got {time_budget}")
    # The evaluation's screening mesh and compiled kernels are made ready beside the steps.
    light = prepare(mesh, cfg, units=units, screen=False)
    scene = make_scene(light, cfg, dtype=hand_model.body_pos.dtype)
    x0 = start_configs(hand_model, light.obj, cfg, jax.random.PRNGKey(cfg.seed))
    warm = Warmup(hand_model, light, scene, x0, cfg, background=cfg.schedule.background)
    if time_budget is not None:
        return plan_anytime(hand_model, warm, scene, cfg, num_grasps, time_budget, t0, progress)
    archive = Archive(t0)
    with Heartbeat(log) as hb:
        hb.stage("optimizing %d starts for %d steps (the first call with new shapes compiles)",
                 cfg.shapes.num_starts, cfg.schedule.steps)
        def chunk_done(step: int, terms: dict) -> None:
            warm.go()  # the first chunk has compiled: the warm-up may use the CPU now
            if progress is not None:
                progress(step, terms)

        x, _ = optimize(hand_model, scene, x0, cfg, progress=chunk_done)
        if not warm.evaluation_ready.is_set():
            hb.stage("waiting for the evaluation to be prepared (screening mesh, compiled kernels)")
        prep = warm.prepared()
        hb.stage("evaluating %d grasps exactly", len(x), announce=False)
        evaluate_starts(hand_model, prep, np.asarray(x), cfg, archive)
        if not warm.done.is_set():
            hb.stage("waiting for the squeeze phase and the reporting metrics to compile")
        warm.wait()
        hb.stage("squeezing and evaluating the grasps", announce=False)
        squeeze_archive(hand_model, prep, scene, [k for k, _ in archive.ranked()], cfg, archive)
        refine(hand_model, prep, scene, [k for k, _ in archive.ranked()[:num_grasps]], cfg, archive)
        hb.stage("packaging %d grasps (reporting metrics)", num_grasps, announce=False)
        return archive_results(hand_model, prep, archive, num_grasps, cfg, t0)


def plan(mesh, hand: str | HandModel = "shadow", *, config: PlanConfig | None = None, units: str = "m",
         progress: Callable[[int, dict], None] | None = None, time_budget: float | None = None) -> GraspResult:
    """The best grasp of a raw triangle mesh (see :func:`plan_grasps` for the arguments)."""
    return plan_grasps(mesh, hand, num_grasps=1, config=config, units=units, progress=progress,
                       time_budget=time_budget)[0]
