"""Planning on a mesh of millions of triangles with the command line: wall time, peak memory, stages.

    python benchmarks/large_mesh.py [MESH] [--faces 2000000] [--runs 2] [--keep]

MESH (default: a generated scan-like bottle of ``--faces`` triangles, written to a temporary
STL) is planned with ``python -m jaxgrasp.plan MESH --out <empty folder>
--no-pictures -v`` ``--runs`` times in a row, each a fresh process; the first run may compile
(new padded shapes), the next find the compiled code in the persistent cache. Per run: wall time
and peak resident memory of the process (``os.wait4``), the 1-minute load average at its start (the
machine is shared), the seconds spent in each stage (from the timestamps of ``OUT/plan.log``:
loading, the optimizer's decimation, the steps, the evaluation's screening mesh and index, the
exact evaluation, the squeeze, the packaging), and the grasp (valid, Q1, penetration). Prints a table
and writes ``benchmarks/results/large_mesh.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import trimesh

ROOT = Path(__file__).resolve().parents[1]


# Log lines that start a stage (message prefix -> stage name); a stage ends where the next begins.
STAGES = (("loading and checking the mesh", "load"),
          ("decimating", "decimate"),
          ("optimizing", "steps"),
          ("waiting for the evaluation", "wait for screening"),
          ("evaluating", "evaluate"),
          ("squeezing", "squeeze"),
          ("packaging", "package"),
          ("writing", "write"))


def make_mesh(faces: int, path: str) -> str:
    """A scan-like bottle of about ``faces`` triangles (a UV sphere stretched to 8 x 8 x 22 cm, with
    a waist and millimetre bumps: closed, smooth, every triangle small), written to ``path``."""
    n = int(round(np.sqrt(faces / 4)))
    m = trimesh.creation.uv_sphere(radius=1.0, count=[n, n])  # 4 n^2 faces
    v = m.vertices
    z = v[:, 2]
    r = 1 + 0.12 * np.sin(3 * z) + 0.01 * np.sin(40 * v[:, 0]) * np.cos(37 * v[:, 1]) * np.sin(29 * z)
    trimesh.Trimesh(np.column_stack([0.04 * r * v[:, 0], 0.04 * r * v[:, 1], 0.11 * z]), m.faces,
                    process=False).export(path)
    return path


def stages(log_path: Path) -> dict[str, float]:
    """Seconds per stage from the timestamps of the plan log (first occurrence of each)."""
    marks = []
    for line in log_path.read_text().splitlines():
        try:
            t = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue
        msg = line.split(": ", 1)[-1]
        for prefix, name in STAGES:
            if msg.startswith(prefix) and "so far" not in msg and name not in [m[1] for m in marks]:
                marks.append((t, name))
    out = {}
    for (t, name), nxt in zip(marks, marks[1:] + [(None, None)]):
        if nxt[0] is not None:
            out[name] = round(nxt[0] - t, 2)
    return out


def run_once(mesh: str, out: Path) -> dict:
    """One fresh CLI process: wall time, peak RSS, stages, the grasp."""
    load = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "jaxgrasp.plan", mesh, "--out", str(out), "--no-pictures", "-v"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    files = [p for p in out.glob("*.json")]
    g = json.loads(files[0].read_text())["grasps"][0]["metrics"] if files else {}
    return {"exit_status": os.waitstatus_to_exitcode(status), "wall_s": round(wall, 1),
            "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2), "load_avg_1min": round(load, 2),
            "stages_s": stages(out / "plan.log") if (out / "plan.log").exists() else {},
            "planner_time_s": round(g.get("time_s", float("nan")), 1), "valid": g.get("valid"),
            "q1": g.get("q1"), "penetration_mm": g.get("penetration_mm")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mesh", nargs="?", help="mesh file (default: a generated procedural mesh)")
    ap.add_argument("--faces", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the generated mesh and outputs")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="jaxgrasp_large_"))
    mesh = args.mesh or make_mesh(args.faces, str(tmp / "large.stl"))
    num_faces = len(trimesh.load(mesh, force="mesh").faces)
    runs = [run_once(mesh, tmp / f"out{i}") for i in range(args.runs)]
    print(f"{Path(mesh).name}: {num_faces} triangles")
    print(f"{'run':>3} {'wall s':>7} {'peak GiB':>8} {'load':>5} {'valid':>5} {'Q1':>7} {'pen mm':>6}  stages (s)")
    for i, r in enumerate(runs):
        st = ", ".join(f"{k} {v}" for k, v in r["stages_s"].items())
        print(f"{i + 1:>3} {r['wall_s']:>7.1f} {r['peak_rss_gib']:>8.2f} {r['load_avg_1min']:>5.1f} "
              f"{str(r['valid']):>5} {r['q1'] or 0:>7.4f} {r['penetration_mm'] or 0:>6.2f}  {st}")
    res = {"mesh": str(mesh) if args.mesh else f"generated ({args.faces} faces)", "faces": num_faces,
           "cpu_count": os.cpu_count(), "runs": runs}
    path = ROOT / "benchmarks" / "results" / "large_mesh.json"
    path.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {path}")
    if not args.keep:
        for p in sorted(tmp.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
