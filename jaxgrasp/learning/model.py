"""The grasp prediction network (paper III and V, "Neural Network"), in Flax linen.

``N(D_1..V; theta) -> x``: a ResNet shared over the ``V`` depth views (views folded into the
batch axis), max pooling of the per-view feature vectors over the views, then fully connected
layers to ``6 + I`` outputs. The output is the planner's configuration ``x = (t, r, z)`` (see
:mod:`jaxgrasp.hand.kinematics`) in the *sample frame* of the cameras: the joint limits are applied by
the same sigmoid transform as in the planner (``independent_angles``), when the configuration is
posed, so a prediction can be handed to the planner unchanged.

Backbones (``ModelConfig.arch``):

* ``"resnet50"``: the paper's ResNet-50 (bottleneck blocks 3-4-6-3, 2,048 features). The paper
  fine-tunes ImageNet weights; nothing is downloaded here, so it trains from scratch.
* ``"resnet18"``, ``"resnet34"``: basic blocks 2-2-2-2 / 3-4-6-3, 512 features.
* ``"tiny"`` (default): basic blocks 1-1-1-1 at widths 16-32-64-128 (128 features), sized so a
  batch of 16 samples x 5 views of 128 x 128 trains in a fraction of a second on a 2-core CPU.

Normalisation layers are GroupNorm, not BatchNorm: stateless (no running statistics to carry in
checkpoints), identical in training and prediction, and valid for a batch of one.

Input normalisation (:func:`normalize_depth`): a depth image (metres along each camera's optical
axis, 0 = background) becomes two channels: ``(depth_offset - depth) / depth_scale`` on the
object (``depth_offset`` is the camera distance to the object's centre, so the value is the
height of the surface above the plane through the centre facing the camera, in units of
``depth_scale``, about the largest object size: roughly in [-1, 1]) and 0 on the background, plus
a foreground mask (1 on the object, 0 elsewhere) so the background is not mistaken for a surface
through the centre.

Output scaling: the last layer's raw outputs ``u`` (zero bias, small weights at initialisation)
map to ``x = offset + scale * u`` with ``scale = (translation_scale x 3, rotation_scale x 3, 1 x
I)``: translations in units of ``translation_scale`` metres (about one object size), rotations in
radians, joint variables as they are; ``offset`` (default zero) lets training start from the mean
ground-truth joint variables (:func:`jaxgrasp.learning.train.model_config_for`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ARCHS = {
    # name: (block, stage sizes, base width, stem kernel)
    "tiny": ("basic", (1, 1, 1, 1), 16, 5),
    "resnet18": ("basic", (2, 2, 2, 2), 64, 7),
    "resnet34": ("basic", (3, 4, 6, 3), 64, 7),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 64, 7),
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Network settings (hashable: a static argument of the jitted steps).

    Attributes:
        num_outputs: ``6 + I`` of the hand.
        arch: backbone, one of :data:`ARCHS`.
        head_hidden: width of the hidden fully connected layer after view pooling (0: the
            paper's single fully connected layer).
        depth_offset: camera distance to the object's centre [m] (see the module docstring).
        depth_scale: depth normalisation length [m].
        translation_scale: metres per unit of the translation outputs.
        rotation_scale: radians per unit of the rotation-vector outputs.
        output_offset: ``(6 + I,)`` values of ``x`` at zero raw output (empty: zeros).
    """

    num_outputs: int
    arch: str = "tiny"
    head_hidden: int = 256
    depth_offset: float = 0.4
    depth_scale: float = 0.1
    translation_scale: float = 0.05
    rotation_scale: float = 1.0
    output_offset: tuple[float, ...] = ()

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {sorted(ARCHS)}")
        if self.output_offset and len(self.output_offset) != self.num_outputs:
            raise ValueError(f"output_offset has {len(self.output_offset)} entries, expected {self.num_outputs}")


def normalize_depth(depth: jnp.ndarray, cfg: ModelConfig) -> jnp.ndarray:
    """Network input from depth images.

    Args:
        depth: ``(..., H, W)`` metres, 0 = background.
        cfg: the model settings (``depth_offset``, ``depth_scale``).

    Returns:
        ``(..., H, W, 2)``: normalised height above the centre plane (0 on the background) and
        the foreground mask.
    """
    fg = depth > 0
    h = jnp.where(fg, (cfg.depth_offset - depth) / cfg.depth_scale, 0.0)
    return jnp.stack([h, fg.astype(h.dtype)], -1).astype(jnp.float32)


