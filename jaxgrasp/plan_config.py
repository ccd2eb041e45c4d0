"""The planner's settings: :class:`PlanConfig` (the main loop, evaluation and anytime schedule)
and :class:`SqueezeConfig` (the contact-closing phase). Frozen dataclasses: the fields the compiled
steps read are their static key (:data:`jaxgrasp.planner.STEP_FIELDS`); update with
``dataclasses.replace``. Re-exported by :mod:`jaxgrasp.planner`.
"""

from __future__ import annotations

import dataclasses

from jaxgrasp import losses


@dataclasses.dataclass(frozen=True)
class SqueezeConfig:
    """The contact-closing phase ("squeeze"; not in the paper), lengths in metres.

    The exact Q1 counts only contacts within ``PlanConfig.contact_tolerance`` (3 mm) of the
    surface, while the loss's generalized Q1 bound is already high when fingers hover a few
    millimetres off it. After the main steps, the best grasps found are squeezed: ``steps`` Adam
    steps from each on the main loss plus the touch term (near candidates that face the object
    are pulled to within ``target`` of the surface), with collision and self-collision weighted
    ``collision`` times more, so closing does not push fingers into the object or each other.
    A squeezed grasp is kept only when its exact evaluation ranks better.

    Measured (this 2-core CPU, 10 objects: 6 procedural and 4 scans): squeezing the 8 best
    grasps of 30 s planning runs once raised the mean exact Q1 of the best valid grasp from 0.150
    to 0.215 (with 1x collision weights most squeezed grasps penetrated 1-4 mm and were rejected:
    0.159). Inside anytime planning at 30 s: 0.149 without squeeze, 0.183 squeezing grasps once,
    0.212 letting squeezed grasps be squeezed again in later rounds (the default).

    Attributes:
        steps: Adam steps of one squeeze (0: no squeeze).
        learning_rate: initial Adam step (cosine decay over ``steps``), scaled variables.
        touch: weight of the touch term.
        collision: multiplier of the collision and self-collision weights.
        self_samples: hand samples checked for self-collision (the main loop uses fewer).
        collision_margin: hand samples are pushed this far outside the object.
        capture: distance scale of the candidates pulled (:func:`touch_weights`).
        target: gap below which a candidate is touching for the touch term (under the
            evaluation's 3 mm tolerance).
    """

    steps: int = 60
    learning_rate: float = 0.02
    touch: float = 1.0
    collision: float = 10.0
    self_samples: int = 1024
    collision_margin: float = 0.0005
    capture: float = 0.01
    target: float = 0.001


