"""``python -m jaxgrasp.plan PATH... [--hand NAME|FILE] [--grasps K] [--out DIR] [--seed S]``

Plans grasps for mesh files or folders of meshes (OBJ, STL, PLY, OFF, GLB) and writes, per
object, ``OUT/<name>.json`` (schema ``jaxgrasp.plan/1``: the input, the object, the hand and a
list of grasps in the ``jaxgrasp.grasp/2`` schema of :mod:`jaxgrasp.planning.grasp_io`, best
first) as soon as the object is done, plus ``<name>.png`` (hand and object from three views) and
``<name>.glb`` (the posed hand with the object). With no PATH it plans on a bundled procedurally
generated object. ``--poses`` adds each grasp's pregrasp and squeeze (:mod:`jaxgrasp.sim.forces`);
``--verify mujoco`` keeps only grasps that held in simulation (:mod:`jaxgrasp.sim.verify`), with
their poses.

Names and reruns (:mod:`jaxgrasp.cli.jobs`): a file given by path is named by its stem, a file
in a folder by its path relative to the folder (``OUT/a/mug.json``), and names two inputs would
share get a tag of the file's path (``mug-1a2b3c4d``). A rerun skips an object whose plan file
records the same input (absolute path and SHA-256 of the content), and plans again when the file
changed. Nothing is written outside ``OUT`` but JAX's compiled code and hand annotations in the
user's cache (:mod:`jaxgrasp.core.compile_cache`).

Units: every length in the files is in metres, in the mesh file's frame scaled to metres (file
coordinates x ``units_scale``: 0.001 with ``--units mm``); the plan file says so in ``units``.

Failures: an object that fails (the loader's clear error, or any other) is reported in one line,
logged with its traceback in ``OUT/errors.log``, and the run goes on; what the loader repaired
or found (an open mesh, several bodies) is printed under the object and summed up in the
summary table. Exit status: 0, 1 when any object failed, 2 when the run could not start (a
missing path, a hand file that cannot be used), 130 after Ctrl-C (one line; the finished objects
are kept and a rerun goes on from there).

The progress bar's status says what is happening (the messages the library logs on
``logging.getLogger("jaxgrasp")`` at INFO); the library's warnings are printed as lines;
``--verbose`` prints every message as a line with the seconds since the start. Other libraries'
messages and Python warnings go to ``OUT/plan.log``, never to the console.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import trimesh
from tqdm import tqdm

from jaxgrasp.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    USER_ERRORS,
    LogFile,
    error_line,
    library_messages_to,
)
from jaxgrasp.cli.jobs import Job, collect_jobs, output_for
from jaxgrasp.cli.progress import BarLog, Ticker
from jaxgrasp.core.compile_cache import enable_compilation_cache
from jaxgrasp.hand.model import load_hand
from jaxgrasp.hand.pictures import hand_scene, plot_hand
from jaxgrasp.mesh.objects import MESH_FORMATS, load_object, make_object
from jaxgrasp.mesh.procedural import procedural_object
from jaxgrasp.planning.grasp_io import grasp_to_dict
from jaxgrasp.planning.planner import PlanConfig, Schedule, Shapes
from jaxgrasp.planning.warmup import finish_pending, pending
from jaxgrasp.sim.forces import grasp_poses
from jaxgrasp.sim.verify import NoGraspHeld, plan_grasps

# Meshes with more faces are announced as slower to prepare (about a minute for 2 M on 2 cores).
LARGE_FACES = 500_000
# Loader repairs every file of some formats needs (STL stores three copies of each vertex):
# in the grasp file, not on the console.
ROUTINE_REPAIRS = ("merged duplicate vertices", "scaled coordinates")
# Loader findings worth a console line (the others come with a repair, or are routine).
NOTABLE_FINDINGS = ("not watertight:", "separate bodies", "not orientable")

log = logging.getLogger("jaxgrasp.plan")


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m jaxgrasp.plan", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", help="mesh files or folders (default: a bundled procedural object)")
    ap.add_argument("--hand", default="shadow",
                    help="bundled hand name (always the bundled hand) or MJCF/URDF file or folder")
    ap.add_argument("--grasps", type=_positive(int), default=1, help="grasps per object")
    ap.add_argument("--out", default="out", help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--starts", type=_positive(int), default=Shapes.num_starts, help="parallel starts per object")
    ap.add_argument("--steps", type=_positive(int), default=Schedule.steps, help="optimizer steps")
    ap.add_argument("--units", default="m", choices=["m", "cm", "mm"],
                    help="unit of the mesh files (results are in metres)")
    ap.add_argument("--budget", type=_positive(float), default=None,
                    help="anytime planning: seconds per object (restarts while time is left)")
    ap.add_argument("--refine-steps", type=int, default=0, help="SDP lower-bound refinement steps (0: off)")
    ap.add_argument("--no-pictures", action="store_true", help="skip the PNG and GLB")
    ap.add_argument("--poses", action="store_true",
                    help="write each grasp's pregrasp and squeeze (contact forces solved in MuJoCo; "
                         "a non-convex object is decomposed once, ~1 min)")
    ap.add_argument("--verify", choices=["mujoco"], default=None,
                    help="keep only grasps that held in MuJoCo (DexGraspBench protocol; rejected ones counted)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print the progress messages (loading, compiling, evaluating...) as lines with times")
    return ap


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (see the module docstring)."""
    args = _parser().parse_args(argv)
    run = _Run(args)
    try:
        return run.execute()
    except KeyboardInterrupt:
        print(f"interrupted: {run.planned} of {len(run.jobs)} objects done; rerun the same command "
              "to plan the others", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        return EXIT_USAGE


class _Run:
    """One run of the command line: the jobs, the console, the loop."""

    def __init__(self, args):
        self.args, self.jobs, self.rows, self.planned = args, [], [], 0

    def execute(self) -> int:
        args = self.args
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"--out {out} is a file; pass a folder for the results")
        if args.paths:
            self.jobs = collect_jobs(args.paths)
            if not self.jobs:
                raise FileNotFoundError(f"no mesh files ({', '.join(MESH_FORMATS)}) in "
                                        f"{', '.join(args.paths)}")
        else:
            self.jobs = [Job("procedural_bottle", "procedural:bottle:6", procedural_object(6, "bottle"))]
        cfg = PlanConfig(shapes=Shapes(num_starts=max(args.starts, args.grasps)),
                         schedule=Schedule(steps=args.steps, refine_steps=args.refine_steps), seed=args.seed)
        bar = tqdm(total=len(self.jobs), desc="planning", unit="object", dynamic_ncols=True)
        lib_log = logging.getLogger("jaxgrasp")
        handler = BarLog(bar, verbose=args.verbose, t0=time.perf_counter())
        logfile = LogFile()
        # While the bar runs it owns the console: jaxgrasp's records go to the bar and the log
        # file only, everything else (trimesh, absl, warnings) to the log file only.
        saved = lib_log.level, lib_log.propagate
        if lib_log.getEffectiveLevel() > handler.level:
            lib_log.setLevel(handler.level)
        lib_log.addHandler(handler)
        lib_log.addHandler(logfile)
        lib_log.propagate = False
        ticker = Ticker(bar)
        try:
            with library_messages_to(logfile):
                log.info("compiled code cache: %s", enable_compilation_cache() or "off")
                log.info("loading hand %s", args.hand)
                hand = load_hand(args.hand)  # before anything is written: a bad hand leaves no trace
                out.mkdir(parents=True, exist_ok=True)
                logfile.open(out / "plan.log")
                self._plan_all(bar, handler, out, hand, cfg)
        finally:
            ticker.close()
            lib_log.removeHandler(handler)
            lib_log.removeHandler(logfile)
            lib_log.setLevel(saved[0])
            lib_log.propagate = saved[1]
            logfile.close()
            bar.close()
        print(summary_table(self.rows, out=out, units=args.units))
        if pending():  # a budgeted call returned while its code still compiles: cache it for next time
            print("finishing the compilation begun in the background, for the next run (Ctrl-C skips it)",
                  file=sys.stderr, flush=True)
            # A line every few seconds: never silent for long.
            finish_pending(lambda s: print(f"  still compiling ({s:.0f} s)", file=sys.stderr, flush=True))
        return EXIT_FAILED if any("error" in r for r in self.rows) else EXIT_OK

    def _plan_all(self, bar, handler: BarLog, out: Path, hand, cfg) -> None:
        args = self.args
        for job in self.jobs:
            handler.prefix = f"{job.name}: "
            bar.set_postfix_str(job.name)
            name = job.name
            try:
                identity = job.identity(args.units)
                name, status = output_for(job, identity, out)
                handler.prefix = f"{name}: "
                target = out / f"{name}.json"
                if name != job.name:
                    bar.write(f"{job.name}: {out / job.name}.json holds another file's results; "
                              f"writing {target}")
                if status == "done":
                    bar.write(f"{name}: done before, skipped ({target})")
                    self.rows.append(_row_from_file(target, name))
                    self.planned += 1
                    bar.update(1)
                    continue
                if status == "changed":
                    bar.write(f"{name}: {target} records this file with other content or units, or cannot "
                              "be read; planning again")

                def progress(step, terms, name=name):
                    total = f"/{cfg.schedule.steps}" if args.budget is None else ""
                    bar.set_postfix_str(f"{name} step {step}{total} loss {float(terms['total'].min()):.3f}")

                row = plan_object(job, name, identity, out, hand, cfg, args, progress=progress, say=bar.write)
                self.rows.append(row)
                self.planned += 1
                bar.write(f"{name}: valid={row['valid']} Q1={row['q1']:.4f} "
                          f"penetration={row['penetration_mm']:.2f} mm -> {target}")
            except Exception as e:  # one bad object must not stop a batch run
                msg = error_line(e)
                self.rows.append({"object": name, "error": msg})
                with open(out / "errors.log", "a", encoding="utf-8") as f:
                    f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {name} ({job.source}): {msg}\n"
                            f"{traceback.format_exc()}\n")
                bar.write(f"{name}: FAILED: {msg} (details in {out / 'errors.log'})")
            bar.update(1)
        handler.prefix = ""


