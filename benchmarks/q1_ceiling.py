"""How far the planners' grasps are from the highest exact Q1 each object allows.

    python benchmarks/q1_ceiling.py [--objects 20] [--scans ../shared/objects] [--plan benchmarks/results/plan.json]

Per object of the planner benchmark's set (the same procedural seed and scans): an upper bound
of the exact Q1 of *any* grasp (contacts anywhere within the evaluation's contact tolerance of
the surface, :mod:`jaxgrasp.quality.ceiling`), next to the Q1 that jaxgrasp and the annealing baseline
reached at 5 s and 30 s in ``--plan`` (``benchmarks/plan.py``'s result) and to twice the
baseline's (the issue's target is a mean of 2x the baseline). Prints a table and writes JSON.
A planner value above its bound would be a bug in one of them: it is counted and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np
from plan import (  # the planner benchmark's object set (benchmarks/plan.py)
    SCANS,
    benchmark_objects,
)

from jaxgrasp.planning.planner import PlanConfig, as_object
from jaxgrasp.quality.ceiling import band_contacts, q1_ceiling


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=20, help="procedural objects")
    ap.add_argument("--scans", default=SCANS)
    ap.add_argument("--plan", default=os.path.join(os.path.dirname(__file__), "results", "plan.json"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "q1_ceiling.json"))
    args = ap.parse_args()

    cfg = PlanConfig()
    objects, _ = benchmark_objects(args.objects, args.scans)
    plan = {}
    if os.path.exists(args.plan):
        with open(args.plan) as f:
            data = json.load(f)
        budget = data["budget_s"]
        plan = {r["object"]: r for r in data["rows"]}
    methods = ("jaxgrasp", "annealing")

    rows = []
    for name, mesh in objects:
        obj, _, tm = as_object(mesh)
        t0 = time.perf_counter()
        p, n = band_contacts(tm, np.asarray(obj.center_of_mass, np.float64), cfg.evaluation.contact_tolerance)
        bound, s = q1_ceiling(p, n, mu=cfg.evaluation.mu, torque_scale=1.0 / float(obj.size), num_edges=cfg.evaluation.num_edges,
                              key=jax.random.PRNGKey(0))
        row = {"object": name, "faces": len(tm.faces), "band_contacts": len(p), "ceiling": bound,
               "weakest_direction": np.round(s, 4).tolist(), "seconds": time.perf_counter() - t0}
        if name in plan:
            for m in methods:
                row[m] = {k: plan[name][m][k] for k in ("q1_at_5s", f"q1_at_{budget:g}s")}
        rows.append(row)
        print(name, json.dumps(row), flush=True)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0].platform}"
    print(f"\nQ1 ceiling (contact tolerance {cfg.evaluation.contact_tolerance * 1e3:g} mm, mu {cfg.evaluation.mu}, {cfg.evaluation.num_edges} cone edges); "
          f"{machine}")
    with_plan = [r for r in rows if "jaxgrasp" in r]
    if with_plan:
        B = f"q1_at_{budget:g}s"
        print(f"{'object':<24}{'ceiling':>8}{'jaxgrasp':>10}{'anneal':>8}{'2x anneal':>11}  jaxgrasp/ceiling")
        for r in with_plan:
            j, a = r["jaxgrasp"][B], r["annealing"][B]
            print(f"{r['object']:<24}{r['ceiling']:>8.3f}{j:>10.3f}{a:>8.3f}{2 * a:>11.3f}{'*' if 2 * a > r['ceiling'] else ' '} "
                  f"{j / r['ceiling']:>8.2f}")
        c = np.array([r["ceiling"] for r in with_plan])
        J = np.array([r["jaxgrasp"][B] for r in with_plan])
        A = np.array([r["annealing"][B] for r in with_plan])
        summary = {
            "objects": len(with_plan),
            "mean_ceiling": float(c.mean()),
            f"mean_jaxgrasp_{B}": float(J.mean()),
            f"mean_annealing_{B}": float(A.mean()),
            "target_2x_annealing": float(2 * A.mean()),
            "objects_where_2x_annealing_exceeds_ceiling": [r["object"] for r in with_plan if 2 * r["annealing"][B] > r["ceiling"]],
            "mean_jaxgrasp_fraction_of_ceiling": float(np.mean(J / c)),
            "mean_annealing_fraction_of_ceiling": float(np.mean(A / c)),
            "planner_values_above_ceiling": int(np.sum(J > c * (1 + 1e-5)) + np.sum(A > c * (1 + 1e-5))),
        }
        print("* 2x the baseline is above the object's ceiling")
        print(json.dumps(summary, indent=1))
    else:
        summary = {"objects": len(rows), "mean_ceiling": float(np.mean([r["ceiling"] for r in rows]))}
        print(json.dumps(summary, indent=1))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": machine, "contact_tolerance_m": cfg.evaluation.contact_tolerance, "mu": cfg.evaluation.mu,
                   "plan": os.path.relpath(args.plan) if plan else None, "rows": rows, "summary": summary}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
