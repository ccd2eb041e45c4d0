"""Grasp annotations of a hand, derived from its MJCF/URDF collision geometry (host side).

For every hand the losses need:

* **contact candidates**: points on the finger pads and the palm with outward normals (the
  paper's 45 potential grasp points on the Shadow Hand). Taken, in this order of preference,
  from an override file ``<hand>.contacts.json``, from ``<site name="contact_...">`` elements in
  the file (the site's z-axis is the outward normal), or derived automatically: each link's
  *closing direction* is the velocity its joint gives it when the finger closes (towards the
  larger side of the joint's range); pad candidates are surface points whose normal faces that
  direction, spread by farthest-point sampling (3 on the distal link, 2 on the middle, 2 on the
  proximal, 10 on the palm, configurable in the override file);
* **surface samples**: a dense, Poisson-disk-like sample of the collision surface (farthest-point
  sampling of a 10x denser uniform sample, so the spacing is nearly uniform and the count exact);
* **link hulls**: each link's convex hull in H-representation ``n . x + offset <= 0`` (for the
  self-collision loss and for object points inside the hand), padded to a common size;
* **collision exclusions**: link pairs never tested for self-collision (a link with itself, parent
  and child, MJCF ``<exclude>`` pairs, and pairs whose hulls already overlap at the rest pose).

Results are cached in ``<hand file stem>.annotations.<key>.npz`` in the user's cache
(``~/.cache/jaxgrasp/annotations``, see :func:`cache_dir`; never beside the user's hand file); a
cache file beside the hand file is read first (the bundled hands ship theirs). The key hashes the
compiled geometry, the options and any override file, so a change to the hand rebuilds it.

Command line (documented in the README)::

    python -m jaxgrasp.annotate robots/shadow/shadow.xml [--samples 15555] [--contacts FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from pathlib import Path

import mujoco
import numpy as np
import trimesh
from scipy.spatial import ConvexHull, QhullError

from jaxgrasp.core.compile_cache import cache_root
from jaxgrasp.core.lie import quat_to_matrix_np
from jaxgrasp.hand.mjcf import (
    HandLoadError,
    compile_model,
    has_joint_above,
    read_tree,
    resolve_hand_path,
)

log = logging.getLogger("jaxgrasp")

ANNOTATION_VERSION = 3
DEFAULT_COUNTS = {"distal": 3, "middle": 2, "proximal": 2, "palm": 10}
_PAD_COS = np.cos(np.deg2rad(40.0))  # a pad point's normal is within 40 deg of closing
_PALM_COS = np.cos(np.deg2rad(30.0))


# ----------------------------------------------------------------------------------------------
# Geometry of the links
# ----------------------------------------------------------------------------------------------


def geom_mesh(model: mujoco.MjModel, g: int) -> trimesh.Trimesh | None:
    """A MuJoCo geom as a triangle mesh in its body's frame (``None`` for planes/height fields).

    Primitives are tessellated coarsely (80-face spheres, 8-segment capsules and 16-sided
    cylinders: within ~5% of the radius) so each link hull stays under ~100 half-spaces; the
    samples, contacts and hulls all come from these same meshes, so they agree exactly.
    """
    G = mujoco.mjtGeom
    t, size = int(model.geom_type[g]), model.geom_size[g]
    if t == int(G.mjGEOM_SPHERE):
        m = trimesh.creation.icosphere(subdivisions=1, radius=size[0])
    elif t == int(G.mjGEOM_CAPSULE):
        m = trimesh.creation.capsule(height=2 * size[1], radius=size[0], count=[8, 8])
    elif t == int(G.mjGEOM_CYLINDER):
        m = trimesh.creation.cylinder(radius=size[0], height=2 * size[1], sections=16)
    elif t == int(G.mjGEOM_ELLIPSOID):
        m = trimesh.creation.icosphere(subdivisions=1, radius=1.0)
        m.apply_scale(size[:3])
    elif t == int(G.mjGEOM_BOX):
        m = trimesh.creation.box(extents=2 * size[:3])
    elif t == int(G.mjGEOM_MESH):
        mid = model.geom_dataid[g]
        va, vn = model.mesh_vertadr[mid], model.mesh_vertnum[mid]
        fa, fn = model.mesh_faceadr[mid], model.mesh_facenum[mid]
        m = trimesh.Trimesh(model.mesh_vert[va:va + vn].astype(np.float64),
                            model.mesh_face[fa:fa + fn].astype(np.int64), process=False)
    else:
        return None
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix_np(model.geom_quat[g])
    T[:3, 3] = model.geom_pos[g]
    m.apply_transform(T)
    return m


def _collision_geoms(model: mujoco.MjModel) -> np.ndarray:
    coll = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
    return coll if coll.any() else np.ones(model.ngeom, dtype=bool)


def link_meshes(model: mujoco.MjModel, tree) -> list[trimesh.Trimesh | None]:
    """Collision geometry of each hand body in its own frame (``None`` for bodies without)."""
    coll = _collision_geoms(model)
    out: list[trimesh.Trimesh | None] = []
    for b in tree.body_ids:
        parts = [geom_mesh(model, g) for g in range(model.ngeom) if model.geom_bodyid[g] == b and coll[g]]
        parts = [p for p in parts if p is not None and len(p.faces)]
        out.append(trimesh.util.concatenate(parts) if parts else None)
    return out


def _rest_poses(model: mujoco.MjModel, tree) -> tuple[np.ndarray, np.ndarray]:
    """Body rotations (B,3,3) and positions (B,3) in the hand frame at qpos0 (MuJoCo)."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    T_root_world = np.linalg.inv(tree.T_world_root)
    R = np.stack([T_root_world[:3, :3] @ data.xmat[b].reshape(3, 3) for b in tree.body_ids])
    t = np.stack([T_root_world[:3, :3] @ data.xpos[b] + T_root_world[:3, 3] for b in tree.body_ids])
    return R, t