def load_job(job: Job, units: str) -> tuple:
    """The job's object, load report and the shift applied to it (None, or a (3,) vector [m]
    added to the input frame's coordinates: objects farther than
    :data:`~jaxgrasp.mesh.objects.FAR_M` from the origin are planned at the origin).

    Raises:
        ValueError, FileNotFoundError: the loader's clear errors.
    """
    if job.path is None:  # a generated trimesh, in metres
        obj, report = make_object(job.mesh.vertices, job.mesh.faces, source=job.source, recenter=True)
    else:
        obj, report = load_object(job.source, units=units, recenter=True)
    return obj, report, None if report.offset is None else np.asarray(report.offset)


def plan_object(job: Job, name: str, identity: dict, out: Path, hand, cfg, args, *, progress=None,
                say=print) -> dict:
    """Plan one object and write its JSON (and pictures); returns the summary row.

    Raises:
        ValueError: the mesh cannot be used (the loader's message), or the planner returned a
            value that is not finite (nothing is written then).
    """
    t0 = time.perf_counter()
    log.info("loading and checking the mesh")
    obj, report, _ = load_job(job, args.units)
    for line in load_notes(report.findings, report.repairs):
        say(f"{name}: {line}")
    if report.num_faces > LARGE_FACES:
        say(f"{name}: {report.num_faces} faces: the optimizer plans on a decimated copy, the evaluation "
            "on the full mesh; preparing them takes about a minute")
    results = plan_grasps((obj, report), hand, num_grasps=args.grasps, config=cfg, progress=progress,
                          time_budget=args.budget, verify=args.verify)
    if not results:  # --verify: none held; nothing is written, the object is not done
        raise NoGraspHeld(f"{name}: none of the planned grasps held in simulation; try --budget or --starts")
    best = results[0]
    grasps = [grasp_to_dict(r) for r in results]
    for g in grasps:  # in the file's frame (the planner moved them back by any shift)
        g["object"]["file"] = job.source
    if args.poses and not args.verify:  # schema 2 (--verify: the poses it simulated are in the dicts)
        log.info("deriving pregrasp and squeeze poses")
        tm_input = trimesh.Trimesh(best.object_vertices, best.object_faces, process=False)
        grasps = [grasp_poses(g, hand=hand, object_mesh=tm_input) for g in grasps]
    data = {"schema": "jaxgrasp.plan/1", "input": identity,
            "units": {"lengths": "m", "angles": "rad", "file_to_m": float(report.scale),
                      "frame": "the mesh file's frame, scaled to metres"},
            "object": grasps[0]["object"], "hand": grasps[0]["hand"],
            "config": {k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v)
                       for k, v in dataclasses.asdict(cfg).items()},
            "grasps": grasps}
    text = _to_json(data)  # before any file is written: a non-finite value writes nothing
    target = out / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not args.no_pictures:
        log.info("writing pictures (%s.png, %s.glb)", name, name)
        tm = trimesh.Trimesh(best.object_vertices, best.object_faces, process=False)
        tm.apply_translation(-best.center_of_mass)  # pictures in the centred frame
        m = best.metrics
        plot_hand(best.hand, best.config, out / f"{name}.png", obj_mesh=tm,
                  title=f"{name}: Q1 {m['q1']:.3f}, penetration {m['penetration_mm']:.2f} mm, "
                        f"{m['num_contacts']} contacts, {'valid' if m['valid'] else 'not valid'}")
        hand_scene(best.hand, best.config, tm).export(str(out / f"{name}.glb"))
    log.info("writing %s.json", name)
    _write_text(target, text)  # written last: its presence marks the object done
    m = best.metrics
    if m.get("hint"):
        log.warning("%s: no valid grasp; %s", name, m["hint"])
    if "verify" in m:
        v = m["verify"]
        say(f"{name}: {len(results)} held in simulation, {v['rejected_in_simulation']} rejected by it, "
            f"{v['invalid_not_simulated']} invalid not simulated ({v['sim_s']:.1f} s)")
    return {"object": name, "valid": m["valid"], "q1": m["q1"], "penetration_mm": m["penetration_mm"],
            "contacts": m["num_contacts"], "time_s": time.perf_counter() - t0,
            "mesh": mesh_summary(report.findings, report.repairs)}


