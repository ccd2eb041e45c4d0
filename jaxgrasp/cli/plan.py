"""``python -m jaxgrasp.plan PATH... [--hand NAME|FILE] [--grasps K] [--out DIR] [--seed S]``

Plans grasps for mesh files or folders of meshes (OBJ, STL, PLY, OFF, GLB) and writes, per
object, ``OUT/<name>.json`` (schema ``jaxgrasp.plan/1``: the object, the hand and a list of grasps
in the ``jaxgrasp.grasp/1`` schema of :mod:`jaxgrasp.planning.grasp_io`, best first) as soon as the object
is done, plus ``<name>.png`` (hand and object from three views) and ``<name>.glb`` (the posed
hand with the object). A rerun skips objects whose JSON exists; an object that fails is logged
(``OUT/errors.log``) and the run goes on; a summary table closes the run. With no PATH it plans
on a bundled procedurally generated object.

The progress bar's status says what is happening (loading, compiling, optimizing, evaluating,
writing): the messages the library logs on ``logging.getLogger("jaxgrasp")`` at INFO; warnings
are printed as lines; ``--verbose`` prints every message as a line with the seconds since the
start. Compiled code is kept in JAX's persistent cache (see :mod:`jaxgrasp.core.compile_cache`; the
environment variable ``JAXGRASP_CACHE_DIR`` moves it or, set to ``off``, disables it), so a second
run skips most of the compilation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import threading
import time
import traceback
from pathlib import Path

import trimesh
from tqdm import tqdm

from jaxgrasp.core.compile_cache import enable_compilation_cache
from jaxgrasp.hand.model import load_hand
from jaxgrasp.hand.pictures import hand_scene, plot_hand
from jaxgrasp.mesh.procedural import procedural_object
from jaxgrasp.planning.api import plan_grasps
from jaxgrasp.planning.grasp_io import grasp_to_dict
from jaxgrasp.planning.planner import PlanConfig, Schedule, Shapes

MESH_SUFFIXES = {".obj", ".stl", ".ply", ".off", ".glb", ".gltf"}

log = logging.getLogger("jaxgrasp.plan")


def collect_meshes(paths: list[str]) -> list[Path]:
    """Mesh files from files and folders (recursively), sorted, duplicates removed."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in MESH_SUFFIXES and f.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise SystemExit(f"error: {p} does not exist")
    seen, unique = set(), []
    for f in out:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def plan_object(mesh, name: str, out: Path, hand, cfg, *, num_grasps: int, units: str, pictures: bool,
                source: str, progress=None, time_budget: float | None = None) -> dict:
    """Plan one object and write its JSON (and pictures); returns the summary row."""


    t0 = time.perf_counter()
    log.info("loading and checking the mesh" if isinstance(mesh, (str, os.PathLike)) else "preparing the object")
    results = plan_grasps(mesh, hand, num_grasps=num_grasps, config=cfg, units=units, progress=progress,
                          time_budget=time_budget)
    best = results[0]
    grasps = [grasp_to_dict(r) for r in results]
    for g in grasps:
        g["object"]["file"] = source
    data = {"schema": "jaxgrasp.plan/1", "object": grasps[0]["object"], "hand": grasps[0]["hand"],
            "config": {k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v)
                       for k, v in dataclasses.asdict(cfg).items()},
            "grasps": grasps}
    if pictures:
        log.info("writing pictures (%s.png, %s.glb)", name, name)
        verts = best.object_vertices
        tm = trimesh.Trimesh(verts, best.object_faces, process=False)
        tm.apply_translation(-best.center_of_mass)  # pictures in the centred frame
        m = best.metrics
        plot_hand(best.hand, best.config, out / f"{name}.png", obj_mesh=tm,
                  title=f"{name}: Q1 {m['q1']:.3f}, penetration {m['penetration_mm']:.2f} mm, "
                        f"{m['num_contacts']} contacts, {'valid' if m['valid'] else 'not valid'}")
        hand_scene(best.hand, best.config, tm).export(str(out / f"{name}.glb"))
    log.info("writing %s.json", name)
    _write_json(out / f"{name}.json", data)  # written last: its presence marks the object done
    m = best.metrics
    return {"object": name, "valid": m["valid"], "q1": m["q1"], "penetration_mm": m["penetration_mm"],
            "contacts": m["num_contacts"], "time_s": time.perf_counter() - t0}


def summary_table(rows: list[dict]) -> str:
    lines = [f"{'object':<28}{'valid':>7}{'Q1':>9}{'pen (mm)':>10}{'contacts':>10}{'time (s)':>10}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['object']:<28}{'error':>7}  {r['error'][:60]}")
        else:
            lines.append(f"{r['object']:<28}{str(r['valid']):>7}{r['q1']:>9.4f}{r['penetration_mm']:>10.2f}"
                         f"{r['contacts']:>10d}{r['time_s']:>10.1f}")
    ok = [r for r in rows if "error" not in r]
    if ok:
        lines.append(f"{len([r for r in ok if r['valid']])}/{len(rows)} objects with a valid grasp; "
                     f"mean Q1 {sum(r['q1'] for r in ok) / len(ok):.4f}")
    return "\n".join(lines)


class _BarLog(logging.Handler):
    """Log records on a tqdm bar: INFO and below as the bar's status (after the current object's
    name), warnings and errors as lines; with ``verbose`` every record also as a line stamped with
    the seconds since ``t0``. Thread-safe (the planner may log from background threads)."""

    def __init__(self, bar, *, verbose: bool, t0: float):
        super().__init__(logging.DEBUG if verbose else logging.INFO)
        self.bar, self.verbose, self.t0, self.prefix = bar, verbose, t0, ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if record.levelno >= logging.WARNING:
                self.bar.write(f"{record.levelname.lower()}: {self.prefix}{msg}")
                return
            if self.verbose:
                self.bar.write(f"[{time.perf_counter() - self.t0:7.1f} s] {self.prefix}{msg}")
            self.bar.set_postfix_str(f"{self.prefix}{msg}")
        except Exception:  # never let a progress message break planning
            self.handleError(record)


