"""``jaxgrasp.plan``: the differentiable loss as a standalone grasp planner (paper VI.A).

The object is handled centred: the optimizer works in the *centred frame* (origin at the
object's centre of mass, axes of the input file), and results are reported in the file's frame
(``T_input_palm``). All starts are optimized together: one compiled, vmapped Adam step over
``num_starts`` configurations; the compound loss of :func:`grasp_loss` (generalized Q1 upper
bound, collision, self-collision, object-in-hand and guide terms) is differentiated through the
forward kinematics and the mesh signed distance. Afterwards every start is evaluated on the host
with the exact quantities (full-resolution mesh, exact-sign distance, exact Q1 through a convex
hull), and the best valid start (penetration under a threshold, highest exact Q1) is returned.
A contact-closing phase (:class:`SqueezeConfig`, not in the paper) then pulls the near, facing
contact candidates of the best grasps onto the surface, since the exact Q1 counts only contacts
within a few millimetres; a squeezed grasp replaces the original when it evaluates better.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import trimesh

from jaxgrasp.evaluation import (  # noqa: F401 (re-exported)
    compile_evaluation,
    decimated,
    evaluate,
    evaluate_extras,
    evaluation_points,
    find_contacts,
    object_trimesh,
)
from jaxgrasp.hand import HandModel, load_hand
from jaxgrasp.kinematics import pose_hand
from jaxgrasp.objective import (  # noqa: F401 (re-exported)
    Scene,
    active_sets,
    grasp_loss,
    grasp_terms,
    touch_weights,
)
from jaxgrasp.objects import LoadReport, Object, load_object, make_object, pow2_bucket
from jaxgrasp.plan_config import PlanConfig, SqueezeConfig  # noqa: F401 (re-exported)
from jaxgrasp.quality import wrench_directions
from jaxgrasp.starts import fibonacci_sphere, grasp_point, initial_configs, principal_axes  # noqa: F401 (re-exported)


# ----------------------------------------------------------------------------------------------
# Initialization
# ----------------------------------------------------------------------------------------------


def start_configs(hand: HandModel, obj: Object, cfg: PlanConfig, key: jax.Array) -> jnp.ndarray:
    """The planner's ``(cfg.num_starts, 6 + I)`` starts for one object (:func:`initial_configs`
    with the settings of ``cfg``, laid out in the object's :func:`principal_axes`)."""
    return initial_configs(hand, float(obj.size), cfg.num_starts, key, opening=cfg.opening, standoff=cfg.standoff,
                           axes=principal_axes(obj))


# ----------------------------------------------------------------------------------------------
# Problem set-up and evaluation (host side)
# ----------------------------------------------------------------------------------------------


def as_object(mesh, *, units: str = "m") -> tuple[Object, LoadReport, trimesh.Trimesh]:
    """Accept a path, a trimesh mesh or a loaded ``(Object, LoadReport)``; return all three forms."""
    if isinstance(mesh, tuple) and len(mesh) == 2 and isinstance(mesh[0], Object):
        obj, report = mesh
    elif isinstance(mesh, Object):
        obj, report = mesh, None
    elif isinstance(mesh, trimesh.Trimesh):
        obj, report = make_object(mesh.vertices, mesh.faces, units=units)
    else:
        obj, report = load_object(mesh, units=units)
    return obj, report, object_trimesh(obj)


