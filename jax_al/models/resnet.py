"""ResNet-18, CIFAR variant, as in the CIFAR-10 protocol's PyTorch reference code.

3x3 stem conv, no max-pool, BasicBlocks [2, 2, 2, 2] at widths 64/128/256/512
(times `width`), global average pool (the 4x4 pool at 32x32 input), linear head.
`__call__` returns (logits, features) where features are the 512-d
penultimate activations after pooling; `forward` also returns the four
stages' outputs (the feature maps a learning-loss module reads).
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

from jax_al.models.layers import batch_norm, head_dropout, masked_bn
from jax_al.models.registry import register


def _conv(cin, cout, k, stride, dtype, rngs):
  return nnx.Conv(cin, cout, (k, k), strides=(stride, stride), padding=((k // 2, k // 2),) * 2,
                  use_bias=False, dtype=dtype, rngs=rngs,
                  kernel_init=nnx.initializers.variance_scaling(2.0, "fan_out", "normal"))


class BasicBlock(nnx.Module):

  def __init__(self, cin: int, cout: int, stride: int, dtype, rngs: nnx.Rngs):
    self.conv1 = _conv(cin, cout, 3, stride, dtype, rngs)
    self.bn1 = batch_norm(cout, dtype, rngs)
    self.conv2 = _conv(cout, cout, 3, 1, dtype, rngs)
    self.bn2 = batch_norm(cout, dtype, rngs)
    self.has_shortcut = stride != 1 or cin != cout
    if self.has_shortcut:
      self.shortcut = _conv(cin, cout, 1, stride, dtype, rngs)
      self.shortcut_bn = batch_norm(cout, dtype, rngs)

  def __call__(self, x, train: bool = False, mask=None):
    y = jax.nn.relu(masked_bn(self.bn1, self.conv1(x), train, mask))
    y = masked_bn(self.bn2, self.conv2(y), train, mask)
    if self.has_shortcut:
      x = masked_bn(self.shortcut_bn, self.shortcut(x), train, mask)
    return jax.nn.relu(x + y)


@register("resnet18")
class ResNet18(nnx.Module):

  def __init__(self, num_classes: int, image_shape=(32, 32, 3), width: float = 1.0,
               dtype=jnp.float32, dropout: float = 0.0, *, rngs: nnx.Rngs):
    widths = [max(1, int(round(w * width))) for w in (64, 128, 256, 512)]
    self.stem = _conv(int(image_shape[-1]), widths[0], 3, 1, dtype, rngs)
    self.stem_bn = batch_norm(widths[0], dtype, rngs)
    blocks, cin = [], widths[0]
    for i, cout in enumerate(widths):
      for j in range(2):
        blocks.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1, dtype, rngs))
        cin = cout
    self.blocks = nnx.List(blocks)
    self.head = nnx.Linear(cin, num_classes, dtype=dtype, rngs=rngs)
    self.drop = nnx.Dropout(dropout)
    self.feature_dim = cin
    self.stage_widths = tuple(widths)

  def forward(self, x, train: bool = False, mask=None, dropout_rng=None):
    """(logits, features, [the output of each of the 4 stages, NHWC])."""
    x = jax.nn.relu(masked_bn(self.stem_bn, self.stem(x), train, mask))
    stages = []
    for i, block in enumerate(self.blocks):
      x = block(x, train, mask)
      if i % 2 == 1:  # two BasicBlocks per stage
        stages.append(x)
    feats = jnp.mean(x, axis=(1, 2))
    logits = self.head(head_dropout(self.drop, feats, dropout_rng))
    return logits.astype(jnp.float32), feats.astype(jnp.float32), stages

  def __call__(self, x, train: bool = False, mask=None, dropout_rng=None):
    logits, feats, _ = self.forward(x, train, mask, dropout_rng)
    return logits, feats
