"""``python -m jaxgrasp.train``: train the grasp prediction network (paper VI.B).

Two phases, as in the paper. Phase 1 (pre-training) minimises the Chamfer data loss alone:
the distance from the prediction to the *nearest* of the sample's ground-truth grasps
(:func:`chamfer_loss`), so the network may pick, per object, whichever grasp is most consistent
with the others. Phase 2 (fine-tuning) adds the planner's differentiable loss
(:func:`jaxgrasp.planning.planner.grasp_loss`: ``exp(-Q1_upper)``, collision, self-collision, guide) with
the weights of paper Table I (``losses.LossWeights``: c_q1 1, c_coll 1, c_self 1, c_data 1) except
c_guide = 1 instead of 0.1, and with collision depths measured in units of 5 cm
(``PlanConfig(penetration_scale=0.05)``, about one object size: the unit in which
:mod:`jaxgrasp.planning.losses` reads Table I) instead of the planner's 2 mm: with the planner's scale the
network learns to back away from the objects (measurements: docs/decisions.md, "Phase 2 measures
collision depths in 5 cm units"). The planner itself also uses c_guide 1 (see ``PlanConfig``).

Frames. The network sees a *sample* (an object under an augmentation rotation ``R``) and predicts
``x = (t, r, z)`` in the sample frame; the planner's scene of the object lives in its centred
frame. The prediction is mapped back by ``R^T`` (:func:`jaxgrasp.learning.data.to_object_frame`: ``t_obj = R^T t``,
``r_obj = log(R^T exp(r))`` through :func:`jaxgrasp.core.lie.so3_log`) before the loss terms. Every
object's scene is built once (``planner.make_scene``), padded to one face count and stacked into
one pytree; the jitted step indexes it by ``object_index``.

Optimisation: Adam, learning rate decayed by 0.9 every 20 epochs (staircase), batch 16. Phase 1
uses 1e-3 (the network trains from scratch within minutes on a CPU; the paper fine-tunes a
pretrained ResNet-50 at 1e-4), phase 2 the paper's 1e-4 with a fresh optimiser state (a new
fine-tuning run, as in the paper). Default epochs (40 + 20) keep the bundled run under 15
minutes on a 2-core CPU (docs/decisions.md, "Training schedule and size").
Each epoch visits the training samples in an order fixed by the seed and the epoch number, so a
run is deterministic and can be resumed mid-epoch. Checkpoints (Orbax): every epoch and on
Ctrl-C / SIGTERM under ``OUT/checkpoints``; ``OUT/phase1`` holds the parameters at the end of
phase 1, ``OUT/final`` at the end. A run killed outright (SIGKILL, a crash) resumes from its
last finished checkpoint and ends with the same parameters and log as an uninterrupted run
(``tests/test_kill_resume.py``). ``OUT/log.jsonl`` gets one line per epoch: every loss term
(mean over the epoch), the learning rate, and validation metrics (exact Q1, penetration,
force-closure and valid rates by ``planner.evaluate``) on a fixed subset of the test split. At
the end the test split is evaluated for phase 1 alone and for phase 1 + phase 2
(:mod:`jaxgrasp.evaluate`) and the Table II columns are printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxgrasp.core.configuration import split
from jaxgrasp.core.lie import rotation_angle_sq, so3_exp
from jaxgrasp.hand.kinematics import independent_angles
from jaxgrasp.hand.model import HandModel, load_hand
from jaxgrasp.learning import checkpoint as C
from jaxgrasp.learning import model as M
from jaxgrasp.learning.atomic import write_text
from jaxgrasp.learning.config import (
    DEFAULT_DATA,
    ChamferWeights,
    DatasetConfig,
    TrainConfig,
)
from jaxgrasp.learning.data import (
    build_dataset,
    load_split,
    to_object_frame,
    to_sample_frame,  # noqa: F401 (re-exported: the inverse of to_object_frame)
)
from jaxgrasp.learning.evaluate import evaluate_run, predict_object_frame, summarize
from jaxgrasp.learning.scenes import Scenes, load_objects
from jaxgrasp.planning import losses
from jaxgrasp.planning.evaluation import evaluate
from jaxgrasp.planning.objective import Phase, active_sets, grasp_loss, loss_params
from jaxgrasp.planning.planner import PlanConfig

# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------


def config_distance(hand: HandModel, x: jnp.ndarray, y: jnp.ndarray, size: jnp.ndarray,
                    w: ChamferWeights) -> jnp.ndarray:
    """Configuration-space distance of two configurations ``(6 + I,)`` of one object.

    ``w_t |t_x - t_y|^2 / L^2 + w_r angle(R_x, R_y)^2 + w_q mean_i (q_x,i - q_y,i)^2``: palm
    translation in object sizes ``L``, palm rotation by the geodesic angle on SO(3) (so rotation
    vectors ``r`` and ``r'`` of the same rotation are at distance 0), independent joint angles in
    radians after the sigmoid limit transform (so logits deep in saturation do not dominate).
    """
    (tx, rx, zx), (ty, ry, zy) = split(x), split(y)
    dt = (tx - ty) / size
    ang = rotation_angle_sq(so3_exp(rx), so3_exp(ry))
    dq = independent_angles(hand, zx) - independent_angles(hand, zy)
    return w.translation * jnp.sum(dt * dt) + w.rotation * ang + w.joints * jnp.mean(dq * dq)


def chamfer_loss(hand: HandModel, x: jnp.ndarray, grasps: jnp.ndarray, mask: jnp.ndarray, size: jnp.ndarray,
                 w: ChamferWeights) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Chamfer data loss of one prediction: distance to the nearest valid ground-truth grasp.

    Args:
        hand: the hand.
        x: ``(6 + I,)`` prediction; grasps: ``(G, 6 + I)`` ground truth (same frame), padded;
        mask: ``(G,)`` bool, real grasps (at least one); size: object size [m].
        w: distance weights.

    Returns:
        ``(loss, index of the nearest grasp)``.
    """
    d = jax.vmap(lambda g: config_distance(hand, x, g, size, w))(grasps)
    d = jnp.where(mask, d, jnp.inf)  # padded rows are never the nearest
    i = jnp.argmin(d)
    return d[i], i


# ----------------------------------------------------------------------------------------------
# Host-side set-up
# ----------------------------------------------------------------------------------------------


def model_config_for(manifest: dict, train: np.ndarray, arch: str, num_outputs: int) -> M.ModelConfig:
    """Model settings from the dataset: depth normalisation from the cameras, output scales from
    the object sizes, initial joint outputs at the mean ground-truth joint variables."""
    T = np.asarray(manifest["T_object_camera"], np.float64)
    dist = float(np.mean(np.linalg.norm(T[:, :3, 3], axis=1)))
    size = max(float(o["size"]) for o in manifest["objects"])
    g, m = train.grasps, train.grasp_mask
    z_mean = g[m][:, 6:].mean(0) if m.any() else np.zeros(num_outputs - 6)
    offset = tuple(float(v) for v in np.concatenate([np.zeros(6), z_mean]))
    return M.ModelConfig(num_outputs=num_outputs, arch=arch, depth_offset=dist, depth_scale=size,
                         translation_scale=size, output_offset=offset)


# ----------------------------------------------------------------------------------------------
# The step
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """What the compiled step depends on (static), apart from array shapes."""

    model: M.ModelConfig
    weights: losses.LossWeights
    chamfer: ChamferWeights
    plan: PlanConfig
    lr: float
    decay_rate: float
    decay_steps: int
    phase2: bool


def make_optimizer(spec: StepSpec) -> optax.GradientTransformation:
    """Adam with the staircase exponential decay of the learning rate."""
    sched = optax.exponential_decay(spec.lr, transition_steps=max(spec.decay_steps, 1), decay_rate=spec.decay_rate,
                                    staircase=True)
    return optax.adam(sched)


def batch_loss(params, batch: dict, hand: HandModel, scenes: Scenes, spec: StepSpec):
    """``(total, terms)`` of a batch: mean Chamfer loss, plus in phase 2 the mean planner loss.

    ``batch``: ``depth (B, V, H, W)``, ``object_index (B,)``, ``R_aug (B, 3, 3)``, ``grasps (B,
    G, 6 + I)``, ``grasp_mask (B, G)``.
    """
    x = M.apply(spec.model, params, batch["depth"])
    size = scenes.sizes[batch["object_index"]]
    data, _ = jax.vmap(lambda xi, g, m, s: chamfer_loss(hand, xi, g, m, s, spec.chamfer))(
        x, batch["grasps"], batch["grasp_mask"], size)
    if not spec.phase2:
        total, terms = losses.combine({"data": jnp.mean(data)}, spec.weights)
        return total, terms
    p = spec.plan
    xo = jax.vmap(to_object_frame)(x, batch["R_aug"])
    sc = jax.tree.map(lambda a: a[batch["object_index"]], scenes.scenes)
    # The planner's main terms with the upper bound (the SDP bound would cost ~50x per sample).
    phase = Phase(terms=("q1", "coll", "self", "guide"), q1_bound="upper", self_samples=p.shapes.self_samples,
                  opt_samples=p.shapes.opt_samples, object_points=p.shapes.object_points, start_map="vmap")
    lp = loss_params(p.evaluation, p.loss, p.squeeze, weights=spec.weights, dtype=xo.dtype)
    k_s = min(phase.opt_samples, hand.num_samples)
    # Active sets (the hand samples and object points nearest each other) are chosen, as in the
    # planner, outside the gradient: indices.
    si, oi = jax.vmap(lambda s, xi: active_sets(hand, s, xi, k_s, phase.object_points))(sc, jax.lax.stop_gradient(xo))
    g_total, g_terms = jax.vmap(lambda s, xi, a, b: grasp_loss(hand, s, xi, a, b, lp, phase))(sc, xo, si, oi)
    total = spec.weights.data * jnp.mean(data) + jnp.mean(g_total)
    terms = {"data": jnp.mean(data), **{k: jnp.mean(v) for k, v in g_terms.items()}}
    return total, terms


def _train_step(params, opt_state, batch, hand, scenes, spec: StepSpec):
    (total, terms), g = jax.value_and_grad(batch_loss, has_aux=True)(params, batch, hand, scenes, spec)
    upd, opt_state = make_optimizer(spec).update(g, opt_state, params)
    return optax.apply_updates(params, upd), opt_state, {"total": total, **terms}


train_step = jax.jit(_train_step, static_argnames=("spec",))


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


def val_indices(n: int, k: int) -> np.ndarray:
    """``k`` evenly spread sample indices out of ``n`` (fixed validation subset)."""
    return np.unique(np.linspace(0, n - 1, max(min(k, n), 1)).round().astype(int))


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------


class Interrupted(Exception):
    """Raised (after saving a checkpoint) when training was stopped by Ctrl-C or SIGTERM."""


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True, final_eval: bool = True,
          stop_after: int | None = None, callback: Callable[[dict], None] | None = None) -> dict:
    """Run (or resume) both phases; returns a summary (paths, timings, final table).

    Args:
        cfg: the settings (``resume``: the run's saved settings in ``cfg.out/run.json`` win).
        resume: continue from the latest checkpoint in ``cfg.out``.
        progress: tqdm progress bar.
        final_eval: evaluate phase 1 and the final network on the test split at the end.
        stop_after: simulate an interruption after this many steps of this call (tests).
        callback: called with each epoch's log record.
    """
    os.makedirs(cfg.out, exist_ok=True)
    run_path = os.path.join(cfg.out, "run.json")
    if resume and os.path.exists(run_path):
        cfg = C.train_config_from_json(json.load(open(run_path))["train_config"])
    train_set, test_set = load_split(cfg.data, "train"), load_split(cfg.data, "test")
    manifest = train_set.manifest
    hand = load_hand(manifest["hand"])
    mcfg = model_config_for(manifest, train_set, cfg.arch, hand.num_dof)
    scenes, full = load_objects(cfg.data, manifest, cfg.plan, hand.body_pos.dtype)
    n_train = len(train_set)
    bs = min(cfg.batch_size, n_train)
    steps_per_epoch = n_train // bs
    epochs = cfg.epochs1 + cfg.epochs2
    specs = {ph: StepSpec(mcfg, cfg.weights, cfg.chamfer, cfg.plan, cfg.lr if ph == 1 else (cfg.lr2 or cfg.lr),
                          cfg.decay_rate, cfg.decay_epochs * steps_per_epoch, ph == 2) for ph in (1, 2)}
    if not (resume and os.path.exists(run_path)):
        C.write_run(run_path, cfg, mcfg, manifest)

    key = jax.random.PRNGKey(cfg.seed)
    mgr = C.manager(os.path.join(cfg.out, "checkpoints"), cfg.keep)
    restoring = resume and mgr.latest_step() is not None

    def init():
        params = M.init_params(mcfg, jax.random.fold_in(key, 0), manifest["num_views"], manifest["height"],
                               manifest["width"])
        return params, make_optimizer(specs[1]).init(params)

    # A resumed run's parameters come from its checkpoint, which needs only their shapes:
    # eval_shape traces the initialisation once instead of running it op by op (2-4 s on a CPU).
    params, opt_state = jax.eval_shape(init) if restoring else init()
    state = {"params": params, "opt_state": opt_state, "epoch": 0, "step_in_epoch": 0, "step": 0, "phase": 1,
             "sums": {}, "key": key}
    if restoring:
        state = C.restore(mgr, state)
        print(f"resumed {cfg.out} at epoch {state['epoch']}, step {state['step']}", file=sys.stderr)
    vidx = val_indices(len(test_set), cfg.val_samples)
    log_path = os.path.join(cfg.out, "log.jsonl")
    if resume:
        _trim_log(log_path, state["epoch"])
    step_times = {1: [], 2: []}

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old_handler = signal.signal(signal.SIGTERM, on_term) if _main_thread() else None
    bar = tqdm(total=epochs * steps_per_epoch, initial=state["step"], desc="train", unit="step", disable=not progress)
    done_here = 0
    t_start = time.perf_counter()
    try:
        while state["epoch"] < epochs:
            e = state["epoch"]
            phase = 1 if e < cfg.epochs1 else 2
            if phase == 2 and state["phase"] == 1:
                if cfg.epochs1 > 0:
                    C.save_params(os.path.join(cfg.out, "phase1"), state["params"])
                state = {**state, "phase": 2, "opt_state": make_optimizer(specs[2]).init(state["params"])}
            spec = specs[phase]
            perm = np.asarray(jax.random.permutation(jax.random.fold_in(state["key"], 1 + e), n_train))
            t_epoch = time.perf_counter()
            while state["step_in_epoch"] < steps_per_epoch:
                if stop_after is not None and done_here >= stop_after:
                    raise KeyboardInterrupt
                k = state["step_in_epoch"]
                idx = np.sort(perm[k * bs:(k + 1) * bs])
                batch = {"depth": train_set.depth[idx], "object_index": train_set.object_index[idx],
                         "R_aug": train_set.R_aug[idx], "grasps": train_set.grasps[idx],
                         "grasp_mask": train_set.grasp_mask[idx]}
                t0 = time.perf_counter()
                params, opt_state, terms = train_step(state["params"], state["opt_state"], batch, hand, scenes, spec)
                terms = {k2: float(v) for k2, v in terms.items()}  # waits for the step
                step_times[phase].append(time.perf_counter() - t0)
                sums = dict(state["sums"])
                for k2, v in terms.items():
                    sums[k2] = sums.get(k2, 0.0) + v
                state = {**state, "params": params, "opt_state": opt_state, "step": state["step"] + 1,
                         "step_in_epoch": k + 1, "sums": sums}
                done_here += 1
                bar.update(1)
                bar.set_postfix(phase=phase, loss=f"{terms['total']:.4g}")
            rec = {"epoch": e + 1, "phase": phase, "step": state["step"],
                   "lr": float(optax.exponential_decay(spec.lr, max(spec.decay_steps, 1), spec.decay_rate,
                                                       staircase=True)((e - (0 if phase == 1 else cfg.epochs1))
                                                                       * steps_per_epoch)),
                   **{f"train_{k2}": v / steps_per_epoch for k2, v in state["sums"].items()}}
            xv = predict_object_frame(mcfg, state["params"], test_set.depth[vidx], test_set.R_aug[vidx])
            mv = [evaluate(hand, full[test_set.object_index[i]], xi, cfg.plan.evaluation, extras=False)
                  for i, xi in zip(vidx, xv)]
            rec.update({f"val_{k2}": v for k2, v in summarize(mv).items()})
            rec["time_s"] = time.perf_counter() - t_epoch
            state = {**state, "epoch": e + 1, "step_in_epoch": 0, "sums": {}}
            # The epoch's line before its checkpoint: a run killed between the two redoes the
            # epoch, and its resume drops the line first (_trim_log); the other order would
            # lose the line.
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            C.save(mgr, state)
            if callback is not None:
                callback(rec)
            bar.set_postfix(phase=phase, loss=f"{rec['train_total']:.4g}", val_q1=f"{rec['val_q1_mean']:.3f}",
                            pen=f"{rec['val_penetration_mm']:.1f}")
    except KeyboardInterrupt:
        bar.close()
        C.save(mgr, state)
        print(f"\ninterrupted: checkpoint saved at step {state['step']} in {cfg.out}; "
              f"continue with --resume --out {cfg.out}", file=sys.stderr)
        raise Interrupted(state["step"]) from None
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
        bar.close()
    if cfg.epochs2 == 0 and cfg.epochs1 > 0:
        C.save_params(os.path.join(cfg.out, "phase1"), state["params"])
    C.save_params(os.path.join(cfg.out, "final"), state["params"])
    summary = {"out": cfg.out, "train_time_s": time.perf_counter() - t_start, "steps": state["step"],
               "step_time_s": {f"phase{ph}": _median_tail(step_times[ph]) for ph in (1, 2)}}
    if final_eval:
        summary["table"] = evaluate_run(cfg.out, refine_steps=0, progress=progress)
    return summary