class _Ticker:
    """Redraws the bar every ``every`` seconds (on a terminal), so its clock runs while one long
    step (a compilation, an evaluation) gives no update."""

    def __init__(self, bar, every: float = 1.0):
        self.bar, self.every, self.stop = bar, every, threading.Event()
        self.thread = None
        fp = getattr(bar, "fp", None)
        try:
            tty = bool(fp is not None and fp.isatty())
        except (AttributeError, ValueError, OSError):
            tty = False
        if tty and not getattr(bar, "disable", False):
            self.thread = threading.Thread(target=self._run, name="jaxgrasp-plan-ticker", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.bar.refresh()
            except Exception:  # the bar was closed
                return

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jaxgrasp.plan", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", help="mesh files or folders (default: a bundled procedural object)")
    ap.add_argument("--hand", default="shadow", help="bundled hand name or MJCF/URDF file")
    ap.add_argument("--grasps", type=int, default=1, help="grasps per object")
    ap.add_argument("--out", default="out", help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--starts", type=int, default=Shapes.num_starts, help="parallel starts per object")
    ap.add_argument("--steps", type=int, default=Schedule.steps, help="optimizer steps")
    ap.add_argument("--units", default="m", choices=["m", "cm", "mm"], help="unit of the mesh files")
    ap.add_argument("--budget", type=float, default=None,
                    help="anytime planning: seconds per object (restarts while time is left)")
    ap.add_argument("--refine-steps", type=int, default=0, help="SDP lower-bound refinement steps (0: off)")
    ap.add_argument("--no-pictures", action="store_true", help="skip the PNG and GLB")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print the progress messages (loading, compiling, evaluating...) as lines with times")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = PlanConfig(shapes=Shapes(num_starts=max(args.starts, args.grasps)),
                     schedule=Schedule(steps=args.steps, refine_steps=args.refine_steps), seed=args.seed)
    if args.paths:
        jobs = [(f.stem, str(f), str(f)) for f in collect_meshes(args.paths)]
        if not jobs:
            print("no mesh files found", file=sys.stderr)
            return 2
    else:
        jobs = [("procedural_bottle", procedural_object(6, "bottle"), "procedural:bottle:6")]
    bar = tqdm(jobs, desc="planning", unit="object", dynamic_ncols=True)
    lib_log = logging.getLogger("jaxgrasp")
    handler = _BarLog(bar, verbose=args.verbose, t0=t_start)
    # While the bar runs, it owns the console: the library's records go to the bar only (not also
    # to a root handler, e.g. the one absl's logging installs when orbax is imported).
    old_level, old_propagate = lib_log.level, lib_log.propagate
    if lib_log.getEffectiveLevel() > handler.level:
        lib_log.setLevel(handler.level)
    lib_log.addHandler(handler)
    lib_log.propagate = False
    ticker = _Ticker(bar)
    try:
        cache = enable_compilation_cache()
        log.info("compiled code cache: %s", cache or "off")
        log.info("loading hand %s", args.hand)
        hand = load_hand(args.hand)
        rows = _plan_all(bar, handler, jobs, out, hand, cfg, args)
    finally:
        ticker.close()
        lib_log.removeHandler(handler)
        lib_log.setLevel(old_level)
        lib_log.propagate = old_propagate
        bar.close()
    print(summary_table(rows))
    return 0


def _plan_all(bar, handler: _BarLog, jobs: list, out: Path, hand, cfg, args) -> list[dict]:
    """The loop over objects of :func:`main` (``bar`` iterates over ``jobs``)."""
    rows: list[dict] = []
    for name, mesh, source in bar:
        handler.prefix = f"{name}: "
        target = out / f"{name}.json"
        if target.exists():
            bar.write(f"{name}: done before, skipped ({target})")
            try:
                g = json.loads(target.read_text())["grasps"][0]["metrics"]
                rows.append({"object": name, "valid": g["valid"], "q1": g["q1"], "penetration_mm": g["penetration_mm"],
                             "contacts": g["num_contacts"], "time_s": g["time_s"]})
            except (OSError, KeyError, IndexError, json.JSONDecodeError):
                pass
            continue
        bar.set_postfix_str(name)
        try:
            def progress(step, terms, name=name):
                total = f"/{cfg.schedule.steps}" if args.budget is None else ""
                bar.set_postfix_str(f"{name} step {step}{total} loss {float(terms['total'].min()):.3f}")

            rows.append(plan_object(mesh, name, out, hand, cfg, num_grasps=args.grasps, units=args.units,
                                    pictures=not args.no_pictures, source=source, progress=progress,
                                    time_budget=args.budget))
            r = rows[-1]
            bar.write(f"{name}: valid={r['valid']} Q1={r['q1']:.4f} penetration={r['penetration_mm']:.2f} mm "
                      f"-> {target}")
        except Exception as e:  # one bad object must not stop a batch run
            msg = f"{type(e).__name__}: {e}"
            rows.append({"object": name, "error": msg})
            with open(out / "errors.log", "a") as f:
                f.write(f"{name} ({source}): {msg}\n{traceback.format_exc()}\n")
            bar.write(f"{name}: FAILED: {msg} (details in {out / 'errors.log'})")
    handler.prefix = ""
    return rows


if __name__ == "__main__":
    sys.exit(main())