def farthest_point_sample(points: np.ndarray, k: int, start: int = 0) -> np.ndarray:
    """Indices of ``k`` points spread by greedy farthest-point sampling (deterministic)."""
    n = len(points)
    if k >= n:
        return np.arange(n)
    idx = np.empty(k, dtype=np.int64)
    idx[0] = start
    d = np.sum((points - points[start]) ** 2, axis=1)
    for i in range(1, k):
        idx[i] = int(np.argmax(d))
        d = np.minimum(d, np.sum((points - points[idx[i]]) ** 2, axis=1))
    return idx


def _surface(mesh: trimesh.Trimesh, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    pts, face = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return pts, mesh.face_normals[face]


# ----------------------------------------------------------------------------------------------
# Contact candidates
# ----------------------------------------------------------------------------------------------


def _site_contacts(model: mujoco.MjModel, tree) -> list[tuple[int, np.ndarray, np.ndarray]]:
    index = {b: i for i, b in enumerate(tree.body_ids)}
    out = []
    for s in range(model.nsite):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SITE, s) or ""
        b = int(model.site_bodyid[s])
        if name.startswith("contact") and b in index:
            normal = quat_to_matrix_np(model.site_quat[s])[:, 2]
            out.append((index[b], model.site_pos[s].copy(), normal))
    return out


