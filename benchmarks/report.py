"""The README's table of current results, generated from the benchmarks' JSON.

    python benchmarks/report.py                  # print the markdown table
    python benchmarks/report.py --write-readme   # replace the block between the README's markers

Every number comes from a JSON file under ``benchmarks/results/`` (and the learning row from
``experiments/results/b/results.json``); a file that is missing drops its rows. Below the table,
the machine each file records (the files record no date; the history of the runs is in
``docs/decisions.md``). Rerun the benchmark scripts to refresh the JSON, then this script.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
LEARNING = ROOT / "experiments" / "results" / "b" / "results.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _machine(data: dict) -> str | None:
    """The machine a result file records, in words (string or dict forms)."""
    m = data.get("machine")
    if isinstance(m, str):
        return m
    if isinstance(m, dict):
        parts = [str(m["platform"]).split("-")[0] if m.get("platform") else None,
                 f"{m['cpus']} cpus" if m.get("cpus") else None,
                 f"jax {m['jax']}" if m.get("jax") else None,
                 f"on {m.get('device') or m.get('jax_backend')}" if (m.get("device") or m.get("jax_backend")) else None,
                 f"mujoco {m['mujoco']}" if m.get("mujoco") else None,
                 f"mujoco-mjx {m['mujoco_mjx']}" if m.get("mujoco_mjx") else None]
        return ", ".join(p for p in parts if p)
    if data.get("device") and data.get("cpu_count"):  # train_step.json
        return f"{data['cpu_count']} cpus, on {data['device']}"
    for note in data.get("notes", []):  # experiments: the machine is part of the first note
        hit = re.search(r"x86_64[^;]*?on \w+", note)
        if hit:
            return hit.group(0)
    return None


def _row(rows: list, what: str, ours: str, ref: str, setting: str, source: Path) -> None:
    rows.append((what, ours, ref, setting, f"`{_rel(source)}`"))


def _by_method(items: list[dict], key: str, method: str) -> dict | None:
    return next((r for r in items if r.get(key, "").startswith(method)), None)


def collect() -> tuple[list[tuple], dict[str, str]]:
    """Table rows ``(measurement, jaxgrasp, reference, setting, source)`` and each file's machine."""
    rows: list[tuple] = []
    machines: dict[str, str] = {}

    def use(path: Path) -> dict | None:
        data = _load(path)
        if data is not None:
            machine = _machine(data) or "not recorded"
            if data.get("note"):
                machine += " (see the file's note)"
            machines[_rel(path)] = machine
        return data

    f = RESULTS / "plan.json"
    if (d := use(f)) and "summary" in d:
        s, a = d["summary"].get("jaxgrasp", {}), d["summary"].get("annealing", {})
        n, b = len(d.get("rows", [])), d.get("budget_s", 30)
        setting, setting5 = f"{n} objects, {b:g} s per object", f"{n} objects, 5 s per object"
        _row(rows, f"objects with a valid grasp within {b:g} s", s["valid_within_budget"],
             f"annealing {a['valid_within_budget']}" if a else "", setting, f)
        _row(rows, "median time to a first valid grasp (s)", f"{s['median_time_to_valid_s']:.2f}",
             f"annealing {a['median_time_to_valid_s']:.2f}" if a else "", setting, f)
        _row(rows, "median time to a first valid grasp, scans (s)", f"{s['median_time_to_valid_scans_s']:.2f}",
             f"annealing {a['median_time_to_valid_scans_s']:.2f}" if a else "", "the scans of that set", f)
        _row(rows, "mean exact Q1 of the best grasp at 5 s", f"{s['mean_q1_at_5s']:.3f}",
             f"annealing {a['mean_q1_at_5s']:.3f}" if a else "", setting5, f)
        ratio = f" ({s['mean_q1_at_30s'] / a['mean_q1_at_30s']:.2f}x)" if a and a["mean_q1_at_30s"] else ""
        _row(rows, f"mean exact Q1 of the best grasp at {b:g} s", f"{s['mean_q1_at_30s']:.3f}{ratio}",
             f"annealing {a['mean_q1_at_30s']:.3f}" if a else "", setting, f)

    f = RESULTS / "ab.json"
    if (d := use(f)) and "summary" in d:
        o, n = d["summary"]["old"], d["summary"]["new"]
        b = d.get("budget_s", 30)
        runs = d.get("runs", [])
        for i, (so, sn) in enumerate(zip(o, n)):
            tag = f" (run {i + 1}: {runs[i]['new_commit']})" if i < len(runs) else ""
            _row(rows, f"A/B against the commit before the engine{tag}: valid, median time to valid (all / scans), "
                       f"mean Q1 at 5 s / {b:g} s",
                 f"{sn['valid_within_budget']}, {sn['median_time_to_valid_s']:.2f} / "
                 f"{sn['median_time_to_valid_scans_s']:.2f} s, {sn['mean_q1_at_5s']:.3f} / {sn[f'mean_q1_at_{b:g}s']:.3f}",
                 f"before: {so['valid_within_budget']}, {so['median_time_to_valid_s']:.2f} / "
                 f"{so['median_time_to_valid_scans_s']:.2f} s, {so['mean_q1_at_5s']:.3f} / {so[f'mean_q1_at_{b:g}s']:.3f}",
                 "28 objects, interleaved object by object in one run"
                 + (f"; {runs[i]['note']}" if i < len(runs) and runs[i].get("note") else ""), f)

    f = RESULTS / "cold_start.json"
    if (d := use(f)) and "codes" in d:
        scan = Path(d.get("scan", "")).stem
        new, old = d["codes"].get("new", {}).get("modes", {}), d["codes"].get("old", {}).get("modes", {})

        def runs(modes, key):
            return " / ".join(f"{r['wall_s']:.1f}" for r in modes.get(key, []))
        if "none" in new:
            _row(rows, "`python -m jaxgrasp.plan SCAN` in a fresh process, wall time (s): first / second run",
                 runs(new, "none"), f"before the compile cache: {runs(old, 'none')}" if old else "",
                 f"{scan}, empty compile cache before the first run", f)

    f = RESULTS / "time_to_valid.json"
    if (d := use(f)) and "summary" in d:
        s = d["summary"]
        per_seed = " / ".join(f"{t:.2f}" for t in s["median_over_objects_per_seed_s"])
        _row(rows, "median time to a first valid grasp, scans, per seed (s)",
             f"{per_seed}; all runs {s['median_over_all_runs_s']:.2f}", "",
             f"{len(d.get('times_s', {}))} scans x {d.get('seeds')} seeds, {d.get('budget_s'):g} s budget, "
             f"{s['runs_valid_within_budget']} valid", f)

    f = RESULTS / "q1_ceiling.json"
    if (d := use(f)) and "summary" in d:
        s = d["summary"]
        _row(rows, "mean fraction of each object's Q1 ceiling reached at 30 s",
             f"{s['mean_jaxgrasp_fraction_of_ceiling']:.2f}",
             f"annealing {s['mean_annealing_fraction_of_ceiling']:.2f}",
             f"{s['objects']} objects, mean ceiling {s['mean_ceiling']:.3f}, "
             f"planner values above it: {s['planner_values_above_ceiling']}", f)

    f = RESULTS / "quality.json"
    if d := use(f):
        up = _by_method(d.get("cost", []), "method", "upper bound")
        lo = _by_method(d.get("cost", []), "method", "lower bound (SOS), K = 16")
        if up and lo:
            _row(rows, "Q1 value + gradient per grasp (ms): upper bound / SOS lower bound (K = 16)",
                 f"{up['ms_per_grasp']:.2f} / {lo['ms_per_grasp']:.1f}",
                 f"exact Q1 (host, no gradient) {d['exact_ms_per_grasp']:.2f}",
                 f"batch {d.get('batch')}, 45 contacts, float64", f)
        t = d.get("tightness", {})
        tu, tl = t.get("upper / exact(T=16)"), t.get("(exact(T=4) - lower) / exact(T=4)")
        if tu and tl:
            _row(rows, "Q1 bounds against exact Q1 (median; 95th percentile)",
                 f"upper {tu['median']:.2f}x ({tu['p95']:.1f}x); lower {100 * tl['median']:.3f}% below "
                 f"({100 * tl['p95']:.1f}%)", "", f"{d.get('grasps')} random force-closure grasps", f)

    f = RESULTS / "fk.json"
    if d := use(f):
        val = _by_method(d.get("rows", []), "method", "jaxgrasp FK value")
        grad = _by_method(d.get("rows", []), "method", "jaxgrasp pose + grad")
        mj = _by_method(d.get("rows", []), "method", "MuJoCo")
        if val and grad:
            _row(rows, "forward kinematics per configuration (us): value / value + gradient",
                 f"{1e6 * val['seconds_per_config']:.2f} / {1e6 * grad['seconds_per_config']:.2f}",
                 f"MuJoCo mj_kinematics loop {1e6 * mj['seconds_per_config']:.2f}" if mj else "",
                 f"{d.get('hand')}, batch {d.get('batch')}, {d.get('dtype')}", f)

    f = RESULTS / "distance.json"
    if d := use(f):
        main = d.get("main", [])
        brute, grid = _by_method(main, "method", "jaxgrasp brute force"), _by_method(main, "method", "jaxgrasp grid culling")
        tm = _by_method(main, "method", "trimesh signed_distance")
        if brute and grid:
            _row(rows, "signed distance of 2,000 points (s): brute force / culling grid",
                 f"{brute['seconds']:.3f} / {grid['seconds']:.3f}",
                 f"trimesh {tm['seconds']:.2f} ({tm['points_off_by_1um']} points off by > 1 um)" if tm else "",
                 f"{d.get('n_faces')}-triangle scan, float32", f)

    f = RESULTS / "simulate.json"
    if d := use(f):
        c = _by_method(d.get("rows", []), "backend", "mujoco")
        mjx = [r for r in d.get("rows", []) if r.get("backend", "").startswith("mjx")]
        agree = d.get("agreement", {})
        if c:
            ref = ", ".join(f"MJX batch {r['batch']}: {r['grasps_per_s']:.4f}"
                            + (" (extrapolated)" if r.get("protocol") == "extrapolated" else "") for r in mjx)
            setting = f"{c.get('grasps')} grasps of {d.get('object')}, full protocol"
            if agree:
                setting += f"; C and MJX agree on {agree['same_success']}/{agree['grasps']}"
            _row(rows, "simulated grasps per second (MuJoCo C loop)", f"{c['grasps_per_s']:.2f}", ref, setting, f)

    f = RESULTS / "hold.json"
    if (d := use(f)) and "summary" in d:
        sm = d["summary"]
        for hand in sorted({k.split("/")[0] for k in sm}):
            s, a, p = sm.get(f"{hand}/jaxgrasp"), sm.get(f"{hand}/annealing"), sm.get(f"{hand}/sampled")
            hl = sm.get(f"{hand}/geoms")
            if not s:
                continue
            n = s["grasps"]
            refs = [f"annealing {a['held_1x']}/{n}, {a['held_10x']}/{n}" if a else "",
                    f"loss on the real geoms too {hl['held_1x']}/{n}, {hl['held_10x']}/{n}" if hl else "",
                    f"validity by samples (before) {p['held_1x']}/{n}, {p['held_10x']}/{n}" if p else ""]
            _row(rows, f"grasps that held in MuJoCo at DexGraspBench's force / 10x the weight ({hand})",
                 f"{s['held_1x']}/{n}, {s['held_10x']}/{n}", "; ".join(r for r in refs if r),
                 f"one grasp per object, {d.get('budget_s', 10):g} s budget", f)
            refs = [f"loss on the real geoms too: {hl['valid_and_independent_le_1mm']} of {hl['valid']} valid"
                    if hl else "",
                    f"validity by samples (before): {p['valid_and_independent_le_1mm']} of {p['valid']} valid"
                    if p else ""]
            _row(rows, f"valid grasps that penetrate <= 1 mm by an independent check ({hand})",
                 f"{s['valid_and_independent_le_1mm']} of {s['valid']} valid", "; ".join(r for r in refs if r),
                 "hand file's geoms, finely tessellated, against the mesh (trimesh)", f)
            t = lambda x: "none" if x is None or not math.isfinite(x) else f"{x:.2f} s"  # noqa: E731
            if s.get("median_time_to_first_valid_scans_s") is not None:
                _row(rows, f"median time to the first valid grasp, scans ({hand})",
                     t(s["median_time_to_first_valid_scans_s"]),
                     f"loss on the real geoms too {t(hl['median_time_to_first_valid_scans_s'])}" if hl else "",
                     f"the {d.get('scans', 8)} YCB scans, 10 s budget, compiled beforehand", f)

    f = RESULTS / "train_step.json"
    if d := use(f):
        m = d.get("median_s", {})
        if m:
            _row(rows, "training step (s): Chamfer loss / + differentiable loss",
                 f"{m['chamfer_only']:.2f} / {m['with_differentiable_loss']:.2f}", "",
                 f"{d.get('model')} network, batch {d.get('batch')}, {d.get('views')} views of "
                 f"{'x'.join(map(str, d.get('image', [])))}", f)

    f = LEARNING
    if d := use(f):
        net = _by_method(d.get("summary", []), "predictor", "phase 1 + phase 2")
        gt = _by_method(d.get("summary", []), "predictor", "ground truth")
        if net:
            _row(rows, "learned predictor on held-out objects: mean Q1, mean penetration (mm), valid",
                 f"{net['q1_mean']:.3f}, {net['pen_mean']:.2f}, {net['valid'].split(' ')[0]}",
                 f"ground truth {gt['q1_mean']:.3f}, {gt['pen_mean']:.2f}, {gt['valid'].split(' ')[0]}" if gt else "",
                 f"{net['n']} test samples, network alone (phase 1 + 2)", f)
    return rows, machines


def markdown() -> str:
    rows, machines = collect()
    out = ["| measurement | jaxgrasp | reference | setting | source |", "|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    groups: dict[str, list[str]] = {}
    for name, machine in machines.items():
        short = Path(name).name if Path(name).parent == RESULTS.relative_to(ROOT) else name
        groups.setdefault(machine, []).append(f"`{short}`")
    out.append("")
    out.append("Machines as the files record them (no dates are recorded; see `docs/decisions.md`): "
               + "; ".join(f"{', '.join(names)}: {m}" for m, names in groups.items()) + ".")
    return "\n".join(out)


def write_readme(table: str, readme: Path = README) -> None:
    text = readme.read_text()
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < i:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} block")
    readme.write_text(text[: i + len(BEGIN)] + "\n" + table + "\n" + text[j:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/report.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--write-readme", action="store_true", help="replace the README's results block")
    args = ap.parse_args(argv)
    table = markdown()
    if args.write_readme:
        write_readme(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
