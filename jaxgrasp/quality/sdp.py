"""SOS lower bound of Q1 (paper eq. 4) as an SDP, and a batched primal-dual interior-point solver.

Input: the J edge wrenches ``V`` (J, 6) of the linearized, weighted friction cones (built by
:func:`jaxgrasp.quality.q1.edge_wrenches`; scaled wrench space, Euclidean norm). The polytope
``W = conv(0, V_1..V_J)`` has ``Q1 = min_{|w|=1} max(0, max_j V_j . w)``.

SOS program (eq. 4, Dai et al.'s degree pattern), in ``x = (w in R^6, b)``::

    max gamma  s.t.  b - gamma - L1(x) (|w|^2 - 1) - sum_j L2_j(x) (V_j . w + b) = sigma0(x),
                     L1 affine (free), L2_j SOS of degree 2, sigma0 SOS of degree 2.

On ``S = {|w| = 1, V_j . w + b >= 0 for all j}`` the identity gives ``b >= gamma``, and
``min_S b = min_{|w|=1} max_j V_j . (-w) = min_{|w|=1} max_j V_j . w``, so ``gamma <= Q1`` for a
force-closure set and ``gamma <= min_w max_j V_j . w <= 0`` otherwise: the value can be negative
(no closure certified) and stays informative there (its gradient pushes towards closure).

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

Solver: infeasible-primal, feasible-dual, path-following with the HKM direction and Mehrotra's
predictor-corrector; the Schur complement is 103x103, ``H_kl = sum_j tr(A_k X_j A_l S_j^-1)``,
formed through the 224x224 matrix ``K[(q,p),(r,p')] = sum_j G_jq G_jr W_j[p,p']`` over symmetric
index pairs p, p' (``_Ops.schur``) and a fixed 0/1 map: O(64 (J + 13) 28^2) per step. The dual
start is the moment vector of (w uniform on the sphere, b = B), ``B = 1 + max_j |V_j|``, strictly
feasible for every V. The barrier parameter is driven down to a fixed ``mu_final`` (not to zero;
the last steps near it are plain centring steps) and the end point is re-centred by damped Newton
steps on the dual barrier ``f(u) = E[b] / mu_final - log det S(u)``. Its root condition
``F(u, V) = N^T (e_b - a(mu_final S(u)^-1)) = 0`` is the central-path point: ``X = mu_final S^-1``
is a feasible SOS certificate, so the returned value ``gamma = E[b] - n mu_final`` is a
*certified* lower bound and a smooth (analytic) function of V, at most ``n mu_final`` below the
SDP optimum. Fixed shapes; ``lax.while_loop`` with tolerances, so it vmaps over grasps.

Gradients (both w.r.t. V):

* ``"envelope"`` (default): ``dgamma/dV_jk = -<X_j, E[w_k z z^T]>`` from the primal-dual pair
  (envelope theorem on the barrier problem). No linear solve, no extra memory: the cheapest
  (measurements: docs/decisions.md, "SOS lower bound: envelope gradient"). It is the exact
  gradient of the barrier value and differs from that of the returned value by O(mu_final)
  (relative 3e-5 at the default 1e-9; tests check both against central differences).
* ``"implicit"``: ``jaxopt.implicit_diff.custom_root`` on ``F(u, V) = 0``; the Jacobian
  ``dF/du = mu_final H(S^-1, S^-1)`` is the SPD 103x103 barrier Hessian, materialized by 103 JVPs
  and inverted densely. Exact for the returned value (matches central differences to 1e-8).

Numerical guards: no LAPACK calls (see the comment above ``_sweep_small``); the Schur matrix is
Jacobi-scaled with a relative ridge ``reg``, pivots that rounding pushes below it are raised to
it; step lengths keep X, S interior (bisection on LDL pivots); a step that comes out non-finite is
dropped and the loop ends on the last finite iterate.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxopt import implicit_diff

NUM_VARS = 7  # (w_1..w_6, b)
BASIS = 7  # z = [1, w]


@dataclasses.dataclass(frozen=True)
class SDPOptions:
    """Static solver options (hashable: pass to jit as static).

    Attributes:
        max_iters: cap on predictor-corrector iterations (a while_loop stops earlier at tolerance).
        mu_final: barrier parameter of the returned central point; ``None`` picks 1e-9 for float64
            and 1e-5 for float32 inputs. Gap to the SDP optimum <= 7 (J + 13) mu_final. A larger
            value is a smoothing temperature: a looser (still certified) bound whose gradient
            reaches the inactive contacts too (see the tests and the benchmark).
        newton_steps: cap on the final dual-centering Newton steps.
        newton_tol: stop centering at this Newton decrement; ``None``: 1e-6 (f64), 1e-3 (f32).
            The barrier value is then within ``tol^2`` of the central point's.
        step_fraction: fraction of the distance to the PSD boundary taken per step.
        reg: relative ridge on the Jacobi-scaled Schur matrix; ``None``: 1e-12 (f64), 1e-6 (f32).
        grad: ``"envelope"`` (default) or ``"implicit"`` (jaxopt custom_root).
    """

    max_iters: int = 60
    mu_final: float | None = None
    newton_steps: int = 20
    newton_tol: float | None = None
    step_fraction: float = 0.95
    reg: float | None = None
    grad: Literal["envelope", "implicit"] = "envelope"

    def resolved(self, dtype) -> tuple[float, float]:
        f64 = jnp.dtype(dtype) == jnp.float64
        mu = self.mu_final if self.mu_final is not None else (1e-9 if f64 else 1e-5)
        reg = self.reg if self.reg is not None else (1e-12 if f64 else 1e-6)
        return float(mu), float(reg)

    def tol(self, dtype) -> float:
        f64 = jnp.dtype(dtype) == jnp.float64
        return float(self.newton_tol if self.newton_tol is not None else (1e-6 if f64 else 1e-3))


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


@struct.dataclass
class SOSSolution:
    """Primal-dual solution of one SOS program (diagnostics; all leaves are arrays).

    Attributes:
        value: certified lower bound ``gamma = E[b] - n mu_final``.
        y: (112,) moments; u: (103,) reduced moments.
        X: (13 + J, 7, 7) Gram blocks = mu_final S^-1 (block 0: sigma0, 1..12: ball multipliers,
            13 + j: L2_j).
        S: (13 + J, 7, 7) moment block, ball blocks, localizing blocks.
        mu: barrier parameter of the returned point (mu_final); gap: ``<X, S>``.
        primal_residual: ``|N^T (e_b - a(X))|``; newton_decrement: of the last centering step.
        iterations: predictor-corrector iterations used.
    """

    value: jax.Array
    y: jax.Array
    u: jax.Array
    X: jax.Array
    S: jax.Array
    mu: jax.Array
    gap: jax.Array
    primal_residual: jax.Array
    newton_decrement: jax.Array
    iterations: jax.Array


# ----------------------------------------------------------------------------- operators
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


def _sym(A):
    return 0.5 * (A + jnp.swapaxes(A, -1, -2))


# Dense linear algebra is written in plain jnp ops: jaxlib's batched LAPACK kernels (cholesky,
# eigh, triangular solves) split their batch over XLA's intra-op pool and block on it, and two of
# them running concurrently on a 2-thread pool deadlock (docs/decisions.md, "No LAPACK calls").
# Small blocks use a Gauss-Jordan sweep in a fori_loop (compact HLO: short compiles); the Schur
# matrix a blocked sweep.
def _sweep_small(A, floor=None):
    """Inverse and smallest pivot of symmetric blocks (..., n, n) by Gauss-Jordan sweeps.

    Sweeping index k: ``a_kk <- -1/a_kk``, ``a_ik <- a_ik / a_kk``, ``a_ij <- a_ij - a_ik a_kj / a_kk``;
    after all n, ``A = -A^-1``. The pivots are those of ``L D L^T``: all > 0 iff the block is PD.

    Args:
        A: (..., n, n) symmetric.
        floor: raise pivots below it to it (a modified factorization for matrices that rounding
            made slightly indefinite); None: a non-positive pivot is replaced by 1 so the result
            stays finite (only its min pivot is then meaningful).

    Returns:
        (A^-1 (..., n, n), min pivot (...)).
    """
    n = A.shape[-1]
    idx = jnp.arange(n)

    def body(k, carry):
        A, pmin = carry
        col = jnp.take(A, k, axis=-1)  # (..., n)
        piv = jnp.take(col, k, axis=-1)
        pmin = jnp.minimum(pmin, piv)
        if floor is None:
            piv = jnp.where(piv > 0, piv, 1.0)  # the answer (not PD) is known: keep finite
        else:
            piv = jnp.maximum(piv, floor)
        piv = piv[..., None]
        B = A - col[..., :, None] * col[..., None, :] / piv[..., None]
        e = idx == k
        newcol = jnp.where(e, -1.0 / piv, col / piv)
        B = jnp.where(e[:, None], newcol[..., None, :], B)
        return jnp.where(e[None, :], newcol[..., :, None], B), pmin

    pmin0 = jnp.full(A.shape[:-2], jnp.inf, A.dtype)
    Ainv, pmin = jax.lax.fori_loop(0, n, body, (A, pmin0))
    return -Ainv, pmin


def _inv(S, floor=None):
    """Inverse of SPD blocks (..., n, n)."""
    return _sweep_small(_sym(S), floor)[0]


def _max_step(X, Xinv, D, iters: int = 12):
    """``t = 1 / alpha_max`` for the moves ``X_g + alpha D_g`` of each group g (0: unbounded).

    Args:
        X, Xinv, D: (g, nb, n, n) current PD blocks, their inverses, directions; all nb blocks
            of a group move with one step length.

    ``X + alpha D >= 0  <=>  Z + (1/alpha) I >= 0`` with ``Z = X^-1/2 D X^-1/2``, tested as
    ``D + t X >= 0`` (congruent). Bisection in log scale over ``[1e-10, 1] * max |Z|_F``
    (``|Z|_F^2 = tr((X^-1 D)^2) >= lambda_min^2``); returns the upper, always feasible end (ratio
    error < 1.006), so ``alpha = frac / t`` never overshoots.
    """
    XiD = Xinv @ D
    fro = jnp.sqrt(jnp.maximum(jnp.sum(XiD * jnp.swapaxes(XiD, -1, -2), axis=(-2, -1)), 0.0))
    hi = jnp.max(fro, axis=-1)  # (g,)
    log_hi = jnp.log(jnp.maximum(hi, jnp.finfo(D.dtype).tiny))  # hi = 0: D = 0, any step is fine
    log_lo = log_hi - 23.0  # 1e-10 * hi

    def pd(log_t):  # (g,) -> (g,) bool: every block of the group PD at t
        _, piv = _sweep_small(_sym(D + jnp.exp(log_t)[:, None, None, None] * X))
        return jnp.min(piv, axis=-1) > 0

    def body(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        ok = pd(mid)
        return jnp.where(ok, lo, mid), jnp.where(ok, mid, hi)

    _, log_t = jax.lax.fori_loop(0, iters, body, (log_lo, log_hi))
    return jnp.where(pd(log_lo), 0.0, jnp.exp(log_t)).astype(D.dtype)


def _sweep_inverse(A, floor, bs: int = 8):
    """Inverse of an SPD matrix (m, m) by block Gauss-Jordan sweeps over bs x bs pivot blocks.

    Sweeping the pivot block K: ``A_KK <- -A_KK^-1``, ``A_RK <- A_RK A_KK^-1`` (and its transpose),
    ``A_RR <- A_RR - A_RK A_KK^-1 A_KR``; after every block ``A = -A^-1``. The pivot blocks are
    Schur complements of an SPD matrix (SPD: no pivoting needed); pivots that rounding pushed
    below ``floor`` are raised to it. m is padded with identity rows.
    """
    m = A.shape[-1]
    nblk = -(-m // bs)
    mp = nblk * bs
    Ap = jnp.eye(mp, dtype=A.dtype).at[:m, :m].set(A)

    def body(k, A):
        k0 = k * bs
        C = jax.lax.dynamic_slice(A, (0, k0), (mp, bs))  # columns K
        P = jax.lax.dynamic_slice(C, (k0, 0), (bs, bs))
        Pinv = _inv(P, floor)
        CP = C @ Pinv
        A = A - CP @ C.T
        newcols = jax.lax.dynamic_update_slice(CP, -Pinv, (k0, 0))
        A = jax.lax.dynamic_update_slice(A, newcols, (0, k0))
        return jax.lax.dynamic_update_slice(A, newcols.T, (k0, 0))

    return -jax.lax.fori_loop(0, nblk, body, Ap)[:m, :m]


def _spd_inverse(H, reg):
    """Inverse of an SPD (possibly singular, badly scaled) matrix, Jacobi-scaled with a ridge.

    Jacobi scaling removes the diagonal spread of the interior-point Schur matrix; the relative
    ridge ``reg`` keeps the sweep finite where H is singular (moment directions that no block
    sees; right-hand sides vanish there, so the ridge only pins those components).
    """
    d = jnp.diagonal(H)
    dmax = jnp.max(d)
    # zero diagonal entries (unseen directions): scale 1 so the row stays 0 and the ridge acts
    d = jnp.where(d > 1e-30 * dmax, d, jnp.maximum(dmax, 1.0))
    s = 1.0 / jnp.sqrt(d)
    Hs = H * s[:, None] * s[None, :] + reg * jnp.eye(H.shape[0], dtype=H.dtype)
    # Hs has a unit diagonal: pivots below the ridge are rounding noise of a singular direction
    return s[:, None] * _sweep_inverse(_sym(Hs), jnp.asarray(reg, H.dtype)) * s[None, :]


NUM_AUX = 13  # blocks before the localizing ones: the moment block and the 12 ball blocks


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


def _initial_u(ops: _Ops, V):
    """Moments of (w uniform on S^5, b = B): strictly feasible for B^2 > |V_j|^2 / 6."""
    st = sos_structure()
    B = 1.0 + jnp.max(jnp.sqrt(jnp.sum(V * V, axis=-1) + 1.0))  # sqrt(.+1) > 0: no double where needed
    y = np.zeros(len(st.monomials))
    yb = np.zeros(len(st.monomials))
    for i, e in enumerate(st.monomials):
        w = np.array(e[:6])
        if e[6] == 0 and sum(w) == 0:
            y[i] = 1.0
        elif sum(w) == 2 and w.max() == 2:
            (y if e[6] == 0 else yb)[i] = 1.0 / 6.0
        elif e[6] == 1 and sum(w) == 0:
            yb[i] = 1.0
    y_init = jnp.asarray(y, V.dtype) + B * jnp.asarray(yb, V.dtype)
    return ops.N.T @ (y_init - ops.y0)


# ----------------------------------------------------------------------------- solver
def _steps(X, Xinv, D, frac):
    """``min(1, frac * alpha_max)`` for each group of moves ``X + alpha D`` (g,)."""
    t = _max_step(X, Xinv, D)
    # t <= frac: the full step stays inside; the where pair keeps the unused division finite
    return jnp.where(t > frac, frac / jnp.where(t > frac, t, 1.0), 1.0)


def _ipm(ops: _Ops, G, u, mu_f, reg, opts: SDPOptions):
    """Mehrotra predictor-corrector, HKM direction, dual kept feasible. Returns (u, X, iters)."""
    n = G.shape[0] * BASIS
    bvec = -ops.Nb  # -N^T e_b: right-hand side of the affine-scaling step
    X0 = _inv(ops.blocks(G, u))  # X S = I: centred start, primal infeasible

    def step(carry):
        it, u, X, _ = carry
        S = ops.blocks(G, u)
        XS = jnp.stack([X, S])
        inv = _inv(XS)  # one sweep for both
        Sinv = inv[1]
        mu = jnp.sum(X * S) / n
        rp = ops.Nb - ops.adjoint(G, X)
        Hinv = _spd_inverse(ops.schur(G, X, Sinv), reg)
        # predictor (sigma = 0): H du = N^T a(-X) - rp = -N^T e_b
        du_a = Hinv @ bvec
        dS_a = ops.blocks_lin(G, du_a)
        dX_a = -X - _sym(X @ dS_a @ Sinv)
        ap, ad = _steps(XS, inv, jnp.stack([dX_a, dS_a]), 1.0)
        mu_aff = jnp.sum((X + ap * dX_a) * (S + ad * dS_a)) / n
        sigma = jnp.clip((mu_aff / mu) ** 3, 0.0, 1.0)
        target = jnp.maximum(sigma * mu, mu_f)
        # corrector: Xi = target S^-1 - X - sym(dX_a dS_a S^-1); near mu_final, plain centring
        # steps (no second-order term) so the end point is close to the central point that the
        # dual Newton steps then land on
        final = mu <= 10.0 * mu_f
        Xi = target * Sinv - X - jnp.where(final, 0.0, 1.0) * _sym(dX_a @ dS_a @ Sinv)
        du = Hinv @ (ops.adjoint(G, Xi) - rp)
        dS = ops.blocks_lin(G, du)
        dX = Xi - _sym(X @ dS @ Sinv)
        ap, ad = _steps(XS, inv, jnp.stack([dX, dS]), opts.step_fraction)
        X_new = X + ap * dX
        u_new = u + ad * du
        mu_new = jnp.sum(X_new * ops.blocks(G, u_new)) / n
        rp_new = jnp.linalg.norm(ops.Nb - ops.adjoint(G, X_new))
        # a step that rounding broke (non-finite) is dropped and the loop ends on the last iterate
        ok = jnp.isfinite(mu_new) & jnp.all(jnp.isfinite(u_new)) & jnp.all(jnp.isfinite(X_new))
        # centrality |X^1/2 S X^1/2 / mu_f - I|_F^2 = tr((XS)^2)/mu_f^2 - 2 tr(XS)/mu_f + n
        XS_new = X_new @ ops.blocks(G, u_new)
        cen = jnp.sum(XS_new * jnp.swapaxes(XS_new, -1, -2)) / mu_f**2 - 2.0 * n * mu_new / mu_f + n
        done = (mu_new <= 1.5 * mu_f) & (rp_new <= 1e3 * mu_f) & (cen < 0.1)
        return it + 1, jnp.where(ok, u_new, u), jnp.where(ok, X_new, X), done | ~ok

    def cond(carry):
        it, _, _, done = carry
        return (it < opts.max_iters) & ~done

    it, u, X, _ = jax.lax.while_loop(cond, step, (jnp.asarray(0), u, X0, jnp.asarray(False)))
    return u, X, it


def _optimality(u, V, mu_f):
    """``F(u, V) = N^T (e_b - a(mu_f S(u)^-1))``: zero exactly at the central point of mu_f."""
    ops = _Ops(V.dtype)
    G = _coupling(V)
    Sinv = _inv(ops.blocks(G, u))
    return ops.Nb - ops.adjoint(G, mu_f * Sinv)


def _center(ops: _Ops, G, u, mu_f, reg, opts: SDPOptions):
    """Damped Newton on ``f(u) = e_b^T N u / mu_f - log det S(u)`` (self-concordant)."""

    def step(carry):
        k, u, _ = carry
        S = ops.blocks(G, u)
        Sinv = _inv(S)
        grad = ops.Nb / mu_f - ops.adjoint(G, Sinv)
        du = -_spd_inverse(ops.schur(G, Sinv, Sinv), reg) @ grad
        dec = jnp.sqrt(jnp.maximum(-jnp.dot(grad, du), 0.0))  # Newton decrement
        t = jnp.where(dec > 0.25, 1.0 / (1.0 + dec), 1.0)  # damped step stays inside the cone
        u_new = u + t * du
        # non-finite (rounding-broken) step: keep u and stop (dec = 0 ends the loop)
        ok = jnp.all(jnp.isfinite(u_new)) & jnp.isfinite(dec)
        return k + 1, jnp.where(ok, u_new, u), jnp.where(ok, dec, 0.0)

    def cond(carry):
        k, _, dec = carry
        return (k < opts.newton_steps) & (dec > opts.tol(u.dtype))

    _, u, dec = jax.lax.while_loop(cond, step, (jnp.asarray(0), u, jnp.asarray(jnp.inf, u.dtype)))
    return u, dec


def _solve_u(V, opts: SDPOptions):
    """Forward solve: (u at the mu_final central point, aux (iterations, decrement))."""
    V = jax.lax.stop_gradient(V)
    mu_f, reg = opts.resolved(V.dtype)
    ops = _Ops(V.dtype)
    G = _coupling(V)
    u0 = _initial_u(ops, V)
    u, _, it = _ipm(ops, G, u0, mu_f, reg, opts)
    u, dec = _center(ops, G, u, mu_f, reg, opts)
    return u, (it, dec)


def _value(ops: _Ops, u, n, mu_f):
    return ops.y0b + ops.Nb @ u - n * mu_f


def _dense_solve(matvec, b, reg=1e-12):
    """Linear solve for jaxopt: materialize the (SPD) barrier Hessian and solve it densely."""
    A = jax.vmap(matvec)(jnp.eye(b.shape[0], dtype=b.dtype)).T
    return _spd_inverse(_sym(A), reg) @ b


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _value_envelope(V, opts: SDPOptions):
    mu_f, _ = opts.resolved(V.dtype)
    u, _ = _solve_u(V, opts)
    return _value(_Ops(V.dtype), u, (V.shape[0] + NUM_AUX) * BASIS, mu_f)


def _value_envelope_fwd(V, opts):
    mu_f, _ = opts.resolved(V.dtype)
    ops = _Ops(V.dtype)
    u, _ = _solve_u(V, opts)
    G = _coupling(V)
    Sinv = _inv(ops.blocks(G, u))
    return _value(ops, u, (V.shape[0] + NUM_AUX) * BASIS, mu_f), (u, mu_f * Sinv[NUM_AUX:])


def _value_envelope_bwd(opts, res, g):
    u, X = res
    ops = _Ops(X.dtype)
    Lw = ops.y(u)[ops.idx[1:7]]  # (6, 7, 7): E[w_k z z^T]; X: the localizing blocks' Gram matrices
    # d gamma / d V_jk = -<X_j, E[w_k z z^T]>  (envelope theorem on the barrier problem)
    return (-g * jnp.einsum("jab,kab->jk", X, Lw),)


_value_envelope.defvjp(_value_envelope_fwd, _value_envelope_bwd)


def _value_implicit(V, opts: SDPOptions):
    mu_f, reg = opts.resolved(V.dtype)

    def optimality(u, V):
        return _optimality(u, V, mu_f)

    def solver(u_init, V):
        del u_init
        return _solve_u(V, opts)

    solve = functools.partial(_dense_solve, reg=reg)
    u, _ = implicit_diff.custom_root(optimality, has_aux=True, solve=solve)(solver)(None, V)
    return _value(_Ops(V.dtype), u, (V.shape[0] + NUM_AUX) * BASIS, mu_f)


def sos_lower_bound(V: jax.Array, options: SDPOptions = SDPOptions()) -> jax.Array:
    """Certified SOS lower bound of Q1 for one edge-wrench set.

    Args:
        V: (J, 6) edge wrenches (scaled wrench space).
        options: solver options (static); ``options.grad`` picks the gradient rule.

    Returns:
        Scalar ``gamma`` (dtype of V), differentiable w.r.t. V. Vmap for batches.
    """
    if options.grad == "envelope":
        return _value_envelope(V, options)
    if options.grad == "implicit":
        return _value_implicit(V, options)
    raise ValueError(f"SDPOptions.grad must be 'envelope' or 'implicit', got {options.grad!r}")


def sos_solution(V: jax.Array, options: SDPOptions = SDPOptions()) -> SOSSolution:
    """Primal-dual solution and diagnostics (no gradient) for one edge-wrench set (J, 6)."""
    mu_f, _ = options.resolved(V.dtype)
    ops = _Ops(V.dtype)
    u, (it, dec) = _solve_u(V, options)
    G = _coupling(V)
    S = ops.blocks(G, u)
    Sinv = _inv(S)
    X = mu_f * Sinv
    n = G.shape[0] * BASIS
    return SOSSolution(
        value=_value(ops, u, n, mu_f), y=ops.y(u), u=u, X=X, S=S, mu=jnp.asarray(mu_f, V.dtype),
        gap=jnp.sum(X * S), primal_residual=jnp.linalg.norm(ops.Nb - ops.adjoint(G, X)),
        newton_decrement=dec, iterations=it)
