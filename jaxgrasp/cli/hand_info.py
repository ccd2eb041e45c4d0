"""``python -m jaxgrasp --hand NAME|FILE``: a hand's structure and forward kinematics.

Loads a hand, poses it partly closed through the optimizer's configuration map, prints the
forward kinematics (fingertip poses and annotation counts) and writes a picture of the hand with
its contact candidates, ``OUT/<label>_fk.png``: the label is a bundled hand's name, else the
hand file's folder and stem (``shadow_hand_right_hand``), so that hands whose files share a
name (every MuJoCo Menagerie hand is a ``right_hand.xml``) get distinct pictures. A hand file
that cannot be used ends the command with one line (exit status 2), Ctrl-C too (status 130).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jaxgrasp.cli.common import library_messages_to, run_cli
from jaxgrasp.hand.kinematics import default_config, pose_hand
from jaxgrasp.hand.mjcf import robots_dir
from jaxgrasp.hand.model import load_hand
from jaxgrasp.hand.pictures import plot_hand


def hand_label(path: str | Path) -> str:
    """A name for a hand's outputs: a bundled hand's name, else ``<folder>_<file stem>``."""
    path = Path(path).resolve()
    if path.parent.parent == robots_dir().resolve():
        return path.parent.name
    return f"{path.parent.name}_{path.stem}" if path.parent.name else path.stem


def main(argv: list[str] | None = None) -> int:
    """The command line; user errors and Ctrl-C end it with one line (see the module docstring)."""
    return run_cli(_main, argv, prog="python -m jaxgrasp")


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jaxgrasp", description=__doc__.split("\n\n")[0])
    ap.add_argument("--hand", default="shadow", help="bundled hand name (always the bundled hand) or MJCF/URDF file")
    ap.add_argument("--opening", type=float, default=0.35, help="fraction of each joint's range")
    ap.add_argument("--out", default="out", help="output folder")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; pass a folder for the picture")
    lib_log = logging.getLogger("jaxgrasp")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    lib_log.addHandler(console)
    saved = lib_log.propagate
    lib_log.propagate = False
    try:
        with library_messages_to(None):
            _show(args, out)
    finally:
        lib_log.removeHandler(console)
        lib_log.propagate = saved
    return 0


def _show(args, out: Path) -> None:
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
    label = hand_label(hand.path)
    png = plot_hand(hand, x, out / f"{label}_fk.png", title=f"{label}: FK at {args.opening:.2f} of range")
    print(f"\nwrote {png}")


if __name__ == "__main__":
    sys.exit(main())
