"""Planner benchmark: jaxgrasp.plan against the simulated-annealing baseline at equal time.

    python benchmarks/plan.py [--objects 20] [--budget 30] [--scans ../shared/objects] [--methods jaxgrasp,annealing]

Per object and method: the time to the first valid grasp (force closure and penetration and
self-penetration <= 1 mm, by the same exact evaluation), and the exact Q1 and penetration of the
best grasp found within 5 s and within the full budget. Both methods are anytime: jaxgrasp
restarts with new seeds when its steps are done, the baseline anneals until the budget is spent;
the time spent evaluating counts. Compilation is done before timing (one warm-up per padded
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

from jaxgrasp.hand import load_hand
from jaxgrasp.planner import (
    PlanConfig,
    as_object,
    evaluate,
    initial_configs,
    make_adam,
    make_scene,
    rank_key,
    run_steps,
    select_active,
    variable_scale,
)
from jaxgrasp.procedural import procedural_set

CHECKPOINTS = (5.0,)


def jaxgrasp_anytime(hand, obj, tm, budget: float, cfg: PlanConfig, eval_every: int = 50,
                     eval_top: int = 4) -> list[tuple[float, dict]]:
    """Events ``(time, metrics)`` each time the best grasp so far improves.

    Every ``eval_every`` steps the ``eval_top`` starts with the lowest loss are evaluated
    exactly (evaluating all 16 would cost more than the steps themselves).
    """
    t0 = time.perf_counter()
    scene = make_scene(obj, tm, cfg)
    scale = variable_scale(hand, cfg)
    events: list[tuple[float, dict]] = []
    best = None
    seed = cfg.seed
    while best is None or time.perf_counter() - t0 < budget:  # at least one round (warm-up)
        x0 = initial_configs(hand, float(obj.size), cfg.num_starts, jax.random.PRNGKey(seed),
                             opening=cfg.opening, standoff=cfg.standoff)
        y = x0 / scale
        state = make_adam(cfg).init(y)
        done = 0
        while done < cfg.steps and (best is None or time.perf_counter() - t0 < budget):
            si, oi = select_active(hand, scene, y, cfg)
            y, state, total, _ = run_steps(hand, scene, y, state, si, oi, cfg, 25)
            done += 25
            if done % eval_every == 0 or done >= cfg.steps:
                xs = np.asarray(y * scale)[np.argsort(np.asarray(total))[:eval_top]]
                for xi in xs:
                    m = evaluate(hand, obj, xi, cfg, tm)
                    if best is None or rank_key(m) < rank_key(best):
                        best = m
                        events.append((time.perf_counter() - t0, m))
        seed += 1
    return events


def annealing_run(hand, obj, tm, budget: float) -> dict:
    """The baseline at one budget (its own anytime loop): best grasp metrics, first-valid time."""
    from jaxgrasp.baseline import anneal_grasps

    r = anneal_grasps((obj, None), hand, time_budget=budget)[0]
    return r.metrics


def annealing_summary(hand, obj, tm, budget: float) -> dict:
    """Baseline row: one run with a 5 s budget and one with the full budget (same seed)."""
    m5, mb = annealing_run(hand, obj, tm, CHECKPOINTS[0]), annealing_run(hand, obj, tm, budget)
    out = {"time_to_valid_s": mb.get("time_to_first_valid_s")}
    for t, m in ((CHECKPOINTS[0], m5), (budget, mb)):
        out[f"q1_at_{t:g}s"] = m["q1"] if m["valid"] else 0.0
        out[f"pen_mm_at_{t:g}s"] = m["penetration_mm"]
        out[f"valid_at_{t:g}s"] = bool(m["valid"])
    return out


def summarize(events: list[tuple[float, dict]], budget: float) -> dict:
    def best_at(t):
        ms = [m for (te, m) in events if te <= t]
        return ms[-1] if ms else None

    first_valid = next((te for te, m in events if m["valid"]), None)
    out = {"time_to_valid_s": first_valid}
    for t in (*CHECKPOINTS, budget):
        m = best_at(t)
        # Q1 of the best *valid* grasp (0 without one): an invalid grasp's Q1 means nothing.
        out[f"q1_at_{t:g}s"] = m["q1"] if m and m["valid"] else 0.0
        out[f"pen_mm_at_{t:g}s"] = m["penetration_mm"] if m else None
        out[f"valid_at_{t:g}s"] = bool(m and m["valid"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=20, help="procedural objects")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds per object and method")
    ap.add_argument("--scans", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "objects"))
    ap.add_argument("--methods", default="jaxgrasp,annealing")
    ap.add_argument("--hand", default="shadow")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "plan.json"))
    args = ap.parse_args()
    methods = args.methods.split(",")

    cfg = PlanConfig()
    hand = load_hand(args.hand)
    objects = [(name, mesh) for name, mesh in procedural_set(args.objects, seed=7)]
    scans = sorted(Path(args.scans).glob("*.stl")) if Path(args.scans).is_dir() else []
    objects += [(f.stem, str(f)) for f in scans]

    # Warm-up: compile every padded shape once, outside the timed runs.
    t0 = time.perf_counter()
    loaded = {}
    for name, mesh in objects:
        obj, _, tm = as_object(mesh)
        loaded[name] = (obj, tm)
    seen = set()
    for name, (obj, tm) in loaded.items():
        key = (make_scene(obj, tm, cfg).obj.faces.shape, obj.faces.shape)
        if key in seen:
            continue
        seen.add(key)
        evaluate(hand, obj, np.asarray(initial_configs(hand, float(obj.size), 1, jax.random.PRNGKey(0),
                                                       opening=cfg.opening, standoff=cfg.standoff))[0], cfg, tm)
        for m in methods:
            if m == "jaxgrasp":
                jaxgrasp_anytime(hand, obj, tm, 0.1, cfg)
            else:
                annealing_run(hand, obj, tm, 3.0)
    compile_s = time.perf_counter() - t0

    rows = []
    for name, (obj, tm) in loaded.items():
        row = {"object": name, "faces": int(np.asarray(obj.face_mask).sum())}
        for m in methods:
            if m == "jaxgrasp":
                row[m] = summarize(jaxgrasp_anytime(hand, obj, tm, args.budget, cfg), args.budget)
            else:
                row[m] = annealing_summary(hand, obj, tm, args.budget)
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
        scan_tv = [r[m]["time_to_valid_s"] for r in rows if r["object"] in {f.stem for f in scans}]
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
