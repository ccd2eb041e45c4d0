"""Time to the first valid grasp of jaxgrasp.plan over several seeds (the ``plan.py`` target's spread).

    python benchmarks/time_to_valid.py [--seeds 3] [--budget 10] [--scans ../shared/objects] [--objects 0]

``benchmarks/plan.py`` measures each object once; its "median time to a valid grasp on the scans"
moves by a few tenths of a second from run to run (which starts are evaluated when depends on
timing). This script repeats ``jaxgrasp.plan(..., time_budget=B)`` with seeds ``0..S-1`` on every
object and reports, per seed, the median over objects (the benchmark's figure) and the median over
all runs. A run without a valid grasp within the budget counts as infinite time. Set-up inside the
call counts; compilation is done before timing. Objects: the scans in ``--scans`` plus
``--objects`` procedural ones. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np
from plan import (  # (the benchmarks' folder is the script's path)
    SCANS,
    benchmark_objects,
)

from jaxgrasp.hand.model import load_hand
from jaxgrasp.planning.api import plan_grasps
from jaxgrasp.planning.evaluation import compile_evaluation
from jaxgrasp.planning.planner import (
    PlanConfig,
    compile_plan,
    make_scene,
    prepare,
    start_configs,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=10.0, help="seconds per run")
    ap.add_argument("--scans", default=SCANS)
    ap.add_argument("--objects", type=int, default=0, help="procedural objects")
    ap.add_argument("--hand", default="shadow")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "time_to_valid.json"))
    args = ap.parse_args()
    objects, _ = benchmark_objects(args.objects, args.scans)
    if not objects:
        raise SystemExit(f"no objects: no .stl scans in {args.scans} and --objects 0")

    cfg = PlanConfig()
    hand = load_hand(args.hand)
    t0 = time.perf_counter()
    loaded, seen = {}, set()
    for name, mesh in objects:
        prep = prepare(mesh, cfg)
        obj = loaded[name] = prep.obj
        compile_evaluation(hand, prep, np.asarray(start_configs(hand, obj, cfg, jax.random.PRNGKey(0))[0]), cfg)
        key = make_scene(prep, cfg).obj.faces.shape
        if key not in seen:
            seen.add(key)
            compile_plan(hand, prep, cfg)
    compile_s = time.perf_counter() - t0

    times: dict[str, list[float | None]] = {}
    for name, obj in loaded.items():
        times[name] = []
        for seed in range(args.seeds):
            # (obj, None): the call prepares the object again, as a call on a file would.
            r = plan_grasps((obj, None), hand, config=PlanConfig(seed=seed), time_budget=args.budget)[0]
            times[name].append(r.metrics["time_to_first_valid_s"])
        print(f"{name:<26}" + "".join(f"{t:>7.2f}" if t is not None else f"{'-':>7}" for t in times[name]), flush=True)

    def inf(t):
        return np.inf if t is None else t

    per_seed = [float(np.median([inf(times[n][s]) for n in times])) for s in range(args.seeds)]
    every = [inf(t) for ts in times.values() for t in ts]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0].platform}"
    summary = {
        "median_over_objects_per_seed_s": per_seed,
        "median_over_all_runs_s": float(np.median(every)),
        "runs_valid_within_budget": f"{sum(np.isfinite(every))}/{len(every)}",
    }
    print(f"\ntime to a valid grasp: hand {hand.name}, {len(times)} objects x {args.seeds} seeds, budget "
          f"{args.budget:g} s; {machine}; warm-up compile {compile_s:.0f} s (excluded)")
    print("median over objects, per seed: " + ", ".join(f"{m:.2f} s" for m in per_seed))
    print(f"median over all runs: {summary['median_over_all_runs_s']:.2f} s; "
          f"valid within budget: {summary['runs_valid_within_budget']}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": machine, "budget_s": args.budget, "compile_s": compile_s, "seeds": args.seeds,
                   "times_s": times, "summary": summary}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
