"""Grasp success in physics simulation (MuJoCo): the DexGraspBench protocol on grasp JSON files.

``python -m jaxgrasp.simulate GRASP_JSON_OR_FOLDER... [--protocol dexgraspbench|gravity6]
[--backend mujoco|mjx|auto] [--out FILE]``: simulates every grasp of the files and folders
(:func:`jaxgrasp.sim.simulate.simulate_many`; the protocol: :mod:`jaxgrasp.sim.simulate`),
prints a table of the results (:func:`summary_table`) and writes them with the settings to a JSON
summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from jaxgrasp.sim.protocol import SimConfig, SimResult
from jaxgrasp.sim.simulate import simulate_many

__all__ = ["main", "summary_table"]


def summary_table(results: list[SimResult]) -> str:
    """A plain-text table of the results (object, hand and file of each grasp, the squeeze used and
    its largest solved normal force) and the success rate."""
    lines = [f"{'object':<24}{'hand':<12}{'grasp':<28}{'success':>8}{'pen (mm)':>10}{'max disp (mm)':>15}"
             f"{'max rot (deg)':>15}{'fn (N)':>8}  {'squeeze':<22}reason"]
    for r in results:
        obj = str(r.object_file)
        obj = (obj if obj.startswith("procedural:") else Path(obj).stem) or "-"
        name = Path(r.grasp_file).name or "-"
        lines.append(f"{obj[-23:]:<24}{(r.hand or '-')[-11:]:<12}{name[-27:]:<28}{str(r.success):>8}"
                     f"{r.initial_penetration_mm:>10.2f}{r.max_displacement_mm:>15.1f}{r.max_rotation_deg:>15.1f}"
                     f"{r.max_normal_force_n:>8.2f}  {(r.squeeze_source or '-'):<22}{r.reason}")
    n = len(results)
    k = sum(r.success for r in results)
    lines.append(f"success rate: {k}/{n} = {100.0 * k / max(n, 1):.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jaxgrasp.simulate", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="grasp or plan JSON files, or folders of them")
    ap.add_argument("--protocol", default=SimConfig.protocol, choices=["dexgraspbench", "gravity6"])
    ap.add_argument("--force-per-kg", type=float, default=SimConfig.force_per_kg,
                    help="external force per kg of object mass, N/kg (DexGraspBench: 10, about 1x the weight)")
    ap.add_argument("--force-weights", type=float, default=None,
                    help="external force in object weights (overrides --force-per-kg; 10: the strict test)")
    ap.add_argument("--mass", type=float, default=SimConfig.object_mass, help="object mass [kg]")
    ap.add_argument("--squeeze", type=float, default=SimConfig.squeeze,
                    help="fallback squeeze (no contacts or infeasible contact forces): fraction of joint range")
    ap.add_argument("--force-safety", type=float, default=SimConfig.force_safety,
                    help="the contact-force squeeze resists this many times the test push")
    start = ap.add_mutually_exclusive_group()
    start.add_argument("--start-at-pregrasp", dest="start_at_pregrasp", action="store_const", const=True,
                       default=SimConfig.start_at_pregrasp,
                       help="start each direction at the pregrasp (fingers opened, palm backed off), as DexGraspBench "
                            "fc_mocap (the default)")
    start.add_argument("--start-at-grasp", dest="start_at_pregrasp", action="store_const", const=False,
                       help="start each direction at the grasp")
    ap.add_argument("--palm-backoff", type=float, default=SimConfig.pregrasp_palm_backoff,
                    help="pregrasp palm backoff along the palm normal, m (default: the smallest that clears the "
                         "palm; 0: the palm stays at the grasp)")
    ap.add_argument("--kp", type=float, default=SimConfig.kp, help="actuator position gain (0: the hand file's)")
    ap.add_argument("--friction", type=float, default=SimConfig.friction)
    ap.add_argument("--all-directions", action="store_true", help="run all six directions even after a failure")
    ap.add_argument("--backend", default="auto", choices=["mujoco", "mjx", "auto"],
                    help="mujoco: the C engine, grasp by grasp; mjx: grasps of one object batched in MJX; "
                         "auto (default): MJX when JAX has a GPU/TPU and an object has several grasps, else mujoco")
    ap.add_argument("--batch-size", type=int, default=8, help="grasps per MJX rollout (--backend mjx/auto)")
    ap.add_argument("--out", default="simulation.json", help="JSON summary")
    args = ap.parse_args(argv)
    fpk = args.force_per_kg if args.force_weights is None else args.force_weights * SimConfig.gravity
    cfg = SimConfig(protocol=args.protocol, force_per_kg=fpk, object_mass=args.mass,
                    squeeze=args.squeeze, force_safety=args.force_safety,
                    start_at_pregrasp=args.start_at_pregrasp, pregrasp_palm_backoff=args.palm_backoff, kp=args.kp or None, friction=args.friction, stop_on_failure=not args.all_directions)
    results = simulate_many(args.paths, cfg, backend=args.backend, batch_size=args.batch_size)
    print(summary_table(results))
    k = sum(r.success for r in results)
    summary = {"config": dataclasses.asdict(cfg), "backend": args.backend, "success_rate": k / max(len(results), 1),
               "successes": k, "grasps": len(results), "results": [r.to_dict() for r in results]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
