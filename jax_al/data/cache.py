"""Cache of decoded datasets as uncompressed .npz files.

Decoding 60,000 JPEGs takes seconds; loading the decoded arrays takes a
fraction of one. Entries are keyed by a hash of everything that changes the
arrays, written atomically, and read without pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from jax_al.errors import DataError

# Bump when the decoding changes, so that old entries are not reused.
FORMAT_VERSION = 1
DEFAULT_DIR = "~/.cache/jax_al"
_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels",
           "class_names")


def cache_dir(configured: str) -> Path:
  """The cache folder: data.cache_dir, or ~/.cache/jax_al when empty."""
  return Path(os.path.expanduser(configured or DEFAULT_DIR))


def entry_path(directory: Path, kind: str,
               key: dict[str, Any]) -> tuple[Path, str]:
  """Returns (file path, key text) of the entry for `key`."""
  text = json.dumps({"format": FORMAT_VERSION, **key}, sort_keys=True)
  digest = hashlib.sha256(text.encode()).hexdigest()[:24]
  return directory / f"{kind}-{digest}.npz", text


def load(path: Path, key_text: str) -> dict[str, np.ndarray] | None:
  """Returns the arrays stored at `path`, or None when there is no entry.

  An unreadable or mismatching entry is logged and reported as missing, so
  the caller decodes again and overwrites it.
  """
  if not path.exists():
    return None
  try:
    with np.load(path, allow_pickle=False) as f:
      if str(f["key"]) != key_text:
        logging.warning("Cache entry %s has another key; rebuilding it.", path)
        return None
      return {name: f[name] for name in _ARRAYS}
  except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
    logging.warning("Cache entry %s is unreadable (%s); rebuilding it.", path,
                    e)
    return None


def save(path: Path, key_text: str, arrays: dict[str, np.ndarray]) -> None:
  """Writes the entry atomically: a temp file in the same folder, renamed."""
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".",
                               suffix=".tmp")
  except OSError as e:
    raise DataError(str(path.parent),
                    f"cannot write the decoded-array cache ({e})",
                    "set data.cache_dir to a writable folder.") from e
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, key=np.array(key_text), **{n: arrays[n] for n in _ARRAYS})
    os.replace(tmp, path)
  except BaseException as e:
    # Never leave half-written files behind, whatever went wrong.
    try:
      os.unlink(tmp)
    except OSError:
      pass
    if isinstance(e, OSError):
      raise DataError(str(path), f"cannot write the decoded-array cache ({e})",
                      "free disk space or set data.cache_dir to another "
                      "folder.") from e
    raise
