"""The Q1 ceiling: an upper bound of every grasp's exact Q1, and a tight one."""

import jax
import numpy as np
import pytest
import trimesh

from jaxgrasp.quality.ceiling import band_contacts, q1_ceiling
from jaxgrasp.quality.q1 import edge_wrenches, q1_exact

MU, EDGES, TOL = 0.7, 8, 0.003


def _meshes():
    return {
        "box": trimesh.creation.box((0.06, 0.04, 0.1)),
        "icosphere": trimesh.creation.icosphere(1, 0.04),
        "cylinder": trimesh.creation.cylinder(0.03, 0.1, sections=12),
    }


def _frame(tm):
    com = np.asarray(tm.center_mass)
    return com, 1.0 / float(np.linalg.norm(tm.vertices - com, axis=1).max())


def _random_band_contacts(tm, com, rng, k):
    """Contacts anywhere in the band the bound covers: points on the faces moved up to TOL along
    the face normal; for meshes with sharp edges, half of them on such an edge, with a normal of
    the edge's arc at one of the sampled angles (every 10 degrees, slerp between the faces)."""
    pts, fi = trimesh.sample.sample_surface(tm, k, seed=int(rng.integers(1 << 30)))
    nrm = np.array(tm.face_normals[fi])
    adj, ang = tm.face_adjacency, tm.face_adjacency_angles
    sharp = np.nonzero(ang > np.deg2rad(10))[0]
    if len(sharp):
        h = k // 2
        e = rng.choice(sharp, h)
        a, b = tm.vertices[tm.face_adjacency_edges[e, 0]], tm.vertices[tm.face_adjacency_edges[e, 1]]
        pts[:h] = a + rng.uniform(size=(h, 1)) * (b - a)
        th = ang[e][:, None]
        pieces = np.ceil(th / np.deg2rad(10))
        phi = th * rng.integers(1, pieces) / pieces
        nrm[:h] = (np.sin(th - phi) * tm.face_normals[adj[e, 0]] + np.sin(phi) * tm.face_normals[adj[e, 1]]) / np.sin(th)
    pts = pts + rng.uniform(-TOL, TOL, size=(k, 1)) * nrm
    return pts - com, nrm


def _support(p, n, lam, s):
    """``max_w s.w`` over the edge wrenches of contacts ``(p, n)``, per direction ``s (D, 6)``."""
    V = edge_wrenches(p, n, np.ones(len(p)), mu=MU, torque_scale=lam, num_edges=EDGES, xp=np).reshape(-1, 6)
    return np.max(V @ s.T, axis=0)


@pytest.mark.parametrize("name", ["box", "icosphere", "cylinder"])
def test_band_contacts_dominate_every_contact_in_the_band(name):
    """The lemma the bound rests on: in every direction, no contact in the band has a wrench
    beyond the finite set's (convex in position: the prism's corners; sampled arc normals)."""
    tm = _meshes()[name]
    com, lam = _frame(tm)
    p, n = band_contacts(tm, com, TOL)
    rng = np.random.default_rng(3)
    s = rng.normal(size=(400, 6))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    pc, nc = _random_band_contacts(tm, com, rng, 3000)
    assert np.all(_support(pc, nc, lam, s) <= _support(p, n, lam, s) + 1e-12)


@pytest.mark.parametrize("name", ["box", "icosphere"])
def test_ceiling_bounds_random_grasps(name):
    tm = _meshes()[name]
    com, lam = _frame(tm)
    p, n = band_contacts(tm, com, TOL)
    bound, s = q1_ceiling(p, n, mu=MU, torque_scale=lam, num_edges=EDGES, key=jax.random.PRNGKey(0),
                          num_starts=32, steps=150)
    assert np.isclose(np.linalg.norm(s), 1.0, atol=1e-5)
    rng = np.random.default_rng(4)
    qs = [q1_exact(*_random_band_contacts(tm, com, rng, 24), np.ones(24), mu=MU, torque_scale=lam, num_edges=EDGES)
          for _ in range(20)]
    assert 0 < max(qs) <= bound * (1 + 1e-5)


@pytest.mark.parametrize("name", ["box", "cylinder"])
def test_ceiling_search_matches_the_exact_hull(name):
    """On a subset small enough for qhull, the searched bound is the set's exact Q1 within 2%
    (never below it: any direction bounds it)."""
    tm = _meshes()[name]
    com, lam = _frame(tm)
    p, n = band_contacts(tm, com, TOL)
    idx = np.random.default_rng(0).choice(len(p), 60, replace=False)
    exact = q1_exact(p[idx], n[idx], np.ones(60), mu=MU, torque_scale=lam, num_edges=EDGES)
    bound, _ = q1_ceiling(p[idx], n[idx], mu=MU, torque_scale=lam, num_edges=EDGES, key=jax.random.PRNGKey(1),
                          num_starts=32, steps=150)
    assert exact > 0
    assert exact * (1 - 1e-5) <= bound <= 1.02 * exact


def test_band_contacts_cover_sharp_edges_and_reject_bad_input():
    tm = _meshes()["box"]
    p, n = band_contacts(tm, np.zeros(3), TOL)
    # 12 faces x 3 corners x 2 offsets, plus 8 interior normals on each of the 12 90-degree edges
    # (every 10 degrees) x 2 ends x 2 offsets, plus the 8 corners' normals x 2 offsets
    assert len(p) == 12 * 6 + 12 * 8 * 4 + 8 * 2
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0)
    diag = np.sum(np.abs(n) > 0.1, axis=1)
    assert np.any(diag == 2) and np.any(diag == 3)  # edge and corner normals
    # one face's contacts (no force closure): every wrench pushes along that face's inward
    # normal, so the bound is 0, not the negative support in the opposite direction
    bound, _ = q1_ceiling(p[:6], n[:6], mu=MU, torque_scale=1.0, num_edges=EDGES, key=jax.random.PRNGKey(0),
                          num_starts=8, steps=50, chunk=8)
    assert bound == 0.0
    with pytest.raises(ValueError, match="tolerance"):
        band_contacts(tm, np.zeros(3), -1.0)
    with pytest.raises(ValueError, match="shape"):
        q1_ceiling(p[:, :2], n, mu=MU, torque_scale=1.0, num_edges=EDGES, key=jax.random.PRNGKey(0))
