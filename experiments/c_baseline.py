"""Experiment C (paper Fig. 7): jaxgrasp.plan against the simulated-annealing baseline at equal time.

    python experiments/c_baseline.py [--full] [--procedural N] [--scans M] [--budget S] [--out DIR]

Both planners get the same wall-clock budget per object (``--budget``, default 10 s reduced, 30 s
with ``--full``), the same hand, configuration space, starts and exact evaluation, through the
libraries' own anytime modes: ``jaxgrasp.planning.api.plan_grasps(time_budget=B)`` (rounds of
``PlanConfig().schedule.steps`` Adam steps on ``num_starts`` starts, new seeds while time is left, the
``eval_top`` lowest-loss starts evaluated exactly every ``eval_every`` steps until a grasp is
valid, then every ``eval_every_valid``, and every start at each round's end; once a grasp is
valid, evaluations and squeezes on a background thread, ``Schedule.background``) and
``jaxgrasp.planning.baseline.anneal_grasps(time_budget=B)`` (``AnnealConfig`` defaults); set-up, steps and
exact evaluation all count. JAX compilation is done before timing, for both, as
``benchmarks/plan.py`` does: the exact evaluation once per object (it compiles per mesh size), each
planner once per padded optimization shape. Per object and method: exact Q1, penetration,
validity, time to the first valid grasp, steps and exact evaluations done, and the MuJoCo success
of the best grasp (1x and 10x weight, jaxgrasp.simulate). Default: 4 procedural objects + the
first 2 scans of ../shared/objects when present; ``--full``: 20 + all scans; ``--procedural N
--scans M --budget S`` for any other size (``--procedural 1 --scans 0 --budget 3``: a smoke test).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import numpy as np  # noqa: E402

METHODS = ("jaxgrasp", "annealing")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="20 procedural objects + all scans, 30 s budget")
    ap.add_argument("--procedural", type=int, default=None)
    ap.add_argument("--scans", type=int, default=None, help="how many scans (default 2, all with --full)")
    ap.add_argument("--scans-dir", default=str(common.DEFAULT_SCANS))
    ap.add_argument("--budget", type=float, default=None, help="seconds per object and method")
    ap.add_argument("--hand", default="shadow")
    ap.add_argument("--out", default=str(common.RESULTS / "c"))
    args = ap.parse_args(argv)

    import jax
    from tqdm import tqdm

    from jaxgrasp.hand.model import load_hand
    from jaxgrasp.planning.api import plan_grasps
    from jaxgrasp.planning.baseline import AnnealConfig, anneal_grasps
    from jaxgrasp.planning.evaluation import compile_evaluation
    from jaxgrasp.planning.planner import (
        PlanConfig,
        compile_plan,
        initial_configs,
        make_scene,
        prepare,
    )

    n_proc = args.procedural if args.procedural is not None else (20 if args.full else 4)
    n_scans = args.scans if args.scans is not None else (None if args.full else 2)
    budget = args.budget if args.budget is not None else (30.0 if args.full else 10.0)
    out = Path(args.out)
    cfg, acfg = PlanConfig(), AnnealConfig()
    hand = load_hand(args.hand)
    objects = common.object_set(n_proc, args.scans_dir, n_scans)
    t_start = time.perf_counter()

    loaded = {name: (prep.obj, prep.report, prep) for name, prep in ((n, prepare(m, cfg)) for n, m in objects)}
    t0 = time.perf_counter()
    seen = set()
    for name, (obj, rep, prep) in loaded.items():
        # The exact evaluation compiles per (full, decimated) mesh size: every object once.
        x0 = initial_configs(hand, float(obj.size), 1, jax.random.PRNGKey(0), opening=cfg.starts.opening,
                             standoff=cfg.starts.standoff)
        compile_evaluation(hand, prep, np.asarray(x0)[0], cfg)
        key = make_scene(prep, cfg).obj.faces.shape
        if key not in seen:  # both planners' steps, once per padded optimization shape
            seen.add(key)
            compile_plan(hand, prep, cfg)
            anneal_grasps((obj, rep), hand, config=acfg, time_budget=3.0)
    compile_s = time.perf_counter() - t0

    rows = []
    files = []
    for name, mesh in tqdm(objects, desc="planning", unit="object", dynamic_ncols=True):
        obj, rep, prep = loaded[name]
        mfile = common.mesh_file(name, mesh, out)
        for method in METHODS:
            t = time.perf_counter()
            if method == "jaxgrasp":
                r = plan_grasps((obj, rep), hand, config=cfg, time_budget=budget)[0]
            else:
                r = anneal_grasps((obj, rep), hand, config=acfg, time_budget=budget)[0]
            wall = time.perf_counter() - t
            m = r.metrics
            files.append(common.save_grasp_json(r, f"{name}__{method}", mfile, out,
                                                "jaxgrasp.plan" if method == "jaxgrasp" else "annealing"))
            rows.append({"object": name, "method": method, "wall_s": wall, "q1": m["q1"] if m["valid"] else 0.0,
                         "q1_raw": m["q1"], "penetration_mm": m["penetration_mm"], "contacts": m["num_contacts"],
                         "valid": m["valid"], "t_valid_s": m.get("time_to_first_valid_s"),
                         "steps": m.get("steps", m.get("anneal_steps")),
                         "evaluations": m.get("evaluations", m.get("anneal_evaluations"))})
    sims = common.simulate_grasp_files(files, hand=hand)
    for row, s in zip(rows, sims):
        row.update(s)

    summary = []
    for method in METHODS:
        rs = [r for r in rows if r["method"] == method]
        tv = [r["t_valid_s"] if r["t_valid_s"] is not None else np.inf for r in rs]
        summary.append({"method": method, "objects": len(rs), "valid": common.rate(rs, "valid"),
                        "sim": common.rate(rs, "sim"), "sim10x": common.rate(rs, "sim10x"),
                        "q1": common.mean(rs, "q1"), "pen": common.mean(rs, "penetration_mm"),
                        "t_valid": float(np.median(tv)), "wall": common.mean(rs, "wall_s")})
    columns = [("object", "object"), ("method", "method"), ("wall_s", "wall (s)"), ("t_valid_s", "t valid (s)"),
               ("q1", "Q1 (0 if not valid)"), ("penetration_mm", "pen. (mm)"), ("contacts", "contacts"),
               ("valid", "valid"), ("steps", "steps"), ("evaluations", "exact evals"), ("sim_pen_mm", "sim pen. (mm)"),
               ("sim", "sim 1x"), ("sim_reason", "1x outcome"), ("sim10x", "sim 10x")]
    scols = [("method", "method"), ("objects", "objects"), ("valid", "valid"), ("sim", "sim success 1x"),
             ("sim10x", "sim success 10x"), ("q1", "mean Q1 (0 if not valid)"), ("pen", "mean pen. (mm)"),
             ("t_valid", "median time to valid (s)"), ("wall", "mean wall (s)")]
    notes = [
        f"hand {hand.name}; budget {budget:g} s per object and method; {common.machine()}",
        f"warm-up compilation {compile_s:.0f} s (both planners, excluded); whole run "
        f"{time.perf_counter() - t_start:.0f} s",
        f"jaxgrasp: plan_grasps(time_budget) with PlanConfig() (rounds of {cfg.shapes.num_starts} starts x {cfg.schedule.steps} "
        f"steps, new seeds per round, the {cfg.schedule.eval_top} lowest-loss starts evaluated exactly every "
        f"{cfg.schedule.eval_every} steps until a grasp is valid, then every {cfg.schedule.eval_every_valid}, every start at a "
        f"round's end{'' if cfg.schedule.eval_final else ' (off)'}; after each round the best grasps are squeezed, {cfg.squeeze.steps} steps); annealing: anneal_grasps(time_budget) with AnnealConfig() ({acfg.chains} "
        f"chains, {acfg.steps}-step cycles); set-up, steps and exact evaluation count for both; steps: Adam "
        "steps per start (jaxgrasp) or annealing steps per chain",
        "sim 1x / 10x: MuJoCo, DexGraspBench protocol (jaxgrasp.simulate) at 10 N/kg (about 1x the weight) "
        "and 98.1 N/kg (10x); a wall time above the budget is the mandatory final evaluation",
    ]
    md = common.write_outputs(out, "Experiment C: jaxgrasp.plan vs annealing at equal time (paper Fig. 7)", rows,
                              columns, summary, scols, notes,
                              extra={"budget_s": budget, "compile_s": compile_s, "config": common.config_dict(cfg),
                                     "anneal_config": common.config_dict(acfg)})
    labels = [n for n, _ in objects]
    by = {(r["object"], r["method"]): r for r in rows}
    common.bar_plot(out / "q1.png", labels, {m: [by[(n, m)]["q1"] for n in labels] for m in METHODS},
                    "exact Q1 (0 if not valid)", f"Q1 at {budget:g} s")
    common.bar_plot(out / "penetration.png", labels,
                    {m: [by[(n, m)]["penetration_mm"] for n in labels] for m in METHODS}, "mm", "penetration")
    common.bar_plot(out / "success.png", ["valid", "sim 1x", "sim 10x"],
                    {m: [100.0 * np.mean([bool(by[(n, m)].get(k)) for n in labels]) for k in ("valid", "sim", "sim10x")]
                     for m in METHODS}, "% of objects", "success rates")
    print(md.read_text())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
