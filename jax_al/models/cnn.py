"""A small CNN for the CPU configs (digits, quick tests).

Two conv-BN-ReLU stages with 2x2 max-pooling, global average pool, a dense
feature layer and a linear head. Works for any input size >= 4x4.
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

from jax_al.models.layers import batch_norm, head_dropout, masked_bn
from jax_al.models.registry import register


@register("cnn")
class SmallCNN(nnx.Module):

  def __init__(self, num_classes: int, image_shape=(32, 32, 3), width: float = 1.0,
               dtype=jnp.float32, dropout: float = 0.0, *, rngs: nnx.Rngs):
    c1, c2, f = (max(1, int(round(v * width))) for v in (32, 64, 128))
    self.conv1 = nnx.Conv(int(image_shape[-1]), c1, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
    self.bn1 = batch_norm(c1, dtype, rngs)
    self.conv2 = nnx.Conv(c1, c2, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
    self.bn2 = batch_norm(c2, dtype, rngs)
    self.fc = nnx.Linear(c2, f, dtype=dtype, rngs=rngs)
    self.head = nnx.Linear(f, num_classes, dtype=dtype, rngs=rngs)
    self.drop = nnx.Dropout(dropout)
    self.feature_dim = f

  def __call__(self, x, train: bool = False, mask=None, dropout_rng=None):
    x = jax.nn.relu(masked_bn(self.bn1, self.conv1(x), train, mask))
    x = nnx.max_pool(x, (2, 2), strides=(2, 2))
    x = jax.nn.relu(masked_bn(self.bn2, self.conv2(x), train, mask))
    feats = jax.nn.relu(self.fc(jnp.mean(x, axis=(1, 2))))
    logits = self.head(head_dropout(self.drop, feats, dropout_rng))
    return logits.astype(jnp.float32), feats.astype(jnp.float32)
