"""Simulating one grasp of an object not seen before, convex decomposition included (issue 23).

    python benchmarks/sim_new_object.py [--scans ../shared/objects] [--bottles 2] [--settings old,default]
                                        [--budget 10] [--out benchmarks/results/sim_new_object.json]

Objects: the ``.stl`` scans in ``--scans`` (the eight YCB scans: 16,384 faces, metres) and
``--bottles`` lathed procedural bottles (:mod:`jaxgrasp.mesh.procedural`, seeds 6, 14, ...; not
convex: a neck), whose numbers are listed but not in the median. One Shadow Hand grasp per object
is planned once (``plan_grasps``, ``--budget`` s) and kept in ``--grasps``
(``benchmarks/results/sim_new_object.grasps/``, not committed; delete it to plan again).

Per object and decomposition setting (``--settings``: names of :data:`SETTINGS`; ``default`` is
whatever :func:`jaxgrasp.sim.scene.convex_pieces` and :class:`SimConfig` do now), back to back so
that both see the same load:

* **time**: ``simulate_grasp(grasp, SimConfig())`` (10 N/kg, about 1x the weight) from a *cold*
  decomposition cache (``JAXGRASP_CACHE`` a fresh temporary folder per object and setting; JAX's
  compilation cache is kept, and an untimed warm-up grasp, on the convex hull of the first object,
  compiles the squeeze-direction code first), its wall time split into the decomposition
  (``convex_pieces``: cleaning, decimation, CoACD, caching; its process CPU time too, all threads)
  and the rest (mesh loading, scene build, pregrasp and squeeze derivation, six pushes);
* **outcome**: held at 1x, and at 10x (98.1 N/kg; a second call, decomposition cached, not timed);
* **fidelity** of the pieces to the full-resolution mesh: points sampled on the surface of the
  pieces' union (each piece's surface outside every other piece), their distance to the mesh,
  ``out`` where outside it (the pieces stand out of the object: 95th percentile and max, mm) and
  ``in`` inside it (max); and points sampled on the mesh, their distance to the union's surface
  (``scan``: 95th percentile and max; large where a concavity is filled or a part missed).

Timings are wall-clock on a shared machine: the load average is recorded for every object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("JAXGRASP_CACHE_DIR", str(Path(os.environ.get("JAXGRASP_CACHE") or Path.home() / ".cache" / "jaxgrasp") / "xla"))

import jax
import mujoco
import numpy as np
import trimesh
from scipy.spatial import ConvexHull, QhullError

from jaxgrasp.sim import forces
from jaxgrasp.sim import scene as scene_mod
from jaxgrasp.sim.protocol import SimConfig
from jaxgrasp.sim.simulate import simulate_grasp

HERE = Path(__file__).parent
SCANS = str(HERE.resolve().parents[1] / "shared" / "objects")

# Decomposition settings compared: keyword arguments of convex_pieces (None: its defaults and
# SimConfig's threshold / max_pieces). "old": the settings before issue 23's change.
SETTINGS: dict[str, dict | None] = {
    "default": None,
    "old": {"threshold": 0.05, "max_pieces": 32, "max_faces": 2000,
            "coacd": {"preprocess_mode": "auto", "preprocess_resolution": 30, "resolution": 1000,
                      "mcts_iterations": 60, "mcts_nodes": 10, "mcts_max_depth": 3, "clean": False}},
    # alternatives measured in the search (run them with --settings):
    "old_off": {"threshold": 0.05, "max_pieces": 32, "max_faces": 2000,  # the old search, remesh skipped
                "coacd": {"preprocess_mode": "watertight", "preprocess_resolution": 30, "resolution": 1000,
                          "mcts_iterations": 60, "mcts_nodes": 10, "mcts_max_depth": 3, "clean": True}},
    "t065": {"threshold": 0.065},  # the defaults at a coarser concavity threshold
}


# ----------------------------------------------------------------------------------------------
# Fidelity of the pieces
# ----------------------------------------------------------------------------------------------


def _planes(v: np.ndarray) -> np.ndarray:
    try:
        return ConvexHull(v).equations
    except QhullError:  # a flat piece: joggled
        return ConvexHull(v, qhull_options="QJ").equations


def fidelity(mesh: trimesh.Trimesh, pieces, samples: int = 20000, seed: int = 0) -> dict:
    """Distances [mm] between the pieces' union surface and ``mesh`` (module docstring)."""
    rng = np.random.default_rng(seed)
    hulls = [trimesh.Trimesh(v, f, process=False) for v, f in pieces]
    planes = [_planes(np.asarray(v)) for v, _ in pieces]
    area = np.array([h.area for h in hulls])
    pts = []
    for i, (h, n) in enumerate(zip(hulls, rng.multinomial(samples, area / area.sum()))):
        if n == 0:
            continue
        p, _ = trimesh.sample.sample_surface(h, n, seed=int(rng.integers(1 << 30)))
        keep = np.ones(len(p), bool)
        for j, e in enumerate(planes):  # drop points inside or on another piece (0.2 mm)
            if j != i:
                keep &= np.max(p @ e[:, :3].T + e[:, 3], axis=1) >= 2e-4
        pts.append(p[keep])
    pts = np.concatenate(pts)
    c, d, tri = trimesh.proximity.closest_point(mesh, pts)
    outside = np.einsum("ij,ij->i", pts - c, mesh.face_normals[tri]) > 0
    out, inside = np.where(outside, d, 0.0), np.where(outside, 0.0, d)
    sp, _ = trimesh.sample.sample_surface(mesh, samples // 2, seed=seed + 1)
    depth, gap = np.zeros(len(sp)), np.full(len(sp), np.inf)
    for h, e in zip(hulls, planes):  # inside the union: depth below its surface (deepest piece)
        s = np.max(sp @ e[:, :3].T + e[:, 3], axis=1)
        depth = np.maximum(depth, np.where(s < 0, -s, 0.0))
        gap = np.minimum(gap, np.where(s < 0, np.inf, trimesh.proximity.closest_point(h, sp)[1]))
    scan = np.where(depth > 0, depth, gap)
    def mm(x, q):
        return round(float(1e3 * np.percentile(x, q)), 2)

    return {"out_p95_mm": mm(out, 95), "out_max_mm": mm(out, 100), "in_max_mm": mm(inside, 100),
            "scan_p95_mm": mm(scan, 95), "scan_max_mm": mm(scan, 100)}


# ----------------------------------------------------------------------------------------------
# Grasps
# ----------------------------------------------------------------------------------------------


def plan_once(objects: list[tuple[str, str]], hand, budget: float, folder: Path) -> dict[str, dict]:
    """One planned grasp per object, read from ``folder`` or planned and written there."""
    from jaxgrasp.planning.anytime import BudgetSpentCompiling
    from jaxgrasp.planning.api import plan_grasps
    from jaxgrasp.planning.grasp_io import grasp_to_dict, save_grasp_dict
    from jaxgrasp.sim.grasp_files import object_mesh_of

    out = {}
    for name, spec in objects:
        path = folder / f"{name}.json"
        if not path.is_file():
            mesh = object_mesh_of({"object": {"file": spec}})
            src = mesh if spec.startswith("procedural:") else spec
            t0 = time.perf_counter()
            for _ in range(3):  # a budget spent compiling: the shapes are cached for the next try
                try:
                    r = plan_grasps(src, hand, time_budget=budget)[0]
                    break
                except BudgetSpentCompiling:
                    print(f"{name}: the budget went on compilation; planning again", flush=True)
            else:
                r = plan_grasps(src, hand)[0]  # one round, no budget
            g = grasp_to_dict(r)
            g["object"]["file"] = spec
            g["hand"]["file"] = hand.name  # the bundled hand, by name (portable)
            save_grasp_dict(g, path)
            print(f"{name}: planned in {time.perf_counter() - t0:.0f} s, valid {r.metrics['valid']}", flush=True)
        g = json.loads(path.read_text())
        g["hand"]["file"] = hand.path  # so that simulate_grasp reuses the loaded hand
        out[name] = g
    return out


# ----------------------------------------------------------------------------------------------
# Timed simulation
# ----------------------------------------------------------------------------------------------


def _pieces_fn(setting: dict | None, log: dict):
    """A ``convex_pieces`` stand-in for :mod:`jaxgrasp.sim.forces` that applies ``setting`` and
    records its wall and CPU time and its pieces in ``log``."""
    real = scene_mod.convex_pieces

    def fn(mesh, **kw):
        kw = dict(kw, **{k: v for k, v in (setting or {}).items() if k != "coacd"})
        if setting and "coacd" in setting:
            kw["settings"] = setting["coacd"]
        t0, c0 = time.perf_counter(), time.process_time()
        pieces = real(mesh, **kw)
        log.setdefault("decomposition_s", time.perf_counter() - t0)
        log.setdefault("decomposition_cpu_s", time.process_time() - c0)
        log["pieces"] = pieces
        return pieces

    return fn


def run_one(grasp: dict, setting: dict | None, hand) -> dict:
    """Cold-cache simulation of ``grasp`` under ``setting`` (module docstring)."""
    log: dict = {}
    old_env = os.environ.get("JAXGRASP_CACHE")
    forces.convex_pieces = _pieces_fn(setting, log)
    try:
        with tempfile.TemporaryDirectory(prefix="sim_new_object_") as tmp:
            os.environ["JAXGRASP_CACHE"] = tmp
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            r1 = simulate_grasp(grasp, SimConfig(), hand=hand)
            total = time.perf_counter() - t0
            r10 = simulate_grasp(grasp, SimConfig(force_per_kg=98.1), hand=hand)
    finally:
        forces.convex_pieces = scene_mod.convex_pieces
        if old_env is None:
            os.environ.pop("JAXGRASP_CACHE", None)
        else:
            os.environ["JAXGRASP_CACHE"] = old_env
    return {"total_s": total, "decomposition_s": log["decomposition_s"], "rest_s": total - log["decomposition_s"],
            "decomposition_cpu_s": log["decomposition_cpu_s"], "load_1min": load, "pieces": len(log["pieces"]),
            "held_1x": bool(r1.success), "held_10x": bool(r10.success), "reason_1x": r1.reason, "reason_10x": r10.reason,
            "max_displacement_1x_mm": r1.max_displacement_mm, "initial_penetration_mm": r1.initial_penetration_mm,
            "_pieces": log["pieces"]}


def resolved(setting: dict | None) -> dict:
    """Every value of a setting (the defaults filled in)."""
    setting, cfg = setting or {}, SimConfig()
    return {"threshold": setting.get("threshold", cfg.coacd_threshold),
            "max_pieces": setting.get("max_pieces", cfg.max_pieces),
            "max_faces": setting.get("max_faces", scene_mod.MAX_FACES),
            "coacd": {**scene_mod.COACD_SETTINGS, **setting.get("coacd", {})}}


def _fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", default=SCANS)
    ap.add_argument("--bottles", type=int, default=2, help="procedural bottles (not in the median)")
    ap.add_argument("--settings", default="old,default", help=f"comma-separated, of {sorted(SETTINGS)}")
    ap.add_argument("--only", default="", help="comma-separated substrings of object names to run")
    ap.add_argument("--budget", type=float, default=30.0, help="planning seconds per grasp (planned once)")
    ap.add_argument("--no-fidelity", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "sim_new_object.json"))
    ap.add_argument("--grasps", default=str(HERE / "results" / "sim_new_object.grasps"),
                    help="folder of the planned grasps (not committed)")
    args = ap.parse_args(argv)
    names = args.settings.split(",")
    for n in names:
        if n not in SETTINGS:
            ap.error(f"unknown setting {n!r}; choose from {sorted(SETTINGS)}")
    out = Path(args.out)

    from jaxgrasp.hand.model import load_hand
    from jaxgrasp.sim.grasp_files import object_mesh_of

    scans = sorted(Path(args.scans).glob("*.stl")) if Path(args.scans).is_dir() else []
    objects = [(f.stem, str(f)) for f in scans]
    objects += [(f"bottle_{s:04d}", f"procedural:bottle:{s}") for s in (6 + 8 * i for i in range(args.bottles))]
    if args.only:
        objects = [o for o in objects if any(k in o[0] for k in args.only.split(","))]
    hand = load_hand("shadow")
    grasps = plan_once(objects, hand, args.budget, Path(args.grasps))

    first = grasps[objects[0][0]]
    t0 = time.perf_counter()
    simulate_grasp(first, SimConfig(), hand=hand, object_mesh=object_mesh_of(first).convex_hull)  # warm-up
    print(f"warm-up (compiles the squeeze directions; convex hull, no decomposition): "
          f"{time.perf_counter() - t0:.1f} s", flush=True)

    rows = []
    for name, spec in objects:
        mesh = object_mesh_of(grasps[name])
        row = {"object": name, "scan": not spec.startswith("procedural:"), "faces": len(mesh.faces),
               "convex": bool(mesh.is_convex)}
        for s in names:
            r = run_one(grasps[name], SETTINGS[s], hand)
            pieces = r.pop("_pieces")
            if not args.no_fidelity:
                r.update(fidelity(mesh, pieces))
            row[s] = r
            print(f"{name:<22}{s:<9} total {r['total_s']:5.1f} s = decomposition {r['decomposition_s']:5.1f} s "
                  f"(cpu {r['decomposition_cpu_s']:5.1f}) + rest {r['rest_s']:4.1f} s; {r['pieces']:2d} pieces; "
                  f"held 1x {r['held_1x']!s:<5} 10x {r['held_10x']!s:<5}; out p95/max "
                  f"{_fmt(r.get('out_p95_mm'), '.2f')}/{_fmt(r.get('out_max_mm'), '.2f')} mm; "
                  f"load {r['load_1min']:.1f}", flush=True)
        rows.append(row)

    summary = {}
    for s in names:
        sc = [r[s] for r in rows if r["scan"]]

        def med(k, sc=sc):
            return float(np.median([x[k] for x in sc])) if sc else None

        summary[s] = {"scans": len(sc), "median_total_s": med("total_s"), "median_decomposition_s": med("decomposition_s"),
                      "median_decomposition_cpu_s": med("decomposition_cpu_s"), "median_rest_s": med("rest_s"),
                      "max_total_s": max((x["total_s"] for x in sc), default=None),
                      "held_1x": sum(x["held_1x"] for x in sc), "held_10x": sum(x["held_10x"] for x in sc),
                      "max_out_mm": max((x.get("out_max_mm", np.nan) for x in sc), default=None),
                      "median_out_p95_mm": med("out_p95_mm") if not args.no_fidelity else None}
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(), "jax": jax.__version__,
               "jax_backend": jax.default_backend(), "mujoco": mujoco.__version__}
    try:
        from importlib.metadata import PackageNotFoundError, version

        machine["coacd"] = version("coacd")
    except PackageNotFoundError:
        machine["coacd"] = None

    head = f"{'object':<22}" + "".join(f"| {s:<9}{'total':>7}{'decomp':>7}{'rest':>6}{'pcs':>4}{'1x':>3}{'10x':>4}"
                                       f"{'out95':>6}{'max':>6}{'scan95':>7}{'max':>6} " for s in names)
    print("\n" + head)
    for r in rows:
        line = f"{r['object'] + ('' if r['scan'] else ' *'):<22}"
        for s in names:
            x = r[s]
            line += (f"| {'':<9}{x['total_s']:>7.1f}{x['decomposition_s']:>7.1f}{x['rest_s']:>6.1f}{x['pieces']:>4}"
                     f"{'y' if x['held_1x'] else 'n':>3}{'y' if x['held_10x'] else 'n':>4}"
                     f"{_fmt(x.get('out_p95_mm'), '.1f'):>6}{_fmt(x.get('out_max_mm'), '.1f'):>6}"
                     f"{_fmt(x.get('scan_p95_mm'), '.1f'):>7}{_fmt(x.get('scan_max_mm'), '.1f'):>6} ")
        print(line)
    for s in names:
        m = summary[s]
        print(f"{s}: median over {m['scans']} scans: total {_fmt(m['median_total_s'])} s (decomposition "
              f"{_fmt(m['median_decomposition_s'])} s, cpu {_fmt(m['median_decomposition_cpu_s'])} s; rest "
              f"{_fmt(m['median_rest_s'])} s), max total {_fmt(m['max_total_s'])} s; held 1x {m['held_1x']}, "
              f"10x {m['held_10x']}")
    print("(* not a scan: not in the medians)")

    result = {
        "command": "python benchmarks/sim_new_object.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine,
        "settings": {s: resolved(SETTINGS[s]) for s in names},
        "sim_config": dataclasses.asdict(SimConfig()), "plan_budget_s": args.budget,
        "summary": summary, "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
