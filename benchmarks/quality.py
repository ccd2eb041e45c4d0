"""Grasp-quality cost and tightness: Q1 upper bound, SOS lower bound (K = 8, 16, all 45), exact Q1.

    python benchmarks/quality.py [--batch 16] [--repeats 3] [--grasps 1000] [--out benchmarks/results/quality.json]

Part 1, cost: value + gradient (w.r.t. contact positions, normals, weights) of a batch of
Shadow-sized contact sets (45 contacts on a 5 cm sphere, weights from eq. 2 with random gaps and
normal misalignments), jit + vmap, float64, per grasp, median over repeats, compile excluded
(reported separately). Also: the share of contacts whose gradient norm is >= 1e-3 of the largest.

Part 2, tightness: over random force-closure grasps (8 contacts on random ellipsoids, random
weights in [0.3, 1]): ``upper / exact`` (true-cone upper bound against exact Q1 with T = 16 and
T = 4 edges) and ``exact - lower`` (SOS bound and exact Q1 with the same T = 4 edges).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from timing import time_call  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from jaxgrasp.quality.q1 import (  # noqa: E402
    contact_weights,
    q1_exact,
    q1_lower,
    q1_upper,
    wrench_directions,
)
from jaxgrasp.quality.sdp import SDPOptions  # noqa: E402

MU, T, R = 0.7, 4, 0.05
LAM, ALPHA = 1.0 / R, 6.0 / R


def _time(fn, repeats):
    median, first, _ = time_call(fn, repeats)
    return median, first


def shadow_like(rng, batch, n=45):
    v = rng.normal(size=(batch, n, 3))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    d = rng.normal(scale=0.005, size=(batch, n))
    g = -v + rng.normal(scale=0.3, size=v.shape)  # gripper normals roughly opposed
    g /= np.linalg.norm(g, axis=-1, keepdims=True)
    c = np.asarray(contact_weights(jnp.asarray(d), jnp.asarray(v), jnp.asarray(g), ALPHA, 8.0))
    return R * v, v, c


def random_closed(rng, count, n=8):
    out = []
    while len(out) < count:
        axes = rng.uniform(0.6, 1.4, size=3) * R
        v = rng.normal(size=(n, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        p = v * axes
        nrm = v / axes**2
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
        c = rng.uniform(0.3, 1.0, n)
        q4 = q1_exact(p, nrm, c, mu=MU, torque_scale=LAM, num_edges=T)
        if q4 > 0:
            out.append((p, nrm, c, q4, q1_exact(p, nrm, c, mu=MU, torque_scale=LAM, num_edges=16)))
    return out


def spread(g):
    per = np.sqrt(sum(np.sum(np.asarray(x) ** 2, axis=tuple(range(2, np.ndim(x)))) for x in g))  # (B, N)
    return float(np.mean(np.sum(per >= 1e-3 * per.max(axis=1, keepdims=True), axis=1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--grasps", type=int, default=1000)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "quality.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    B = args.batch
    p, n, c = (jnp.asarray(x) for x in shadow_like(rng, B))
    D = jnp.asarray(wrench_directions(64))

    def vg(f):
        return jax.jit(jax.vmap(jax.value_and_grad(f, argnums=(0, 1, 2))))

    variants = [
        ("upper bound (D = 64), 45 contacts", lambda p, n, c: q1_upper(p, n, c, mu=MU, torque_scale=LAM, directions=D)),
    ]
    for k in (8, 16, None):
        variants.append((f"lower bound (SOS), K = {k or 45}, T = {T}",
                         lambda p, n, c, k=k: q1_lower(p, n, c, mu=MU, torque_scale=LAM, num_tangents=T, k_contacts=k)))
    variants.append((f"lower bound, K = 16, T = {T}, implicit grad",
                     lambda p, n, c: q1_lower(p, n, c, mu=MU, torque_scale=LAM, num_tangents=T, k_contacts=16,
                                              options=SDPOptions(grad="implicit"))))
    variants.append((f"lower bound, K = 16, T = {T}, mu_final 1e-5",
                     lambda p, n, c: q1_lower(p, n, c, mu=MU, torque_scale=LAM, num_tangents=T, k_contacts=16,
                                              options=SDPOptions(mu_final=1e-5))))
    rows = []
    for name, f in variants:
        fn = vg(f)
        per, first = _time(lambda fn=fn: fn(p, n, c), args.repeats)
        _, g = fn(p, n, c)
        rows.append({"method": name, "ms_per_grasp": 1e3 * per / B, "compile_s": first - per,
                     "contacts_with_gradient": spread(g)})
        print(f"  {name}: {1e3 * per / B:.1f} ms/grasp", flush=True)

    grasps = random_closed(rng, args.grasps)
    t0 = time.perf_counter()
    for g in grasps[:100]:
        q1_exact(g[0], g[1], g[2], mu=MU, torque_scale=LAM, num_edges=T)
    t_exact = (time.perf_counter() - t0) / min(100, len(grasps))
    P, N, C = (jnp.asarray(np.array(x)) for x in list(zip(*grasps))[:3])
    ex4, ex16 = (np.array(x) for x in list(zip(*grasps))[3:])
    up_f = jax.jit(jax.vmap(lambda p, n, c: q1_upper(p, n, c, mu=MU, torque_scale=LAM, directions=D)))
    up = np.asarray(up_f(P, N, C))
    low_f = jax.jit(jax.vmap(lambda p, n, c: q1_lower(p, n, c, mu=MU, torque_scale=LAM, num_tangents=T)))
    lo = np.concatenate([np.asarray(low_f(P[i:i + 100], N[i:i + 100], C[i:i + 100])) for i in range(0, len(P), 100)])
    assert np.all(lo <= ex4 + 1e-9) and np.all(up >= ex16 - 1e-12)

    def stats(x):
        return {k: float(v) for k, v in zip(["min", "median", "mean", "p95", "max"],
                                            [x.min(), np.median(x), x.mean(), np.percentile(x, 95), x.max()])}

    gaps = {
        "upper / exact(T=16)": stats(up / ex16),
        "upper / exact(T=4)": stats(up / ex4),
        "(exact(T=4) - lower) / exact(T=4)": stats((ex4 - lo) / ex4),
        "exact(T=4) - lower (absolute)": stats(ex4 - lo),
        "exact(T=4)": stats(ex4),
    }
    machine = f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0].platform}"
    print(f"\nQuality benchmark, float64, batch {B}, {machine}")
    print(f"{'value + gradient (45 contacts)':<48}{'ms / grasp':>11}{'compile s':>11}{'contacts w/ grad':>18}")
    for r in rows:
        print(f"{r['method']:<48}{r['ms_per_grasp']:>11.1f}{r['compile_s']:>11.1f}{r['contacts_with_gradient']:>18.1f}")
    print(f"exact Q1 (scipy ConvexHull, 8 contacts, T = {T}): {1e3 * t_exact:.1f} ms/grasp (host, value only)")
    print(f"\nTightness over {len(grasps)} random force-closure grasps (8 contacts, T = {T}):")
    print(f"{'quantity':<38}" + "".join(f"{k:>10}" for k in ["min", "median", "mean", "p95", "max"]))
    for k, s in gaps.items():
        print(f"{k:<38}" + "".join(f"{v:>10.4f}" for v in s.values()))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": machine, "batch": B, "mu": MU, "num_tangents": T, "torque_scale": LAM,
                   "cost": rows, "exact_ms_per_grasp": 1e3 * t_exact, "grasps": len(grasps), "tightness": gaps},
                  f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
