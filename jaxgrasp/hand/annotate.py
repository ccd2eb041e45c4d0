"""Grasp annotations of a hand, derived from its MJCF/URDF collision geometry (host side).

For every hand the losses need:

* **contact candidates**: points on the finger pads and the palm with outward normals (the
  paper's 45 potential grasp points on the Shadow Hand). Taken, in this order of preference,
  from an override file ``<hand>.contacts.json``, from ``<site name="contact_...">`` elements in
  the file (the site's z-axis is the outward normal), or derived automatically
  (:mod:`jaxgrasp.hand.derive`: pads face the way each link moves when its finger flexes, palm
  candidates face the palm normal, none on an arm above the palm; 3 on the distal link, 2 on the
  middle, 2 on the proximal, 10 on the palm, configurable in the override file); whatever their
  source, doubtful candidates are *findings*, logged as warnings with what to change;
* **surface samples**: a dense, Poisson-disk-like sample of the collision surface (farthest-point
  sampling of a 10x denser uniform sample, so the spacing is nearly uniform and the count exact);
  an arm above the palm (a forearm, a wrist) gets at most 10% of them, after the hand's;
* **link hulls**: each link's convex hull in H-representation ``n . x + offset <= 0`` (for the
  self-collision loss and for object points inside the hand), padded to a common size; hulls of
  more than 96 planes (detailed meshes) are simplified to at most 96 that contain them
  (:func:`jaxgrasp.hand.derive.simplify_hull`, within 0.2 mm where 96 suffice);
* **collision exclusions**: link pairs never tested for self-collision (a link with itself, parent
  and child, rigidly joined links, MJCF ``<exclude>`` pairs, and pairs whose hulls already overlap
  at the rest pose).

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
from jaxgrasp.hand import derive
from jaxgrasp.hand.derive import DEFAULT_COUNTS, farthest_point_sample
from jaxgrasp.hand.mjcf import (
    HandLoadError,
    compile_model,
    has_joint_above,
    read_tree,
    resolve_hand_path,
)
from jaxgrasp.hand.structure import arm_bodies, rigid_groups

log = logging.getLogger("jaxgrasp")

ANNOTATION_VERSION = 3
_ARM_SHARE = 0.1  # at most this fraction of the surface samples lies on an arm above the palm


# ----------------------------------------------------------------------------------------------
# Geometry of the links
# ----------------------------------------------------------------------------------------------


def geom_mesh(model: mujoco.MjModel, g: int) -> trimesh.Trimesh | None:
    """A MuJoCo geom as a triangle mesh in its body's frame (``None`` for planes/height fields).

    Primitives are tessellated coarsely (80-face spheres, 8-segment capsules and 16-sided
    cylinders: within ~5% of the radius) so each link hull stays under ~100 half-spaces; a
    non-convex mesh becomes its convex hull, which is what MuJoCo collides. The samples,
    contacts and hulls all come from these same meshes, so they agree exactly.
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
        if not m.is_convex:
            m = m.convex_hull
            m.metadata["hulled"] = True
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
    """Collision geometry of each hand body in its own frame (``None`` for bodies without).

    A body of several geoms gets their concatenation, with each geom's hull planes in
    ``metadata["geom_planes"]`` (derived contact candidates are never points of one geom
    buried in another: :func:`jaxgrasp.hand.derive.on_surface`; the surface samples keep them)."""
    coll = _collision_geoms(model)
    out: list[trimesh.Trimesh | None] = []
    for b in tree.body_ids:
        parts = [geom_mesh(model, g) for g in range(model.ngeom) if model.geom_bodyid[g] == b and coll[g]]
        parts = [p for p in parts if p is not None and len(p.faces)]
        mesh = trimesh.util.concatenate(parts) if parts else None
        if len(parts) > 1:
            mesh.metadata["geom_planes"] = [_hull_planes(p) for p in parts]
        if any(p.metadata.get("hulled") for p in parts):
            mesh.metadata["hulled"] = True
        out.append(mesh)
    return out


