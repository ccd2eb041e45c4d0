"""Grasp files: one JSON per planned grasp (schema ``jaxgrasp.grasp/2``; ``/1`` files still read).

Schema (all lengths in metres, angles in radians, poses in the object's *input* frame, i.e. the
frame of the mesh file after unit scaling)::

    {
      "schema": "jaxgrasp.grasp/2",
      "planner": "jaxgrasp.plan" | "annealing",
      "hand": {"name": str, "file": str},                 # the MJCF/URDF the joint names refer to
      "object": {"file": str, "units_scale": float,       # file coordinates * scale = metres
                 "center_of_mass": [x, y, z],             # input frame
                 "T_input_centered": 4x4},                # the planner's centred frame in the input frame
      "joint_angles": {joint name: angle},                # every joint of the hand file, file names
      "palm_pose": {"position": [x, y, z], "quaternion_wxyz": [w, x, y, z], "matrix": 4x4},
      "config": [6 + I floats],                           # optimizer configuration, centred frame
      "contacts": {"points": [[x, y, z], ...],            # contacts used for Q1, input frame
                   "normals": [[...], ...],               # object outward normals there
                   "candidate": [int, ...],               # contact-candidate index, -1 for a
                                                          # link's closest surface sample
                   "link": [body name, ...]},             # the hand body touching
      "metrics": {"q1": float, "q1_generalized": float | null,  # (README: the grasp file)
                  "q1_generalized_upper": float | null, "q1_generalized_lower": float | null,
                  "penetration_mm": float,
                  "self_penetration_mm": float, "num_contacts": int, "valid": bool,
                  "time_s": float},
      "load_report": {"findings": [...], "repairs": [...]} | null,
      # optional (schema 2; jaxgrasp.sim.forces.grasp_poses fills them; the simulation derives
      # them when absent):
      "pregrasp_joint_angles": {joint name: angle},       # fingers opened clear of the object
      "pregrasp_palm_pose": {"position": [x, y, z],       # the root body's pose at the pregrasp:
                             "quaternion_wxyz": [...],    # palm_pose backed off along the palm
                             "matrix": 4x4},              # normal (same rotation)
      "squeeze_joint_angles": {joint name: angle},        # position targets that press
      "forces": {"squeeze_source": "forces" | "fallback:no_contacts" | "fallback:infeasible",
                 "feasible": bool,                        # all six test wrenches resisted
                 "points": [[x, y, z], ...],              # MuJoCo contacts at the grasp, input frame
                 "normals": [[...], ...],                 # force direction on the object (into it)
                 "links": [body name, ...], "distances": [m, ...],
                 "test_force": N, "pregrasp_clear": bool,
                 "palm_backoff": m, "palm_clear": bool,   # the pregrasp palm's backoff
                 "feasible_directions": {"+x": bool, ...},
                 "direction_forces": {"+x": [[fx, fy, fz], ...] | null, ...},  # per contact, N
                 "squeeze_forces": [[fx, fy, fz], ...],   # the squeeze's force set, N
                 "max_normal_force": N | null,
                 "settings": {...}}
    }

Schema 1 is schema 2 without the optional fields (``joint_angles`` is the grasp in both).

The palm pose places the hand's root body (its frame in the hand file) in the object's input
frame: posing the hand file's root body there and setting ``joint_angles`` reproduces the grasp
(in MuJoCo: the root body's ``pos``/``quat`` and ``qpos``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from jaxgrasp.core.lie import matrix_to_quat_np

SCHEMA = "jaxgrasp.grasp/2"
SCHEMAS = ("jaxgrasp.grasp/1", SCHEMA)  # the versions read


def grasp_to_dict(result, planner: str = "jaxgrasp.plan") -> dict:
    """A :class:`jaxgrasp.planning.planner.GraspResult` as a JSON-ready dict (see the module schema)."""
    T = np.asarray(result.T_input_palm, np.float64)
    T_c = np.eye(4)
    T_c[:3, 3] = result.center_of_mass
    m = {k: v for k, v in result.metrics.items() if k != "contacts"}
    contacts = result.metrics.get("contacts", {})
    for k in ("q1_generalized", "q1_generalized_upper", "q1_generalized_lower"):  # null without the extras
        m.setdefault(k, None)
    m["time_s"] = float(result.time_s)
    rep = result.report
    return {
        "schema": SCHEMA,
        "planner": planner,
        "hand": {"name": result.hand.name, "file": result.hand.path},
        "object": {
            "file": result.object_source,
            "units_scale": float(rep.scale) if rep is not None else 1.0,
            "center_of_mass": np.asarray(result.center_of_mass).tolist(),
            "T_input_centered": T_c.tolist(),
        },
        "joint_angles": dict(result.joint_angles),
        "palm_pose": {"position": T[:3, 3].tolist(), "quaternion_wxyz": matrix_to_quat_np(T[:3, :3]).tolist(),
                      "matrix": T.tolist()},
        "config": np.asarray(result.config, np.float64).tolist(),
        "contacts": {"points": np.asarray(result.contact_pos).tolist(),
                     "normals": np.asarray(result.contact_normal).tolist(),
                     "candidate": list(contacts.get("candidate", [])),
                     "link": list(contacts.get("link", []))},
        "metrics": m,
        "load_report": None if rep is None else {"findings": list(rep.findings), "repairs": list(rep.repairs)},
        **(result.poses or {}),
    }


def save_grasp(result, path: str | os.PathLike, planner: str = "jaxgrasp.plan") -> Path:
    """Write a grasp JSON atomically (a partial file is never left behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(grasp_to_dict(result, planner), indent=1))
    os.replace(tmp, path)
    return path


def load_grasp(path: str | os.PathLike) -> dict:
    """Read and check a grasp JSON (schema 1 or 2).

    Raises:
        ValueError: not a jaxgrasp grasp file, a field is missing, an optional schema-2 angle
            set lacks a joint of ``joint_angles``, or ``pregrasp_palm_pose`` has no 4x4 matrix.
    """
    data = json.loads(Path(path).read_text())
    if data.get("schema") not in SCHEMAS:
        raise ValueError(f"{path}: not a {' or '.join(SCHEMAS)} file (schema={data.get('schema')!r})")
    for key in ("hand", "object", "joint_angles", "palm_pose", "contacts", "metrics"):
        if key not in data:
            raise ValueError(f"{path}: missing field {key!r}")
    for key in ("pregrasp_joint_angles", "squeeze_joint_angles"):
        if data.get(key) is not None and set(data[key]) != set(data["joint_angles"]):
            raise ValueError(f"{path}: {key} names other joints than joint_angles")
    pre_palm = data.get("pregrasp_palm_pose")
    if pre_palm is not None and np.shape(pre_palm.get("matrix") if isinstance(pre_palm, dict) else None) != (4, 4):
        raise ValueError(f"{path}: pregrasp_palm_pose needs a 4x4 'matrix'")
    return data


def save_grasp_dict(grasp: dict, path: str | os.PathLike) -> Path:
    """Write a grasp dict (e.g. from :func:`jaxgrasp.sim.forces.grasp_poses`) as JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({k: v for k, v in grasp.items() if not k.startswith("_")}, indent=1))
    os.replace(tmp, path)
    return path
