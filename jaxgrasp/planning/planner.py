"""``jaxgrasp.plan``: the differentiable loss as a standalone grasp planner (paper VI.A).

The object is handled centred: the optimizer works in the *centred frame* (origin at the
object's centre of mass, axes of the input file), and results are reported in the file's frame
(``T_input_palm``). All starts are optimized together through :mod:`jaxgrasp.planning.engine` (one
compiled chunk of Adam steps over ``num_starts`` configurations on the compound loss of
:func:`jaxgrasp.planning.objective.grasp_loss`). Every start is then evaluated exactly on the host (full
mesh, exact-sign distance, exact Q1 by convex hull) into an :class:`~jaxgrasp.planning.engine.Archive`;
the best grasps are squeezed (contacts closed onto the surface, :class:`SqueezeConfig`) and
optionally refined on the SDP lower bound, each kept only where it ranks better.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import trimesh

from jaxgrasp.hand.derive import failure_hint
from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.hand.model import HandModel
from jaxgrasp.mesh.objects import LoadReport, Object, make_object, pow2_bucket
from jaxgrasp.planning import engine
from jaxgrasp.planning.engine import Archive, StepParams, rank_key  # noqa: F401 (re-exported)
from jaxgrasp.planning.evaluation import (  # noqa: F401 (re-exported)
    compile_evaluation,
    compile_extras,
    evaluate,
    evaluate_extras,
    find_contacts,
    with_geom_metrics,
)
from jaxgrasp.planning.geom_check import with_geoms
from jaxgrasp.planning.objective import (  # noqa: F401 (re-exported)
    LossParams,
    Phase,
    Scene,
    active_sets,
    default_start_map,
    grasp_loss,
    grasp_terms,
    loss_params,
    touch_weights,
)
from jaxgrasp.planning.prepared import (  # noqa: F401 (re-exported)
    PreparedObject,
    as_object,
    object_trimesh,
    prepare_object,
)
from jaxgrasp.planning.settings import (  # noqa: F401 (re-exported)
    EvalConfig,
    LossConfig,
    OptimizerConfig,
    PlanConfig,
    Schedule,
    Shapes,
    SqueezeConfig,
    StartConfig,
    with_starts,
)
from jaxgrasp.planning.starts import (  # noqa: F401 (re-exported)
    fibonacci_sphere,
    grasp_point,
    initial_configs,
    principal_axes,
)
from jaxgrasp.quality.q1 import wrench_directions

log = logging.getLogger(__name__)

# The pose of a result, jitted (one cacheable executable per hand, instead of op-by-op calls).
pose_jit = jax.jit(pose_hand)


# ----------------------------------------------------------------------------------------------
# Problem set-up (host side)
# ----------------------------------------------------------------------------------------------


def start_configs(hand: HandModel, obj: Object, cfg: PlanConfig, key: jax.Array) -> jnp.ndarray:
    """The planner's ``(num_starts, 6 + I)`` starts for one object (:func:`initial_configs`
    with the settings of ``cfg``, laid out in the object's :func:`principal_axes`)."""
    return initial_configs(hand, float(obj.size), cfg.shapes.num_starts, key, opening=cfg.starts.opening,
                           standoff=cfg.starts.standoff, axes=principal_axes(obj))


def prepare(mesh, cfg: PlanConfig, *, units: str = "m", screen: bool = True) -> PreparedObject:
    """:func:`prepare_object` with the optimizer's mesh of ``cfg`` (``shapes.opt_faces``)."""
    return prepare_object(mesh, units=units, opt_faces=cfg.shapes.opt_faces, screen=screen)