def _to_json(data: dict) -> str:
    """The plan file's text; ValueError naming the first NaN/inf (never written to a file)."""
    try:
        return json.dumps(data, indent=1, allow_nan=False)
    except ValueError:
        where = _first_nonfinite(data, "")
        raise ValueError(f"the planner returned a non-finite value at {where}; nothing written for "
                         "this object (a bug: please report it with the mesh)") from None


def _first_nonfinite(x, where: str) -> str | None:
    if isinstance(x, float) and not math.isfinite(x):
        return where or "/"
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, (list, tuple)) else ()
    for k, v in items:
        found = _first_nonfinite(v, f"{where}/{k}")
        if found:
            return found
    return None


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # after an error or Ctrl-C: no partial file left


def load_notes(findings, repairs) -> list[str]:
    """The loader's repairs and notable findings as console lines (routine repairs, such as
    merging the three copies of each vertex an STL file stores, stay in the grasp file)."""
    lines = [f"repaired: {r}" for r in repairs if not r.startswith(ROUTINE_REPAIRS)]
    lines += [f"found: {s}" for s in findings if any(k in s for k in NOTABLE_FINDINGS)]
    return lines


def mesh_summary(findings, repairs) -> str:
    """The summary table's mesh column: "ok", or the repairs made and how the mesh is used."""
    parts = []
    n = sum(not r.startswith(ROUTINE_REPAIRS) for r in repairs)
    if n:
        parts.append(f"{n} repair{'s' if n > 1 else ''}")
    if any(s.startswith("not watertight:") for s in findings):
        parts.append("open (winding-number sign)")
    bodies = [s.split()[0] for s in findings if "separate bodies" in s]
    if bodies:
        parts.append(f"{bodies[0]} bodies")
    return ", ".join(parts) or "ok"


