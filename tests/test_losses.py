"""Array-level losses and the combiner (jaxgrasp.planning.losses)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgrasp.planning import losses as L


def cube_hull(center, half):
    """H-representation of an axis-aligned cube: unit outward normals, offsets."""
    A = np.vstack([np.eye(3), -np.eye(3)])
    b = half + A @ center
    return A, b


def hulls():
    """Three padded hulls (F = 8): a cube at 0, a cube at (1, 0, 0), an empty (all faces masked)."""
    A = np.zeros((3, 8, 3))
    b = np.zeros((3, 8))
    m = np.zeros((3, 8), bool)
    for i, c in enumerate([np.zeros(3), np.array([1.0, 0, 0])]):
        A[i, :6], b[i, :6] = cube_hull(c, 0.5)
        m[i, :6] = True
    A[2, 0] = [1.0, 0, 0]  # garbage in a masked slot must not matter
    return jnp.asarray(A), jnp.asarray(b), jnp.asarray(m)


def brute_depth(x, c, half=0.5):
    """Depth of x inside the cube (c, half): distance to the closest face, 0 outside."""
    return max(0.0, float(np.min(half - np.abs(x - c))))


def test_loss_q1():
    q = jnp.asarray([-0.1, 0.0, 0.3])
    np.testing.assert_allclose(np.asarray(L.loss_q1(q)), np.exp([0.1, 0.0, -0.3]))


@pytest.mark.parametrize("shape", [(7,), (2, 5), (3, 1, 4)])
def test_collision_and_guide_over_shapes(shape):
    rng = np.random.default_rng(0)
    d = rng.normal(scale=0.01, size=shape)
    mask = rng.uniform(size=shape) > 0.3
    got = L.loss_collision(jnp.asarray(d), jnp.asarray(mask), scale=0.01)
    ref = np.sum(np.where(mask, np.maximum(-d, 0.0) ** 2, 0.0), -1) / 1e-4
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12)
    w = rng.uniform(size=shape)
    guide = L.loss_guide(jnp.asarray(d), jnp.asarray(w))
    np.testing.assert_allclose(np.asarray(guide), np.sum(w * d**2, -1), rtol=1e-12)
    guide = L.loss_guide(jnp.asarray(d), scale=0.1)
    np.testing.assert_allclose(np.asarray(guide), np.sum(d**2, -1) / 0.01, rtol=1e-12)
    # depth form of the self-collision term: sum of squared positive parts
    np.testing.assert_allclose(np.asarray(L.loss_self_collision(jnp.asarray(d))), np.sum(np.maximum(d, 0) ** 2, -1),
                               rtol=1e-12)


def test_hull_depth_and_object_in_hull_against_brute_force():
    A, b, m = hulls()
    rng = np.random.default_rng(1)
    pts = rng.uniform(-0.8, 1.8, size=(200, 3)) * np.array([1.0, 0.6, 0.6])
    depth = np.asarray(L.hull_depth(jnp.asarray(pts), A, b, m))
    ref = np.array([[brute_depth(x, np.zeros(3)), brute_depth(x, np.array([1.0, 0, 0])), 0.0] for x in pts])
    np.testing.assert_allclose(depth, ref, atol=1e-12)
    assert np.sum(ref > 0) > 20  # the sample does hit the hulls
    pmask = rng.uniform(size=200) > 0.5
    got = L.loss_object_in_hull(jnp.asarray(pts), A, b, m, jnp.asarray(pmask), scale=0.5)
    np.testing.assert_allclose(float(got), np.sum(pmask[:, None] * ref**2) / 0.25, rtol=1e-12)


def test_self_collision_skips_own_and_adjacent_links():
    A, b, m = hulls()
    pts = jnp.asarray([[0.2, 0.1, 0.0],  # link 0's own point, inside hull 0 (own: skipped)
                       [0.7, 0.0, 0.0],  # link 0's point inside hull 1 (depth 0.2)
                       [0.3, 0.0, 0.0],  # link 1's point inside hull 0 (depth 0.2)
                       [0.3, 0.0, 0.0]])  # link 2's point inside hull 0, but 0-2 adjacent
    ids = jnp.asarray([0, 0, 1, 2])
    skip = jnp.eye(3, dtype=bool).at[0, 2].set(True).at[2, 0].set(True)
    got = L.loss_self_collision(pts, ids, A, b, m, skip)
    assert float(got) == pytest.approx(0.2**2 + 0.2**2, rel=1e-12)
    got = L.loss_self_collision(pts, ids, A, b, m, skip, jnp.asarray([True, False, True, True]))
    assert float(got) == pytest.approx(0.2**2, rel=1e-12)
    with pytest.raises(ValueError):
        L.loss_self_collision(pts, ids)


def test_gradients_finite_on_degenerate_inputs():
    A, b, m = hulls()
    # points on faces, on edges, at a hull centre (all faces tie), coincident points
    pts = jnp.asarray([[0.5, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    ids = jnp.asarray([0, 1, 1, 1, 0])
    skip = jnp.eye(3, dtype=bool)
    grads = [
        jax.grad(lambda x: L.loss_object_in_hull(x, A, b, m))(pts),
        jax.grad(lambda x: L.loss_self_collision(x, ids, A, b, m, skip))(pts),
        jax.grad(lambda A_: L.loss_object_in_hull(pts, A_, b, m))(A),
        jax.grad(lambda b_: L.loss_self_collision(pts, ids, A, b_, m, skip))(b),
        jax.grad(lambda d: L.loss_collision(d))(jnp.zeros(4)),  # exactly at contact
        jax.grad(lambda d: L.loss_guide(d, jnp.zeros(4)))(jnp.zeros(4)),  # zero weights
        jax.grad(lambda q: L.loss_q1(q))(jnp.asarray(0.0)),
    ]
    for g in grads:
        assert bool(jnp.all(jnp.isfinite(g)))
    # an all-masked (empty) hull contributes nothing and gets no gradient
    g = jax.grad(lambda b_: L.loss_object_in_hull(pts, A, b_, m))(b)
    assert float(jnp.abs(g[2]).max()) == 0.0


def test_combine_and_table_one_weights():
    w = L.LossWeights()
    assert (w.q1, w.coll, w.self_coll, w.guide, w.data) == (1.0, 1.0, 1.0, 0.1, 1.0)
    terms = {"q1": jnp.asarray(0.5), "coll": jnp.asarray(2.0), "self": jnp.asarray(3.0), "guide": jnp.asarray(4.0)}
    total, out = L.combine(terms, w.as_dict())
    assert float(total) == pytest.approx(0.5 + 2.0 + 3.0 + 0.4)
    assert out == terms
    total2, _ = L.combine(terms, w)  # a LossWeights works as well
    assert float(total2) == float(total)
    total3, _ = L.combine(terms, L.LossWeights(guide=1.0))
    assert float(total3) == pytest.approx(9.5)
    with pytest.raises(ValueError, match="no weight"):
        L.combine({"bogus": jnp.asarray(1.0)}, w.as_dict())
    # differentiable end to end
    g = jax.grad(lambda x: L.combine({"q1": L.loss_q1(x), "guide": L.loss_guide(x[None])}, w)[0])(jnp.asarray(0.2))
    assert float(g) == pytest.approx(-np.exp(-0.2) + 0.1 * 2 * 0.2)


def test_touch_term_against_its_formula_and_finite_at_the_surface():
    d = jnp.asarray([[0.004, -0.002, 0.0005, 0.0, -0.0005, 0.02]])
    w = jnp.asarray([[1.0, 0.5, 1.0, 1.0, 1.0, 0.25]])
    got = L.loss_touch(d, w, target=0.001, scale=0.003)
    gap = np.maximum(np.abs(np.asarray(d)) - 0.001, 0.0) / 0.003
    assert got.shape == (1,)
    assert float(got[0]) == pytest.approx(float(np.sum(np.asarray(w) * gap**2)), rel=1e-6)
    # within the target, outside or inside, a candidate costs nothing and is not pushed
    g = jax.grad(lambda x: L.loss_touch(x, w[0], target=0.001, scale=0.003))(d[0])
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g[2:5]).max()) == 0.0
    # outside it is pulled towards the surface from both sides
    assert float(g[0]) > 0 and float(g[1]) < 0 and float(g[5]) > 0


def test_touch_weights_pick_near_facing_candidates_and_stop_gradients():
    from jaxgrasp.planning.objective import touch_weights

    n_obj = jnp.asarray([[0.0, 0.0, 1.0]] * 4)
    n_grip = jnp.asarray([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    d = jnp.asarray([0.002, 0.03, 0.002, 0.002])
    w = touch_weights(d, n_obj, n_grip, 0.01, 0.5)
    # facing and near > facing and far; a back-facing or sideways candidate is not pulled
    assert float(w[0]) == pytest.approx(np.exp(-0.2) / (1 + np.exp(-10.0)), rel=1e-5)
    assert float(w[1]) < 0.1 * float(w[0]) and float(w[2]) < 1e-6 and float(w[3]) < 1e-4
    g = jax.grad(lambda dd: jnp.sum(touch_weights(dd, n_obj, n_grip, 0.01, 0.5)))(d)
    assert float(jnp.abs(g).max()) == 0.0
