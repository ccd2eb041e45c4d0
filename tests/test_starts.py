"""Planner starts: the object's principal axes, and starts that turn with the object."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from jaxgrasp.hand.kinematics import pose_hand
from jaxgrasp.hand.model import load_hand
from jaxgrasp.mesh.objects import make_object
from jaxgrasp.planning.planner import PlanConfig, Shapes, start_configs
from jaxgrasp.planning.starts import (
    fibonacci_sphere,
    grasp_point,
    initial_configs,
    principal_axes,
)


def _lumpy(seed: int = 3, points: int = 40) -> trimesh.Trimesh:
    """A convex hull of random points, stretched: no symmetry, three distinct moments."""
    pts = np.random.default_rng(seed).normal(size=(points, 3)) * [0.06, 0.035, 0.02]
    return trimesh.convex.convex_hull(pts)


def _obj(mesh: trimesh.Trimesh):
    return make_object(np.asarray(mesh.vertices), np.asarray(mesh.faces), dtype=np.float64)[0]


@pytest.mark.parametrize("points", [40, 6])
def test_principal_axes_match_a_dense_surface_sample(points):
    """Reference: the covariance of 400k points sampled uniformly on the surface (trimesh); the
    6-point hull has a few large faces, whose centroids alone give other axes."""
    mesh = _lumpy(points=points)
    obj = _obj(mesh)
    axes = principal_axes(obj)
    assert np.allclose(axes.T @ axes, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(axes), 1.0)
    pts = trimesh.sample.sample_surface(mesh, 400_000, seed=0)[0] - np.asarray(obj.center_of_mass, np.float64)
    _, vecs = np.linalg.eigh(pts.T @ pts / len(pts))
    ref = vecs[:, ::-1]
    assert np.all(np.abs(np.sum(axes * ref, axis=0)) > 0.9999), axes.T @ ref
    # The sign convention: positive third moment along the first two axes.
    c = pts @ axes
    assert np.all(np.mean(c[:, :2] ** 3, axis=0) > 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_starts_turn_with_the_object(seed):
    """The same mesh in another frame (rotated and moved) gets the same starts, rotated: the same
    palm poses relative to the object and the same joint angles."""
    hand = load_hand("shadow")
    mesh = _lumpy()
    R = Rotation.random(random_state=seed).as_matrix()
    moved = mesh.copy()
    moved.apply_transform(np.block([[R, np.array([[0.3], [-0.2], [0.1]])], [np.zeros((1, 3)), 1.0]]))
    a, b = _obj(mesh), _obj(moved)
    assert np.allclose(principal_axes(b), R @ principal_axes(a), atol=1e-9)
    cfg = PlanConfig(shapes=Shapes(num_starts=6))
    key = jax.random.PRNGKey(seed)
    xa, xb = (np.asarray(start_configs(hand, o, cfg, key), np.float64) for o in (a, b))
    for ya, yb in zip(xa, xb):
        pa, pb = (pose_hand(hand, jnp.asarray(y)) for y in (ya, yb))
        Ta, Tb = np.asarray(pa.T_world_palm), np.asarray(pb.T_world_palm)  # centred frames
        # (float32 starts: the hand's dtype)
        assert np.allclose(Tb[:3, :3], R @ Ta[:3, :3], atol=1e-5)
        assert np.allclose(Tb[:3, 3], R @ Ta[:3, 3], atol=1e-6)
        assert np.allclose(np.asarray(pa.joint_angles), np.asarray(pb.joint_angles), atol=1e-7)
    # ...while the starts in the object's own frame (no axes) do not turn with it.
    raw = [np.asarray(initial_configs(hand, float(o.size), 6, key, opening=cfg.starts.opening, standoff=cfg.starts.standoff))
           for o in (a, b)]
    Ta, Tb = (np.asarray(pose_hand(hand, jnp.asarray(r[0])).T_world_palm) for r in raw)
    assert not np.allclose(Tb[:3, :3], R @ Ta[:3, :3], atol=1e-3)


def test_the_sphere_poles_lie_on_the_longest_axis():
    """Start k's grasp point sits at axes @ (sphere direction k, its z on the longest axis)."""
    hand, obj = load_hand("shadow"), _obj(_lumpy())
    cfg = PlanConfig(shapes=Shapes(num_starts=6))
    x = np.asarray(start_configs(hand, obj, cfg, jax.random.PRNGKey(0)), np.float64)
    axes, gp = principal_axes(obj), grasp_point(hand, cfg.starts.opening)
    at = np.stack([Rotation.from_rotvec(xi[3:6]).as_matrix() @ gp + xi[:3] for xi in x])
    at /= float(obj.size) + cfg.starts.standoff
    u = fibonacci_sphere(6)
    assert np.allclose(at @ axes, u[:, [2, 0, 1]], atol=1e-5)  # (longest, second, shortest)


def test_principal_axes_of_a_box_are_its_edges():
    """Distinct extents: the axes are the box's edge directions, longest first."""
    R = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    mesh = trimesh.creation.box(extents=(0.12, 0.08, 0.04))
    mesh.apply_transform(np.block([[R, np.zeros((3, 1))], [np.zeros((1, 3)), 1.0]]))
    axes = principal_axes(_obj(mesh))
    assert np.allclose(np.abs(axes.T @ R), np.eye(3), atol=1e-9)