def make_scene(obj: Object, tm: trimesh.Trimesh, cfg: PlanConfig, *, dtype=jnp.float32,
               pad_faces: int | None = None) -> Scene:
    """The optimization problem: decimated mesh, surface samples, directions, scales.

    Args:
        obj: the full-resolution object; tm: the same mesh as a trimesh.
        cfg: planner settings (``opt_faces``, ``object_samples``...).
        dtype: floating dtype of the scene.
        pad_faces: pad the optimization mesh to this many faces (default: the next power of two,
            at least 256), so objects of similar size share one compiled step.
    """
    com = np.asarray(obj.center_of_mass, np.float64)
    size = float(obj.size)
    opt_tm = decimated(tm, cfg.opt_faces)
    pad = pad_faces or face_bucket(len(opt_tm.faces))
    opt_obj = make_object(opt_tm.vertices, opt_tm.faces, check_units=False, pad_to=pad,
                          pad_vertices_to=pad if len(opt_tm.vertices) <= pad else None,
                          dtype=np.dtype(jnp.dtype(dtype).name))[0]
    pts, _ = trimesh.sample.sample_surface_even(tm, cfg.object_samples, seed=cfg.seed)
    pts = np.resize(pts, (cfg.object_samples, 3))  # fixed count (repeats a few when short)
    return Scene(
        obj=opt_obj,
        com=jnp.asarray(com, dtype),
        object_points=jnp.asarray(pts - com, dtype),
        directions=jnp.asarray(wrench_directions(cfg.num_directions), dtype),
        alpha=jnp.asarray(cfg.alpha_per_size / size, dtype),
        torque_scale=jnp.asarray(1.0 / size, dtype),
    )


def face_bucket(n: int) -> int:
    """Padded face count of an optimization mesh: next power of two, at least 256."""
    return pow2_bucket(n, 256)


# ----------------------------------------------------------------------------------------------
# Optimization
# ----------------------------------------------------------------------------------------------


def variable_scale(hand: HandModel, cfg: PlanConfig) -> jnp.ndarray:
    """Per-variable scale ``(6 + I,)``: the optimizer works on ``y = x / scale`` so one learning
    rate fits metres, radians and the joint logits."""
    return jnp.concatenate([jnp.full(3, cfg.translation_scale), jnp.full(3, cfg.rotation_scale),
                            jnp.ones(hand.num_independent)]).astype(hand.body_pos.dtype)


def make_adam(cfg: PlanConfig) -> optax.GradientTransformation:
    """Adam with a cosine-decayed step over ``cfg.steps``."""
    return optax.adam(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps, alpha=0.05))


def loss_kwargs(hand: HandModel, cfg: PlanConfig, bound: str | None = None) -> dict:
    """The keyword settings of :func:`grasp_loss` / :func:`grasp_terms` that ``cfg`` holds (one
    place for the planner's steps and the trainer's loss). ``bound`` overrides ``cfg.q1_bound``."""
    return dict(beta=cfg.beta, mu=cfg.mu, penetration_scale=cfg.penetration_scale,
                collision_margin=cfg.collision_margin, self_samples=min(cfg.self_samples, hand.num_samples),
                bound=cfg.q1_bound if bound is None else bound, touch_capture=cfg.squeeze.capture,
                touch_target=cfg.squeeze.target, touch_scale=cfg.contact_tolerance, contact_cos=cfg.contact_cos,
                q1_temperature=cfg.q1_temperature, q1_search_steps=cfg.q1_search_steps)


def map_starts(fn: Callable) -> Callable:
    """``fn`` of one start, mapped over the leading axis of its arguments: ``jax.lax.map`` (one
    start after the other) on the CPU, ``jax.vmap`` on other backends.

    XLA's CPU backend runs the matrix products that ``vmap`` batches over starts slowly. Measured
    (2-core CPU, Shadow hand, 8 starts): value and gradient of the planner's loss 23.5 -> 17.2 ms
    (sphere_7000) and 39.0 -> 23.2 ms (025_mug); the active sets' sample-to-point distances 70 ->
    8.7 ms. On a GPU the batched form is the fast one.
    """
    def mapped(*args):
        if jax.default_backend() == "cpu":
            return jax.lax.map(lambda a: fn(*a), args)
        return jax.vmap(fn)(*args)
    return mapped


