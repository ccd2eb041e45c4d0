"""jaxgrasp: differentiable grasp planning and learning for high-DOF hands in JAX.

Public API (explicit re-exports):

* hands: :func:`load_hand`, :class:`HandModel`, :class:`HandLoadError`, :func:`bundled_hands`
* kinematics: :func:`forward_kinematics`, :func:`pose_hand`, :class:`PosedHand`,
  :func:`config_to_joint_angles`, :func:`config_to_palm_pose`, :func:`couple`,
  :func:`independent_angles`, :func:`default_config`
"""

from jaxgrasp.hand import HandLoadError, HandModel, bundled_hands, load_hand
from jaxgrasp.kinematics import (
    PosedHand,
    config_to_joint_angles,
    config_to_palm_pose,
    couple,
    default_config,
    forward_kinematics,
    independent_angles,
    pose_hand,
)

__version__ = "0.1.0"

__all__ = [
    "HandLoadError",
    "HandModel",
    "PosedHand",
    "bundled_hands",
    "config_to_joint_angles",
    "config_to_palm_pose",
    "couple",
    "default_config",
    "forward_kinematics",
    "independent_angles",
    "load_hand",
    "pose_hand",
]
