"""The simulation protocol's settings, schedule and results, shared by the C loop
(:mod:`jaxgrasp.sim.simulate`) and the MJX backend (:mod:`jaxgrasp.sim.mjx`).

:class:`SimConfig` (settings), :data:`DIRECTIONS` (the six push directions, in test order),
:func:`schedule` (the settings in time steps), :class:`DirectionResult` / :class:`SimResult`
(outcomes), :func:`failure_reason` and :func:`verdict` (how a grasp's outcome is decided). The
protocol itself is described in :mod:`jaxgrasp.sim.simulate`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["CHECK_EVERY", "DIRECTIONS", "DirectionResult", "SimConfig", "SimResult", "failed_result",
           "failed_with", "failure_reason", "ramp", "schedule", "verdict"]

DIRECTIONS = (("+x", (1, 0, 0)), ("-x", (-1, 0, 0)), ("+y", (0, 1, 0)), ("-y", (0, -1, 0)),
              ("+z", (0, 0, 1)), ("-z", (0, 0, -1)))
CHECK_EVERY = 0.1  # seconds between pose checks during a direction's push


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Simulation settings (SI units).

    Attributes:
        protocol: ``"dexgraspbench"`` (external force, gravity off) or ``"gravity6"`` (DexGraspNet:
            gravity along each direction, no external force).
        force_per_kg: external force per kilogram of object mass [N/kg] (dexgraspbench; 10 as
            DexGraspBench, about 1x the weight; 98.1 for 10x the weight).
        gravity: ``g`` [m/s^2] (the gravity of the gravity6 protocol).
        duration: seconds per direction.
        max_translation: success threshold on the centre-of-mass displacement [m].
        max_rotation_deg: success threshold on the rotation [deg].
        max_initial_penetration: fail outright above this initial hand-object penetration [m].
        squeeze: the fallback squeeze (grasps without contacts or feasible contact forces,
            :mod:`jaxgrasp.sim.forces`): step per independent joint, fraction of its range, closing
            direction.
        close_time: seconds to ramp the position targets from the pregrasp to the grasp angles
            (DexGraspBench ``fc_mocap``: 0.4 s).
        squeeze_time: seconds to ramp them from the grasp to the squeeze angles (0.4 s).
        contact_margin: hand-object contacts within this distance [m] of the object count in the
            contact-force solve (:mod:`jaxgrasp.sim.forces`).
        min_normal_force, max_normal_force: bounds on every contact's normal force in the solve [N].
        force_safety: the solve resists this many times the test push (the solve is quasi-static
            and rigid; the simulated fingers are compliant position servos and the object starts
            free: :mod:`jaxgrasp.sim.forces`).
        start_at_pregrasp: start each direction at the pregrasp (DexGraspBench ``fc_mocap``: fingers
            opened, palm backed off; both move to the grasp over ``close_time``; the default: it
            held more planned grasps at DexGraspBench's force, :mod:`jaxgrasp.sim.simulate`);
            False: at the grasp (the closing ramp then holds the grasp).
        pregrasp_clearance: the pregrasp opens the fingers until they are this far [m] from the
            object, and backs the palm off until the whole hand is (:mod:`jaxgrasp.sim.pregrasp`).
        pregrasp_palm_backoff: how far [m] the pregrasp's palm is backed off from the grasp's,
            along the palm normal reversed (None: the smallest that clears the whole hand by
            ``pregrasp_clearance``; 0: the palm stays at the grasp, the welded-palm sequence).
        timestep: simulation step [s].
        friction: sliding friction coefficient (every geom).
        torsional_friction: torsional friction coefficient (``condim 4``).
        object_mass: object mass [kg] (None: ``object_density`` times the pieces' volume).
        object_density: [kg/m^3], used when ``object_mass`` is None.
        kp: position gain of every actuator (5 as DexGraspBench for the Shadow Hand; None: the
            hand file's own gains, and 5 for actuators added to a hand that has none).
        force_limit: actuator force/torque limit (None: the hand file's own limits).
        stop_on_failure: end the test at the first failing direction (DexGraspBench).
        coacd_threshold: CoACD concavity threshold (smaller: more pieces).
        max_pieces: at most this many convex pieces (CoACD ``max_convex_hull``).
    """

    protocol: str = "dexgraspbench"
    force_per_kg: float = 10.0
    gravity: float = 9.81
    duration: float = 2.0
    max_translation: float = 0.05
    max_rotation_deg: float = 15.0
    max_initial_penetration: float = 0.01
    squeeze: float = 0.05
    close_time: float = 0.4
    squeeze_time: float = 0.4
    contact_margin: float = 0.003
    min_normal_force: float = 0.2
    max_normal_force: float = 200.0
    force_safety: float = 3.0
    pregrasp_clearance: float = 0.005
    pregrasp_palm_backoff: float | None = None
    start_at_pregrasp: bool = True
    timestep: float = 0.004
    friction: float = 0.6
    torsional_friction: float = 0.02
    object_mass: float | None = 0.1
    object_density: float = 1000.0
    kp: float | None = 5.0
    force_limit: float | None = None
    stop_on_failure: bool = True
    coacd_threshold: float = 0.05
    max_pieces: int = 32

    def __post_init__(self):
        if self.protocol not in ("dexgraspbench", "gravity6"):
            raise ValueError(f"SimConfig.protocol must be 'dexgraspbench' or 'gravity6', got {self.protocol!r}")
        if not (self.timestep > 0 and self.duration > 0):
            raise ValueError("timestep and duration must be > 0")
        if self.close_time < 0 or self.squeeze_time < 0:
            raise ValueError("close_time and squeeze_time must be >= 0")
        if self.pregrasp_palm_backoff is not None and self.pregrasp_palm_backoff < 0:
            raise ValueError("pregrasp_palm_backoff must be >= 0 or None")
        if not 0 <= self.min_normal_force <= self.max_normal_force:
            raise ValueError("need 0 <= min_normal_force <= max_normal_force")


