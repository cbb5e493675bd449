"""TensorFlow Datasets source (needs the `tfds` extra: TensorFlow)."""

from __future__ import annotations

import numpy as np

from jax_al.data.dataset import (Dataset, register_shape, register_sizes, register_source, resize_images,
                                 to_channels)
from jax_al.errors import ConfigError, DataError

_INSTALL = "install TensorFlow and TFDS with `pip install -e .[tfds]`."
# Read in batches and concatenated. batch_size=-1 (one batch of the whole
# split) aborts the process in TF 2.21 when the split size is unknown, as
# under tfds.testing.mock_data.
_READ_BATCH = 4096


@register_source("tfds")
def load_tfds(data_cfg, *, image_size: int | None, channels: int) -> Dataset:
  """Loads data.name's train and test splits whole, as numpy arrays."""
  name = data_cfg.name
  if not name:
    raise ConfigError("data.name", name,
                      "set it to a TFDS image classification dataset, e.g. "
                      "'cifar10'.")
  # Imported here: TensorFlow takes seconds to import and is optional.
  try:
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataError("data.source = 'tfds'", f"cannot import TFDS ({e})",
                    _INSTALL) from e
  where = f"tfds:{name}"
  splits = [data_cfg.train_split, data_cfg.test_split]
  try:
    (train, test), info = tfds.load(
        name, split=splits, data_dir=data_cfg.data_dir or None,
        as_supervised=True, batch_size=_READ_BATCH, with_info=True)
  except tfds.core.DatasetNotFoundError as e:
    raise ConfigError("data.name", name,
                      f"not a TFDS dataset ({str(e).splitlines()[0]})") from e
  except Exception as e:  # TFDS raises many types; keep its message.
    raise DataError(where, f"tfds.load(split={splits}, data_dir="
                    f"{data_cfg.data_dir or None!r}) failed: {e}",
                    "check data.train_split/test_split, and that the dataset "
                    "is downloaded and prepared in data.data_dir (downloading "
                    "needs network access).") from e
  label_key = info.supervised_keys[1] if info.supervised_keys else "label"
  names = getattr(info.features[label_key], "names", None)
  if not names:
    raise DataError(where, f"feature {label_key!r} has no class names",
                    "use a dataset whose label is a tfds ClassLabel.")
  arrays = []
  for split, split_ds in zip(splits, (train, test)):
    batches = list(tfds.as_numpy(split_ds))
    if not batches:
      raise DataError(where, f"split {split!r} is empty",
                      "check data.train_split/test_split.")
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    if images.dtype != np.uint8 or images.ndim != 4:
      raise DataError(where, f"images are {images.dtype} {images.shape}",
                      "use a dataset of fixed-size uint8 images.")
    if image_size is not None:
      images = resize_images(images, image_size)
    arrays.append((to_channels(images, channels, where),
                   np.asarray(labels).astype(np.int32)))
  (train_x, train_y), (test_x, test_y) = arrays
  return Dataset(train_images=train_x, train_labels=train_y,
                 test_images=test_x, test_labels=test_y,
                 class_names=tuple(names),
                 description=f"{where} ({splits[0]}/{splits[1]})")


def _prepared_info(data_cfg):
  """The builder info of data.name where TFDS is installed and the dataset
  is prepared in data.data_dir, else None (nothing is downloaded or read)."""
  if not data_cfg.name:
    return None
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  from absl import logging  # pylint: disable=g-import-not-at-top

  level = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)  # TFDS warns about every unprepared folder it sees
  try:
    builder = tfds.builder(data_cfg.name, data_dir=data_cfg.data_dir or None)
    return builder.info if builder.is_prepared() else None
  except Exception:  # pylint: disable=broad-except  # TFDS raises many types: unknown
    return None
  finally:
    logging.set_verbosity(level)


@register_sizes("tfds")
def tfds_sizes(data_cfg) -> tuple[int, int] | None:
  """(examples of data.train_split, of data.test_split) from the prepared
  dataset's builder info; None where TFDS or the prepared dataset is absent."""
  info = _prepared_info(data_cfg)
  if info is None:
    return None
  try:
    return (info.splits[data_cfg.train_split].num_examples,
            info.splits[data_cfg.test_split].num_examples)
  except Exception:  # pylint: disable=broad-except  # an unknown split: unknown size
    return None


@register_shape("tfds")
def tfds_shape(data_cfg) -> tuple[int, int] | None:
  """(height, width) of the prepared dataset's image feature, else None."""
  info = _prepared_info(data_cfg)
  if info is None:
    return None
  image_key = info.supervised_keys[0] if info.supervised_keys else "image"
  shape = getattr(info.features[image_key], "shape", None)
  if not shape or len(shape) != 3 or None in shape[:2]:
    return None
  return int(shape[0]), int(shape[1])
