"""Planning with physics in the loop: ``jaxgrasp.plan(..., verify="mujoco")`` (issue 23.5).

:func:`plan_grasps` and :func:`plan` are :mod:`jaxgrasp.planning.api`'s functions with two more
arguments, ``verify`` and ``sim_config``; they are what ``jaxgrasp.plan`` and
``jaxgrasp.plan_grasps`` are. With ``verify="mujoco"`` the planner's valid grasps of all starts are
simulated (:func:`jaxgrasp.sim.simulate.simulate_grasp`, the DexGraspBench protocol), best first,
until ``num_grasps`` held; only those come back. The simulation is not part of ``time_budget``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import trimesh

from jaxgrasp.hand.model import HandModel, load_hand
from jaxgrasp.planning import api
from jaxgrasp.planning.grasp_io import grasp_to_dict
from jaxgrasp.planning.planner import GraspResult
from jaxgrasp.planning.settings import PlanConfig, with_starts
from jaxgrasp.sim.forces import grasp_poses
from jaxgrasp.sim.protocol import SimConfig
from jaxgrasp.sim.simulate import simulate_grasp

__all__ = ["NoGraspHeld", "plan", "plan_grasps", "verify_in_simulation"]

log = logging.getLogger(__name__)

POSE_FIELDS = ("pregrasp_joint_angles", "pregrasp_palm_pose", "squeeze_joint_angles", "forces")  # schema 2


class NoGraspHeld(RuntimeError):
    """``plan(..., verify="mujoco")`` found no grasp that held in simulation."""


def verify_in_simulation(results: list[GraspResult], num_grasps: int,
                         sim_config: SimConfig | None = None) -> list[GraspResult]:
    """The first ``num_grasps`` of ``results`` (ranked) that are valid and held in simulation.

    Args:
        results: the grasps of one plan (one object), best first.

    Returns:
        Those grasps, each with its simulated pregrasp, squeeze and forces (``poses``, written to
        its grasp file) and ``metrics["simulation"]`` (its :class:`SimResult` as a dict) and
        ``metrics["verify"]``: ``simulated``, ``rejected_in_simulation``, ``invalid_not_simulated``
        and ``sim_s`` (seconds simulating, scene building and convex decomposition included).
    """
    t0 = time.perf_counter()
    held, simulated = [], 0
    invalid = sum(not r.metrics["valid"] for r in results)
    # the results of one plan share their object: one mesh for every simulation
    mesh = trimesh.Trimesh(results[0].object_vertices, results[0].object_faces, process=False) if results else None
    for r in results:
        if len(held) == num_grasps:
            break
        if not r.metrics["valid"]:
            continue
        grasp = grasp_poses(grasp_to_dict(r), hand=r.hand, object_mesh=mesh, config=sim_config)
        sim = simulate_grasp(grasp, sim_config, object_mesh=mesh, hand=r.hand)
        simulated += 1
        if sim.success:
            poses = {k: grasp[k] for k in POSE_FIELDS}
            held.append(dataclasses.replace(r, metrics={**r.metrics, "simulation": sim.to_dict()}, poses=poses))
    counts = {"simulated": simulated, "rejected_in_simulation": simulated - len(held),
              "invalid_not_simulated": invalid, "sim_s": time.perf_counter() - t0}
    log.info("verified in simulation: %d held, %d rejected, %d invalid not simulated (%.1f s)",
             len(held), counts["rejected_in_simulation"], invalid, counts["sim_s"])
    return [dataclasses.replace(r, metrics={**r.metrics, "verify": counts}) for r in held]


def plan_grasps(mesh, hand: str | HandModel = "shadow", *, num_grasps: int = 1, config: PlanConfig | None = None,
                units: str = "m", progress: Callable[[int, dict], None] | None = None,
                time_budget: float | None = None, verify: str | None = None,
                sim_config: SimConfig | None = None) -> list[GraspResult]:
    """:func:`jaxgrasp.planning.api.plan_grasps` (same arguments and results), and:

    Args:
        verify: None, or ``"mujoco"``: plan the best grasp of every start (``config.shapes.num_starts``,
            at least ``num_grasps``) and return only the first ``num_grasps`` valid ones that
            held in simulation (:func:`verify_in_simulation`; the list may be shorter, or empty).
        sim_config: the simulation's settings (default :class:`SimConfig`).
    """
    if verify not in (None, "mujoco"):
        raise ValueError(f"verify must be None or 'mujoco', got {verify!r}")
    if verify is None:
        return api.plan_grasps(mesh, hand, num_grasps=num_grasps, config=config, units=units, progress=progress,
                               time_budget=time_budget)
    hand = hand if isinstance(hand, HandModel) else load_hand(hand)
    cfg = with_starts(config or PlanConfig(), num_grasps)
    candidates = api.plan_grasps(mesh, hand, num_grasps=max(num_grasps, cfg.shapes.num_starts), config=cfg,
                                 units=units, progress=progress, time_budget=time_budget)
    return verify_in_simulation(candidates, num_grasps, sim_config)


def plan(mesh, hand: str | HandModel = "shadow", *, config: PlanConfig | None = None, units: str = "m",
         progress: Callable[[int, dict], None] | None = None, time_budget: float | None = None,
         verify: str | None = None, sim_config: SimConfig | None = None) -> GraspResult:
    """The best grasp of a raw triangle mesh (arguments: :func:`plan_grasps`).

    Raises:
        NoGraspHeld: with ``verify``, when no planned grasp was valid and held in simulation.
    """
    out = plan_grasps(mesh, hand, num_grasps=1, config=config, units=units, progress=progress,
                      time_budget=time_budget, verify=verify, sim_config=sim_config)
    if not out:
        raise NoGraspHeld("none of the planned grasps was valid and held in simulation: give the planner more "
                          "time (time_budget) or starts (config.shapes.num_starts)")
    return out[0]
