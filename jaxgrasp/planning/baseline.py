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

Energy (one configuration, :func:`energy_terms`; lengths in millimetres as in GraspIt!):

* ``contact``: GraspIt!'s ``SearchEnergy::contactEnergy``, the mean over the contact candidates of
  ``|d_i| [mm]``, plus ``align``: the mean of ``1 + n_grip,i . n_obj,i`` (0 when the candidate's
  outward normal faces the surface; GraspIt! weighs it ``100 / 2`` = 50).
* ``penetration``: millimetres of penetration summed over the first ``hand_samples`` hand samples
  (farthest-point ordered) inside the decimated mesh and the ``object_samples`` object surface
  points inside the links' hulls; ``self``: the same for hand samples inside other links
  (:mod:`jaxgrasp.hand.collision`). GraspIt! only visits collision-free states; here a proposal whose
  deepest penetration of any kind exceeds ``hard_penetration`` is rejected outright, shallower
  ones pay the penalty.
* ``quality``: ``-Q1_upper`` (:func:`jaxgrasp.quality.q1.q1_upper`) with the generalized contact
  weights: GraspIt!'s "potential quality" idea (candidates near the surface and facing it count;
  GraspIt! scales their wrenches by ``cos(pi d / 50 mm) + 1`` and takes a 3-D force-space
  epsilon), here with the planner's own weights and 6-D bound.

Search (:func:`anneal_steps`): all chains advance together; each step proposes one Gaussian
perturbation per chain (palm translation [m], palm rotation [rad] about the palm's grasp point,
independent joints in fractions of their range), evaluates every proposal in one vmapped call,
and accepts with the Metropolis rule ``u < exp(-(E_new - E) / T_k)`` (explicit ``jax.random``
keys). Cooling follows GraspIt!'s ``SimAnn::cooling``, ``T_k = T0 exp(-c k^(1/D))``, with its
default ``D = 8`` and its offset start ``k0`` (GraspIt! starts at step 30000 of 100000), rescaled
so a cycle of ``steps`` steps goes from ``t_start`` to ``t_end``::

    T_i = t_start * (t_end / t_start) ** phi_i,
    phi_i = ((k0 + i)^(1/D) - k0^(1/D)) / ((k0 + N)^(1/D) - k0^(1/D)),  k0 = k0_fraction * N

(with GraspIt!'s numbers ``phi`` is nearly linear in ``i``: close to geometric cooling).
GraspIt! draws up to 10 neighbours until one is legal and uses Ingber's heavy-tailed neighbour
distribution; here each step draws one Gaussian proposal per chain (rejected if illegal). The
proposal standard deviations shrink as ``sqrt(T_i / t_start)`` (the typical displacement of a
Boltzmann distribution in a quadratic well), down to ``min_step_fraction`` of the initial steps.
Every chain keeps its lowest-energy state. After a cycle, if time is left, chains are re-heated
from their best states (``restart="best"``) or from fresh starts (``"fresh"``).

Anytime: with ``time_budget`` the loop runs chunks of steps until the budget is spent,
evaluating the chains' new best states exactly (host side) between chunks, and returns the best
grasps found; each result's ``metrics`` hold ``time_to_first_valid_s`` (``None`` if no valid
grasp was found) and the search statistics. Without a budget, ``cycles`` cycles run and every
chain's best state is evaluated (deterministic under ``seed``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxgrasp.planning import losses
from jaxgrasp.planning import planner
from jaxgrasp.planning.engine import Archive
from jaxgrasp.hand.collision import object_in_hand, self_penetration
from jaxgrasp.mesh.geometry import signed_distance
from jaxgrasp.hand.model import HandModel, load_hand
from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.core.lie import so3_exp
from jaxgrasp.planning.settings import EvalConfig, Shapes, StartConfig
from jaxgrasp.quality.q1 import contact_weights, q1_upper

_MM = 1e3  # metres -> millimetres (GraspIt!'s energy unit)
# Fractions of a joint's range are kept in [eps, 1 - eps]: the logit of the joint map is
# infinite at the limits (same guard as kinematics.default_config).
_JOINT_EPS = 1e-3


