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
from jax_al.data.dataset import LOADERS, Dataset, register_source, validate

# Every module of the package is imported, so a source's @register_source runs.
for _m in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_m.name}")

SOURCES = tuple(sorted(LOADERS))
# Sources whose loaders return float features rather than uint8 images.
FEATURE_SOURCES = ("embeddings",)


def _fingerprint(ds: Dataset) -> dict:
  return cache.fingerprint(ds.train_images, ds.train_labels, ds.test_images, ds.test_labels,
                           ds.class_names)


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


__all__ = ["Dataset", "LOADERS", "SOURCES", "load_dataset", "register_source"]
