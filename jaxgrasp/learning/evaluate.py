"""``python -m jaxgrasp.evaluate [CHECKPOINT]``: the learned predictor on the test split (Table II).

For every test sample (an unseen object under one augmentation rotation) the network predicts a
configuration from the depth views; it is mapped to the object's centred frame and evaluated
exactly (``planner.evaluate``: full mesh, exact-sign distances, exact Q1 of the touching
contacts). Columns (paper Table II, plus rates): mean and variance of exact Q1, mean and median
penetration (mm: the deeper of hand-in-object and object-in-hand), force-closure rate (Q1 > 0)
and valid rate (force closure, penetration and self-penetration <= 1 mm). Rows: the network
alone, and the network followed by ``--refine-steps`` planner steps (``planner.optimize`` from
the prediction, the planner's own loss and settings).

CHECKPOINT is a run folder (``python -m jaxgrasp.train --out``; default ``out/train``: then
both its ``phase1/`` and ``final/`` parameters are evaluated, phase 1 alone against phase 1 +
phase 2) or a ``phase1/`` / ``final/`` folder inside one. Writes ``table.md`` and
``results.json`` beside the checkpoint (or to ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxgrasp.hand.model import load_hand
from jaxgrasp.learning import checkpoint as C
from jaxgrasp.learning import model as M
from jaxgrasp.learning.data import load_split, to_object_frame
from jaxgrasp.learning.scenes import load_objects
from jaxgrasp.planning.evaluation import evaluate
from jaxgrasp.planning.planner import PlanConfig, Schedule, optimize

COLUMNS = (("q1_mean", "Q1 mean", "{:.4f}"), ("q1_var", "Q1 var", "{:.4f}"),
           ("penetration_mm", "penetration mean (mm)", "{:.2f}"),
           ("penetration_median_mm", "penetration median (mm)", "{:.2f}"),
           ("force_closure", "force closure", "{:.0%}"), ("valid", "valid", "{:.0%}"))

predict_batch = jax.jit(M.apply, static_argnums=(0,))


def predict_object_frame(mcfg: M.ModelConfig, params, depth: np.ndarray, R: np.ndarray, chunk: int = 16) -> np.ndarray:
    """Predictions ``(n, 6 + I)`` for depth views ``(n, V, H, W)``, mapped to the object frame."""
    out = []
    for k in range(0, len(depth), chunk):
        x = predict_batch(mcfg, params, jnp.asarray(depth[k:k + chunk]))
        out.append(np.asarray(jax.vmap(to_object_frame)(x, jnp.asarray(R[k:k + chunk], x.dtype))))
    return np.concatenate(out).astype(np.float64)


def summarize(metrics: list[dict]) -> dict:
    """Table II columns of a list of ``planner.evaluate`` results."""
    q1 = np.array([m["q1"] for m in metrics])
    pen = np.array([m["penetration_mm"] for m in metrics])
    return {"n": len(metrics), "q1_mean": float(q1.mean()), "q1_var": float(q1.var()),
            "penetration_mm": float(pen.mean()), "penetration_median_mm": float(np.median(pen)),
            "force_closure": float(np.mean(q1 > 0)), "valid": float(np.mean([m["valid"] for m in metrics]))}


def evaluate_params(mcfg, params, test_set, hand, scenes, full, plan: PlanConfig, *, refine_steps: int = 0,
                    progress: bool = True, label: str = "") -> dict:
    """Exact metrics of a network's predictions on a split, alone and after planner steps.

    Returns:
        ``{"network": summary, "per_sample": [...], "refined": summary (when refine_steps > 0),
        "per_sample_refined": [...]}``; a summary holds the Table II columns (:func:`summarize`).
    """
    x = predict_object_frame(mcfg, params, test_set.depth, test_set.R_aug)
    oi = np.asarray(test_set.object_index)
    bar = tqdm(total=len(x) * (2 if refine_steps else 1), desc=f"evaluate {label}".strip(), unit="grasp",
               disable=not progress)
    per = []
    for i, xi in enumerate(x):
        per.append(_slim(evaluate(hand, full[oi[i]], xi, plan.evaluation, extras=False)))
        bar.update(1)
    out = {"network": summarize(per), "per_sample": per}
    if refine_steps > 0:
        # The planner's own loss and settings (PlanConfig defaults: collision depths in 2 mm units),
        # not the training's milder collision scale; the scene arrays do not depend on them.
        rcfg = dataclasses.replace(PlanConfig(), schedule=Schedule(steps=refine_steps), seed=plan.seed)
        xr = np.empty_like(x)
        sc_all = scenes.scenes
        for o in np.unique(oi):
            rows = np.nonzero(oi == o)[0]
            sc = _scene_of(sc_all, int(o))
            y, _ = optimize(hand, sc, jnp.asarray(x[rows], hand.body_pos.dtype), rcfg)
            xr[rows] = np.asarray(y, np.float64)
        per_r = []
        for i, xi in enumerate(xr):
            per_r.append(_slim(evaluate(hand, full[oi[i]], xi, plan.evaluation, extras=False)))
            bar.update(1)
        out["refined"] = summarize(per_r)
        out["per_sample_refined"] = per_r
    bar.close()
    return out


def _scene_of(stacked, i: int):
    """Object ``i`` of stacked scenes."""
    return jax.tree.map(lambda a: a[i], stacked)


def _slim(m: dict) -> dict:
    return {k: m[k] for k in ("q1", "penetration_mm", "self_penetration_mm", "num_contacts", "valid")}


def markdown(rows: list[tuple[str, dict]], refine_steps: int) -> str:
    """Markdown table of ``(name, summary)`` rows."""
    head = "| predictor | n | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for name, s in rows:
        lines.append(f"| {name} | {s['n']} | " + " | ".join(f.format(s[k]) for k, _, f in COLUMNS) + " |")
    if refine_steps:
        lines.append(f"\n(+ planner: {refine_steps} steps of jaxgrasp.planning.planner.optimize from the prediction)")
    return "\n".join(lines)


def evaluate_run(checkpoint: str, *, data: str | None = None, refine_steps: int = 0, progress: bool = True,
                 out: str | None = None) -> dict:
    """Evaluate a run (its ``phase1/`` and ``final/`` parameters) or one parameter folder on the
    test split; writes ``table.md`` and ``results.json``; returns them (``"markdown"``, ``"rows"``)."""
    path = os.path.abspath(checkpoint)
    if os.path.exists(os.path.join(path, "run.json")):
        run_dir = path
        tc = C.read_run(run_dir)["train_config"]
        names = [("phase 1", "phase1")] if tc["epochs1"] > 0 else []
        names += [("phase 1 + phase 2" if tc["epochs1"] > 0 else "phase 2", "final")] if tc["epochs2"] > 0 else []
        targets = [(n, os.path.join(run_dir, d)) for n, d in names if os.path.isdir(os.path.join(run_dir, d))]
        if not targets:
            raise FileNotFoundError(f"{run_dir} holds no phase1/ or final/ parameters yet")
    else:
        run_dir, pdir = C.resolve(path)
        targets = [(os.path.basename(pdir), pdir)]
    run = C.read_run(run_dir)
    data = data or run["train_config"]["data"]
    tcfg = C.train_config_from_json(run["train_config"])
    test_set = load_split(data, "test")
    hand = load_hand(test_set.manifest["hand"])
    scenes, full = load_objects(data, test_set.manifest, tcfg.plan, hand.body_pos.dtype)
    rows, results = [], {}
    for name, path in targets:
        mcfg, params, _ = C.load_model(path)
        r = evaluate_params(mcfg, params, test_set, hand, scenes, full, tcfg.plan, refine_steps=refine_steps,
                            progress=progress, label=name)
        results[name] = r
        rows.append((f"network ({name})", r["network"]))
        if refine_steps:
            rows.append((f"network ({name}) + planner", r["refined"]))
    md = markdown(rows, refine_steps)
    dest = out or (run_dir if len(targets) > 1 else path)
    os.makedirs(dest, exist_ok=True)
    suffix = f"_refine{refine_steps}" if refine_steps else ""
    with open(os.path.join(dest, f"table{suffix}.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(dest, f"results{suffix}.json"), "w") as f:
        json.dump({"data": os.path.abspath(data), "refine_steps": refine_steps,
                   "rows": [{"predictor": n, **s} for n, s in rows], "per_sample": results}, f, indent=1)
    return {"markdown": md, "rows": rows, "dir": dest}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxgrasp.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", nargs="?", default="out/train",
                   help="run folder (phase 1 and final), or its phase1/ or final/ folder (default out/train)")
    p.add_argument("--data", help="dataset folder (default: the run's)")
    p.add_argument("--refine-steps", dest="refine_steps", type=int, default=20,
                   help="planner steps after the network (0: network alone; default 20)")
    p.add_argument("--out", help="folder for table.md and results.json (default: beside the checkpoint)")
    args = p.parse_args(argv)
    try:
        r = evaluate_run(args.checkpoint, data=args.data, refine_steps=args.refine_steps, out=args.out)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(r["markdown"])
    print(f"written to {r['dir']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
