"""Grasp files: one JSON per planned grasp (schema ``jaxgrasp.grasp/1``).

Schema (all lengths in metres, angles in radians, poses in the object's *input* frame, i.e. the
frame of the mesh file after unit scaling)::

    {
      "schema": "jaxgrasp.grasp/1",
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
      "metrics": {"q1": float, "q1_upper": float | null, "q1_lower": float | null,
                  "q1_generalized": float | null, "penetration_mm": float,
                  "self_penetration_mm": float, "num_contacts": int, "valid": bool,
                  "time_s": float},
      "load_report": {"findings": [...], "repairs": [...]} | null
    }

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

SCHEMA = "jaxgrasp.grasp/1"


def grasp_to_dict(result, planner: str = "jaxgrasp.plan") -> dict:
    """A :class:`jaxgrasp.planning.planner.GraspResult` as a JSON-ready dict (see the module schema)."""
    T = np.asarray(result.T_input_palm, np.float64)
    T_c = np.eye(4)
    T_c[:3, 3] = result.center_of_mass
    m = {k: v for k, v in result.metrics.items() if k != "contacts"}
    contacts = result.metrics.get("contacts", {})
    m.setdefault("q1_lower", None)
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
    """Read and check a grasp JSON.

    Raises:
        ValueError: not a jaxgrasp grasp file, or a field is missing.
    """
    data = json.loads(Path(path).read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a {SCHEMA} file (schema={data.get('schema')!r})")
    for key in ("hand", "object", "joint_angles", "palm_pose", "contacts", "metrics"):
        if key not in data:
            raise ValueError(f"{path}: missing field {key!r}")
    return data