def _run_steps(hand, scene, y, state, si, oi, cfg: PlanConfig, num_steps: int):
    """``num_steps`` Adam steps on all starts of one object (un-jitted kernel)."""
    scale = variable_scale(hand, cfg)
    tx = make_adam(cfg)
    kw = loss_kwargs(hand, cfg)

    def loss_y(yi, sii, oii):
        return grasp_loss(hand, scene, yi * scale, sii, oii, cfg.weights, **kw)

    grad_fn = map_starts(jax.value_and_grad(loss_y, has_aux=True))

    def step(carry, _):
        y, state = carry
        (total, terms), g = grad_fn(y, si, oi)
        upd, state = tx.update(g, state, y)
        return (optax.apply_updates(y, upd), state), (total, terms)

    (y, state), (totals, terms) = jax.lax.scan(step, (y, state), None, length=num_steps)
    return y, state, totals[-1], jax.tree.map(lambda a: a[-1], terms)


def _select(hand, scene, y, cfg: PlanConfig):
    scale = variable_scale(hand, cfg)
    k_s = min(cfg.opt_samples, hand.num_samples)
    return map_starts(lambda yi: active_sets(hand, scene, yi * scale, k_s, cfg.object_points))(y)


# The settings the compiled steps read; the rest (seed, evaluation and start settings) are reset
# to their defaults in the static argument, so changing them does not recompile.
STEP_FIELDS = ("steps", "learning_rate", "translation_scale", "rotation_scale", "opt_samples", "self_samples",
               "object_points", "weights", "beta", "mu", "penetration_scale", "collision_margin", "q1_bound",
               "squeeze", "contact_tolerance", "contact_cos", "q1_temperature",
               "q1_search_steps")


def step_config(cfg: PlanConfig) -> PlanConfig:
    """``cfg`` with only :data:`STEP_FIELDS` kept: the static key of the compiled steps. Of the
    squeeze settings the steps read only the touch term's (the squeeze runs these steps with
    :func:`squeeze_config`'s fields)."""
    kept = {f: getattr(cfg, f) for f in STEP_FIELDS}
    kept["squeeze"] = SqueezeConfig(capture=cfg.squeeze.capture, target=cfg.squeeze.target)
    return PlanConfig(**kept)


_run_steps_jit = jax.jit(_run_steps, static_argnames=("cfg", "num_steps"))
_select_jit = jax.jit(_select, static_argnames=("cfg",))


# Public jitted steps; the hand and scene are arguments (not closures), so calls with the same
# hand structure, padded object size and step settings reuse one compilation.
def run_steps(hand, scene, y, state, si, oi, cfg: PlanConfig, num_steps: int):
    """``num_steps`` Adam steps on all starts ``y (S, 6 + I)`` (scaled variables) of one object,
    with the active sets ``si``/``oi``; returns ``(y, state, last totals (S,), last terms)``."""
    return _run_steps_jit(hand, scene, y, state, si, oi, step_config(cfg), num_steps)


def select_active(hand, scene, y, cfg: PlanConfig):
    """The active sets (:func:`active_sets`) of all starts ``y (S, 6 + I)``."""
    return _select_jit(hand, scene, y, step_config(cfg))


def scene_axes(scenes: Scene) -> Scene:
    """vmap axes of a stacked batch of scenes: 0 everywhere, except ``obj.watertight`` when the
    batch shares one value (a scalar), so the geometry's sign ``lax.cond`` stays a real branch
    instead of running both the pseudonormal and the winding-number test for every object."""
    axes = jax.tree.map(lambda _: 0, scenes)
    if jnp.ndim(scenes.obj.watertight) == 0:
        axes = dataclasses.replace(axes, obj=axes.obj.replace(watertight=None))
    return axes


def run_steps_batch(hand, scenes, y, state, si, oi, cfg: PlanConfig, num_steps: int):
    """:func:`run_steps` for a batch of objects (leading axis of ``scenes`` and the rest)."""
    return _run_steps_batch(hand, scenes, y, state, si, oi, step_config(cfg), num_steps)


@functools.partial(jax.jit, static_argnames=("cfg", "num_steps"))
def _run_steps_batch(hand, scenes, y, state, si, oi, cfg: PlanConfig, num_steps: int):
    return jax.vmap(lambda sc, yy, st, s, o: _run_steps(hand, sc, yy, st, s, o, cfg, num_steps),
                    in_axes=(scene_axes(scenes), 0, 0, 0, 0))(scenes, y, state, si, oi)


