"""Planner benchmark: jaxgrasp.plan against the simulated-annealing baseline at equal time.

    python benchmarks/plan.py [--objects 20] [--budget 30] [--scans ../shared/objects] [--methods jaxgrasp,annealing]

Per object and method: the time to the first valid grasp (force closure and penetration and
self-penetration <= 1 mm, by the same exact evaluation), and the exact Q1 and penetration of the
best grasp found within 5 s and within the full budget (two runs per method, each with its
budget). Both methods are anytime: ``jaxgrasp.plan(..., time_budget=B)`` restarts with new seeds
when its steps are done, the baseline anneals until the budget is spent; set-up and the time
spent evaluating count. Compilation is done before timing (one warm-up per padded
shape) and reported on its own. Objects: ``--objects`` procedural ones plus the scans in
``--scans`` when that folder exists. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

from jaxgrasp.hand.model import load_hand
from jaxgrasp.mesh.procedural import procedural_set
from jaxgrasp.planning.api import plan_grasps
from jaxgrasp.planning.evaluation import compile_evaluation
from jaxgrasp.planning.planner import (
    PlanConfig,
    compile_plan,
    initial_configs,
    make_scene,
    prepare,
)

CHECKPOINTS = (5.0,)
SCANS = str(Path(__file__).resolve().parents[1].parent / "shared" / "objects")


def benchmark_objects(num_procedural: int, scans: str) -> tuple[list[tuple[str, object]], set[str]]:
    """The benchmark's objects, ``[(name, mesh or path)]``: ``num_procedural`` procedural ones
    (seed 7) plus the ``.stl`` scans in ``scans`` when that folder exists; and the scans' names."""
    objects = list(procedural_set(num_procedural, seed=7))
    files = sorted(Path(scans).glob("*.stl")) if Path(scans).is_dir() else []
    return objects + [(f.stem, str(f)) for f in files], {f.stem for f in files}


def jaxgrasp_run(hand, obj, tm, budget: float, cfg: PlanConfig) -> dict:
    """jaxgrasp.plan in anytime mode at one budget: best grasp metrics, first-valid time."""
    return plan_grasps((obj, None), hand, config=cfg, time_budget=budget)[0].metrics


def jaxgrasp_summary(hand, obj, tm, budget: float, cfg: PlanConfig) -> dict:
    """jaxgrasp row: one run with a 5 s budget and one with the full budget (same seed)."""
    m5, mb = jaxgrasp_run(hand, obj, tm, CHECKPOINTS[0], cfg), jaxgrasp_run(hand, obj, tm, budget, cfg)
    return _row(m5, mb, budget)


def annealing_run(hand, obj, tm, budget: float) -> dict:
    """The baseline at one budget (its own anytime loop): best grasp metrics, first-valid time."""
    from jaxgrasp.planning.baseline import anneal_grasps

    r = anneal_grasps((obj, None), hand, time_budget=budget)[0]
    return r.metrics


def annealing_summary(hand, obj, tm, budget: float) -> dict:
    """Baseline row: one run with a 5 s budget and one with the full budget (same seed)."""
    m5, mb = annealing_run(hand, obj, tm, CHECKPOINTS[0]), annealing_run(hand, obj, tm, budget)
    return _row(m5, mb, budget)


