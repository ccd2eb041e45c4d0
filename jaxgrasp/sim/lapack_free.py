"""Cholesky factorizations and triangular solves in plain XLA ops, swapped in for JAX's LAPACK
calls in one traced function (:func:`without_lapack`), without touching any global state.

Why: jaxlib 0.10's CPU LAPACK kernels (``potrf``, ``trsm``) split a batched factorization over
XLA's intra-op thread pool and block a pool thread until its pieces finish; two such kernels at
once on a 2-thread pool wait on each other forever (docs/decisions.md, "No LAPACK calls"). MJX's
mass-matrix, implicit-integrator and Newton steps call ``jax.scipy.linalg.cho_factor`` /
``cho_solve``, i.e. the ``cholesky`` and ``triangular_solve`` primitives, so a batched MJX rollout
on the CPU hangs. Plain XLA ops (loops of matrix-vector products) cannot deadlock.

How: :func:`without_lapack` traces the function to a jaxpr and evaluates it equation by
equation, binding every primitive as it is except ``cholesky`` and ``triangular_solve``, which
become :func:`cholesky_lower` and :func:`triangular_solve`. The rewrite reaches into the bodies of
``while``/``cond``/``scan`` (rewritten and bound again) and inlines calls (``jit``, custom JVP/VJP
rules: the result is for evaluation, not differentiation). Nothing is patched: other code, other
threads and later traces still get JAX's own functions.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.extend.core import ClosedJaxpr, Jaxpr, Literal, primitives

__all__ = ["LAPACK_PRIMITIVES", "cholesky_lower", "lapack_primitives_in", "triangular_solve", "without_lapack"]

# Primitives whose CPU lowering calls LAPACK (jax/_src/lax/linalg.py); the rewrite replaces the
# first two and refuses a function that uses the others.
LAPACK_PRIMITIVES = frozenset(
    ["cholesky", "triangular_solve", "cholesky_update", "eig", "eigh", "hessenberg", "householder_product", "lu",
     "qr", "geqrf", "geqp3", "ormqr", "schur", "svd", "tridiagonal", "tridiagonal_solve"])

# Call-like primitives whose body is inlined (param holding it).
_INLINE = {
    primitives.jit_p: "jaxpr",
    primitives.closed_call_p: "call_jaxpr",
    primitives.call_p: "call_jaxpr",
    primitives.custom_jvp_call_p: "call_jaxpr",
    primitives.custom_vjp_call_p: "call_jaxpr",
    primitives.remat_p: "jaxpr",
}


def cholesky_lower(a: jax.Array) -> jax.Array:
    """Lower Cholesky factor ``L`` of ``a = L L^T`` (zeros above the diagonal), batched over
    leading axes, column by column; reads only the lower triangle of ``a`` (as the ``cholesky``
    primitive). A matrix that is not positive definite gives NaNs."""
    a = jnp.asarray(a)
    n = a.shape[-1]
    idx = jnp.arange(n)

    def column(j, L):
        row = L[..., j, :]  # L[j, :j] (later columns still zero)
        ljj = jnp.sqrt(a[..., j, j] - jnp.sum(row * row, -1))
        col = (a[..., :, j] - jnp.einsum("...ik,...k->...i", L, row)) / ljj[..., None]
        col = jnp.where(idx > j, col, jnp.where(idx == j, ljj[..., None], 0.0))
        return L.at[..., :, j].set(col)

    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(a))


def triangular_solve(a: jax.Array, b: jax.Array, *, left_side: bool = False, lower: bool = False,
                     transpose_a: bool = False, conjugate_a: bool = False, unit_diagonal: bool = False) -> jax.Array:
    """:func:`jax.lax.linalg.triangular_solve` (same arguments, real dtypes) by substitution, row
    by row: ``op(a) x = b`` (``left_side``) or ``x op(a) = b``, ``a`` batched like ``b``."""
    if jnp.iscomplexobj(a):
        raise NotImplementedError("triangular_solve: real matrices only")
    a, b = jnp.asarray(a), jnp.asarray(b)
    n = a.shape[-1]
    a = jnp.where(jnp.tri(n, dtype=bool) if lower else jnp.tri(n, dtype=bool).T, a, 0.0)  # the used triangle
    if unit_diagonal:
        a = jnp.where(jnp.eye(n, dtype=bool), 1.0, a).astype(a.dtype)
    m, low = (jnp.swapaxes(a, -1, -2), not lower) if transpose_a else (a, lower)
    if not left_side:  # x m = b  <=>  m^T x^T = b^T
        m, low, b = jnp.swapaxes(m, -1, -2), not low, jnp.swapaxes(b, -1, -2)

    def step(t, x):  # solve row i of m x = b, the rows before it (lower) or after it (upper) known
        i = t if low else n - 1 - t
        xi = (b[..., i, :] - jnp.einsum("...k,...kr->...r", m[..., i, :], x)) / m[..., i, i][..., None]
        return x.at[..., i, :].set(xi)

    x = jax.lax.fori_loop(0, n, step, jnp.zeros_like(b))
    return x if left_side else jnp.swapaxes(x, -1, -2)


def _cholesky_rule(x, **_params):
    return cholesky_lower(x)


_REPLACE = {"cholesky": _cholesky_rule, "triangular_solve": triangular_solve}


def _spec(aval) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=getattr(aval, "weak_type", False))


def _rewrite_closed(cj: ClosedJaxpr) -> ClosedJaxpr:
    """``cj`` with the replacements made (same input and output types)."""
    return jax.make_jaxpr(functools.partial(_eval, cj.jaxpr, cj.consts))(*[_spec(v.aval) for v in cj.jaxpr.invars])


def _rewrite_param(p):
    if isinstance(p, ClosedJaxpr):
        return _rewrite_closed(p)
    if isinstance(p, Jaxpr):
        if lapack_primitives_in(p):
            raise NotImplementedError("without_lapack: LAPACK call inside an open sub-jaxpr of an unknown primitive")
        return p
    if isinstance(p, tuple) and any(isinstance(q, (ClosedJaxpr, Jaxpr)) for q in p):
        return tuple(_rewrite_param(q) for q in p)
    return p


def _eval(jaxpr: Jaxpr, consts, *args):
    env = {}

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        prim, params = eqn.primitive, eqn.params
        if prim.name in _REPLACE:
            out = _REPLACE[prim.name](*invals, **params)
        elif prim in _INLINE:
            body = params[_INLINE[prim]]
            if isinstance(body, ClosedJaxpr):
                body, body_consts = body.jaxpr, body.consts
            else:
                body_consts = ()
            out = _eval(body, body_consts, *invals)  # custom rules' consts are leading inputs
        else:
            out = prim.bind(*invals, **{k: _rewrite_param(p) for k, p in params.items()})
        if not (prim.multiple_results or prim in _INLINE):
            out = [out]
        env.update(zip(eqn.outvars, out))
    return [read(v) for v in jaxpr.outvars]


def lapack_primitives_in(jaxpr: Jaxpr | ClosedJaxpr) -> set[str]:
    """Names of the LAPACK-lowered primitives used anywhere in ``jaxpr`` (sub-jaxprs included)."""
    jaxpr = jaxpr.jaxpr if isinstance(jaxpr, ClosedJaxpr) else jaxpr
    found = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in LAPACK_PRIMITIVES:
            found.add(eqn.primitive.name)
        for p in eqn.params.values():
            for q in (p if isinstance(p, tuple) else (p,)):
                if isinstance(q, (Jaxpr, ClosedJaxpr)):
                    found |= lapack_primitives_in(q)
    return found


def without_lapack(fun):
    """``fun`` (arrays in, a pytree of arrays out) with its Cholesky factorizations and triangular
    solves in plain XLA ops (module docstring). Meant to be wrapped in :func:`jax.jit`; traces
    ``fun`` anew at each call. Raises NotImplementedError when ``fun`` uses another LAPACK call."""

    @functools.wraps(fun)
    def wrapped(*args):
        flat, tree = jax.tree_util.tree_flatten(args)
        specs = [_spec(jax.typeof(x)) for x in flat]
        cj, out_shape = jax.make_jaxpr(lambda *xs: fun(*jax.tree_util.tree_unflatten(tree, xs)),
                                       return_shape=True)(*specs)
        other = lapack_primitives_in(cj) - set(_REPLACE)
        if other:
            raise NotImplementedError(f"without_lapack: no plain-XLA replacement for {sorted(other)}")
        out = _eval(cj.jaxpr, cj.consts, *flat)
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), out)

    return wrapped
