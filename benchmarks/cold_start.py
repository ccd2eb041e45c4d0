"""Cold start of the ``python -m jaxgrasp.plan`` command line: wall time and time to a valid grasp.

    python benchmarks/cold_start.py [SCAN] [--budgets 5 10] [--runs 2] [--old PATH] [--new PATH]

Each run is a fresh process, ``python -m jaxgrasp.plan SCAN --out <empty folder>`` (pictures
included, as a user would run it). Per mode (no budget, then ``--budget B`` for each of
``--budgets``) the persistent compilation cache starts empty (``JAXGRASP_CACHE_DIR=<new temporary
folder>``) and the command runs ``--runs`` times in a row: the first run compiles everything, the
next ones find the compiled code on disk. ``--old PATH`` also runs a second checkout (``PYTHONPATH=
PATH``, cwd PATH; e.g. the code before the cache: without a cache every run is a first run) for
the "before" figures. A user's own ``JAX_COMPILATION_CACHE_DIR`` is removed from the runs'
environment.

Per run it records the process's wall time and CPU time (user + system: steadier than wall time
when other work shares the machine; the 1-minute load average at the run's start is kept too);
the planner's figures from the output JSON (``time_s`` of the call; ``time_to_first_valid_s``
with a budget, else ``time_s`` when the grasp is valid, since that call only returns at its end;
valid, Q1); and, from the time each piece of the console output arrived, when planning began (the
bar first names the object), when the CLI printed the grasp, the bar's status messages (loading,
compiling, evaluating... where the code says them) and the longest silence. Time to a valid grasp
from the process's start = when planning began + the planner's time to valid.

Default SCAN: ``../shared/objects/055_baseball.stl`` beside this checkout (a YCB scan; the folder
is not needed otherwise). Prints a table and writes ``benchmarks/results/cold_start.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCAN = ROOT.parent / "shared" / "objects" / "055_baseball.stl"
STATUS = re.compile(r"object/s(?:, (.*))?\]\s*$")  # tqdm's bar: "... [00:12<?, ?object/s, STATUS]"


def git_state(path: Path) -> str:
    try:
        head = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def run_once(code: Path, scan: Path, budget: float | None, cache: Path | None, python: str, timeout: float) -> dict:
    """One ``python -m jaxgrasp.plan`` process; returns its figures (see the module docstring)."""
    out = Path(tempfile.mkdtemp(prefix="jaxgrasp-cold-out-"))
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "JAXGRASP_CACHE_DIR")}
    env.update(PYTHONPATH=str(code), PYTHONUNBUFFERED="1", JAXGRASP_CACHE_DIR=str(cache) if cache else "off")
    cmd = [python, "-m", "jaxgrasp.plan", str(scan), "--out", str(out)]
    if budget is not None:
        cmd += ["--budget", f"{budget:g}"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # other work on the machine
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=code, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    pieces: list[tuple[float, str]] = []  # (when its last byte arrived, a line or a bar redraw)
    arrivals: list[float] = []  # when each chunk of output arrived

    def read() -> None:
        # tqdm starts each redraw with "\r", so a piece ends when the next write arrives: it is
        # dated by the arrival of its own last byte, not of that next write.
        buf, buf_t = b"", 0.0
        while chunk := os.read(proc.stdout.fileno(), 65536):
            now = time.perf_counter() - t0
            arrivals.append(now)
            parts = re.split(rb"[\r\n]", chunk)
            if len(parts) > 1:
                pieces.append((now if parts[0] else buf_t, (buf + parts[0]).decode("utf-8", "replace").rstrip()))
                pieces.extend((now, p.decode("utf-8", "replace").rstrip()) for p in parts[1:-1])
                buf = b""
            buf, buf_t = buf + parts[-1], now
        pieces.append((buf_t, buf.decode("utf-8", "replace").rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    reader.join(timeout=10)

    name = scan.stem
    # CPU seconds (user + system, all threads) of the run: steadier than wall time on a shared machine.
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    rec: dict = {"budget": budget, "wall_s": wall, "cpu_s": cpu, "load_1min": load, "rc": rc, "grasp": False}
    files = list(out.glob(f"{name}.json"))
    if files:
        g = json.loads(files[0].read_text())["grasps"][0]
        m = g["metrics"]
        ttv = m.get("time_to_first_valid_s")
        rec.update(grasp=True, valid=bool(m["valid"]), q1=m["q1"], call_s=m["time_s"],
                   ttv_call_s=ttv if ttv is not None or budget is not None else (m["time_s"] if m["valid"] else None))
    # The bar's status: when planning began, and each message (runs of "step ..." as first and last).
    events: list[list] = []
    for t, text in pieces:
        if not text.strip():
            continue
        s = STATUS.search(text)
        status = (s.group(1) or "").strip() if s else None
        if status is None:  # a line of its own (results, warnings, the table)
            if not text.startswith("planning:"):
                events.append([round(t, 2), "line: " + text[:120]])
            continue
        if not status or (events and events[-1][1] == status):
            continue
        if " step " in status and len(events) >= 2 and " step " in events[-1][1] and " step " in events[-2][1]:
            events[-1] = [round(t, 2), status]  # keep the first and the latest of a run of steps
        else:
            events.append([round(t, 2), status])
    starts = [t for t, s in events if not s.startswith("line: ") and s.startswith(name)]
    rec["plan_start_s"] = starts[0] if starts else None
    said = [t for t, s in events if s.startswith(f"line: {name}: valid=")]
    rec["result_line_s"] = said[0] if said else None  # the CLI prints the grasp (after its pictures)
    rec["exit_s"] = wall - max(arrivals) if arrivals else None  # from the last output to the process's end
    if rec.get("ttv_call_s") is not None and rec["plan_start_s"] is not None:
        rec["ttv_process_s"] = rec["plan_start_s"] + rec["ttv_call_s"]
    pieces[:] = [(t, p) for t, p in pieces if p.strip()]
    times = [0.0] + arrivals + [wall]
    gaps = [(b - a, a) for a, b in zip(times, times[1:])]
    rec["max_silence_s"], rec["max_silence_at_s"] = max(gaps) if gaps else (None, None)
    rec["events"] = events if len(events) <= 60 else events[:40] + [[None, "..."]] + events[-19:]
    if rc != 0:
        rec["tail"] = [p for _, p in pieces[-5:]]
    shutil.rmtree(out, ignore_errors=True)
    return rec


def fmt(x, spec=".1f") -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scan", nargs="?", default=str(DEFAULT_SCAN), help="mesh file (default: %(default)s)")
    ap.add_argument("--budgets", type=float, nargs="*", default=[5.0, 10.0], help="--budget modes (seconds)")
    ap.add_argument("--no-default", action="store_true", help="skip the mode without a budget")
    ap.add_argument("--runs", type=int, default=2, help="runs in a row per mode (the first with an empty cache)")
    ap.add_argument("--new", default=str(ROOT), help="the checkout to measure (default: this one)")
    ap.add_argument("--old", default=None, help="a second checkout for the 'before' figures")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cold_start.json"))
    args = ap.parse_args()
    scan = Path(args.scan).resolve()
    if not scan.is_file():
        raise SystemExit(f"no scan at {scan}: pass a mesh file (e.g. a YCB scan) as the first argument")

    modes = ([] if args.no_default else [None]) + list(args.budgets)
    codes = [("new", Path(args.new).resolve())] + ([("old", Path(args.old).resolve())] if args.old else [])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results = {"scan": str(scan), "machine": f"{platform.machine()}, {os.cpu_count()} cores, python "
               f"{platform.python_version()}", "load_avg_1min_at_start": load, "codes": {}}
    rows = []
    for label, code in codes:
        results["codes"][label] = {"path": str(code), "git": git_state(code), "modes": {}}
        for budget in modes:
            cache = Path(tempfile.mkdtemp(prefix="jaxgrasp-cold-cache-"))
            runs = []
            for i in range(args.runs):
                r = run_once(code, scan, budget, cache, args.python, args.timeout)
                r["run"] = i + 1
                r["cache_files"] = sum(1 for _ in cache.iterdir())
                runs.append(r)
                mode = "no budget" if budget is None else f"budget {budget:g}"
                rows.append((label, mode, r))
                print(f"{label:<4} {mode:<10} run {i + 1}: wall {r['wall_s']:6.1f} s, valid grasp at "
                      f"{fmt(r.get('ttv_process_s'))} s (call {fmt(r.get('ttv_call_s'))} s), "
                      f"longest silence {fmt(r['max_silence_s'])} s, rc {r['rc']}", flush=True)
            shutil.rmtree(cache, ignore_errors=True)
            results["codes"][label]["modes"]["none" if budget is None else f"{budget:g}"] = runs

    print(f"\ncold start of python -m jaxgrasp.plan {scan.name} ({results['machine']}, load {fmt(load, '.2f')})")
    print(f"{'code':<5}{'mode':<11}{'run':>4}{'wall s':>8}{'cpu s':>7}{'plan at':>8}{'call s':>8}{'valid at':>9}"
          f"{'(call)':>8}{'printed':>8}{'valid':>7}{'Q1':>7}{'silence':>9}")
    for label, mode, r in rows:
        print(f"{label:<5}{mode:<11}{r['run']:>4}{r['wall_s']:>8.1f}{r['cpu_s']:>7.1f}{fmt(r['plan_start_s']):>8}"
              f"{fmt(r.get('call_s')):>8}{fmt(r.get('ttv_process_s')):>9}{fmt(r.get('ttv_call_s')):>8}"
              f"{fmt(r.get('result_line_s')):>8}{str(r.get('valid', 'none')):>7}{fmt(r.get('q1'), '.3f'):>7}"
              f"{fmt(r['max_silence_s']):>9}")
    print("wall: the whole process; cpu: its user + system CPU time; plan at: when the bar first named the "
          "object; call: the grasp's time_s; valid at: time to the first valid grasp from the process's "
          "start (call: from the planner call's start; without a budget, the call's time_s when valid); "
          "printed: when the CLI printed the grasp (after its pictures); silence: longest time without "
          "console output")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
