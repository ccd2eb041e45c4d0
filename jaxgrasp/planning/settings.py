"""The planner's settings, grouped by role.

* :class:`EvalConfig`: what a grasp *is*: the contact model (friction, contact weights) and the
  validity thresholds. One object shared by the planner's loss constants, the exact evaluation,
  the annealing baseline, training and the network's evaluation.
* :class:`Shapes`: the static sizes of the compiled steps (starts, samples, faces). Changing one
  compiles new steps; nothing else does.
* :class:`LossConfig`: the loss's weights and length scales. They reach the compiled steps as
  traced values (:class:`jaxgrasp.planning.engine.LossParams`): changing a weight never recompiles.
* :class:`OptimizerConfig`, :class:`StartConfig`: Adam's step and variable scales (traced) and
  the starts' layout (host).
* :class:`Schedule`: host-only: steps per round, evaluation cadence, background thread, the
  refinement phase.
* :class:`SqueezeConfig`: the contact-closing phase.

:class:`PlanConfig` holds one of each plus the seed. Frozen dataclasses: update with
``dataclasses.replace`` (e.g. ``replace(cfg, shapes=replace(cfg.shapes, num_starts=4))``).
The flat keywords of earlier versions (``PlanConfig(num_starts=4, steps=25)``, ``cfg.steps``)
still work and warn (:data:`LEGACY_FIELDS`). Why each default is what it is:
``docs/decisions.md``.
"""

from __future__ import annotations

import dataclasses
import warnings

