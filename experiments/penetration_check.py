"""Why MuJoCo's initial penetration differs from the planner's: one row per hand-object contact.

    python experiments/penetration_check.py GRASP_JSON_OR_FOLDER... [--min-mm 0.2]

For each grasp (jaxgrasp.grasp/1 or /2 files, e.g. experiments/results/a/grasps) the scene of
jaxgrasp.simulate is built at the grasp and every hand-object contact MuJoCo reports deeper than
``--min-mm`` is compared with the depth of the same hand geom, measured on 8,000 surface samples
plus the vertices of a fine tessellation of it (64-segment capsules, level-5 icospheres, exact
boxes), in: the original mesh (the true penetration), the convex piece MuJoCo collided with, and
the original mesh for the geom as the planner's annotation tessellates it (jaxgrasp.annotate:
8-segment capsules). Also: how far the convex pieces stand out of the original mesh. Depths in mm,
positive inside (trimesh signed distance). Uses the CoACD cache of jaxgrasp.simulate (a scan that is
not cached yet is decomposed, about a minute per scan on 2 cores).
"""

from __future__ import annotations

import argparse
import sys

import mujoco
import numpy as np
import trimesh
from trimesh.proximity import signed_distance


def fine_geom(model: mujoco.MjModel, data: mujoco.MjData, g: int) -> trimesh.Trimesh | None:
    """Geom ``g`` finely tessellated, posed in the world (None for types not handled)."""
    G, t, sz = mujoco.mjtGeom, model.geom_type[g], model.geom_size[g]
    if t == G.mjGEOM_BOX:
        m = trimesh.creation.box(extents=2 * sz)
    elif t == G.mjGEOM_CAPSULE:
        m = trimesh.creation.capsule(height=2 * sz[1], radius=sz[0], count=[64, 64])
    elif t == G.mjGEOM_SPHERE:
        m = trimesh.creation.icosphere(subdivisions=5, radius=sz[0])
    elif t == G.mjGEOM_CYLINDER:
        m = trimesh.creation.cylinder(radius=sz[0], height=2 * sz[1], sections=128)
    else:
        return None
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = data.geom_xmat[g].reshape(3, 3), data.geom_xpos[g]
    return m.apply_transform(T)


def depth_mm(geom: trimesh.Trimesh, target: trimesh.Trimesh) -> float:
    """Deepest point of ``geom``'s surface inside ``target`` [mm] (negative: gap)."""
    pts = np.vstack([geom.vertices, trimesh.sample.sample_surface_even(geom, 8000, seed=0)[0]])
    return 1e3 * float(signed_distance(target, pts).max())


def check(path: str, hand, min_mm: float) -> None:
    from jaxgrasp.hand.annotate import geom_mesh
    from jaxgrasp.sim.grasp_files import object_mesh_of, read_grasps
    from jaxgrasp.sim.protocol import SimConfig
    from jaxgrasp.sim.scene import build_scene, convex_pieces, ctrl_for

    for g in read_grasps(path):
        mesh = object_mesh_of(g)
        cfg = SimConfig()
        pieces = convex_pieces(mesh, threshold=cfg.coacd_threshold, max_pieces=cfg.max_pieces)
        com = np.asarray(g["object"].get("center_of_mass", mesh.center_mass), np.float64)
        scene = build_scene(hand, pieces, np.asarray(g["palm_pose"]["matrix"]), com, cfg)
        m, d = scene.model, mujoco.MjData(scene.model)
        q = np.array([g["joint_angles"][n] for n in hand.joint_names])
        d.qpos[scene.hand_qadr] = q
        d.qpos[scene.object_qadr:scene.object_qadr + 7] = [*m.body_pos[scene.object_body], 1, 0, 0, 0]
        d.ctrl[:] = ctrl_for(scene, q)
        mujoco.mj_forward(m, d)
        met = g["metrics"]
        print(f"== {path}: {len(pieces)} piece(s); planner penetration {met['penetration_mm']:.3f} mm "
              f"(hand in object {met.get('hand_in_object_mm', float('nan')):.3f}, object in hand "
              f"{met.get('object_in_hand_mm', float('nan')):.3f})")
        obj = {int(i): k for k, i in enumerate(scene.object_geoms)}
        print(f"  {'link':<14}{'geom':<9}{'MuJoCo':>8}{'true':>8}{'piece':>8}{'planner geom':>14}")
        for c in d.contact[: d.ncon]:
            g1, g2 = int(c.geom1), int(c.geom2)
            if (g1 in obj) == (g2 in obj) or -c.dist * 1e3 < min_mm:
                continue
            h, o = (g2, g1) if g1 in obj else (g1, g2)
            fine = fine_geom(m, d, h)
            if fine is None:
                continue
            coarse = geom_mesh(m, h)  # the annotation's tessellation, in the body frame
            b = m.geom_bodyid[h]
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = d.xmat[b].reshape(3, 3), d.xpos[b]
            coarse.apply_transform(T)
            piece = trimesh.Trimesh(*pieces[obj[o]])
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b)
            print(f"  {name:<14}{mujoco.mjtGeom(m.geom_type[h]).name[7:].lower():<9}{-c.dist * 1e3:>8.3f}"
                  f"{depth_mm(fine, mesh):>8.3f}{depth_mm(fine, piece):>8.3f}{depth_mm(coarse, mesh):>14.3f}")
        if len(pieces) > 1:
            pts = np.vstack([trimesh.sample.sample_surface_even(trimesh.Trimesh(v, f), 3000, seed=0)[0]
                             for v, f in pieces])
            out = -1e3 * signed_distance(mesh, pts)
            print(f"  pieces outside the mesh: max {out.max():.2f} mm, 95th percentile {np.percentile(out, 95):.2f} mm")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--min-mm", type=float, default=0.2, help="report MuJoCo contacts deeper than this")
    ap.add_argument("--hand", default="shadow")
    args = ap.parse_args(argv)
    from jaxgrasp.hand.model import load_hand
    from jaxgrasp.sim.grasp_files import collect_grasp_files

    hand = load_hand(args.hand)
    for f in collect_grasp_files(args.paths):
        check(str(f), hand, args.min_mm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