@dataclasses.dataclass(frozen=True)
class AnnealWeights:
    """Energy weights (the energy is in GraspIt!'s units: millimetres of distance).

    Attributes:
        contact: per mm of mean |distance| of the contact candidates (GraspIt!: 1).
        align: per unit of mean ``1 + n_grip . n_obj`` (GraspIt!: 50).
        penetration: per mm of summed penetration (hand in object, object in hand).
        self_coll: per mm of summed self-penetration.
        quality: per unit of the Q1 upper bound (subtracted).
    """

    contact: float = 1.0
    align: float = 50.0
    penetration: float = 20.0
    self_coll: float = 20.0
    quality: float = 100.0

    def as_dict(self) -> dict[str, float]:
        return {"contact": self.contact, "align": self.align, "penetration": self.penetration,
                "self": self.self_coll, "quality": self.quality}


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


@struct.dataclass
class AnnealParams:
    """The numbers of an :class:`AnnealConfig` as traced leaves (changing them does not recompile);
    only the sample counts are static. Built by :func:`anneal_params`."""

    t_start: jnp.ndarray
    t_end: jnp.ndarray
    steps: jnp.ndarray
    k0: jnp.ndarray
    inv_dims: jnp.ndarray
    step_translation: jnp.ndarray
    step_rotation: jnp.ndarray
    step_joint: jnp.ndarray
    min_step_fraction: jnp.ndarray
    hard_penetration: jnp.ndarray  # inf: no hard constraint
    weights: dict[str, jnp.ndarray]
    beta: jnp.ndarray
    mu: jnp.ndarray
    contact_tolerance: jnp.ndarray
    contact_cos: jnp.ndarray
    hand_samples: int = struct.field(pytree_node=False, default=979)
    self_samples: int = struct.field(pytree_node=False, default=128)


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


# ----------------------------------------------------------------------------------------------
# Schedule and proposals
# ----------------------------------------------------------------------------------------------


def temperature(p: AnnealParams, i: jnp.ndarray) -> jnp.ndarray:
    """GraspIt!'s cooling ``T0 exp(-c k^(1/D))`` rescaled to ``t_start -> t_end`` over a cycle.

    Args:
        p: settings; i: step index within the cycle (scalar, 0..steps).
    """
    e = p.inv_dims
    # k0 > 0 in practice; at k0 = 0, 0 ** e = 0 (e > 0), still finite.
    phi = ((p.k0 + i) ** e - p.k0 ** e) / ((p.k0 + p.steps) ** e - p.k0 ** e)
    return p.t_start * (p.t_end / p.t_start) ** phi


def step_scale(p: AnnealParams, T: jnp.ndarray) -> jnp.ndarray:
    """Proposal std multiplier at temperature ``T``: ``sqrt(T / t_start)``, floored."""
    return jnp.maximum(jnp.sqrt(T / p.t_start), p.min_step_fraction)


def _quat_from_rotvec(r):
    theta_sq = jnp.sum(r * r, axis=-1, keepdims=True)
    small = theta_sq < 1e-8
    # Double where: sin(theta/2)/theta evaluated at a safe angle where theta ~ 0 (series there).
    theta = jnp.sqrt(jnp.where(small, 1.0, theta_sq))
    k = jnp.where(small, 0.5 - theta_sq / 48.0, jnp.sin(0.5 * theta) / theta)
    w = jnp.where(small, 1.0 - theta_sq / 8.0, jnp.cos(0.5 * theta))
    return jnp.concatenate([w, k * r], axis=-1)


def _quat_mul(a, b):
    w1, v1, w2, v2 = a[..., :1], a[..., 1:], b[..., :1], b[..., 1:]
    return jnp.concatenate([w1 * w2 - jnp.sum(v1 * v2, -1, keepdims=True),
                            w1 * v2 + w2 * v1 + jnp.cross(v1, v2)], axis=-1)


def _rotvec_from_quat(q):
    q = jnp.where(q[..., :1] < 0, -q, q)  # w >= 0: the rotation vector of angle <= pi
    w, v = q[..., :1], q[..., 1:]
    s_sq = jnp.sum(v * v, axis=-1, keepdims=True)
    small = s_sq < 1e-12
    # Double where: theta / sin(theta/2) -> 2 / w as the vector part vanishes.
    s = jnp.sqrt(jnp.where(small, 1.0, s_sq))
    f = jnp.where(small, 2.0 / jnp.maximum(w, 0.5), 2.0 * jnp.arctan2(s, w) / s)  # w ~ 1 there
    return f * v