def make_scene(prep: PreparedObject, cfg: PlanConfig, *, dtype=jnp.float32,
               pad_faces: int | None = None) -> Scene:
    """The optimization problem: decimated mesh, surface samples, directions, scales.

    Args:
        prep: the prepared object (its ``loop_mesh`` is the optimizer's mesh; prepared with
            ``cfg.shapes.opt_faces``).
        cfg: planner settings (``shapes.opt_faces``, ``shapes.object_samples``...).
        dtype: floating dtype of the scene.
        pad_faces: pad the optimization mesh to this many faces (default: the next power of two,
            at least 256), so objects of similar size share one compiled step.
    """
    if prep.opt_faces != cfg.shapes.opt_faces:
        raise ValueError(f"the object was prepared with opt_faces={prep.opt_faces}, the config asks for "
                         f"{cfg.shapes.opt_faces}: prepare it with this config (jaxgrasp.planning.planner.prepare)")
    obj, tm, opt_tm = prep.obj, prep.mesh, prep.loop_mesh
    com = np.asarray(obj.center_of_mass, np.float64)
    size = float(obj.size)
    pad = pad_faces or face_bucket(len(opt_tm.faces))
    opt_obj = make_object(opt_tm.vertices, opt_tm.faces, check_units=False, pad_to=pad,
                          pad_vertices_to=pad if len(opt_tm.vertices) <= pad else None,
                          dtype=np.dtype(jnp.dtype(dtype).name))[0]
    n = cfg.shapes.object_samples
    pts, _ = trimesh.sample.sample_surface_even(tm, n, seed=cfg.seed)
    pts = np.resize(pts, (n, 3))  # fixed count (repeats a few when short)
    return Scene(
        obj=opt_obj,
        com=jnp.asarray(com, dtype),
        object_points=jnp.asarray(pts - com, dtype),
        directions=jnp.asarray(wrench_directions(cfg.evaluation.num_directions), dtype),
        alpha=jnp.asarray(cfg.evaluation.alpha_per_size / size, dtype),
        torque_scale=jnp.asarray(1.0 / size, dtype),
    )


def face_bucket(n: int) -> int:
    """Padded face count of an optimization mesh: next power of two, at least 256."""
    return pow2_bucket(n, 256)


# ----------------------------------------------------------------------------------------------
# Phases: which terms, with which traced numbers
# ----------------------------------------------------------------------------------------------


def variable_scale(hand: HandModel, cfg: PlanConfig) -> jnp.ndarray:
    """Per-variable scale ``(6 + I,)``: the optimizer works on ``y = x / scale`` so one learning
    rate fits metres, radians and the joint logits."""
    o = cfg.optimizer
    return jnp.concatenate([jnp.full(3, o.translation_scale), jnp.full(3, o.rotation_scale),
                            jnp.ones(hand.num_independent)]).astype(hand.body_pos.dtype)


def _params(hand: HandModel, cfg: PlanConfig, lp: LossParams, lr: float, steps: int) -> StepParams:
    dtype = hand.body_pos.dtype
    return StepParams(loss=lp, scale=variable_scale(hand, cfg), learning_rate=jnp.asarray(lr, dtype),
                      decay_steps=jnp.asarray(max(steps, 1), dtype), decay_floor=jnp.asarray(0.05, dtype))


def main_phase(hand: HandModel, cfg: PlanConfig, start_map: str | None = None) -> tuple[Phase, StepParams]:
    """The main loss (paper VI.A): Q1 bound, collision, self-collision, guide (and touch when
    its weight is not zero), Adam over ``cfg.schedule.steps``."""
    s, w = cfg.shapes, cfg.loss.weights
    terms = ("q1", "coll", "self", "guide") + (("touch",) if w.touch else ())
    phase = Phase(terms=terms, q1_bound=cfg.loss.q1_bound, self_samples=s.self_samples, opt_samples=s.opt_samples,
                  object_points=s.object_points, start_map=start_map or default_start_map())
    lp = loss_params(cfg.evaluation, cfg.loss, cfg.squeeze, dtype=hand.body_pos.dtype)
    return phase, _params(hand, cfg, lp, cfg.optimizer.learning_rate, cfg.schedule.steps)


def squeeze_phase(hand: HandModel, cfg: PlanConfig, start_map: str | None = None) -> tuple[Phase, StepParams]:
    """The contact-closing phase (:class:`SqueezeConfig`): the main terms plus touch, collision
    and self-collision weights multiplied, its own step, margin and self-collision samples."""
    sq, w, s = cfg.squeeze, cfg.loss.weights, cfg.shapes
    weights = dataclasses.replace(w, coll=w.coll * sq.collision, self_coll=w.self_coll * sq.collision, touch=sq.touch)
    phase = Phase(terms=("q1", "coll", "self", "guide", "touch"), q1_bound=cfg.loss.q1_bound,
                  self_samples=sq.self_samples, opt_samples=s.opt_samples, object_points=s.object_points,
                  start_map=start_map or default_start_map())
    lp = loss_params(cfg.evaluation, cfg.loss, sq, weights=weights, collision_margin=sq.collision_margin,
                     dtype=hand.body_pos.dtype)
    return phase, _params(hand, cfg, lp, sq.learning_rate, sq.steps)


