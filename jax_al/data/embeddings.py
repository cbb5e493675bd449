"""Precomputed embeddings as a data source: `data.source = "embeddings"`.

`data.path` names a `.npz` file (numpy's `np.savez`) holding

  train_features  float [N, D]   one row per pool item (CLIP, DINO, SimCLR, ...)
  train_labels    int   [N]      labels 0 .. C-1
  test_features   float [M, D]
  test_labels     int   [M]
  class_names     str   [C]      optional; default "0" .. "C-1"
  train_ids       str   [N]      optional names of the rows (file names, ...)
  test_ids        str   [M]      optional

The number of classes C is len(class_names), or 1 + the largest label.
Every check runs when the file is loaded, before a run writes anything;
a bad file stops with one line naming the file, the array and the fix.

The features are used as they are, in float32: they are not standardised
(data.mean and data.std still apply, one value for all features). The
returned `Dataset` holds them as float32 [N, 1, D, 1], so the MLP head, which
flattens its input, trains on the D features exactly as on the Coates
features (`jax_al.data.coates`, whose `--export` writes such a file).
`selected.jsonl` indices are rows of `train_features`; `train_ids[i]` names
row i.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from jax_al.data.dataset import Dataset, register_shape, register_sizes, register_source
from jax_al.errors import ConfigError, DataError

REQUIRED = ("train_features", "train_labels", "test_features", "test_labels")
OPTIONAL = ("class_names", "train_ids", "test_ids")
_WRITE = "write it with np.savez(path, train_features=..., train_labels=..., " \
         "test_features=..., test_labels=...)"


def _read(path: str) -> dict[str, np.ndarray]:
  """The arrays of the .npz at `path` (without pickle); DataError if unreadable."""
  if not path:
    raise ConfigError("data.path", path, "point it at a .npz file holding train_features, "
                      "train_labels, test_features and test_labels")
  if not os.path.isfile(path):
    raise DataError(path, "no such file" if not os.path.exists(path) else "is not a file",
                    "point data.path at an existing .npz file of embeddings")
  try:
    f = np.load(path, allow_pickle=False)
  except (OSError, zipfile.BadZipFile, EOFError) as e:
    raise DataError(path, f"is not a readable .npz file ({e})", _WRITE) from None
  except ValueError as e:  # neither .npy nor .npz, or a pickle
    raise DataError(path, f"is not a .npz file ({e})", _WRITE) from None
  if not isinstance(f, np.lib.npyio.NpzFile):
    raise DataError(path, "holds a single array, not named arrays", _WRITE)
  with f:
    names = list(f.files)
    missing = [n for n in REQUIRED if n not in names]
    if missing:
      raise DataError(path, f"has no array {missing[0]!r} (it holds "
                      f"{', '.join(names) or 'none'})", f"add {', '.join(missing)}; {_WRITE}")
    out = {}
    for n in REQUIRED + OPTIONAL:
      if n in names:
        try:
          out[n] = f[n]
        except ValueError as e:  # an object array: it would need pickle
          raise DataError(path, f"array {n!r} cannot be read without pickle ({e})",
                          "store numbers as numeric arrays and names as fixed-width "
                          "strings (np.asarray(names, dtype=str))") from None
        except (OSError, zipfile.BadZipFile, EOFError) as e:
          raise DataError(path, f"array {n!r} is unreadable ({e})", _WRITE) from None
    return out


def _features(path: str, name: str, x: np.ndarray) -> np.ndarray:
  if x.ndim != 2:
    raise DataError(path, f"array {name!r} has shape {x.shape}, not [rows, features]",
                    f"store {name} as a 2-D array, one row per item (reshape(len(x), -1))")
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)) \
      or x.dtype == np.bool_:
    raise DataError(path, f"array {name!r} has dtype {x.dtype}, not numbers",
                    f"store {name} as float32")
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise DataError(path, f"array {name!r} is empty (shape {x.shape})",
                    f"store at least one row and one feature in {name}")
  x = x.astype(np.float32)
  bad = ~np.isfinite(x)
  if bad.any():
    row = int(np.flatnonzero(bad.any(1))[0])
    raise DataError(path, f"array {name!r} has {int(bad.sum())} NaN or infinite values "
                    f"(first in row {row})", f"replace or drop those rows of {name} "
                    "(and of its labels) before saving; also check that the values fit float32")
  return x


def _labels(path: str, name: str, y: np.ndarray, rows: int, features: str) -> np.ndarray:
  if y.ndim != 1:
    raise DataError(path, f"array {name!r} has shape {y.shape}, not [rows]",
                    f"store {name} as a 1-D array of class indices")
  if not np.issubdtype(y.dtype, np.integer):
    raise DataError(path, f"array {name!r} has dtype {y.dtype}, not integers",
                    f"store {name} as integer class indices 0 .. C-1, e.g. "
                    "y.astype(np.int64) for whole numbers, or np.unique(y, "
                    "return_inverse=True)[1] for names")
  if len(y) != rows:
    raise DataError(path, f"array {name!r} has {len(y)} rows, {features!r} has {rows}",
                    f"give one label per row of {features}")
  if len(y) and y.min() < 0:
    raise DataError(path, f"array {name!r} has a negative label ({int(y.min())})",
                    "use class indices 0 .. C-1")
  if len(y) and y.max() >= 2**31:
    raise DataError(path, f"array {name!r} has label {int(y.max())}",
                    "use class indices 0 .. C-1")
  return y.astype(np.int32)


def _ids(path: str, name: str, ids: np.ndarray, rows: int, features: str) -> np.ndarray:
  if ids.ndim != 1 or ids.dtype.kind not in "US":
    raise DataError(path, f"array {name!r} is {ids.dtype} with shape {ids.shape}, not "
                    "1-D strings", f"store {name} as np.asarray(names, dtype=str)")
  if len(ids) != rows:
    raise DataError(path, f"array {name!r} has {len(ids)} rows, {features!r} has {rows}",
                    f"give one id per row of {features}")
  return ids.astype(str)


def load_file(path: str) -> Dataset:
  """Reads and checks the embeddings file at `path`; returns its Dataset."""
  a = _read(path)
  train = _features(path, "train_features", a["train_features"])
  test = _features(path, "test_features", a["test_features"])
  if train.shape[1] != test.shape[1]:
    raise DataError(path, f"train_features has {train.shape[1]} features per row, "
                    f"test_features {test.shape[1]}",
                    "embed both splits with the same model and layer")
  y_train = _labels(path, "train_labels", a["train_labels"], len(train), "train_features")
  y_test = _labels(path, "test_labels", a["test_labels"], len(test), "test_features")
  top = int(max(y_train.max(), y_test.max())) + 1
  if "class_names" in a:
    names = a["class_names"]
    if names.ndim != 1 or names.dtype.kind not in "US":
      raise DataError(path, f"array 'class_names' is {names.dtype} with shape {names.shape}",
                      "store class_names as np.asarray(names, dtype=str), one per class")
    if len(names) < top:
      raise DataError(path, f"label {top - 1} has no entry in class_names ({len(names)} names)",
                      "give one name per class, label i is class_names[i]")
    class_names = tuple(str(n) for n in names)
  else:
    class_names = tuple(str(i) for i in range(top))
  ids = {}
  for split, rows, feats in (("train", len(train), "train_features"),
                             ("test", len(test), "test_features")):
    if f"{split}_ids" in a:
      ids[split] = _ids(path, f"{split}_ids", a[f"{split}_ids"], rows, feats)
  counts = np.bincount(y_train, minlength=len(class_names))
  empty = [class_names[i] for i in np.flatnonzero(counts == 0)]
  if len(class_names) < 2:
    raise DataError(path, f"only {len(class_names)} class in the labels",
                    "a classifier needs at least 2 classes")
  if empty:
    raise DataError(path, f"class(es) {empty} have no row in train_labels",
                    "add training rows for them, or renumber the labels 0 .. C-1 "
                    "without gaps")
  return Dataset(
      train_images=train.reshape(len(train), 1, -1, 1),
      train_labels=y_train,
      test_images=test.reshape(len(test), 1, -1, 1),
      test_labels=y_test,
      class_names=class_names,
      description=f"embeddings:{path} ({train.shape[1]} features)",
      train_ids=ids.get("train"), test_ids=ids.get("test"))


@register_source("embeddings")
def load_embeddings(data_cfg, *, image_size: int | None, channels: int) -> Dataset:
  """The embeddings at data.path (image_size and channels do not apply)."""
  del image_size, channels
  return load_file(str(data_cfg.path))


def save(path, ds: Dataset) -> Path:
  """Writes `ds` (its features flattened per row) as an embeddings file.

  Refuses an existing `path` (nothing a user wrote is overwritten) and writes
  atomically: a temporary file in the same folder, renamed when complete.
  Returns the path.
  """
  path = Path(path)
  if path.suffix != ".npz":
    raise DataError(str(path), "does not end in .npz", "name the file <something>.npz")
  if path.exists() or path.is_symlink():
    raise DataError(str(path), "already exists", "choose a new path; the file is left as it is")
  arrays = {
      "train_features": np.asarray(ds.train_images, np.float32).reshape(len(ds.train_labels), -1),
      "train_labels": np.asarray(ds.train_labels),
      "test_features": np.asarray(ds.test_images, np.float32).reshape(len(ds.test_labels), -1),
      "test_labels": np.asarray(ds.test_labels),
      "class_names": np.asarray(ds.class_names, dtype=str)}
  if ds.train_ids is not None:
    arrays["train_ids"] = np.asarray(ds.train_ids, dtype=str)
  if ds.test_ids is not None:
    arrays["test_ids"] = np.asarray(ds.test_ids, dtype=str)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
  except OSError as e:
    raise DataError(str(path.parent), f"cannot write there ({e})",
                    "choose a writable folder") from e
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
    if path.exists():  # appeared while writing: still not ours to replace
      raise DataError(str(path), "already exists", "choose a new path")
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise
  return path


def _shape(archive: zipfile.ZipFile, name: str) -> tuple:
  """The shape of array `name` of an open .npz, from its .npy header."""
  with archive.open(f"{name}.npy") as f:
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, _, _ = read(f)
  if not shape:
    raise ValueError(f"{name} is a scalar")
  return tuple(int(n) for n in shape)


def _headers(data_cfg) -> dict | None:
  """{array: shape} of train_features and test_features, None without both."""
  path = str(data_cfg.path)
  if not path or not os.path.isfile(path):
    return None
  with zipfile.ZipFile(path) as archive:
    names = set(archive.namelist())
    if not {"train_features.npy", "test_features.npy"} <= names:
      return None
    return {n: _shape(archive, n) for n in ("train_features", "test_features")}


@register_sizes("embeddings")
def embeddings_sizes(data_cfg) -> tuple[int, int] | None:
  """(rows of train_features, rows of test_features) read from the .npz's
  array headers; no array is read. None when the file or an array is absent."""
  h = _headers(data_cfg)
  return None if h is None else (h["train_features"][0], h["test_features"][0])


@register_shape("embeddings")
def embeddings_shape(data_cfg) -> tuple[int, int] | None:
  """(1, D): the loader holds each row of D features as a 1 x D image."""
  h = _headers(data_cfg)
  shape = None if h is None else h["train_features"]
  return None if shape is None or len(shape) != 2 else (1, shape[1])
