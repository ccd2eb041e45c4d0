"""Kernels of the simulated-annealing baseline (:mod:`jaxgrasp.planning.baseline`): its
GraspIt!-style energy, cooling schedule, proposals and the jitted annealing steps of all chains.

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
Every chain keeps its lowest-energy state.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import struct

from jaxgrasp.core.configuration import split
from jaxgrasp.core.lie import compose_rotvec, so3_exp
from jaxgrasp.hand.collision import object_in_hand, self_penetration
from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.hand.model import HandModel
from jaxgrasp.mesh.geometry import signed_distance
from jaxgrasp.planning import losses, planner
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
    t, r, z = split(x)
    dt = p.step_translation * scale * jax.random.normal(kt, (3,), x.dtype)
    dr = p.step_rotation * scale * jax.random.normal(kr, (3,), x.dtype)
    r_new = compose_rotvec(dr, r)
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
