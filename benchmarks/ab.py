"""A/B planner benchmark: this checkout against another one, interleaved object by object.

    python benchmarks/ab.py --old /path/to/other/checkout [--objects 20] [--budget 30] [--repeats 1]

``benchmarks/plan.py``'s protocol (per object: the time to the first valid grasp, and the exact Q1
and penetration of the best grasp within 5 s and within the full budget; compilation done before
timing), for jaxgrasp only, run by two long-lived worker processes, one per checkout, each
importing its own ``jaxgrasp`` and ``benchmarks/plan.py``. The driver hands them the same object
in turn (old, new, old, new...), so both see the same machine load, and the idle worker waits.
``--repeats`` runs the whole interleaved sequence again (run-to-run noise). Prints a table and
writes JSON (``benchmarks/results/ab.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORKER = r'''
import importlib.util, json, sys
import jax, numpy as np
tree = sys.argv[1]
spec = importlib.util.spec_from_file_location("bench_plan", tree + "/benchmarks/plan.py")
B = importlib.util.module_from_spec(spec); spec.loader.exec_module(B)
from jaxgrasp import load_hand
try:  # the layered package
    from jaxgrasp.planning.evaluation import compile_evaluation
    from jaxgrasp.planning.planner import PlanConfig, as_object, compile_plan, make_scene, start_configs
except ModuleNotFoundError:  # checkouts before the layering
    from jaxgrasp.evaluation import compile_evaluation
    from jaxgrasp.planner import PlanConfig, as_object, compile_plan, make_scene, start_configs
try:  # prepared objects: (hand, prep, ...) in place of (hand, obj, tm, ...)
    from jaxgrasp.planning.planner import prepare
except ImportError:
    prepare = None
cfg = PlanConfig()
hand = load_hand("shadow")
objects, scans = B.benchmark_objects(int(sys.argv[2]), sys.argv[3])
loaded = {n: as_object(m)[::2] for n, m in objects}
seen = set()
for n, (obj, tm) in loaded.items():
    x = np.asarray(start_configs(hand, obj, cfg, jax.random.PRNGKey(0))[0])
    args = (prepare((obj, None), cfg),) if prepare else (obj, tm)
    compile_evaluation(hand, *args, x, cfg)
    key = make_scene(*args, cfg).obj.faces.shape
    if key not in seen:
        seen.add(key)
        compile_plan(hand, *args, cfg)
print(json.dumps({"ready": sorted(loaded), "scans": sorted(scans)}), flush=True)
for line in sys.stdin:
    name, budget = json.loads(line)
    obj, tm = loaded[name]
    print(json.dumps(B.jaxgrasp_summary(hand, obj, tm, budget, cfg)), flush=True)
'''


class Worker:
    def __init__(self, tree: str, objects: int, scans: str):
        env = {**os.environ, "PYTHONPATH": tree}
        self.p = subprocess.Popen([sys.executable, "-c", WORKER, tree, str(objects), scans], cwd=tree, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self._line())

    def _line(self) -> str:
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("worker died")
            if line.startswith("{"):
                return line

    def run(self, name: str, budget: float) -> dict:
        self.p.stdin.write(json.dumps([name, budget]) + "\n")
        self.p.stdin.flush()
        return json.loads(self._line())

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def summarize(rows: list[dict], scans: set[str], budget: float) -> dict:
    tv = [r["time_to_valid_s"] for r in rows]
    scan_tv = sorted(r["time_to_valid_s"] if r["time_to_valid_s"] is not None else np.inf
                     for r in rows if r["object"] in scans)
    return {
        "valid_within_budget": f"{sum(t is not None for t in tv)}/{len(rows)}",
        "median_time_to_valid_s": float(np.median([t if t is not None else np.inf for t in tv])),
        "median_time_to_valid_scans_s": float(np.median(scan_tv)) if scan_tv else None,
        "mean_q1_at_5s": float(np.mean([r["q1_at_5s"] for r in rows])),
        f"mean_q1_at_{budget:g}s": float(np.mean([r[f"q1_at_{budget:g}s"] for r in rows])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="the other checkout (its root folder)")
    ap.add_argument("--objects", type=int, default=20, help="procedural objects")
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--scans", default=str(HERE.parents[1] / "shared" / "objects"))
    ap.add_argument("--out", default=str(HERE / "results" / "ab.json"))
    args = ap.parse_args()
    trees = {"old": str(Path(args.old).resolve()), "new": str(HERE.parent)}
    t0 = time.perf_counter()
    workers = {k: Worker(t, args.objects, args.scans) for k, t in trees.items()}
    compile_s = time.perf_counter() - t0
    names, scans = workers["new"].info["ready"], set(workers["new"].info["scans"])
    rows = {k: [[] for _ in range(args.repeats)] for k in trees}
    for rep in range(args.repeats):
        for i, name in enumerate(names):
            order = ("old", "new") if (i + rep) % 2 == 0 else ("new", "old")
            for k in order:
                rows[k][rep].append({"object": name, **workers[k].run(name, args.budget)})
            print(rep, name, {k: rows[k][rep][-1]["time_to_valid_s"] for k in order}, flush=True)
    for w in workers.values():
        w.close()
    summary = {k: [summarize(r, scans, args.budget) for r in rows[k]] for k in trees}
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"\nA/B planner benchmark, {len(names)} objects, budget {args.budget:g} s, {machine}, "
          f"warm-up {compile_s:.0f} s (both workers, excluded)")
    keys = list(summary["new"][0])
    print(f"{'':<8}" + "".join(f"| {k[:28]:<28}" for k in keys))
    for k in trees:
        for rep, s in enumerate(summary[k]):
            print(f"{k + ' ' + str(rep):<8}" + "".join(
                f"| {(f'{v:.3f}' if isinstance(v, float) else str(v)):<28}" for v in s.values()))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": machine, "budget_s": args.budget, "trees": trees, "summary": summary, "rows": rows},
                  f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