def _rest_poses(model: mujoco.MjModel, tree) -> tuple[np.ndarray, np.ndarray]:
    """Body rotations (B,3,3) and positions (B,3) in the hand frame at qpos0 (MuJoCo)."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    T_root_world = np.linalg.inv(tree.T_world_root)
    R = np.stack([T_root_world[:3, :3] @ data.xmat[b].reshape(3, 3) for b in tree.body_ids])
    t = np.stack([T_root_world[:3, :3] @ data.xpos[b] + T_root_world[:3, 3] for b in tree.body_ids])
    return R, t


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
    # Bodies rigidly joined (no moving joint between them, e.g. a forearm and a fixed wrist's
    # palm) never move relative to each other: nothing to check.
    group = np.array(rigid_groups(tree))
    ex |= group[:, None] == group[None, :]
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


def _key_extras(model: mujoco.MjModel, tree, override: dict, meshes: list) -> list:
    """What else a hand's annotations depend on, named only where it applies (so the keys of
    hands it does not concern, such as the bundled ones, stay as they were)."""
    planes = [_hull_planes(m) for m in meshes]
    extras = []
    if any(m is not None and m.metadata.get("hulled") for m in meshes):
        extras.append(["non-convex meshes as their hulls"])
    if "contacts" not in override and not _site_contacts(model, tree):
        extras.append(["derived", derive.DERIVATION_VERSION])
    if tree.palm or tree.fixed_joints:
        extras.append(["arm", tree.palm, list(tree.fixed_joints), _ARM_SHARE])
    if any(len(p) > derive.MAX_HULL_PLANES for p in planes):
        extras.append(["hulls", derive.MAX_HULL_PLANES, derive.HULL_TOLERANCE])
    return extras


def _cache_key(model: mujoco.MjModel, tree, num_samples: int, override: dict, extras: list) -> str:
    h = hashlib.sha256()
    h.update(str(ANNOTATION_VERSION).encode())
    for arr in (model.body_pos, model.body_quat, model.geom_type, model.geom_size, model.geom_pos,
                model.geom_quat, model.geom_bodyid, model.geom_contype, model.geom_conaffinity,
                model.mesh_vert, model.mesh_face, model.site_pos, model.site_quat, model.jnt_axis,
                model.jnt_pos, model.jnt_range, model.qpos0):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(json.dumps([tree.body_names, tree.joint_names, num_samples, override], sort_keys=True).encode())
    if extras:
        h.update(json.dumps(extras).encode())
    return h.hexdigest()[:16]


def _surface_samples(meshes, R_rest, t_rest, bodies: list[int], count: int, seed: int):
    """``count`` samples (body, body-frame point, normal) of the bodies' surface: a farthest-point
    subsample of a 10x denser uniform sample, so the spacing is nearly uniform."""
    union = trimesh.util.concatenate([meshes[b].copy().apply_transform(_T(R_rest[b], t_rest[b])) for b in bodies])
    face_body = np.concatenate([np.full(len(meshes[b].faces), b) for b in bodies])
    dense, face = trimesh.sample.sample_surface(union, 10 * count, seed=seed)
    keep = farthest_point_sample(dense, count)
    sb = face_body[face[keep]].astype(np.int32)
    sp = np.einsum("nji,nj->ni", R_rest[sb], dense[keep] - t_rest[sb])
    sn = np.einsum("nji,nj->ni", R_rest[sb], union.face_normals[face[keep]])
    return sb, sp, sn


def _samples(tree, meshes, R_rest, t_rest, num_samples: int):
    """The dense surface sample: the hand's first, an arm's (a forearm can hold most of the
    area) after it and at most ``_ARM_SHARE`` of them, so the first samples (self-collision)
    spread over the hand."""
    bodies = [b for b, m in enumerate(meshes) if m is not None]
    arm = [b for b in bodies if b in set(arm_bodies(tree))]
    hand = [b for b in bodies if b not in arm]
    if not arm or not hand:
        return _surface_samples(meshes, R_rest, t_rest, bodies, num_samples, seed=0)
    area = {b: meshes[b].area for b in bodies}
    share = sum(area[b] for b in arm) / sum(area.values())
    n_arm = max(1, min(round(share * num_samples), round(_ARM_SHARE * num_samples)))
    a = _surface_samples(meshes, R_rest, t_rest, hand, num_samples - n_arm, seed=0)
    b = _surface_samples(meshes, R_rest, t_rest, arm, n_arm, seed=1)
    return tuple(np.concatenate([x, y]) for x, y in zip(a, b))


def _hulls(meshes, tree, planes: list[np.ndarray]) -> tuple[list[np.ndarray], list[str]]:
    """Hull planes with those of more than ``derive.MAX_HULL_PLANES`` simplified, and findings."""
    out, notes = [], []
    for b, (m, p) in enumerate(zip(meshes, planes)):
        q, err = derive.simplify_hull(np.asarray(m.vertices), p) if m is not None else (p, 0.0)
        if len(q) < len(p):
            log.info("hull of '%s' simplified from %d to %d planes (reaches %.2f mm beyond it)",
                     tree.body_names[b], len(p), len(q), 1e3 * err)
        if err > derive.HULL_WARN:
            notes.append(f"the hull of '{tree.body_names[b]}' has {len(p)} planes; its {len(q)}-plane simplification "
                         f"reaches {1e3 * err:.1f} mm beyond it (collisions with it are over-reported): use simpler "
                         "collision geometry (primitives, or a mesh of fewer faces) for that link")
        out.append(q)
    return out, notes


def compute_annotations(model, tree, *, num_samples: int = 2048, override: dict | None = None,
                        stem: str = "hand") -> dict:
    """Compute all annotations (see the module docstring) as a dict of NumPy arrays.

    ``findings`` (strings) holds what looks wrong (:func:`jaxgrasp.hand.derive.findings`, hulls
    simplified beyond ``derive.HULL_WARN``); ``stem`` names the hand file in their hints.
    """
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
            contacts, palm_normal = derive.auto_contacts(tree, meshes, R_rest, t_rest, counts, palm_normal)
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

    sb, sp, sn = _samples(tree, meshes, R_rest, t_rest, num_samples)
    planes, notes = _hulls(meshes, tree, [_hull_planes(m) for m in meshes])
    H = max(1, max(len(p) for p in planes))
    hn = np.zeros((len(meshes), H, 3))
    ho = np.full((len(meshes), H), -1.0)
    hm = np.zeros((len(meshes), H), dtype=bool)
    for b, p in enumerate(planes):
        hn[b, : len(p)], ho[b, : len(p)], hm[b, : len(p)] = p[:, :3], p[:, 3], True

    tips = [t_rest[c[-1]] for c in derive.chains(tree, meshes)]
    fdir = np.mean(tips, axis=0) - (t_rest[tree.palm] if tree.palm else 0.0) if tips else np.array([0.0, 0.0, 1.0])
    fdir = fdir - (fdir @ palm_normal) * palm_normal
    fdir = fdir / max(np.linalg.norm(fdir), 1e-12)
    notes = derive.findings(model, tree, meshes, R_rest, t_rest, cb, cp, cn, palm_normal, stem) + notes
    return {
        "contact_body": cb, "contact_pos": cp, "contact_normal": cn,
        "sample_body": sb, "sample_pos": sp, "sample_normal": sn,
        "hull_normal": hn, "hull_offset": ho, "hull_mask": hm,
        "collision_exclude": _exclusions(model, tree, meshes, planes, R_rest, t_rest),
        "palm_normal": palm_normal, "finger_direction": fdir,
        "findings": np.array(notes, dtype=str),
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
    extras = _key_extras(model, tree, override, link_meshes(model, tree))
    key = _cache_key(model, tree, num_samples, override, extras)
    fname = f"{path.stem}.annotations.{key}.npz"
    user = cache_dir()
    # Read: beside the hand file (the bundled hands' committed caches), then the user's cache
    # (and its root, where earlier versions wrote it); write: the user's cache only.
    cands = [path.parent / fname, user / fname, user.parent / fname]
    ann = None
    if cache:
        for c in cands:
            if c.is_file():
                with np.load(c) as f:
                    ann = {k: f[k] for k in f.files}
                break
    if ann is None:
        try:
            ann = compute_annotations(model, tree, num_samples=num_samples, override=override, stem=path.stem)
        except HandLoadError:
            raise
        except ValueError as e:  # what the hand file lacks, said for that file
            raise HandLoadError(f"{path}: {e}") from e
        if cache:
            write_cache(user / fname, ann)
    if (path, key) not in _WARNED:  # once per hand and process: the planner loads a named hand per call
        _WARNED.add((path, key))
        for finding in ann.get("findings", ()):
            log.warning("%s: %s", path, finding)
    return ann


_WARNED: set = set()


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
