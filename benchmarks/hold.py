"""Grasps that hold (issue 23's targets): validity, an independent penetration check and physics.

    python benchmarks/hold.py [--objects 20] [--scans ../shared/objects] [--hands shadow,shadow_menagerie]
                              [--methods jaxgrasp,geoms,sampled,annealing] [--budget 10] [--out benchmarks/results/hold.json]

One grasp per object and method, for every hand, on ``--objects`` procedural objects (seed 7, as
``benchmarks/plan.py``) and the ``.stl`` scans in ``--scans``:

* ``jaxgrasp``: ``plan_grasps(path, hand, time_budget=B)``, validity by the hand file's real
  collision geoms (the default, :mod:`jaxgrasp.planning.geom_check`);
* ``sampled``: the same with ``EvalConfig(real_geoms=False)`` (validity by the hand's surface
  samples and link hulls alone, the check before issue 23);
* ``geoms``: the same with the loss on the real geoms too (``LossConfig(real_geoms=True)``);
* ``annealing``: the simulated-annealing baseline (:func:`jaxgrasp.planning.baseline.anneal_grasps`)
  at the same budget.

Per grasp: the planner's verdict and penetration; an **independent** penetration (this script:
MuJoCo's own kinematics of the hand file poses its collision geoms, finely tessellated with trimesh
(64-segment capsules and cylinders, level-4 icospheres, boxes, mesh hulls), measured against the
original mesh both ways with trimesh's signed distance and the geoms' hull planes; nothing of
jaxgrasp's geometry code); simulation success under the DexGraspBench protocol
(:func:`jaxgrasp.sim.simulate.simulate_grasp`) at 10 N/kg and 10x the weight (98.1 N/kg); the
time to the first valid grasp. Compilation is done before timing. Rows are appended to
``<out>.rows.jsonl`` as they finish and a rerun skips them (interrupt and resume freely); grasp
files and procedural meshes go to ``<out>.grasps/`` (not committed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import mujoco
import numpy as np
import trimesh
from plan import (  # (the benchmarks' folder is the script's path)
    SCANS,
    benchmark_objects,
)

from jaxgrasp.hand.model import load_hand
from jaxgrasp.planning.anytime import BudgetSpentCompiling
from jaxgrasp.planning.api import plan_grasps
from jaxgrasp.planning.baseline import anneal_grasps
from jaxgrasp.planning.grasp_io import save_grasp
from jaxgrasp.planning.planner import PlanConfig, compile_plan, make_scene, prepare
from jaxgrasp.sim.simulate import SimConfig, simulate_grasp

FORCES = {"1x": 10.0, "10x": 98.1}


# ----------------------------------------------------------------------------------------------
# Independent penetration check (MuJoCo kinematics + trimesh)
# ----------------------------------------------------------------------------------------------


def _geom_mesh(model: mujoco.MjModel, g: int) -> trimesh.Trimesh | None:
    G, t, s = mujoco.mjtGeom, model.geom_type[g], model.geom_size[g]
    if t == G.mjGEOM_BOX:
        return trimesh.creation.box(extents=2 * s)
    if t == G.mjGEOM_CAPSULE:
        return trimesh.creation.capsule(height=2 * s[1], radius=s[0], count=[64, 64])
    if t == G.mjGEOM_SPHERE:
        return trimesh.creation.icosphere(subdivisions=4, radius=s[0])
    if t == G.mjGEOM_CYLINDER:
        return trimesh.creation.cylinder(radius=s[0], height=2 * s[1], sections=64)
    if t == G.mjGEOM_ELLIPSOID:
        m = trimesh.creation.icosphere(subdivisions=4)
        m.apply_scale(s)
        return m
    if t == G.mjGEOM_MESH:
        m = model.geom_dataid[g]
        v = model.mesh_vert[model.mesh_vertadr[m]:model.mesh_vertadr[m] + model.mesh_vertnum[m]]
        return trimesh.Trimesh(np.asarray(v, float)).convex_hull
    return None


def independent_penetration(grasp: dict, mesh: trimesh.Trimesh, samples: int = 400) -> dict:
    """Deepest penetration [mm] between the hand file's collision geoms and ``mesh`` (both in the
    grasp's input frame), both ways: ``{"hand_in_object", "object_in_hand", "depth", "geom"}``."""
    spec = mujoco.MjSpec.from_file(grasp["hand"]["file"])
    model = spec.compile()
    data = mujoco.MjData(model)
    for name, angle in grasp["joint_angles"].items():
        data.joint(name).qpos = angle
    mujoco.mj_kinematics(model, data)
    root = next(b for b in range(1, model.nbody) if model.body_parentid[b] == 0)
    T_file_root = np.eye(4)
    T_file_root[:3, :3], T_file_root[:3, 3] = data.xmat[root].reshape(3, 3), data.xpos[root]
    T_input_file = np.asarray(grasp["palm_pose"]["matrix"], float) @ np.linalg.inv(T_file_root)
    obj_pts = np.concatenate([mesh.vertices, trimesh.sample.sample_surface_even(mesh, 20000, seed=0)[0]])
    hand_in, obj_in, where = 0.0, 0.0, ""
    lo, hi = mesh.bounds[0] - 0.05, mesh.bounds[1] + 0.05
    for g in range(model.ngeom):
        if model.geom_contype[g] == 0 and model.geom_conaffinity[g] == 0 or model.geom_bodyid[g] == 0:
            continue
        gm = _geom_mesh(model, g)
        if gm is None:
            continue
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = data.geom_xmat[g].reshape(3, 3), data.geom_xpos[g]
        gm.apply_transform(T_input_file @ T)
        if np.any(gm.bounds[1] < lo) or np.any(gm.bounds[0] > hi):
            continue
        pts = np.concatenate([gm.vertices, trimesh.sample.sample_surface_even(gm, samples, seed=0)[0]])
        d = float(np.max(trimesh.proximity.signed_distance(mesh, pts)))  # positive inside the object
        hull = gm.convex_hull  # the geoms are convex: depth of object points by their planes
        near = obj_pts[np.all((obj_pts > gm.bounds[0] - 1e-3) & (obj_pts < gm.bounds[1] + 1e-3), axis=1)]
        o = 0.0
        if len(near):
            n, c = hull.face_normals, hull.triangles_center
            # plane values (P, F), all <= 0 inside; the depth of a point is the least distance to a plane
            o = float(np.max(-np.max(near @ n.T - np.sum(c * n, axis=1)[None], axis=1)))
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or f"geom{g}"
        if max(d, o) * 1e3 > max(hand_in, obj_in):
            where = name
        hand_in, obj_in = max(hand_in, 1e3 * d), max(obj_in, 1e3 * o)
    return {"hand_in_object": hand_in, "object_in_hand": obj_in, "depth": max(hand_in, obj_in), "geom": where}