def refine_phase(hand: HandModel, cfg: PlanConfig, start_map: str | None = None) -> tuple[Phase, StepParams]:
    """The refinement phase: the main loss with the SDP lower bound (paper IV.B, eq. 4)."""
    phase, params = main_phase(hand, cfg, start_map)
    dtype = hand.body_pos.dtype
    return (dataclasses.replace(phase, q1_bound="lower"),
            params.replace(learning_rate=jnp.asarray(cfg.schedule.refine_learning_rate, dtype),
                           decay_steps=jnp.asarray(max(cfg.schedule.refine_steps, 1), dtype)))


# ----------------------------------------------------------------------------------------------
# Drivers over the engine
# ----------------------------------------------------------------------------------------------


def optimize(hand: HandModel, scene: Scene, x0: jnp.ndarray, cfg: PlanConfig, *,
             chunk: int = 25, progress: Callable[[int, dict], None] | None = None) -> tuple[jnp.ndarray, dict]:
    """``cfg.schedule.steps`` steps of the main phase from ``x0 (S, 6 + I)``; returns the final
    configurations and the last step's per-start loss terms."""
    phase, params = main_phase(hand, cfg)
    cb = None if progress is None else (lambda n, info: progress(n, {"total": info.total, **info.terms}))
    x, info = engine.run(hand, scene, x0, params, phase, cfg.schedule.steps, chunk=chunk, progress=cb)
    return x, ({} if info is None else info.terms)


def squeeze(hand: HandModel, scene: Scene, x: jnp.ndarray, cfg: PlanConfig) -> jnp.ndarray:
    """Squeeze configurations ``x (S, 6 + I)`` (centred frame): ``cfg.squeeze.steps`` steps of
    :func:`squeeze_phase` in one compiled call; returns ``(S, 6 + I)``."""
    phase, params = squeeze_phase(hand, cfg)
    n = cfg.squeeze.steps
    return engine.run(hand, scene, jnp.asarray(x), params, phase, n, chunk=n)[0]


def compile_squeeze(hand: HandModel, scene: Scene, x: jnp.ndarray, cfg: PlanConfig) -> None:
    """Compile :func:`squeeze` for ``x (S, 6 + I)``'s shape without running it."""
    if cfg.squeeze.steps > 0:
        phase, params = squeeze_phase(hand, cfg)
        n = cfg.squeeze.steps
        engine.compile_run(hand, scene, jnp.asarray(x), params, phase, n, chunk=n)


def squeeze_best(hand: HandModel, prep: PreparedObject, scene: Scene, candidates: list[tuple[dict, np.ndarray]],
                 cfg: PlanConfig, deadline: float = float("inf")) -> list[tuple[dict, np.ndarray]]:
    """Squeeze evaluated grasps and evaluate the results exactly (host side).

    Args:
        candidates: up to ``num_starts`` ``(metrics, config (6 + I,))``; padded to ``num_starts``
            by repetition, so every call reuses the main loop's batch shape.
        deadline: ``time.perf_counter()`` value after which no more results are evaluated (an
            evaluation that ends after it is dropped).

    Returns:
        ``(metrics with "squeezed": True, config)`` of the squeezed grasps evaluated in time.
    """
    if not candidates or cfg.squeeze.steps <= 0:
        return []
    idx = np.resize(np.arange(len(candidates)), cfg.shapes.num_starts)
    xs = np.asarray(squeeze(hand, scene, jnp.asarray(np.stack([candidates[i][1] for i in idx])), cfg))
    out = []
    for xi in xs[:len(candidates)]:
        if time.perf_counter() >= deadline:
            break
        m = evaluate(hand, prep, xi, cfg.evaluation, extras=False)
        if time.perf_counter() >= deadline:  # finished after the deadline: not counted
            break
        out.append(({**m, "squeezed": True}, xi))
    return out


def evaluate_starts(hand: HandModel, prep: PreparedObject, x: np.ndarray, cfg: PlanConfig,
                    archive: Archive, round_: int = 0) -> None:
    """Evaluate every start of ``x (S, 6 + I)`` into ``archive`` under keys ``(round_, i)``."""
    log.info("evaluating %d grasps exactly", len(x))
    for i, xi in enumerate(x):
        archive.record((round_, i), evaluate(hand, prep, xi, cfg.evaluation, extras=False), xi)


