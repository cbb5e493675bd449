"""Layers shared by the models."""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp


def batch_norm(features: int, dtype, rngs: nnx.Rngs) -> nnx.BatchNorm:
  # PyTorch's momentum 0.1 (weight of the new batch) is flax's 0.9.
  return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, dtype=dtype, rngs=rngs)


def masked_bn(bn: nnx.BatchNorm, x: jax.Array, train: bool,
              mask: jax.Array | None) -> jax.Array:
  """BatchNorm: batch statistics when `train`, else the running averages.

  In training, padded rows (mask == False) are left out of the statistics.
  Padding gives every training step one fixed shape, so the last partial
  batch of an epoch is trained without a recompilation.
  """
  if not train or mask is None:
    return bn(x, use_running_average=not train)
  full = jnp.broadcast_to(mask.reshape((-1,) + (1,) * (x.ndim - 1)), x.shape)
  return bn(x, use_running_average=False, mask=full)
