"""Experiment A (paper Fig. 6): planning without ground truth on an object set.

    python experiments/a_planning.py [--full] [--procedural N] [--scans M] [--budget S] [--out DIR]

jaxgrasp.plan on each object with a fixed amount of work (``PlanConfig`` defaults: ``num_starts``
starts, ``steps`` Adam steps, every start evaluated exactly), as the paper's Fig. 6 reports the
time the optimizer takes, not a quality reached within a budget (experiment C compares planners at
equal time); ``--budget S`` runs the anytime mode instead (``plan(time_budget=S)``). Per object: the planner's
wall time (compilation excluded: the exact evaluation is compiled once per object and the
optimizer once per padded shape before timing, reported apart), exact Q1, penetration, validity,
and the grasp's success in MuJoCo (DexGraspBench protocol at 10 N/kg, about 1x the weight, and at
10x the weight; jaxgrasp.simulate). Default: a reduced set (6 procedural objects + the first 2
scans of ../shared/objects when present); ``--full``: 20 procedural objects + all scans;
``--procedural N --scans M`` for any other size. Writes table.md, table.csv, results.json, plots
and the grasp JSONs to the output folder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import numpy as np  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="20 procedural objects + all scans")
    ap.add_argument("--procedural", type=int, default=None)
    ap.add_argument("--scans", type=int, default=None, help="how many scans (default 2, all with --full)")
    ap.add_argument("--scans-dir", default=str(common.DEFAULT_SCANS))
    ap.add_argument("--budget", type=float, default=None,
                    help="anytime planning with this many seconds per object (default: fixed 200 steps)")
    ap.add_argument("--hand", default="shadow")
    ap.add_argument("--out", default=str(common.RESULTS / "a"))
    args = ap.parse_args(argv)

    import jax
    from tqdm import tqdm

    from jaxgrasp.hand.model import load_hand
    from jaxgrasp.planning.api import plan
    from jaxgrasp.planning.evaluation import compile_evaluation
    from jaxgrasp.planning.planner import (
        PlanConfig,
        initial_configs,
        make_scene,
        prepare,
    )

    n_proc = args.procedural if args.procedural is not None else (20 if args.full else 6)
    n_scans = args.scans if args.scans is not None else (None if args.full else 2)
    out = Path(args.out)
    cfg = PlanConfig()
    hand = load_hand(args.hand)
    objects = common.object_set(n_proc, args.scans_dir, n_scans)
    t_start = time.perf_counter()

    # Warm-up, so the timed runs exclude compilation: the exact evaluation once per object (it
    # compiles per full and decimated mesh size), the optimizer once per padded shape.
    loaded = {name: (prep.obj, prep.report, prep) for name, prep in ((n, prepare(m, cfg)) for n, m in objects)}
    t0 = time.perf_counter()
    seen = set()
    for name, (obj, rep, prep) in loaded.items():
        x0 = initial_configs(hand, float(obj.size), 1, jax.random.PRNGKey(0), opening=cfg.starts.opening,
                             standoff=cfg.starts.standoff)
        compile_evaluation(hand, prep, np.asarray(x0)[0], cfg)
        key = make_scene(prep, cfg).obj.faces.shape
        if key not in seen:
            seen.add(key)
            plan((obj, rep), hand, config=cfg, time_budget=None if args.budget is None else 0.1)
    compile_s = time.perf_counter() - t0

    rows = []
    files = []
    for name, mesh in tqdm(objects, desc="planning", unit="object", dynamic_ncols=True):
        obj, rep, prep = loaded[name]
        r = plan((obj, rep), hand, config=cfg, time_budget=args.budget)
        m = r.metrics
        files.append(common.save_grasp_json(r, name, common.mesh_file(name, mesh, out), out, "jaxgrasp.plan"))
        rows.append({"object": name, "faces": int(np.asarray(obj.face_mask).sum()), "time_s": r.time_s,
                     "q1": m["q1"], "penetration_mm": m["penetration_mm"], "contacts": m["num_contacts"],
                     "valid": m["valid"]})
    sims = common.simulate_grasp_files(files, hand=hand)
    for row, s in zip(rows, sims):
        row.update(s)

    summary = [{"objects": len(rows), "valid": common.rate(rows, "valid"), "sim": common.rate(rows, "sim"),
                "sim10x": common.rate(rows, "sim10x"), "q1": common.mean(rows, "q1"),
                "q1_valid": common.mean(rows, "q1", lambda r: r["valid"]),
                "pen": common.mean(rows, "penetration_mm"), "time": float(np.median([r["time_s"] for r in rows]))}]
    columns = [("object", "object"), ("faces", "faces"), ("time_s", "time (s)"), ("q1", "Q1"),
               ("penetration_mm", "pen. (mm)"), ("contacts", "contacts"), ("valid", "valid"),
               ("sim_pen_mm", "sim pen. (mm)"), ("sim", "sim 1x"), ("sim_reason", "1x outcome"),
               ("sim10x", "sim 10x"), ("sim10x_reason", "10x outcome")]
    scols = [("objects", "objects"), ("valid", "valid (FC, pen <= 1 mm)"), ("sim", "sim success 1x weight"),
             ("sim10x", "sim success 10x weight"), ("q1", "mean Q1"), ("q1_valid", "mean Q1 (valid)"),
             ("pen", "mean pen. (mm)"), ("time", "median time (s)")]
    mode = (f"PlanConfig defaults ({cfg.shapes.num_starts} starts, {cfg.schedule.steps} steps, every start evaluated exactly)"
            if args.budget is None else f"anytime planning, plan(time_budget={args.budget:g} s), PlanConfig defaults")
    notes = [
        f"hand {hand.name}; {mode}; {common.machine()}",
        f"warm-up compilation {compile_s:.0f} s (exact evaluation per object, optimizer per padded shape; excluded "
        f"from the times); whole run {time.perf_counter() - t_start:.0f} s",
        "Q1: exact Q1 of the planner's evaluation (unit force per contact, mu 0.7); pen.: max penetration "
        "(hand in object, object in hand links) on the full mesh; valid: force closure and penetration, "
        "self-penetration <= 1 mm",
        "sim 1x: DexGraspBench protocol in MuJoCo (jaxgrasp.simulate defaults: 100 g object, 10 N/kg along "
        "+-x, +-y, +-z for 2 s each, gravity off, kp 5, squeeze 5% of range; success: < 5 cm and < 15 deg); "
        "sim 10x: the same at 98.1 N/kg (10x the weight); sim pen.: initial penetration MuJoCo measures on "
        "the object's convex pieces",
    ]
    md = common.write_outputs(out, "Experiment A: planning without ground truth (paper Fig. 6)", rows, columns,
                              summary, scols, notes, extra={"config": common.config_dict(cfg), "compile_s": compile_s})
    labels = [r["object"] for r in rows]
    common.bar_plot(out / "q1.png", labels, {"Q1": [r["q1"] for r in rows]}, "exact Q1", "Q1 per object")
    common.bar_plot(out / "time.png", labels, {"time": [r["time_s"] for r in rows]}, "seconds", "planning time")
    common.bar_plot(out / "penetration.png", labels, {"planner": [r["penetration_mm"] for r in rows],
                                                      "MuJoCo": [r.get("sim_pen_mm") for r in rows]},
                    "mm", "penetration")
    common.bar_plot(out / "success.png", ["valid", "sim 1x", "sim 10x"],
                    {"rate": [100.0 * np.mean([bool(r.get(k)) for r in rows]) for k in ("valid", "sim", "sim10x")]},
                    "% of objects", "success rates")
    print(md.read_text())
    print(f"jax {jax.__version__}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
