"""``jaxgrasp.planning.baseline``: a GraspIt!-style simulated-annealing grasp planner (the comparison baseline).

The baseline of the paper (GraspIt!'s eigengrasp planner, Ciocarlie & Allen, ref [36]) anneals the
hand configuration against a gradient-free *contact energy*. This module re-implements it over
exactly the same problem as :mod:`jaxgrasp.planning.planner`: the same hand model, the same ``(6 + I)``
configuration (:func:`jaxgrasp.hand.kinematics.pose_hand`), the same starts
(:func:`jaxgrasp.planning.planner.initial_configs`), the same decimated optimization scene
(:func:`jaxgrasp.planning.planner.make_scene`), the same exact evaluation
(:func:`jaxgrasp.planning.planner.evaluate`) and the same result type, so both planners can be compared at
equal wall-clock time and written with :func:`jaxgrasp.planning.grasp_io.grasp_to_dict`
(``planner="annealing"``).

The energy, the cooling schedule, the proposals and the jitted steps of the chains are in
:mod:`jaxgrasp.planning.anneal`; this module holds the settings and the host-side driver. After a
cycle, if time is left, chains are re-heated from their best states (``restart="best"``) or from
fresh starts (``"fresh"``).

Anytime: with ``time_budget`` the loop runs chunks of steps until the budget is spent,
evaluating the chains' new best states exactly (host side) between chunks, and returns the best
grasps found; each result's ``metrics`` hold ``time_to_first_valid_s`` (``None`` if no valid
grasp was found) and the search statistics. Without a budget, ``cycles`` cycles run and every
chain's best state is evaluated (deterministic under ``seed``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

# Re-exported (tests/test_baseline.py uses them from here): the energy and the schedule of the
# kernels, and the proposals' rotation composition (jaxgrasp.core.lie.compose_rotvec).
from jaxgrasp.core.lie import compose_rotvec as compose_rotation  # noqa: F401
from jaxgrasp.hand.model import HandModel, load_hand
from jaxgrasp.planning import planner
from jaxgrasp.planning.anneal import (  # noqa: F401
    AnnealParams,
    AnnealWeights,
    ChainState,
    anneal_steps,
    batch_energy,
    init_chains,
    temperature,
)
from jaxgrasp.planning.engine import Archive
from jaxgrasp.planning.settings import EvalConfig, Shapes, StartConfig


@dataclasses.dataclass(frozen=True)
class AnnealConfig:
    """Annealing settings (lengths in metres, angles in radians).

    Attributes:
        chains: annealing chains run together, one per start (``planner.initial_configs`` with
            ``PRNGKey(seed)``, as the planner: the same starts when ``chains == num_starts``).
        steps: steps of one annealing cycle (the cooling schedule's length).
        cycles: cycles run without a time budget (with one: until the budget is spent).
        restart: after a cycle, re-heat from each chain's best state (``"best"``) or from new
            starts with fresh rolls (``"fresh"``).
        t_start, t_end: temperature at the first and last step of a cycle (energy units).
        schedule_dims: ``D`` of GraspIt!'s ``T0 exp(-c k^(1/D))`` (GraspIt!: 8).
        k0_fraction: the schedule's start offset ``k0`` as a fraction of ``steps``
            (GraspIt!: 30000 / 70000).
        step_translation: proposal std of the palm translation at ``t_start`` [m].
        step_rotation: proposal std of the palm rotation at ``t_start`` [rad].
        step_joint: proposal std of the independent joints at ``t_start`` [fraction of range].
        min_step_fraction: the proposal stds never shrink below this fraction.
        hard_penetration: proposals whose deepest (approximate) penetration or self-penetration
            exceeds this [m] are rejected (None: penalty only).
        weights: energy weights.
        opt_faces: the object is decimated to at most this many faces for the energy.
        object_samples: object surface points checked against the hand's link hulls.
        hand_samples: the first (farthest-point ordered) hand samples checked against the object.
        self_samples: the first hand samples checked for self-collision.
        chunk: steps per jitted call (between exact evaluations).
        eval_per_round: at most this many chain bests evaluated exactly between chunks.
        eval_fraction: with a time budget, exact evaluations between chunks may take at most this
            fraction of the elapsed time.
        evaluation: the contact model and validity (:class:`jaxgrasp.planning.settings.EvalConfig`,
            the planner's own).
        starts: the starts' layout (:class:`jaxgrasp.planning.settings.StartConfig`, the planner's).
        seed: PRNG seed (starts, proposals, acceptance).
    """

    chains: int = 8
    steps: int = 600
    cycles: int = 1
    restart: str = "best"
    t_start: float = 3.0
    t_end: float = 0.1
    schedule_dims: int = 8
    k0_fraction: float = 0.43
    step_translation: float = 0.005
    step_rotation: float = 0.08
    step_joint: float = 0.05
    min_step_fraction: float = 0.1
    hard_penetration: float | None = 0.0008
    weights: AnnealWeights = dataclasses.field(default_factory=AnnealWeights)
    opt_faces: int = 512
    object_samples: int = 128
    hand_samples: int = 979
    self_samples: int = 128
    chunk: int = 25
    eval_per_round: int = 4
    eval_fraction: float = 0.3
    evaluation: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    starts: StartConfig = dataclasses.field(default_factory=StartConfig)
    seed: int = 0

    def __post_init__(self):
        if self.restart not in ("best", "fresh"):
            raise ValueError(f"AnnealConfig.restart must be 'best' or 'fresh', got {self.restart!r}")
        if not (self.t_start > 0 and self.t_end > 0):
            raise ValueError(f"temperatures must be > 0, got t_start={self.t_start}, t_end={self.t_end}")
        if self.chains < 1 or self.steps < 1 or self.chunk < 1 or self.cycles < 1:
            raise ValueError("chains, steps, chunk and cycles must be >= 1")
        if self.steps % self.chunk:
            raise ValueError(f"AnnealConfig.steps ({self.steps}) must be a multiple of chunk ({self.chunk}): "
                             "every jitted call runs one chunk of steps")


def anneal_params(cfg: AnnealConfig, hand: HandModel) -> AnnealParams:
    """:class:`AnnealParams` of a config, in the hand model's dtype."""
    f = lambda v: jnp.asarray(v, hand.body_pos.dtype)
    return AnnealParams(
        t_start=f(cfg.t_start), t_end=f(cfg.t_end), steps=f(cfg.steps), k0=f(cfg.k0_fraction * cfg.steps),
        inv_dims=f(1.0 / cfg.schedule_dims), step_translation=f(cfg.step_translation),
        step_rotation=f(cfg.step_rotation), step_joint=f(cfg.step_joint), min_step_fraction=f(cfg.min_step_fraction),
        hard_penetration=f(np.inf if cfg.hard_penetration is None else cfg.hard_penetration),
        weights={k: f(v) for k, v in cfg.weights.as_dict().items()}, beta=f(cfg.evaluation.beta), mu=f(cfg.evaluation.mu),
        contact_tolerance=f(cfg.evaluation.contact_tolerance), contact_cos=f(cfg.evaluation.contact_cos),
        hand_samples=min(cfg.hand_samples, hand.num_samples), self_samples=min(cfg.self_samples, hand.num_samples))


def anneal_scene(hand: HandModel, prep: planner.PreparedObject, cfg: AnnealConfig) -> planner.Scene:
    """The energy's scene (``planner.make_scene`` with ``opt_faces`` and ``object_samples`` of
    ``cfg``), padded to one face count for every object so the energy compiles once per hand."""
    scene_cfg = planner.PlanConfig(shapes=Shapes(opt_faces=cfg.opt_faces, object_samples=cfg.object_samples),
                                   evaluation=cfg.evaluation, seed=cfg.seed)
    return planner.make_scene(prep, scene_cfg, dtype=hand.body_pos.dtype, pad_faces=planner.face_bucket(cfg.opt_faces))


class _Evaluations:
    """The exact evaluations of chain bests into an :class:`~jaxgrasp.planning.engine.Archive` keyed by
    chain (``data["energy"]``: the chain's energy there), and their time."""

    def __init__(self, hand: HandModel, prep: planner.PreparedObject, cfg: AnnealConfig, t0: float):
        self.hand, self.prep, self.cfg = hand, prep, cfg
        self.archive = Archive(t0)
        self.seconds = 0.0

    def run(self, chain: int, x: np.ndarray, e: float) -> None:
        t = time.perf_counter()
        m = planner.evaluate(self.hand, self.prep, x, self.cfg.evaluation, extras=False)
        self.seconds += time.perf_counter() - t
        self.archive.record(chain, m, x, energy=e)

    def mean_seconds(self) -> float:
        n = self.archive.evaluations
        return self.seconds / n if n else 0.3  # ~0.3 s on a 2-core CPU


def _candidates(best_e: np.ndarray, diag: dict, cfg: AnnealConfig, last: np.ndarray, promising_only: bool) -> list[int]:
    """Chains worth an exact evaluation, most promising first: their best state changed since
    they were last evaluated; those that look valid on the decimated mesh (two contacts,
    penetration within the limit) first (or only), each group by energy."""
    changed = np.isfinite(best_e) & (best_e < last)
    looks_valid = (np.asarray(diag["touching"]) >= 2) & (np.asarray(diag["max_pen"]) <= cfg.evaluation.max_penetration)
    order = np.lexsort((best_e, ~looks_valid))
    return [int(c) for c in order if changed[c] and (looks_valid[c] or not promising_only)]


def anneal_grasps(mesh, hand: str | HandModel = "shadow", *, num_grasps: int = 1, config: AnnealConfig | None = None,
                  units: str = "m", time_budget: float | None = None,
                  progress: Callable[[int, dict], None] | None = None) -> list[planner.GraspResult]:
    """Plan grasps by simulated annealing (the GraspIt!-style baseline; see the module docstring).

    Args:
        mesh: a mesh path, ``trimesh.Trimesh``, ``Object`` or ``(Object, LoadReport)``
            (as :func:`jaxgrasp.planning.planner.as_object`).
        hand: a bundled hand name, a hand file or a :class:`HandModel`.
        num_grasps: grasps to return (from distinct chains, best first); ``chains`` is raised to
            it if smaller.
        config: :class:`AnnealConfig`.
        units: unit of the mesh coordinates for paths and trimesh meshes.
        time_budget: seconds of wall-clock time for the whole call (set-up, JIT compilation on
            the first call with new shapes, annealing and exact evaluation). None: run
            ``cycles`` cycles, then evaluate every chain's best state.
        progress: called as ``progress(steps_done, info)`` after every chunk, ``info`` with
            ``best_e`` (per chain), ``evaluated``, ``valid`` and ``elapsed`` (seconds).

    Returns:
        ``num_grasps`` :class:`jaxgrasp.planning.planner.GraspResult` (input frame), valid first by exact
        Q1, then by penetration (``planner.rank_key``); ``starts`` holds every evaluated chain's
        metrics. ``metrics`` add ``time_to_first_valid_s`` (seconds from the call's start to the
        end of the evaluation that first found a valid grasp; None if none was found),
        ``anneal_steps``, ``anneal_evaluations``, ``acceptance_rate`` and ``energy``.
    """
    t0 = time.perf_counter()
    cfg = config or AnnealConfig()
    if cfg.chains < num_grasps:
        cfg = dataclasses.replace(cfg, chains=num_grasps)
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be > 0 seconds (or None), got {time_budget}")
    hand_model = hand if isinstance(hand, HandModel) else load_hand(hand)
    prep = planner.prepare_object(mesh, units=units, opt_faces=cfg.opt_faces)
    obj = prep.obj
    scene = anneal_scene(hand_model, prep, cfg)
    p = anneal_params(cfg, hand_model)
    # The planner's starts (same key use as api.plan_grasps: equal with chains == num_starts).
    x0 = planner.initial_configs(hand_model, float(obj.size), cfg.chains, jax.random.PRNGKey(cfg.seed),
                                 opening=cfg.starts.opening, standoff=cfg.starts.standoff,
                                 axes=planner.principal_axes(obj))
    pivot = jnp.asarray(planner.grasp_point(hand_model, cfg.starts.opening), hand_model.body_pos.dtype)
    state = init_chains(x0, jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1))
    ev = _Evaluations(hand_model, prep, cfg, t0)
    last = np.full(cfg.chains, np.inf)  # best energy of each chain at its last evaluation

    def evaluate_round(limit: int | None, final: bool) -> None:
        """Exact evaluation of the chain bests that changed since their last evaluation. With a
        budget: within it; between chunks only those that look valid, at most ``limit``, and
        within ``eval_fraction`` of the elapsed time."""
        best_x, best_e = np.asarray(state.best_x), np.asarray(state.best_e)
        diag = jax.tree.map(np.asarray, state.best_terms)
        for c in _candidates(best_e, diag, cfg, last, promising_only=time_budget is not None and not final)[:limit]:
            if time_budget is not None:
                now = time.perf_counter() - t0
                if now + ev.mean_seconds() > time_budget:
                    break
                if not final and ev.seconds + ev.mean_seconds() > cfg.eval_fraction * now:
                    break
            ev.run(c, best_x[c], float(best_e[c]))
            last[c] = best_e[c]

    done, i, cycle, chunk_s = 0, 0, 0, 0.0
    while True:
        if time_budget is None and cycle >= cfg.cycles:
            break
        if time_budget is not None:
            # Stop when the next chunk (timed on the previous ones) and the evaluations still
            # owed (num_grasps results) would not fit in the budget.
            owed = max(num_grasps - len(ev.archive), 0) * ev.mean_seconds()
            if time.perf_counter() - t0 + chunk_s + owed > time_budget:
                break
        t_c = time.perf_counter()
        state = jax.block_until_ready(anneal_steps(hand_model, scene, state, pivot, jnp.asarray(i), p, cfg.chunk))
        # The last chunk's time predicts the next; not the first one's, which may include JIT
        # compilation (so a cold call still runs a second chunk if any time is left).
        chunk_s = time.perf_counter() - t_c if done else 0.0
        done, i = done + cfg.chunk, i + cfg.chunk
        if time_budget is not None:
            evaluate_round(cfg.eval_per_round, final=False)
        if progress is not None:
            progress(done, {"best_e": np.asarray(state.best_e), "evaluated": len(ev.archive),
                            "valid": sum(e.metrics["valid"] for e in ev.archive.entries.values()),
                            "elapsed": time.perf_counter() - t0})
        if i >= cfg.steps:
            i, cycle = 0, cycle + 1
            if cfg.restart == "fresh" and time_budget is None:
                evaluate_round(None, final=True)  # the bests are about to be replaced
            state = _restart(hand_model, state, obj, cfg, cycle)
            if cfg.restart == "fresh":
                last[:] = np.inf

    evaluate_round(None, final=True)
    best_x, best_e = np.asarray(state.best_x), np.asarray(state.best_e)
    # At least num_grasps evaluated chains (this may overrun a tiny budget by their cost).
    for c in np.argsort(best_e):
        if len(ev.archive) >= num_grasps:
            break
        if int(c) not in ev.archive:
            ev.run(int(c), best_x[c], float(best_e[c]))
    acc_rate = float(np.asarray(state.accepted).sum()) / max(done * cfg.chains, 1)
    extra = {"anneal_steps": int(done), "anneal_evaluations": int(ev.archive.evaluations), "acceptance_rate": acc_rate}
    ranked = ev.archive.ranked()
    out = planner.archive_results(hand_model, prep, ev.archive, num_grasps, cfg.evaluation, t0, extra)
    for r, (_, e) in zip(out, ranked):
        r.metrics["energy"] = float(e.data["energy"])
    return out


def _restart(hand, state: ChainState, obj, cfg: AnnealConfig, cycle: int) -> ChainState:
    """Chains for the next cycle: re-heated at their best states, or at fresh starts."""
    if cfg.restart == "best":
        return init_chains(state.best_x, state.key).replace(
            best_x=state.best_x, best_e=state.best_e, best_terms=state.best_terms, accepted=state.accepted)
    k = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1000 + cycle)
    x = planner.initial_configs(hand, float(obj.size), cfg.chains, k, opening=cfg.starts.opening,
                                standoff=cfg.starts.standoff, axes=planner.principal_axes(obj))
    return init_chains(x, state.key).replace(accepted=state.accepted)


def anneal(mesh, hand: str | HandModel = "shadow", *, config: AnnealConfig | None = None, units: str = "m",
           time_budget: float | None = None, progress: Callable[[int, dict], None] | None = None) -> planner.GraspResult:
    """The best annealed grasp (see :func:`anneal_grasps`)."""
    return anneal_grasps(mesh, hand, num_grasps=1, config=config, units=units, time_budget=time_budget,
                         progress=progress)[0]
