"""Grasp datasets for learning: objects, ground-truth grasps, depth views, augmentation.

:func:`build_dataset` turns an object set (the bundled procedural set, or a folder of meshes)
into a dataset on disk; :func:`load_split` reads one split back as NumPy arrays. The CLI is
``python -m jaxgrasp.dataset build|info`` (:mod:`jaxgrasp.dataset`).

On-disk format (``schema`` "jaxgrasp.dataset/1"), under the dataset folder:

* ``manifest.json`` (written last: a folder with a manifest is complete)::

    {"schema": "jaxgrasp.dataset/1",
     "hand": bundled hand name or hand file path,
     "num_views": V, "height": H, "width": W,
     "intrinsics": [V][3][3]            pixels, OpenCV (see jaxgrasp.mesh.render),
     "T_object_camera": [V][4][4]       camera poses in the sample's object frame (metres),
                                        the same for every sample,
     "rotations": [8][3][3]             the augmentation rotations, index 0 = identity,
     "objects": [{"name", "mesh": "meshes/<name>.obj" (centred frame, metres),
                  "split": "train" | "test", "num_valid_grasps", "size"}],
     "dropped": [{"name", "reason"}]    objects left out (no valid grasp),
     "shards": [{"file": "shards/<split>-<k>.npz", "split", "count"}],
     "config": {...}                    the DatasetConfig as a dict}

  ``size`` is the planner's ``Object.size`` (radius of the smallest sphere about the centre of
  mass holding every vertex, m).
* ``meshes/<name>.obj``: each object in its *centred frame*: the input mesh translated so its
  centre of mass (uniform density) is at the origin, axes of the input, metres.
* ``shards/<split>-<k>.npz``, ``n`` samples each (``np.savez_compressed``):

  - ``depth`` (n, V, H, W) float32: depth in metres along each camera's optical axis, 0 = no hit;
  - ``object_index`` (n,) int32: index into ``manifest["objects"]``;
  - ``rotation_index`` (n,) int32: index into ``manifest["rotations"]``;
  - ``R_aug`` (n, 3, 3) float32: that rotation;
  - ``grasps`` (n, G, 6 + I) float32: ground-truth configurations ``x = (t, r, z)`` exactly as
    the planner's (palm position t, palm rotation vector r, unconstrained joint variables z;
    see :mod:`jaxgrasp.hand.kinematics`), in the *sample frame*, padded to G with zeros;
  - ``grasp_mask`` (n, G) bool: real grasps.

* ``gt/<name>.npz`` (ground-truth cache, centred frame: ``configs`` (k, 6 + I), ``q1``,
  ``penetration_mm``, ``num_starts``) and ``config.json`` (the build settings): what an
  interrupted build resumes from.

A *sample* is one object under one augmentation rotation ``R = R_aug``: the centred mesh rotated
about its centre of mass (``p' = R p``) and seen by the fixed cameras. Its *sample frame* is the
centred frame rotated by R; a grasp ``(t, r, z)`` of the centred object becomes ``(R t,
log(R exp(r)), z)`` (:func:`rotate_config`): the posed hand moves rigidly with the object.

Augmentation (paper: "rotating each target object and gripper for 8 times along 8 symmetric
axes"): we read the 8 rotations as the rotational symmetry group of a square prism, the dihedral
group D4 (:func:`augmentation_rotations`): the identity, 90/180/270 degrees about z, and 180
degrees about x, y and the two diagonals x = +-y. They form a group (composing two augmentations
gives another), and every one maps the axis-aligned box onto itself.

Ground truth (paper: 100 grasps per object from GraspIt!, valid ones kept;
:mod:`jaxgrasp.learning.ground_truth`): the differentiable planner (the steps of
:func:`jaxgrasp.plan_grasps`, ``plan_starts`` starts, ``plan_steps`` Adam steps, one object at a
time: measured faster than :func:`jaxgrasp.planning.batch.plan_batch` on this CPU), keeping the
valid grasps (force closure, penetration <= 1 mm), best first, at most ``grasps`` of them.
An object with no valid grasp is dropped and logged (in the manifest's ``dropped``); a fixed
seed keeps that reproducible.

Bundled default: 32 procedural objects (:func:`jaxgrasp.mesh.procedural.procedural_set`), 80/20
split, up to 16 valid grasps per object out of 16 starts, 5 views, 8 rotations, images of
128 x 128 (not the paper's 224: on a 2-core CPU a 5-view network trains about 3x faster on
128 x 128 images, and the build renders 3x fewer rays; the renderer's default stays 224, and
``--size 224`` builds the paper's resolution).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import zipfile
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
import trimesh
from tqdm.auto import tqdm

from jaxgrasp.core.configuration import join, split
from jaxgrasp.core.lie import matrix_to_rotvec_np, rotvec_to_matrix_np, so3_exp, so3_log
from jaxgrasp.hand.model import load_hand
from jaxgrasp.learning.atomic import write_json, write_mesh, write_npz
from jaxgrasp.learning.config import DatasetConfig
from jaxgrasp.learning.ground_truth import (
    centred_mesh,
    ground_truth,
    object_sources,
    split_of,
)
from jaxgrasp.mesh.render import default_cameras, render_views

SCHEMA = "jaxgrasp.dataset/1"
log = logging.getLogger("jaxgrasp.dataset")


@dataclasses.dataclass(frozen=True)
class GraspDataset:
    """One split, concatenated over its shards (NumPy arrays; shapes as in the shard files).

    Attributes:
        depth: (n, V, H, W) float32 metres, 0 = no hit.
        object_index: (n,) int32 into ``manifest["objects"]``.
        rotation_index: (n,) int32 into ``manifest["rotations"]``.
        R_aug: (n, 3, 3) float32.
        grasps: (n, G, 6 + I) float32, sample frame.
        grasp_mask: (n, G) bool.
        manifest: the dataset's manifest.
    """

    depth: np.ndarray
    object_index: np.ndarray
    rotation_index: np.ndarray
    R_aug: np.ndarray
    grasps: np.ndarray
    grasp_mask: np.ndarray
    manifest: dict

    def __len__(self) -> int:
        return int(self.depth.shape[0])

    @property
    def intrinsics(self) -> np.ndarray:
        """(V, 3, 3) camera intrinsics."""
        return np.asarray(self.manifest["intrinsics"], np.float32)

    @property
    def T_object_camera(self) -> np.ndarray:
        """(V, 4, 4) camera poses in the sample frame."""
        return np.asarray(self.manifest["T_object_camera"], np.float32)


# ----------------------------------------------------------------------------------------------
# Augmentation and sample frames
# ----------------------------------------------------------------------------------------------


def augmentation_rotations() -> np.ndarray:
    """The 8 augmentation rotations ``(8, 3, 3)``: the dihedral group D4 of a square prism.

    Index 0 is the identity; 1-3 rotate by 90, 180, 270 degrees about z; 4-7 rotate by 180
    degrees about x, y, (1, 1, 0) and (1, -1, 0). All entries are 0 or +-1.
    """
    z = np.array([0.0, 0.0, 1.0])
    rots = [np.eye(3)]
    rots += [rotvec_to_matrix_np(np.radians(a) * z) for a in (90, 180, 270)]
    rots += [rotvec_to_matrix_np(np.pi * np.asarray(ax, np.float64) / np.linalg.norm(ax))
             for ax in ([1, 0, 0], [0, 1, 0], [1, 1, 0], [1, -1, 0])]
    R = np.stack(rots)
    return np.where(np.abs(R) < 0.5, 0.0, np.sign(R))  # exact 0/+-1 entries (signed permutations)


def rotate_config(config: np.ndarray, R: np.ndarray) -> np.ndarray:
    """A hand configuration ``(..., 6 + I)`` after rotating the world by ``R`` (3, 3) about the
    origin: ``t' = R t``, palm rotation ``R exp(r)`` (as a rotation vector with angle in
    [0, pi]), joint variables unchanged. The posed hand moves rigidly: every point ``p`` of it
    goes to ``R p``. Host side (float64); :func:`to_sample_frame` is the traced one."""
    config = np.asarray(config, np.float64)
    R = np.asarray(R, np.float64)
    flat = config.reshape(-1, config.shape[-1]).copy()
    for row in flat:
        t, r, _ = split(row)  # views: assigned in place
        t[:] = R @ t
        r[:] = matrix_to_rotvec_np(R @ rotvec_to_matrix_np(r))
    return flat.reshape(config.shape)


def to_object_frame(x: jnp.ndarray, R: jnp.ndarray) -> jnp.ndarray:
    """A configuration in a sample frame (object rotated by ``R``) -> the centred object frame."""
    t, r, z = split(x)
    return join(R.T @ t, so3_log(R.T @ so3_exp(r)), z)


def to_sample_frame(x: jnp.ndarray, R: jnp.ndarray) -> jnp.ndarray:
    """Inverse of :func:`to_object_frame` (the traced :func:`rotate_config`)."""
    t, r, z = split(x)
    return join(R @ t, so3_log(R @ so3_exp(r)), z)


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------



def read_mesh(path: str) -> trimesh.Trimesh:
    """A dataset mesh file, vertices and faces exactly as stored (no merging or reordering)."""
    return trimesh.load(path, force="mesh", process=False, maintain_order=True)


def load_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a finished dataset; raises a clear error for an unfinished one."""
    path = os.path.join(root, "manifest.json")
    if not os.path.exists(path):
        hint = " (the build did not finish: run the build again to resume)" if os.path.exists(
            os.path.join(root, "config.json")) else ""
        raise FileNotFoundError(f"no dataset manifest at {path}{hint}")
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    return manifest


