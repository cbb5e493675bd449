"""Datasets as uint8 numpy arrays: `load_dataset(config.data)`.

Sources (data.source), one module each, registered with
`@register_source(name)`: "digits" (scikit-learn, offline), "folder" (a
directory or tar of split/class/image files, decoded once and cached) and
"tfds" (TensorFlow Datasets, imported only when used) and "embeddings"
(precomputed feature vectors in a .npz, embeddings.py; checked by its own
loader, since they are floats, not uint8 images).

`data.features = "coates"` then replaces the images by single-layer k-means
features learned from the training split (coates.py).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from jax_al import config as config_lib
from jax_al.data import cache, coates
from jax_al.data.dataset import (LOADERS, SHAPES, SIZES, Dataset, register_shape, register_sizes,
                                 register_source, validate)
from jax_al.errors import ConfigError, DataError

# Every module of the package is imported, so a source's @register_source runs.
for _m in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_m.name}")

SOURCES = tuple(sorted(LOADERS))
# Sources whose loaders return float features rather than uint8 images.
FEATURE_SOURCES = ("embeddings",)


def _fingerprint(ds: Dataset) -> dict:
  return cache.fingerprint(ds.train_images, ds.train_labels, ds.test_images, ds.test_labels,
                           ds.class_names)


def sizes(data_cfg) -> tuple[int, int] | None:
  """(training images, test images) of the dataset `data_cfg` (config.data)
  names, counted without loading it (`register_sizes`); None where the
  source cannot tell before loading, or its files are absent or unreadable
  (loading reports why)."""
  fn = SIZES.get(data_cfg.source)
  if fn is None:
    return None
  try:
    out = fn(data_cfg)
  except (OSError, ValueError, KeyError, ImportError, ConfigError, DataError):
    return None
  return None if out is None else (int(out[0]), int(out[1]))


def input_shape(data_cfg) -> tuple[int, int, int] | None:
  """The shape (height, width, channels) of one model input of the dataset
  `data_cfg` names, without loading it: k-means features are (4, k, 1),
  embeddings (1, dimension, 1), images data.image_size square (or their
  own size, `register_shape`) x data.channels. None where unknown."""
  if data_cfg.features == "coates":
    return (4, int(data_cfg.coates.k), 1)
  size = data_cfg.image_size
  if size and data_cfg.source not in FEATURE_SOURCES:
    return (int(size), int(size), int(data_cfg.channels))
  fn = SHAPES.get(data_cfg.source)
  try:
    hw = fn(data_cfg) if fn is not None else None
  except (OSError, ValueError, KeyError, ImportError, ConfigError, DataError):
    return None
  if hw is None:
    return None
  channels = 1 if data_cfg.source in FEATURE_SOURCES else int(data_cfg.channels)
  return (int(hw[0]), int(hw[1]), channels)


def load_dataset(data_cfg) -> Dataset:
  """Loads and validates the dataset that `data_cfg` (config.data) names."""
  config_lib.check_data(data_cfg)  # every data.* field and the rules between them
  source = data_cfg.source
  channels = int(data_cfg.channels)
  image_size = None if data_cfg.image_size is None else int(data_cfg.image_size)
  if source in FEATURE_SOURCES:  # float features, checked by their loader
    ds = LOADERS[source](data_cfg, image_size=image_size, channels=channels)
    return ds if ds.fingerprint else dataclasses.replace(ds, fingerprint=_fingerprint(ds))
  ds = LOADERS[source](data_cfg, image_size=image_size, channels=channels)
  ds = validate(ds, channels)
  fp = ds.fingerprint or _fingerprint(ds)
  if data_cfg.features == "coates":
    ds = coates.apply(ds, data_cfg)  # the features follow from the pixels and data.coates
  return dataclasses.replace(ds, fingerprint=fp)


__all__ = ["Dataset", "LOADERS", "SHAPES", "SIZES", "SOURCES", "load_dataset", "register_shape",
           "register_sizes", "register_source", "input_shape", "sizes"]