def select_active_batch(hand, scenes, y, cfg: PlanConfig):
    """:func:`select_active` for a batch of objects (see :func:`run_steps_batch`)."""
    return _select_active_batch(hand, scenes, y, step_config(cfg))


@functools.partial(jax.jit, static_argnames=("cfg",))
def _select_active_batch(hand, scenes, y, cfg: PlanConfig):
    return jax.vmap(lambda sc, yy: _select(hand, sc, yy, cfg), in_axes=(scene_axes(scenes), 0))(scenes, y)


def optimize(hand: HandModel, scene: Scene, x0: jnp.ndarray, cfg: PlanConfig, *,
             chunk: int = 25, progress: Callable[[int, dict], None] | None = None) -> tuple[jnp.ndarray, dict]:
    """Run ``cfg.steps`` Adam steps on all starts ``x0 (S, 6 + I)``; returns the final
    configurations and the last step's per-start loss terms."""
    scale = variable_scale(hand, cfg)
    y = x0 / scale
    state = make_adam(cfg).init(y)
    done, terms = 0, {}
    while done < cfg.steps:
        n = min(chunk, cfg.steps - done)
        si, oi = select_active(hand, scene, y, cfg)
        y, state, total, terms = run_steps(hand, scene, y, state, si, oi, cfg, n)
        done += n
        if progress is not None:
            progress(done, {"total": total, **terms})
    return y * scale, terms


def squeeze_config(cfg: PlanConfig) -> PlanConfig:
    """The step settings of the contact-closing phase (:class:`SqueezeConfig`): ``cfg`` with the
    squeeze's steps, learning rate, self-collision samples and margin, the touch term on and the
    collision weights multiplied."""
    sq, w = cfg.squeeze, cfg.weights
    weights = dataclasses.replace(w, coll=w.coll * sq.collision, self_coll=w.self_coll * sq.collision, touch=sq.touch)
    return dataclasses.replace(cfg, steps=sq.steps, learning_rate=sq.learning_rate, self_samples=sq.self_samples,
                               collision_margin=sq.collision_margin, weights=weights)


def squeeze(hand: HandModel, scene: Scene, x: jnp.ndarray, cfg: PlanConfig) -> jnp.ndarray:
    """Squeeze configurations ``x (S, 6 + I)`` (centred frame): ``cfg.squeeze.steps`` Adam steps
    of :func:`squeeze_config`'s loss, all in one compiled call; returns ``(S, 6 + I)``."""
    scfg = squeeze_config(cfg)
    scale = variable_scale(hand, scfg)
    y = jnp.asarray(x) / scale
    si, oi = select_active(hand, scene, y, scfg)
    y, _, _, _ = run_steps(hand, scene, y, make_adam(scfg).init(y), si, oi, scfg, scfg.steps)
    return y * scale


def squeeze_best(hand: HandModel, obj: Object, tm: trimesh.Trimesh, scene: Scene, candidates: list[tuple[dict, np.ndarray]],
                 cfg: PlanConfig, deadline: float = float("inf")) -> list[tuple[dict, np.ndarray]]:
    """Squeeze evaluated grasps and evaluate the results exactly (host side).

    Args:
        candidates: up to ``cfg.num_starts`` ``(metrics, config (6 + I,))``; padded to
            ``num_starts`` by repetition, so every call reuses the main loop's batch shape.
        deadline: ``time.perf_counter()`` value after which no more results are evaluated (an
            evaluation that ends after it is dropped).

    Returns:
        ``(metrics with "squeezed": True, config)`` of the squeezed grasps evaluated in time.
    """
    if not candidates or cfg.squeeze.steps <= 0:
        return []
    idx = np.resize(np.arange(len(candidates)), cfg.num_starts)
    xs = np.asarray(squeeze(hand, scene, jnp.asarray(np.stack([candidates[i][1] for i in idx])), cfg))
    out = []
    for xi in xs[:len(candidates)]:
        if time.perf_counter() >= deadline:
            break
        m = evaluate(hand, obj, xi, cfg, tm, extras=False)
        if time.perf_counter() >= deadline:  # finished after the deadline: not counted
            break
        out.append(({**m, "squeezed": True}, xi))
    return out


