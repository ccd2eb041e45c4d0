"""Signed distance to a 16k-triangle scan: brute force vs culling grid vs trimesh (rtree).

One run prints three tables and writes them as JSON:

1. 2,000 points (half uniform in the bounding box grown by 10 % per side, half within ~1 cm of
   the surface) against one scan, float32 on the CPU: jaxgrasp brute force and grid culling
   (with and without the exact path), trimesh's rtree-based signed distance and closest point.
   Time is the best of ``--repeats`` runs after a warm-up (compilation reported separately);
   "pairs/s" counts the (point, triangle) pairs actually evaluated, "effective" counts N x F.
   Accuracy: max |d - d_ref| against jaxgrasp in float64 with the exact path.
2. When culling pays: brute force vs grid for meshes of 1k-33k triangles (generated tori) and
   two point distributions, with the grid build time and the break-even number of queries.
3. The exact path on every scan: how often it triggers for uniform, near-surface and on-surface
   points, and what it costs.

Usage: PYTHONPATH=. python benchmarks/distance.py [--objects-dir DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)  # float64 reference; timed runs use float32 inputs

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import trimesh  # noqa: E402
from timing import time_call  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from jaxgrasp.mesh import (
    culling,  # noqa: E402
    geometry,
)
from jaxgrasp.mesh.objects import load_object, make_object  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_time(fun, repeats):
    """(compile + first run seconds, best of `repeats` later runs)."""
    _, first, best = time_call(fun, repeats)
    return first, best


def scan_like_torus(major_sections, minor_sections, seed=0):
    """A bumpy torus (genus 1) with 2 * major * minor triangles, scan-like."""
    mesh = trimesh.creation.torus(0.05, 0.02, major_sections=major_sections,
                                  minor_sections=minor_sections)
    rng = np.random.default_rng(seed)
    normals = mesh.vertex_normals
    mesh.vertices += normals * rng.normal(0, 2e-4, (len(mesh.vertices), 1))
    return mesh


def sample_points(mesh, n, rng, grow=0.1, near=0.01):
    """Half uniform in the bounding box grown by `grow` per side, half near the surface."""
    lo, hi = mesh.bounds
    span = hi - lo
    uniform = rng.uniform(lo - grow * span, hi + grow * span, (n - n // 2, 3))
    surf, fi = trimesh.sample.sample_surface(mesh, n // 2, seed=int(rng.integers(1 << 30)))
    offset = rng.normal(0.0, near, (n // 2, 1))
    return np.concatenate([uniform, surf + offset * mesh.face_normals[fi]]).astype(np.float32)


def evaluated_pairs(grid, points, chunk, n_faces_padded, k):
    """Pairs evaluated with a grid: culled chunks test K slots, fallback chunks all faces."""
    _, ok = culling.lookup(grid, jnp.asarray(points))
    n = len(points)
    n_pad = -(-n // chunk) * chunk
    culled_chunks = int(ok.sum()) // chunk
    return culled_chunks * chunk * k + (n_pad - culled_chunks * chunk) * n_faces_padded, \
        float(ok.mean())


def main_table(obj, mesh, pts, args):
    f_pad = obj.face_mask.shape[0]
    n = len(pts)
    ref_obj, _ = make_object(*_arrays(obj), dtype=np.float64, pad_to=f_pad)
    d_ref, _ = geometry.signed_distance(ref_obj, pts.astype(np.float64))
    d_ref = np.asarray(d_ref)
    t0 = time.perf_counter()
    grid, stats = culling.build_grid(obj, resolution=args.resolution,
                                     max_candidates=args.max_candidates)
    build = time.perf_counter() - t0
    pairs_grid, ok_frac = evaluated_pairs(grid, pts, args.chunk_size, f_pad, args.max_candidates)
    rows = []
    for label, g, ex in [("jaxgrasp brute force", None, False),
                         ("jaxgrasp brute force + exact", None, True),
                         ("jaxgrasp grid culling", grid, False),
                         ("jaxgrasp grid culling + exact", grid, True)]:
        fun = lambda g=g, ex=ex: geometry.signed_distance(obj, pts, grid=g, exact=ex,  # noqa
                                                          chunk_size=args.chunk_size)
        first, best = best_time(fun, args.repeats)
        d = np.asarray(fun()[0])
        n_pad = -(-n // args.chunk_size) * args.chunk_size  # points are padded to chunks
        pairs = pairs_grid if g is not None else n_pad * f_pad
        rows.append(dict(method=label, seconds=best, first_call_seconds=first, pairs=pairs,
                         pairs_per_s=pairs / best, effective_pairs_per_s=n * len(mesh.faces) / best,
                         max_abs_err=float(np.abs(d - d_ref).max()),
                         points_off_by_1um=int((np.abs(d - d_ref) > 1e-6).sum())))
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    t0 = time.perf_counter()
    _ = tm.triangles_tree  # rtree build
    tree_build = time.perf_counter() - t0
    p64 = pts.astype(np.float64)
    for label, signed, fun in [("trimesh signed_distance (rtree + rays)", True,
                                lambda: -trimesh.proximity.signed_distance(tm, p64)),
                               ("trimesh closest_point (rtree, unsigned)", False,
                                lambda: trimesh.proximity.closest_point(tm, p64)[1])]:
        times = []
        for _ in range(max(1, args.repeats // 2)):
            t0 = time.perf_counter()
            out = fun()
            times.append(time.perf_counter() - t0)
        ref = d_ref if signed else np.abs(d_ref)
        err = np.abs(out - ref)
        rows.append(dict(method=label, seconds=min(times), first_call_seconds=None, pairs=None,
                         pairs_per_s=None, effective_pairs_per_s=n * len(mesh.faces) / min(times),
                         max_abs_err=float(err.max()), points_off_by_1um=int((err > 1e-6).sum())))
    extra = dict(grid_build_seconds=build, grid=stats.__dict__, points_with_complete_list=ok_frac,
                 rtree_build_seconds=tree_build, n_points=n, n_faces=len(mesh.faces),
                 n_faces_padded=f_pad)
    return rows, extra


def _arrays(obj):
    """Real (unpadded) vertices (float64) and faces of an object."""
    v = np.asarray(obj.vertices, np.float64)[np.asarray(obj.vertex_mask)]
    return v, np.asarray(obj.faces)[np.asarray(obj.face_mask)]


def culling_table(args):
    rows = []
    rng = np.random.default_rng(1)
    for major, minor in [(32, 16), (64, 32), (128, 64), (256, 64)]:
        mesh = scan_like_torus(major, minor)
        obj, _ = make_object(mesh.vertices, mesh.faces)
        t0 = time.perf_counter()
        grid, stats = culling.build_grid(obj, resolution=args.resolution,
                                         max_candidates=args.max_candidates)
        build = time.perf_counter() - t0
        for dist, grow, near in [("near surface + box", 0.1, 0.01),
                                 ("far (box +-50 %)", 0.5, 0.05)]:
            pts = sample_points(mesh, args.points, rng, grow=grow, near=near)
            _, ok = culling.lookup(grid, jnp.asarray(pts))
            _, t_brute = best_time(lambda: geometry.signed_distance(  # noqa: B023
                obj, pts, exact=False, chunk_size=args.chunk_size), args.repeats)
            _, t_grid = best_time(lambda: geometry.signed_distance(  # noqa: B023
                obj, pts, grid=grid, exact=False, chunk_size=args.chunk_size), args.repeats)
            gain = t_brute - t_grid
            rows.append(dict(faces=len(mesh.faces), points=dist, brute_s=t_brute, grid_s=t_grid,
                             speedup=t_brute / t_grid, build_s=build,
                             complete_fraction=float(ok.mean()),
                             mean_list=stats.list_length_mean,
                             break_even_queries=(build / gain) if gain > 0 else None))
    return rows


def exact_table(scan_paths, args):
    rows = []
    rng = np.random.default_rng(2)
    for path in scan_paths:
        obj, report = load_object(path)
        tri = np.asarray(obj.corners, np.float64)[np.asarray(obj.face_mask)]
        mesh = trimesh.Trimesh(tri.reshape(-1, 3), np.arange(3 * len(tri)).reshape(-1, 3),
                               process=False)
        m = args.exact_points
        lo, hi = mesh.bounds
        sets = {
            "uniform": rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), (m, 3)),
            "near (1 cm)": sample_points(mesh, 2 * m, rng)[m:],
            "on surface": trimesh.sample.sample_surface(mesh, m, seed=3)[0],
        }
        row = dict(object=os.path.basename(path), repairs=list(report.repairs))
        for name, pts in sets.items():
            pts = pts.astype(np.float32)
            info = geometry.closest_features(obj, pts, exact=False)
            _, t_off = best_time(lambda: geometry.signed_distance(obj, pts, exact=False), 1)  # noqa
            _, t_on = best_time(lambda: geometry.signed_distance(obj, pts, exact=True), 1)  # noqa
            n_amb = int(info.ambiguous.sum())
            d_on = np.asarray(geometry.signed_distance(obj, pts, exact=True)[0])
            d_off = np.asarray(geometry.signed_distance(obj, pts, exact=False)[0])
            row[name] = dict(triggered=n_amb, of=m, seconds_exact_off=t_off,
                             seconds_exact_on=t_on,
                             ms_per_exact_point=(1e3 * (t_on - t_off) / n_amb) if n_amb else None,
                             sign_changed=int((np.sign(d_on) != np.sign(d_off)).sum()))
        rows.append(row)
    return rows


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main():
    default_dir = os.path.join(REPO, "..", "shared", "objects")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects-dir",
                        default=default_dir if os.path.isdir(default_dir) else None)
    parser.add_argument("--object", default="003_cracker_box.stl")
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=None, help="default: automatic")
    parser.add_argument("--max-candidates", type=int, default=256)
    parser.add_argument("--exact-points", type=int, default=300)
    parser.add_argument("--out",
                        default=os.path.join(REPO, "benchmarks", "results", "distance.json"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    if args.objects_dir:
        path = os.path.join(args.objects_dir, args.object)
        obj, report = load_object(path)
        mesh = trimesh.Trimesh(*_arrays(obj), process=False)
        scans = sorted(os.path.join(args.objects_dir, f) for f in os.listdir(args.objects_dir)
                       if f.endswith(".stl"))
        source = path
    else:
        mesh = scan_like_torus(128, 64)
        obj, report = make_object(mesh.vertices, mesh.faces)
        scans, source = [], "generated bumpy torus (16,384 triangles)"
    pts = sample_points(mesh, args.points, rng)
    machine = dict(platform=platform.platform(), processor=platform.processor(),
                   cpus=os.cpu_count(), python=sys.version.split()[0], jax=jax.__version__,
                   device=str(jax.devices()[0]))
    print(f"# {source}: {len(mesh.faces)} triangles; {args.points} float32 points; "
          f"{machine['cpus']} CPUs; jax {jax.__version__}")
    rows, extra = main_table(obj, mesh, pts, args)
    print(f"grid {extra['grid']['dims']} built in {extra['grid_build_seconds']:.2f} s, mean list "
          f"{extra['grid']['list_length_mean']:.0f}, points with a complete list "
          f"{100 * extra['points_with_complete_list']:.0f} %; rtree built in "
          f"{extra['rtree_build_seconds']:.2f} s")
    print(f"{'method':42s} {'time s':>8s} {'pairs':>10s} {'pairs/s':>9s} {'N*F/s':>9s} "
          f"{'max|err| m':>10s} {'err>1um':>7s}")
    for r in rows:
        print(f"{r['method']:42s} {r['seconds']:8.3f} {fmt(r['pairs'], '10.3g')} "
              f"{fmt(r['pairs_per_s'], '9.3g')} {r['effective_pairs_per_s']:9.3g} "
              f"{r['max_abs_err']:10.2g} {r['points_off_by_1um']:7d}")
    print("\n# when culling pays (float32, exact off)")
    crow = culling_table(args)
    print(f"{'faces':>6s} {'points':20s} {'brute s':>8s} {'grid s':>8s} {'speedup':>7s} "
          f"{'build s':>7s} {'complete':>8s} {'break-even queries':>18s}")
    for r in crow:
        print(f"{r['faces']:6d} {r['points']:20s} {r['brute_s']:8.3f} {r['grid_s']:8.3f} "
              f"{r['speedup']:7.2f} {r['build_s']:7.2f} {100 * r['complete_fraction']:7.0f}% "
              f"{fmt(r['break_even_queries'], '18.1f')}")
    erow = exact_table(scans, args) if scans else []
    if erow:
        print(f"\n# exact path on the scans ({args.exact_points} float32 points per set)")
        print(f"{'object':26s} {'set':12s} {'triggered':>9s} {'off s':>7s} {'on s':>7s} "
              f"{'ms/point':>8s} {'signs fixed':>11s}")
        for r in erow:
            for name in ("uniform", "near (1 cm)", "on surface"):
                e = r[name]
                print(f"{r['object']:26s} {name:12s} {e['triggered']:9d} "
                      f"{e['seconds_exact_off']:7.3f} {e['seconds_exact_on']:7.3f} "
                      f"{fmt(e['ms_per_exact_point'], '8.2f')} {e['sign_changed']:11d}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(dict(source=source, machine=machine, args=vars(args), main=rows, **extra,
                       culling=crow, exact=erow), fh, indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