def _closing_directions(model, tree, R_rest, t_rest):
    """Per body: a function x -> unit closing velocity at hand-frame point x (or None)."""
    B = len(tree.body_ids)
    funcs: list = [None] * B
    for b in range(B):
        # The nearest ancestor-or-self body with joints; among its joints the widest range.
        a = b
        while a >= 0 and not tree.body_joints[a]:
            a = tree.body_parent[a]
        if a <= 0 and (a < 0 or not tree.body_joints[0]):
            continue
        j = max(tree.body_joints[a], key=lambda k: tree.joint_upper[k] - tree.joint_lower[k])
        lo, hi = tree.joint_lower[j], tree.joint_upper[j]
        sign = 1.0 if abs(hi - tree.joint_ref[j]) >= abs(lo - tree.joint_ref[j]) else -1.0
        axis = R_rest[a] @ tree.joint_axis[j]
        anchor = R_rest[a] @ tree.joint_anchor[j] + t_rest[a]
        if tree.joint_types[j] == "hinge":
            funcs[b] = (lambda x, axis=axis, anchor=anchor, s=sign: s * np.cross(axis, x - anchor))
        else:
            funcs[b] = (lambda x, axis=axis, s=sign: np.broadcast_to(s * axis, x.shape))
    return funcs


def _chains(tree, meshes) -> list[list[int]]:
    """Finger chains: for every leaf body, the bodies with geometry from the root's child down."""
    children = {i: [] for i in range(len(tree.body_ids))}
    for i, p in enumerate(tree.body_parent):
        if p >= 0:
            children[p].append(i)
    chains = []
    for leaf in (i for i in children if not children[i] and i != 0):
        chain, b = [], leaf
        while b > 0:
            if meshes[b] is not None:
                chain.append(b)
            b = tree.body_parent[b]
        # Bodies rigidly attached to the root (no joint between) belong to the palm.
        chain = [c for c in chain if has_joint_above(tree, c)]
        if chain:
            chains.append(chain[::-1])
    return chains


def _auto_contacts(model, tree, meshes, R_rest, t_rest, counts, palm_normal_override):
    funcs = _closing_directions(model, tree, R_rest, t_rest)
    chains = _chains(tree, meshes)
    if not chains:
        raise ValueError("cannot derive contact candidates: no finger link with collision geometry")
    out: list[tuple[int, np.ndarray, np.ndarray]] = []
    closing_at_base = []
    for chain in chains:
        roles = ["distal", "middle", "proximal"][: len(chain)]
        for role, b in zip(roles, chain[::-1]):
            if funcs[b] is None:
                continue
            pts_b, nrm_b = _surface(meshes[b], 3000, seed=b)
            pts = pts_b @ R_rest[b].T + t_rest[b]
            nrm = nrm_b @ R_rest[b].T
            # One closing direction per link, taken at its centroid: per-point velocities near
            # the joint axis point along the link and would make its end faces look like pads.
            v = funcs[b](meshes[b].centroid[None] @ R_rest[b].T + t_rest[b])[0]
            if np.linalg.norm(v) < 1e-9:
                continue
            score = nrm @ (v / np.linalg.norm(v))
            cand = np.nonzero(score > _PAD_COS)[0]
            if len(cand) < counts[role]:
                cand = np.argsort(-score)[: max(counts[role] * 20, 20)]
            # Start from the most pad-like point so the sample is centred on the pad.
            sel = cand[farthest_point_sample(pts[cand], counts[role], start=int(np.argmax(score[cand])))]
            out += [(b, pts_b[i], nrm_b[i]) for i in sel]
            if role == roles[-1]:
                c = meshes[b].centroid @ R_rest[b].T + t_rest[b]
                v0 = funcs[b](c[None])[0]
                if np.linalg.norm(v0) > 1e-9:
                    closing_at_base.append(v0 / np.linalg.norm(v0))
    palm_normal = np.asarray(palm_normal_override, float) if palm_normal_override is not None else (
        np.mean(closing_at_base, axis=0) if closing_at_base else np.array([0.0, 0.0, 1.0]))
    palm_normal = palm_normal / np.linalg.norm(palm_normal)
    palm_bodies = [b for b in range(len(tree.body_ids)) if meshes[b] is not None and not has_joint_above(tree, b)]
    for b in palm_bodies:
        pts_b, nrm_b = _surface(meshes[b], 4000, seed=1000 + b)
        pts, nrm = pts_b @ R_rest[b].T + t_rest[b], nrm_b @ R_rest[b].T
        score = nrm @ palm_normal
        cand = np.nonzero(score > _PALM_COS)[0]
        if len(cand) == 0:
            continue
        k = max(1, round(counts["palm"] / len(palm_bodies)))
        sel = cand[farthest_point_sample(pts[cand], k, start=int(np.argmin(np.linalg.norm(pts[cand] - pts[cand].mean(0), axis=1))))]
        out += [(b, pts_b[i], nrm_b[i]) for i in sel]
    return out, palm_normal


