"""Grasp success in physics simulation (MuJoCo): the DexGraspBench protocol on grasp JSON files.

:func:`simulate_grasp` / :func:`simulate_many` from Python, or the command line
``python -m jaxgrasp.simulate GRASP_JSON_OR_FOLDER... [--protocol dexgraspbench|gravity6]
[--backend mujoco|mjx|auto] [--out FILE]`` (:mod:`jaxgrasp.cli.simulate`). Settings and results:
:mod:`jaxgrasp.sim.protocol`; grasp files: :mod:`jaxgrasp.sim.grasp_files`.

Scene (:mod:`jaxgrasp.sim.scene`: built with ``mujoco.MjSpec`` from the hand's own MJCF or URDF,
:func:`build_scene`):

* **hand**: the hand file as written (joint equalities, tendons, contact exclusions kept); its root
  body is a *mocap* body (DexGraspBench's ``fc_mocap``), posed by the simulation: at the grasp's
  palm pose, or moving there from the pregrasp's (the grasp JSON's ``palm_pose`` places the root
  body in the object's input frame, which is the simulation's world frame). Joints driven by the file's
  position actuators, or, for a hand without actuators, one added position actuator per
  independent joint (``SimConfig.kp``). Hand bodies are gravity compensated.
* **object**: a free body at its centre of mass, made of convex pieces: the mesh itself when it
  is convex, else a CoACD convex decomposition (cached under ``$JAXGRASP_CACHE`` or
  ``~/.cache/jaxgrasp/coacd``, keyed by a hash of the mesh and the settings), or its convex hull
  with a warning when ``coacd`` is not installed. Mass ``SimConfig.object_mass`` (100 g as in
  DexGraspBench) or ``SimConfig.object_density``.
* **contact**: elliptic friction cones, ``condim 4`` (sliding ``mu`` 0.6, torsional 0.02),
  ``impratio 10``, ``noslip_iterations 2``, implicit-fast integrator, ``dt = 4 ms`` and stiff
  contacts (``solref 0.005 1``, ``solimp 0.5 0.99 0.0001``): DexGraspBench's settings
  (JYChen18/DexGraspBench ``src/util/hand_util.py``, ``config/task/eval.yaml``).

Protocol (:func:`simulate_scene`), DexGraspBench's ``fc_mocap`` evaluation:

1. Place the hand at the grasp (joint angles as in the JSON), the object at rest. The initial
   penetration is the deepest hand-object contact MuJoCo reports (``-dist``); over
   ``max_initial_penetration`` (1 cm) the grasp fails outright.
2. For each of the six directions +x, -x, +y, -y, +z, -z in turn, from the same initial state
   (hand at the *pregrasp* with ``start_at_pregrasp``, else at the grasp; object at rest): the
   position targets move from the pregrasp to the grasp angles over ``close_time`` (0.4 s) while
   the palm (mocap) moves, linearly, from the pregrasp's palm pose to the grasp's; then the
   targets move from the grasp to the *squeeze* angles over ``squeeze_time`` (0.4 s), the palm
   held at the grasp (through the push too); then push the object's centre of mass with ``force_per_kg`` newtons
   per kilogram of its mass along the direction for ``duration`` (2 s), gravity off
   (DexGraspBench disables gravity). The object's displacement (centre of mass) and rotation are
   measured every 0.1 s from its pose at rest *before the hand closes* (DexGraspBench's choice:
   whatever the closing and the squeeze move the object counts against the thresholds).
3. Success: displacement < ``max_translation`` (5 cm) and rotation < ``max_rotation_deg`` (15 deg)
   throughout all six directions. With ``stop_on_failure`` (default, as DexGraspBench) the first
   failing direction ends the test.

``protocol="gravity6"`` is DexGraspNet's variant: no external force, gravity (``gravity``) along
each of the six directions in turn, same durations and thresholds.

The force: DexGraspBench's code applies ``10 * obj_mass`` newtons (``fc_mocap.py``:
``xfrc_applied = 10 * direction * obj_mass``), i.e. 10 N/kg, about 1x the object's weight;
``force_per_kg=10`` (the default) reproduces it, so rates compare with BODex / DexGraspNet
numbers measured with DexGraspBench. ``force_per_kg=98.1`` (CLI
``--force-weights 10``) is the stricter 10x-weight test; the experiments report both
(docs/decisions.md, "DexGraspBench's protocol and force").
Actuator gain: DexGraspBench raised the Shadow Hand's position gain from 1 to 5 (its README);
``kp=5`` (the default) does the same for every actuator of the hand file, ``kp=None`` keeps the
file's gains.

Pregrasp and squeeze (:mod:`jaxgrasp.sim.forces`): a schema-2 grasp file's
``pregrasp_joint_angles`` / ``squeeze_joint_angles`` when present, else derived at the grasp: the
squeeze from a contact-force solve (forces in the friction cones that resist ``force_safety``
times each of the six pushes; squeeze targets ``q + K^-1 J^T f`` through the actuators' gains),
falling back to ``squeeze`` (a fraction of each closing joint's range, :func:`closing_signs`) for a
grasp without contacts or feasible forces; the pregrasp opens the closing joints until the fingers
are ``pregrasp_clearance`` from the object, and backs the palm off along its normal until the palm
and what else the opening left near the object are that far too (``pregrasp_palm_backoff``:
a fixed distance instead; :mod:`jaxgrasp.sim.pregrasp`). A schema-2 file's
``pregrasp_palm_pose`` is used when present. ``SimResult.squeeze_source`` says which squeeze ran,
``max_normal_force_n`` its largest solved normal force, ``sim_normal_force_n`` the largest contact
force MuJoCo reports at the end of the squeeze. ``start_at_pregrasp=True`` (the default) starts at the
pregrasp; ``False`` starts at the grasp (the fingers then hold the grasp for ``close_time``, the
palm at the grasp throughout).

Pregrasp and penetration: with the palm at the grasp from the first step and the object free, a
palm (or knuckle) contact that penetrates at the grasp (planner grasps read 1-2 mm deep in MuJoCo,
next paragraph) pushes the object off before the opened fingers arrive; the moving palm (backed
off 5-7 mm, arriving with the fingers) removes that. Measured on four planned grasps of two YCB
scans (``python -m jaxgrasp.plan 055_baseball.stl 005_tomato_soup_can.stl --grasps 2 --starts 16
--steps 150 --refine-steps 0``) and the sphere fixture, force squeeze, grasps held at 10 / 98.1
N/kg: from the grasp 3/4 + sphere 0/1 and 3/4 + 1/1; from the pregrasp with the palm welded at
the grasp (``pregrasp_palm_backoff=0``) 0/4 + 1/1 both; from the pregrasp with the moving palm
2/4 + 1/1 both (fixed backoffs of 1, 2, 3 cm: 2/4, 2/4, 3/4 planned, and the sphere lost at 2 and
3 cm, its far-side fingers swept through it). On the 28 grasps of ``benchmarks/hold.py``
(bundled Shadow Hand, real-geom validity, side by side on the same grasps) the moving-palm
pregrasp held 13/28 at 10 N/kg and 4/28 at 98.1 N/kg, starting at the grasp 9/28 and 5/28:
the pregrasp start, DexGraspBench's sequence, is the default.

Initial penetration, MuJoCo against the planner: MuJoCo measures the hand's real collision geoms
(true capsules, spheres, boxes) against the object's convex pieces; the planner's exact evaluation
measures its *annotation* of the hand (surface samples of tessellated primitives, link hulls)
against the full mesh. So MuJoCo's value reads deeper: tessellated capsules and spheres lie
slightly inside the true ones, box corners can fall between samples, and convex pieces stand out
of a scan (measurements: docs/decisions.md, "MuJoCo's initial penetration reads deeper").

MJX (``--backend mjx``, :mod:`jaxgrasp.sim.mjx`): the grasps of one object batched in one
jitted, vmapped ``mujoco.mjx`` rollout (six rollouts per grasp), same scene builder, settings and
schedule; ``--backend auto`` (the CLI default) uses it only when JAX runs on a GPU/TPU and an
object has several grasps, else this module's C loop. MJX comes from ``mujoco-mjx`` 3.17.0 (the
newest on PyPI; none exists for MuJoCo 4.0, and 3.17.0 requires ``mujoco>=3.17`` and runs with the
installed 4.0.0), installed by the ``test`` and ``mjx`` extras. Differences from the C engine
(details in :mod:`jaxgrasp.sim.mjx`): the Shadow Hand's cylinder knuckles become 16-sided
prisms (MJX has no cylinder-box/mesh collision), no noslip pass, MJX's own contact points (several
per box-mesh and capsule-mesh pair), at most 32 penetrating contacts kept (reported when reached),
JAX's precision (float32 unless ``jax_enable_x64``). ``tests/test_simulate.py`` checks both engines
on the enclosing sphere grasp and a far grasp (0.2 s pushes, float64): same outcome and reason.
On a CPU, MJX is several hundred times slower than the C loop, which is why ``auto`` keeps the C
loop there (``benchmarks/simulate.py``; measurements: docs/decisions.md, "MJX backend").
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import mujoco
import numpy as np
import trimesh
from tqdm import tqdm

from jaxgrasp.hand.model import load_hand
from jaxgrasp.sim.forces import grasp_protocol_poses, grasp_scene
from jaxgrasp.sim.grasp_files import collect_grasp_files, read_grasps
from jaxgrasp.sim.mjx import mjx_available, simulate_grasps_mjx
from jaxgrasp.sim.protocol import (
    DIRECTIONS,
    DirectionResult,
    SimConfig,
    SimResult,
    failed_result,
    failed_with,
    failure_reason,
    ramp,
    schedule,
    verdict,
)
from jaxgrasp.sim.scene import Scene, ctrl_for, penetrations, set_palm

__all__ = ["simulate_grasp", "simulate_many", "simulate_scene"]


# ----------------------------------------------------------------------------------------------
# The protocol on a built scene (C MuJoCo)
# ----------------------------------------------------------------------------------------------


def _reset(scene: Scene, d: mujoco.MjData, q: np.ndarray, ctrl: np.ndarray, x0: np.ndarray,
           palm: np.ndarray | None = None) -> None:
    mujoco.mj_resetData(scene.model, d)  # the palm (mocap) at the grasp
    if palm is not None:
        set_palm(scene, d, palm)
    d.qpos[scene.hand_qadr] = q
    d.qpos[scene.object_qadr:scene.object_qadr + 7] = x0
    d.ctrl[:] = ctrl
    mujoco.mj_forward(scene.model, d)


def _pose_change(d: mujoco.MjData, body: int, p0: np.ndarray, q0: np.ndarray) -> tuple[float, float]:
    """Centre-of-mass displacement [m] and rotation angle [deg] of ``body`` since ``(p0, q0)``."""
    disp = float(np.linalg.norm(d.xipos[body] - p0))
    dot = min(abs(float(np.dot(d.xquat[body], q0))), 1.0)  # |q0 . q| > 1 only by rounding
    return disp, float(np.degrees(2.0 * np.arccos(dot)))


def _max_normal_force(scene: Scene, d: mujoco.MjData) -> float:
    """Largest hand-object contact normal force [N] of the current state (0 without contact)."""
    obj, hand = set(scene.object_geoms.tolist()), set(scene.hand_geoms.tolist())
    f6, best = np.zeros(6), 0.0
    for i, c in enumerate(d.contact[: d.ncon]):
        g1, g2 = int(c.geom1), int(c.geom2)
        if (g1 in obj and g2 in hand) or (g2 in obj and g1 in hand):
            mujoco.mj_contactForce(scene.model, d, i, f6)
            best = max(best, float(f6[0]))
    return best


def simulate_scene(scene: Scene, q_grasp: np.ndarray, q_squeeze: np.ndarray, cfg: SimConfig,
                   q_pregrasp: np.ndarray | None = None, palm_pregrasp: np.ndarray | None = None) -> dict:
    """Run the protocol (module docstring) on a built scene.

    Args:
        scene: from :func:`build_scene` (the palm at the grasp's pose).
        q_grasp, q_squeeze: ``(J,)`` joint angles at the grasp and the squeeze target.
        cfg: settings.
        q_pregrasp: ``(J,)`` joint angles the hand starts from (None: the grasp).
        palm_pregrasp: ``(4, 4)`` palm (root body) pose the hand starts from, its rotation the
            grasp's (None: the grasp's pose). It moves to the grasp's pose, linearly, over the
            closing ramp; the scene's root must be a mocap body.

    Returns:
        ``{"success", "reason", "initial_penetration_mm", "self_penetration_mm",
        "initial_contacts", "directions": [DirectionResult], "sim_normal_force_n", "palm_path"}``:
        ``palm_path`` ``(3, 3)`` the root body's world position at the start of the first direction,
        at the end of its closing ramp and at the end of its squeeze.
    """
    m = scene.model
    d = mujoco.MjData(m)
    x0 = np.zeros(7)
    x0[:3] = m.body_pos[scene.object_body]
    x0[3] = 1.0
    q_pre = q_grasp if q_pregrasp is None else q_pregrasp
    c_pre, c_grasp, c_squeeze = ctrl_for(scene, q_pre), ctrl_for(scene, q_grasp), ctrl_for(scene, q_squeeze)
    _reset(scene, d, q_grasp, c_grasp, x0)
    p_grasp = d.xpos[scene.root_body].copy()
    p_pre = p_grasp if palm_pregrasp is None else np.asarray(palm_pregrasp, np.float64)[:3, 3]
    moving = not np.array_equal(p_pre, p_grasp)
    ho, hh, ncon = penetrations(scene, d)
    out = {"initial_penetration_mm": ho * 1e3, "self_penetration_mm": hh * 1e3, "initial_contacts": ncon,
           "directions": [], "sim_normal_force_n": float("nan")}
    if ho > cfg.max_initial_penetration:
        return {**out, "success": False, "reason": "initial_penetration"}
    n_close, n_squeeze, n_check, n_push = schedule(cfg)
    reason, fmax, path = "ok", 0.0, []
    for name, u in DIRECTIONS:
        u = np.asarray(u, np.float64)
        _reset(scene, d, q_pre, c_pre, x0, p_pre if moving else None)
        first = not path
        if first:
            path.append(d.xpos[scene.root_body].copy())
        # the object's pose at rest before the hand closes: the displacement's origin (DexGraspBench)
        p0, q0 = d.xipos[scene.object_body].copy(), d.xquat[scene.object_body].copy()
        m.opt.gravity[:] = 0.0
        for k in range(n_close + n_squeeze):
            d.ctrl[:] = ramp(k, n_close, n_squeeze, c_pre, c_grasp, c_squeeze)
            if moving:  # the palm (mocap) from the pregrasp's pose to the grasp's with the fingers' targets
                set_palm(scene, d, ramp(k, n_close, n_squeeze, p_pre, p_grasp, p_grasp))
            mujoco.mj_step(m, d)
            if first and k + 1 in (n_close, n_close + n_squeeze):
                path.append(d.xpos[scene.root_body].copy())
        fmax = max(fmax, _max_normal_force(scene, d))
        if cfg.protocol == "dexgraspbench":
            d.xfrc_applied[scene.object_body, :3] = cfg.force_per_kg * scene.mass * u
        else:
            m.opt.gravity[:] = cfg.gravity * u
        worst_d, worst_r, ok = 0.0, 0.0, True
        done = 0
        while done < n_push:
            n = min(n_check, n_push - done)
            mujoco.mj_step(m, d, nstep=n)
            done += n
            dist, rot = _pose_change(d, scene.object_body, p0, q0)
            worst_d, worst_r = max(worst_d, dist), max(worst_r, rot)
            if dist >= cfg.max_translation or rot >= cfg.max_rotation_deg or not np.all(np.isfinite(d.qpos)):
                ok = False
                break
        d.xfrc_applied[:] = 0.0
        m.opt.gravity[:] = 0.0
        out["directions"].append(DirectionResult(name, worst_d * 1e3, worst_r, ok))
        if not ok:
            reason = failure_reason(name, worst_d, cfg)
            if cfg.stop_on_failure:
                break
    success, reason = verdict(out["directions"], reason)
    return {**out, "success": success, "reason": reason, "sim_normal_force_n": fmax, "palm_path": np.array(path[:3])}


# ----------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------


def simulate_grasp(grasp: dict | str | os.PathLike, config: SimConfig | None = None, *,
                   object_mesh: trimesh.Trimesh | str | os.PathLike | None = None, hand=None) -> SimResult:
    """Simulate one grasp (see the module docstring for the protocol).

    Args:
        grasp: a grasp dict (schema ``jaxgrasp.grasp/1`` or ``/2``) or a path to a grasp file (a plan file
            with several grasps: use :func:`simulate_many`).
        config: :class:`SimConfig`.
        object_mesh: the object mesh in the grasp's input frame, in metres (default: the file
            named by ``object.file``, scaled by ``units_scale``).
        hand: a loaded :class:`jaxgrasp.hand.model.HandModel` to reuse (default: loads ``hand.file``).

    Returns:
        :class:`SimResult`.
    """
    cfg = config or SimConfig()
    t0 = time.perf_counter()
    source = ""
    if not isinstance(grasp, dict):
        source = str(grasp)
        grasps = read_grasps(grasp)
        if len(grasps) != 1:
            raise ValueError(f"{grasp}: holds {len(grasps)} grasps; use simulate_many")
        grasp = grasps[0]
    source = grasp.get("_source", source)
    hand, scene, q = grasp_scene(grasp, cfg, hand=hand, object_mesh=object_mesh)
    poses = grasp_protocol_poses(grasp, scene, hand, q, cfg)
    r = simulate_scene(scene, q, poses["squeeze"], cfg, q_pregrasp=poses["pregrasp"], palm_pregrasp=poses["pregrasp_palm"])
    pen = grasp.get("metrics", {}).get("penetration_mm")
    return SimResult(success=bool(r["success"]), reason=r["reason"],
                     initial_penetration_mm=float(r["initial_penetration_mm"]),
                     self_penetration_mm=float(r["self_penetration_mm"]), initial_contacts=int(r["initial_contacts"]),
                     directions=tuple(r["directions"]), num_pieces=scene.num_pieces, grasp_file=source,
                     object_file=str(grasp["object"]["file"]), planner_penetration_mm=None if pen is None else float(pen),
                     wall_s=time.perf_counter() - t0, hand=hand.name, squeeze_source=poses["squeeze_source"],
                     max_normal_force_n=poses["max_normal_force_n"], sim_normal_force_n=float(r["sim_normal_force_n"]))


def _resolve_backend(backend: str, group_size: int) -> str:
    """``"mujoco"`` or ``"mjx"`` for a group of grasps of one object (``auto``: MJX only on a
    GPU/TPU JAX backend with several grasps of the object)."""
    if backend not in ("mujoco", "mjx", "auto"):
        raise ValueError(f"backend must be 'mujoco', 'mjx' or 'auto', got {backend!r}")
    if backend != "auto":
        return backend
    return "mjx" if group_size > 1 and jax.default_backend() != "cpu" and mjx_available() else "mujoco"


def simulate_many(paths, config: SimConfig | None = None, *, progress: bool = True,
                  backend: str = "mujoco", batch_size: int = 8) -> list[SimResult]:
    """Simulate every grasp of the given files and folders (grasp and plan JSON files), with a
    tqdm bar. A file that cannot be simulated gives a failed result with the error as reason.

    ``backend``: ``"mujoco"`` (the C engine, one grasp after the other), ``"mjx"`` (grasps of one
    object and hand batched in MJX, :mod:`jaxgrasp.sim.mjx`, ``batch_size`` grasps per
    compiled rollout) or ``"auto"`` (MJX for objects with several grasps when JAX runs on a
    GPU/TPU, else the C engine). Results come back in input order."""
    cfg = config or SimConfig()
    _resolve_backend(backend, 1)  # validates the name
    items: list[tuple[str, dict | None, str]] = []
    for f in collect_grasp_files([str(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]):
        try:
            items += [(str(f), g, "") for g in read_grasps(f)]
        except (ValueError, KeyError, json.JSONDecodeError) as e:
            items.append((str(f), None, f"error: {e}"))
    out: list[SimResult | None] = [None] * len(items)
    groups: dict[tuple, list[int]] = {}
    for i, (f, g, err) in enumerate(items):
        if g is None:
            out[i] = failed_result(f, err)
            continue
        try:
            hand_key = g["hand"]["file"] if Path(g["hand"]["file"]).is_file() else g["hand"]["name"]
            key = (hand_key, str(g["object"]["file"]), float(g["object"].get("units_scale", 1.0)),
                   tuple(g["object"].get("center_of_mass", ())))
        except (KeyError, TypeError, ValueError) as e:
            out[i] = failed_with(f, f"error: {type(e).__name__}: {e}", g)
            continue
        groups.setdefault(key, []).append(i)
    hands: dict[str, object] = {}
    bar = tqdm(total=len(items), desc="simulating", unit="grasp", disable=not progress, dynamic_ncols=True)
    bar.update(sum(r is not None for r in out))
    for key, idx in groups.items():
        try:
            if key[0] not in hands:
                hands[key[0]] = load_hand(key[0])
            use = _resolve_backend(backend, len(idx))
        except Exception as e:
            for i in idx:
                out[i] = failed_with(items[i][0], f"error: {type(e).__name__}: {e}", items[i][1])
            bar.update(len(idx))
            continue
        if use == "mjx":
            done = [0]

            def advance(n, done=done):
                done[0] += n
                bar.update(n)

            try:
                res = simulate_grasps_mjx([items[i][1] for i in idx], cfg, hand=hands[key[0]], batch_size=batch_size,
                                          progress=advance)
                bar.update(len(idx) - done[0])  # grasps that failed on the host (initial penetration)
                for i, r in zip(idx, res):
                    out[i] = dataclasses.replace(r, grasp_file=r.grasp_file or items[i][0])
                continue
            except Exception as e:  # fall back to one grasp at a time, which isolates a bad grasp
                bar.write(f"MJX failed on {key[1]} ({type(e).__name__}: {e}); using the C engine")
                bar.update(-done[0])
        for i in idx:
            if out[i] is not None:
                continue
            try:
                out[i] = simulate_grasp(items[i][1], cfg, hand=hands[key[0]])
            except Exception as e:  # one bad grasp must not stop a batch
                out[i] = failed_with(items[i][0], f"error: {type(e).__name__}: {e}", items[i][1])
            bar.update(1)
    bar.close()
    return out  # type: ignore[return-value]
