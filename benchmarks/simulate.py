"""Simulation benchmark: grasps per second, C MuJoCo loop against MJX batches.

    python benchmarks/simulate.py [--kind sphere] [--seed 0] [--grasps 8] [--batches 1,8,32]
                                  [--full-max 8] [--out benchmarks/results/simulate.json]

Grasps: ``--grasps`` grasps of one bundled procedural object (``jaxgrasp.mesh.procedural``), planned
by ``jaxgrasp.planning.api.plan_grasps`` (Shadow Hand, default PlanConfig) and cached next to the
results (``simulate_grasps.json``; delete it to plan again). The protocol is the default
:class:`jaxgrasp.sim.simulate.SimConfig` (DexGraspBench ``fc_mocap``: 0.4 s pregrasp to grasp,
0.4 s grasp to squeeze, six directions of 2 s push; 700 steps of 4 ms per direction; pregrasp and
squeeze derived by :mod:`jaxgrasp.sim.forces`, not timed in the MJX rows).

* **C loop**: ``simulate_grasp`` on each grasp in turn (scene build included; one warm-up grasp
  first, which compiles the JAX squeeze-direction code).
* **MJX** at each batch size ``B`` (``B`` grasps = ``6 B`` rollouts, the planned grasps repeated
  to fill the batch): :class:`jaxgrasp.sim.mjx.MjxSimulator`, compilation timed on its own
  (ahead of time), then one timed run. Batches up to ``--full-max`` grasps run the full protocol;
  larger ones run a shortened schedule (0.02 s closing, 0.02 s squeeze, ``--short-push`` s push) and their
  full-protocol rate is extrapolated by the step count (MJX's cost per step does not depend on
  the phase: every candidate contact is evaluated every step), marked ``"extrapolated"``.
  Precision: JAX's default (float32) unless ``--x64``.

Agreement: success flags and per-grasp worst displacement / rotation of MJX (the first full
batch of at least ``--grasps`` grasps) against the C loop on the same grasps.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).parent


def planned_grasps(kind: str, seed: int, n: int, cache: Path) -> tuple[list[dict], float | None]:
    """``n`` planned grasps of ``procedural:kind:seed`` (cached), and the planning time (None: cached)."""
    spec = f"procedural:{kind}:{seed}"
    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("object") == spec and len(data.get("grasps", [])) >= n:
            return data["grasps"][:n], None
    from jaxgrasp.mesh.procedural import procedural_object
    from jaxgrasp.planning.api import plan_grasps
    from jaxgrasp.planning.grasp_io import grasp_to_dict

    t0 = time.perf_counter()
    res = plan_grasps(procedural_object(seed, kind), "shadow", num_grasps=n)
    dt = time.perf_counter() - t0
    grasps = []
    for r in res:
        g = grasp_to_dict(r)
        g["object"]["file"] = spec
        g["hand"]["file"] = "shadow"  # the bundled hand, by name (portable)
        grasps.append(g)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"object": spec, "planning_s": dt, "grasps": grasps}, indent=1))
    return grasps, dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", default="sphere")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grasps", type=int, default=8)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--full-max", type=int, default=8, help="largest batch run with the full protocol")
    ap.add_argument("--short-push", type=float, default=0.1, help="push seconds of the shortened runs")
    ap.add_argument("--x64", action="store_true", help="MJX in float64")
    ap.add_argument("--out", default=str(HERE / "results" / "simulate.json"))
    args = ap.parse_args(argv)
    if args.x64:
        jax.config.update("jax_enable_x64", True)

    import mujoco

    from jaxgrasp.hand.model import load_hand
    from jaxgrasp.sim.forces import grasp_protocol_poses, grasp_scene
    from jaxgrasp.sim.grasp_files import object_mesh_of
    from jaxgrasp.sim.mjx import MjxSimulator, build_mjx_scene
    from jaxgrasp.sim.protocol import SimConfig
    from jaxgrasp.sim.scene import convex_pieces
    from jaxgrasp.sim.simulate import simulate_grasp

    out = Path(args.out)
    grasps, plan_s = planned_grasps(args.kind, args.seed, args.grasps, out.parent / "simulate_grasps.json")
    hand = load_hand("shadow")
    for g in grasps:
        g["hand"]["file"] = hand.path  # so that simulate_grasp reuses the loaded hand
    mesh = object_mesh_of(grasps[0])
    cfg = SimConfig()
    print(f"{len(grasps)} grasps of procedural:{args.kind}:{args.seed}"
          + (f" (planned in {plan_s:.0f} s)" if plan_s is not None else " (cached)"), flush=True)

    # C loop
    simulate_grasp(grasps[0], cfg, hand=hand, object_mesh=mesh)  # warm-up (JAX squeeze directions)
    t0 = time.perf_counter()
    c_res = [simulate_grasp(g, cfg, hand=hand, object_mesh=mesh) for g in grasps]
    c_s = time.perf_counter() - t0
    rows = [{"backend": "mujoco (C loop)", "batch": 1, "grasps": len(grasps), "compile_s": 0.0, "run_s": c_s,
             "grasps_per_s": len(grasps) / c_s, "protocol": "full"}]
    print(f"C loop: {len(grasps)} grasps in {c_s:.2f} s ({len(grasps) / c_s:.2f} grasps/s); "
          f"{sum(r.success for r in c_res)}/{len(grasps)} succeed", flush=True)

    qs = [np.array([g["joint_angles"][n] for n in hand.joint_names]) for g in grasps]
    poses = [grasp_protocol_poses(g, grasp_scene(g, cfg, hand=hand, object_mesh=mesh)[1], hand, q, cfg)
             for g, q in zip(grasps, qs)]
    qsq, qpre = [p["squeeze"] for p in poses], [p["pregrasp"] for p in poses]
    palms = [np.asarray(g["palm_pose"]["matrix"]) for g in grasps]
    pieces = convex_pieces(mesh, threshold=cfg.coacd_threshold, max_pieces=cfg.max_pieces)
    com = np.asarray(grasps[0]["object"]["center_of_mass"])
    agreement = None
    for B in [int(b) for b in args.batches.split(",")]:
        full = B <= args.full_max
        bcfg = cfg if full else dataclasses.replace(cfg, close_time=0.02, squeeze_time=0.02, duration=args.short_push)
        steps = round((bcfg.close_time + bcfg.squeeze_time + bcfg.duration) / cfg.timestep)
        full_steps = round((cfg.close_time + cfg.squeeze_time + cfg.duration) / cfg.timestep)
        scene = build_mjx_scene(hand, pieces, palms[0], com, bcfg)
        sim = MjxSimulator(scene, hand, bcfg, batch_size=B)
        idx = [i % len(grasps) for i in range(B)]
        t0 = time.perf_counter()
        res = sim.run([palms[i] for i in idx], [qs[i] for i in idx], [qsq[i] for i in idx], [qpre[i] for i in idx])
        total = time.perf_counter() - t0
        run_s = total - sim.compile_s
        n_run = sum(r["reason"] != "initial_penetration" for r in res)
        rate = B / run_s if full else B / (run_s * full_steps / steps)
        rows.append({"backend": f"mjx ({sim.dtype})", "batch": B, "grasps": B, "rollouts": 6 * n_run,
                     "compile_s": sim.compile_s, "run_s": run_s, "steps_per_rollout": steps,
                     "grasps_per_s": rate, "protocol": "full" if full else "extrapolated",
                     "ms_per_batched_step": 1e3 * run_s / steps})
        print(f"MJX B={B}: compile {sim.compile_s:.1f} s, run {run_s:.1f} s for {steps} steps "
              f"({1e3 * run_s / steps:.0f} ms per step of {6 * n_run} rollouts) -> {rate:.4f} grasps/s"
              + ("" if full else " (extrapolated to the full protocol)"), flush=True)
        if full and agreement is None and B >= len(grasps):
            per = []
            for g, c, r in zip(grasps, c_res, res[:len(grasps)]):
                md = max((d.displacement_mm for d in r["directions"]), default=float("nan"))
                mr = max((d.rotation_deg for d in r["directions"]), default=float("nan"))
                per.append({"c_success": c.success, "mjx_success": bool(r["success"]), "c_reason": c.reason,
                            "mjx_reason": r["reason"], "c_max_disp_mm": c.max_displacement_mm, "mjx_max_disp_mm": md,
                            "c_max_rot_deg": c.max_rotation_deg, "mjx_max_rot_deg": mr,
                            "contacts_capped": bool(r["contacts_capped"])})
            agreement = {"batch": B, "same_success": sum(p["c_success"] == p["mjx_success"] for p in per),
                         "grasps": len(per), "per_grasp": per}
            print(f"agreement with the C loop: {agreement['same_success']}/{len(per)} same success flag", flush=True)
            for k, p in enumerate(per):
                print(f"  grasp {k}: C {p['c_success']!s:>5} {p['c_max_disp_mm']:7.2f} mm {p['c_max_rot_deg']:6.2f} deg"
                      f" | MJX {p['mjx_success']!s:>5} {p['mjx_max_disp_mm']:7.2f} mm {p['mjx_max_rot_deg']:6.2f} deg"
                      f"  ({p['c_reason']} / {p['mjx_reason']})")

    print(f"\n{'backend':<22}{'batch':>6}{'compile (s)':>13}{'run (s)':>10}{'grasps/s':>12}  protocol")
    for r in rows:
        print(f"{r['backend']:<22}{r['batch']:>6}{r['compile_s']:>13.1f}{r['run_s']:>10.1f}{r['grasps_per_s']:>12.4f}"
              f"  {r['protocol']}")
    from importlib.metadata import version

    result = {
        "command": "python benchmarks/simulate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "load_average_at_end": os.getloadavg(),
                    "jax_backend": jax.default_backend(), "jax": jax.__version__, "mujoco": mujoco.__version__,
                    "mujoco_mjx": version("mujoco-mjx")},
        "object": f"procedural:{args.kind}:{args.seed}", "config": dataclasses.asdict(cfg),
        "mjx_max_contacts": sim.max_contacts, "rows": rows, "agreement": agreement,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
