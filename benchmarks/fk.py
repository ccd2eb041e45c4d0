"""Forward-kinematics speed: jaxgrasp (jit + vmap) against a loop over MuJoCo's mj_kinematics.

    python benchmarks/fk.py [--hand shadow] [--batch 1024] [--repeats 20] [--out benchmarks/results/fk.json]

Rows: FK value of a batch of configurations (all body poses), value + gradient of a scalar of the
posed contact points w.r.t. the (6 + I) configuration, and MuJoCo's C implementation called once
per configuration from Python. Times are per configuration, median over repeats, compile
excluded (reported separately).
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from timing import time_call  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from jaxgrasp.hand.kinematics import (
    config_to_joint_angles,
    forward_kinematics,
    pose_hand,
)
from jaxgrasp.hand.mjcf import compile_model, read_tree
from jaxgrasp.hand.model import load_hand


def _time(fn, repeats):
    median, first, _ = time_call(fn, repeats)
    return median, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hand", default="shadow")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "fk.json"))
    args = ap.parse_args()
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float32 if args.dtype == "float32" else jnp.float64

    hand = load_hand(args.hand, dtype=dtype)
    N = args.batch
    x = jax.random.normal(jax.random.PRNGKey(0), (N, hand.num_dof), dtype=dtype)
    q = jax.vmap(lambda xi: config_to_joint_angles(hand, xi))(x)

    fk = jax.jit(forward_kinematics)
    t_fk, c_fk = _time(lambda: fk(hand, q), args.repeats)

    w = jax.random.normal(jax.random.PRNGKey(1), (hand.num_contacts, 3), dtype=dtype)

    def scalar(xi):
        return jnp.sum(w * pose_hand(hand, xi).contact_pos)

    vg = jax.jit(jax.vmap(jax.value_and_grad(scalar)))
    t_vg, c_vg = _time(lambda: vg(x), args.repeats)

    model = compile_model(hand.path)
    tree = read_tree(model)
    data = mujoco.MjData(model)
    adr = model.jnt_qposadr[list(tree.joint_ids)]
    qn = np.asarray(q, dtype=np.float64)

    def mj_loop():
        for n in range(N):
            data.qpos[adr] = qn[n]
            mujoco.mj_kinematics(model, data)
        return data.xpos

    t_mj, _ = _time(mj_loop, max(3, args.repeats // 4))

    rows = [
        ("jaxgrasp FK value (all body poses)", t_fk / N, c_fk),
        ("jaxgrasp pose + grad of contact scalar", t_vg / N, c_vg),
        ("MuJoCo mj_kinematics, Python loop", t_mj / N, 0.0),
    ]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0].platform}"
    print(f"FK benchmark: hand {hand.name} ({hand.num_bodies} bodies, {hand.num_joints} joints, "
          f"{hand.num_contacts} contacts), batch {N}, {args.dtype}; {machine}")
    print(f"{'method':<42}{'us / config':>14}{'configs / s':>14}{'compile (s)':>13}")
    for name, per, comp in rows:
        print(f"{name:<42}{per * 1e6:>14.2f}{1.0 / per:>14.0f}{comp:>13.2f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"hand": hand.name, "batch": N, "dtype": args.dtype, "machine": machine,
                   "rows": [{"method": n, "seconds_per_config": p, "compile_seconds": c} for n, p, c in rows]}, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