@dataclasses.dataclass(frozen=True)
class DirectionResult:
    """One direction of the test: worst displacement [mm] and rotation [deg] seen, and success."""

    name: str
    displacement_mm: float
    rotation_deg: float
    success: bool


@dataclasses.dataclass(frozen=True)
class SimResult:
    """Outcome of one grasp.

    Attributes:
        success: the object stayed within the thresholds in every direction.
        reason: ``"ok"``, ``"initial_penetration"`` or ``"moved <dir>"`` / ``"turned <dir>"``.
        initial_penetration_mm: deepest hand-object penetration at the grasp (MuJoCo contacts
            with the convex pieces).
        self_penetration_mm: deepest hand-hand penetration at the grasp.
        initial_contacts: hand-object contacts (dist <= 0) at the grasp.
        directions: per direction run (fewer than six when the test stopped early).
        num_pieces: convex pieces of the object.
        grasp_file, object_file: where the grasp and the mesh came from.
        planner_penetration_mm: the penetration the grasp file reports (planner's exact measure).
        wall_s: seconds spent simulating (the pregrasp and squeeze derivation included).
        hand: the hand's name.
        squeeze_source: where the squeeze came from: ``"forces"`` (contact-force solve),
            ``"fallback:no_contacts"`` / ``"fallback:infeasible"`` (fraction of range), prefixed
            ``"file:"`` when the grasp file gave it.
        max_normal_force_n: largest normal force of the squeeze's force set [N] (NaN: none solved).
        sim_normal_force_n: largest hand-object contact normal force MuJoCo reports at the end of
            the squeeze, before the push, over the directions run [N] (NaN: not measured, MJX).
    """

    success: bool
    reason: str
    initial_penetration_mm: float
    self_penetration_mm: float
    initial_contacts: int
    directions: tuple[DirectionResult, ...]
    num_pieces: int
    grasp_file: str
    object_file: str
    planner_penetration_mm: float | None
    wall_s: float
    hand: str = ""
    squeeze_source: str = ""
    max_normal_force_n: float = float("nan")
    sim_normal_force_n: float = float("nan")

    @property
    def max_displacement_mm(self) -> float:
        return max((d.displacement_mm for d in self.directions), default=float("nan"))

    @property
    def max_rotation_deg(self) -> float:
        return max((d.rotation_deg for d in self.directions), default=float("nan"))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["max_displacement_mm"] = self.max_displacement_mm
        d["max_rotation_deg"] = self.max_rotation_deg
        return d


def schedule(cfg: SimConfig) -> tuple[int, int, int, int]:
    """Time steps of a direction: ``(n_close, n_squeeze, n_check, n_push)``: ramping the position
    targets from the pregrasp to the grasp angles, from the grasp to the squeeze angles, between
    pose checks (at least 1), pushing."""
    n_close = int(round(cfg.close_time / cfg.timestep))
    n_squeeze = int(round(cfg.squeeze_time / cfg.timestep))
    n_check = max(int(round(CHECK_EVERY / cfg.timestep)), 1)
    n_push = int(round(cfg.duration / cfg.timestep))
    return n_close, n_squeeze, n_check, n_push


def ramp(k, n_close: int, n_squeeze: int, c_pre, c_grasp, c_squeeze, xp=None):
    """Position targets after step ``k`` (0-based) of the closing sequence: pregrasp -> grasp over
    ``n_close`` steps, grasp -> squeeze over ``n_squeeze`` steps, then the squeeze (NumPy or, with
    ``xp=jax.numpy``, traced ``k``)."""
    xp = np if xp is None else xp
    a = xp.clip((k + 1) / max(n_close, 1), 0.0, 1.0) if n_close else 1.0
    b = xp.clip((k + 1 - n_close) / max(n_squeeze, 1), 0.0, 1.0) if n_squeeze else 1.0
    return xp.where(k < n_close, c_pre + (c_grasp - c_pre) * a, c_grasp + (c_squeeze - c_grasp) * b)


def failure_reason(direction: str, displacement_m: float, cfg: SimConfig) -> str:
    """Why a direction failed: ``"moved +x"`` past the translation limit, else ``"turned +x"``."""
    return f"{'moved' if displacement_m >= cfg.max_translation else 'turned'} {direction}"


def verdict(directions: list[DirectionResult], reason: str) -> tuple[bool, str]:
    """``(success, reason)`` of a grasp: every one of the six directions run and held; ``reason``
    (the last failure's) when not, else ``"ok"`` (shared by the C loop and the MJX backend)."""
    success = all(d.success for d in directions) and len(directions) == len(DIRECTIONS)
    return success, ("ok" if success else reason)


def failed_result(source: str, reason: str) -> SimResult:
    """The result of a grasp that could not be simulated (``reason``: the error)."""
    nan = float("nan")
    return SimResult(False, reason, nan, nan, 0, (), 0, source, "", None, 0.0)


def failed_with(source: str, reason: str, grasp: dict | None) -> SimResult:
    """:func:`failed_result` naming the grasp's object and hand when the grasp dict is known."""
    r = failed_result(source, reason)
    if grasp is None:
        return r
    obj, hand = grasp.get("object", {}), grasp.get("hand", {})
    return dataclasses.replace(r, object_file=str(obj.get("file", "")) if isinstance(obj, dict) else "",
                               hand=str(hand.get("name", "")) if isinstance(hand, dict) else "")
