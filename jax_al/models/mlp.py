"""A one-hidden-layer MLP on flattened pixels: the stand-in model for digits.

With tiny labeled sets (digits: 20 ... 200 labels) an MLP without batch
normalisation learns faster and steadier than a CNN, which is what makes the
differences between strategies visible. Features are the hidden activations.
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

from jax_al.models.layers import head_dropout
from jax_al.models.registry import register


@register("mlp")
class MLP(nnx.Module):

  def __init__(self, num_classes: int, image_shape=(8, 8, 1), width: float = 1.0,
               dtype=jnp.float32, dropout: float = 0.0, *, rngs: nnx.Rngs):
    hidden = max(1, int(round(256 * width)))
    n_in = int(image_shape[0] * image_shape[1] * image_shape[2])
    self.fc = nnx.Linear(n_in, hidden, dtype=dtype, rngs=rngs)
    self.head = nnx.Linear(hidden, num_classes, dtype=dtype, rngs=rngs)
    self.drop = nnx.Dropout(dropout)
    self.feature_dim = hidden

  def __call__(self, x, train: bool = False, mask=None, dropout_rng=None):
    del train, mask  # no batch statistics
    feats = jax.nn.relu(self.fc(x.reshape(x.shape[0], -1)))
    logits = self.head(head_dropout(self.drop, feats, dropout_rng))
    return logits.astype(jnp.float32), feats.astype(jnp.float32)
