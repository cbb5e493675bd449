"""The `Dataset` every source returns, and the checks of the decoded arrays
all sources share (the config fields are checked in jax_al/config.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from jax_al.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """Decoded train and test splits held as numpy arrays.

  Attributes:
    train_images: [N, H, W, C] uint8; float32 [N, 4, k, 1] when
      data.features replaced the pixels by features (coates.py).
    train_labels: [N] int32 in [0, num_classes).
    test_images: [M, H, W, C] uint8.
    test_labels: [M] int32.
    class_names: one name per label, label i is class_names[i].
    description: where the data came from, for logs; a folder source that was
      served from the decoded-array cache ends with " (cached)".
    train_ids, test_ids: optional str [N] / [M] names of the rows (the
      embeddings source carries them from its file), or None.
    fingerprint: `cache.fingerprint` of the source arrays (before
      data.features), set by `load_dataset` (a loader may give it, as the
      folder source's cache does); what a run records of its data.
  """

  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: tuple[str, ...]
  description: str
  train_ids: np.ndarray | None = None
  test_ids: np.ndarray | None = None
  fingerprint: dict | None = None

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def __repr__(self) -> str:
    # The default repr would print pixel arrays.
    return (f"Dataset({self.description!r}, train={self.train_images.shape}, "
            f"test={self.test_images.shape}, classes={self.num_classes})")


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
  """Resizes uint8 [N, H, W, C] images (C = 1 or 3) to [N, size, size, C].

  PIL bilinear, the same filter the folder loader uses, so every source gives
  the same kind of pixels for the same setting.
  """
  n, h, w, c = images.shape
  if (h, w) == (size, size):
    return images
  from jax_al import memory
  memory.check_data(n, size, c, "the resized images")
  out = np.empty((n, size, size, c), np.uint8)
  for i in range(n):
    img = images[i, :, :, 0] if c == 1 else images[i]
    small = Image.fromarray(img).resize((size, size), Image.BILINEAR)
    out[i] = np.asarray(small).reshape(size, size, c)
  return out


def to_channels(images: np.ndarray, channels: int, where: str) -> np.ndarray:
  """Makes uint8 [N, H, W, C] images have `channels` channels.

  Grayscale becomes RGB by repeating it. RGB is never silently turned into
  grayscale here: only the folder source does that, with PIL's "L" conversion.
  """
  have = images.shape[-1]
  if have == channels:
    return images
  if have == 1 and channels == 3:
    return np.repeat(images, 3, axis=-1)
  if have == 3 and channels == 1:
    raise ConfigError(
        "data.channels", channels,
        f"{where} has RGB images; set data.channels=3 (only the folder source "
        "converts RGB to grayscale).")
  raise DataError(where, f"images have {have} channels",
                  "use a dataset with 1 (grayscale) or 3 (RGB) channels.")


def validate(ds: Dataset, channels: int) -> Dataset:
  """Checks the invariants the training loop relies on; returns `ds`."""
  what = ds.description
  n = ds.num_classes
  if n < 2:
    raise DataError(what, f"only {n} class(es) {list(ds.class_names)}",
                    "a classifier needs at least 2 classes; add class folders "
                    "(or pick a dataset with 2+ labels).")
  shapes = {}
  for split, x, y in (("train", ds.train_images, ds.train_labels),
                      ("test", ds.test_images, ds.test_labels)):
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
      raise DataError(what, f"{split} images are "
                      f"{getattr(x, 'dtype', type(x))} with shape "
                      f"{getattr(x, 'shape', None)}, not uint8 [N, H, W, C]",
                      "the loader must return uint8 NHWC arrays.")
    if x.shape[0] == 0:
      raise DataError(what, f"the {split} split is empty",
                      f"put images in the {split} split (data.{split}_split).")
    if x.shape[-1] != channels:
      raise DataError(what, f"{split} images have {x.shape[-1]} channels, "
                      f"data.channels = {channels}",
                      "set data.channels to match the images.")
    if (not isinstance(y, np.ndarray) or y.dtype != np.int32
        or y.shape != (x.shape[0],)):
      raise DataError(what, f"{split} labels are "
                      f"{getattr(y, 'dtype', type(y))} with shape "
                      f"{getattr(y, 'shape', None)}, want int32 [{x.shape[0]}]",
                      "the loader must return one int32 label per image.")
    bad = (y < 0) | (y >= n)
    if bad.any():
      raise DataError(what, f"{split} label {int(y[bad][0])} is outside "
                      f"[0, {n}) ({int(bad.sum())} such labels)",
                      f"labels must index class_names ({n} classes).")
    shapes[split] = x.shape[1:]
  if shapes["train"] != shapes["test"]:
    raise DataError(what, f"train images are {shapes['train']}, test images "
                    f"{shapes['test']}",
                    "set data.image_size so both are resized.")
  counts = np.bincount(ds.train_labels, minlength=n)
  empty = [ds.class_names[i] for i in np.flatnonzero(counts == 0)]
  if empty:
    raise DataError(what, f"class(es) {empty} have no training images",
                    "add training images for them or remove the classes.")
  return ds


# data.source -> loader(data_cfg, *, image_size, channels) -> Dataset, filled
# by `register_source` in each source's module (jax_al.data imports them all).
LOADERS: dict = {}
# data.source -> sizes(data_cfg) -> (n_train, n_test) | None, filled by
# `register_sizes` next to each loader; `jax_al.data.sizes` asks them.
SIZES: dict = {}
# data.source -> shape(data_cfg) -> (height, width) of its images | None, by
# `register_shape`; `jax_al.data.input_shape` asks them.
SHAPES: dict = {}


def _registrar(table: dict, name: str, what: str):
  """A decorator that puts the function it decorates in `table` under `name`."""

  def wrap(fn):
    if name in table:
      raise ValueError(f"{what} {name!r} is registered twice")
    table[name] = fn
    return fn

  return wrap


def register_source(name: str):
  """Function decorator that registers a dataset loader as `data.source = name`.

  A loader takes `(data_cfg, *, image_size, channels)` (the config.data
  section, the checked square size or None, 1 or 3) and returns a uint8
  `Dataset`; `load_dataset` validates it and applies `data.features`.
  """
  return _registrar(LOADERS, name, "data source")


def register_sizes(name: str):
  """Function decorator that registers how to count `data.source = name`'s
  images without loading them: `(data_cfg) -> (n_train, n_test)`, or None
  where the count is unknown before loading (the study's cost model then
  says so). It reads only names, headers or metadata, never decodes images.
  """
  return _registrar(SIZES, name, "the sizes of data source")


def register_shape(name: str):
  """Function decorator that registers how to tell the (height, width) of
  `data.source = name`'s images without loading them (from a header or
  metadata), or None where it is unknown; used where `data.image_size` is
  unset. A feature source returns the (1, dimension) of its rows."""
  return _registrar(SHAPES, name, "the shape of data source")
