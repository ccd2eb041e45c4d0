"""Depth rendering (against analytic depth and trimesh's ray casting) and the dataset format."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh

from jaxgrasp.learning import data
from jaxgrasp.mesh.procedural import procedural_object
from jaxgrasp.mesh.render import (
    Camera,
    camera_rays,
    default_cameras,
    render_depth,
    render_views,
)

SIZE = 64  # image size of the renderer tests (one compilation per face bucket)


def _padded(mesh: trimesh.Trimesh, num_faces: int):
    f = np.zeros((num_faces, 3), np.int32)
    f[: len(mesh.faces)] = mesh.faces
    return (jnp.asarray(mesh.vertices, jnp.float32), jnp.asarray(f), jnp.asarray(np.arange(num_faces) < len(mesh.faces)))


def _rays_object(cameras: Camera):
    """Per view: camera centre (3,) and ray directions (H*W, 3) in the object frame, z-scaled
    (the parameter along them is the depth), float64."""
    out = []
    for v in range(cameras.K.shape[0]):
        cam = Camera(K=cameras.K[v], T_object_camera=cameras.T_object_camera[v], width=cameras.width,
                     height=cameras.height)
        T = np.asarray(cam.T_object_camera, np.float64)
        d = np.asarray(camera_rays(cam), np.float64) @ T[:3, :3].T
        out.append((T[:3, 3], d))
    return out


def _ray_sphere(o, d, r):
    """Smallest positive s with |o + s d| = r (nan when missed)."""
    a = np.sum(d * d, 1)
    b = 2 * d @ o
    c = o @ o - r * r
    disc = b * b - 4 * a * c
    s = (-b - np.sqrt(np.where(disc >= 0, disc, np.nan))) / (2 * a)
    return s


def test_sphere_depth_within_faceting_bound():
    r = 0.05
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=r)  # vertices on the sphere
    # The mesh lies between the inscribed sphere (nearest face plane) and the circumscribed one.
    r_in = float(np.min(np.abs(np.sum(mesh.face_normals * mesh.vertices[mesh.faces[:, 0]], 1))))
    assert 0.998 * r < r_in < r  # faceting error under 0.2% of the radius
    cams = default_cameras(3, SIZE, distance=0.2, fov=40.0)
    depth = np.asarray(render_views(*_padded(mesh, 8192), cams))
    assert depth.shape == (3, SIZE, SIZE) and depth.dtype == np.float32
    tol = 2e-6  # float32 resolution at 0.2 m
    for v, (o, d) in enumerate(_rays_object(cams)):
        outer, inner = _ray_sphere(o, d, r), _ray_sphere(o, d, r_in)
        got = depth[v].ravel()
        hit_in = np.isfinite(inner)
        miss = ~np.isfinite(outer)
        assert hit_in.sum() > 0.1 * got.size
        assert np.all(got[miss] == 0.0)
        assert np.all(got[hit_in] >= outer[hit_in] - tol)
        assert np.all(got[hit_in] <= inner[hit_in] + tol)
        # A wrong depth convention (distance along the ray instead of z) breaks the bound:
        # rays off-axis are up to 1/cos(20 deg) = 6% longer than their depth.
        along = got * np.linalg.norm(d, axis=1)
        assert np.max(np.abs(along - got)[hit_in]) > 1e-3


def _ray_box(o, d, half):
    """Slab method: entry parameter of the ray into the box [-half, half] (nan when missed)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-half - o) / d, (half - o) / d
    tmin = np.max(np.minimum(t1, t2), 1)
    tmax = np.min(np.maximum(t1, t2), 1)
    return np.where((tmin <= tmax) & (tmax > 0), tmin, np.nan)


def test_box_depth_exact():
    half = np.array([0.03, 0.04, 0.05])
    mesh = trimesh.creation.box(extents=2 * half)
    cams = default_cameras(5, SIZE, distance=0.25, fov=40.0)
    depth = np.asarray(render_views(*_padded(mesh, 256), cams))
    for v, (o, d) in enumerate(_rays_object(cams)):
        got = depth[v].ravel()
        ref = _ray_box(o, d, half)
        # Pixels whose ray passes within 1e-5 m of the silhouette may go either way.
        sure_hit = np.isfinite(_ray_box(o, d, half - 1e-5))
        sure_miss = ~np.isfinite(_ray_box(o, d, half + 1e-5))
        assert sure_hit.sum() > 0.05 * got.size and sure_miss.sum() > 0.05 * got.size
        assert np.all(got[sure_miss] == 0.0)
        np.testing.assert_allclose(got[sure_hit], ref[sure_hit], rtol=1e-5)


