"""Signed distance, normals and derivatives against independent references.

References: a brute-force float64 NumPy closest point (Ericson's Voronoi-region algorithm, not the
library's edge-normal formulation) with a float64 NumPy generalized winding number for the sign,
trimesh's proximity query, analytic box/sphere/torus distances, exact rational orientation tests,
and central finite differences in float64. Meshes are padded to one size (PAD) so that the jitted
functions compile once per configuration.
"""

import os
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from jaxgrasp.mesh import culling, geometry
from jaxgrasp.mesh.objects import load_object, make_object

PAD = 1024
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANS = os.path.join(REPO, "..", "shared", "objects")


# ----------------------------------------------------------------------------- references
def ref_closest(points, tri):
    """Brute-force float64 closest point (Ericson 2005, vectorized): (distance, closest point)."""
    p = points[:, None, :]
    a, b, c = (tri[None, :, k, :] for k in range(3))
    ab, ac, ap, bp, cp = b - a, c - a, p - a, p - b, p - c
    dot = lambda x, y: np.sum(x * y, axis=-1)  # noqa: E731
    d1, d2, d3, d4, d5, d6 = dot(ab, ap), dot(ac, ap), dot(ab, bp), dot(ac, bp), dot(ab, cp), \
        dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        den = va + vb + vc
        q = a + ab * (vb / den)[..., None] + ac * (vc / den)[..., None]
        r_bc = ((d4 - d3) / ((d4 - d3) + (d5 - d6)))[..., None]
        q = np.where(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0))[..., None],
                     b + r_bc * (c - b), q)
        q = np.where(((vb <= 0) & (d2 >= 0) & (d6 <= 0))[..., None],
                     a + (d2 / (d2 - d6))[..., None] * ac, q)
        q = np.where(((d6 >= 0) & (d5 <= d6))[..., None], c, q)
        q = np.where(((vc <= 0) & (d1 >= 0) & (d3 <= 0))[..., None],
                     a + (d1 / (d1 - d3))[..., None] * ab, q)
        q = np.where(((d3 >= 0) & (d4 <= d3))[..., None], b, q)
        q = np.where(((d1 <= 0) & (d2 <= 0))[..., None], a, q)
    dist = np.linalg.norm(p - q, axis=-1)
    j = np.argmin(dist, axis=1)
    rows = np.arange(len(points))
    return dist[rows, j], q[rows, j]


