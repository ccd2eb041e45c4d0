"""Learning: so3_log, the Chamfer loss, frames, training steps, checkpoint / interrupt / resume.

A small synthetic dataset in the on-disk format of :mod:`jaxgrasp.learning.data` (two procedural objects,
2 views of 32 x 32, random depth, planner starts as "ground truth") keeps compilation and steps
cheap; nothing here needs ``data/bundled``.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from jaxgrasp.core.lie import so3_exp, so3_log
from jaxgrasp.hand.kinematics import independent_angles
from jaxgrasp.hand.model import load_hand
from jaxgrasp.learning import model as M
from jaxgrasp.learning import train as T
from jaxgrasp.learning.data import augmentation_rotations, rotate_config
from jaxgrasp.mesh.procedural import procedural_object
from jaxgrasp.mesh.render import default_cameras
from jaxgrasp.planning.planner import initial_configs


@pytest.fixture(scope="module")
def hand():
    return load_hand("shadow")


# ----------------------------------------------------------------------------------------------
# so3_log
# ----------------------------------------------------------------------------------------------


def test_so3_log_matches_scipy_and_inverts_exp():
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(600, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, np.pi, 200), np.full(50, np.pi), np.pi - 10 ** rng.uniform(-7, -1, 150),
                             10 ** rng.uniform(-9, -2, 150), np.zeros(50)])
    rv = axes * angles[:, None]
    R = Rotation.from_rotvec(rv).as_matrix()
    out = np.asarray(so3_log(jnp.asarray(R)))
    # Same rotation back (at exactly pi, r and -r are both right) ...
    np.testing.assert_allclose(np.asarray(so3_exp(jnp.asarray(out))), R, atol=1e-12)
    # ... and the same vector as scipy away from pi, angle in [0, pi].
    away = angles < np.pi - 1e-3
    np.testing.assert_allclose(out[away], Rotation.from_matrix(R[away]).as_rotvec(), atol=1e-12)
    assert np.all(np.linalg.norm(out, axis=1) <= np.pi + 1e-12)


@pytest.mark.parametrize("angle", [0.0, 1e-5, 0.7, 2.5, np.pi - 1e-4])
def test_so3_log_gradient_finite_differences(angle):
    rng = np.random.default_rng(1)
    a = rng.normal(size=3)
    a /= np.linalg.norm(a)
    r0 = jnp.asarray(a * angle)
    # d/dr of |log(exp(r))|^2 = |r|^2 is 2 r (inside the ball of radius pi): compose through
    # so3_exp so the derivative is along the manifold, and check against central differences too.
    f = lambda r: jnp.sum(so3_log(so3_exp(r)) ** 2)  # noqa: E731
    g = np.asarray(jax.grad(f)(r0))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, 2 * np.asarray(r0), atol=1e-6)
    h = 1e-6
    fd = np.array([(f(r0 + h * e) - f(r0 - h * e)) / (2 * h) for e in np.eye(3)])
    if angle < np.pi - 1e-3:
        np.testing.assert_allclose(g, fd, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Chamfer loss and frames
# ----------------------------------------------------------------------------------------------


def _brute_distance(hand, x, y, size):
    """Independent reference of config_distance: scipy rotations, NumPy sigmoid."""
    idx = np.asarray(hand.independent)
    lo, hi = np.asarray(hand.joint_lower)[idx], np.asarray(hand.joint_upper)[idx]
    q = lambda z: (hi - lo) / (1 + np.exp(-z)) + lo  # noqa: E731
    ang = (Rotation.from_rotvec(x[3:6]).inv() * Rotation.from_rotvec(y[3:6])).magnitude()
    return np.sum((x[:3] - y[:3]) ** 2) / size**2 + ang**2 + np.mean((q(x[6:]) - q(y[6:])) ** 2)


def test_chamfer_picks_the_nearest_ground_truth(hand):
    rng = np.random.default_rng(2)
    n, size = 6, 0.05
    gts = np.concatenate([rng.normal(0, 0.05, (n, 3)), rng.normal(0, 1.2, (n, 3)), rng.normal(0, 1, (n, hand.num_independent))], 1)
    mask = np.array([True, True, True, True, True, False])
    w = T.ChamferWeights()
    f = jax.jit(lambda x, g, m: T.chamfer_loss(hand, x, g, m, jnp.asarray(size), w))
    for trial in range(8):
        x = gts[trial % 5] + rng.normal(0, 0.3, gts.shape[1]) * np.r_[np.full(3, 0.02), np.ones(3), np.ones(hand.num_independent)]
        ref = np.array([_brute_distance(hand, x, g, size) for g in gts])
        ref_masked = np.where(mask, ref, np.inf)
        loss, i = f(jnp.asarray(x), jnp.asarray(gts), jnp.asarray(mask))
        assert int(i) == int(np.argmin(ref_masked))
        np.testing.assert_allclose(float(loss), ref_masked.min(), rtol=1e-6)
    # The padded row is never picked, even when it is the closest.
    loss, i = f(jnp.asarray(gts[5]), jnp.asarray(gts), jnp.asarray(mask))
    assert int(i) != 5 and float(loss) > 0
    # A rotation vector of the same rotation (angle 2 pi - theta about -axis) is at distance 0.
    r = gts[0, 3:6]
    th = np.linalg.norm(r)
    x = gts[0].copy()
    x[3:6] = -r / th * (2 * np.pi - th)
    loss, i = f(jnp.asarray(x), jnp.asarray(gts), jnp.asarray(mask))
    assert int(i) == 0 and float(loss) < 1e-10


def test_frames_match_the_dataset_rotation(hand):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 0.05, 3), rng.normal(0, 1.0, 3), rng.normal(0, 1, hand.num_independent)])
    for R in augmentation_rotations():
        xs = rotate_config(x, R)  # host-side reference from jaxgrasp.learning.data
        np.testing.assert_allclose(np.asarray(T.to_sample_frame(jnp.asarray(x), jnp.asarray(R))), xs, atol=1e-10)
        np.testing.assert_allclose(np.asarray(T.to_object_frame(jnp.asarray(xs), jnp.asarray(R))), x, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# Synthetic dataset, steps, resume
# ----------------------------------------------------------------------------------------------

V, S, G = 2, 32, 3


def write_synthetic(root, hand):
    """Two procedural objects (train: box, test: blob) in the on-disk format of jaxgrasp.learning.data."""
    os.makedirs(os.path.join(root, "meshes"), exist_ok=True)
    os.makedirs(os.path.join(root, "shards"), exist_ok=True)
    rots = augmentation_rotations()
    objs, shards = [], []
    rng = np.random.default_rng(0)
    for k, (kind, split, n_rot) in enumerate((("box", "train", 8), ("blob", "test", 2))):
        tm = procedural_object(k, kind)
        tm.apply_translation(-tm.center_mass)
        tm.export(os.path.join(root, "meshes", f"{kind}.obj"))
        size = float(np.linalg.norm(tm.vertices, axis=1).max())
        objs.append({"name": kind, "mesh": f"meshes/{kind}.obj", "split": split, "num_valid_grasps": G, "size": size})
        gt = np.asarray(initial_configs(hand, size, G, jax.random.PRNGKey(k), opening=0.2, standoff=0.0), np.float64)
        ri = np.arange(n_rot) % 8
        depth = np.where(rng.random((n_rot, V, S, S)) < 0.3, rng.uniform(0.28, 0.32, (n_rot, V, S, S)), 0.0)
        np.savez_compressed(os.path.join(root, "shards", f"{split}-000.npz"), depth=depth.astype(np.float32),
                            object_index=np.full(n_rot, k, np.int32), rotation_index=ri.astype(np.int32),
                            R_aug=rots[ri].astype(np.float32),
                            grasps=np.stack([rotate_config(gt, rots[r]) for r in ri]).astype(np.float32),
                            grasp_mask=np.ones((n_rot, G), bool))
        shards.append({"file": f"shards/{split}-000.npz", "split": split, "count": n_rot})
    cams = default_cameras(V, S, distance=0.3)
    manifest = {"schema": "jaxgrasp.dataset/1", "hand": "shadow", "num_views": V, "height": S, "width": S,
                "intrinsics": np.asarray(cams.K).tolist(), "T_object_camera": np.asarray(cams.T_object_camera).tolist(),
                "camera_distance": 0.3, "rotations": rots.tolist(), "objects": objs, "dropped": [], "shards": shards,
                "config": {}}
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump(manifest, f)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, hand):
    root = str(tmp_path_factory.mktemp("synthetic"))
    write_synthetic(root, hand)
    return root


# The training defaults of the differentiable loss, with fewer active samples and points.
PLAN = dataclasses.replace(T.TrainConfig().plan, shapes=dataclasses.replace(
    T.TrainConfig().plan.shapes, opt_samples=64, object_points=32, object_samples=256, self_samples=64))


def small_config(dataset, out, **kw):
    return T.TrainConfig(data=dataset, out=out, epochs1=1, epochs2=1, batch_size=4, lr=1e-3, lr2=1e-4, plan=PLAN,
                         val_samples=2, **kw)


@pytest.mark.parametrize("phase2", [False, True])
def test_one_step_lowers_the_loss_on_a_fixed_batch(dataset, hand, phase2):
    from jaxgrasp.learning.data import load_split

    tr = load_split(dataset, "train")
    cfg = small_config(dataset, "unused")
    mcfg = T.model_config_for(tr.manifest, tr, "tiny", hand.num_dof)
    scenes, _ = T.load_objects(dataset, tr.manifest, PLAN)
    params = M.init_params(mcfg, jax.random.PRNGKey(0), V, S, S)
    batch = {k: getattr(tr, k)[:4] for k in ("depth", "object_index", "R_aug", "grasps", "grasp_mask")}
    # The step of the training run below (same settings: compiled once for both tests).
    spec = T.StepSpec(mcfg, cfg.weights, cfg.chamfer, PLAN, cfg.lr2 if phase2 else cfg.lr, cfg.decay_rate,
                      cfg.decay_epochs * 2, phase2)
    opt = T.make_optimizer(spec).init(params)
    new, opt2, before = T.train_step(params, opt, batch, hand, scenes, spec)  # terms at `params`
    _, _, after = T.train_step(new, opt2, batch, hand, scenes, spec)  # terms at the updated parameters
    assert np.isfinite(float(before["total"])) and float(after["total"]) < float(before["total"])
    if phase2:
        assert {"data", "q1", "coll", "self", "guide", "q1_bound"} <= set(before)
        w = cfg.weights
        expect = (w.data * before["data"] + w.q1 * before["q1"] + w.coll * before["coll"]
                  + w.self_coll * before["self"] + w.guide * before["guide"])
        np.testing.assert_allclose(float(before["total"]), float(expect), rtol=1e-5)
    else:
        assert set(before) == {"total", "data"}


def _records(path):
    with open(path) as f:
        return [{k: v for k, v in json.loads(line).items() if k != "time_s"} for line in f]


def test_interrupt_and_resume_gives_the_same_run(dataset, hand, tmp_path):
    from jaxgrasp.learning import checkpoint as C

    straight = small_config(dataset, str(tmp_path / "straight"))
    T.train(straight, progress=False, final_eval=False)
    # Two steps per epoch: stop after 3 steps (inside phase 2's epoch), then resume.
    broken = small_config(dataset, str(tmp_path / "broken"))
    with pytest.raises(T.Interrupted):
        T.train(broken, progress=False, final_eval=False, stop_after=3)
    assert len(_records(tmp_path / "broken" / "log.jsonl")) == 1
    T.train(dataclasses.replace(broken, epochs2=99), resume=True, progress=False, final_eval=False)  # saved settings win
    a, b = _records(tmp_path / "straight" / "log.jsonl"), _records(tmp_path / "broken" / "log.jsonl")
    assert len(a) == len(b) == 2 and a == b
    assert a[1]["phase"] == 2 and "train_coll" in a[1]
    mcfg, pa, _ = C.load_model(str(tmp_path / "straight"))
    _, pb, _ = C.load_model(str(tmp_path / "broken"))
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    _, p1, _ = C.load_model(str(tmp_path / "straight" / "phase1"))
    assert any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(p1)))
    # predict() from code on depth images gives the network's output.
    from jaxgrasp.learning.data import load_split
    from jaxgrasp.learning.predict import predict

    te = load_split(dataset, "test")
    out = predict(str(tmp_path / "straight"), te.depth[0])
    ref = np.asarray(M.apply(mcfg, pa, jnp.asarray(te.depth[:1])))[0]
    np.testing.assert_allclose(out.config, ref, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(independent_angles(hand, jnp.asarray(out.config[6:]))))
