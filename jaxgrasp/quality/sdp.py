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

The program's reduction to a standard-form SDP (facial reduction, moment form, the ball blocks)
is in :mod:`jaxgrasp.quality.sos_program`, its interior-point solver (options, predictor-corrector,
centring, certified value) in :mod:`jaxgrasp.quality.sdp_solver` and the solver's LAPACK-free
linear algebra in :mod:`jaxgrasp.quality.sdp_linalg`. This module holds the public entry points
and their gradients.

Gradients (both w.r.t. V):

* ``"envelope"`` (default): ``dgamma/dV_jk = -<X_j, E[w_k z z^T]>`` from the primal-dual pair
  (envelope theorem on the barrier problem). No linear solve, no extra memory: the cheapest
  (measurements: docs/decisions.md, "SOS lower bound: envelope gradient"). It is the exact
  gradient of the barrier value and differs from that of the returned value by O(mu_final)
  (relative 3e-5 at the default 1e-9; tests check both against central differences).
* ``"implicit"``: ``jaxopt.implicit_diff.custom_root`` on ``F(u, V) = 0``; the Jacobian
  ``dF/du = mu_final H(S^-1, S^-1)`` is the SPD 103x103 barrier Hessian, materialized by 103 JVPs
  and inverted densely. Exact for the returned value (matches central differences to 1e-8).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct
from jaxopt import implicit_diff

from jaxgrasp.quality.sdp_linalg import _inv, _spd_inverse, _sym
from jaxgrasp.quality.sdp_solver import SDPOptions, _optimality, _solve_u, _value
from jaxgrasp.quality.sos_program import (
    BASIS,
    NUM_AUX,
    NUM_VARS,
    SOSStructure,
    _coupling,
    _Ops,
    sos_structure,
)

# Public names of the SDP (some defined in the modules above), importable from here.
__all__ = ["BASIS", "NUM_AUX", "NUM_VARS", "SDPOptions", "SOSSolution", "SOSStructure", "sos_lower_bound",
           "sos_solution", "sos_structure"]


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