def squeeze_starts(hand: HandModel, obj: Object, tm: trimesh.Trimesh, scene: Scene, x: np.ndarray,
                   metrics: list[dict], cfg: PlanConfig) -> None:
    """Squeeze every start of ``x (S, 6 + I)`` (evaluated as ``metrics``) once; in place, a start
    is replaced (``x`` and ``metrics``) only when its squeezed version ranks better."""
    for i, (m, xi) in enumerate(squeeze_best(hand, obj, tm, scene, list(zip(metrics, x)), cfg)):
        if rank_key(m) < rank_key(metrics[i]):
            x[i], metrics[i] = xi, m


def exploit_starts(y: jnp.ndarray, good: list[np.ndarray], scale: jnp.ndarray, cfg: PlanConfig,
                   key: jax.Array) -> jnp.ndarray:
    """A round's starts with the first ``cfg.exploit`` replaced by grasps found earlier.

    Args:
        y: ``(S, 6 + I)`` the round's fresh starts (scaled variables, ``x / scale``).
        good: configurations ``(6 + I,)`` (centred frame) of the valid grasps found so far, best
            first; repeated in turn when fewer than ``cfg.exploit``; none: ``y`` unchanged.
        scale: :func:`variable_scale`.
        key: PRNG key of the noise.

    Returns:
        ``(S, 6 + I)``: rows ``< min(cfg.exploit, S)`` are ``good[i % len(good)] / scale`` plus
        Gaussian noise of standard deviation ``cfg.exploit_noise`` (scaled variables).
    """
    k = min(cfg.exploit, y.shape[0])
    if k == 0 or not good:
        return y
    seeds = jnp.asarray(np.stack([good[i % len(good)] for i in range(k)]), y.dtype) / scale
    return y.at[:k].set(seeds + cfg.exploit_noise * jax.random.normal(key, seeds.shape, y.dtype))


def compile_plan(hand: HandModel, obj: Object, tm: trimesh.Trimesh, cfg: PlanConfig) -> None:
    """Compile everything anytime planning (:func:`plan_grasps` with a ``time_budget``) runs for
    this hand and padded object size: the active sets, the steps in chunks of ``cfg.eval_every``,
    the squeeze and the exact evaluation, so that timed runs exclude compilation."""
    scene = make_scene(obj, tm, cfg, dtype=hand.body_pos.dtype)
    x0 = start_configs(hand, obj, cfg, jax.random.PRNGKey(cfg.seed))
    compile_evaluation(hand, obj, tm, np.asarray(x0[0]), cfg)
    y = x0 / variable_scale(hand, cfg)
    state = make_adam(cfg).init(y)
    si, oi = select_active(hand, scene, y, cfg)
    for n in {min(cfg.eval_every, cfg.steps), cfg.steps % cfg.eval_every} - {0}:
        for c in {cfg, valid_step_config(cfg)}:
            run_steps(hand, scene, y, state, si, oi, c, n)
    if cfg.squeeze.steps > 0:
        squeeze(hand, scene, x0, cfg).block_until_ready()


@dataclasses.dataclass
class GraspResult:
    """A planned grasp (see :mod:`jaxgrasp.grasp_io` for the JSON schema)."""

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


