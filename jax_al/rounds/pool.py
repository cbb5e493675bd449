"""The items of a round's pool: listed with stable ids at init, read back
(and checked against their digests) by every `next`.

An image pool is a folder or a .tar/.tar.gz of JPEG/PNG files, found at any
depth (hidden files and folders are skipped); an item's id is its path
relative to the folder or the archive's root, with "/" separators. An
embeddings pool is a file `jax-al select` reads (.npz with `features` and
optional `ids`, .npy, or .parquet); an item's id is the file's id of the row
(its row number when the file has none).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jax_al.data import folder as folder_lib
from jax_al.errors import DataError
from jax_al.rounds.store import Item, digest_bytes


def _tree(path: str, max_bytes: int):
  if os.path.isdir(path):
    return folder_lib._DirTree(path)  # pylint: disable=protected-access
  if os.path.isfile(path):
    return folder_lib._TarTree(path, max_bytes)  # pylint: disable=protected-access
  raise DataError(f"--images {path}", "no such folder or archive",
                  "pass a folder (or .tar/.tar.gz) of JPEG/PNG images")


def _walk(tree, parts=()):
  dirs, names = tree.list_dir(parts)
  for name in names:
    if folder_lib._is_image_name(name):  # pylint: disable=protected-access
      yield parts + (name,)
  for d in dirs:
    yield from _walk(tree, parts + (d,))


def list_images(path: str, max_bytes: int) -> tuple[Item, ...]:
  """Every image under `path`, sorted by id, with the sha256 of its bytes."""
  tree = _tree(path, max_bytes)
  found = sorted(_walk(tree), key="/".join)
  if not found:
    raise DataError(f"--images {path}", "holds no .jpg/.jpeg/.png file",
                    "pass the folder (or archive) holding the images to label")
  return tuple(Item(r, "/".join(p), "/".join(p), digest_bytes(tree.read(p, max_bytes)))
               for r, p in enumerate(found))


def _embedding_arrays(path: str) -> dict:
  from jax_al import select_files
  try:
    return select_files.load_pool(path)
  except select_files.InputError as e:
    raise DataError(str(e.code).removeprefix("error: ").replace("--pool ", "--embeddings ")) \
        from None


def row_digest(x: np.ndarray) -> str:
  return digest_bytes(np.ascontiguousarray(x, np.float32).tobytes())


def list_embeddings(path: str) -> tuple[Item, ...]:
  """Every row of the embeddings file, with its id and the sha256 of its
  float32 values."""
  from jax_al import select_files
  arrays = _embedding_arrays(path)
  x = arrays["features"]
  if getattr(x, "ndim", 0) != 2 or x.shape[0] == 0:
    raise DataError(f"--embeddings {path}", f"features has shape {getattr(x, 'shape', None)}",
                    "give [N, d] features with N >= 1")
  try:
    ids = select_files.pool_ids(path, arrays)
  except select_files.InputError as e:
    raise DataError(str(e.code).removeprefix("error: ")) from None
  return tuple(Item(r, ids[r], None, row_digest(x[r])) for r in range(len(ids)))


def _changed(source: str, item: Item, what: str) -> DataError:
  return DataError(f"{source}: {item.id}", f"{what} since round init (sha256 "
                   f"{item.sha256[:12]}...)", "restore the pool as it was at init, or start "
                   "a new round folder with jax-al round init")


def load_images(source: str, items, image_size: int | None, channels: int,
                max_bytes: int) -> np.ndarray:
  """uint8 [N, H, W, channels] in pool order; refuses an item that changed."""
  tree = _tree(source, max_bytes)
  out = None
  for it in items:
    parts = tuple(it.path.split("/"))
    try:
      raw = tree.read(parts, max_bytes)
    except (KeyError, DataError):
      raise _changed(source, it, "is gone") from None
    if digest_bytes(raw) != it.sha256:
      raise _changed(source, it, "changed")
    arr = folder_lib._decode(raw, tree.display(parts), image_size, channels,  # pylint: disable=protected-access
                             max_bytes)
    if out is None:
      out = np.empty((len(items),) + arr.shape, np.uint8)
    elif arr.shape != out.shape[1:]:
      raise DataError(tree.display(parts), f"is {arr.shape[1]}x{arr.shape[0]} pixels but "
                      f"{items[0].id} is {out.shape[2]}x{out.shape[1]}",
                      "set data.image_size in the round's config (round init --config) "
                      "to resize all images to one square size")
    out[it.row] = arr
  # The pool is fixed at init: an image added since would never be picked,
  # so it is named (as an embeddings file with more rows is refused).
  known = {it.path for it in items}
  new = [p for p in sorted(_walk(tree), key="/".join) if "/".join(p) not in known]
  if new:
    first = "/".join(new[0])
    raise DataError(f"{source}: {first}", f"is new since round init ({len(new)} image(s) "
                    "not in the pool)", "move the new images out of the folder, or start a "
                    "new round folder with jax-al round init to include them")
  return out


def load_embeddings(source: str, items) -> np.ndarray:
  """float32 [N, d] in pool order; refuses a file whose rows changed."""
  x = _embedding_arrays(source)["features"]
  if x.shape[0] != len(items):
    raise DataError(f"--embeddings {source}", f"has {x.shape[0]} rows, {len(items)} at init",
                    "restore the file as it was at init, or start a new round folder")
  for it in items:
    if row_digest(x[it.row]) != it.sha256:
      raise _changed(source, it, "changed")
  return np.asarray(x, np.float32)
