"""Large meshes: queries on local sub-meshes equal the full-mesh queries, and the evaluation of a
mesh treated as large (through its local index) equals the evaluation of the same mesh swept face
by face."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import trimesh

from jaxgrasp.hand.model import load_hand
from jaxgrasp.mesh import local
from jaxgrasp.mesh.geometry import closest_features, resolve_on_host
from jaxgrasp.mesh.objects import make_object
from jaxgrasp.planning.api import plan_grasps
from jaxgrasp.planning.evaluation import evaluate
from jaxgrasp.planning.planner import PlanConfig, Schedule, Shapes
from jaxgrasp.planning.prepared import prepare_object


def _bumpy(subdivisions: int, radius: float, open_: bool) -> trimesh.Trimesh:
    """A scan-like closed blob (or, ``open_``, the blob without its top cap)."""
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    v = m.vertices * (1 + 0.08 * np.sin(7 * m.vertices[:, [0]] / radius) * np.cos(5 * m.vertices[:, [1]] / radius))
    faces = m.faces
    if open_:
        faces = faces[(v[faces].mean(axis=1)[:, 2] < 0.8 * radius)]
    return trimesh.Trimesh(v, faces, process=False)


@pytest.mark.parametrize("open_", [False, True])
def test_local_query_equals_full_query(open_):
    tm = _bumpy(4, 0.05, open_)
    obj, _ = make_object(tm.vertices, tm.faces)
    assert obj.watertight is (not open_)
    index = local.build_index(obj)
    rng = np.random.default_rng(0)
    # On, near, inside and outside the surface, and a few far away.
    pts = np.concatenate([tm.sample(1500, seed=1) + rng.normal(0, 0.004, (1500, 3)),
                          tm.vertices[:100], rng.uniform(-0.2, 0.2, (100, 3))]).astype(np.float32)
    full = closest_features(obj, jnp.asarray(pts), exact=False)
    upper = local.nearest_upper_bound(index, pts.astype(np.float64))
    sub = local.local_closest_features(obj, index, pts, upper)
    d0, n0 = resolve_on_host(obj, pts, full)
    d1, n1 = resolve_on_host(obj, pts, sub)
    np.testing.assert_array_equal(d1, d0)
    np.testing.assert_array_equal(n1, n0)
    assert (np.asarray(sub.face) == np.asarray(full.face)).mean() > 0.99  # ties may pick either face
    # The sub-mesh is a small part of the mesh for points near the surface.
    near = pts[:200]
    sub_obj, rows = local.sub_object(obj, index, near, local.nearest_upper_bound(index, near.astype(np.float64)))
    assert int(sub_obj.face_mask.sum()) < 0.5 * len(tm.faces)
    assert set(np.asarray(full.face)[:200]) <= set(rows.tolist())


def test_unsigned_distance_matches_trimesh():
    tm = _bumpy(3, 0.04, open_=True)
    tm = trimesh.Trimesh(tm.vertices.astype(np.float32).astype(np.float64), tm.faces, process=False)  # as stored
    obj, _ = make_object(tm.vertices, tm.faces)
    index = local.build_index(obj)
    rng = np.random.default_rng(1)
    pts = np.concatenate([tm.sample(300, seed=2) + rng.normal(0, 0.01, (300, 3)), rng.uniform(-0.1, 0.1, (50, 3))])
    # Brute force over every triangle (trimesh.proximity.closest_point's candidate search is
    # approximate: off by microns at some points).
    tri = np.broadcast_to(tm.triangles[None], (len(pts),) + tm.triangles.shape).reshape(-1, 3, 3)
    cp = trimesh.triangles.closest_point(tri, np.repeat(pts, len(tm.faces), axis=0))
    ref = np.linalg.norm(cp - np.repeat(pts, len(tm.faces), axis=0), axis=1).reshape(len(pts), -1).min(axis=1)
    upper = local.nearest_upper_bound(index, pts)
    assert np.all(upper >= ref - 1e-12)
    np.testing.assert_allclose(local.unsigned_distance(index, pts), ref, rtol=0, atol=1e-9)


def test_large_mesh_evaluation_equals_full_sweep(monkeypatch):
    """The evaluation (and its reporting metrics) of a mesh above LARGE_FACES, through the
    screening mesh and local sub-meshes, is the evaluation of every point on every face (an open mesh's sign path
    is compared above: its full sweep here would cost half a minute)."""
    tm = _bumpy(5, 0.06, open_=False)  # 20,480 faces: screened, as large meshes are
    hand = load_hand("shadow")
    cfg = PlanConfig()
    ref = prepare_object(tm)
    monkeypatch.setattr(local, "LARGE_FACES", 4096)
    big = prepare_object(tm)
    assert ref.index is None and big.index is not None and ref.screening is not None
    rng = np.random.default_rng(2)
    x = np.zeros(6 + hand.num_independent, np.float32)
    for shift in (0.0, 0.05, 0.08):  # hand deep in the object, half in, touching
        x[:3] = shift * np.array([0.0, 0.0, -1.0]) + rng.normal(0, 0.005, 3)
        a = evaluate(hand, ref, x, cfg, screen=False)  # every point on every face
        b = evaluate(hand, big, x, cfg)
        for k in ("penetration_mm", "hand_in_object_mm", "q1", "num_contacts", "q1_generalized", "q1_generalized_upper"):
            assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9), (shift, k, a[k], b[k])
        ca, cb = a["contacts"], b["contacts"]
        assert ca["candidate"] == cb["candidate"] and ca["link"] == cb["link"]
        for k in ("points", "normals"):  # float32 sums in another order: last-bit differences
            np.testing.assert_allclose(ca[k], cb[k], atol=1e-6)


def test_far_object_is_planned_near_the_origin_and_reported_in_its_frame():
    """1 km from the origin float32 resolves 0.12 mm and nearly every distance query took the exact
    host path (52 s for 5 steps): the loader moves the mesh (float64, before rounding), and the
    planner reports poses and contacts back in the mesh's own frame."""
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.035)  # test_planner's shapes
    far = mesh.copy()
    far.apply_translation([1000.0, -250.0, 3.0])
    obj, report = make_object(far.vertices, far.faces, recenter=True)
    assert report.offset == (-1000.0, 250.0, -3.0) and "moved" in report.repairs[-1]
    np.testing.assert_allclose(np.asarray(obj.vertices)[: len(mesh.vertices)],
                               (mesh.vertices.astype(np.float32)), atol=1e-7)
    assert make_object(mesh.vertices, mesh.faces, recenter=True)[1].offset is None  # near: kept
    cfg = PlanConfig(shapes=Shapes(num_starts=8), schedule=Schedule(steps=40), seed=0)
    best = plan_grasps(far, "shadow", num_grasps=1, config=cfg)[0]
    np.testing.assert_allclose(best.center_of_mass, [1000.0, -250.0, 3.0], atol=1e-6)
    np.testing.assert_allclose(best.object_vertices, far.vertices, atol=1e-6)
    assert np.linalg.norm(best.T_input_palm[:3, 3] - best.center_of_mass) < 0.2
    r = np.linalg.norm(best.contact_pos - best.center_of_mass, axis=1)
    assert len(r) and np.all(np.abs(r - 0.035) < 5e-3), r  # at the sphere (within the contact band), its frame
    assert best.time_s < 60


def test_vertex_clustering_reduces_and_stays_on_the_surface():
    """The fallback when quadric decimation stalls: far fewer faces, every vertex within a grid
    cell of the surface."""
    from jaxgrasp.planning.prepared import cluster_vertices

    tm = _bumpy(6, 0.05, open_=False)  # 81,920 faces
    out = cluster_vertices(tm, 1000)
    assert 250 <= len(out.faces) <= 4000, len(out.faces)
    cell = np.sqrt(4.0 * tm.area / 1000)
    d = trimesh.proximity.closest_point(tm, out.vertices)[1]
    assert d.max() < np.sqrt(3) * cell, (d.max(), cell)
