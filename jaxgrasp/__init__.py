"""jaxgrasp: differentiable grasp planning and learning for high-DOF hands in JAX.

Public API (explicit re-exports):

* hands: :func:`load_hand`, :class:`HandModel`, :class:`HandLoadError`, :func:`bundled_hands`
* kinematics: :func:`forward_kinematics`, :func:`pose_hand`, :class:`PosedHand`,
  :func:`config_to_joint_angles`, :func:`config_to_palm_pose`, :func:`couple`,
  :func:`independent_angles`, :func:`default_config`
* objects and distances: :func:`load_object`, :func:`make_object`, :class:`Object`,
  :class:`LoadReport`, :func:`signed_distance`, :func:`closest_features`,
  :func:`winding_number`, :class:`ClosestFeatures`, :func:`build_grid`, :class:`Grid`
* grasp quality: :class:`QualityConfig`, :func:`contact_weights`, :func:`q1_upper`,
  :func:`q1_lower`, :func:`q1_lower_solution`, :func:`q1_exact`, :func:`wrench_directions`,
  :func:`edge_wrenches`, :func:`characteristic_length`, :class:`SDPOptions`, and the highest Q1
  any grasp of a mesh can have: :func:`band_contacts`, :func:`q1_ceiling`
* losses: :class:`LossWeights`, :func:`loss_q1`, :func:`loss_collision`,
  :func:`loss_object_in_hull`, :func:`loss_self_collision`, :func:`loss_guide`, :func:`combine`
* planning: :func:`plan`, :func:`plan_grasps`, :func:`plan_batch`, :func:`grasp_diversity`,
  :class:`GraspResult`; settings :class:`PlanConfig` and its groups :class:`EvalConfig`,
  :class:`Shapes`, :class:`LossConfig`, :class:`OptimizerConfig`, :class:`StartConfig`,
  :class:`Schedule`, :class:`SqueezeConfig`
* learning: :func:`predict`, :class:`Prediction` (training: ``python -m jaxgrasp.train``)
* simulation: :func:`simulate_grasp`, :func:`simulate_many`, :class:`SimConfig`, :class:`SimResult`
"""

from jaxgrasp.core.compile_cache import enable_compilation_cache

enable_compilation_cache()  # JAX's persistent compilation cache (JAXGRASP_CACHE_DIR moves or disables it)

from jaxgrasp.hand.kinematics import (
    PosedHand,
    config_to_joint_angles,
    config_to_palm_pose,
    couple,
    default_config,
    forward_kinematics,
    independent_angles,
    pose_hand,
)
from jaxgrasp.hand.mjcf import HandLoadError, bundled_hands
from jaxgrasp.hand.model import HandModel, load_hand
from jaxgrasp.learning.predict import Prediction, predict
from jaxgrasp.mesh.culling import Grid, build_grid
from jaxgrasp.mesh.geometry import (
    ClosestFeatures,
    closest_features,
    signed_distance,
    winding_number,
)
from jaxgrasp.mesh.objects import LoadReport, Object, load_object, make_object
from jaxgrasp.planning.anytime import BudgetSpentCompiling
from jaxgrasp.planning.batch import grasp_diversity, plan_batch
from jaxgrasp.planning.losses import (
    LossWeights,
    combine,
    loss_collision,
    loss_guide,
    loss_object_in_hull,
    loss_q1,
    loss_self_collision,
)
from jaxgrasp.planning.planner import GraspResult
from jaxgrasp.planning.settings import (
    EvalConfig,
    LossConfig,
    OptimizerConfig,
    PlanConfig,
    Schedule,
    Shapes,
    SqueezeConfig,
    StartConfig,
)
from jaxgrasp.quality.ceiling import band_contacts, q1_ceiling
from jaxgrasp.quality.q1 import (
    QualityConfig,
    characteristic_length,
    contact_weights,
    edge_wrenches,
    q1_exact,
    q1_lower,
    q1_lower_solution,
    q1_upper,
    wrench_directions,
)
from jaxgrasp.quality.sdp import SDPOptions
from jaxgrasp.sim.protocol import SimConfig, SimResult
from jaxgrasp.sim.simulate import simulate_grasp, simulate_many
from jaxgrasp.sim.verify import NoGraspHeld, plan, plan_grasps

__version__ = "0.1.0"

__all__ = [
    "LossWeights",
    "combine",
    "loss_collision",
    "loss_guide",
    "loss_object_in_hull",
    "loss_q1",
    "loss_self_collision",
    "QualityConfig",
    "characteristic_length",
    "contact_weights",
    "edge_wrenches",
    "q1_exact",
    "q1_lower",
    "q1_lower_solution",
    "q1_upper",
    "wrench_directions",
    "band_contacts",
    "q1_ceiling",
    "SDPOptions",
    "SimConfig",
    "SimResult",
    "simulate_grasp",
    "simulate_many",
    "ClosestFeatures",
    "GraspResult",
    "Grid",
    "LoadReport",
    "Object",
    "PlanConfig",
    "BudgetSpentCompiling",
    "EvalConfig",
    "LossConfig",
    "OptimizerConfig",
    "Schedule",
    "Shapes",
    "SqueezeConfig",
    "StartConfig",
    "plan_batch",
    "grasp_diversity",
    "build_grid",
    "closest_features",
    "load_object",
    "make_object",
    "plan",
    "plan_grasps",
    "NoGraspHeld",
    "Prediction",
    "predict",
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