def compose_rotation(delta: jnp.ndarray, r: jnp.ndarray) -> jnp.ndarray:
    """Rotation vector of ``exp(delta) exp(r)`` (world-frame perturbation), angle <= pi."""
    return _rotvec_from_quat(_quat_mul(_quat_from_rotvec(delta), _quat_from_rotvec(r)))


def propose(p: AnnealParams, pivot: jnp.ndarray, x: jnp.ndarray, key: jax.Array, scale: jnp.ndarray) -> jnp.ndarray:
    """A Gaussian neighbour of one configuration.

    The palm rotates about the world position of ``pivot`` (hand frame: the palm's grasp point,
    so a rotation swings the hand around the object rather than about the wrist), then
    translates; joints move in fractions of their range, reflected at the limits.

    Args:
        p: settings; pivot: (3,) hand-frame pivot; x: (6 + I,) configuration;
        key: PRNG key; scale: std multiplier (:func:`step_scale`).

    Returns:
        (6 + I,) proposal.
    """
    kt, kr, kj = jax.random.split(key, 3)
    t, r, z = x[:3], x[3:6], x[6:]
    dt = p.step_translation * scale * jax.random.normal(kt, (3,), x.dtype)
    dr = p.step_rotation * scale * jax.random.normal(kr, (3,), x.dtype)
    r_new = compose_rotation(dr, r)
    # keep the world pivot where it was: t' + R' p = t + R p
    t_new = t + so3_exp(r) @ pivot - so3_exp(r_new) @ pivot + dt
    s = jax.nn.sigmoid(z) + p.step_joint * scale * jax.random.normal(kj, z.shape, x.dtype)
    s = 1.0 - jnp.abs(1.0 - jnp.abs(s))  # reflect at 0 and 1 (steps are << 1)
    s = jnp.clip(s, _JOINT_EPS, 1.0 - _JOINT_EPS)
    return jnp.concatenate([t_new, r_new, jnp.log(s) - jnp.log1p(-s)])


# ----------------------------------------------------------------------------------------------
# Energy
# ----------------------------------------------------------------------------------------------


