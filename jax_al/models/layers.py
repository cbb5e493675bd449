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


def head_dropout(drop: nnx.Dropout, feats: jax.Array, rng: jax.Array | None) -> jax.Array:
  """Dropout on the features before the head: active only when given a key.

  The key is an argument, not model state, so the models split into params
  and batch statistics alone and every mask is a pure function of the
  step's key (training: derived from the step's augmentation key; MC
  dropout at selection: one key per forward pass).
  """
  return feats if rng is None else drop(feats, deterministic=False, rngs=rng)
