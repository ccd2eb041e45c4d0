"""The interior-point solver of the SOS program (:mod:`jaxgrasp.quality.sos_program`): options,
the predictor-corrector loop and the final centring (the forward solve of
:mod:`jaxgrasp.quality.sdp`).

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

Numerical guards: no LAPACK calls (:mod:`jaxgrasp.quality.sdp_linalg`); the Schur matrix is
Jacobi-scaled with a relative ridge ``reg``, pivots that rounding pushes below it are raised to
it; step lengths keep X, S interior (bisection on LDL pivots); a step that comes out non-finite
(or, in the final centring, outside the PSD cone) is dropped and the loop ends on the last good
iterate.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrasp.quality.sdp_linalg import (
    _inv,
    _max_step,
    _spd_inverse,
    _sweep_small,
    _sym,
)
from jaxgrasp.quality.sos_program import BASIS, _coupling, _Ops, sos_structure


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
        # The damped step stays inside the cone only for the exact Newton direction: the ridge of
        # _spd_inverse and float32 rounding can put S(u_new) outside it (seen with every contact
        # at one point), where S^-1 (certificate, gradient) is meaningless and was NaN. Such a
        # step, like a non-finite one, is dropped: keep u (interior) and stop (dec = 0 ends the loop).
        _, piv = _sweep_small(_sym(ops.blocks(G, u_new)))  # LDL pivots: all > 0 iff S(u_new) is PD
        ok = jnp.all(jnp.isfinite(u_new)) & jnp.isfinite(dec) & (jnp.min(piv) > 0)
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
