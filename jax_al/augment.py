"""On-device augmentation and normalisation, fused into the jitted steps.

Images stay uint8 on the device; these functions turn a gathered batch into
normalised floats. Training batches get flip/crop (each switchable in
`config.augment`); pool and test batches get normalisation only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def normalize(images: jax.Array, mean, std, dtype=jnp.float32) -> jax.Array:
  """uint8 [B, H, W, C] -> (x / 255 - mean) / std in `dtype`.

  Float inputs (precomputed features, data.features) are already on their
  own scale: they are not divided by 255.
  """
  c = images.shape[-1]
  mean = jnp.asarray(mean, jnp.float32)[:c]
  std = jnp.asarray(std, jnp.float32)[:c]
  x = images.astype(jnp.float32)
  if not jnp.issubdtype(images.dtype, jnp.floating):
    x = x / 255.0
  return ((x - mean) / std).astype(dtype)


def random_flip(rng: jax.Array, x: jax.Array) -> jax.Array:
  """Flips each image of [B, H, W, C] left-right with probability 1/2."""
  flip = jax.random.bernoulli(rng, 0.5, (x.shape[0],))
  return jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)


def random_crop(rng: jax.Array, x: jax.Array, pad: int) -> jax.Array:
  """Zero-pads by `pad` pixels, then crops back to H x W at a random offset.

  Offsets are drawn from [0, 2 * pad] inclusive (randint's upper bound is
  exclusive, hence 2 * pad + 1), as torchvision's RandomCrop(padding=pad).
  """
  b, h, w, _ = x.shape
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  off = jax.random.randint(rng, (b, 2), 0, 2 * pad + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
  return jax.vmap(crop)(padded, off)


def train_view(rng: jax.Array, images: jax.Array, *, flip: bool, crop_pad: int,
               mean, std, dtype) -> jax.Array:
  """Augments then normalises a uint8 training batch.

  The users pad the PIL image with black pixels and normalise afterwards, so
  the crop runs on the uint8 batch before normalisation.
  """
  k_flip, k_crop = jax.random.split(rng)
  if flip:
    images = random_flip(k_flip, images)
  if crop_pad > 0:
    images = random_crop(k_crop, images, crop_pad)
  return normalize(images, mean, std, dtype)
