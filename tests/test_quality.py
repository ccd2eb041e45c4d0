"""Contact weights, cone edges, wrench directions, Q1 upper bound and exact Q1 (jaxgrasp.quality.q1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog

from jaxgrasp.quality import q1 as Q

MU, LAM = 0.7, 20.0  # friction, torque scale for 5 cm contacts


def sphere_grasp(rng, n, radius=0.05, top_only=False):
    """n contacts on a sphere (outward normals); top_only: all on the upper cap (no closure)."""
    v = rng.normal(size=(n, 3))
    if top_only:
        v[:, 2] = np.abs(v[:, 2]) + 3.0
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return radius * v, v, rng.uniform(0.3, 1.0, n)


def cross_polytope_grasp(a=0.5, lam=10.0):
    """12 frictionless contacts whose wrenches are +-a e'_k for an orthonormal basis e'_k of R^6.

    e'_k = (e_i, +-e_{i+1}) / sqrt(2) (force orthogonal to torque, so each is one contact's
    wrench, at p = f x tau / lam); the polytope is a cross-polytope: Q1 = a / sqrt(6), reached at
    the facet normal R^T (1, ..., 1) / sqrt(6).
    """
    E = np.eye(3)
    p, n, basis = [], [], []
    for i in range(3):
        for sgn in (1.0, -1.0):
            f, tau = E[i], sgn * E[(i + 1) % 3]
            basis.append(np.concatenate([f, tau]) / np.sqrt(2.0))
            for s in (1.0, -1.0):
                p.append(np.cross(f, tau) / lam)
                n.append(-s * f)
    c = np.full(12, a / np.sqrt(2.0))
    s_star = np.array(basis).T @ np.ones(6) / np.sqrt(6.0)
    return np.array(p), np.array(n), c, s_star


def brute_support(g, u, c, mu, k=20000):
    """max g.f over the cone slice {f.u <= c, |f_t| <= mu f.u}: apex or a fine rim sampling."""
    t1, t2 = (np.asarray(t) for t in Q.tangent_frame(u, xp=np))
    ang = np.linspace(0, 2 * np.pi, k, endpoint=False)
    rim = c * (u[None] + mu * (np.cos(ang)[:, None] * t1[None] + np.sin(ang)[:, None] * t2[None]))
    return max(0.0, float(np.max(rim @ g)))


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 1, 4)])
def test_contact_weights_formula_and_shapes(shape):
    rng = np.random.default_rng(0)
    d = rng.normal(scale=0.02, size=shape)
    n_o = rng.normal(size=shape + (3,))
    n_o /= np.linalg.norm(n_o, axis=-1, keepdims=True)
    n_g = rng.normal(size=shape + (3,))
    n_g /= np.linalg.norm(n_g, axis=-1, keepdims=True)
    c = Q.contact_weights(jnp.asarray(d), jnp.asarray(n_o), jnp.asarray(n_g), 60.0, 8.0)
    ref = np.exp(-60.0 * np.abs(d) - 8.0 * (1.0 + np.sum(n_o * n_g, -1)))
    assert c.shape == shape
    np.testing.assert_allclose(np.asarray(c), ref, rtol=1e-12)
    # touching with opposed normals: weight 1; float32 in, float32 out
    c1 = Q.contact_weights(jnp.zeros(2, jnp.float32), jnp.asarray(n_o.reshape(-1, 3)[:2], jnp.float32),
                           -jnp.asarray(n_o.reshape(-1, 3)[:2], jnp.float32), 60.0, 8.0)
    assert c1.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(c1), 1.0, rtol=1e-6)


def test_config_for_size():
    cfg = Q.QualityConfig.for_size(0.05)
    assert cfg.alpha == pytest.approx(120.0) and cfg.torque_scale == pytest.approx(20.0)
    assert Q.characteristic_length(np.array([[0.1, 0, 0], [0, -0.1, 0]])) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        Q.characteristic_length(np.zeros((3, 3)))


def test_edge_wrenches_cone_and_numpy_agree():
    rng = np.random.default_rng(1)
    p, n, c = sphere_grasp(rng, 6)
    n[0] = [0.0, 0.0, -1.0]  # the frame's branch point (u_z = 1) and its neighbourhood
    n[1] = [1e-9, 0.0, 1.0]
    n[1] /= np.linalg.norm(n[1])
    V = Q.edge_wrenches(jnp.asarray(p), jnp.asarray(n), jnp.asarray(c), mu=MU, torque_scale=LAM, num_edges=5)
    V = np.asarray(V)
    Vn = Q.edge_wrenches(p, n, c, mu=MU, torque_scale=LAM, num_edges=5, xp=np)
    np.testing.assert_allclose(V, Vn, rtol=1e-12, atol=1e-15)
    f, tau = V[..., :3], V[..., 3:]
    u = -n[:, None, :]
    fn = np.sum(f * u, -1)
    np.testing.assert_allclose(fn, np.broadcast_to(c[:, None], fn.shape), rtol=1e-12)  # normal force = c
    ft = np.linalg.norm(f - fn[..., None] * u, axis=-1)
    np.testing.assert_allclose(ft, MU * fn, rtol=1e-10)  # edges on the cone surface
    np.testing.assert_allclose(tau, LAM * np.cross(p[:, None, :], f), rtol=1e-12, atol=1e-15)
    t1, t2 = (np.asarray(t) for t in Q.tangent_frame(jnp.asarray(-n)))
    for a, b in [(t1, t2), (t1, -n), (t2, -n)]:
        np.testing.assert_allclose(np.sum(a * b, -1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(t1, axis=-1), 1.0, rtol=1e-12)


def test_wrench_directions_spread():
    D = Q.wrench_directions(64)
    assert D.shape == (64, 6)
    np.testing.assert_allclose(np.linalg.norm(D, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(D, Q.wrench_directions(64))  # deterministic
    np.testing.assert_allclose(D[32:], -D[:32])  # antipodal pairs
    G = D @ D.T
    np.fill_diagonal(G, -1.0)
    assert np.degrees(np.arccos(G.max())) > 50.0  # separation (random 64 points: ~25 deg)
    x = np.random.default_rng(0).normal(size=(20000, 6))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert np.degrees(np.arccos(np.min(np.max(x @ D.T, axis=1)))) < 52.0  # covering radius
    with pytest.raises(ValueError):
        Q.wrench_directions(7)


def test_support_is_exact_and_paper_branch_is_not():
    rng = np.random.default_rng(2)
    u = np.array([0.0, 0.0, -1.0])
    for _ in range(20):
        g = rng.normal(size=3)
        p = np.zeros((1, 3))
        s = np.concatenate([g, np.zeros(3)])  # pure force direction, g = s_f
        ours = float(Q.q1_upper(jnp.asarray(p), jnp.asarray(-u[None]), jnp.ones(1), mu=MU, torque_scale=1.0,
                                directions=jnp.asarray(s[None])))
        assert ours == pytest.approx(brute_support(g, u, 1.0, MU), rel=1e-6, abs=1e-12)
    # the paper's branch g_perp + g_par^2 / g_perp (used when mu g_perp > g_par) underestimates
    g = np.array([0.1, 0.0, -1.0])  # g_perp = 1, g_par = 0.1 < mu
    g_perp, g_par = 1.0, 0.1
    paper = g_perp + g_par**2 / g_perp
    assert paper < brute_support(g, u, 1.0, MU) - 0.05
    assert g_perp + MU * g_par == pytest.approx(brute_support(g, u, 1.0, MU), rel=1e-6)


def test_cross_polytope_exact_and_upper_known_value():
    p, n, c, s_star = cross_polytope_grasp(a=0.5, lam=10.0)
    q = 0.5 / np.sqrt(6.0)
    assert Q.q1_exact(p, n, c, mu=0.0, torque_scale=10.0, num_edges=3) == pytest.approx(q, rel=1e-9)
    D = Q.wrench_directions()
    up = lambda dirs: float(Q.q1_upper(jnp.asarray(p), jnp.asarray(n), jnp.asarray(c), mu=0.0,  # noqa: E731
                                       torque_scale=10.0, directions=jnp.asarray(dirs)))
    assert up(np.vstack([D, s_star])) == pytest.approx(q, rel=1e-9)  # the minimizing direction
    assert up(D) > q  # D = 64 fixed directions: above
    # rotating the grasp (frictionless: no tangent-frame dependence) leaves Q1 unchanged
    R = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0]
    assert Q.q1_exact(p @ R.T, n @ R.T, c, mu=0.0, torque_scale=10.0, num_edges=3) == pytest.approx(q, rel=1e-9)


def test_exact_against_linprog_and_homogeneity():
    rng = np.random.default_rng(4)
    found = 0
    for _ in range(10):
        p, n, c = sphere_grasp(rng, 5)
        q = Q.q1_exact(p, n, c, mu=MU, torque_scale=LAM, num_edges=4)
        if q == 0.0:
            continue
        found += 1
        V = Q.edge_wrenches(p, n, c, mu=MU, torque_scale=LAM, num_edges=4, xp=np).reshape(-1, 6)
        from scipy.spatial import ConvexHull
        eq = ConvexHull(V).equations
        s = eq[np.argmin(-eq[:, -1]), :6]  # closest facet's normal
        for scale, inside in [(1.0 - 1e-7, True), (1.0 + 1e-6, False)]:
            # is scale * q * s a convex combination of the edge wrenches? (LP feasibility)
            res = linprog(np.zeros(len(V)), A_eq=np.vstack([V.T, np.ones(len(V))]),
                          b_eq=np.append(scale * q * s, 1.0), bounds=(0, None), method="highs")
            assert (res.status == 0) == inside
        # and every direction's support is >= q
        x = rng.normal(size=(2000, 6))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        assert np.min(np.max(x @ V.T, axis=1)) >= q - 1e-12
        assert Q.q1_exact(p, n, 3.0 * c, mu=MU, torque_scale=LAM, num_edges=4) == pytest.approx(3.0 * q, rel=1e-9)
    assert found >= 3


def test_exact_degenerate_sets_are_zero():
    rng = np.random.default_rng(5)
    p, n, c = sphere_grasp(rng, 6)
    assert Q.q1_exact(p, n, np.zeros(6), mu=MU, torque_scale=LAM) == 0.0  # zero weights
    same = (np.repeat(p[:1], 6, 0), np.repeat(n[:1], 6, 0), c)
    assert Q.q1_exact(*same, mu=MU, torque_scale=LAM) == 0.0  # coincident contacts: flat set
    assert Q.q1_exact(p[:1], n[:1], c[:1], mu=MU, torque_scale=LAM, num_edges=4) == 0.0  # < 7 points
    assert Q.q1_exact(p[:2], n[:2], c[:2], mu=MU, torque_scale=LAM, num_edges=8) == 0.0  # 2 contacts: no closure
    pt, nt, ct = sphere_grasp(rng, 8, top_only=True)
    assert Q.q1_exact(pt, nt, ct, mu=MU, torque_scale=LAM) == 0.0
    with pytest.raises(ValueError):
        Q.q1_exact(p, n[:3], c, mu=MU, torque_scale=LAM)


@pytest.mark.parametrize("batch", [(4,), (2, 3)])
def test_upper_bounds_exact_over_batches(batch):
    rng = np.random.default_rng(6)
    total = int(np.prod(batch))
    gs = [sphere_grasp(rng, 6, top_only=(i % 3 == 2)) for i in range(total)]
    p, n, c = (np.array(x).reshape(batch + np.array(x).shape[1:]) for x in zip(*gs))
    D = jnp.asarray(Q.wrench_directions())
    f = lambda p, n, c: Q.q1_upper(p, n, c, mu=MU, torque_scale=LAM, directions=D)  # noqa: E731
    for _ in batch:
        f = jax.vmap(f)
    up = np.asarray(jax.jit(f)(jnp.asarray(p), jnp.asarray(n), jnp.asarray(c)))
    assert up.shape == batch
    for idx in np.ndindex(batch):
        ex = Q.q1_exact(p[idx], n[idx], c[idx], mu=MU, torque_scale=LAM, num_edges=16)
        assert up[idx] >= ex - 1e-12
        if ex > 0:
            assert up[idx] <= 4.0 * ex  # a surrogate: loose, but not arbitrarily
    # no closure (all contacts on the top cap): the support along +f_z is 0, and is in the set
    pt, nt, ct = (jnp.asarray(x) for x in sphere_grasp(rng, 8, top_only=True))
    ez = jnp.asarray(np.vstack([Q.wrench_directions(), [0, 0, 1.0, 0, 0, 0]]))
    assert float(Q.q1_upper(pt, nt, ct, mu=MU, torque_scale=LAM, directions=ez)) == 0.0


def test_upper_gradient_finite_on_degenerate_inputs():
    rng = np.random.default_rng(7)
    p, n, c = (jnp.asarray(x) for x in sphere_grasp(rng, 6))
    D = jnp.asarray(Q.wrench_directions())
    g = jax.jit(jax.grad(lambda p, n, c: Q.q1_upper(p, n, c, mu=MU, torque_scale=LAM, directions=D), argnums=(0, 1, 2)))
    cases = {
        "coincident": (p.at[1].set(p[0]), n.at[1].set(n[0]), c),
        "zero weights": (p, n, jnp.zeros_like(c)),
        "zero normal": (p, n.at[0].set(0.0), c),
        "at origin": (jnp.zeros_like(p), n, c),
        # g parallel to the normal for a pure-force direction: |g_t| = 0 (double where)
        "aligned": (p.at[0].set(0.0), n.at[0].set(-D[0, :3] / jnp.linalg.norm(D[0, :3])), c),
    }
    for name, args in cases.items():
        for x in g(*args):
            assert bool(jnp.all(jnp.isfinite(x))), name
    # the upper bound's gradient reaches a single contact (the paper's motivation for the SDP)
    gp, gn, gc = g(p, n, c)
    per = np.asarray(jnp.sum(gp**2, 1) + jnp.sum(gn**2, 1) + gc**2)
    assert np.sum(per > 0) == 1



def test_hull_q1_separation_prefilter_matches_the_hull():
    """hull_q1 skips the 6-D hull when an LP finds a separating hyperplane; over inside, outside
    and barely-outside sets it must equal the hull-only value (scipy's ConvexHull)."""
    from scipy.spatial import ConvexHull

    def hull_only(V):
        eq = ConvexHull(V).equations
        q = float(np.min(-eq[:, -1]))
        return q if q > 1e-9 * np.max(np.linalg.norm(V, axis=1)) else 0.0

    rng = np.random.default_rng(11)
    zero = positive = 0
    for k in range(60):
        p, n, c = sphere_grasp(rng, 3 + k % 6, top_only=(k % 3 == 0))
        V = Q.edge_wrenches(p, n, c, mu=MU, torque_scale=LAM, num_edges=6, xp=np).reshape(-1, 6)
        if k % 5 == 4:  # shift so the origin sits just outside the hull
            q = hull_only(V)
            if q > 0:
                eq = ConvexHull(V).equations
                V = V + (q * (1.0 + 1e-6)) * eq[np.argmin(-eq[:, -1]), :6]
        got, want = Q.hull_q1(V), hull_only(V)
        assert got == pytest.approx(want, rel=1e-12, abs=0.0), (k, got, want)
        zero += want == 0.0
        positive += want > 0.0
    assert zero >= 10 and positive >= 10