def load_split(root: str | os.PathLike, split: str) -> GraspDataset:
    """All samples of one split (``"train"`` or ``"test"``), concatenated over its shards."""
    manifest = load_manifest(root)
    files = [s["file"] for s in manifest["shards"] if s["split"] == split]
    if not files:
        raise ValueError(f"{root}: no shards of split {split!r}")
    keys = ("depth", "object_index", "rotation_index", "R_aug", "grasps", "grasp_mask")
    parts = {k: [] for k in keys}
    for f in files:
        with np.load(os.path.join(root, f)) as z:
            for k in keys:
                parts[k].append(z[k])
    return GraspDataset(**{k: np.concatenate(v) for k, v in parts.items()}, manifest=manifest)


def load_object_meshes(root: str | os.PathLike) -> dict[str, trimesh.Trimesh]:
    """Every object's mesh (centred frame, metres), by name."""
    manifest = load_manifest(root)
    return {o["name"]: read_mesh(os.path.join(root, o["mesh"])) for o in manifest["objects"]}


# ----------------------------------------------------------------------------------------------
# Build
# ----------------------------------------------------------------------------------------------


def _face_bucket(n: int) -> int:
    """Padded face count for rendering: the next multiple of 256 (few compilations, and at
    most 255 wasted faces; rendering time is proportional to the padded count)."""
    return 256 * max(1, -(-n // 256))


def render_sample(mesh: trimesh.Trimesh, R: np.ndarray, cameras) -> np.ndarray:
    """Depth views ``(V, H, W)`` float32 of a centred mesh rotated by ``R`` about the origin."""
    v = np.asarray(mesh.vertices, np.float64) @ np.asarray(R, np.float64).T
    f = np.asarray(mesh.faces, np.int32)
    nf = _face_bucket(len(f))
    faces = np.zeros((nf, 3), np.int32)
    faces[: len(f)] = f
    mask = np.arange(nf) < len(f)
    return np.asarray(render_views(jnp.asarray(v, jnp.float32), jnp.asarray(faces), jnp.asarray(mask), cameras))


def build_dataset(config: DatasetConfig, out_dir: str | os.PathLike, progress: bool = True,
                  callback: Callable[[str, int], None] | None = None) -> dict:
    """Build (or resume building) a dataset; returns its manifest.

    Steps: load and centre every object (``meshes/``); plan its ground truth (``gt/<name>.npz``,
    skipped when present and readable); split; render and write the shards (skipped when
    present and whole); write ``manifest.json`` last. Every file is written under a temporary
    name and renamed, so an interrupted build (Ctrl-C, a crash, a kill) resumes where it
    stopped. A folder built with other settings is refused (``config.json`` differs).

    Args:
        config: the build settings.
        out_dir: the dataset folder.
        progress: show tqdm progress bars.
        callback: called as ``callback(stage, i)`` after object ``i``'s ground truth
            (``"gt"``) and after shard ``i`` (``"shard"``) is written.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    cfg_dict = dataclasses.asdict(config)
    cfg_path = os.path.join(out_dir, "config.json")
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            old = json.load(f)
        if old != cfg_dict:
            diff = sorted(k for k in set(old) | set(cfg_dict) if old.get(k) != cfg_dict.get(k))
            raise ValueError(f"{out_dir} was built with other settings ({', '.join(diff)} differ); "
                             "use another --out folder or delete it")
    else:
        write_json(cfg_path, cfg_dict)

    hand = load_hand(config.hand)
    t_start = time.perf_counter()
    stats = {"plan_s": 0.0, "render_s": 0.0, "samples_rendered": 0}
    meshes: dict[str, trimesh.Trimesh] = {}
    sizes: dict[str, float] = {}
    gts: dict[str, dict] = {}
    dropped: list[dict] = []
    sources = object_sources(config)
    bar = tqdm(sources, desc="ground truth", unit="obj", disable=not progress)
    for i, (name, src) in enumerate(bar):
        bar.set_postfix_str(name)
        try:
            mesh, size = centred_mesh(src, config.units)
        except (ValueError, OSError) as e:
            log.warning("dropping %s: cannot load (%s)", name, e)
            dropped.append({"name": name, "reason": f"load error: {e}"})
            continue
        mesh_path = os.path.join(out_dir, "meshes", f"{name}.obj")
        if not os.path.exists(mesh_path):
            write_mesh(mesh_path, mesh)
        # Plan and render the mesh exactly as stored (the OBJ keeps 10 decimals).
        mesh = read_mesh(mesh_path)
        gt_path = os.path.join(out_dir, "gt", f"{name}.npz")
        gt = _read_npz(gt_path)
        if gt is None:
            t0 = time.perf_counter()
            gt = ground_truth(mesh, hand, config)
            stats["plan_s"] += time.perf_counter() - t0
            write_npz(gt_path, **gt)
        if len(gt["configs"]) == 0:
            log.warning("dropping %s: no valid grasp out of %d starts", name, int(gt["num_starts"]))
            dropped.append({"name": name, "reason": f"no valid grasp out of {int(gt['num_starts'])} starts"})
        else:
            meshes[name], sizes[name], gts[name] = mesh, size, gt
        if callback is not None:
            callback("gt", i)
    if not gts:
        raise RuntimeError("no object has a valid grasp: nothing to build")

    names = list(gts)
    split = split_of([n for n, _ in sources], config.test_fraction, config.seed)
    objects = [{"name": n, "mesh": f"meshes/{n}.obj", "split": split[n], "num_valid_grasps": len(gts[n]["configs"]),
                "size": sizes[n]} for n in names]
    num_i = gts[names[0]]["configs"].shape[1]
    if num_i != 6 + hand.num_independent:
        raise ValueError(f"cached ground truth has {num_i} variables, the hand {6 + hand.num_independent}")
    rotations = augmentation_rotations()[: config.num_rotations]
    distance = config.camera_distance
    if distance is None:
        # Every vertex lies within `size` of the origin; a sphere of that radius fits in the
        # view cone when distance >= size / sin(fov / 2). 15% margin.
        distance = 1.15 * max(sizes.values()) / np.sin(0.5 * np.radians(config.fov))
    cameras = default_cameras(config.views, config.size, distance=float(distance), fov=config.fov)

    shards = []
    jobs = []
    for sp in ("train", "test"):
        samples = [(oi, ri) for oi, o in enumerate(objects) if o["split"] == sp for ri in range(len(rotations))]
        for k in range(0, len(samples), config.shard_size):
            jobs.append((sp, k // config.shard_size, samples[k: k + config.shard_size]))
    total = sum(len(j[2]) for j in jobs)
    bar = tqdm(total=total, desc="render", unit="sample", disable=not progress)
    for j, (sp, k, samples) in enumerate(jobs):
        rel = f"shards/{sp}-{k:03d}.npz"
        path = os.path.join(out_dir, rel)
        if not _shard_ok(path, samples):
            n, G = len(samples), config.grasps
            depth = np.zeros((n, config.views, config.size, config.size), np.float32)
            grasps = np.zeros((n, G, num_i), np.float32)
            mask = np.zeros((n, G), bool)
            for s, (oi, ri) in enumerate(samples):
                name, R = names[oi], rotations[ri]
                t0 = time.perf_counter()
                depth[s] = render_sample(meshes[name], R, cameras)
                if np.any(depth[s][:, [0, -1], :] > 0) or np.any(depth[s][:, :, [0, -1]] > 0):
                    log.warning("%s (rotation %d) touches the image border: pass a larger --camera-distance",
                                name, ri)
                stats["render_s"] += time.perf_counter() - t0
                stats["samples_rendered"] += 1
                c = gts[name]["configs"]
                grasps[s, : len(c)] = rotate_config(c, R)
                mask[s, : len(c)] = True
                bar.update(1)
            oi_arr = np.array([o for o, _ in samples], np.int32)
            ri_arr = np.array([r for _, r in samples], np.int32)
            write_npz(path, depth=depth, object_index=oi_arr, rotation_index=ri_arr,
                       R_aug=rotations[ri_arr].astype(np.float32), grasps=grasps, grasp_mask=mask)
        else:
            bar.update(len(samples))
        shards.append({"file": rel, "split": sp, "count": len(samples)})
        if callback is not None:
            callback("shard", j)
    bar.close()

    manifest = {
        "schema": SCHEMA,
        "hand": config.hand,
        "num_views": config.views,
        "height": config.size,
        "width": config.size,
        "intrinsics": np.asarray(cameras.K, np.float64).tolist(),
        "T_object_camera": np.asarray(cameras.T_object_camera, np.float64).tolist(),
        "camera_distance": float(distance),
        "rotations": augmentation_rotations().tolist(),
        "objects": objects,
        "dropped": dropped,
        "shards": shards,
        "config": cfg_dict,
    }
    write_json(os.path.join(out_dir, "manifest.json"), manifest)
    stats["total_s"] = time.perf_counter() - t_start
    log.info("built %s in %.1f s (planning %.1f s, rendering %.1f s for %d samples)", out_dir, stats["total_s"],
             stats["plan_s"], stats["render_s"], stats["samples_rendered"])
    manifest["build_stats"] = stats  # returned only (timings are not part of the data)
    return manifest


# What np.load raises for a file that is not a whole .npz (truncated: BadZipFile; empty:
# EOFError). The build's own files are whole (atomic rename); one damaged otherwise (copied in
# part, written by another tool) is computed and written again instead of stopping the build.
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def _read_npz(path: str) -> dict | None:
    """Every array of an ``.npz`` (read whole, so a damaged member fails its CRC check here);
    None when the file is absent or unreadable."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except _UNREADABLE:
        log.warning("%s cannot be read: computing it again", path)
        return None


def _shard_ok(path: str, samples: list[tuple[int, int]]) -> bool:
    """A shard on disk holds exactly these samples (written whole, by the atomic rename)."""
    if not os.path.exists(path):
        return False
    try:
        with np.load(path) as z:
            return (z["object_index"].tolist() == [o for o, _ in samples]
                    and z["rotation_index"].tolist() == [r for _, r in samples])
    except _UNREADABLE:
        return False