# ----------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------


def _config(method: str) -> PlanConfig:
    cfg = PlanConfig()
    if method == "sampled":
        cfg = dataclasses.replace(cfg, evaluation=dataclasses.replace(cfg.evaluation, real_geoms=False))
    if method == "geoms":
        cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, real_geoms=True))
    return cfg


def run_one(hand, method: str, path: str, budget: float, out_dir: Path, name: str) -> dict:
    for attempt in range(4):  # a shape the warm-up did not compile costs a run; it is cached after
        t0 = time.perf_counter()
        try:
            if method == "annealing":
                r = anneal_grasps(path, hand, time_budget=budget)[0]
            else:
                r = plan_grasps(path, hand, config=_config(method), time_budget=budget)[0]
            break
        except BudgetSpentCompiling:
            print(f"{name}: the budget went on compilation; running again", flush=True)
    else:
        raise RuntimeError(f"{name}: the budget went on compilation {attempt + 1} times in a row")
    wall = time.perf_counter() - t0
    m = r.metrics
    gpath = save_grasp(r, out_dir / hand.name / method / f"{name}.json", planner=method)
    grasp = json.loads(gpath.read_text())
    mesh = trimesh.Trimesh(r.object_vertices, r.object_faces, process=False)
    ind = independent_penetration(grasp, mesh)
    row = {"hand": hand.name, "method": method, "object": name, "valid": bool(m["valid"]),
           "penetration_mm": m["penetration_mm"], "geom_penetration_mm": m.get("geom_penetration_mm"),
           "independent_mm": ind["depth"], "independent_geom": ind["geom"], "q1": m["q1"],
           "time_to_first_valid_s": m.get("time_to_first_valid_s"), "plan_wall_s": wall, "grasp_file": str(gpath)}
    return row


