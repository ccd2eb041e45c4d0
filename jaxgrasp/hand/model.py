"""Hand models: a hand file loaded into a frozen JAX pytree (:class:`HandModel`).

The file is read by :mod:`jaxgrasp.hand.mjcf` (MuJoCo compile, kinematic tree, joint limits and
couplings, see there for the coupling rule); grasp annotations (contact candidates, surface
samples, link hulls) come from :mod:`jaxgrasp.hand.annotate`. Everything is then converted once
to JAX arrays in a :class:`HandModel`.

Frames: the hand frame is the root body's frame (the palm). ``forward_kinematics`` returns poses
in that frame ("root at identity"), whatever pose the file gives the root body in its world.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
from flax import struct

from jaxgrasp.hand import annotate
from jaxgrasp.hand.mjcf import (
    HandLoadError,
    compile_model,
    read_couplings,
    read_tree,
    resolve_hand_path,
    robots_dir,
)


@struct.dataclass
class HandModel:
    """A hand: kinematic tree, joint limits, couplings and grasp annotations.

    Static fields (Python values) fix shapes and control flow; array fields are JAX leaves, so a
    hand can be differentiated through, vmapped over (hands of identical structure), or moved to
    a device. ``B`` bodies, ``J`` joints, ``I`` independent joints, ``R`` coupling rules, ``C``
    contact candidates, ``S`` surface samples, ``H`` half-spaces per link hull.
    """

    # --- static structure ---
    name: str = struct.field(pytree_node=False)
    path: str = struct.field(pytree_node=False)
    body_names: tuple[str, ...] = struct.field(pytree_node=False)
    body_parent: tuple[int, ...] = struct.field(pytree_node=False)  # -1 for the root
    body_joints: tuple[tuple[int, ...], ...] = struct.field(pytree_node=False)
    joint_names: tuple[str, ...] = struct.field(pytree_node=False)
    joint_types: tuple[str, ...] = struct.field(pytree_node=False)
    independent: tuple[int, ...] = struct.field(pytree_node=False)  # joint indices, (I,)
    coupled: tuple[int, ...] = struct.field(pytree_node=False)  # dependent joint per rule, (R,)

    # --- kinematics (body frames relative to the parent body at qpos0) ---
    body_pos: jnp.ndarray  # (B, 3)
    body_rot: jnp.ndarray  # (B, 3, 3)
    joint_axis: jnp.ndarray  # (J, 3) unit, in the joint's body frame
    joint_anchor: jnp.ndarray  # (J, 3) in the joint's body frame
    joint_ref: jnp.ndarray  # (J,) MuJoCo qpos0 (the value at which the body has its file pose)
    joint_lower: jnp.ndarray  # (J,)
    joint_upper: jnp.ndarray  # (J,)
    coupling_offset: jnp.ndarray  # (R,)
    coupling_linear: jnp.ndarray  # (R, J)
    coupling_poly_dir: jnp.ndarray  # (R, J)
    coupling_poly_ref: jnp.ndarray  # (R,)
    coupling_poly: jnp.ndarray  # (R, 4) coefficients of degree 1..4

    # --- grasp annotations (all in body frames) ---
    contact_body: jnp.ndarray  # (C,) int32
    contact_pos: jnp.ndarray  # (C, 3)
    contact_normal: jnp.ndarray  # (C, 3) outward unit normal of the hand surface
    sample_body: jnp.ndarray  # (S,) int32
    sample_pos: jnp.ndarray  # (S, 3)
    sample_normal: jnp.ndarray  # (S, 3)
    hull_normal: jnp.ndarray  # (B, H, 3) unit outward normals; inside: n.x + offset <= 0
    hull_offset: jnp.ndarray  # (B, H)
    hull_mask: jnp.ndarray  # (B, H) bool, False for padding rows
    collision_exclude: jnp.ndarray  # (B, B) bool, pairs never checked for self-collision
    palm_normal: jnp.ndarray  # (3,) direction the palm faces (hand frame)
    finger_direction: jnp.ndarray  # (3,) direction the fingers point at qpos0 (hand frame)

    # --- static structure read off the tree, and what the annotations found suspicious ---
    palm: int = struct.field(pytree_node=False, default=0)  # the palm body (below a forearm/wrist)
    fixed_joints: tuple[int, ...] = struct.field(pytree_node=False, default=())  # wrist joints held at qpos0
    findings: tuple[str, ...] = struct.field(pytree_node=False, default=())  # annotation warnings

    # --- the hand file's own collision geoms (jaxgrasp.hand.geoms.HandGeoms), when attached ---
    # (jaxgrasp.planning.geom_check.with_geoms): the planner's collision term then measures them
    # instead of the link hulls; None: the hulls and samples above only.
    geoms: object = None

    @property
    def num_bodies(self) -> int:
        return len(self.body_names)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def num_independent(self) -> int:
        return len(self.independent)

    @property
    def num_dof(self) -> int:
        """Size of the optimizer configuration: 6 global DOF + independent joints."""
        return 6 + len(self.independent)

    @property
    def independent_names(self) -> tuple[str, ...]:
        return tuple(self.joint_names[j] for j in self.independent)

    @property
    def num_contacts(self) -> int:
        return int(self.contact_pos.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.sample_pos.shape[0])


# ----------------------------------------------------------------------------------------------
# Public loader
# ----------------------------------------------------------------------------------------------


def load_hand(
    name_or_path: str | os.PathLike,
    *,
    root: str | None = None,
    num_samples: int = 2048,
    contacts: str | os.PathLike | None = None,
    cache: bool = True,
    dtype=jnp.float32,
    fix_wrist: bool = True,
) -> HandModel:
    """Load a bundled hand by name, or any MJCF or URDF hand file.

    Args:
        name_or_path: a bundled name (``"shadow"``, ``"threefinger"``, ``"parallel_jaw"``) or a
            path to an ``.xml`` (MJCF) or ``.urdf`` file.
        root: name of the hand's root body when the file holds several top-level bodies.
        num_samples: size of the dense surface sample of the collision geometry.
        contacts: a JSON override file for the contact candidates (see
            :func:`jaxgrasp.hand.annotate.hand_annotations`); default ``<file stem>.contacts.json``
            beside the hand file when it exists.
        cache: read the annotation cache (beside the hand file, then the user cache) and write it
            (in the user cache only, ``~/.cache/jaxgrasp/annotations``).
        dtype: floating dtype of the model's arrays (``jnp.float32`` or ``jnp.float64``).
        fix_wrist: hold the joints on and above the palm (a wrist between a forearm and the
            palm, see :func:`jaxgrasp.hand.mjcf.read_tree`) at ``qpos0``; False: plan them too.

    Returns:
        The frozen :class:`HandModel`.

    Raises:
        jaxgrasp.hand.mjcf.HandLoadError: the file is missing, is not MJCF/URDF, references missing meshes, holds
            no hand, or uses unsupported joints or couplings.
    """
    path = resolve_hand_path(name_or_path)
    model = compile_model(path)
    try:
        tree = read_tree(model, root, fix_wrist=fix_wrist)
        coup = read_couplings(model, tree)
    except HandLoadError as e:  # say which file
        raise HandLoadError(f"{path}: {e}") from e
    ann = annotate.hand_annotations(model, tree, path, num_samples=num_samples, contacts=contacts, cache=cache)

    f = lambda x: jnp.asarray(x, dtype=dtype)  # noqa: E731
    i32 = lambda x: jnp.asarray(x, dtype=jnp.int32)  # noqa: E731
    independent = tuple(k for k in range(len(tree.joint_ids)) if k not in set(coup.dependent))
    name = path.stem if path.parent.parent != robots_dir().resolve() else path.parent.name
    return HandModel(
        name=name,
        path=str(path),
        body_names=tree.body_names,
        body_parent=tree.body_parent,
        body_joints=tree.body_joints,
        joint_names=tree.joint_names,
        joint_types=tree.joint_types,
        independent=independent,
        coupled=coup.dependent,
        body_pos=f(tree.body_pos),
        body_rot=f(tree.body_rot),
        joint_axis=f(tree.joint_axis),
        joint_anchor=f(tree.joint_anchor),
        joint_ref=f(tree.joint_ref),
        joint_lower=f(tree.joint_lower),
        joint_upper=f(tree.joint_upper),
        coupling_offset=f(coup.offset),
        coupling_linear=f(coup.linear),
        coupling_poly_dir=f(coup.poly_dir),
        coupling_poly_ref=f(coup.poly_ref),
        coupling_poly=f(coup.poly),
        contact_body=i32(ann["contact_body"]),
        contact_pos=f(ann["contact_pos"]),
        contact_normal=f(ann["contact_normal"]),
        sample_body=i32(ann["sample_body"]),
        sample_pos=f(ann["sample_pos"]),
        sample_normal=f(ann["sample_normal"]),
        hull_normal=f(ann["hull_normal"]),
        hull_offset=f(ann["hull_offset"]),
        hull_mask=jnp.asarray(ann["hull_mask"], dtype=bool),
        collision_exclude=jnp.asarray(ann["collision_exclude"], dtype=bool),
        palm_normal=f(ann["palm_normal"]),
        finger_direction=f(ann["finger_direction"]),
        palm=tree.palm,
        fixed_joints=tree.fixed_joints,
        findings=tuple(str(x) for x in ann.get("findings", ())),
    )
