"""Gradient fuzzing (issue 25, point 3): no NaN or inf in the values or gradients of the
differentiable functions, on degenerate and extreme inputs drawn with ``hypothesis``.

Each probe is one jitted, vmapped call on fixed shapes (compiled once per test); hypothesis draws
boundary values (parameters in [0, 1] with their ends, offsets down to subnormals, which extreme
each configuration takes) and a seed for the rest of a batch. ``derandomize=True`` and no example
database: the same examples on every run. Points / configurations pushed through per case
(each test checks that it pushed at least its count; :func:`test_counts_add_up` checks this
table against :data:`PLAN`):

====================================================================  =====
case                                                                  count
====================================================================  =====
signed distance, exact=False: vertices, edges (midpoints, interior)   2304
signed distance, exact=False: face interiors, coplanar outside        1536
signed distance, exact=False: near surface, inside, 100 m away        2304
signed distance, exact=True: vertices, edges (midpoints, interior)    576
signed distance, exact=True: face interiors, coplanar outside         384
signed distance, exact=True: near surface, inside, 100 m away         576
Q1 upper bound and contact weights: degenerate contact sets           3072
Q1 upper bound: one contact                                           512
Q1 lower bound (SDP): degenerate contact sets                         128
forward kinematics: joint logits at +-1e3, angles at the limits       2048
planning loss (main phase): extreme configurations                    384
total                                                                 13824
====================================================================  =====

Meshes: an icosphere (80 faces), a box (12) and the box without its top (10 faces, open: the
sign comes from the winding number). Signed distance is checked in reverse mode (``grad`` of
``sum d + sum w n``) and forward mode (``jvp``): both custom derivatives, dd/dp and dn/dp. Hands:
every bundled hand. Float32 throughout (the planner's dtype). Found and fixed: NaN gradients of
``q1_lower`` for contacts all at the origin (see :func:`test_q1_lower_finite`).
"""

from __future__ import annotations

import collections
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jaxgrasp.hand.kinematics import forward_kinematics, pose_hand
from jaxgrasp.hand.mjcf import bundled_hands
from jaxgrasp.hand.model import load_hand
from jaxgrasp.mesh.geometry import signed_distance
from jaxgrasp.mesh.objects import make_object
from jaxgrasp.planning.objective import active_sets, grasp_loss
from jaxgrasp.planning.planner import (
    PlanConfig,
    Shapes,
    main_phase,
    make_scene,
    prepare,
    start_configs,
)
from jaxgrasp.quality.q1 import contact_weights, q1_lower, q1_upper, wrench_directions

F32 = np.float32
MU, ALPHA, BETA, LAM = 0.7, 60.0, 8.0, 10.0  # friction, weight decays, torque scale (L = 0.1 m)

# Sizes (fixed: one compilation per probe) and examples per test.
SD_PER_KIND = 32            # points per kind and mesh in one call (8 kinds: one 256-point chunk)
SD_EXAMPLES = {False: 8, True: 2}  # per exact flag (exact=True runs a host callback: fewer)
Q1_SETS, Q1_CONTACTS, Q1_EXAMPLES = 64, 16, 4  # sets per kind, contacts per set
Q1_LOWER_SETS = 64
FK_CONFIGS, FK_EXAMPLES = 128, 4
LOSS_CONFIGS, LOSS_EXAMPLES = 64, 6
SD_KINDS = ("vertex", "edge_mid", "edge", "face", "coplanar", "near", "inside", "far")
Q1_KINDS = ("random", "coplanar", "coplanar_z", "one_point", "origin", "duplicated_pairs",
            "zero_weight", "zero_normal", "axis_normals", "tangential_normals", "far", "huge_d")
NUM_MESHES = 3
NUM_HANDS = len(bundled_hands())