def test_matches_trimesh_ray_casting():
    from trimesh.ray.ray_triangle import RayMeshIntersector

    mesh = procedural_object(6)  # a bottle (lathed, concave neck)
    mesh.apply_translation(-mesh.center_mass)
    cams = default_cameras(2, SIZE, distance=0.3, fov=40.0)
    nf = 1 << int(np.ceil(np.log2(len(mesh.faces))))
    depth = np.asarray(render_views(*_padded(mesh, nf), cams))
    rng = np.random.default_rng(0)
    caster = RayMeshIntersector(mesh)
    for v, (o, d) in enumerate(_rays_object(cams)):
        got = depth[v].ravel()
        # Half the pixels from the object's bounding square (hits), half anywhere.
        on = np.flatnonzero(got > 0)
        idx = np.unique(np.concatenate([rng.choice(on, 150, replace=False), rng.choice(got.size, 150, replace=False)]))
        dirs = d[idx] / np.linalg.norm(d[idx], axis=1, keepdims=True)
        locs, ray_i, _ = caster.intersects_location(np.repeat(o[None], len(idx), 0), dirs, multiple_hits=True)
        z_axis = np.asarray(cams.T_object_camera[v, :3, 2], np.float64)
        ref = np.zeros(len(idx))
        for k in range(len(idx)):
            zs = (locs[ray_i == k] - o) @ z_axis
            ref[k] = zs[zs > 0].min() if np.any(zs > 0) else 0.0
        same_hit = (ref > 0) == (got[idx] > 0)
        assert same_hit.mean() >= 0.99, same_hit.mean()  # only rays grazing an edge may differ
        both = same_hit & (ref > 0)
        assert both.sum() > 100
        np.testing.assert_allclose(got[idx][both], ref[both], atol=1e-5)


def test_single_camera_matches_batch_and_padding_is_ignored():
    mesh = trimesh.creation.box(extents=[0.04, 0.06, 0.05])
    cams = default_cameras(2, SIZE, distance=0.25)
    v, f, m = _padded(mesh, 256)
    batch = render_views(v, f, m, cams)
    one = render_depth(v, f, m, jax.tree.map(lambda a: a[1], cams))
    np.testing.assert_array_equal(np.asarray(batch[1]), np.asarray(one))
    # Garbage in the padded face rows must not show.
    f_bad = f.at[len(mesh.faces):].set(jnp.array([0, 3, 6], jnp.int32))
    np.testing.assert_array_equal(np.asarray(render_views(v, f_bad, m, cams)), np.asarray(batch))


# ----------------------------------------------------------------------------------------------
# Augmentation
# ----------------------------------------------------------------------------------------------


def test_augmentation_rotations_form_a_group():
    R = data.augmentation_rotations()
    assert R.shape == (8, 3, 3)
    np.testing.assert_array_equal(R[0], np.eye(3))
    for Ri in R:
        np.testing.assert_allclose(Ri @ Ri.T, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(Ri), 1.0)
    flat = {tuple(Ri.ravel()) for Ri in R}
    assert len(flat) == 8
    for Ri in R:
        for Rj in R:
            assert tuple((Ri @ Rj).ravel()) in flat


def test_rotate_config_moves_the_hand_rigidly():
    from jaxgrasp.hand.kinematics import pose_hand
    from jaxgrasp.hand.model import load_hand

    hand = load_hand("shadow")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6 + hand.num_independent))
    x[:, 3:6] *= 1.2  # rotation angles up to ~pi and beyond
    R_rand = trimesh.transformations.random_rotation_matrix(rng.uniform(size=3))[:3, :3]
    pose = jax.jit(jax.vmap(lambda c: pose_hand(hand, c).contact_pos))
    for R in list(data.augmentation_rotations()[1:]) + [R_rand]:
        xr = data.rotate_config(x, R)
        np.testing.assert_array_equal(xr[:, 6:], x[:, 6:])
        assert np.all(np.linalg.norm(xr[:, 3:6], axis=1) <= np.pi + 1e-9)
        before = np.asarray(pose(jnp.asarray(x)))
        after = np.asarray(pose(jnp.asarray(xr)))
        np.testing.assert_allclose(after, before @ R.T, atol=1e-9)


# ----------------------------------------------------------------------------------------------
# Dataset round trip
# ----------------------------------------------------------------------------------------------


def _objects_folder(path):
    os.makedirs(path)
    shapes = {
        "box": trimesh.creation.box(extents=[0.05, 0.07, 0.09]),
        "cyl": trimesh.creation.cylinder(radius=0.03, height=0.1, sections=24),
        "blob": procedural_object(7, "blob"),
    }
    for name, m in shapes.items():
        m.apply_translation([0.1, -0.2, 0.3])  # not centred: the build must centre them
        m.export(os.path.join(path, f"{name}.stl"))
    return shapes


def _seed_ground_truth(out, num_vars, counts):
    """Precomputed ground truth in the build's cache (what a resumed build reads), so the test
    needs no planning: arbitrary configurations; a count of 0 = an object with no valid grasp."""
    rng = np.random.default_rng(2)
    gts = {}
    for name, k in counts.items():
        gt = {"configs": rng.normal(size=(k, num_vars)), "q1": rng.uniform(size=k),
              "penetration_mm": rng.uniform(size=k), "num_starts": np.asarray(4)}
        os.makedirs(os.path.join(out, "gt"), exist_ok=True)
        np.savez(os.path.join(out, "gt", f"{name}.npz"), **gt)
        gts[name] = gt
    return gts


