"""LAPACK-free dense linear algebra of the SDP solver (:mod:`jaxgrasp.quality.sdp_solver`).

Inverses and PD tests of the small Gram/moment blocks (Gauss-Jordan sweeps), the inverse of the
Jacobi-scaled Schur matrix (blocked sweeps with a relative ridge) and the interior step length
(bisection on the sweeps' LDL pivots). All in plain ``jnp`` ops; see the comment above
:func:`_sweep_small` for why.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