def squeeze_archive(hand: HandModel, prep: PreparedObject, scene: Scene, keys: list, cfg: PlanConfig,
                    archive: Archive) -> None:
    """Squeeze the archived grasps ``keys`` once; a squeezed grasp replaces its key's entry only
    where it ranks better."""
    if cfg.squeeze.steps <= 0 or not keys:
        return
    log.info("squeezing %d grasps", len(keys))
    candidates = [(archive[k].metrics, archive[k].config) for k in keys]
    for k, (m, xi) in zip(keys, squeeze_best(hand, prep, scene, candidates, cfg)):
        archive.record(k, m, xi)


def refine(hand: HandModel, prep: PreparedObject, scene: Scene, keys: list, cfg: PlanConfig,
           archive: Archive) -> None:
    """Refine the archived grasps ``keys`` with ``cfg.schedule.refine_steps`` steps of
    :func:`refine_phase`; a refined grasp replaces its key's entry only where it ranks better."""
    n = cfg.schedule.refine_steps
    if n <= 0 or not keys:
        return
    log.info("refining %d grasps on the SDP lower bound (%d steps)", len(keys), n)
    phase, params = refine_phase(hand, cfg)
    x0 = jnp.asarray(np.stack([archive[k].config for k in keys]))
    xr, _ = engine.run(hand, scene, x0, params, phase, n, chunk=min(25, n))
    for k, xi in zip(keys, np.asarray(xr)):
        m = evaluate(hand, prep, xi, cfg.evaluation, extras=False)
        archive.record(k, {**m, "refined": True}, xi)


def loss_hand(hand: HandModel, cfg: PlanConfig) -> HandModel:
    """The hand as the planner's loss sees it: with the hand file's collision geoms attached when
    ``cfg.loss.real_geoms`` (:func:`jaxgrasp.planning.geom_check.with_geoms`), without otherwise."""
    return with_geoms(hand) if cfg.loss.real_geoms else hand.replace(geoms=None)


def compile_plan(hand: HandModel, prep: PreparedObject, cfg: PlanConfig) -> None:
    """Compile everything anytime planning (:func:`plan_grasps` with a ``time_budget``) runs for
    this hand and padded object size: the active sets, the steps in chunks of
    ``schedule.eval_every``, the squeeze, the exact evaluation and the reporting metrics, so that
    timed runs exclude compilation."""
    hand = loss_hand(hand, cfg)
    scene = make_scene(prep, cfg, dtype=hand.body_pos.dtype)
    x0 = start_configs(hand, prep.obj, cfg, jax.random.PRNGKey(cfg.seed))
    compile_evaluation(hand, prep, np.asarray(x0[0]), cfg.evaluation)
    compile_extras(hand, prep, cfg.evaluation)
    pose_jit(hand, x0[0])
    phase, params = main_phase(hand, cfg)
    state = engine.init(hand, scene, x0, params, phase)
    engine.select(hand, scene, state, params, phase)
    sch = cfg.schedule
    for n in {min(sch.eval_every, sch.steps), sch.steps % sch.eval_every} - {0}:
        engine.step(hand, scene, state, params, phase, n)
    compile_squeeze(hand, scene, x0, cfg)


@dataclasses.dataclass
class GraspResult:
    """A planned grasp (see :mod:`jaxgrasp.planning.grasp_io` for the JSON schema)."""

    hand: HandModel
    config: np.ndarray  # (6 + I,) centred frame
    T_input_palm: np.ndarray  # (4, 4) palm pose in the object's input frame
    joint_angles: dict[str, float]
    contact_pos: np.ndarray  # (K, 3) touching contacts, input frame
    contact_normal: np.ndarray  # (K, 3) object outward normals there
    metrics: dict
    starts: list[dict]
    object_source: str
    center_of_mass: np.ndarray
    time_s: float
    report: LoadReport | None = None
    object_vertices: np.ndarray | None = None  # (V, 3) the object mesh, input frame
    object_faces: np.ndarray | None = None  # (F, 3)
    poses: dict | None = None  # schema-2 fields (pregrasp, squeeze, forces), jaxgrasp.sim.forces.grasp_poses