def _plan() -> dict[str, int]:
    """Points / configurations each test pushes through (the module docstring's table)."""
    plan = {}
    for exact, n_ex in SD_EXAMPLES.items():
        for kinds, count in (("vertices, edges (midpoints, interior)", 3),
                             ("face interiors, coplanar outside", 2), ("near surface, inside, 100 m away", 3)):
            plan[f"signed distance, exact={exact}: {kinds}"] = count * n_ex * NUM_MESHES * SD_PER_KIND
    plan["Q1 upper bound and contact weights: degenerate contact sets"] = Q1_EXAMPLES * Q1_SETS * len(Q1_KINDS)
    plan["Q1 upper bound: one contact"] = Q1_EXAMPLES * 2 * Q1_SETS
    plan["Q1 lower bound (SDP): degenerate contact sets"] = 2 * Q1_LOWER_SETS
    plan["forward kinematics: joint logits at +-1e3, angles at the limits"] = FK_EXAMPLES * NUM_HANDS * FK_CONFIGS
    plan["planning loss (main phase): extreme configurations"] = LOSS_EXAMPLES * LOSS_CONFIGS
    return plan


PLAN = _plan()
# No shrinking: a probe costs up to seconds, and a failure message names the leaf and index.
FUZZ = settings(deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Hypothesis-drawn scalars: seeds for the bulk of a batch, and boundary values.
SEEDS = st.integers(0, 2**32 - 1)
UNIT = arrays(np.float64, 8, elements=st.floats(0.0, 1.0))
TINY = arrays(np.float64, 8, elements=st.floats(-1e-3, 1e-3))


def nonfinite(tree) -> list[str]:
    """Paths and counts of the leaves of a pytree that hold NaN or inf (empty: all finite)."""
    bad = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = np.asarray(leaf)
        if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
            first = np.unravel_index(np.argmin(np.isfinite(a)), a.shape)
            bad.append(f"{jax.tree_util.keystr(path)}: {np.sum(~np.isfinite(a))} of {a.size} "
                       f"not finite, first at {tuple(int(i) for i in first)}")
    return bad


def assert_finite(tree, what: str) -> None:
    """Fails with the offending leaves when any value or gradient in ``tree`` is NaN or inf."""
    bad = nonfinite(tree)
    assert not bad, f"{what}: " + "; ".join(bad)


def test_checker_flags_nan_and_inf():
    """The checker can fail: it flags NaN and +-inf anywhere in a nested tree, and the NaN
    gradient of a naive unit vector at the origin (the bug class these tests look for)."""
    ok = {"a": jnp.ones(3), "b": (jnp.zeros((2, 2)), jnp.arange(3))}
    assert nonfinite(ok) == []
    for bad_value in (np.nan, np.inf, -np.inf):
        tree = {"a": jnp.ones(3), "b": (jnp.zeros((2, 2)).at[1, 0].set(bad_value), jnp.arange(3))}
        assert nonfinite(tree) == ["['b'][0]: 1 of 4 not finite, first at (1, 0)"]
        with pytest.raises(AssertionError, match="not finite"):
            assert_finite(tree, "planted")
    naive = jax.grad(lambda p: jnp.sum(p / jnp.linalg.norm(p)))
    with pytest.raises(AssertionError, match="not finite"):
        assert_finite(naive(jnp.zeros(3)), "naive normal")


def test_counts_add_up():
    """The module docstring's table is :data:`PLAN`, and the total is at least 10,000."""
    rows = dict(re.findall(r"^(\S.*?\S)\s{2,}(\d+)$", __doc__, flags=re.MULTILINE))
    assert {k: int(v) for k, v in rows.items() if k != "total"} == PLAN
    assert int(rows["total"]) == sum(PLAN.values()) >= 10_000


# ---------------------------------------- Signed distance --------------------------------------


@functools.cache
def _meshes():
    """Icosphere, box and open box (top removed), all padded to 128 faces (shared compiles)."""
    ico = trimesh.creation.icosphere(subdivisions=1, radius=0.04)
    box = trimesh.creation.box(extents=(0.05, 0.06, 0.08))
    top = box.face_normals[:, 2] > 0.5
    out = {name: make_object(v, f, pad_to=128)[0] for name, (v, f) in {
        "icosphere": (ico.vertices, ico.faces), "box": (box.vertices, box.faces),
        "open_box": (box.vertices, box.faces[~top])}.items()}
    assert not out["open_box"].watertight and out["box"].watertight
    return out


def _sd_points(obj, rng, t_special, offsets) -> np.ndarray:
    """(8 * SD_PER_KIND, 3) float32 points of the kinds ``SD_KINDS``, in that order."""
    n, nf = SD_PER_KIND, int(obj.num_faces)
    tri, normals = np.asarray(obj.corners, np.float64)[:nf], np.asarray(obj.normals, np.float64)[:nf]
    f, k = rng.integers(0, nf, n), rng.integers(0, 3, n)
    c0, c1 = tri[f, k], tri[f, (k + 1) % 3]

    def mix(special, bulk):  # the hypothesis-drawn values on half of the points
        return np.where(np.arange(n) % 2 == 0, np.resize(special, n), bulk)

    t = mix(t_special, rng.random(n))
    a, b = mix(t_special, rng.random(n)), mix(t_special[::-1], rng.random(n))
    flip = a + b > 1
    a, b = np.where(flip, 1 - a, a), np.where(flip, 1 - b, b)

    def plane(a, b):
        return tri[f, 0] + a[:, None] * (tri[f, 1] - tri[f, 0]) + b[:, None] * (tri[f, 2] - tri[f, 0])

    surface = plane(a, b)
    # Coplanar, outside the triangle: beyond an edge, on an edge's line, or far out in the plane.
    ca, cb = rng.uniform(-3, 3, n), rng.uniform(-3, 3, n)
    ca = np.where(ca + cb <= 1, ca + 1 + np.abs(cb), ca)
    on_line = rng.random(n) < 0.3
    ca, cb = np.where(on_line, 1 + 2 * t, ca), np.where(on_line, 0.0, cb)
    com = np.asarray(obj.center_of_mass, np.float64)
    s = mix(t_special * 0.999, rng.random(n))
    s[0] = 0.0  # the centre of mass itself
    far = rng.normal(size=(n, 3))
    far[:6] = np.concatenate([np.eye(3), -np.eye(3)])
    far *= 100.0 / np.linalg.norm(far, axis=1, keepdims=True)
    kinds = {"vertex": tri[f, k], "edge_mid": 0.5 * (c0 + c1), "edge": c0 + t[:, None] * (c1 - c0),
             "face": surface, "coplanar": plane(ca, cb),
             "near": surface + mix(offsets, rng.uniform(-1e-3, 1e-3, n))[:, None] * normals[f],
             "inside": com + s[:, None] * (surface - com), "far": com + far}
    assert tuple(kinds) == SD_KINDS
    return np.concatenate(list(kinds.values())).astype(F32)


@functools.partial(jax.jit, static_argnames=("exact",))
def _sd_probe(obj, points, weights, tangent, exact):
    """Values, reverse-mode gradient of ``sum d + sum w n`` and the forward-mode JVP."""

    def f(p):
        d, n = signed_distance(obj, p, exact=exact)
        return jnp.sum(d) + jnp.sum(weights * n), (d, n)

    (_, (d, n)), grad = jax.value_and_grad(f, has_aux=True)(points)
    _, (dd, dn) = jax.jvp(lambda p: signed_distance(obj, p, exact=exact), (points,), (tangent,))
    return {"d": d, "n": n, "grad": grad, "jvp_d": dd, "jvp_n": dn}


@pytest.mark.parametrize("exact", [False, True])
def test_signed_distance_finite(exact):
    """Vertices, edge midpoints and interiors, face interiors, coplanar points outside the
    triangles, near-surface offsets down to subnormals, inside (down to the centre of mass),
    100 m away: finite distance, normal, gradient and JVP, unit normals."""
    meshes = _meshes()
    pushed = collections.Counter()

    @settings(FUZZ, max_examples=SD_EXAMPLES[exact])
    @given(seed=SEEDS, t_special=UNIT, offsets=TINY)
    def run(seed, t_special, offsets):
        rng = np.random.default_rng(seed)
        for name, obj in meshes.items():
            pts = _sd_points(obj, rng, t_special, offsets)
            w = rng.normal(size=pts.shape).astype(F32)
            tangent = rng.normal(size=pts.shape).astype(F32)
            out = _sd_probe(obj, pts, w, tangent, exact)
            assert_finite(out, f"signed_distance on {name}, exact={exact}")
            np.testing.assert_allclose(np.linalg.norm(np.asarray(out["n"]), axis=-1), 1.0, atol=1e-4)
            pushed[name] += len(pts)

    run()
    assert sum(pushed.values()) >= SD_EXAMPLES[exact] * NUM_MESHES * len(SD_KINDS) * SD_PER_KIND


# ---------------------------------------- Q1 bounds and contact weights ------------------------


def _q1_inputs(kind: str, rng, m: int, n: int, specials) -> tuple[np.ndarray, ...]:
    """``m`` contact sets of ``n`` contacts of one degenerate kind: float32 positions (m, n, 3),
    object normals, gripper normals (m, n, 3) and signed distances (m, n)."""
    p = rng.normal(size=(m, n, 3)) * 0.05
    nrm = rng.normal(size=(m, n, 3))
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    d = rng.normal(size=(m, n)) * 0.005
    if kind in ("coplanar", "coplanar_z"):  # every contact in one plane (torques degenerate)
        axis = rng.normal(size=(m, 1, 3))
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        if kind == "coplanar_z":
            axis[:] = (0.0, 0.0, 1.0)
            nrm = np.broadcast_to(np.where(rng.random((m, 1, 1)) < 0.5, axis, -axis), nrm.shape)
        p -= np.sum(p * axis, -1, keepdims=True) * axis
    elif kind == "one_point":  # every contact at one point, any normals
        p = np.broadcast_to(p[:, :1], p.shape)
    elif kind == "origin":  # every contact at the centre of mass: no torque at all
        p = np.zeros_like(p)
    elif kind == "duplicated_pairs":  # each contact twice, bit for bit
        p, nrm, d = (np.repeat(x[:, : n // 2], 2, axis=1) for x in (p, nrm, d))
    elif kind == "zero_weight":  # weights underflow to exactly 0: aligned normals, far away
        d = d + np.where(rng.random((m, 1)) < 0.5, 1e3, 0.0)
    elif kind == "zero_normal":
        nrm = np.where(rng.random((m, n, 1)) < 0.5, 0.0, nrm)
    elif kind == "axis_normals":  # u_z = +-1 and 0: the tangent frame's branch points
        nrm = np.eye(3)[rng.integers(0, 3, (m, n))] * rng.choice([-1.0, 1.0], (m, n, 1))
    elif kind == "tangential_normals":  # normals in the xy plane: u_z = +0 and -0 exactly
        nrm[..., 2] = 0.0 * rng.choice([-1.0, 1.0], (m, n))
        nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    elif kind == "far":
        p = p * 2e3
    elif kind == "huge_d":
        d = np.resize(specials, (m, n)) * 1e6 * rng.choice([-1.0, 1.0], (m, n))
    n_grip = nrm if kind == "zero_weight" else -nrm  # aligned (weight e^-16) or opposed normals
    return tuple(np.ascontiguousarray(x, F32) for x in (p, nrm, n_grip, d))


def _upper_value(p, n, n_grip, d, c_extra):
    """Q1 upper bound of one set, weights times ``c_extra`` (exact zeros)."""
    c = contact_weights(d, n, n_grip, ALPHA, BETA) * c_extra
    return q1_upper(p, n, c, mu=MU, torque_scale=LAM, directions=jnp.asarray(wrench_directions(64), p.dtype))


@jax.jit
def _q1_upper_probe(p, n, n_grip, d, c_extra):
    """Weights, bound and their gradients w.r.t. positions, normals, distances, extra weights."""
    c = jax.vmap(lambda d, n, g: contact_weights(d, n, g, ALPHA, BETA))(d, n, n_grip)
    jac_c = jax.vmap(jax.grad(lambda d, n, g: jnp.sum(contact_weights(d, n, g, ALPHA, BETA)),
                              argnums=(0, 1, 2)))(d, n, n_grip)
    q, g = jax.vmap(jax.value_and_grad(_upper_value, argnums=(0, 1, 2, 3, 4)))(p, n, n_grip, d, c_extra)
    return {"c": c, "dc": jac_c, "q1": q, "grad": g}


def _lower_value(p, n, d, n_grip):
    """SOS lower bound of one set, on its 8 heaviest contacts."""
    c = contact_weights(d, n, n_grip, ALPHA, BETA)
    return q1_lower(p, n, c, mu=MU, torque_scale=LAM, k_contacts=8)


# Value and gradients w.r.t. positions, normals, distances, gripper normals, vmapped over sets.
_q1_lower_probe = jax.jit(jax.vmap(jax.value_and_grad(_lower_value, argnums=(0, 1, 2, 3))))


def test_q1_upper_and_weights_finite():
    """Coplanar contacts, all at one point or at the origin, duplicated, zero and underflowing
    weights, zero normals, normals on the tangent frame's branch points, far contacts, huge
    distances, and single contacts: finite weights, bound and gradients."""
    pushed = collections.Counter()

    @settings(FUZZ, max_examples=Q1_EXAMPLES)
    @given(seed=SEEDS, specials=UNIT, zero_frac=st.floats(0.0, 1.0))
    def run(seed, specials, zero_frac):
        rng = np.random.default_rng(seed)
        for kind in Q1_KINDS:
            args = _q1_inputs(kind, rng, Q1_SETS, Q1_CONTACTS, specials)
            c_extra = (rng.random((Q1_SETS, Q1_CONTACTS)) >= zero_frac).astype(F32)  # exact zeros
            out = _q1_upper_probe(*args, c_extra)
            assert_finite(out, f"q1_upper / contact_weights, {kind}")
            assert np.all(np.asarray(out["q1"]) >= 0)
            pushed[kind] += Q1_SETS
        for kind in ("random", "zero_weight"):  # a single contact
            args = _q1_inputs(kind, rng, Q1_SETS, 1, specials)
            out = _q1_upper_probe(*args, np.ones((Q1_SETS, 1), F32))
            assert_finite(out, f"q1_upper, one contact, {kind}")
            pushed["one contact"] += Q1_SETS

    run()
    assert pushed["one contact"] >= Q1_EXAMPLES * 2 * Q1_SETS
    assert sum(pushed.values()) >= Q1_EXAMPLES * Q1_SETS * (len(Q1_KINDS) + 2)


def test_q1_lower_finite():
    """The SDP lower bound on a handful of degenerate sets (~35 ms a set): finite value and
    gradients. Regression: in this batch of 64 sets of 16 contacts at the origin, set 27 had NaN
    gradients (and a value of -1.5) until the solver's centring rejected Newton steps that leave
    the PSD cone (jaxgrasp/quality/sdp_solver.py, ``_center``). Whether the broken step happens
    depends on float32 rounding in this exact compiled batch (seen with jax 0.10.2 on the CPU)."""
    n = np.random.default_rng(4).normal(size=(Q1_LOWER_SETS, Q1_CONTACTS, 3))
    n = (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(F32)
    p, d = np.zeros_like(n), np.zeros(n.shape[:2], F32)
    out = _q1_lower_probe(p, n, d, -n)
    assert_finite(out, "q1_lower, contacts at the origin")
    pushed = len(p)

    @settings(FUZZ, max_examples=1)
    @given(seed=SEEDS)
    def run(seed):
        nonlocal pushed
        rng = np.random.default_rng(seed)
        kinds = ("coplanar", "coplanar_z", "one_point", "duplicated_pairs", "zero_weight",
                 "zero_normal", "axis_normals", "random")
        per = Q1_LOWER_SETS // len(kinds)
        sets = [_q1_inputs(k, rng, per, Q1_CONTACTS, np.zeros(8)) for k in kinds]
        p, n, n_grip, d = (np.concatenate(x) for x in zip(*sets))
        out = _q1_lower_probe(p, n, d, n_grip)
        assert_finite(out, "q1_lower, degenerate sets")
        pushed += len(p)

    run()
    assert pushed >= 2 * Q1_LOWER_SETS


# ---------------------------------------- Forward kinematics and the planning loss -------------


@functools.cache
def _hand(name: str):
    """A bundled hand, loaded once."""
    return load_hand(name)


def _rotations(kind: np.ndarray, rng) -> np.ndarray:
    """Rotation vectors (m, 3) by kind: 0 random, 1 zero, 2 tiny (1e-12), 3 at the small-angle
    switch of so3_exp (|r| = 1e-3), 4 |r| = pi, 5 pi - 1e-6, 6 2 pi, 7 100 rad."""
    axis = rng.normal(size=(len(kind), 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.array([0.0, 0.0, 1e-12, 1e-3, np.pi, np.pi - 1e-6, 2 * np.pi, 100.0])[kind]
    angle = np.where(kind == 0, rng.uniform(0, np.pi, len(kind)), angle)
    return axis * angle[:, None]


def _configs(base: np.ndarray, kinds: np.ndarray, rng) -> np.ndarray:
    """Extreme configurations (m, 6 + I) around ``base`` (m, 6 + I); ``kinds`` (m, 3) picks per
    row the translation (0 base, 1 zero, 2 1 km away, 3 tiny, 4 base * 100), the rotation
    (:func:`_rotations`, 0 keeps base's) and the joint logits (0 base, 1 all +1e3, 2 all -1e3,
    3 random +-1e3, 4 zero, 5 normal * 30)."""
    m, n_z = base.shape[0], base.shape[1] - 6
    x = base.astype(np.float64).copy()
    k_t, k_r, k_z = kinds[:, 0] % 5, kinds[:, 1] % 8, kinds[:, 2] % 6
    far = rng.normal(size=(m, 3))
    far *= 1e3 / np.linalg.norm(far, axis=1, keepdims=True)
    choices_t = np.stack([x[:, :3], np.zeros((m, 3)), far, np.full((m, 3), 1e-30), 100 * x[:, :3]])
    x[:, :3] = choices_t[k_t, np.arange(m)]
    x[:, 3:6] = np.where((k_r == 0)[:, None], x[:, 3:6], _rotations(k_r, rng))
    sign = rng.choice([-1.0, 1.0], (m, n_z))
    choices_z = np.stack([x[:, 6:], np.full((m, n_z), 1e3), np.full((m, n_z), -1e3), 1e3 * sign,
                          np.zeros((m, n_z)), 30 * rng.normal(size=(m, n_z))])
    x[:, 6:] = choices_z[k_z, np.arange(m)]
    return x.astype(F32)


def _kinds(m: int):
    """Hypothesis strategy: (m, 3) kinds of translation, rotation, joints (see :func:`_configs`)."""
    return arrays(np.int64, (m, 3), elements=st.integers(0, 39))


@jax.jit
def _fk_probe(hand, x, q, w):
    """pose_hand: values and reverse-mode gradients w.r.t. configurations x (m, 6 + I);
    forward_kinematics: forward-mode (jacfwd) gradients w.r.t. angles q (m, J)."""

    def posed_sum(xi):
        posed = pose_hand(hand, xi)
        s = (jnp.sum(posed.T_world_body * w) + jnp.sum(posed.contact_pos) + jnp.sum(posed.contact_normal)
             + jnp.sum(posed.sample_pos) + jnp.sum(posed.sample_normal) + jnp.sum(posed.joint_angles))
        return s, posed

    def fk_sum(qi):
        return jnp.sum(forward_kinematics(hand, qi) * w)

    (_, posed), grad_x = jax.vmap(jax.value_and_grad(posed_sum, has_aux=True))(x)
    return {"posed": posed, "grad_x": grad_x, "jacfwd_q": jax.vmap(jax.jacfwd(fk_sum))(q)}


@pytest.mark.parametrize("name", bundled_hands())
def test_kinematics_finite(name):
    """Every bundled hand with joint logits at +-1e3 (angles at the limits, sigmoid saturated),
    rotations at 0, near the small-angle switch and at pi, palms 1 km away; and
    forward_kinematics with every angle exactly at a limit: finite poses and gradients."""
    hand = _hand(name)
    lo, hi = np.asarray(hand.joint_lower), np.asarray(hand.joint_upper)
    w = np.random.default_rng(0).normal(size=(hand.num_bodies, 4, 4)).astype(F32)
    pushed = 0

    @settings(FUZZ, max_examples=FK_EXAMPLES)
    @given(seed=SEEDS, kinds=_kinds(FK_CONFIGS), at_upper=st.floats(0.0, 1.0))
    def run(seed, kinds, at_upper):
        nonlocal pushed
        rng = np.random.default_rng(seed)
        base = np.concatenate([rng.normal(size=(FK_CONFIGS, 6)) * 0.1,
                               rng.normal(size=(FK_CONFIGS, hand.num_independent))], axis=1)
        kinds = kinds.copy()
        kinds[:2, 2] = (1, 2)  # always one row at every upper and one at every lower limit
        x = _configs(base, kinds, rng)
        q = np.where(rng.random((FK_CONFIGS, hand.num_joints)) < at_upper, hi, lo).astype(F32)
        out = _fk_probe(hand, x, q, w)
        assert_finite(out, f"pose_hand / forward_kinematics of {name}")
        angles = np.asarray(out["posed"].joint_angles)
        assert np.all((angles >= lo - 1e-5) & (angles <= hi + 1e-5))
        pushed += FK_CONFIGS

    run()
    assert pushed >= FK_EXAMPLES * FK_CONFIGS


@functools.cache
def _planning_problem():
    """The shadow hand, a small icosphere's scene, the main phase and the planner's starts."""
    hand = _hand("shadow")
    cfg = PlanConfig(shapes=Shapes(num_starts=8, opt_samples=64, self_samples=64, opt_faces=128,
                                   object_points=32, object_samples=128))
    prep = prepare(trimesh.creation.icosphere(subdivisions=2, radius=0.04), cfg, screen=False)
    scene = make_scene(prep, cfg, dtype=hand.body_pos.dtype)
    phase, params = main_phase(hand, cfg)
    starts = np.asarray(start_configs(hand, prep.obj, cfg, jax.random.PRNGKey(0)))
    return hand, scene, phase, params, starts


@functools.partial(jax.jit, static_argnames=("phase",))
def _loss_probe(hand, scene, x, loss_params, phase):
    """The main phase's loss and its gradient per configuration, as the engine's step takes
    them (active sets chosen for the configuration first)."""

    def one(xi):
        si, oi = active_sets(hand, scene, xi, min(phase.opt_samples, hand.num_samples), phase.object_points)
        (total, terms), g = jax.value_and_grad(grasp_loss, argnums=2, has_aux=True)(
            hand, scene, xi, si, oi, loss_params, phase)
        return {"total": total, "terms": terms, "grad": g}

    return jax.vmap(one)(x)


def test_planning_loss_finite():
    """The planner's loss (Q1 upper bound, collision, self-collision, guide) of the shadow
    hand at the planner's starts and at extreme configurations: palms at the centre of mass or
    1 km away, rotations at 0 and pi, joints at their limits. Finite total, terms, gradient."""
    hand, scene, phase, params, starts = _planning_problem()
    pushed = 0

    @settings(FUZZ, max_examples=LOSS_EXAMPLES)
    @given(seed=SEEDS, kinds=_kinds(LOSS_CONFIGS))
    def run(seed, kinds):
        nonlocal pushed
        rng = np.random.default_rng(seed)
        base = starts[rng.integers(0, len(starts), LOSS_CONFIGS)]
        x = _configs(base, kinds, rng)
        out = _loss_probe(hand, scene, x, params.loss, phase)
        assert_finite(out, "grasp_loss")
        pushed += LOSS_CONFIGS

    run()
    assert pushed >= LOSS_EXAMPLES * LOSS_CONFIGS