def simulate_row(row: dict, hand) -> dict:
    """The simulation columns of a planned row (DexGraspBench protocol at both forces)."""
    out = {k: row[k] for k in ("hand", "method", "object")}
    for label, f in FORCES.items():
        s = simulate_grasp(row["grasp_file"], SimConfig(force_per_kg=f), hand=hand)
        out[f"held_{label}"] = bool(s.success)
        out[f"sim_reason_{label}"] = s.reason
        out[f"sim_wall_{label}_s"] = s.wall_s
        out["mujoco_initial_penetration_mm"] = s.initial_penetration_mm
    return out


def _convex(rows: list[dict]) -> dict[str, bool]:
    """Whether each object's mesh is convex (read from its grasp file's ``object.file``)."""
    out = {}
    for r in rows:
        if r["object"] not in out:
            g = json.loads(Path(r["grasp_file"]).read_text())
            mesh = trimesh.load(g["object"]["file"], force="mesh")
            out[r["object"]] = bool(mesh.is_convex)
    return out


def summarize(rows: list[dict], scans: set[str]) -> dict:
    out = {}
    convex = _convex(rows)
    for key in sorted({(r["hand"], r["method"]) for r in rows}):
        rs = [r for r in rows if (r["hand"], r["method"]) == key]
        valid = [r for r in rs if r["valid"]]
        ttv = [r["time_to_first_valid_s"] if r["time_to_first_valid_s"] is not None else np.inf
               for r in rs if r["object"] in scans]
        out[f"{key[0]}/{key[1]}"] = {
            "grasps": len(rs), "valid": len(valid),
            "valid_and_independent_le_1mm": sum(r["independent_mm"] <= 1.0 for r in valid),
            "independent_median_of_valid_mm": float(np.median([r["independent_mm"] for r in valid])) if valid else None,
            "held_1x": sum(r["held_1x"] for r in rs), "held_10x": sum(r["held_10x"] for r in rs),
            "held_1x_of_valid": sum(r["held_1x"] for r in valid), "held_10x_of_valid": sum(r["held_10x"] for r in valid),
            "median_time_to_first_valid_scans_s": float(np.median(ttv)) if ttv else None,
            "median_sim_wall_s": float(np.median([r["sim_wall_1x_s"] for r in rs])),
        }
        both = [r for r in rs if r.get("geom_penetration_mm") is not None]
        if both:
            diff = [abs(r["geom_penetration_mm"] - r["independent_mm"]) for r in both]
            cdiff = [d for d, r in zip(diff, both) if convex[r["object"]]]
            out[f"{key[0]}/{key[1]}"].update(
                geom_vs_independent_max_abs_diff_mm=float(max(diff)),
                geom_vs_independent_max_abs_diff_convex_mm=float(max(cdiff)) if cdiff else None,
                geom_vs_independent_compared=len(both))
            mj = [abs(r["geom_penetration_mm"] - r["mujoco_initial_penetration_mm"]) for r in both
                  if convex[r["object"]] and np.isfinite(r.get("mujoco_initial_penetration_mm", np.nan))]
            if mj:  # MuJoCo collides a convex object's own mesh (no decomposition)
                out[f"{key[0]}/{key[1]}"].update(geom_vs_mujoco_convex_max_abs_diff_mm=float(max(mj)),
                                                 geom_vs_mujoco_convex_median_abs_diff_mm=float(np.median(mj)),
                                                 geom_vs_mujoco_convex_compared=len(mj))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=20, help="procedural objects")
    ap.add_argument("--scans", default=SCANS)
    ap.add_argument("--hands", default="shadow,shadow_menagerie")
    ap.add_argument("--methods", default="jaxgrasp,sampled,annealing")
    ap.add_argument("--budget", type=float, default=10.0, help="seconds per plan")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "hold.json"))
    ap.add_argument("--no-sim", action="store_true", help="plan and check only (simulate in a later run)")
    args = ap.parse_args()
    out = Path(args.out)
    grasps_dir = out.with_suffix(".grasps")
    rows_path = out.with_suffix(".rows.jsonl")
    objects, scans = benchmark_objects(args.objects, args.scans)
    paths = []
    for name, mesh in objects:  # the planner and the simulation read meshes from disk
        if isinstance(mesh, trimesh.Trimesh):
            p = grasps_dir / "objects" / f"{name}.stl"
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.is_file():
                mesh.export(p)
            mesh = str(p)
        paths.append((name, mesh))
    rows = [json.loads(x) for x in rows_path.read_text().splitlines()] if rows_path.is_file() else []
    done = {(r["hand"], r["method"], r["object"]) for r in rows}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0].platform}"
    for hand_name in args.hands.split(","):
        hand = load_hand(hand_name)
        todo = [(n, p) for n, p in paths for m in args.methods.split(",") if (hand.name, m, n) not in done]
        if not todo:
            continue
        t0, seen = time.perf_counter(), set()
        for name, path in dict(todo).items():  # compile every padded shape before timing
            for method in {m for m in args.methods.split(",") if m != "annealing"}:
                cfg = _config(method)
                prep = prepare(path, cfg)
                key = (make_scene(prep, cfg).obj.faces.shape, prep.obj.faces.shape, method)
                if key not in seen:
                    seen.add(key)
                    compile_plan(hand, prep, cfg)
            if "annealing" in args.methods:
                anneal_grasps(path, hand, time_budget=2.0)
        print(f"{hand.name}: compiled in {time.perf_counter() - t0:.0f} s", flush=True)
        for name, path in paths:
            for method in args.methods.split(","):
                if (hand.name, method, name) in done:
                    continue
                row = run_one(hand, method, path, args.budget, grasps_dir, name)
                rows.append(row)
                with open(rows_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{hand.name:<17}{method:<10}{name:<26} valid {row['valid']!s:<6} pen {row['penetration_mm']:5.2f} "
                      f"indep {row['independent_mm']:5.2f}", flush=True)
    if args.no_sim:
        return
    sim_path = out.with_suffix(".sim.jsonl")
    sims = [json.loads(x) for x in sim_path.read_text().splitlines()] if sim_path.is_file() else []
    key = lambda r: (r["hand"], r["method"], r["object"])  # noqa: E731
    have = {key(r) for r in sims}
    hands = {}
    for row in rows:
        if key(row) in have:
            continue
        hand = hands.setdefault(row["hand"], load_hand(row["hand"]))
        sim = simulate_row(row, hand)
        sims.append(sim)
        with open(sim_path, "a") as f:
            f.write(json.dumps(sim) + "\n")
        print(f"{row['hand']:<17}{row['method']:<10}{row['object']:<26} held 1x {sim['held_1x']!s:<6} "
              f"10x {sim['held_10x']!s:<6} ({sim['sim_reason_1x']}, {sim['sim_wall_1x_s']:.1f} s)", flush=True)
    by_key = {key(r): r for r in sims}
    rows = [{**r, **by_key[key(r)]} for r in rows if key(r) in by_key]
    summary = summarize(rows, scans)
    print(f"\n{machine}; budget {args.budget:g} s per plan")
    print(f"{'hand/method':<28}{'valid':>7}{'indep<=1':>9}{'held 1x':>9}{'held 10x':>9}{'ttv scans':>10}{'sim s':>7}")
    for k, s in summary.items():
        ttv = s["median_time_to_first_valid_scans_s"]
        print(f"{k:<28}{s['valid']:>4}/{s['grasps']:<2}{s['valid_and_independent_le_1mm']:>9}{s['held_1x']:>9}"
              f"{s['held_10x']:>9}{ttv if ttv is None else round(ttv, 2)!s:>10}{s['median_sim_wall_s']:>7.1f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    keep = ("hand", "method", "object", "valid", "penetration_mm", "geom_penetration_mm", "independent_mm", "q1",
            "time_to_first_valid_s", "held_1x", "held_10x", "sim_reason_1x", "sim_reason_10x",
            "mujoco_initial_penetration_mm")
    small = [{k: (round(r[k], 4) if isinstance(r.get(k), float) else r.get(k)) for k in keep} for r in rows]
    text = json.dumps({"machine": machine, "budget_s": args.budget, "summary": summary}, indent=1)
    out.write_text(text[:-2] + ',\n "rows": [\n' + ",\n".join(json.dumps(r) for r in small) + "\n ]\n}\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
