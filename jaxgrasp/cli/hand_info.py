"""``python -m jaxgrasp``: the main job on a bundled default.

Until the planner lands, it loads a bundled hand, poses it half-closed through the optimizer's
configuration map, prints the forward kinematics (fingertip poses and annotation counts) and
writes a picture of the hand with its contact candidates.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from jaxgrasp.hand.kinematics import default_config, pose_hand
from jaxgrasp.hand.model import load_hand
from jaxgrasp.hand.pictures import plot_hand


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m jaxgrasp", description=__doc__.split("\n\n")[0])
    ap.add_argument("--hand", default="shadow", help="bundled hand name or MJCF/URDF file")
    ap.add_argument("--opening", type=float, default=0.35, help="fraction of each joint's range")
    ap.add_argument("--out", default="out", help="output folder")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    hand = load_hand(args.hand)
    t1 = time.perf_counter()
    x = default_config(hand, args.opening)
    posed = jax.jit(pose_hand)(hand, x)
    jax.block_until_ready(posed)
    t2 = time.perf_counter()

    print(f"hand {hand.name} ({hand.path})")
    print(f"  {hand.num_bodies} bodies, {hand.num_joints} joints, {hand.num_independent} independent "
          f"-> configuration of 6 + {hand.num_independent} = {hand.num_dof}")
    print(f"  {hand.num_contacts} contact candidates, {hand.num_samples} collision samples; "
          f"loaded in {t1 - t0:.2f} s, posed (compile + run) in {t2 - t1:.2f} s")
    print(f"\n  {'joint':<10}{'angle':>10}")
    for name, q in zip(hand.joint_names, np.asarray(posed.joint_angles)):
        print(f"  {name:<10}{q:>10.3f}")
    children = {p for p in hand.body_parent}
    print(f"\n  {'leaf body':<14}{'x (m)':>9}{'y (m)':>9}{'z (m)':>9}")
    for b, name in enumerate(hand.body_names):
        if b not in children:
            p = np.asarray(posed.T_world_body[b, :3, 3])
            print(f"  {name:<14}{p[0]:>9.4f}{p[1]:>9.4f}{p[2]:>9.4f}")
    png = plot_hand(hand, x, f"{args.out}/{hand.name}_fk.png", title=f"{hand.name}: FK at {args.opening:.2f} of range")
    print(f"\nwrote {png}")


if __name__ == "__main__":
    main()
