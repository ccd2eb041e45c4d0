"""The simulation protocol's settings, schedule and results, shared by the C loop
(:mod:`jaxgrasp.sim.simulate`) and the MJX backend (:mod:`jaxgrasp.sim.mjx`).

:class:`SimConfig` (settings), :data:`DIRECTIONS` (the six push directions, in test order),
:func:`schedule` (the settings in time steps), :class:`DirectionResult` / :class:`SimResult`
(outcomes), :func:`failure_reason` and :func:`verdict` (how a grasp's outcome is decided). The
protocol itself is described in :mod:`jaxgrasp.sim.simulate`.
"""

from __future__ import annotations

import dataclasses

__all__ = ["CHECK_EVERY", "DIRECTIONS", "DirectionResult", "SimConfig", "SimResult", "failed_result",
           "failure_reason", "schedule", "verdict"]

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
        squeeze: squeeze step per independent joint, fraction of its range, closing direction.
        squeeze_time: seconds to ramp the position targets from the grasp to the squeeze angles.
        settle_time: seconds holding the squeeze before the force is applied.
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
    squeeze_time: float = 0.2
    settle_time: float = 0.2
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
        wall_s: seconds spent simulating.
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
    """Time steps of a direction: ``(n_ramp, n_settle, n_check, n_push)``: ramping the position
    targets to the squeeze angles (at least 1), holding them, between pose checks (at least 1),
    pushing."""
    n_ramp = max(int(round(cfg.squeeze_time / cfg.timestep)), 1)
    n_settle = int(round(cfg.settle_time / cfg.timestep))
    n_check = max(int(round(CHECK_EVERY / cfg.timestep)), 1)
    n_push = int(round(cfg.duration / cfg.timestep))
    return n_ramp, n_settle, n_check, n_push


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
