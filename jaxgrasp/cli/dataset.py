"""``python -m jaxgrasp.dataset build|info``: build a grasp dataset, or describe one.

``build [--objects DIR] [--out DIR] [--num-objects N] [--grasps G] [--views V] [--size S]
[--seed S] [--test-fraction F] ...`` builds (or resumes) a dataset in ``--out`` (default
``data/bundled``: the bundled procedural object set); ``info DIR`` prints its counts. The format
is described in :mod:`jaxgrasp.learning.data`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time

import numpy as np

from jaxgrasp.learning.config import DatasetConfig
from jaxgrasp.learning.data import build_dataset, load_manifest


def _config_from_args(args) -> DatasetConfig:
    fields = {f.name for f in dataclasses.fields(DatasetConfig)}
    return DatasetConfig(**{k: v for k, v in vars(args).items() if k in fields and v is not None})


def info(root: str) -> str:
    """A few lines describing a dataset: counts per split, grasps per object, image size."""
    m = load_manifest(root)
    lines = [(f"{root}: {m['schema']}, hand {m['hand']}, {m['num_views']} views of {m['height']}x{m['width']}, "
              f"{len(m['rotations'])} rotations (used {m['config']['num_rotations']})")]
    for sp in ("train", "test"):
        objs = [o for o in m["objects"] if o["split"] == sp]
        samples = sum(s["count"] for s in m["shards"] if s["split"] == sp)
        shards = sum(1 for s in m["shards"] if s["split"] == sp)
        g = np.array([o["num_valid_grasps"] for o in objs]) if objs else np.zeros(1)
        lines.append(f"  {sp}: {len(objs)} objects, {samples} samples in {shards} shards, valid grasps per object "
                     f"min {g.min()} / mean {g.mean():.1f} / max {g.max()} (total {g.sum()})")
    if m.get("dropped"):
        lines.append(f"  dropped: {len(m['dropped'])} ({', '.join(d['name'] for d in m['dropped'])})")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxgrasp.dataset", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build or resume a dataset")
    b.add_argument("--objects", help="folder of meshes (default: the bundled procedural set)")
    b.add_argument("--out", default="data/bundled", help="dataset folder (default data/bundled)")
    b.add_argument("--num-objects", dest="num_objects", type=int, help="objects (procedural set size, or at most this many files)")
    b.add_argument("--units", help="unit of the mesh files: m, cm, mm")
    b.add_argument("--hand", help="bundled hand name or hand file (default shadow)")
    b.add_argument("--grasps", type=int, help="ground-truth grasps kept per object (G)")
    b.add_argument("--plan-starts", dest="plan_starts", type=int, help="planner starts per object")
    b.add_argument("--plan-steps", dest="plan_steps", type=int, help="planner Adam steps")
    b.add_argument("--views", type=int, help="cameras (V)")
    b.add_argument("--size", type=int, help="image width = height in pixels")
    b.add_argument("--fov", type=float, help="field of view in degrees")
    b.add_argument("--camera-distance", dest="camera_distance", type=float, help="camera distance (m; default: fit the largest object)")
    b.add_argument("--rotations", dest="num_rotations", type=int, help="augmentation rotations, 1 to 8")
    b.add_argument("--seed", type=int)
    b.add_argument("--test-fraction", dest="test_fraction", type=float)
    b.add_argument("--shard-size", dest="shard_size", type=int, help="samples per shard file")
    i = sub.add_parser("info", help="print a dataset's counts")
    i.add_argument("root")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cmd == "info":
        print(info(args.root))
        return 0
    config = _config_from_args(args)
    t0 = time.perf_counter()
    m = build_dataset(config, args.out)
    st = m["build_stats"]
    print(info(args.out))
    print(f"built in {time.perf_counter() - t0:.1f} s (planning {st['plan_s']:.1f} s, rendering {st['render_s']:.1f} s "
          f"for {st['samples_rendered']} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