def _trim_log(path: str, epochs_done: int) -> None:
    """Keeps the log lines of the ``epochs_done`` epochs a resumed run's checkpoint holds: lines
    of later epochs (written just before a kill ended the run ahead of their checkpoint) and a
    torn last line are dropped, so that every epoch has exactly one line once the run ends."""
    if not os.path.exists(path):
        return
    keep = []
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:  # torn by a kill mid-write: the last line
                break
            if not line.endswith("\n") or rec.get("epoch", 0) > epochs_done:
                break
            keep.append(line)
    write_text(path, "".join(keep))


def _median_tail(ts: list[float]) -> float | None:
    """Median step time, skipping the first step (compilation)."""
    return float(np.median(ts[1:])) if len(ts) > 1 else None


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxgrasp.train", description=__doc__.split("\n")[0])
    d = TrainConfig()
    p.add_argument("--data", default=d.data, help=f"dataset folder (default {d.data})")
    p.add_argument("--out", default=d.out, help=f"run folder (default {d.out})")
    p.add_argument("--model", dest="arch", default=d.arch, choices=sorted(M.ARCHS), help="backbone")
    p.add_argument("--epochs1", type=int, default=d.epochs1, help="phase 1 epochs (Chamfer loss only)")
    p.add_argument("--epochs2", type=int, default=d.epochs2, help="phase 2 epochs (+ differentiable loss)")
    p.add_argument("--batch", dest="batch_size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="phase 1 Adam learning rate")
    p.add_argument("--lr2", type=float, default=d.lr2, help="phase 2 Adam learning rate")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--val-samples", dest="val_samples", type=int, default=d.val_samples)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip the final test-split evaluation")
    args = p.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    if not os.path.exists(os.path.join(cfg.data, "manifest.json")):
        if cfg.data != DEFAULT_DATA:
            print(f"no dataset at {cfg.data} (manifest.json missing): build one with "
                  f"`python -m jaxgrasp.dataset build --out {cfg.data}`", file=sys.stderr)
            return 2
        print(f"no dataset at {cfg.data}: building the bundled one first (python -m jaxgrasp.dataset build; "
              "about 20 minutes on a 2-core CPU, resumable)", file=sys.stderr)
        build_dataset(DatasetConfig(), cfg.data)
    try:
        s = train(cfg, resume=args.resume, final_eval=not args.no_eval)
    except Interrupted:
        return 130
    st = s["step_time_s"]
    print(f"trained {s['steps']} steps in {s['train_time_s']:.1f} s; median time per step (batch {cfg.batch_size}): "
          f"phase 1 (Chamfer) {_fmt(st['phase1'])}, phase 2 (+ differentiable loss) {_fmt(st['phase2'])}")
    if "table" in s:
        print(s["table"]["markdown"])
    return 0


def _fmt(t):
    return "n/a" if t is None else f"{t:.3f} s"


if __name__ == "__main__":
    sys.exit(main())