def energy_terms(hand: HandModel, scene: planner.Scene, config: jnp.ndarray, *, hand_samples: int,
                 self_samples: int, beta, mu, contact_tolerance, contact_cos
                 ) -> tuple[dict[str, jnp.ndarray], dict[str, jnp.ndarray]]:
    """GraspIt!-style energy terms of one configuration (centred frame), before weighting.

    Args:
        hand: the hand model; scene: the decimated problem (``planner.make_scene``).
        config: ``(6 + I,)`` configuration.
        hand_samples: the first (farthest-point ordered) hand samples checked against the object.
        self_samples: the first hand samples checked for self-collision.
        beta, mu: contact-weight alignment decay and friction (quality term).
        contact_tolerance, contact_cos: the evaluation's touching test (diagnostics only).

    Returns:
        ``(terms, diagnostics)``: terms ``{"contact", "align", "penetration", "self",
        "quality"}``; diagnostics ``{"max_pen"}`` (deepest penetration of any kind [m], for the
        hard constraint), ``"touching"`` (candidates passing the evaluation's contact test on the
        decimated mesh) and ``"q1_upper"``.
    """
    posed = pose_hand(hand, config)
    nc = posed.contact_pos.shape[0]
    # One distance query for the contact candidates and the first (farthest-point ordered) hand
    # samples, in as few equal chunks of at most 256 points as possible (little padding).
    q = jnp.concatenate([posed.contact_pos, posed.sample_pos[:hand_samples]]) + scene.com
    n_chunks = -(-q.shape[0] // 256)
    d, n = signed_distance(scene.obj, q, exact=False, chunk_size=-(-q.shape[0] // n_chunks))
    d_c, n_c, d_s, n_s = d[:nc], n[:nc], d[nc:], n[nc:]
    cos = jnp.sum(n_c * posed.contact_normal, axis=-1)
    # The evaluation's contacts (planner.find_contacts): touching candidates, plus one per link
    # whose surface samples touch.
    touch_c = (jnp.abs(d_c) <= contact_tolerance) & (cos < -contact_cos)
    touch_s = (jnp.abs(d_s) <= contact_tolerance) & (
        jnp.sum(n_s * posed.sample_normal[:hand_samples], axis=-1) < -contact_cos)
    links = jnp.zeros(len(hand.body_names), bool).at[hand.sample_body[:hand_samples]].max(touch_s)
    pen_hand = jnp.maximum(-d_s, 0.0)
    pen_obj = object_in_hand(hand, posed.T_world_body, scene.object_points)
    pen_self = self_penetration(hand, posed.T_world_body, posed.sample_pos[:self_samples],
                                hand.sample_body[:self_samples])
    c = contact_weights(d_c, n_c, posed.contact_normal, scene.alpha, beta)
    q1 = q1_upper(posed.contact_pos, n_c, c, mu=mu, torque_scale=scene.torque_scale, directions=scene.directions)
    terms = {
        "contact": _MM * jnp.mean(jnp.abs(d_c)),
        "align": jnp.mean(1.0 + cos),
        "penetration": _MM * (jnp.sum(pen_hand) + jnp.sum(pen_obj)),
        "self": _MM * jnp.sum(pen_self),
        "quality": -q1,
    }
    diag = {
        "max_pen": jnp.maximum(jnp.maximum(jnp.max(pen_hand), jnp.max(pen_obj)), jnp.max(pen_self)),
        "touching": jnp.sum(touch_c, dtype=jnp.int32) + jnp.sum(links, dtype=jnp.int32),
        "q1_upper": q1,
    }
    return terms, diag


def energy(hand: HandModel, scene: planner.Scene, config: jnp.ndarray, p: AnnealParams):
    """``(total, terms)`` of one configuration: the weighted sum of :func:`energy_terms`; the
    total is ``inf`` where ``hard_penetration`` is exceeded (an illegal state)."""
    terms, diag = energy_terms(hand, scene, config, hand_samples=p.hand_samples, self_samples=p.self_samples,
                               beta=p.beta, mu=p.mu, contact_tolerance=p.contact_tolerance,
                               contact_cos=p.contact_cos)
    total, terms = losses.combine(terms, p.weights)
    total = jnp.where(diag["max_pen"] > p.hard_penetration, jnp.inf, total)
    return total, {**terms, **diag}


@jax.jit
def batch_energy(hand: HandModel, scene: planner.Scene, x: jnp.ndarray, p: AnnealParams):
    """:func:`energy` of configurations ``(N, 6 + I)`` -> ``(total (N,), terms)``."""
    return jax.vmap(lambda xi: energy(hand, scene, xi, p))(x)


# ----------------------------------------------------------------------------------------------
# Annealing steps
# ----------------------------------------------------------------------------------------------


@struct.dataclass
class ChainState:
    """State of all chains (leading axis = chain)."""

    x: jnp.ndarray  # (C, 6 + I) current configurations
    e: jnp.ndarray  # (C,) current energies
    best_x: jnp.ndarray  # (C, 6 + I)
    best_e: jnp.ndarray  # (C,)
    best_terms: dict[str, jnp.ndarray]  # (C,) each: energy terms and diagnostics of the best states
    accepted: jnp.ndarray  # (C,) accepted proposals (statistics)
    key: jax.Array  # PRNG key


def _step(hand: HandModel, scene: planner.Scene, p: AnnealParams, pivot: jnp.ndarray, state: ChainState,
          i: jnp.ndarray) -> ChainState:
    """One annealing step of all chains: propose, evaluate all proposals in one vmapped call,
    accept (Metropolis), keep each chain's best."""
    T = temperature(p, i.astype(state.e.dtype))
    key, kp, ka = jax.random.split(state.key, 3)
    keys = jax.random.split(kp, state.x.shape[0])
    x_new = jax.vmap(lambda xi, ki: propose(p, pivot, xi, ki, step_scale(p, T)))(state.x, keys)
    e_new, terms = jax.vmap(lambda xi: energy(hand, scene, xi, p))(x_new)
    u = jax.random.uniform(ka, state.e.shape, state.e.dtype)
    # Downhill always, uphill with probability exp(-dE / T); an illegal (inf) proposal never
    # (the isfinite test; the current energy is always finite, so dE is never inf - inf).
    acc = jnp.isfinite(e_new) & ((e_new <= state.e) | (u < jnp.exp(-(e_new - state.e) / T)))
    x = jnp.where(acc[:, None], x_new, state.x)
    e = jnp.where(acc, e_new, state.e)
    better = acc & (e_new < state.best_e)
    return ChainState(
        x=x, e=e, best_x=jnp.where(better[:, None], x_new, state.best_x), best_e=jnp.where(better, e_new, state.best_e),
        best_terms=jax.tree.map(lambda new, old: jnp.where(better, new, old), terms, state.best_terms),
        accepted=state.accepted + acc, key=key)


@functools.partial(jax.jit, static_argnames=("num_steps",))
def anneal_steps(hand: HandModel, scene: planner.Scene, state: ChainState, pivot: jnp.ndarray, start: jnp.ndarray,
                 p: AnnealParams, num_steps: int) -> ChainState:
    """``num_steps`` annealing steps of all chains from step ``start`` of the cycle (one scan;
    compiled once per hand, padded scene size, chain count and ``num_steps``).

    Args:
        hand, scene: the problem; state: the chains; pivot: (3,) rotation pivot (hand frame);
        start: () int, index of the first step in the cooling schedule; p: settings.

    Returns:
        The advanced :class:`ChainState`.
    """
    def body(st, i):
        return _step(hand, scene, p, pivot, st, start + i), None

    return jax.lax.scan(body, state, jnp.arange(num_steps))[0]


# ----------------------------------------------------------------------------------------------
# Planner
# ----------------------------------------------------------------------------------------------


def anneal_scene(hand: HandModel, obj, tm, cfg: AnnealConfig) -> planner.Scene:
    """The energy's scene (``planner.make_scene`` with ``opt_faces`` and ``object_samples`` of
    ``cfg``), padded to one face count for every object so the energy compiles once per hand."""
    scene_cfg = planner.PlanConfig(shapes=Shapes(opt_faces=cfg.opt_faces, object_samples=cfg.object_samples),
                                   evaluation=cfg.evaluation, seed=cfg.seed)
    return planner.make_scene(obj, tm, scene_cfg, dtype=hand.body_pos.dtype, pad_faces=planner.face_bucket(cfg.opt_faces))


def init_chains(x0: jnp.ndarray, key: jax.Array) -> ChainState:
    """Chains at configurations ``x0 (C, 6 + I)``. Their energy is not computed (that would be a
    second compilation of the energy): it is set to the largest finite value, so each chain's
    first legal proposal is accepted, and every later state is scored."""
    big = jnp.full(x0.shape[:1], jnp.finfo(x0.dtype).max / 4, x0.dtype)  # finite: dE never inf - inf
    zero = jnp.zeros(x0.shape[:1], x0.dtype)
    terms = {k: zero for k in ("contact", "align", "penetration", "self", "quality", "q1_upper")}
    terms.update(max_pen=jnp.full_like(zero, jnp.inf), touching=jnp.zeros(x0.shape[:1], jnp.int32))
    return ChainState(x=x0, e=big, best_x=x0, best_e=big, best_terms=terms,
                      accepted=jnp.zeros(x0.shape[:1], jnp.int32), key=key)


class _Evaluations:
    """The exact evaluations of chain bests into an :class:`~jaxgrasp.planning.engine.Archive` keyed by
    chain (``data["energy"]``: the chain's energy there), and their time."""

    def __init__(self, hand: HandModel, obj, tm, cfg: AnnealConfig, t0: float):
        self.hand, self.obj, self.tm, self.cfg = hand, obj, tm, cfg
        self.archive = Archive(t0)
        self.seconds = 0.0

    def run(self, chain: int, x: np.ndarray, e: float) -> None:
        t = time.perf_counter()
        m = planner.evaluate(self.hand, self.obj, x, self.cfg.evaluation, self.tm, extras=False)
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
    obj, report, tm = planner.as_object(mesh, units=units)
    scene = anneal_scene(hand_model, obj, tm, cfg)
    p = anneal_params(cfg, hand_model)
    # The planner's starts (same key use as api.plan_grasps: equal with chains == num_starts).
    x0 = planner.initial_configs(hand_model, float(obj.size), cfg.chains, jax.random.PRNGKey(cfg.seed),
                                 opening=cfg.starts.opening, standoff=cfg.starts.standoff,
                                 axes=planner.principal_axes(obj))
    pivot = jnp.asarray(planner.grasp_point(hand_model, cfg.starts.opening), hand_model.body_pos.dtype)
    state = init_chains(x0, jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1))
    ev = _Evaluations(hand_model, obj, tm, cfg, t0)
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
    out = planner.archive_results(hand_model, obj, report, tm, ev.archive, num_grasps, cfg.evaluation, t0, extra)
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
