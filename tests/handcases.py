"""Hands every property test runs over, and MuJoCo reference helpers."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from jaxgrasp.hand import bundled_hands, compile_model, read_tree

DATA = Path(__file__).parent / "data"

# Bundled hands plus third-party-style files written the way public collections write them.
HAND_CASES = [*bundled_hands(), str(DATA / "thirdparty_hand" / "hand.xml"), str(DATA / "urdf_hand" / "hand.urdf")]


def case_id(case: str) -> str:
    p = Path(case)
    return p.parent.name if p.suffix else case


def mujoco_poses(path: str, q: np.ndarray) -> np.ndarray:
    """Body poses relative to the root's rest pose by MuJoCo's own ``mj_kinematics``.

    Args:
        path: hand file or bundled name.
        q: joint values over the hand's joints, shape ``(N, J)``.

    Returns:
        ``(N, B, 4, 4)`` poses in the hand's ``body_names`` order.
    """
    model = compile_model(path)
    tree = read_tree(model)
    data = mujoco.MjData(model)
    T_root_world = np.linalg.inv(tree.T_world_root)
    adr = model.jnt_qposadr[list(tree.joint_ids)]
    out = np.empty((len(q), len(tree.body_ids), 4, 4))
    for n, qn in enumerate(q):
        data.qpos[:] = model.qpos0
        data.qpos[adr] = qn
        mujoco.mj_kinematics(model, data)
        for b, bid in enumerate(tree.body_ids):
            T = np.eye(4)
            T[:3, :3] = data.xmat[bid].reshape(3, 3)
            T[:3, 3] = data.xpos[bid]
            out[n, b] = T_root_world @ T
    return out
