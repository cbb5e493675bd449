"""scikit-learn's 8x8 handwritten digits: 1,797 real images, no download."""

from __future__ import annotations

import numpy as np

from jax_al.data.dataset import (Dataset, register_shape, register_sizes, register_source, resize_images,
                                 to_channels)
from jax_al.errors import ConfigError

# Fixed, not config.seed: the test split must not move between runs.
SPLIT_SEED = 0
NUM_CLASSES = 10
TOTAL = 1797  # scikit-learn's load_digits(): 1,797 images


@register_sizes("digits")
def digits_sizes(data_cfg) -> tuple[int, int] | None:
  """(1,797 - data.num_test, data.num_test), without importing scikit-learn;
  None for a num_test the loader refuses."""
  num_test = data_cfg.num_test
  if (isinstance(num_test, bool) or not isinstance(num_test, int)
      or not NUM_CLASSES <= num_test <= TOTAL - NUM_CLASSES):
    return None
  return TOTAL - num_test, num_test


@register_shape("digits")
def digits_shape(data_cfg) -> tuple[int, int]:
  """The digits are 8x8 pixels."""
  del data_cfg
  return (8, 8)


@register_source("digits")
def load_digits(data_cfg, *, image_size: int | None, channels: int) -> Dataset:
  """Splits the digits into train and a stratified test set of data.num_test.

  Pixels 0..16 are scaled to uint8 0..255. The split is stratified (every
  digit appears in both splits in its overall proportion) and seeded with a
  fixed seed.
  """
  # Imported here: scikit-learn takes most of a second to import.
  from sklearn import datasets, model_selection


  digits = datasets.load_digits()
  total = len(digits.target)
  num_test = data_cfg.num_test
  if (isinstance(num_test, bool) or not isinstance(num_test, int)
      or not NUM_CLASSES <= num_test <= total - NUM_CLASSES):
    raise ConfigError(
        "data.num_test", num_test,
        f"the digits have {total} images; hold out between {NUM_CLASSES} and "
        f"{total - NUM_CLASSES} for testing so both splits hold every digit.")
  images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = digits.target.astype(np.int32)
  idx_train, idx_test = model_selection.train_test_split(
      np.arange(total), test_size=num_test, stratify=labels,
      random_state=SPLIT_SEED)
  if image_size is not None:
    images = resize_images(images, image_size)
  images = to_channels(images, channels, "digits")
  return Dataset(
      train_images=images[idx_train], train_labels=labels[idx_train],
      test_images=images[idx_test], test_labels=labels[idx_test],
      class_names=tuple(str(d) for d in range(NUM_CLASSES)),
      description="digits:sklearn")