from jaxgrasp.planning import losses


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The contact model and what makes a grasp valid (lengths in metres).

    Attributes:
        mu: friction coefficient (the loss's Q1 bound and the exact Q1).
        alpha_per_size, beta: generalized contact weights ``exp(-alpha d) ...`` with
            ``alpha = alpha_per_size / L`` (L: the object's size); paper eq. 2.
        num_directions: D, wrench directions of the Q1 upper bound (eq. 3).
        contact_tolerance: ``|d|`` below which a contact candidate counts as touching.
        contact_cos: a touching candidate's hand normal must face the object
            (``n_obj . n_grip < -contact_cos``).
        max_penetration: a grasp is valid with force closure and penetration (hand into object,
            object into hand, self) at most this.
        num_edges: friction-cone edges of the exact Q1.
        real_geoms: a grasp the sampled check accepts is also measured against the hand file's
            real collision geoms (:mod:`jaxgrasp.planning.geom_check`), and is valid only if they
            penetrate at most ``max_penetration`` too (False: the sampled check alone, cheaper).
    """

    mu: float = 0.7
    alpha_per_size: float = 6.0
    beta: float = 8.0
    num_directions: int = 64
    contact_tolerance: float = 0.003
    contact_cos: float = 0.5
    max_penetration: float = 0.001
    num_edges: int = 8
    real_geoms: bool = True


@dataclasses.dataclass(frozen=True)
class Shapes:
    """Static sizes of the compiled steps.

    Attributes:
        num_starts: S, starts optimized together.
        opt_samples: hand collision samples checked against the object in the loop (the
            nearest ones: the active set).
        self_samples: the first (farthest-point ordered) hand samples used for self-collision.
        opt_faces: the object mesh is decimated to at most this many faces for the loop (and
            padded to a power of two, at least 256).
        object_points: object points checked against the hand's hulls in the loop (the ones
            nearest the hand, out of ``object_samples``).
        object_samples: dense object surface sample the active points are chosen from.
    """

    num_starts: int = 8
    opt_samples: int = 256
    self_samples: int = 256
    opt_faces: int = 256
    object_points: int = 128
    object_samples: int = 1024


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The main loss (paper VI.A): weights and length scales (traced in the steps).

    Attributes:
        weights: term weights; guide 1.0 rather than Table I's 0.1 because our guide term
            measures distances in object sizes (docs/decisions.md).
        penetration_scale: depth [m] at which a penetrating sample costs 1 (collision terms).
        collision_margin: hand samples are pushed this far outside the object.
        q1_bound: ``"upper"`` (eq. 3, cheap) or ``"lower"`` (the SOS/SDP certificate of eq. 4;
            ~50x costlier per step). Static: it picks the compiled term.
        real_geoms: the collision term also measures the hand file's own collision geoms
            (capsule axes, sphere centres, box and hull corners, object points inside the
            primitives; ``plan_grasps`` attaches them, :func:`jaxgrasp.planning.geom_check.with_geoms`).
            Off by default: it doubles the Shadow Hand's step cost and has not yet shortened the
            time to a valid grasp (docs/decisions.md, section 15).
    """

    weights: losses.LossWeights = dataclasses.field(default_factory=lambda: losses.LossWeights(guide=1.0))
    penetration_scale: float = 0.002
    collision_margin: float = 0.001
    q1_bound: str = "upper"
    real_geoms: bool = False

    def __post_init__(self):
        if self.q1_bound not in ("upper", "lower"):
            raise ValueError(f"q1_bound must be 'upper' or 'lower', got {self.q1_bound!r}")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam on scaled variables ``y = x / scale`` (one step size fits metres, radians, logits).

    Attributes:
        learning_rate: initial step (cosine decay to 5% over a round's steps).
        translation_scale: metres per unit of the translation variables.
        rotation_scale: radians per unit of the rotation-vector variables.
    """

    learning_rate: float = 0.05
    translation_scale: float = 0.02
    rotation_scale: float = 0.2


@dataclasses.dataclass(frozen=True)
class StartConfig:
    """The starts: approach directions on a sphere in the object's principal axes.

    Attributes:
        opening: initial joint opening, fraction of each independent joint's range.
        standoff: gap [m] between the palm's grasp point and the object's bounding sphere.
    """

    opening: float = 0.1
    standoff: float = 0.015


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Host-side schedule: how many steps, when to evaluate, what runs in the background.

    Attributes:
        steps: Adam steps of one round (the fixed-step planner runs one round).
        eval_every, eval_top: anytime planning evaluates the ``eval_top`` lowest-loss starts
            every ``eval_every`` steps (``eval_every`` is also the compiled chunk length).
        eval_from: ... from this many steps into a round on (earlier, the hand still approaches).
        eval_every_valid: once a grasp is valid, the cadence of those evaluations.
        eval_final: evaluate every start at the end of each round.
        background: anytime planning runs squeeze passes, and evaluations, on a background
            thread while the steps go on.
        background_before_valid: ... evaluations before the first valid grasp too.
        refine_steps: after the main steps, refine the returned grasps with this many steps on
            the loss with the SDP lower bound (paper IV.B; 0: off); kept where they rank better.
        refine_learning_rate: Adam step of the refinement.
    """

    steps: int = 200
    eval_every: int = 10
    eval_top: int = 2
    eval_from: int = 30
    eval_every_valid: int = 200
    eval_final: bool = True
    background: bool = True
    background_before_valid: bool = True
    refine_steps: int = 0
    refine_learning_rate: float = 0.01


@dataclasses.dataclass(frozen=True)
class SqueezeConfig:
    """The contact-closing phase ("squeeze"; not in the paper), lengths in metres.

    The exact Q1 counts only contacts within ``EvalConfig.contact_tolerance`` of the surface,
    while the loss's generalized bound is already high when fingers hover a few millimetres off
    it. The best grasps are squeezed: ``steps`` Adam steps on the main loss plus the touch term
    (near candidates facing the object pulled to within ``target``), with the collision and
    self-collision weights multiplied by ``collision``; a squeezed grasp is kept only when its
    exact evaluation ranks better.

    Attributes:
        steps: Adam steps of one squeeze (0: no squeeze).
        learning_rate: initial Adam step (cosine decay over ``steps``).
        touch: weight of the touch term.
        collision: multiplier of the collision and self-collision weights.
        self_samples: hand samples checked for self-collision.
        collision_margin: hand samples are pushed this far outside the object.
        capture: distance scale of the candidates pulled (:func:`jaxgrasp.planning.objective.touch_weights`).
        target: gap below which a candidate is touching for the touch term.
    """

    steps: int = 60
    learning_rate: float = 0.02
    touch: float = 1.0
    collision: float = 10.0
    self_samples: int = 1024
    collision_margin: float = 0.0005
    capture: float = 0.01
    target: float = 0.001


_GROUPS = ("shapes", "loss", "evaluation", "optimizer", "starts", "schedule")
_GROUP_TYPES = {"shapes": Shapes, "loss": LossConfig, "evaluation": EvalConfig, "optimizer": OptimizerConfig,
                "starts": StartConfig, "schedule": Schedule}

# Flat keyword of earlier versions -> the group that holds it now.
LEGACY_FIELDS = {f.name: g for g, t in _GROUP_TYPES.items() for f in dataclasses.fields(t)}
# Settings deleted after measurement (docs/decisions.md); an old checkpoint that holds them at
# their old default still loads, any other value is an error.
REMOVED_FIELDS = {"q1_temperature": 0.0, "q1_search_steps": 0, "q1_temperature_valid": None, "exploit": 0,
                  "exploit_noise": 0.3}


@dataclasses.dataclass(frozen=True, init=False)
class PlanConfig:
    """All planner settings: one of each group plus the seed (see the module docstring).

    Attributes:
        shapes, loss, evaluation, optimizer, starts, schedule: :class:`Shapes`,
            :class:`LossConfig`, :class:`EvalConfig`, :class:`OptimizerConfig`,
            :class:`StartConfig`, :class:`Schedule`.
        squeeze: :class:`SqueezeConfig` (``SqueezeConfig(steps=0)``: off).
        seed: PRNG seed (starts; anytime rounds use ``seed``, ``seed + 1``, ...).
    """

    shapes: Shapes
    loss: LossConfig
    evaluation: EvalConfig
    optimizer: OptimizerConfig
    starts: StartConfig
    schedule: Schedule
    squeeze: SqueezeConfig
    seed: int

    def __init__(self, shapes: Shapes | None = None, loss: LossConfig | None = None,
                 evaluation: EvalConfig | None = None, optimizer: OptimizerConfig | None = None,
                 starts: StartConfig | None = None, schedule: Schedule | None = None,
                 squeeze: SqueezeConfig | None = None, seed: int = 0, **legacy):
        groups = {"shapes": shapes, "loss": loss, "evaluation": evaluation, "optimizer": optimizer,
                  "starts": starts, "schedule": schedule}
        groups = {g: v if v is not None else _GROUP_TYPES[g]() for g, v in groups.items()}
        if legacy:
            bad = sorted(set(legacy) - set(LEGACY_FIELDS) - set(REMOVED_FIELDS))
            if bad:
                raise TypeError(f"PlanConfig got unknown settings {bad}; groups: {list(_GROUPS)} "
                                f"(flat names still accepted: {sorted(LEGACY_FIELDS)})")
            removed = {k: v for k, v in legacy.items() if k in REMOVED_FIELDS}
            changed = {k: v for k, v in removed.items() if v != REMOVED_FIELDS[k]}
            if changed:
                raise TypeError(f"PlanConfig settings {sorted(changed)} were removed after measurement "
                                "(they did not help; see docs/decisions.md)")
            flat = {k: v for k, v in legacy.items() if k not in REMOVED_FIELDS}
            if flat:
                warnings.warn(f"PlanConfig({', '.join(sorted(flat))}=...) is deprecated: pass the groups "
                              f"({', '.join(sorted({LEGACY_FIELDS[k] for k in flat}))})", DeprecationWarning,
                              stacklevel=2)
            for k, v in flat.items():
                g = LEGACY_FIELDS[k]
                groups[g] = dataclasses.replace(groups[g], **{k: v})
        for g, v in groups.items():
            object.__setattr__(self, g, v)
        object.__setattr__(self, "squeeze", squeeze if squeeze is not None else SqueezeConfig())
        object.__setattr__(self, "seed", int(seed))

    def __getattr__(self, name: str):
        # Only reached when normal lookup fails: the flat names of earlier versions.
        group = LEGACY_FIELDS.get(name)
        if group is None:
            raise AttributeError(f"PlanConfig has no setting {name!r}")
        warnings.warn(f"PlanConfig.{name} is deprecated: use PlanConfig.{group}.{name}", DeprecationWarning,
                      stacklevel=2)
        return getattr(object.__getattribute__(self, group), name)

    def to_dict(self) -> dict:
        """Nested plain dict (JSON-able), the inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PlanConfig":
        """A config from :meth:`to_dict`'s nested dict or an earlier version's flat dict."""
        d = dict(d)
        kw = {}
        for g, t in _GROUP_TYPES.items():
            if isinstance(d.get(g), dict):
                sub = dict(d.pop(g))
                if g == "loss" and isinstance(sub.get("weights"), dict):
                    sub["weights"] = losses.LossWeights(**sub["weights"])
                kw[g] = t(**sub)
        if isinstance(d.get("squeeze"), dict):
            d["squeeze"] = SqueezeConfig(**d["squeeze"])
        if isinstance(d.get("weights"), dict):
            d["weights"] = losses.LossWeights(**d["weights"])
        seed = d.pop("seed", 0)
        squeeze = d.pop("squeeze", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return cls(**kw, squeeze=squeeze, seed=seed, **d)


def with_starts(cfg: PlanConfig, num_starts: int) -> PlanConfig:
    """``cfg`` with at least ``num_starts`` starts."""
    if cfg.shapes.num_starts >= num_starts:
        return cfg
    return dataclasses.replace(cfg, shapes=dataclasses.replace(cfg.shapes, num_starts=num_starts))
