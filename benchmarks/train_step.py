"""Time of one training step (forward + backward + Adam) with and without the differentiable loss.

Paper VI.B: 0.85 s with the loss vs 0.61 s without (ResNet-50, 224 x 224, GPU). Here: the bundled
dataset (``data/bundled``), batch 16, the default (tiny) network on this machine's CPU; the two
steps alternate so both see the same load. Prints medians, writes
``benchmarks/results/train_step.json``.

    python benchmarks/train_step.py [--data data/bundled] [--model tiny] [--repeats 10]
"""

import argparse
import json
import os
import time

import jax
import numpy as np

from jaxgrasp.hand.model import load_hand
from jaxgrasp.learning import model as M
from jaxgrasp.learning import train as T
from jaxgrasp.learning.data import load_split


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="data/bundled")
    p.add_argument("--model", default="tiny")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=10)
    a = p.parse_args()
    cfg = T.TrainConfig(data=a.data, arch=a.model, batch_size=a.batch)
    tr = load_split(a.data, "train")
    hand = load_hand(tr.manifest["hand"])
    mcfg = T.model_config_for(tr.manifest, tr, a.model, hand.num_dof)
    scenes, _ = T.load_objects(a.data, tr.manifest, cfg.plan)
    params = M.init_params(mcfg, jax.random.PRNGKey(0), tr.manifest["num_views"], tr.manifest["height"], tr.manifest["width"])
    idx = np.linspace(0, len(tr) - 1, a.batch).round().astype(int)
    batch = {k: getattr(tr, k)[idx] for k in ("depth", "object_index", "R_aug", "grasps", "grasp_mask")}
    specs = {name: T.StepSpec(mcfg, cfg.weights, cfg.chamfer, cfg.plan, 1e-4, 0.9, 240, ph2)
             for name, ph2 in (("chamfer_only", False), ("with_differentiable_loss", True))}
    state = {n: (params, T.make_optimizer(s).init(params)) for n, s in specs.items()}
    compile_s, times = {}, {n: [] for n in specs}
    for n, s in specs.items():
        t0 = time.perf_counter()
        jax.block_until_ready(T.train_step(*state[n], batch, hand, scenes, s))
        compile_s[n] = time.perf_counter() - t0
    for _ in range(a.repeats):
        for n, s in specs.items():
            t0 = time.perf_counter()
            pp, oo, terms = T.train_step(*state[n], batch, hand, scenes, s)
            jax.block_until_ready(terms)
            times[n].append(time.perf_counter() - t0)
            state[n] = (pp, oo)
    res = {"model": a.model, "batch": a.batch, "image": [tr.manifest["height"], tr.manifest["width"]],
           "views": tr.manifest["num_views"], "device": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(),
           "load_average_1min": os.getloadavg()[0], "compile_s": compile_s,
           "median_s": {n: float(np.median(t)) for n, t in times.items()}, "times_s": times}
    print(f"{'step':<28}{'median (s)':>12}{'min (s)':>10}")
    for n, t in times.items():
        print(f"{n:<28}{np.median(t):>12.3f}{np.min(t):>10.3f}")
    print(f"(batch {a.batch}, {a.model}, load average {res['load_average_1min']:.1f}; paper: 0.85 s vs 0.61 s)")
    os.makedirs("benchmarks/results", exist_ok=True)
    with open("benchmarks/results/train_step.json", "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