def _row(m5: dict, mb: dict, budget: float) -> dict:
    """Per-method row from the 5 s run and the full-budget run."""
    out = {"time_to_valid_s": mb.get("time_to_first_valid_s"), "steps_to_valid": mb.get("steps_to_first_valid"),
           "steps": mb.get("steps", mb.get("anneal_steps")),
           "evaluations": mb.get("evaluations", mb.get("anneal_evaluations"))}
    for t, m in ((CHECKPOINTS[0], m5), (budget, mb)):
        out[f"q1_at_{t:g}s"] = m["q1"] if m["valid"] else 0.0
        out[f"pen_mm_at_{t:g}s"] = m["penetration_mm"]
        out[f"valid_at_{t:g}s"] = bool(m["valid"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=20, help="procedural objects")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds per object and method")
    ap.add_argument("--scans", default=SCANS)
    ap.add_argument("--methods", default="jaxgrasp,annealing")
    ap.add_argument("--hand", default="shadow")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "plan.json"))
    args = ap.parse_args()
    methods = args.methods.split(",")

    cfg = PlanConfig()
    hand = load_hand(args.hand)
    objects, scan_names = benchmark_objects(args.objects, args.scans)

    # Warm-up: compile every padded shape once, outside the timed runs.
    t0 = time.perf_counter()
    loaded = {}
    for name, mesh in objects:
        prep = prepare(mesh, cfg)
        loaded[name] = (prep.obj, prep)
    seen = set()
    for name, (obj, prep) in loaded.items():
        # Every object: the exact evaluation compiles per (full, decimated) mesh size and padded
        # count of points measured on the full mesh.
        compile_evaluation(hand, prep, np.asarray(initial_configs(hand, float(obj.size), 1, jax.random.PRNGKey(0),
                                                                  opening=cfg.starts.opening, standoff=cfg.starts.standoff))[0], cfg)
        key = make_scene(prep, cfg).obj.faces.shape
        if key in seen:
            continue
        seen.add(key)
        for m in methods:
            if m == "jaxgrasp":
                compile_plan(hand, prep, cfg)  # the steps, active sets and squeeze
            else:
                annealing_run(hand, obj, prep, 3.0)
    compile_s = time.perf_counter() - t0

    rows = []
    for name, (obj, prep) in loaded.items():
        row = {"object": name, "faces": int(np.asarray(obj.face_mask).sum())}
        for m in methods:
            if m == "jaxgrasp":
                row[m] = jaxgrasp_summary(hand, obj, prep, args.budget, cfg)
            else:
                row[m] = annealing_summary(hand, obj, prep, args.budget)
        rows.append(row)
        print(name, json.dumps({m: row[m] for m in methods}), flush=True)

    B = args.budget
    machine = f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0].platform}"
    print(f"\nplanner benchmark: hand {hand.name}, {len(rows)} objects, budget {B:g} s per object and method; {machine}; "
          f"warm-up compile {compile_s:.0f} s (excluded)")
    head = f"{'object':<26}"
    for m in methods:
        head += f"| {m[:9]:<9} t_valid  Q1@5s  Q1@{B:g}s pen@{B:g}s "
    print(head)
    for r in rows:
        line = f"{r['object']:<26}"
        for m in methods:
            s = r[m]
            tv = f"{s['time_to_valid_s']:.1f}" if s["time_to_valid_s"] is not None else "-"
            pen = s[f"pen_mm_at_{B:g}s"]
            line += f"| {'':<9} {tv:>7} {s['q1_at_5s']:>6.3f} {s[f'q1_at_{B:g}s']:>6.3f} {pen if pen is None else round(pen, 2)!s:>8} "
        print(line)
    summary = {}
    for m in methods:
        tv = [r[m]["time_to_valid_s"] for r in rows]
        ok = [t for t in tv if t is not None]
        scan_tv = [r[m]["time_to_valid_s"] for r in rows if r["object"] in scan_names]
        scan_ok = sorted(t if t is not None else np.inf for t in scan_tv)
        summary[m] = {
            "valid_within_budget": f"{len(ok)}/{len(rows)}",
            "median_time_to_valid_s": float(np.median([t if t is not None else np.inf for t in tv])),
            "median_time_to_valid_scans_s": float(np.median(scan_ok)) if scan_ok else None,
            "mean_q1_at_5s": float(np.mean([r[m]["q1_at_5s"] for r in rows])),
            f"mean_q1_at_{B:g}s": float(np.mean([r[m][f"q1_at_{B:g}s"] for r in rows])),
        }
        print(f"{m}: {summary[m]}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": machine, "budget_s": B, "compile_s": compile_s, "rows": rows, "summary": summary}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
