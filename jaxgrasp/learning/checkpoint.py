"""Orbax checkpoints of training runs, and the run's settings (``run.json``).

A run folder holds ``run.json`` (the :class:`~jaxgrasp.learning.config.TrainConfig`, the
:class:`~jaxgrasp.learning.model.ModelConfig` and the dataset's cameras), ``checkpoints/<step>/`` (the
training state: parameters, optimiser state and PRNG key as arrays, plus the loop counters and
the running sums of the current epoch's loss terms as JSON), ``phase1/`` and ``final/``
(parameters only) and ``log.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import orbax.checkpoint as ocp

from jaxgrasp.learning import model as M
from jaxgrasp.learning.atomic import write_json
from jaxgrasp.learning.config import ChamferWeights, TrainConfig
from jaxgrasp.planning import losses
from jaxgrasp.planning.settings import PlanConfig

_COUNTERS = ("epoch", "step_in_epoch", "step", "phase")


def manager(directory: str, keep: int) -> ocp.CheckpointManager:
    """A synchronous checkpoint manager keeping the ``keep`` latest steps."""
    opts = ocp.CheckpointManagerOptions(max_to_keep=max(keep, 1), enable_async_checkpointing=False)
    return ocp.CheckpointManager(os.path.abspath(directory), options=opts)


def save(mgr: ocp.CheckpointManager, state: dict) -> None:
    """Save a training state at its step (no-op when that step is already saved)."""
    if mgr.latest_step() == state["step"]:
        return
    arrays = {"params": state["params"], "opt_state": state["opt_state"], "key": state["key"]}
    meta = {**{k: int(state[k]) for k in _COUNTERS}, "sums": {k: float(v) for k, v in state["sums"].items()}}
    mgr.save(state["step"], args=ocp.args.Composite(arrays=ocp.args.StandardSave(arrays),
                                                    meta=ocp.args.JsonSave(meta)))
    mgr.wait_until_finished()


def restore(mgr: ocp.CheckpointManager, like: dict) -> dict:
    """The latest training state, with the structure (and dtypes) of ``like``."""
    arrays = {"params": like["params"], "opt_state": like["opt_state"], "key": like["key"]}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, arrays)
    out = mgr.restore(mgr.latest_step(), args=ocp.args.Composite(arrays=ocp.args.StandardRestore(abstract),
                                                                   meta=ocp.args.JsonRestore()))
    meta = out["meta"]
    return {**out["arrays"], **{k: int(meta[k]) for k in _COUNTERS}, "sums": dict(meta["sums"])}


def save_params(directory: str, params) -> None:
    """Parameters alone (``phase1/``, ``final/``), replacing an older save."""
    path = os.path.abspath(directory)
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(path, params, force=True)
    ckpt.wait_until_finished()


def load_params(directory: str, like):
    """Parameters saved by :func:`save_params`, with the structure of ``like``."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return ocp.StandardCheckpointer().restore(os.path.abspath(directory), abstract)


def write_run(path: str, cfg: TrainConfig, mcfg: M.ModelConfig, manifest: dict) -> None:
    """``run.json``: settings and cameras, everything :mod:`jaxgrasp.learning.predict` needs."""
    run = {"train_config": dataclasses.asdict(cfg), "model_config": dataclasses.asdict(mcfg),
           "hand": manifest["hand"],
           "cameras": {k: manifest[k] for k in ("num_views", "height", "width", "intrinsics", "T_object_camera")}}
    write_json(path, run)  # atomic: a run killed while writing it still resumes (``--resume`` reads it)


def read_run(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "run.json")) as f:
        return json.load(f)


def model_config_from_json(d: dict) -> M.ModelConfig:
    return M.ModelConfig(**{**d, "output_offset": tuple(d["output_offset"])})


def train_config_from_json(d: dict) -> TrainConfig:
    # (runs saved before the squeeze existed use its default; flat configs of earlier versions load)
    return TrainConfig(**{**d, "weights": losses.LossWeights(**d["weights"]), "chamfer": ChamferWeights(**d["chamfer"]),
                          "plan": PlanConfig.from_dict(d["plan"])})


def resolve(checkpoint: str) -> tuple[str, str]:
    """``(run folder, parameter folder)`` of a checkpoint argument: a run folder (its ``final/``),
    or a ``phase1/`` / ``final/`` folder inside one."""
    checkpoint = os.path.abspath(checkpoint)
    if os.path.exists(os.path.join(checkpoint, "run.json")):
        if not os.path.isdir(os.path.join(checkpoint, "final")):
            raise FileNotFoundError(f"{checkpoint} has no final/ parameters yet (training not finished); "
                                    "pass its phase1/ folder or finish it with --resume")
        return checkpoint, os.path.join(checkpoint, "final")
    parent = os.path.dirname(checkpoint)
    if os.path.exists(os.path.join(parent, "run.json")):
        return parent, checkpoint
    raise FileNotFoundError(f"{checkpoint} is not a training run folder (no run.json) nor a folder inside one")


def load_model(checkpoint: str) -> tuple[M.ModelConfig, dict, dict]:
    """``(model settings, parameters, run.json)`` of a checkpoint (see :func:`resolve`)."""
    run_dir, pdir = resolve(checkpoint)
    run = read_run(run_dir)
    mcfg = model_config_from_json(run["model_config"])
    cams = run["cameras"]
    like = M.init_params(mcfg, jax.random.PRNGKey(0), cams["num_views"], cams["height"], cams["width"])
    return mcfg, load_params(pdir, like), run


__all__ = ["manager", "save", "restore", "save_params", "load_params", "write_run", "read_run", "resolve",
           "load_model", "model_config_from_json", "train_config_from_json"]
