"""The reduced SOS program of :mod:`jaxgrasp.quality.sdp` as a standard-form SDP: its monomial
bookkeeping (:func:`sos_structure`), the blocks' coupling to the edge wrenches (:func:`_coupling`)
and the linear operators of the solver (:class:`_Ops`).

Reduction to an SDP. Monomials of degree <= 3 in 7 variables: 120. With Gram matrices on
``z8 = [1, w, b]`` (the issue's 8x8 blocks), the coefficient of ``b^3`` is ``-sum_j Q_j[b, b]``
(``L1 (|w|^2 - 1)`` and ``sigma0`` have no ``b^3``), so every ``Q_j[b, b] = 0`` and, the ``Q_j``
being PSD, their whole ``b`` rows vanish; then the residual has no ``b^2`` term, so the same holds
for ``sigma0``. The 8x8 program therefore has no strictly feasible point (its moment dual has no
optimum: ``E[b^3]`` runs to infinity), which ruins interior-point convergence and implicit
differentiation. Facial reduction drops ``b`` from every basis: Gram blocks are 7x7 on
``z = [1, w]``, and the monomials that can occur are those of degree <= 3 in ``w`` (84) and ``b``
times degree <= 2 in ``w`` (28): **112 equality constraints** (the other 8 of the 120, ``b^2``,
``b^2 w_k``, ``b^3``, are identically 0). Same optimal value (tests check it against the 8x8
program solved by Clarabel). Reading the reduced identity: its ``b`` part says
``sum_j L2_j(w) = 1`` on the sphere and its ``w`` part ``sum_j L2_j(w) (-V_j . w) - gamma >= 0`` on
the sphere, i.e. ``L2_j`` are SOS weights of a partition of unity certifying ``max_j V_j.(-w) >=
gamma``.

Moment (dual) form: a linear functional ``y`` on the 112 monomials (``E[x^a] = y_a``)::

    min E[b]  s.t.  E[1] = 1,  E[z_m (|w|^2 - 1)] = 0 (m = 1..8; dual to gamma and L1),
                    E[z z^T] >= 0 (7x7),  E[(V_j . w + b) z z^T] >= 0 (7x7, j = 1..J),
                    E[(1 +- w_k) z z^T] >= 0 (7x7, k = 1..6: 12 "ball" blocks).

The ball blocks are the only addition to the paper's structure. On the SOS side they are 12 more
SOS multipliers of ``1 +- w_k``, which is >= 0 wherever ``|w| = 1``: the certificate stays valid
and can only get tighter (paper's optimum <= ours <= min_{|w|=1} max_j V_j . w). They are
there for conditioning: the cubic moments ``E[w_a w_b w_c]`` enter the paper's blocks only through
``sum_k V_jk E[w_k z z^T]``, so when the edge wrenches do not span R^6 (zero weights, one contact)
whole moment directions are seen by no block and the Newton matrix is singular; the ball blocks
see every moment, for any V. With them the value matches the paper's program on every test case
(tests compare both with Clarabel). Block count: ``1 + 12 + J`` (J = K T), e.g. 193 for 45
contacts and T = 4 (the paper's structure: 45 T + 1).

Every block is ``S_j(y) = sum_q G_jq L_q(y)`` with the 8 base matrices ``L_q(y) = E[x_q z z^T]``,
``x_q in {1, w_1..w_6, b}``, gathered from ``y``; ``G_0 = e_1`` (moment block), ``e_1 +- e_{w_k}``
(ball), ``G_j = (0, V_j, 1)`` (localizing). The 9 equalities are eliminated with an orthonormal
null-space basis ``y = y0 + N u`` (u in R^103). Standard form: dual ``S(u) = M(y0 + N u) >= 0``,
primal Gram blocks ``X_j >= 0`` (the SOS multipliers) with ``N^T a(X) = N^T e_b`` where
``a(X)_alpha = sum_j <M_j(e_alpha), X_j>`` (coefficients of ``sum_j g_j z^T X_j z``). Duality gap
``<X, S> = E[b] - gamma``. ``n = 7 (J + 13)``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax.numpy as jnp
import numpy as np

NUM_VARS = 7  # (w_1..w_6, b)
BASIS = 7  # z = [1, w]
NUM_AUX = 13  # blocks before the localizing ones: the moment block and the 12 ball blocks


@dataclasses.dataclass(frozen=True)
class SOSStructure:
    """Host-side constants of the reduced program (NumPy, float64), built once.

    Attributes:
        monomials: (112, 7) exponents over (w_1..w_6, b).
        idx: (8, 7, 7) monomial index of ``x_q z_a z_b``, q over (1, w_1..w_6, b).
        E: (9, 112) equality rows (E[1] = 1, E[z_m (|w|^2 - 1)] = 0).
        y0: (112,) minimum-norm point of the equalities; N: (112, 103) orthonormal null basis.
        EN: (392, 103) ``sel @ N`` with ``sel[(q,a,b), alpha] = [idx[q,a,b] == alpha]``.
        pa, pb: (28,) the index pairs a <= b of a symmetric 7x7 matrix.
        EN_half: (8, 28, 103) rows of EN for the pairs a <= b (rows (a,b), (b,a) are equal).
        i_one, i_b: indices of the monomials 1 and b.
    """

    monomials: np.ndarray
    idx: np.ndarray
    E: np.ndarray
    y0: np.ndarray
    N: np.ndarray
    EN: np.ndarray
    pa: np.ndarray
    pb: np.ndarray
    EN_half: np.ndarray
    i_one: int
    i_b: int


def _unit(k: int) -> tuple[int, ...]:
    e = [0] * NUM_VARS
    if k >= 0:
        e[k] = 1
    return tuple(e)


@functools.lru_cache(maxsize=None)
def sos_structure() -> SOSStructure:
    """Monomial bookkeeping of the reduced SOS program (see module docstring)."""
    mons = [e for d in range(4) for e in itertools.product(range(d + 1), repeat=NUM_VARS) if sum(e) == d]
    mons = sorted(set(mons), key=lambda e: (sum(e), e[::-1]))
    mons = [e for e in mons if e[6] == 0 or (e[6] == 1 and sum(e[:6]) <= 2)]
    pos = {e: i for i, e in enumerate(mons)}
    z = [_unit(-1)] + [_unit(k) for k in range(6)]  # [1, w]
    xq = [_unit(-1)] + [_unit(k) for k in range(6)] + [_unit(6)]  # [1, w, b]
    add = lambda *es: tuple(map(sum, zip(*es)))  # noqa: E731
    idx = np.array([[[pos[add(q, a, b)] for b in z] for a in z] for q in xq], dtype=np.int64)
    m = len(mons)
    rows = [np.eye(m)[pos[_unit(-1)]]]
    for zm in xq:  # E[z_m (|w|^2 - 1)] with z_m over [1, w, b]
        r = np.zeros(m)
        for k in range(6):
            r[pos[add(zm, _unit(k), _unit(k))]] += 1.0
        r[pos[zm]] -= 1.0
        rows.append(r)
    E = np.stack(rows)
    rhs = np.zeros(len(rows))
    rhs[0] = 1.0
    y0 = np.linalg.lstsq(E, rhs, rcond=None)[0]
    _, sv, vt = np.linalg.svd(E)
    rank = int(np.sum(sv > 1e-10 * sv[0]))
    N = vt[rank:].T
    sel = np.zeros((8 * BASIS * BASIS, m))
    sel[np.arange(sel.shape[0]), idx.reshape(-1)] = 1.0
    EN = sel @ N
    pa, pb = np.triu_indices(BASIS)
    EN_half = EN.reshape(8, BASIS, BASIS, -1)[:, pa, pb]
    return SOSStructure(np.array(mons), idx, E, y0, N, EN, pa, pb, EN_half, pos[_unit(-1)], pos[_unit(6)])


class _Ops:
    """The structure constants in the working dtype (built inside traced code, constant-folded)."""

    def __init__(self, dtype):
        st = sos_structure()
        self.idx = jnp.asarray(st.idx)
        self.N = jnp.asarray(st.N, dtype)
        self.y0 = jnp.asarray(st.y0, dtype)
        self.EN = jnp.asarray(st.EN, dtype)
        self.Nb = jnp.asarray(st.N[st.i_b], dtype)  # e_b^T N
        self.pa, self.pb = st.pa, st.pb
        self.ENh = jnp.asarray(st.EN_half.reshape(-1, st.N.shape[1]), dtype)  # (224, 103)
        pair = st.pa * BASIS + st.pb
        self.half_flat = jnp.asarray(pair[:, None] * BASIS**2 + pair[None, :])  # (28, 28) into 7^4
        half = np.where(st.pa == st.pb, 0.5, 1.0)  # diagonal pairs were counted twice
        self.half_scale = jnp.asarray(half[:, None] * half[None, :], dtype)
        self.y0b = float(st.y0[st.i_b])

    def y(self, u):
        return self.y0 + self.N @ u

    def blocks(self, G, u):
        """``S_j = sum_q G_jq L_q(y)``: (13 + J, 7, 7)."""
        L = self.y(u)[self.idx]  # (8, 7, 7) base moment matrices E[x_q z z^T]
        return jnp.einsum("jq,qab->jab", G, L)

    def blocks_lin(self, G, du):
        """Linear part ``M(N du)`` (no y0)."""
        return jnp.einsum("jq,qab->jab", G, (self.N @ du)[self.idx])

    def adjoint(self, G, Y):
        """``N^T a(Y)`` for blocks Y (symmetric or not: the base matrices are symmetric)."""
        W = jnp.einsum("jq,jab->qab", G, Y)
        return self.EN.T @ W.reshape(-1)

    def schur(self, G, X, Y):
        """``H_kl = sum_j tr(A_k X_j A_l Y_j)`` in reduced coordinates, (103, 103).

        Symmetric matrices are half-vectorized over the 28 pairs a <= b:
        ``W_j[p, p'] = sum over orientations (a,b) of p, (c,d) of p' of X_j[b,c] Y_j[d,a]``, then
        ``H = ENh^T (sum_j G_jq G_jr W_j) ENh`` with ``ENh`` the (8 x 28, 103) rows of ``sel N``.
        """
        nb = G.shape[0]
        T = Y.swapaxes(-1, -2)[:, :, None, None, :] * X[:, None, :, :, None]  # T[j,a,b,c,d] = Y[d,a] X[b,c]
        T = T + T.swapaxes(1, 2)
        T = T + T.swapaxes(3, 4)
        W = T.reshape(nb, -1)[:, self.half_flat] * self.half_scale  # (nb, 28, 28)
        GG = (G[:, :, None] * G[:, None, :]).reshape(nb, 64)
        K = (GG.T @ W.reshape(nb, -1)).reshape(8, 8, 28, 28).transpose(0, 2, 1, 3).reshape(224, 224)
        H = self.ENh.T @ (K @ self.ENh)
        return 0.5 * (H + H.T)


def _coupling(V):
    """G (13 + J, 8) over the base matrices (1, w_1..w_6, b).

    Block 0: moment block ``E[z z^T]`` (e_1). Blocks 1..12: ``E[(1 +- w_k) z z^T]`` (the valid
    ``|w_k| <= 1`` on the sphere, see the module docstring). Blocks 13..: ``E[(V_j.w + b) z z^T]``.
    """
    J = V.shape[0]
    loc = jnp.concatenate([jnp.zeros((J, 1), V.dtype), V, jnp.ones((J, 1), V.dtype)], axis=1)
    eye = np.eye(8)
    aux = np.concatenate([eye[:1], eye[0] + eye[1:7], eye[0] - eye[1:7]])
    return jnp.concatenate([jnp.asarray(aux, V.dtype), loc], axis=0)