def test_dataset_round_trip_and_resume(tmp_path, capsys):
    src = tmp_path / "objects"
    shapes = _objects_folder(str(src))
    cfg = data.DatasetConfig(objects=str(src), grasps=3, views=2, size=24, num_rotations=3, test_fraction=0.5,
                             shard_size=2, seed=0)
    counts = {"blob": 2, "box": 3, "cyl": 0}
    num_vars = 6 + 18
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    gts = _seed_ground_truth(full, num_vars, counts)
    _seed_ground_truth(part, num_vars, counts)
    m = data.build_dataset(cfg, full, progress=False)

    # Manifest.
    assert m["schema"] == "jaxgrasp.dataset/1" and m["hand"] == "shadow"
    assert [o["name"] for o in m["objects"]] == ["blob", "box"]
    assert [d["name"] for d in m["dropped"]] == ["cyl"]
    assert {o["split"] for o in m["objects"]} == {"train", "test"}
    assert np.asarray(m["intrinsics"]).shape == (2, 3, 3) and np.asarray(m["T_object_camera"]).shape == (2, 4, 4)
    np.testing.assert_array_equal(np.asarray(m["rotations"]), data.augmentation_rotations())
    with open(os.path.join(full, "manifest.json")) as f:
        assert json.load(f)["shards"] == m["shards"]

    # Meshes: centred copies of the inputs.
    meshes = data.load_object_meshes(full)
    for o in m["objects"]:
        tm = meshes[o["name"]]
        np.testing.assert_allclose(tm.center_mass, 0.0, atol=1e-9)
        ref = shapes[o["name"]]
        np.testing.assert_allclose(tm.volume, ref.volume, rtol=1e-6)
        assert np.isclose(o["size"], np.linalg.norm(tm.vertices, axis=1).max(), rtol=1e-6)

    # Samples: every object x rotation once; grasps rotated; depth re-rendered from the manifest.
    cams = Camera(K=jnp.asarray(m["intrinsics"], jnp.float32), T_object_camera=jnp.asarray(m["T_object_camera"], jnp.float32),
                  width=m["width"], height=m["height"])
    seen = []
    for split in ("train", "test"):
        ds = data.load_split(full, split)
        assert ds.depth.shape == (len(ds), 2, 24, 24) and ds.depth.dtype == np.float32
        assert ds.grasps.shape == (len(ds), 3, num_vars) and ds.grasp_mask.shape == (len(ds), 3)
        for s in range(len(ds)):
            o = m["objects"][ds.object_index[s]]
            assert o["split"] == split
            R = data.augmentation_rotations()[ds.rotation_index[s]]
            np.testing.assert_array_equal(ds.R_aug[s], R)
            k = counts[o["name"]]
            assert ds.grasp_mask[s].sum() == k and ds.grasp_mask[s, :k].all()
            np.testing.assert_allclose(ds.grasps[s, :k], data.rotate_config(gts[o["name"]]["configs"], R), atol=1e-5)
            assert np.all(ds.grasps[s, k:] == 0)
            again = data.render_sample(meshes[o["name"]], R, cams)
            np.testing.assert_array_equal(ds.depth[s], again)
            assert (ds.depth[s] > 0).any()
            seen.append((o["name"], int(ds.rotation_index[s])))
    assert sorted(seen) == sorted((n, r) for n in ("blob", "box") for r in range(3))

    # Resume: interrupt after the first shard, build again, same files and arrays; finished
    # files are not rewritten.
    class Stop(Exception):
        pass

    def stop(stage, i):
        if stage == "shard" and i == 0:
            raise Stop

    with pytest.raises(Stop):
        data.build_dataset(cfg, part, progress=False, callback=stop)
    assert not os.path.exists(os.path.join(part, "manifest.json"))
    with pytest.raises(FileNotFoundError, match="did not finish"):
        data.load_manifest(part)
    first = os.path.join(part, m["shards"][0]["file"])
    mtime = os.stat(first).st_mtime_ns
    m2 = data.build_dataset(cfg, part, progress=False)
    assert os.stat(first).st_mtime_ns == mtime
    assert m2["build_stats"]["samples_rendered"] == sum(s["count"] for s in m["shards"][1:])
    files = lambda root: sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
    assert files(part) == files(full)
    for s in m["shards"]:
        with np.load(os.path.join(full, s["file"])) as a, np.load(os.path.join(part, s["file"])) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
    # The CLI maps its flags onto the same settings (else config.json would refuse them).
    from jaxgrasp.cli import dataset

    argv = ["build", "--objects", str(src), "--out", part, "--grasps", "3", "--views", "2", "--size", "24",
            "--rotations", "3", "--test-fraction", "0.5", "--shard-size", "2", "--seed", "0"]
    assert dataset.main(argv) == 0
    assert os.stat(first).st_mtime_ns == mtime
    dataset.main(["info", part])
    out = capsys.readouterr().out
    assert "train: 1 objects, 3 samples" in out and "test: 1 objects, 3 samples" in out and "dropped: 1 (cyl)" in out
    # Other settings in the same folder are refused.
    with pytest.raises(ValueError, match="other settings"):
        data.build_dataset(data.DatasetConfig(objects=str(src), size=32), part, progress=False)
