"""Pictures of posed hands: link meshes placed by a configuration, trimesh scenes and PNGs.

Host-side helpers for people: they turn a configuration into posed link meshes and draw them
from a few views (matplotlib), with the contact candidates in red and the collision samples in
green, as in the paper's Fig. 5.
"""

from __future__ import annotations

import functools
import os

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display

import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import trimesh  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # noqa: E402

from jaxgrasp.hand.annotate import link_meshes  # noqa: E402
from jaxgrasp.hand.kinematics import pose_hand  # noqa: E402
from jaxgrasp.hand.mjcf import compile_model, read_tree  # noqa: E402
from jaxgrasp.hand.model import HandModel  # noqa: E402


@functools.lru_cache(maxsize=8)
def _link_meshes_cached(path: str, body_names: tuple[str, ...]) -> tuple:
    model = compile_model(path)
    tree = read_tree(model)
    if tree.body_names != body_names:
        # The file may hold several hands; pick the subtree whose body names match.
        tree = read_tree(model, root=body_names[0])
    return tuple(link_meshes(model, tree))


# Pictures pose the hand with one compiled call (cacheable) instead of op-by-op.
_pose = jax.jit(pose_hand)

# Faces of the object drawn in the PNG: a finer mesh does not show in a 110-dpi figure and costs
# drawing time (the GLB keeps the full mesh).
PNG_FACES = 4096


def posed_hand_meshes(hand: HandModel, config) -> list[trimesh.Trimesh]:
    """The hand's collision meshes placed in the world by a configuration ``(6 + I,)``."""
    posed = _pose(hand, config)
    T = np.asarray(posed.T_world_body, dtype=np.float64)
    out = []
    for b, mesh in enumerate(_link_meshes_cached(hand.path, hand.body_names)):
        if mesh is not None:
            out.append(mesh.copy().apply_transform(T[b]))
    return out


def hand_scene(hand: HandModel, config, obj_mesh: trimesh.Trimesh | None = None) -> trimesh.Scene:
    """A trimesh scene (exportable as GLB) of the posed hand, with the object if given."""
    scene = trimesh.Scene()
    for i, m in enumerate(posed_hand_meshes(hand, config)):
        m.visual.face_colors = (200, 170, 140, 255)
        scene.add_geometry(m, geom_name=f"hand_{i}")
    if obj_mesh is not None:
        o = obj_mesh.copy()
        o.visual.face_colors = (90, 140, 220, 255)
        scene.add_geometry(o, geom_name="object")
    return scene


_VIEWS = ((20, -60), (20, 30), (80, -90), (-10, 120))


def plot_hand(
    hand: HandModel,
    config,
    path: str | os.PathLike,
    *,
    obj_mesh: trimesh.Trimesh | None = None,
    views: int = 3,
    show_contacts: bool = True,
    show_samples: bool = False,
    title: str | None = None,
) -> str:
    """Save a PNG of the posed hand (and object) from ``views`` directions.

    Args:
        hand: the hand model.
        config: configuration ``(6 + I,)``.
        path: output PNG path (folders are created).
        obj_mesh: optional object mesh in the same (world) frame.
        views: number of view directions (1 to 4).
        show_contacts: draw the contact candidates (red).
        show_samples: draw the collision samples (green).
        title: figure title.

    Returns:
        The path written.
    """
    posed = _pose(hand, config)
    meshes = posed_hand_meshes(hand, config)
    if obj_mesh is not None and len(obj_mesh.faces) > PNG_FACES:
        obj_mesh = obj_mesh.simplify_quadric_decimation(face_count=PNG_FACES)
    pts = np.concatenate([m.vertices for m in meshes] + ([obj_mesh.vertices] if obj_mesh is not None else []))
    centre, half = pts.mean(0), 0.55 * np.ptp(pts, axis=0).max()
    fig = plt.figure(figsize=(4.2 * views, 4.4), dpi=110)
    for v in range(views):
        ax = fig.add_subplot(1, views, v + 1, projection="3d")
        for m in meshes:
            ax.add_collection3d(_poly(m, (0.85, 0.72, 0.58), 1.0))
        if obj_mesh is not None:
            ax.add_collection3d(_poly(obj_mesh, (0.35, 0.55, 0.85), 0.55))
        if show_contacts:
            c = np.asarray(posed.contact_pos)
            ax.scatter(c[:, 0], c[:, 1], c[:, 2], c="red", s=8, depthshade=False)
        if show_samples:
            s = np.asarray(posed.sample_pos)
            ax.scatter(s[:, 0], s[:, 1], s[:, 2], c="green", s=1, depthshade=False)
        for i, setter in enumerate((ax.set_xlim, ax.set_ylim, ax.set_zlim)):
            setter(centre[i] - half, centre[i] + half)
        ax.set_box_aspect((1, 1, 1), zoom=1.4)
        ax.view_init(*_VIEWS[v % len(_VIEWS)])
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=0.92 if title else 1.0, wspace=0.0)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def _poly(mesh: trimesh.Trimesh, color, alpha: float) -> Poly3DCollection:
    # Simple Lambert shading from a fixed light so shapes read without a renderer.
    light = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    shade = 0.45 + 0.55 * np.clip(mesh.face_normals @ light, 0.0, 1.0)
    colors = np.clip(np.asarray(color)[None, :] * shade[:, None], 0, 1)
    pc = Poly3DCollection(mesh.triangles, facecolors=np.c_[colors, np.full(len(colors), alpha)], linewidths=0)
    return pc
