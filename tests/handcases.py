"""Hands every property test runs over, and MuJoCo reference helpers."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from jaxgrasp.hand.mjcf import bundled_hands, compile_model, read_tree

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


# A hand written for the tests: a nonlinear joint coupling, a fixed-tendon coupling, a slide
# joint, a fixed (jointless) fingertip, a root placed off the origin, a ref (qpos0) offset.
COUPLED_XML = """
<mujoco><compiler angle="radian" autolimits="true"/><worldbody>
<body name="palm" pos="0 0 0.5" quat="0.9 0.1 0.2 0.3"><geom type="box" size=".04 .01 .05"/>
 <body name="f1" pos="0.02 0 0.05"><joint name="j1" axis="1 0 0" range="0 1.5" ref="0.1"/>
  <joint name="j1b" axis="0 1 0" range="-0.3 0.3"/><geom type="capsule" fromto="0 0 0 0 0 .04" size=".01"/>
  <body name="f2" pos="0 0 0.04"><joint name="j2" axis="1 0 0" range="0 1.5" pos="0 0 0.01"/>
   <geom type="capsule" fromto="0 0 0 0 0 .03" size=".01"/>
   <body name="tip" pos="0 0 0.03"><geom type="sphere" size=".01"/></body></body></body>
 <body name="g1" pos="-0.02 0 0.05"><joint name="k1" axis="1 0 0" range="0 1.5"/>
  <geom type="capsule" fromto="0 0 0 0 0 .04" size=".01"/>
  <body name="g2" pos="0 0 0.04"><joint name="k2" axis="1 0 0" range="0 1.5"/>
   <geom type="capsule" fromto="0 0 0 0 0 .03" size=".01"/>
   <body name="g3" pos="0 0 0.03"><joint name="k3" type="slide" axis="0 0 1" range="0 0.01"/>
    <geom type="capsule" fromto="0 0 0 0 0 .02" size=".008"/></body></body></body>
</body></worldbody>
<tendon><fixed name="t"><joint joint="k1" coef="1"/><joint joint="k2" coef="-3"/></fixed></tendon>
<equality><tendon tendon1="t"/><joint joint1="j2" joint2="j1" polycoef="0.1 0.8 0.2 0 0"/></equality>
</mujoco>
"""
