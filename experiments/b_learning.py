"""Experiment B (paper Table II): learning with ground truth, phase 1 alone vs phase 1 + phase 2.

    python experiments/b_learning.py [--checkpoint-phase1 DIR --checkpoint-final DIR | --run DIR]
        [--full] [--samples N] [--data data/bundled] [--out experiments/results/b]

The network (jaxgrasp.train) after phase 1 (Chamfer data loss alone) and after phase 1 + phase 2
(+ the differentiable loss) predicts a grasp for every test sample (an unseen object under one of
its 8 augmentation rotations) from the depth views. Each prediction, in the sample frame (the
object rotated by ``R_aug``), is mapped back to the object's centred frame
(``jaxgrasp.learning.train.predict_object_frame``, the mapping the training and ``jaxgrasp.evaluate`` use),
evaluated exactly (``jaxgrasp.planning.evaluation.evaluate``: exact Q1, penetration, force closure,
validity, as ``python -m jaxgrasp.evaluate``) and written as a grasp JSON against the centred mesh
of the dataset (``meshes/<name>.obj``), which MuJoCo then tests (DexGraspBench protocol at 10 N/kg,
about 1x the weight, and at 10x the weight; jaxgrasp.simulate). A reference row holds the
dataset's best ground-truth grasp of every test object (planner grasps, ``gt/<name>.npz``; one
per object, the rotations do not change it).

Checkpoints: ``--checkpoint-phase1`` / ``--checkpoint-final`` (the ``phase1/`` and ``final/``
folders of a ``python -m jaxgrasp.train`` run), or ``--run DIR`` (a run folder holding both);
without them the bundled training runs first into ``--run`` (default ``runs/experiment_b``,
resumable; TrainConfig defaults, up to about 15 minutes on a 2-core CPU) and is reused by later
calls. Reduced (default): the ``tiny`` backbone and every test sample of the bundled dataset;
``--full``: the paper's ResNet-50 backbone (``--model`` to choose), ``--data`` for a larger
dataset (``python -m jaxgrasp.dataset build``). ``--samples N``: N test samples evenly spread (a
smoke test). Writes table.md, table.csv, results.json, plots and the grasp JSONs to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import numpy as np  # noqa: E402

PREDICTORS = ("phase 1", "phase 1 + phase 2")
REFERENCE = "ground truth"


def train_run(args) -> tuple[str, str, dict]:
    """``(phase1 dir, final dir, training summary)``: given, found in ``--run``, or trained there."""
    if args.checkpoint_phase1 or args.checkpoint_final:
        if not (args.checkpoint_phase1 and args.checkpoint_final):
            raise SystemExit("give both --checkpoint-phase1 and --checkpoint-final (or --run)")
        return args.checkpoint_phase1, args.checkpoint_final, {}
    run = Path(args.run)
    p1, fin = run / "phase1", run / "final"
    if (run / "run.json").is_file() and p1.is_dir() and fin.is_dir():
        return str(p1), str(fin), {"reused_run": str(run)}
    from jaxgrasp.learning.config import TrainConfig
    from jaxgrasp.learning.train import Interrupted, train

    data = args.data or str(common.ROOT / "data" / "bundled")
    if not (Path(data) / "manifest.json").is_file():
        raise SystemExit(f"no dataset at {data}: build it with `python -m jaxgrasp.dataset build --out {data}`")
    d = TrainConfig()
    cfg = TrainConfig(data=data, out=str(run), arch=args.model or ("resnet50" if args.full else d.arch),
                      epochs1=args.epochs1 if args.epochs1 is not None else d.epochs1,
                      epochs2=args.epochs2 if args.epochs2 is not None else d.epochs2)
    print(f"training {cfg.arch} ({cfg.epochs1} + {cfg.epochs2} epochs) into {run}", file=sys.stderr)
    try:
        s = train(cfg, resume=(run / "run.json").is_file(), final_eval=False)
    except Interrupted:
        raise SystemExit(f"training interrupted; rerun the same command to resume {run}") from None
    return str(p1), str(fin), {"trained_run": str(run), "train_time_s": s["train_time_s"], "steps": s["steps"],
                               "step_time_s": s["step_time_s"], "arch": cfg.arch, "epochs1": cfg.epochs1,
                               "epochs2": cfg.epochs2}


def grasp_rows(label: str, configs: np.ndarray, samples: list[dict], full: dict, hand, plan, out: Path,
               mesh_paths: dict) -> tuple[list[dict], list[Path]]:
    """Evaluate configurations ``(n, 6 + I)`` (centred frame) exactly and write their grasp JSONs."""
    from tqdm import tqdm

    from jaxgrasp.planning.evaluation import evaluate
    from jaxgrasp.planning.planner import make_result

    rows, files = [], []
    slug = label.replace(" + ", "+").replace(" ", "")
    for s, x in tqdm(list(zip(samples, configs)), desc=f"evaluate {label}", unit="grasp", dynamic_ncols=True):
        obj, rep, prep = full[s["object"]]
        m = evaluate(hand, prep, x, plan, extras=False)
        r = make_result(hand, prep, np.asarray(x, np.float64), m, [], 0.0, plan)
        name = f"{slug}__{s['object']}__r{s['rotation']}"
        files.append(common.save_grasp_json(r, name, mesh_paths[s["object"]], out, f"jaxgrasp.network ({label})"))
        rows.append({"predictor": label, "object": s["object"], "rotation": s["rotation"], "q1": m["q1"],
                     "penetration_mm": m["penetration_mm"], "self_penetration_mm": m["self_penetration_mm"],
                     "contacts": m["num_contacts"], "force_closure": m["q1"] > 0, "valid": m["valid"]})
    return rows, files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint-phase1", help="phase1/ folder of a training run")
    ap.add_argument("--checkpoint-final", help="final/ folder of a training run (phase 1 + phase 2)")
    ap.add_argument("--run", default=str(common.ROOT / "runs" / "experiment_b"),
                    help="training run folder: reused when it holds phase1/ and final/, else trained there")
    ap.add_argument("--data", default=None,
                    help="dataset folder (default: the checkpoints' training data; data/bundled to train)")
    ap.add_argument("--full", action="store_true", help="train the paper's ResNet-50 backbone")
    ap.add_argument("--model", default=None, help="backbone when training (default tiny, resnet50 with --full)")
    ap.add_argument("--epochs1", type=int, default=None, help="phase 1 epochs when training (TrainConfig default)")
    ap.add_argument("--epochs2", type=int, default=None, help="phase 2 epochs when training (TrainConfig default)")
    ap.add_argument("--samples", type=int, default=None, help="test samples, evenly spread (default all)")
    ap.add_argument("--no-reference", action="store_true", help="leave out the ground-truth row")
    ap.add_argument("--out", default=str(common.RESULTS / "b"))
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    p1, fin, training = train_run(args)

    from jaxgrasp.hand.model import load_hand
    from jaxgrasp.learning import checkpoint as C
    from jaxgrasp.learning.data import load_split, read_mesh
    from jaxgrasp.learning.evaluate import predict_object_frame, summarize
    from jaxgrasp.learning.train import val_indices
    from jaxgrasp.planning.planner import PlanConfig, prepare

    run = C.read_run(C.resolve(fin)[0])
    data = args.data or run["train_config"]["data"]  # the run's dataset unless told otherwise
    if not Path(data).is_absolute() and not Path(data).is_dir():
        data = str(common.ROOT / data)
    plan = C.train_config_from_json(run["train_config"]).plan
    test = load_split(data, "test")
    objects = test.manifest["objects"]
    hand = load_hand(test.manifest["hand"])
    idx = val_indices(len(test), args.samples) if args.samples else np.arange(len(test))
    samples = [{"object": objects[int(test.object_index[i])]["name"], "rotation": int(test.rotation_index[i])}
               for i in idx]
    names = sorted({s["object"] for s in samples})
    by_name = {o["name"]: o for o in objects}
    mesh_paths = {n: str((Path(data) / by_name[n]["mesh"]).resolve()) for n in names}
    full = {n: (p.obj, p.report, p) for n, p in ((n, prepare(read_mesh(mesh_paths[n]), PlanConfig())) for n in names)}
    out = Path(args.out)

    rows, files = [], []
    for label, ckpt in zip(PREDICTORS, (p1, fin)):
        mcfg, params, _ = C.load_model(ckpt)
        x = predict_object_frame(mcfg, params, test.depth[idx], test.R_aug[idx])
        r, f = grasp_rows(label, x, samples, full, hand, plan, out, mesh_paths)
        rows += r
        files += f
    if not args.no_reference:
        gt = [np.load(Path(data) / "gt" / f"{n}.npz")["configs"][0] for n in names]
        r, f = grasp_rows(REFERENCE, np.stack(gt), [{"object": n, "rotation": 0} for n in names], full, hand,
                          plan, out, mesh_paths)
        rows += r
        files += f
    for row, s in zip(rows, common.simulate_grasp_files(files, hand=hand)):
        row.update(s)

    labels = [*PREDICTORS, *(() if args.no_reference else (REFERENCE,))]
    summary = []
    for label in labels:
        rs = [r for r in rows if r["predictor"] == label]
        t2 = summarize(rs)
        summary.append({"predictor": label, "n": len(rs), "q1_mean": t2["q1_mean"], "q1_var": t2["q1_var"],
                        "pen_mean": t2["penetration_mm"], "pen_median": t2["penetration_median_mm"],
                        "fc": common.rate(rs, "force_closure"), "valid": common.rate(rs, "valid"),
                        "sim": common.rate(rs, "sim"), "sim10x": common.rate(rs, "sim10x")})
    scols = [("predictor", "predictor"), ("n", "grasps"), ("q1_mean", "Q1 mean"), ("q1_var", "Q1 var"),
             ("pen_mean", "pen. mean (mm)"), ("pen_median", "pen. median (mm)"), ("fc", "force closure"),
             ("valid", "valid"), ("sim", "sim success 1x weight"), ("sim10x", "sim success 10x weight")]
    columns = [("predictor", "predictor"), ("object", "object"), ("rotation", "rotation"), ("q1", "Q1"),
               ("penetration_mm", "pen. (mm)"), ("self_penetration_mm", "self pen. (mm)"), ("contacts", "contacts"),
               ("valid", "valid"), ("sim_pen_mm", "sim pen. (mm)"), ("sim", "sim 1x"), ("sim_reason", "1x outcome"),
               ("sim10x", "sim 10x")]
    tr = (f"trained here: {training['arch']}, {training['epochs1']} + {training['epochs2']} epochs in "
          f"{training['train_time_s']:.0f} s ({training['steps']} steps; median step phase 1 "
          f"{training['step_time_s']['phase1'] or float('nan'):.3f} s, phase 2 "
          f"{training['step_time_s']['phase2'] or float('nan'):.3f} s)" if "trained_run" in training else
          f"checkpoints: {os.path.abspath(p1)}, {os.path.abspath(fin)}")
    tc = run["train_config"]
    notes = [
        f"dataset {os.path.abspath(data)}: {len(idx)} of {len(test)} test samples ({len(names)} objects x their "
        f"augmentation rotations); hand {hand.name}; {common.machine()}",
        f"{tr}; backbone {run['model_config']['arch']}, trained {tc['epochs1']} + {tc['epochs2']} epochs "
        "(phase 1: Chamfer data loss; phase 2: + differentiable loss, paper Table I weights)",
        "Q1: exact Q1 (planner evaluation: touching contacts, unit force each, mu of PlanConfig); pen.: max of "
        "hand-in-object and object-in-hand (mm); force closure: Q1 > 0; valid: force closure and penetration and "
        "self-penetration <= 1 mm (as python -m jaxgrasp.evaluate, network alone)",
        "sim 1x / 10x: MuJoCo, DexGraspBench protocol (jaxgrasp.simulate) at 10 N/kg (about 1x the weight) and "
        "98.1 N/kg (10x); sim pen.: initial penetration MuJoCo measures",
        f"{REFERENCE}: the dataset's best ground-truth grasp of each test object (planner, gt/<name>.npz), one per "
        f"object; whole run {time.perf_counter() - t_start:.0f} s",
    ]
    md = common.write_outputs(out, "Experiment B: learning with ground truth (paper Table II)", rows, columns,
                              summary, scols, notes, extra={"training": training, "run": run})
    rate = {label: [100.0 * np.mean([bool(r.get(k)) for r in rows if r["predictor"] == label])
                    for k in ("force_closure", "valid", "sim", "sim10x")] for label in labels}
    common.bar_plot(out / "success.png", ["force closure", "valid", "sim 1x", "sim 10x"], rate, "% of grasps",
                    "rates per predictor")
    def per_object(key: str) -> dict[str, list[float]]:
        return {label: [float(np.mean([r[key] for r in rows if r["predictor"] == label and r["object"] == n]))
                        for n in names] for label in labels}

    common.bar_plot(out / "q1.png", names, per_object("q1"), "exact Q1 (mean over rotations)", "Q1 per test object")
    common.bar_plot(out / "penetration.png", names, per_object("penetration_mm"), "mm (mean over rotations)",
                    "penetration per test object")
    print(md.read_text())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