def plan_grasps(mesh, hand: str | HandModel = "shadow", *, num_grasps: int = 1, config: PlanConfig | None = None,
                units: str = "m", progress: Callable[[int, dict], None] | None = None,
                time_budget: float | None = None) -> list[GraspResult]:
    """Plan grasps of a raw triangle mesh with the differentiable loss (paper VI.A).

    Args:
        mesh: a mesh file path, a ``trimesh.Trimesh`` or a loaded object (``load_object``'s
            ``(Object, LoadReport)`` or an ``Object``), in any frame; ``units`` scales files.
        hand: a bundled hand name, a hand file, or a loaded :class:`HandModel`.
        num_grasps: how many grasps to return (from distinct starts, best first).
        config: planner settings (:class:`PlanConfig`); ``num_starts`` is raised to
            ``num_grasps`` if smaller.
        units: unit of the mesh coordinates ("m", "cm", "mm") for paths and trimesh meshes.
        progress: called as ``progress(step, terms)`` after every chunk of steps.
        time_budget: anytime planning: seconds of wall-clock time for the whole call (set-up,
            compilation on the first call with new shapes, steps, evaluation). Rounds of
            ``cfg.steps`` steps from new starts run until the budget is spent; every
            ``cfg.eval_every`` steps the ``cfg.eval_top`` lowest-loss starts are evaluated
            exactly; after each finished round, while time is left, the best grasps found so
            far that were not squeezed yet are squeezed (:class:`SqueezeConfig`) and evaluated
            (with ``cfg.background``, on a background thread, as are the evaluations once a grasp
            is valid: :mod:`jaxgrasp.anytime`); the best evaluated grasps are returned. None: one
            round, then every start is
            evaluated, squeezed and keeps the better of the two.

    Returns:
        ``num_grasps`` :class:`GraspResult` in the mesh's input frame: valid grasps first by
        exact Q1, then the others by penetration. With a budget, ``metrics`` add
        ``time_to_first_valid_s`` (from the call's start to the end of the evaluation that first
        found a valid grasp; None if none), ``steps`` and ``evaluations``. A squeezed grasp's
        ``metrics`` have ``"squeezed": True``.
    """
    cfg = config or PlanConfig()
    if cfg.num_starts < num_grasps:
        cfg = dataclasses.replace(cfg, num_starts=num_grasps)
    t0 = time.perf_counter()
    hand_model = hand if isinstance(hand, HandModel) else load_hand(hand)
    obj, report, tm = as_object(mesh, units=units)
    scene = make_scene(obj, tm, cfg, dtype=hand_model.body_pos.dtype)
    if time_budget is not None:
        if not time_budget > 0:
            raise ValueError(f"time_budget must be > 0 seconds (or None), got {time_budget}")
        from jaxgrasp.anytime import plan_anytime  # (it imports this module)

        return plan_anytime(hand_model, obj, report, tm, scene, cfg, num_grasps, time_budget, t0, progress)
    x0 = start_configs(hand_model, obj, cfg, jax.random.PRNGKey(cfg.seed))
    x, _ = optimize(hand_model, scene, x0, cfg, progress=progress)
    x = np.array(x)
    starts = [evaluate(hand_model, obj, xi, cfg, tm, extras=False) for xi in x]
    squeeze_starts(hand_model, obj, tm, scene, x, starts, cfg)
    order = sorted(range(len(starts)), key=lambda i: rank_key(starts[i]))
    if cfg.refine_steps > 0:
        refine(hand_model, obj, tm, scene, x, starts, order[:num_grasps], cfg)
        order = sorted(range(len(starts)), key=lambda i: rank_key(starts[i]))
    elapsed = time.perf_counter() - t0
    return [make_result(hand_model, obj, report, tm, np.asarray(x[i]), starts[i], starts, elapsed, cfg) for i in order[:num_grasps]]


def valid_step_config(cfg: PlanConfig) -> PlanConfig:
    """The step settings of anytime planning once a grasp is valid: ``cfg`` with its Q1 bound's
    temperature set to ``cfg.q1_temperature_valid`` (``cfg`` itself when that is None)."""
    if cfg.q1_temperature_valid is None:
        return cfg
    return dataclasses.replace(cfg, q1_temperature=cfg.q1_temperature_valid)