def ref_winding(points, tri):
    """Float64 generalized winding number (Van Oosterom-Strackee solid angles)."""
    a, b, c = (tri[None, :, k, :] - points[:, None, :] for k in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    det = np.sum(a * np.cross(b, c), axis=-1)
    den = la * lb * lc + np.sum(a * b, -1) * lc + np.sum(b * c, -1) * la + np.sum(c * a, -1) * lb
    return (2 * np.arctan2(det, den)).sum(axis=1) / (4 * np.pi)


def ref_signed(points, tri):
    """(d, n) float64 reference: |d| and q by brute force, sign by the winding number."""
    dist, q = ref_closest(points, tri)
    sign = np.where(ref_winding(points, tri) > 0.5, -1.0, 1.0)
    n = sign[:, None] * (points - q) / dist[:, None]
    return sign * dist, n


def triangles(mesh):
    return np.asarray(mesh.vertices, np.float64)[np.asarray(mesh.faces)]


def obj_triangles(obj):
    return np.asarray(obj.corners, np.float64)[np.asarray(obj.face_mask)]


def sample_points(mesh, n, rng, near=0.02):
    """Half uniform in the enlarged bounding box, half near the surface."""
    lo, hi = mesh.bounds
    span = hi - lo
    uniform = rng.uniform(lo - 0.3 * span, hi + 0.3 * span, (n - n // 2, 3))
    surf, fi = trimesh.sample.sample_surface(mesh, n // 2, seed=int(rng.integers(1 << 30)))
    offset = rng.normal(0.0, near * span.max(), (n // 2, 1))
    return np.concatenate([uniform, surf + offset * mesh.face_normals[fi]])


def rotated(mesh, seed):
    mesh = mesh.copy()
    tf = np.eye(4)
    tf[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    tf[:3, 3] = [0.01, -0.02, 0.03]
    mesh.apply_transform(tf)
    return mesh


@pytest.fixture(scope="module")
def sphere():
    mesh = rotated(trimesh.creation.icosphere(2, radius=0.05), 0)
    obj, _ = make_object(mesh.vertices, mesh.faces, dtype=np.float64, pad_to=PAD)
    return mesh, obj


@pytest.fixture(scope="module")
def torus():
    mesh = rotated(trimesh.creation.torus(0.05, 0.02, major_sections=24, minor_sections=12), 1)
    obj, report = make_object(mesh.vertices, mesh.faces, dtype=np.float64, pad_to=PAD)
    assert report.watertight and report.euler_number == 0  # genus 1
    return mesh, obj


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("shape", [(7,), (3, 5), ()])
def test_matches_bruteforce_reference_over_batch_shapes(sphere, shape):
    mesh, obj = sphere
    rng = np.random.default_rng(1)
    pts = sample_points(mesh, max(int(np.prod(shape)), 1) * 16, rng)[: int(np.prod(shape))]
    pts = pts.reshape(shape + (3,))
    d, n = geometry.signed_distance(obj, pts)
    assert d.shape == shape and n.shape == shape + (3,) and d.dtype == jnp.float64
    d_ref, n_ref = ref_signed(pts.reshape(-1, 3), triangles(mesh))
    np.testing.assert_allclose(np.asarray(d).reshape(-1), d_ref, atol=1e-12)
    np.testing.assert_allclose(np.asarray(n).reshape(-1, 3), n_ref, atol=1e-9)


@pytest.mark.parametrize("which", ["sphere", "torus"])
def test_matches_reference_random_and_near_surface(which, sphere, torus):
    mesh, obj = {"sphere": sphere, "torus": torus}[which]
    rng = np.random.default_rng(2)
    pts = np.concatenate([sample_points(mesh, 300, rng),
                          sample_points(mesh, 100, rng, near=1e-6)])  # within ~1e-7 m
    d, n = geometry.signed_distance(obj, pts)
    d_ref, n_ref = ref_signed(pts, triangles(mesh))
    np.testing.assert_allclose(np.asarray(d), d_ref, atol=1e-12)
    far = np.abs(d_ref) > 1e-9  # normals of points on the surface are pseudonormals
    np.testing.assert_allclose(np.asarray(n)[far], n_ref[far], atol=1e-8)


def test_matches_trimesh_proximity(torus):
    mesh, obj = torus
    pts = sample_points(mesh, 300, np.random.default_rng(3))
    d, _ = geometry.signed_distance(obj, pts)
    _, dist, _ = trimesh.proximity.closest_point(mesh, pts)
    inside = mesh.contains(pts)
    # trimesh's candidate search can miss the nearest triangle: ours is never farther, and equal
    # for nearly all points.
    assert np.all(np.abs(np.asarray(d)) <= dist + 1e-12)
    assert np.mean(np.abs(np.abs(np.asarray(d)) - dist) < 1e-10) > 0.97
    clear = dist > 1e-4
    np.testing.assert_array_equal((np.asarray(d) < 0)[clear], inside[clear])


def test_sign_at_sharp_edges_and_vertices_where_face_normal_test_fails():
    """Outside points whose closest feature is an edge or vertex of a tetrahedron (dihedral
    70.5 deg): the paper's face-normal test (eq. 5) on the closest face misclassifies some; the
    pseudonormal test does not."""
    v = np.array([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) * 0.03
    f = np.array([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
    obj, report = make_object(v, f, dtype=np.float64, pad_to=PAD)
    assert report.watertight
    tri, rng = v[f], np.random.default_rng(14)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    pts, dist = [], []
    for a, b in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]:
        on = [i for i in range(4) if a in f[i] and b in f[i]]  # the two faces on the edge
        w = rng.uniform(0.05, 1, (20, 2))
        u = w @ normals[on]
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        delta = rng.uniform(1e-3, 1e-2, (20, 1))
        pts.append(v[a] + rng.uniform(0.1, 0.9, (20, 1)) * (v[b] - v[a]) + delta * u)
        dist.append(delta[:, 0])
    for a in range(4):
        on = [i for i in range(4) if a in f[i]]
        u = rng.uniform(0.05, 1, (20, 3)) @ normals[on]
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        delta = rng.uniform(1e-3, 1e-2, (20, 1))
        pts.append(v[a] + delta * u)
        dist.append(delta[:, 0])
    pts, dist = np.concatenate(pts), np.concatenate(dist)
    info = geometry.closest_features(obj, pts, exact=False)  # pseudonormals alone
    np.testing.assert_allclose(np.asarray(info.distance), dist, rtol=1e-12)
    assert np.all(np.asarray(info.feature) != geometry.FACE)
    np.testing.assert_allclose(np.asarray(geometry.signed_distance(obj, pts)[0]), dist,
                               rtol=1e-12)
    face_normal = np.asarray(obj.normals)[np.asarray(info.face)]
    q = pts - np.asarray(info.distance)[:, None] * np.asarray(info.normal)
    eq5_inside = np.sum(face_normal * (pts - q), axis=1) < 0
    assert eq5_inside.sum() >= 10, "the face-normal test should fail on some of these points"


def test_box_analytic():
    ext = np.array([0.04, 0.06, 0.1])
    box = trimesh.creation.box(ext)
    obj, _ = make_object(box.vertices, box.faces, dtype=np.float64, pad_to=PAD)
    pts = np.random.default_rng(4).uniform(-0.08, 0.08, (400, 3))
    d, n = geometry.signed_distance(obj, pts)
    q = np.abs(pts) - ext / 2
    outside = np.linalg.norm(np.maximum(q, 0), axis=1)
    d_true = np.where(q.max(axis=1) > 0, outside, q.max(axis=1))
    np.testing.assert_allclose(np.asarray(d), d_true, atol=1e-14)
    # Inside: n is the nearest face's normal; outside: the unit vector from the box.
    k = np.argmax(q, axis=1)
    n_in = np.eye(3)[k] * np.sign(pts[np.arange(len(pts)), k])[:, None]
    n_out = np.sign(pts) * np.maximum(q, 0) / np.maximum(outside, 1e-300)[:, None]
    n_true = np.where((q.max(axis=1) > 0)[:, None], n_out, n_in)
    np.testing.assert_allclose(np.asarray(n), n_true, atol=1e-12)


def test_sphere_analytic():
    r = 0.05
    ico = trimesh.creation.icosphere(3, radius=r)  # 1280 faces
    obj, report = make_object(ico.vertices, ico.faces, dtype=np.float64)
    assert abs(float(obj.size) - r) < 1e-12 and np.abs(np.asarray(obj.center_of_mass)).max() < 1e-12
    pts = np.random.default_rng(5).normal(size=(300, 3))
    pts *= np.random.default_rng(6).uniform(0.2 * r, 2 * r, (300, 1)) / np.linalg.norm(pts, axis=1,
                                                                                     keepdims=True)
    d, n = geometry.signed_distance(obj, pts)
    sagitta = r * (1 - np.cos(ico.edges_unique_length.max() / r))  # polyhedral approximation
    np.testing.assert_allclose(np.asarray(d), np.linalg.norm(pts, axis=1) - r, atol=sagitta)
    radial = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    assert np.all(np.sum(np.asarray(n) * radial, axis=1) > 0.9)


def test_torus_sign_against_analytic_inside(torus):
    mesh, obj = torus
    rng = np.random.default_rng(7)
    pts = rng.uniform(-0.08, 0.08, (400, 3))
    local = (pts - [0.01, -0.02, 0.03]) @ Rotation.random(random_state=1).as_matrix()
    rho = np.hypot(local[:, 0], local[:, 1])
    tube = np.hypot(rho - 0.05, local[:, 2]) - 0.02  # analytic torus distance
    d, _ = geometry.signed_distance(obj, pts)
    clear = np.abs(tube) > 0.003  # beyond the polygonal approximation error
    assert clear.sum() > 300 and (tube < 0).sum() > 20
    np.testing.assert_array_equal((np.asarray(d) < 0)[clear], (tube < 0)[clear])
    # The hole of the torus (genus 1) is outside.
    d_hole, _ = geometry.signed_distance(obj, np.array([0.01, -0.02, 0.03]))
    assert float(d_hole) > 0.02


def test_open_mesh_uses_winding_number():
    ico = rotated(trimesh.creation.icosphere(2, radius=0.05), 2)
    keep = np.ones(len(ico.faces), bool)
    keep[[3, 50, 51, 200]] = False  # four holes
    obj, report = make_object(ico.vertices, ico.faces[keep], dtype=np.float64, pad_to=PAD)
    assert not report.watertight and not bool(obj.watertight)
    assert any("not watertight" in s for s in report.findings)
    tri = obj_triangles(obj)
    pts = sample_points(ico, 300, np.random.default_rng(8))
    d, n = geometry.signed_distance(obj, pts)
    d_ref, n_ref = ref_signed(pts, tri)
    np.testing.assert_allclose(np.asarray(d), d_ref, atol=1e-12)
    w = np.asarray(geometry.winding_number(obj, pts))
    np.testing.assert_allclose(w, ref_winding(pts, tri), atol=1e-10)
    # The pseudonormal test alone would misclassify points seen through a hole.
    centre = np.asarray(obj.center_of_mass)
    assert float(geometry.signed_distance(obj, centre)[0]) < -0.04


def test_culling_grid_matches_bruteforce(torus):
    mesh, obj = torus
    grid, stats = culling.build_grid(obj, resolution=16, max_candidates=128)
    assert 0.3 < stats.complete_fraction < 1.0  # both culled and fallback chunks are exercised
    pts = sample_points(mesh, 600, np.random.default_rng(9))
    info_b = geometry.closest_features(obj, pts)
    info_g = geometry.closest_features(obj, pts, grid=grid, chunk_size=64)
    _, ok = culling.lookup(grid, jnp.asarray(pts))
    assert 0.2 < float(jnp.mean(ok)) < 1.0
    np.testing.assert_array_equal(np.asarray(info_g.distance), np.asarray(info_b.distance))
    np.testing.assert_array_equal(np.asarray(info_g.normal), np.asarray(info_b.normal))
    np.testing.assert_array_equal(np.asarray(info_g.ambiguous), np.asarray(info_b.ambiguous))


# ----------------------------------------------------------------------------- exact path
def _sliver_tetrahedron():
    """Convex tetrahedron whose face (0, 2, 1) is a sliver (aspect ratio 1e4), rotated."""
    v = np.array([[0.0, 0, 0], [0.1, 0, 0], [0.05, 1e-5, 0], [0.05, 0.02, -0.03]])
    rot = Rotation.random(random_state=1).as_matrix()
    v = (v @ rot.T + [0.03, -0.02, 0.05]).astype(np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [2, 0, 3]])  # deliberately inside-out
    return v, f


def _exact_inside_convex(points, tri):
    """Exact sign for a convex closed mesh: -1 inside all face planes, 0 on the surface, +1."""
    out = []
    tri_f = [[[Fraction(float(x)) for x in c] for c in t] for t in tri]
    for p in points:
        pf = [Fraction(float(x)) for x in p]
        side = []
        for a, b, c in tri_f:
            u, v, w = ([y[k] - a[k] for k in range(3)] for y in (b, c, pf))
            nrm = (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])
            side.append(sum(nrm[k] * w[k] for k in range(3)))
        out.append(-1 if all(s < 0 for s in side) else (1 if any(s > 0 for s in side) else 0))
    return np.array(out)


def test_sliver_sign_float32_fails_exact_path_correct():
    v, f = _sliver_tetrahedron()
    obj, report = make_object(v, f, dtype=np.float32)
    assert any("inside-out" in s for s in report.repairs)
    tri = obj_triangles(obj)
    rng = np.random.default_rng(10)
    sliver = v[[0, 1, 2]].astype(np.float64)
    normal = np.cross(sliver[1] - sliver[0], sliver[2] - sliver[0])
    normal /= np.linalg.norm(normal)
    base = rng.dirichlet([1, 1, 1], 300) @ sliver
    offset = rng.choice([-1.0, 1.0], 300) * 10 ** rng.uniform(-10, -7, 300)
    pts = (base + offset[:, None] * normal).astype(np.float32)
    truth = _exact_inside_convex(pts, tri)
    d_float, _ = geometry.signed_distance(obj, pts, exact=False)
    d_exact, n_exact = geometry.signed_distance(obj, pts, exact=True)
    assert d_exact.dtype == jnp.float32
    off = truth != 0
    wrong_float = np.sign(np.asarray(d_float))[off] != truth[off]
    assert wrong_float.sum() >= 5, "float32 alone should get some of these signs wrong"
    np.testing.assert_array_equal(np.sign(np.asarray(d_exact))[off], truth[off])
    assert np.all(np.asarray(d_exact)[~off] == 0)
    assert np.all(np.isfinite(np.asarray(n_exact)))
    info = geometry.closest_features(obj, pts)
    assert bool(jnp.all(info.ambiguous))  # all within the float32 error bound
    # The host-side resolution of a floating-point query (what the evaluation uses) gives the
    # same exact signs, and the exact path's distances and normals.
    d_host, n_host = geometry.resolve_on_host(obj, pts, geometry.closest_features(obj, pts, exact=False))
    np.testing.assert_array_equal(np.sign(d_host)[off], truth[off])
    np.testing.assert_allclose(d_host, np.asarray(d_exact, np.float64), rtol=0, atol=0)
    np.testing.assert_allclose(n_host, np.asarray(n_exact, np.float64), rtol=0, atol=1e-7)


def test_exact_tie_between_nearly_touching_bodies():
    """Two boxes 1e-9 apart, float32: points a few micrometres inside one box are farther from
    the surface than the error bound, but float32 cannot tell the two facing faces apart. The
    near-tie test (a face of the opposite sign within the bound) sends them to the exact path."""
    rot = Rotation.random(random_state=5).as_matrix()
    box = trimesh.creation.box([0.05, 0.05, 0.05])
    upper = box.copy()
    upper.apply_translation([0, 0, 0.05 + 1e-9])
    mesh = trimesh.util.concatenate([box, upper])
    v = (mesh.vertices @ rot.T + [0.02, 0.01, -0.03]).astype(np.float32)
    obj, report = make_object(v, mesh.faces, dtype=np.float32, pad_to=PAD)
    assert report.num_bodies == 2 and report.watertight
    rng = np.random.default_rng(11)
    depth = rng.uniform(2e-6, 2e-5, 300) * rng.choice([-1.0, 1.0], 300)
    local = np.c_[rng.uniform(-0.02, 0.02, (300, 2)), 0.025 + 5e-10 * (1 + np.sign(depth)) + depth]
    pts = (local @ rot.T + [0.02, 0.01, -0.03]).astype(np.float32)
    tri = v[np.asarray(mesh.faces)]
    inside = (_exact_inside_convex(pts, tri[:12]) < 0) | (_exact_inside_convex(pts, tri[12:]) < 0)
    assert inside.all()
    d_float, _ = geometry.signed_distance(obj, pts, exact=False)
    info = geometry.closest_features(obj, pts)
    tol = geometry.TOL_FACTOR * np.finfo(np.float32).eps * (np.abs(pts).max(axis=1) +
                                                            float(obj.coord_bound))
    assert np.all(np.abs(np.asarray(info.distance)) > tol)  # not flagged for being near zero
    assert bool(jnp.all(info.ambiguous))
    assert (np.asarray(d_float) > 0).sum() >= 1, "float32 alone should pick a wrong face"
    assert np.all(np.asarray(info.distance) < 0)


# ----------------------------------------------------------------------------- derivatives
def _jacobians(obj, pts):
    """Per-point dd/dp (N, 3) and dn/dp (N, 3, 3) by forward mode, all points at once."""
    fun = lambda x: geometry.signed_distance(obj, x)  # noqa: E731
    cols = [jax.jvp(fun, (pts,), (jnp.broadcast_to(jnp.eye(3, dtype=pts.dtype)[i], pts.shape),))[1]
            for i in range(3)]
    return (jnp.stack([c[0] for c in cols], axis=-1), jnp.stack([c[1] for c in cols], axis=-1))


def _feature_key(obj, face, feature):
    """Global identity of a closest feature: ('f', face), ('e', v0, v1) or ('v', vertex)."""
    faces = np.asarray(obj.faces)
    keys = []
    for f, k in zip(np.asarray(face), np.asarray(feature)):
        if k == geometry.FACE:
            keys.append(("f", int(f)))
        elif k < geometry.VERTEX0:
            e = k - geometry.EDGE0
            keys.append(("e",) + tuple(sorted((faces[f, e], faces[f, (e + 1) % 3]))))
        else:
            keys.append(("v", int(faces[f, k - geometry.VERTEX0])))
    return keys


@pytest.mark.parametrize("which", ["box", "torus"])
def test_derivatives_match_central_differences(which, torus):
    if which == "box":
        mesh = rotated(trimesh.creation.box([0.04, 0.06, 0.1]), 3)
        obj, _ = make_object(mesh.vertices, mesh.faces, dtype=np.float64, pad_to=PAD)
    else:
        mesh, obj = torus
    rng = np.random.default_rng(12)
    pts = np.concatenate([sample_points(mesh, 200, rng), sample_points(mesh, 100, rng, 0.005)])
    h = 1e-6
    shifted = [pts] + [pts + s * h * np.eye(3)[i] for i in range(3) for s in (-1, 1)]
    infos = [geometry.closest_features(obj, x) for x in shifted]
    keys = [_feature_key(obj, i.face, i.feature) for i in infos]
    # Central differences are valid where the closest feature is the same at all p +- h e_i.
    stable = np.array([all(k[j] == keys[0][j] for k in keys) for j in range(len(pts))])
    feat = np.asarray(infos[0].feature)[stable]
    assert (feat == 0).sum() > 5 and ((feat >= 1) & (feat <= 3)).sum() > 5 and \
        (feat >= 4).sum() > 5, "need face, edge and vertex cases"
    jac_d, jac_n = _jacobians(obj, jnp.asarray(pts))
    fd_d = np.stack([(np.asarray(infos[2 * i + 2].distance) - np.asarray(infos[2 * i + 1].distance))
                     / (2 * h) for i in range(3)], axis=-1)
    fd_n = np.stack([(np.asarray(infos[2 * i + 2].normal) - np.asarray(infos[2 * i + 1].normal))
                     / (2 * h) for i in range(3)], axis=-1)
    np.testing.assert_allclose(np.asarray(jac_d)[stable], fd_d[stable], atol=1e-7)
    np.testing.assert_allclose(np.asarray(jac_n)[stable], fd_n[stable],
                               atol=1e-5 * np.abs(fd_n[stable]).max() + 1e-6)
    np.testing.assert_allclose(np.asarray(jac_d), np.asarray(infos[0].normal), atol=0)
    # Reverse mode agrees with forward mode.
    w = jnp.array([0.3, -0.2, 0.5])
    g = jax.grad(lambda x: jnp.sum(geometry.signed_distance(obj, x)[1] @ w))(jnp.asarray(pts))
    np.testing.assert_allclose(np.asarray(g), np.einsum("nij,ni->nj", np.asarray(jac_n), w[None]),
                               atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_nan_on_vertices_edges_and_surface(torus, dtype):
    mesh, _ = torus
    obj, _ = make_object(mesh.vertices, mesh.faces, dtype=dtype, pad_to=PAD)
    tri = obj_triangles(obj)
    pts = np.concatenate([tri[:, 0], 0.5 * (tri[:, 0] + tri[:, 1]), tri.mean(axis=1)])[::6]
    pts = jnp.asarray(pts.astype(dtype))

    def loss(x):
        d, n = geometry.signed_distance(obj, x)
        return jnp.sum(d ** 2 + d + n @ jnp.array([1.0, 2.0, 3.0], dtype))

    d, n = geometry.signed_distance(obj, pts)
    g = jax.grad(loss)(pts)
    jac_d, jac_n = _jacobians(obj, pts)
    assert g.dtype == dtype and jac_n.dtype == dtype
    for x in (d, n, g, jac_d, jac_n):
        assert bool(jnp.all(jnp.isfinite(x)))
    np.testing.assert_allclose(np.linalg.norm(np.asarray(n), axis=1), 1, atol=1e-5)
    assert np.abs(np.asarray(d)).max() < 1e-6
    assert np.all(np.asarray(d)[: len(range(0, len(tri), 6))] == 0)  # on vertices: d = 0


# ----------------------------------------------------------------------------- real scans
@pytest.mark.skipif(not os.path.isdir(SCANS), reason="../shared/objects not present")
def test_real_scans_load_and_match_float64_reference():
    rng = np.random.default_rng(13)
    for path in sorted(os.listdir(SCANS)):
        if not path.endswith(".stl"):
            continue
        obj, report = load_object(os.path.join(SCANS, path))
        print(report)
        assert report.num_faces > 16000 and report.repairs  # STL: at least merged vertices
        assert report.watertight, "stray zero-volume faces should have been repaired"
        tri = obj_triangles(obj)
        mesh = trimesh.Trimesh(tri.reshape(-1, 3), np.arange(len(tri) * 3).reshape(-1, 3),
                               process=False)
        pts = sample_points(mesh, 24, rng).astype(np.float32)
        d, _ = geometry.signed_distance(obj, pts)
        dist, _ = ref_closest(pts.astype(np.float64), tri)
        sign = np.where(ref_winding(pts.astype(np.float64), tri) > 0.5, -1.0, 1.0)
        np.testing.assert_allclose(np.asarray(d), sign * dist, atol=2e-7)
