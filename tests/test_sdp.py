"""SOS lower bound of Q1: reduction, interior-point solver, bounds ordering, gradients (jaxgrasp.quality.sdp)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_quality import LAM, MU, cross_polytope_grasp, sphere_grasp

from jaxgrasp.quality import q1 as Q
from jaxgrasp.quality import sdp

T = 3  # cone edges in these tests: 4 contacts -> J = 12 blocks, the shape most tests share

_solve = jax.jit(sdp.sos_solution)  # (J, 6) -> SOSSolution, compiled once per J


def edges(p, n, c, num_edges=T):
    return Q.edge_wrenches(np.asarray(p, np.float64), np.asarray(n, np.float64), np.asarray(c, np.float64),
                           mu=MU, torque_scale=LAM, num_edges=num_edges, xp=np).reshape(-1, 6)


def lower_V(V):
    return float(_solve(jnp.asarray(V)).value)


def test_reduction_bookkeeping():
    st = sdp.sos_structure()
    assert len(st.monomials) == 112  # of the 120 monomials of degree <= 3 in (w, b)
    all120 = {e for d in range(4) for e in itertools.product(range(4), repeat=7) if sum(e) == d}
    assert len(all120) == 120
    dropped = all120 - {tuple(e) for e in st.monomials}
    assert all(e[6] >= 2 for e in dropped) and len(dropped) == 8  # b^2, b^2 w_k, b^3
    z = np.vstack([np.zeros(7, int), np.eye(7, dtype=int)[:6]])  # [1, w]
    xq = np.vstack([np.zeros(7, int), np.eye(7, dtype=int)])  # [1, w, b]
    for q, a, b in itertools.product(range(8), range(7), range(7)):
        np.testing.assert_array_equal(st.monomials[st.idx[q, a, b]], xq[q] + z[a] + z[b])
    np.testing.assert_allclose(st.N.T @ st.N, np.eye(103), atol=1e-12)
    np.testing.assert_allclose(st.E @ st.N, 0.0, atol=1e-12)
    np.testing.assert_allclose(st.E @ st.y0, np.eye(9)[0], atol=1e-12)


def test_schur_matches_definition():
    rng = np.random.default_rng(0)
    nb = sdp.NUM_AUX + 3
    A = rng.normal(size=(nb, 7, 7))
    X = A @ A.transpose(0, 2, 1) + np.eye(7)
    B = rng.normal(size=(nb, 7, 7))
    Y = B @ B.transpose(0, 2, 1) + np.eye(7)
    G = np.asarray(sdp._coupling(jnp.asarray(rng.normal(size=(nb - sdp.NUM_AUX, 6)))))
    st = sdp.sos_structure()
    ops = sdp._Ops(jnp.float64)
    H = np.asarray(ops.schur(jnp.asarray(G), jnp.asarray(X), jnp.asarray(Y)))
    ref = np.zeros((103, 103))
    for j in range(nb):  # A_k^j = M_j(N_k), brute force
        Ak = np.einsum("q,kqab->kab", G[j], st.N.T[:, st.idx])
        ref += np.einsum("kab,bc,lcd,da->kl", Ak, X[j], Ak, Y[j])
    np.testing.assert_allclose(H, ref, rtol=1e-11, atol=1e-9)
    Hinv = np.asarray(sdp._spd_inverse(jnp.asarray(ref), 0.0))
    np.testing.assert_allclose(Hinv @ ref, np.eye(103), atol=1e-8)


def test_solution_kkt_and_random_sets_ordering():
    rng = np.random.default_rng(1)
    fc, nfc = 0, 0
    for i in range(8):
        p, n, c = sphere_grasp(rng, 4, top_only=(i % 4 == 3))
        V = edges(p, n, c)
        sol = _solve(jnp.asarray(V))
        ex = Q.q1_exact(p, n, c, mu=MU, torque_scale=LAM, num_edges=T)
        lo = float(sol.value)
        assert lo <= ex + 1e-10
        if ex > 0:
            fc += 1
            assert lo > 0.5 * ex  # informative on closed grasps
        else:
            nfc += 1
            assert lo <= 1e-10  # no closure: nothing positive can be certified
        # KKT: X = mu S^-1 (centred), both PSD, primal residual small, gap = n mu
        X, S = np.asarray(sol.X), np.asarray(sol.S)
        assert np.linalg.eigvalsh(X).min() > 0 and np.linalg.eigvalsh(S).min() > 0
        np.testing.assert_allclose(np.einsum("jab,jbc->jac", X, S), float(sol.mu) * np.eye(7)[None].repeat(len(X), 0),
                                   atol=1e-12)
        assert float(sol.primal_residual) < 1e-6
        assert float(sol.gap) == pytest.approx(7 * (len(V) + sdp.NUM_AUX) * float(sol.mu), rel=1e-6)
        # the moments satisfy the eliminated equalities E[1] = 1, E[|w|^2] = 1
        st = sdp.sos_structure()
        np.testing.assert_allclose(st.E @ np.asarray(sol.y), np.eye(9)[0], atol=1e-10)
        assert int(sol.iterations) < sdp.SDPOptions().max_iters
    assert fc >= 3 and nfc >= 2


def test_cross_polytope_all_three_agree():
    p, n, c, s_star = cross_polytope_grasp(a=0.5, lam=10.0)
    V = Q.edge_wrenches(p, n, c, mu=0.0, torque_scale=10.0, num_edges=1, xp=np).reshape(-1, 6)  # J = 12
    q = 0.5 / np.sqrt(6.0)
    lo = lower_V(V)
    ex = Q.q1_exact(p, n, c, mu=0.0, torque_scale=10.0, num_edges=1)
    up = float(Q.q1_upper(jnp.asarray(p), jnp.asarray(n), jnp.asarray(c), mu=0.0, torque_scale=10.0,
                          directions=jnp.asarray(np.vstack([Q.wrench_directions(), s_star]))))
    assert ex == pytest.approx(q, rel=1e-9) and up == pytest.approx(q, rel=1e-9)
    assert lo <= q and lo == pytest.approx(q, abs=7 * (12 + sdp.NUM_AUX) * 1e-9 + 1e-9)  # tight up to n mu_final


def _clarabel_8x8(V, ball):
    """The issue's SOS program with 8x8 Gram blocks on [1, w, b] and all 120 monomials (cvxpy).

    ball: also the 12 multipliers of (1 +- w_k) that jaxgrasp.quality.sdp adds (False: the paper's program).
    """
    cp = pytest.importorskip("cvxpy")
    mons = sorted({e for d in range(4) for e in itertools.product(range(4), repeat=7) if sum(e) == d})
    pos = {e: i for i, e in enumerate(mons)}
    unit = [tuple(np.eye(7, dtype=int)[k]) for k in range(7)]
    zero = (0,) * 7
    z8 = [zero] + unit  # [1, w, b]
    add = lambda *es: tuple(map(sum, zip(*es)))  # noqa: E731

    def gram_matrix(g):  # g: {exponent: coeff}; columns over (a, b) of the 8x8 Gram
        A = np.zeros((len(mons), 64))
        for (a, za), (b, zb) in itertools.product(enumerate(z8), enumerate(z8)):
            for e, v in g.items():
                A[pos[add(e, za, zb)], a * 8 + b] += v
        return A

    rhs = np.zeros(len(mons))
    rhs[pos[unit[6]]] = 1.0  # the polynomial b
    Hl = np.zeros((len(mons), 8))  # L1 = sum_m l_m z_m times (|w|^2 - 1)
    for m, zm in enumerate(z8):
        for k in range(6):
            Hl[pos[add(zm, unit[k], unit[k])], m] += 1.0
        Hl[pos[zm], m] -= 1.0
    gs = []
    for v in V:
        g = {unit[6]: 1.0}
        g.update({unit[k]: float(v[k]) for k in range(6)})
        gs.append(g)
    if ball:
        gs += [{zero: 1.0, unit[k]: s} for s in (1.0, -1.0) for k in range(6)]
    gamma, lm = cp.Variable(), cp.Variable(8)
    Qs = [cp.Variable((8, 8), PSD=True) for _ in range(len(gs) + 1)]
    expr = gamma * np.eye(len(mons))[pos[zero]] + Hl @ lm + gram_matrix({zero: 1.0}) @ cp.vec(Qs[0], order="C")
    for g, Qj in zip(gs, Qs[1:]):
        expr = expr + gram_matrix(g) @ cp.vec(Qj, order="C")
    prob = cp.Problem(cp.Maximize(gamma), [expr == rhs])
    prob.solve(solver=cp.CLARABEL)
    return prob.value, max(np.abs(Qq.value[7]).max() for Qq in Qs[1:])


def test_against_clarabel_full_8x8_program():
    rng = np.random.default_rng(2)
    for top in (False, True):
        p, n, c = sphere_grasp(rng, 4, top_only=top)
        V = edges(p, n, c)
        ref, b_row = _clarabel_8x8(V, ball=True)
        lo = lower_V(V)
        assert lo == pytest.approx(ref, abs=2e-5)  # same optimum: the b rows carry nothing
        assert lo <= ref + 1e-7  # certified side of the optimum
        assert b_row < 1e-3
        paper, _ = _clarabel_8x8(V, ball=False)  # the paper's blocks only: never above ours
        assert paper <= lo + 2e-5


K = 4  # the gradient tests keep the 4 heaviest of 7 contacts: J = 12 again


def _contact_args(seed=3):
    """7 contacts, 3 of negligible weight, whose 4 heaviest are force-closed."""
    rng = np.random.default_rng(seed)
    while True:
        p, n, c = sphere_grasp(rng, 7)
        c[[1, 4, 5]] = [1e-4, 2e-4, 3e-4]
        keep = np.argsort(-c)[:K]
        if Q.q1_exact(p[keep], n[keep], c[keep], mu=MU, torque_scale=LAM, num_edges=T) > 0:
            return tuple(jnp.asarray(x) for x in (p, n, c)), keep


def _lower(options):
    f = lambda p, n, c: Q.q1_lower(p, n, c, mu=MU, torque_scale=LAM, num_tangents=T, k_contacts=K,  # noqa: E731
                                   options=options)
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))


_envelope = _lower(sdp.SDPOptions())


def test_gradients_implicit_vs_central_differences_vs_envelope():
    args, keep = _contact_args()
    v_i, g_i = _lower(sdp.SDPOptions(grad="implicit"))(*args)
    v_e, g_e = _envelope(*args)
    assert float(v_i) == pytest.approx(float(v_e), abs=1e-12)
    # top-K: the value is the SOS bound of the K heaviest contacts, still below the full exact Q1
    sub = [np.asarray(a)[keep] for a in args]
    assert float(v_e) == pytest.approx(lower_V(edges(*sub)), abs=1e-9)
    assert float(v_e) <= Q.q1_exact(*(np.asarray(a) for a in args), mu=MU, torque_scale=LAM, num_edges=T) + 1e-10
    dropped = np.setdiff1d(np.arange(7), keep)
    for g in g_e:
        assert np.all(np.asarray(g)[dropped] == 0.0)
    rng = np.random.default_rng(4)
    h = 1e-6

    def value(p, n, c):  # the same function, evaluated through the V-level compiled solver
        return lower_V(edges(p[keep], n[keep], c[keep]))

    gi = np.concatenate([np.ravel(x) for x in g_i])
    ge = np.concatenate([np.ravel(x) for x in g_e])
    x0 = np.concatenate([np.ravel(np.asarray(a)) for a in args])
    split = np.cumsum([a.size for a in args])[:-1]
    for _ in range(3):
        d = rng.normal(size=x0.size)
        plus, minus = np.split(x0 + h * d, split), np.split(x0 - h * d, split)
        fd = (value(*(a.reshape(b.shape) for a, b in zip(plus, args)))
              - value(*(a.reshape(b.shape) for a, b in zip(minus, args)))) / (2 * h)
        assert gi @ d == pytest.approx(fd, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(ge, gi, rtol=0, atol=1e-3 * np.abs(gi).max())  # O(mu_final) apart
    assert np.linalg.norm(ge - gi) < 1e-3 * np.linalg.norm(gi)


def test_gradient_reaches_every_weighted_contact():
    args, keep = _contact_args(seed=5)

    def per_contact(g):
        return np.asarray(jnp.sum(g[0] ** 2, 1) + jnp.sum(g[1] ** 2, 1) + g[2] ** 2)[keep]

    # certified optimum (default): strictly positive on every kept contact (X = mu S^-1 > 0);
    # the inactive contacts' share is O(mu_final)
    per = per_contact(_envelope(*args)[1])
    assert np.all(per > 0)
    # a larger barrier (a smoothing temperature) spreads it: every contact gets >= 1e-3 of the max
    v, g = _lower(sdp.SDPOptions(mu_final=1e-4))(*args)
    per = per_contact(g)
    assert np.all(per > 1e-6 * per.max())  # squared norms: 1e-3 in norm
    assert float(v) <= Q.q1_exact(*(np.asarray(a) for a in args), mu=MU, torque_scale=LAM, num_edges=T)


def test_degenerate_inputs_finite():
    (p, n, c), keep = _contact_args(seed=6)
    i, j = keep[:2]
    cases = {
        "coincident": (p.at[j].set(p[i]), n.at[j].set(n[i]), c.at[j].set(c[i])),
        "zero weight": (p, n, c.at[i].set(0.0)),
        "all zero weights": (p, n, jnp.zeros_like(c)),
        "zero normal": (p, n.at[i].set(0.0), c),
    }
    for name, a in cases.items():
        v, g = _envelope(*a)
        assert np.isfinite(float(v)), name
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in g), name
    v, _ = _envelope(*cases["all zero weights"])
    assert abs(float(v)) < 1e-6  # no wrench at all: Q1 = 0 = the certified bound (up to n mu)


def test_float32_keeps_dtype():
    rng = np.random.default_rng(7)
    p, n, c = sphere_grasp(rng, 4)
    V = edges(p, n, c)
    s32 = jax.jit(sdp.sos_solution)(jnp.asarray(V, jnp.float32))
    assert s32.value.dtype == jnp.float32 and s32.X.dtype == jnp.float32
    assert float(s32.value) == pytest.approx(lower_V(V), abs=5e-3)
    assert float(s32.value) <= Q.q1_exact(p, n, c, mu=MU, torque_scale=LAM, num_edges=T) + 1e-4
