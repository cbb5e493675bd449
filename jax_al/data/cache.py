"""Cache of decoded datasets as uncompressed .npz files.

Decoding 60,000 JPEGs takes seconds; loading the decoded arrays takes a
fraction of one. Entries are keyed by a hash of everything that changes the
arrays, written atomically, and read without pickle.

The digests here are shared: `file_digest` (the sha256 of a source file's
bytes, reused while its size and mtime stay the same, so one archive reached
by two paths is one cache entry) and `fingerprint` (what a run records of
the data it started on: split sizes, image shape, class names and a sha256
per split of the decoded arrays). An entry stores its arrays' fingerprint,
so a cache hit does not hash them again.
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


def arrays_digest(*arrays: np.ndarray) -> str:
  """sha256 over the dtype, shape and bytes of `arrays`, in order."""
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(memoryview(a).cast("B") if a.size else b"")
  return h.hexdigest()


def fingerprint(train_images, train_labels, test_images, test_labels, class_names) -> dict:
  """What a run records of its data (`workdir.data_changes` compares two):
  split sizes, image shape and dtype, class names, a digest per split.

  Hashing CIFAR-10's decoded arrays (184 MB) takes about 0.2 s on one core;
  the folder source stores the result in its cache entry instead.
  """
  return {"train": int(len(train_labels)), "test": int(len(test_labels)),
          "shape": [int(d) for d in np.shape(train_images)[1:]],
          "dtype": str(np.asarray(train_images[:0]).dtype),
          "classes": [str(c) for c in class_names],
          "train_digest": arrays_digest(train_images, train_labels)[:32],
          "test_digest": arrays_digest(test_images, test_labels)[:32]}


_DIGESTS = "source-digests.json"


def _stamp(path: str) -> str:
  st = os.stat(path)
  return f"{os.path.realpath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"


def _digest_index(directory: Path) -> dict:
  try:
    index = json.loads((Path(directory) / _DIGESTS).read_text())
  except (OSError, ValueError, UnicodeDecodeError):
    return {}
  return index if isinstance(index, dict) else {}


def file_digest(path: str, directory: Path) -> str:
  """sha256 of the file `path`'s bytes; writes nothing.

  A digest that `remember_digest` recorded in `directory/source-digests.json`
  is reused while the file's real path, size, mtime and inode are all the
  same (the fast pre-check), so a large archive is read once, not at every
  load.
  """
  known = _digest_index(directory).get(_stamp(path))
  if isinstance(known, str):
    return known
  h = hashlib.sha256()
  try:
    with open(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 22), b""):
        h.update(block)
  except OSError as e:
    raise DataError(path, f"cannot be read ({e})", "check the file's permissions.") from e
  return h.hexdigest()


def remember_digest(path: str, digest: str, directory: Path) -> None:
  """Records `file_digest`'s result for `path` beside the cache entries.

  Called once the source decoded (or hit the cache): a rejected source
  leaves nothing in the cache folder.
  """
  stamp = _stamp(path)
  index = _digest_index(directory)
  if index.get(stamp) == digest:
    return
  # Only the stamps of files that still exist are kept.
  index = {k: v for k, v in index.items() if os.path.exists(k.split("\0")[0])}
  index[stamp] = digest
  try:
    Path(directory).mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_DIGESTS + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
      json.dump(index, f)
    os.replace(tmp, Path(directory) / _DIGESTS)
  except OSError as e:  # a cache that cannot remember just hashes again next time
    logging.warning("Cannot record the digest of %s in %s (%s).", path, directory, e)


def load(path: Path, key_text: str) -> dict[str, np.ndarray] | None:
  """Returns the arrays stored at `path`, or None when there is no entry.

  The entry's stored fingerprint comes back under "fingerprint" (a dict),
  absent for entries written before it was stored.

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
      out = {name: f[name] for name in _ARRAYS}
      if "fingerprint" in f.files:
        out["fingerprint"] = json.loads(str(f["fingerprint"]))
      return out
  except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
    logging.warning("Cache entry %s is unreadable (%s); rebuilding it.", path,
                    e)
    return None


def save(path: Path, key_text: str, arrays: dict[str, np.ndarray],
         fp: dict | None = None) -> None:
  """Writes the entry atomically: a temp file in the same folder, renamed.

  `fp`, the arrays' `fingerprint`, is stored with them when given.
  """
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
      extra = {"fingerprint": np.array(json.dumps(fp, sort_keys=True))} if fp else {}
      np.savez(f, key=np.array(key_text), **extra, **{n: arrays[n] for n in _ARRAYS})
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