@dataclasses.dataclass(frozen=True)
class PlanConfig:
    """Planner settings (lengths in metres).

    Attributes:
        num_starts: starts optimized together (approach directions spread on a sphere).
        steps: Adam steps.
        learning_rate: Adam step on the scaled variables (see ``translation_scale``...).
        translation_scale: metres per unit of the translation variables.
        rotation_scale: radians per unit of the rotation-vector variables.
        opening: initial joint opening, fraction of each independent joint's range.
        standoff: initial gap between the palm's grasp point and the object's bounding sphere.
        opt_samples: hand collision samples used inside the loop (evaluation uses all).
        self_samples: the first (farthest-point ordered) samples used for self-collision.
        opt_faces: the object mesh is decimated to at most this many faces for the loop.
        object_points: object points checked against the hand's hulls in the loop (the
            ones nearest the hand, out of ``object_samples``).
        object_samples: dense object surface sample the active points are chosen from.
        weights: loss weights (paper Table I by default).
        alpha_per_size, beta, mu: contact weight and friction (alpha = alpha_per_size / L).
        num_directions: D of the Q1 upper bound.
        q1_temperature: ``T > 0``: the loss's Q1 bound takes a soft minimum over its directions
            (:func:`jaxgrasp.quality.q1_upper`), whose gradient reaches the best contact of every
            weak direction, not one contact; 0: the hard minimum. Measured (2-core CPU, 30 s
            anytime runs), mean exact Q1 of the best valid grasp on a 10-object mix: T = 0: 0.228
            and 0.2245 (seeds 0, 1); 0.05: 0.252 and 0.226. On the full benchmark, 0.05 (with a
            squeeze on the evaluation's own object points, not kept): Q1 0.284 against 0.282 at
            T = 0, the mustard bottle 0.086 -> 0.270, but the scans' median time to a first
            valid grasp 2.27 s against 1.58 s (target 2 s): the default stays 0.
        q1_search_steps: ``> 0``: the loss's Q1 bound also descends on the sphere of wrench
            directions from its 4 weakest fixed ones (``search_steps`` of
            :func:`jaxgrasp.quality.q1_upper`): a tighter upper bound (median 1.1x the exact Q1
            where the 64 fixed directions give 2x). Measured (same mix and runs as above, seed 0,
            with the evaluation schedule of the time): 12 steps 0.222 against 0.228 (the mustard
            bottle 0.083 -> 0.156, the cracker box 0.145 -> 0.021): the default stays 0.
        q1_temperature_valid: anytime planning only: once a grasp is valid, the main steps use
            this ``q1_temperature`` (None: ``q1_temperature`` throughout), so the soft bound can
            raise Q1 without slowing the first valid grasp (which comes before it). Compiles a
            second version of the steps when it differs. Measured (10-object mix, 30 s, seeds
            0 / 1, without ``background``): 0.05 gave 0.270 / 0.266, None 0.262 / 0.272: not the
            default.
        penetration_scale: depth [m] at which a penetrating sample costs 1 (collision terms).
        collision_margin: hand samples are pushed this far outside the object, so the
            optimum does not sit at the edge of penetration.
        contact_tolerance: |d| below which a contact candidate counts as touching (evaluation).
        contact_cos: a touching candidate's normal must face the object (n_obj . n_grip below
            -contact_cos).
        max_penetration: a grasp is valid with force closure and penetration below this.
        num_edges: friction-cone edges for the exact Q1.
        eval_every, eval_top: with a ``time_budget`` (anytime planning), every ``eval_every``
            steps the ``eval_top`` starts with the lowest loss are evaluated exactly.
        eval_from: anytime planning evaluates from this many steps into a round on (no start
            was valid earlier in 50 traced runs over the scans and procedural objects: the hand
            is still approaching), or when the budget is spent before anything was evaluated.
        eval_every_valid: once a grasp is valid, the lowest-loss starts are evaluated only every
            this many steps (the default, ``steps``: only at the end of each round). Until then
            evaluating often finds the first valid grasp early; after it, the best grasps mostly
            come at a round's end, and the time goes to more steps instead.
        eval_final: evaluate every start (not only the ``eval_top`` lowest-loss ones) at the end
            of each round, so each round's final grasps can all be squeezed. Measured with
            ``eval_every_valid`` (2-core CPU, 10-object mix of the planner benchmark, 30 s anytime
            runs, mean exact Q1 of the best valid grasp, seeds 0 / 1): every 10 steps without
            ``eval_final`` (the previous default) 0.228 / 0.2245; 40 with it 0.250 / 0.272; 200
            with it 0.262 / 0.272; ~25% more steps in the same time (without ``background``).
        background: anytime planning runs its squeeze passes, and its exact evaluations once a
            grasp is valid, on a background thread while the steps go on
            (:mod:`jaxgrasp.anytime`); False: in the loop, in turn. Measured (2-core CPU, the
            10-object mix above, 30 s): ~1,000 -> ~1,400 steps per run on the procedural
            objects, mean exact Q1 0.262 / 0.272 -> 0.284 / 0.278 (seeds 0 / 1).
        background_before_valid: with ``background``, the exact evaluations also run on the
            background thread before the first valid grasp (False: those run at once, in turn with
            the steps, as the serial loop does). Measured (2-core CPU, 6 scans that both settings
            solve, seeds 0-2, 4 s budget): median time to a first valid grasp 1.99 s against 2.20 s
            (the cracker box 1.95-3.43 s against 2.78 s or none in 4 s; the easy scans ~0.2 s
            later). Before ``map_starts`` made the steps cheaper, 4 scans' single runs took
            1.8-3.5 s in the background against 1.3-3.4 s in turn.
        exploit: anytime rounds after the first replace this many of their fresh starts by the
            best valid grasps found so far plus Gaussian noise (:func:`jaxgrasp.planner.exploit_starts`).
            Measured (2-core CPU, the planner benchmark's 28 objects, 30 s anytime runs, seed 0):
            mean exact Q1 0.294 with 4 against 0.303 without (per-object run-to-run spread ~0.03,
            so ~0.006 on the mean): off by default.
        exploit_noise: standard deviation of that noise, in scaled variables (``x / scale``).
        q1_bound: the Q1 term of the loss: ``"upper"`` (eq. 3, cheap) or ``"lower"`` (the SOS/SDP
            certificate of eq. 4 over the 16 highest-weight candidates; ~50x costlier per step).
        refine_steps: after the main steps, refine the returned grasps with this many Adam steps
            on the loss with the SDP lower bound (paper IV.B, eq. 4; 0 = off); a refined grasp replaces
            the original only when its exact evaluation ranks better.
        refine_learning_rate: Adam step of the refinement.
        squeeze: the contact-closing phase run on the best grasps (:class:`SqueezeConfig`);
            ``SqueezeConfig(steps=0)`` turns it off.
        seed: PRNG seed (initial rolls; anytime rounds use ``seed``, ``seed + 1``, ...).
    """

    num_starts: int = 8
    steps: int = 200
    learning_rate: float = 0.05
    translation_scale: float = 0.02
    rotation_scale: float = 0.2
    opening: float = 0.1
    standoff: float = 0.015
    opt_samples: int = 256
    self_samples: int = 256
    opt_faces: int = 256
    object_points: int = 128
    object_samples: int = 1024
    # guide 1.0 rather than Table I's 0.1: our guide term measures distances in object sizes
    # (d / L), and 1.0 gave more force-closure starts on the procedural set (see the README).
    weights: losses.LossWeights = dataclasses.field(default_factory=lambda: losses.LossWeights(guide=1.0))
    alpha_per_size: float = 6.0
    beta: float = 8.0
    mu: float = 0.7
    num_directions: int = 64
    q1_temperature: float = 0.0
    q1_search_steps: int = 0
    q1_temperature_valid: float | None = None
    penetration_scale: float = 0.002
    collision_margin: float = 0.001
    contact_tolerance: float = 0.003
    contact_cos: float = 0.5
    max_penetration: float = 0.001
    num_edges: int = 8
    eval_every: int = 10
    eval_top: int = 2
    eval_from: int = 30
    eval_every_valid: int = 200
    eval_final: bool = True
    background: bool = True
    background_before_valid: bool = True
    exploit: int = 0
    exploit_noise: float = 0.3
    q1_bound: str = "upper"
    refine_steps: int = 0
    refine_learning_rate: float = 0.01
    squeeze: SqueezeConfig = SqueezeConfig()
    seed: int = 0