def _load_override(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"contact override file {path}: cannot read it as JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"contact override file {path}: expected a JSON object")
    unknown = set(data) - {"contacts", "counts", "palm_normal"}
    if unknown:
        raise ValueError(f"contact override file {path}: unknown keys {sorted(unknown)} (allowed: contacts, counts, palm_normal)")
    return data


# ----------------------------------------------------------------------------------------------
# Hulls and exclusions
# ----------------------------------------------------------------------------------------------


def _hull_planes(mesh: trimesh.Trimesh | None) -> np.ndarray:
    """Unique facet planes ``(H, 4)`` = (unit normal, offset) of the mesh's convex hull."""
    if mesh is None:
        return np.zeros((0, 4))
    try:
        eq = ConvexHull(np.asarray(mesh.vertices)).equations
    except QhullError:
        return np.zeros((0, 4))
    # Qhull triangulates coplanar facets: keep one plane per distinct (normal, offset).
    _, keep = np.unique(np.round(eq, 6), axis=0, return_index=True)
    return eq[np.sort(keep)]


def _exclusions(model, tree, meshes, planes, R_rest, t_rest) -> np.ndarray:
    B = len(tree.body_ids)
    ex = np.eye(B, dtype=bool)
    for b, p in enumerate(tree.body_parent):
        if p >= 0:
            ex[b, p] = ex[p, b] = True
    index = {bid: i for i, bid in enumerate(tree.body_ids)}
    for sig in getattr(model, "exclude_signature", np.zeros(0, dtype=np.int64)):
        b1, b2 = int(sig) >> 16, int(sig) & 0xFFFF
        if b1 in index and b2 in index:
            ex[index[b1], index[b2]] = ex[index[b2], index[b1]] = True
    # Pairs that already overlap by more than 0.5 mm at the rest pose are in contact by design.
    for i in range(B):
        if meshes[i] is None:
            continue
        pts_i = np.asarray(meshes[i].vertices) @ R_rest[i].T + t_rest[i]
        for j in range(B):
            if ex[i, j] or len(planes[j]) == 0:
                continue
            local = (pts_i - t_rest[j]) @ R_rest[j]
            depth = -np.max(local @ planes[j][:, :3].T + planes[j][:, 3], axis=1)
            if np.any(depth > 5e-4):
                ex[i, j] = ex[j, i] = True
    return ex


# ----------------------------------------------------------------------------------------------
# Assembly and cache
# ----------------------------------------------------------------------------------------------


def _cache_key(model: mujoco.MjModel, tree, num_samples: int, override: dict) -> str:
    h = hashlib.sha256()
    h.update(str(ANNOTATION_VERSION).encode())
    for arr in (model.body_pos, model.body_quat, model.geom_type, model.geom_size, model.geom_pos,
                model.geom_quat, model.geom_bodyid, model.geom_contype, model.geom_conaffinity,
                model.mesh_vert, model.mesh_face, model.site_pos, model.site_quat, model.jnt_axis,
                model.jnt_pos, model.jnt_range, model.qpos0):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(json.dumps([tree.body_names, tree.joint_names, num_samples, override], sort_keys=True).encode())
    return h.hexdigest()[:16]


def compute_annotations(model, tree, *, num_samples: int = 2048, override: dict | None = None) -> dict:
    """Compute all annotations (see the module docstring) as a dict of NumPy arrays."""
    override = override or {}
    counts = {**DEFAULT_COUNTS, **override.get("counts", {})}
    meshes = link_meshes(model, tree)
    if all(m is None for m in meshes):
        raise ValueError("the hand has no collision geometry: add geoms to its bodies")
    R_rest, t_rest = _rest_poses(model, tree)
    names = {n: i for i, n in enumerate(tree.body_names)}

    if "contacts" in override:
        contacts = []
        for c in override["contacts"]:
            if c.get("body") not in names:
                raise ValueError(f"contact override: unknown body {c.get('body')!r} (bodies: {list(names)})")
            contacts.append((names[c["body"]], np.asarray(c["pos"], float), np.asarray(c["normal"], float)))
        palm_normal = override.get("palm_normal")
    else:
        contacts = _site_contacts(model, tree)
        palm_normal = override.get("palm_normal")
        if not contacts:
            contacts, palm_normal = _auto_contacts(model, tree, meshes, R_rest, t_rest, counts, palm_normal)
    if not contacts:
        raise ValueError("no contact candidates: add contact_* sites or a contacts override file")
    cb = np.array([c[0] for c in contacts], dtype=np.int32)
    cp = np.array([c[1] for c in contacts], dtype=np.float64)
    cn = np.array([c[2] for c in contacts], dtype=np.float64)
    cn /= np.linalg.norm(cn, axis=1, keepdims=True)
    if palm_normal is None:
        on_palm = [i for i, b in enumerate(cb) if not has_joint_above(tree, int(b))]
        src = on_palm if on_palm else range(len(cb))
        palm_normal = np.mean([R_rest[cb[i]] @ cn[i] for i in src], axis=0)
    palm_normal = np.asarray(palm_normal, float) / np.linalg.norm(palm_normal)

    # Dense surface sample: farthest-point subsample of a 10x denser uniform sample.
    bodies = [b for b, m in enumerate(meshes) if m is not None]
    union = trimesh.util.concatenate([meshes[b].copy().apply_transform(_T(R_rest[b], t_rest[b])) for b in bodies])
    face_body = np.concatenate([np.full(len(meshes[b].faces), b) for b in bodies])
    dense, face = trimesh.sample.sample_surface(union, 10 * num_samples, seed=0)
    keep = farthest_point_sample(dense, num_samples)
    sb = face_body[face[keep]].astype(np.int32)
    sp_world, sn_world = dense[keep], union.face_normals[face[keep]]
    sp = np.einsum("nji,nj->ni", R_rest[sb], sp_world - t_rest[sb])
    sn = np.einsum("nji,nj->ni", R_rest[sb], sn_world)

    planes = [_hull_planes(m) for m in meshes]
    H = max(1, max(len(p) for p in planes))
    hn = np.zeros((len(meshes), H, 3))
    ho = np.full((len(meshes), H), -1.0)
    hm = np.zeros((len(meshes), H), dtype=bool)
    for b, p in enumerate(planes):
        hn[b, : len(p)], ho[b, : len(p)], hm[b, : len(p)] = p[:, :3], p[:, 3], True

    tips = [t_rest[c[-1]] for c in _chains(tree, meshes)]
    fdir = np.mean(tips, axis=0) if tips else np.array([0.0, 0.0, 1.0])
    fdir = fdir - (fdir @ palm_normal) * palm_normal
    fdir = fdir / max(np.linalg.norm(fdir), 1e-12)
    return {
        "contact_body": cb, "contact_pos": cp, "contact_normal": cn,
        "sample_body": sb, "sample_pos": sp, "sample_normal": sn,
        "hull_normal": hn, "hull_offset": ho, "hull_mask": hm,
        "collision_exclude": _exclusions(model, tree, meshes, planes, R_rest, t_rest),
        "palm_normal": palm_normal, "finger_direction": fdir,
    }


def _T(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def hand_annotations(model, tree, path: Path, *, num_samples: int = 2048,
                     contacts: str | os.PathLike | None = None, cache: bool = True) -> dict:
    """Annotations of a hand, from the cache when it is up to date.

    Args:
        model: the compiled MuJoCo model.
        tree: its :class:`jaxgrasp.hand.mjcf.TreeSpec`.
        path: the hand file (the default override file sits beside it; a cache file beside it
            is read, never written).
        num_samples: size of the dense surface sample.
        contacts: JSON override file: ``{"contacts": [{"body", "pos", "normal"}, ...]}`` (body
            frame, replaces every other source), and/or ``{"counts": {"distal": 3, "middle": 2,
            "proximal": 2, "palm": 10}, "palm_normal": [x, y, z]}`` to steer the derivation.
        cache: read and write the cache.

    Raises:
        HandLoadError: the override file is unreadable, or the hand has no collision geometry or
            contact candidates (the message says what to add).
    """
    path = Path(path)
    default_override = path.with_name(path.stem + ".contacts.json")
    override_path = Path(contacts) if contacts is not None else (default_override if default_override.is_file() else None)
    try:
        override = _load_override(override_path)
    except ValueError as e:
        raise HandLoadError(str(e)) from e
    key = _cache_key(model, tree, num_samples, override)
    fname = f"{path.stem}.annotations.{key}.npz"
    user = cache_dir()
    # Read: beside the hand file (the bundled hands' committed caches), then the user's cache
    # (and its root, where earlier versions wrote it); write: the user's cache only.
    cands = [path.parent / fname, user / fname, user.parent / fname]
    if cache:
        for c in cands:
            if c.is_file():
                with np.load(c) as f:
                    return {k: f[k] for k in f.files}
    try:
        ann = compute_annotations(model, tree, num_samples=num_samples, override=override)
    except HandLoadError:
        raise
    except ValueError as e:  # what the hand file lacks, said for that file
        raise HandLoadError(f"{path}: {e}") from e
    if cache:
        write_cache(user / fname, ann)
    return ann


def cache_dir() -> Path:
    """Where annotation caches are written: ``annotations/`` in the user's jaxgrasp cache
    (:func:`jaxgrasp.core.compile_cache.cache_root`, ``~/.cache/jaxgrasp`` by default)."""
    return cache_root() / "annotations"


def write_cache(target: Path, ann: dict) -> Path | None:
    """Writes annotations atomically (concurrent runs never read a partial file); returns the
    file, or None (with a warning) when it cannot be written: the run goes on without a cache."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **ann)
        os.replace(tmp, target)
        return target
    except OSError as e:
        tmp.unlink(missing_ok=True)
        log.warning("hand annotations not cached: cannot write %s (%s)", target, e)
        return None


def main(argv: list[str] | None = None) -> int:
    """The command line (``python -m jaxgrasp.annotate``, which turns errors into one line)."""
    ap = argparse.ArgumentParser(prog="python -m jaxgrasp.annotate", description=__doc__.split("\n\n")[0])
    ap.add_argument("hand", help="bundled hand name or MJCF/URDF file")
    ap.add_argument("--samples", type=int, default=2048, help="dense surface samples (paper: 15555)")
    ap.add_argument("--contacts", default=None, help="contact override JSON file")
    ap.add_argument("--root", default=None, help="root body name when the file has several")
    args = ap.parse_args(argv)
    path = resolve_hand_path(args.hand)
    model = compile_model(path)
    tree = read_tree(model, args.root)
    ann = hand_annotations(model, tree, path, num_samples=args.samples, contacts=args.contacts, cache=True)
    B = len(tree.body_names)
    print(f"{path}: {B} bodies, {len(tree.joint_names)} joints, {len(ann['contact_pos'])} contact candidates, "
          f"{len(ann['sample_pos'])} surface samples, hull planes per link <= {ann['hull_mask'].shape[1]}, "
          f"{int(ann['collision_exclude'].sum() - B) // 2} excluded link pairs; cache: {cache_dir()}")
    return 0


if __name__ == "__main__":
    main()
