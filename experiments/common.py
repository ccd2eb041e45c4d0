"""Shared code of the experiments: object sets, timing, grasp files, simulation, tables and plots.

Every experiment writes to ``experiments/results/<name>/``: ``table.md`` (markdown, with the
machine and its load), ``table.csv`` (one row per object and method), ``grasps/*.json`` (the
grasps, schema ``jaxgrasp.grasp/2``, their ``object.file`` pointing at ``meshes/`` or the scan),
and PNG plots. Experiment B can reuse :func:`simulate_grasp_files` and :func:`write_outputs` for
its grasp files.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
DEFAULT_SCANS = ROOT.parent / "shared" / "objects"


def sim_configs():
    """The two simulated tests every experiment reports: DexGraspBench's force (10 N/kg, about
    1x the weight) and the strict 10x-weight force (98.1 N/kg)."""
    from jaxgrasp.sim.protocol import SimConfig

    return {"sim": SimConfig(), "sim10x": SimConfig(force_per_kg=10 * SimConfig.gravity)}


def object_set(num_procedural: int, scans_dir: str | os.PathLike | None, max_scans: int | None,
               seed: int = 7) -> list[tuple[str, object]]:
    """``[(name, mesh)]``: procedural objects (``trimesh.Trimesh``, ``procedural_set(n, seed)``)
    and the first ``max_scans`` (None: all) STL scans of ``scans_dir`` (paths) when it exists."""
    from jaxgrasp.mesh.procedural import procedural_set

    objects: list[tuple[str, object]] = list(procedural_set(num_procedural, seed=seed))
    if scans_dir is not None and Path(scans_dir).is_dir():
        scans = sorted(Path(scans_dir).glob("*.stl"))
        objects += [(f.stem, str(f)) for f in scans[: max_scans if max_scans is not None else len(scans)]]
    return objects


def mesh_file(name: str, mesh, out: Path) -> str:
    """A file for the object the grasp JSON can point at: scans keep their path, procedural
    meshes are written to ``out/meshes/<name>.stl``."""
    if isinstance(mesh, (str, os.PathLike)):
        return str(Path(mesh).resolve())
    f = out / "meshes" / f"{name}.stl"
    f.parent.mkdir(parents=True, exist_ok=True)
    if not f.exists():
        mesh.export(str(f))
    return str(f.resolve())


def save_grasp_json(result, name: str, mesh_path: str, out: Path, planner: str) -> Path:
    """Write a :class:`jaxgrasp.planning.planner.GraspResult` as ``out/grasps/<name>.json`` with
    ``object.file`` = ``mesh_path`` (metres)."""
    from jaxgrasp.planning.grasp_io import grasp_to_dict

    d = grasp_to_dict(result, planner)
    d["object"]["file"] = mesh_path
    d["object"]["units_scale"] = 1.0
    f = out / "grasps" / f"{name}.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(d, indent=1))
    os.replace(tmp, f)
    return f


def simulate_grasp_files(files: list[Path], hand=None) -> list[dict]:
    """Simulate each grasp file under every :func:`sim_configs` test. Returns one dict per file:
    ``{"<test>": success, "<test>_reason": ..., "sim_pen_mm": initial penetration, "sim_s"}``."""
    from tqdm import tqdm

    from jaxgrasp.sim.simulate import simulate_grasp

    rows = []
    for f in tqdm(files, desc="simulating", unit="grasp", dynamic_ncols=True):
        row: dict = {}
        t0 = time.perf_counter()
        for key, cfg in sim_configs().items():
            try:
                r = simulate_grasp(f, cfg, hand=hand)
                row[key], row[f"{key}_reason"] = bool(r.success), r.reason
                row["sim_pen_mm"] = r.initial_penetration_mm
                row["sim_pieces"] = r.num_pieces
            except Exception as e:  # a broken file is reported, the others go on
                row[key], row[f"{key}_reason"] = False, f"error: {type(e).__name__}: {e}"
        row["sim_s"] = time.perf_counter() - t0
        rows.append(row)
    return rows


def machine() -> str:
    """Machine, JAX backend and the load average while the experiment ran (shared CPU)."""
    import jax

    try:
        load = "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "load unknown"
    return (f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on "
            f"{jax.devices()[0].platform}, {load}")


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return ("inf" if np.isinf(v) else "nan") if not np.isfinite(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """``columns``: ``[(key, header)]``."""
    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def write_outputs(out: Path, title: str, rows: list[dict], columns: list[tuple[str, str]],
                  summary_rows: list[dict], summary_columns: list[tuple[str, str]], notes: list[str],
                  extra: dict | None = None) -> Path:
    """Write ``table.md`` (summary table, per-object table, notes), ``table.csv`` (all row keys)
    and ``results.json``. Returns the markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}", "", markdown_table(summary_rows, summary_columns), "",
          markdown_table(rows, columns), "", *[f"- {n}" for n in notes], ""]
    (out / "table.md").write_text("\n".join(md))
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    (out / "results.json").write_text(json.dumps({"rows": rows, "summary": summary_rows, "notes": notes,
                                                  **(extra or {})}, indent=1, default=str))
    return out / "table.md"


def bar_plot(path: Path, labels: list[str], series: dict[str, list[float]], ylabel: str, title: str) -> None:
    """Grouped bars, one group per label, one bar per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(series), 1)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(labels) * n), 3.6))
    for k, (name, vals) in enumerate(series.items()):
        ax.bar(x + (k - (n - 1) / 2) * 0.8 / n, [np.nan if v is None else v for v in vals], 0.8 / n, label=name)
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if n > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def rate(rows: list[dict], key: str) -> str:
    k = sum(bool(r.get(key)) for r in rows)
    return f"{k}/{len(rows)} ({100.0 * k / max(len(rows), 1):.0f}%)"


def mean(rows: list[dict], key: str, where=None) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None and (where is None or where(r))]
    return float(np.mean(vals)) if vals else None


def config_dict(cfg) -> dict:
    return {k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v) for k, v in dataclasses.asdict(cfg).items()}