def _row_from_file(target: Path, name: str) -> dict:
    """The summary row of an object done in an earlier run."""
    try:
        data = json.loads(target.read_text())
        g = data["grasps"][0]
        m, rep = g["metrics"], g.get("load_report") or {}
        return {"object": name, "valid": m["valid"], "q1": m["q1"], "penetration_mm": m["penetration_mm"],
                "contacts": m["num_contacts"], "time_s": m["time_s"],
                "mesh": mesh_summary(rep.get("findings", []), rep.get("repairs", [])) + " (earlier run)"}
    except (OSError, KeyError, IndexError, TypeError, ValueError):
        return {"object": name, "error": f"done before, but {target} cannot be read"}


def summary_table(rows: list[dict], *, out: Path | None = None, units: str = "m") -> str:
    """The table printed at the end of a run: one row per object, then the totals."""
    w = max([6] + [len(r["object"]) + 2 for r in rows])
    lines = [f"{'object':<{w}}{'valid':>7}{'Q1':>9}{'pen (mm)':>10}{'contacts':>10}{'time (s)':>10}  mesh"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['object']:<{w}}{'error':>7}  {r['error'][:100]}")
        else:
            lines.append(f"{r['object']:<{w}}{r['valid']!s:>7}{r['q1']:>9.4f}{r['penetration_mm']:>10.2f}"
                         f"{r['contacts']:>10d}{r['time_s']:>10.1f}  {r.get('mesh', '')}")
    ok = [r for r in rows if "error" not in r]
    if ok:
        lines.append(f"{len([r for r in ok if r['valid']])}/{len(rows)} objects with a valid grasp; "
                     f"mean Q1 {sum(r['q1'] for r in ok) / len(ok):.4f}")
    failed = len(rows) - len(ok)
    if failed:
        where = f" (details in {out / 'errors.log'})" if out is not None else ""
        lines.append(f"{failed} object{'s' if failed > 1 else ''} failed{where}")
    if ok:
        scale = {"m": "", "cm": " (file coordinates x 0.01)", "mm": " (file coordinates x 0.001)"}[units]
        lines.append(f"lengths in the grasp files: metres, in each mesh file's frame{scale}")
    return "\n".join(lines)


def exit_process(status: int) -> None:
    """Ends the process with ``status`` without the interpreter's teardown: it takes about 1 s
    (XLA's runtime), and after Ctrl-C it can crash (SIGSEGV) while a background thread is still
    inside an XLA compilation. Everything is written and closed by then (``main`` waits for the
    background compilation of a normal run; files are written atomically)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    exit_process(main())
