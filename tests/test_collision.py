"""Link-hull penetration kernels against independent references."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgrasp.hand.annotate import link_meshes
from jaxgrasp.hand.collision import nearest_hull_depth, object_in_hand, self_penetration
from jaxgrasp.hand.kinematics import default_config, pose_hand
from jaxgrasp.hand.mjcf import compile_model, read_tree
from jaxgrasp.hand.model import load_hand


@functools.lru_cache(maxsize=None)
def _hand(name):
    return load_hand(name, dtype=jnp.float64)


@pytest.mark.parametrize("name", ["shadow", "threefinger"])
def test_nearest_links_equal_all_links(name):
    """The bounding-sphere shortcut gives the same self-penetration as testing every link."""
    hand = _hand(name)
    key = jax.random.PRNGKey(0)
    for i in range(6):
        x = default_config(hand, 0.15 * i) + 0.3 * jax.random.normal(jax.random.fold_in(key, i), (hand.num_dof,))
        posed = pose_hand(hand, x)
        full = self_penetration(hand, posed.T_world_body, posed.sample_pos)
        fast = nearest_hull_depth(hand, posed.T_world_body, posed.sample_pos, hand.collision_exclude[hand.sample_body])
        np.testing.assert_allclose(np.asarray(fast), np.asarray(full), atol=1e-12)
    assert float(full.max()) > 1e-3  # the closed poses do self-penetrate: the check can fail


@pytest.mark.parametrize("name", ["shadow", "threefinger"])
def test_nearest_links_gradient_equals_all_links(name):
    """The depth recomputed from the one active plane has the gradient of the dense depth over
    every link (with respect to the configuration, through the link poses and the samples)."""
    hand = _hand(name)
    skip = hand.collision_exclude[hand.sample_body]

    def fast(x):
        posed = pose_hand(hand, x)
        return jnp.sum(nearest_hull_depth(hand, posed.T_world_body, posed.sample_pos, skip) ** 2)

    def full(x):
        posed = pose_hand(hand, x)
        return jnp.sum(self_penetration(hand, posed.T_world_body, posed.sample_pos) ** 2)

    key, largest = jax.random.PRNGKey(0), 0.0
    for i in range(6):  # the poses of the test above
        x = default_config(hand, 0.15 * i) + 0.3 * jax.random.normal(jax.random.fold_in(key, i), (hand.num_dof,))
        g_fast, g_full = jax.grad(fast)(x), jax.grad(full)(x)
        np.testing.assert_allclose(np.asarray(g_fast), np.asarray(g_full), rtol=1e-9, atol=1e-12)
        largest = max(largest, float(jnp.abs(g_full).max()))
    assert largest > 1e-4  # some poses self-penetrate: the check can fail


def test_object_in_hand_matches_trimesh_hulls():
    """Points inside a posed link's convex hull (trimesh) get a positive depth, others zero."""
    hand = _hand("shadow")
    x = default_config(hand, 0.4)
    posed = pose_hand(hand, x)
    model = compile_model("shadow")
    meshes = link_meshes(model, read_tree(model))
    T = np.asarray(posed.T_world_body)
    rng = np.random.default_rng(0)
    lo, hi = np.asarray(posed.sample_pos).min(0), np.asarray(posed.sample_pos).max(0)
    pts = rng.uniform(lo, hi, size=(3000, 3))
    depth = np.asarray(object_in_hand(hand, posed.T_world_body, jnp.asarray(pts)))
    inside = np.zeros(len(pts), bool)
    for b, m in enumerate(meshes):
        if m is not None:
            inside |= m.convex_hull.copy().apply_transform(T[b]).contains(pts)
    assert inside.sum() > 20
    assert np.all(depth[inside] > 0)
    assert np.all(depth[~inside] < 1e-9)


def test_hull_depth_gradient_finite_on_boundary():
    hand = _hand("parallel_jaw")
    posed = pose_hand(hand, default_config(hand, 0.5))
    p = posed.sample_pos[:16]  # exactly on the surface
    g = jax.grad(lambda q: jnp.sum(object_in_hand(hand, posed.T_world_body, q) ** 2))(p)
    assert np.all(np.isfinite(np.asarray(g)))
