"""jaxgrasp: differentiable grasp planning and learning for high-DOF hands in JAX.

Public API (explicit re-exports):

* hands: :func:`load_hand`, :class:`HandModel`, :class:`HandLoadError`, :func:`bundled_hands`
* kinematics: :func:`forward_kinematics`, :func:`pose_hand`, :class:`PosedHand`,
  :func:`config_to_joint_angles`, :func:`config_to_palm_pose`, :func:`couple`,
  :func:`independent_angles`, :func:`default_config`
* objects and distances: :func:`load_object`, :func:`make_object`, :class:`Object`,
  :class:`LoadReport`, :func:`signed_distance`, :func:`closest_features`,
  :func:`winding_number`, :class:`ClosestFeatures`, :func:`build_grid`, :class:`Grid`
* planning: :func:`plan`, :func:`plan_grasps`, :class:`PlanConfig`, :class:`GraspResult`
"""

from jaxgrasp.culling import Grid, build_grid
from jaxgrasp.geometry import ClosestFeatures, closest_features, signed_distance, winding_number
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
from jaxgrasp.objects import LoadReport, Object, load_object, make_object
from jaxgrasp.planner import GraspResult, PlanConfig, plan, plan_grasps

__version__ = "0.1.0"

__all__ = [
    "ClosestFeatures",
    "GraspResult",
    "Grid",
    "LoadReport",
    "Object",
    "PlanConfig",
    "build_grid",
    "closest_features",
    "load_object",
    "make_object",
    "plan",
    "plan_grasps",
    "signed_distance",
    "winding_number",
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