def starts_to_evaluate(total: np.ndarray, done: int, cfg: PlanConfig, *, early: bool, found_valid: bool) -> list[int]:
    """The starts the anytime loop evaluates exactly after the chunk that ends ``done`` steps
    into a round (see ``eval_every``, ``eval_every_valid`` and ``eval_final`` of :class:`PlanConfig`).

    Args:
        total: ``(S,)`` the starts' losses at the last step.
        early: the chunk ends before ``eval_from`` (and a start is already evaluated, or the
            budget is not spent yet): nothing is evaluated.
        found_valid: a valid grasp was found earlier in the call.

    Returns:
        Start indices: every start at the end of a round with ``eval_final``; else at every
        ``eval_every`` steps (``eval_every_valid`` once a valid grasp is known) and at the end of
        a round, the ``eval_top`` lowest-loss starts; else none.
    """
    if done == cfg.steps and cfg.eval_final:
        return list(range(len(total)))
    every = cfg.eval_every_valid if found_valid else cfg.eval_every
    if early or (done % every and done != cfg.steps):
        return []
    return [int(i) for i in np.argsort(total)[:cfg.eval_top]]


def refine(hand: HandModel, obj: Object, tm: trimesh.Trimesh, scene: Scene, x: np.ndarray, metrics: list[dict],
           idx: list[int], cfg: PlanConfig) -> None:
    """Refine starts ``idx`` of ``x (S, 6 + I)`` with ``cfg.refine_steps`` Adam steps on the loss with
    the SDP lower bound; in place, a start is replaced (``x`` and ``metrics``) only when the
    refined configuration's exact evaluation ranks better."""
    rcfg = dataclasses.replace(cfg, q1_bound="lower", steps=cfg.refine_steps, learning_rate=cfg.refine_learning_rate)
    xr, _ = optimize(hand, scene, jnp.asarray(x[idx]), rcfg, chunk=min(25, cfg.refine_steps))
    for i, xi in zip(idx, np.asarray(xr)):
        m = evaluate(hand, obj, xi, cfg, tm, extras=False)
        if rank_key(m) < rank_key(metrics[i]):
            x[i], metrics[i] = xi, {**m, "refined": True}


def rank_key(m: dict) -> tuple:
    """Sort key, best first: valid before not valid; then higher Q1, then lower penetration."""
    return (not m["valid"], -m["q1"], m["penetration_mm"])


def plan(mesh, hand: str | HandModel = "shadow", *, config: PlanConfig | None = None, units: str = "m",
         progress: Callable[[int, dict], None] | None = None, time_budget: float | None = None) -> GraspResult:
    """The best grasp of a raw triangle mesh (see :func:`plan_grasps` for the arguments)."""
    return plan_grasps(mesh, hand, num_grasps=1, config=config, units=units, progress=progress,
                       time_budget=time_budget)[0]


def make_result(hand: HandModel, obj: Object, report, tm: trimesh.Trimesh, x: np.ndarray, metrics: dict,
                starts: list[dict], elapsed: float, cfg: PlanConfig | None = None) -> GraspResult:
    """Package a configuration (centred frame) as a :class:`GraspResult` in the input frame,
    completing ``metrics`` with :func:`evaluate_extras` when they lack them."""
    cfg = cfg or PlanConfig()
    if "q1_generalized" not in metrics:
        metrics = {**metrics, **evaluate_extras(hand, obj, x, cfg)}
    com = np.asarray(obj.center_of_mass, np.float64)
    posed = pose_hand(hand, jnp.asarray(x, hand.body_pos.dtype))
    T = np.asarray(posed.T_world_palm, np.float64).copy()
    T[:3, 3] += com
    cp = np.asarray(metrics["contacts"]["points"], np.float64).reshape(-1, 3) + com
    n = np.asarray(metrics["contacts"]["normals"], np.float64).reshape(-1, 3)
    return GraspResult(
        hand=hand, config=np.asarray(x), T_input_palm=T,
        joint_angles={k: float(v) for k, v in zip(hand.joint_names, np.asarray(posed.joint_angles))},
        contact_pos=cp, contact_normal=n, metrics=metrics, starts=starts,
        object_source=report.source if report is not None else "arrays", center_of_mass=com,
        time_s=elapsed, report=report, object_vertices=np.asarray(tm.vertices), object_faces=np.asarray(tm.faces),
    )