def archive_results(hand: HandModel, prep: PreparedObject, archive: Archive, num_grasps: int,
                    cfg: PlanConfig, t0: float, extra: dict | None = None, *, extras: bool = True) -> list[GraspResult]:
    """The ``num_grasps`` best archived grasps as :class:`GraspResult`, with the archive's
    statistics (and ``extra``) in their metrics; ``extras``: with the reporting metrics of
    :func:`evaluate_extras` (else they are None)."""
    elapsed = time.perf_counter() - t0
    ranked = archive.ranked()
    starts = [e.metrics for _, e in ranked]
    out = {**archive.stats(), **(extra or {})}
    if not extras:
        out.update(q1_generalized=None, q1_generalized_upper=None, q1_generalized_lower=None)
    log.info("packaging %d grasps", min(num_grasps, len(ranked)))
    return [make_result(hand, prep, e.config, {**e.metrics, **out}, starts, elapsed, cfg, extras=extras)
            for _, e in ranked[:num_grasps]]


def starts_to_evaluate(total: np.ndarray, done: int, cfg: PlanConfig, *, early: bool, found_valid: bool) -> list[int]:
    """The starts the anytime loop evaluates exactly after the chunk that ends ``done`` steps
    into a round (see ``eval_every``, ``eval_every_valid`` and ``eval_final`` of :class:`Schedule`).

    Args:
        total: ``(S,)`` the starts' losses at the last step.
        early: the chunk ends before ``eval_from``: nothing is evaluated.
        found_valid: a valid grasp was found earlier in the call.

    Returns:
        Start indices: every start at the end of a round with ``eval_final``; else at every
        ``eval_every`` steps (``eval_every_valid`` once a valid grasp is known) and at the end of
        a round, the ``eval_top`` lowest-loss starts; else none.
    """
    s = cfg.schedule
    if done == s.steps and s.eval_final:
        return list(range(len(total)))
    every = s.eval_every_valid if found_valid else s.eval_every
    if early or (done % every and done != s.steps):
        return []
    return [int(i) for i in np.argsort(total)[:s.eval_top]]


def make_result(hand: HandModel, prep: PreparedObject, x: np.ndarray, metrics: dict,
                starts: list[dict], elapsed: float, cfg: PlanConfig | EvalConfig | None = None, *,
                extras: bool = True) -> GraspResult:
    """Package a configuration (centred frame) as a :class:`GraspResult` in the input frame,
    completing ``metrics`` with :func:`evaluate_extras` when they lack them and ``extras``."""
    ev = cfg.evaluation if isinstance(cfg, PlanConfig) else (cfg or EvalConfig())
    obj, report, tm = prep.obj, prep.report, prep.mesh
    if extras and "q1_generalized" not in metrics:
        metrics = {**metrics, **evaluate_extras(hand, prep, x, ev)}
    if extras and ev.real_geoms:  # reported for every returned grasp, valid or not
        metrics = with_geom_metrics(hand, prep, x, metrics, ev)
    hint = failure_hint(hand, metrics)
    if hint is not None:  # an invalid grasp with a detectable cause says what to change
        metrics = {**metrics, "hint": hint}
    # The centred frame's origin in the input frame (an object planned near the origin, see
    # prepared.FAR_M, moves back by its shift).
    back = -np.asarray(prep.shift, np.float64) if prep.shift is not None else np.zeros(3)
    com = np.asarray(obj.center_of_mass, np.float64) + back
    posed = pose_jit(hand, jnp.asarray(x, hand.body_pos.dtype))
    T = np.asarray(posed.T_world_palm, np.float64).copy()
    T[:3, 3] += com
    cp = np.asarray(metrics["contacts"]["points"], np.float64).reshape(-1, 3) + com
    n = np.asarray(metrics["contacts"]["normals"], np.float64).reshape(-1, 3)
    return GraspResult(
        hand=hand, config=np.asarray(x), T_input_palm=T,
        joint_angles={k: float(v) for k, v in zip(hand.joint_names, np.asarray(posed.joint_angles))},
        contact_pos=cp, contact_normal=n, metrics=metrics, starts=starts,
        object_source=report.source if report is not None else "arrays", center_of_mass=com,
        time_s=elapsed, report=report, object_vertices=np.asarray(tm.vertices) + back, object_faces=np.asarray(tm.faces),
    )