def _groups(c: int) -> int:
    """GroupNorm groups: 32 as usual, fewer for thin layers (at least 4 channels a group)."""
    return max(1, min(32, c // 4))


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions), projection shortcut when the shape changes."""

    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.features, (3, 3), (self.stride, self.stride), use_bias=False)(x)
        y = nn.relu(nn.GroupNorm(_groups(self.features))(y))
        y = nn.Conv(self.features, (3, 3), use_bias=False)(y)
        y = nn.GroupNorm(_groups(self.features), scale_init=nn.initializers.zeros)(y)
        if x.shape[-1] != self.features or self.stride != 1:
            x = nn.Conv(self.features, (1, 1), (self.stride, self.stride), use_bias=False)(x)
            x = nn.GroupNorm(_groups(self.features))(x)
        return nn.relu(x + y)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (1x1, 3x3, 1x1 with 4x expansion), as in ResNet-50."""

    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        out = 4 * self.features
        y = nn.relu(nn.GroupNorm(_groups(self.features))(nn.Conv(self.features, (1, 1), use_bias=False)(x)))
        y = nn.Conv(self.features, (3, 3), (self.stride, self.stride), use_bias=False)(y)
        y = nn.relu(nn.GroupNorm(_groups(self.features))(y))
        y = nn.Conv(out, (1, 1), use_bias=False)(y)
        y = nn.GroupNorm(_groups(out), scale_init=nn.initializers.zeros)(y)
        if x.shape[-1] != out or self.stride != 1:
            x = nn.GroupNorm(_groups(out))(nn.Conv(out, (1, 1), (self.stride, self.stride), use_bias=False)(x))
        return nn.relu(x + y)


class ResNet(nn.Module):
    """ResNet backbone: ``(N, H, W, C) -> (N, features)`` (global average pooling)."""

    block: str
    stage_sizes: Sequence[int]
    width: int
    stem_kernel: int

    @nn.compact
    def __call__(self, x):
        k = self.stem_kernel
        x = nn.Conv(self.width, (k, k), (2, 2), use_bias=False)(x)
        x = nn.relu(nn.GroupNorm(_groups(self.width))(x))
        x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
        Block = BasicBlock if self.block == "basic" else Bottleneck
        for i, n in enumerate(self.stage_sizes):
            for j in range(n):
                x = Block(self.width * 2**i, stride=2 if (i > 0 and j == 0) else 1)(x)
        return jnp.mean(x, axis=(1, 2))


class GraspNet(nn.Module):
    """``(B, V, H, W)`` depth views -> ``(B, 6 + I)`` configurations (sample frame)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, depth):
        cfg = self.cfg
        b, v = depth.shape[:2]
        x = normalize_depth(depth.reshape((b * v,) + depth.shape[2:]), cfg)
        block, stages, width, stem = ARCHS[cfg.arch]
        f = ResNet(block, stages, width, stem)(x)  # shared over views: views folded into the batch
        f = jnp.max(f.reshape(b, v, -1), axis=1)  # max pooling over the views
        if cfg.head_hidden:
            f = nn.relu(nn.Dense(cfg.head_hidden)(f))
        u = nn.Dense(cfg.num_outputs, kernel_init=nn.initializers.variance_scaling(0.01, "fan_in", "normal"),
                     bias_init=nn.initializers.zeros)(f)
        return output_transform(u, cfg)


def output_transform(u: jnp.ndarray, cfg: ModelConfig) -> jnp.ndarray:
    """Raw outputs ``(..., 6 + I)`` -> configurations ``x = offset + scale * u``."""
    n_joint = cfg.num_outputs - 6
    scale = jnp.concatenate([jnp.full(3, cfg.translation_scale), jnp.full(3, cfg.rotation_scale),
                             jnp.ones(n_joint)]).astype(u.dtype)
    offset = jnp.asarray(cfg.output_offset or (0.0,) * cfg.num_outputs, u.dtype)
    return offset + scale * u


def init_params(cfg: ModelConfig, key: jax.Array, num_views: int, height: int, width: int):
    """Initial parameters for inputs of shape ``(1, V, H, W)``."""
    return GraspNet(cfg).init(key, jnp.zeros((1, num_views, height, width), jnp.float32))


def apply(cfg: ModelConfig, params, depth: jnp.ndarray) -> jnp.ndarray:
    """Predicted configurations ``(B, 6 + I)`` of depth views ``(B, V, H, W)`` (metres)."""
    return GraspNet(cfg).apply(params, depth)
