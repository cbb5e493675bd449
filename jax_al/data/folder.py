"""Image-folder source: a directory or a tar archive of split/class/image files.

Layout: `[wrapper/]split/class/image`, e.g. `cifar10-jpeg/train/cat/0001.jpg`,
with at most one wrapper folder. JPEG and PNG files (.jpg .jpeg .png, any
case) are read; other files and hidden entries (names starting with ".") are
ignored. Class names are the sorted class folder names of the train split.

The source may be untrusted: archive members are read into memory, never
extracted; links, special files, absolute or `..` paths and oversized
members are rejected by name; directory symlinks may not leave the root.
Decoded arrays are cached (see cache.py), keyed by the archive's content
digest or the folder's image names, sizes and mtimes (not by the path);
nothing else is ever written.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from jax_al.data import cache
from jax_al.data.dataset import Dataset, register_shape, register_sizes, register_source
from jax_al import memory
from jax_al.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_FIX_LAYOUT = ("arrange the images as split/class/image, e.g. "
               "train/cat/0001.jpg and test/cat/0002.jpg")

_Parts = tuple[str, ...]


def _is_image_name(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS)


def _is_hidden(name: str) -> bool:
  return name.startswith(".")


class _TarTree:
  """An archive's image files, read into memory after safety checks."""

  def __init__(self, path: str, max_bytes: int, names_only: bool = False):
    self.where = path
    self._names_only = names_only  # list the members, read no image (`folder_sizes`)
    self._names: dict[_Parts, str] = {}    # parts -> member name, for errors
    self._data: dict[_Parts, bytes] = {}
    # Folder -> (sub-folder names, file names).
    self._children: dict[_Parts, tuple[set[str], set[str]]] = {
        (): (set(), set())}
    try:
      archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
      raise DataError(path, f"not a readable tar archive ({e})",
                      "point data.path at a directory or a .tar/.tar.gz/.tgz "
                      "file of split/class/image files.") from e
    with archive:
      try:
        for member in archive:
          self._add(archive, member, max_bytes)
      except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(path, f"corrupt or truncated archive ({e})",
                        "re-create or re-download the archive.") from e

  def _add(self, archive: tarfile.TarFile, member: tarfile.TarInfo,
           max_bytes: int) -> None:
    parts = _safe_member_parts(member, self.where)
    if not parts or any(_is_hidden(p) for p in parts):
      return
    if member.isdir():
      self._add_dir(parts)
      return
    self._add_dir(parts[:-1])
    self._children[parts[:-1]][1].add(parts[-1])
    if not _is_image_name(parts[-1]):
      return
    if member.size > max_bytes:
      # Checked on the header, before reading: a small compressed archive
      # can declare members of many gigabytes.
      raise DataError(f"{self.where}: member {member.name!r}",
                      f"declares {member.size:,} bytes, over the "
                      f"{max_bytes:,}-byte limit for one image",
                      "remove the member, or raise data.max_image_bytes if "
                      "the archive is trusted.")
    if self._names_only:
      return
    f = archive.extractfile(member)
    self._data[parts] = f.read()
    self._names[parts] = member.name

  def _add_dir(self, parts: _Parts) -> None:
    for i in range(1, len(parts) + 1):
      if parts[:i] not in self._children:
        self._children[parts[:i]] = (set(), set())
        self._children[parts[:i - 1]][0].add(parts[i - 1])

  def list_dir(self, parts: _Parts) -> tuple[list[str], list[str]]:
    dirs, files = self._children.get(parts, (set(), set()))
    return sorted(dirs), sorted(files)

  def exists_dir(self, parts: _Parts) -> bool:
    return parts in self._children

  def display(self, parts: _Parts) -> str:
    if parts in self._names:
      return f"{self.where}: member {self._names[parts]!r}"
    return f"{self.where}: {'/'.join(parts)}/"

  def read(self, parts: _Parts, max_bytes: int) -> bytes:
    del max_bytes  # Checked on the header while reading the archive.
    return self._data[parts]


def _safe_member_parts(member: tarfile.TarInfo, where: str) -> _Parts:
  """Returns the member's path components, or raises DataError if unsafe."""
  name = member.name
  what = f"{where}: member {name!r}"
  fix = ("remove the member from the archive; only plain files and folders "
         "are read.")
  if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
    raise DataError(what, "has an absolute path", fix)
  raw = name.replace("\\", "/").split("/")
  if ".." in raw:
    raise DataError(what, "has a '..' path component", fix)
  if member.issym():
    raise DataError(what, f"is a symbolic link (to {member.linkname!r})", fix)
  if member.islnk():
    raise DataError(what, f"is a hard link (to {member.linkname!r})", fix)
  if member.ischr() or member.isblk() or member.isfifo():
    raise DataError(what, "is a device or FIFO", fix)
  if not (member.isreg() or member.isdir()):
    raise DataError(what, f"has unsupported type {member.type!r}", fix)
  return tuple(p for p in raw if p not in ("", "."))


class _DirTree:
  """A directory read on demand; symlinks may not resolve outside the root."""

  def __init__(self, path: str):
    self.where = path
    self._root = Path(path)
    self._real_root = os.path.realpath(path)

  def _path(self, parts: _Parts) -> Path:
    return self._root.joinpath(*parts)

  def _inside(self, entry: os.DirEntry) -> None:
    target = os.path.realpath(entry.path)
    if os.path.commonpath([self._real_root, target]) != self._real_root:
      raise DataError(entry.path, f"is a symbolic link to {target}, outside "
                      f"the data folder {self._real_root}",
                      "copy the file into the data folder instead of "
                      "linking it.")
    if not os.path.exists(target):
      raise DataError(entry.path, f"is a broken symbolic link (to {target})",
                      "fix or remove the link.")

  def list_dir(self, parts: _Parts) -> tuple[list[str], list[str]]:
    dirs, files = [], []
    try:
      entries = list(os.scandir(self._path(parts)))
    except OSError as e:
      raise DataError(str(self._path(parts)), f"cannot list the folder ({e})",
                      "check the folder's permissions.") from e
    for entry in entries:
      if _is_hidden(entry.name):
        continue
      if entry.is_symlink():
        self._inside(entry)
      if entry.is_dir():
        dirs.append(entry.name)
      elif entry.is_file():
        files.append(entry.name)
    return sorted(dirs), sorted(files)

  def exists_dir(self, parts: _Parts) -> bool:
    return self._path(parts).is_dir()

  def display(self, parts: _Parts) -> str:
    return str(self._path(parts))

  def stat(self, parts: _Parts) -> os.stat_result:
    return os.stat(self._path(parts))

  def read(self, parts: _Parts, max_bytes: int) -> bytes:
    path = self._path(parts)
    try:
      size = os.stat(path).st_size
      if size > max_bytes:
        raise DataError(str(path), f"is {size:,} bytes, over the {max_bytes:,}"
                        "-byte limit for one image",
                        "remove the file, or raise data.max_image_bytes.")
      return path.read_bytes()
    except OSError as e:
      raise DataError(str(path), f"cannot be read ({e})",
                      "check the file's permissions.") from e


def _layout(tree, train_split: str, test_split: str):
  """Finds the splits and class folders.

  Returns:
    (class_names, {split: [(parts, label), ...]}), images sorted by class then
    file name so that a directory and its tar give identical arrays.
  """
  where = tree.where
  top, _ = tree.list_dir(())
  if train_split in top:
    prefix: _Parts = ()
  elif len(top) == 1 and train_split in tree.list_dir((top[0],))[0]:
    prefix = (top[0],)  # One wrapper folder, e.g. cifar10-jpeg/train/...
  else:
    inner = (f" (inside {top[0]}/: {tree.list_dir((top[0],))[0]})"
             if len(top) == 1 else "")
    raise DataError(where, f"no {train_split!r} split folder; top-level "
                    f"folders are {top}{inner}",
                    f"set data.train_split, or {_FIX_LAYOUT}.")
  splits = {}
  classes = {}
  for field, split in (("train_split", train_split),
                       ("test_split", test_split)):
    sparts = prefix + (split,)
    if not tree.exists_dir(sparts):
      raise DataError(where, f"no {split!r} split folder (found "
                      f"{tree.list_dir(prefix)[0]})",
                      f"set data.{field}, or {_FIX_LAYOUT}.")
    dirs, files = tree.list_dir(sparts)
    loose = [f for f in files if _is_image_name(f)]
    if loose:
      raise DataError(tree.display(sparts + (loose[0],)),
                      "is an image directly inside a split folder",
                      f"move it into a class folder: {_FIX_LAYOUT}.")
    if not dirs:
      raise DataError(tree.display(sparts), "has no class folders",
                      _FIX_LAYOUT + ".")
    classes[split] = dirs
    splits[split] = []
    for cls in dirs:
      cparts = sparts + (cls,)
      sub, files = tree.list_dir(cparts)
      if sub:
        raise DataError(tree.display(cparts + (sub[0],)),
                        "is a folder inside a class folder",
                        "put images directly in the class folder: "
                        f"{_FIX_LAYOUT}.")
      images = [f for f in files if _is_image_name(f)]
      if not images:
        raise DataError(tree.display(cparts), "is an empty class folder (no "
                        ".jpg/.jpeg/.png images)",
                        "add images to it or remove the folder.")
      splits[split].extend((cparts + (f,), cls) for f in images)
  train_set, test_set = set(classes[train_split]), set(classes[test_split])
  if train_set != test_set:
    raise DataError(where, f"the {test_split!r} split's classes differ from "
                    f"{train_split!r}'s: only in {train_split}: "
                    f"{sorted(train_set - test_set)}, only in {test_split}: "
                    f"{sorted(test_set - train_set)}",
                    "give both splits the same class folders.")
  class_names = tuple(classes[train_split])
  index = {c: i for i, c in enumerate(class_names)}
  return class_names, {s: [(p, index[c]) for p, c in items]
                       for s, items in splits.items()}


def _decode(data: bytes, name: str, image_size: int | None, channels: int,
            max_bytes: int) -> np.ndarray:
  """Decodes one JPEG/PNG to uint8 [H, W, channels]."""
  try:
    img = Image.open(io.BytesIO(data), formats=("JPEG", "PNG"))
    width, height = img.size
    if width * height * channels > max_bytes:
      # Checked before decoding: a tiny PNG can declare a huge canvas.
      raise DataError(name, f"is {width}x{height} pixels, over the "
                      f"{max_bytes:,}-byte decoded-image limit",
                      "shrink the image, or raise data.max_image_bytes.")
    if img.mode in ("I", "F") or img.mode.startswith("I;"):
      raise DataError(name, f"has 16-bit or float pixels (PIL mode {img.mode})",
                      "convert the images to 8-bit JPEG or PNG.")
    img.load()
    target = "RGB" if channels == 3 else "L"
    if img.mode != target:
      # PIL's "L" is the ITU-R 601-2 luma; "RGB" repeats gray and drops alpha.
      img = img.convert(target)
    if image_size is not None and img.size != (image_size, image_size):
      img = img.resize((image_size, image_size), Image.BILINEAR)
    arr = np.asarray(img)
  except DataError:
    raise
  except Image.UnidentifiedImageError:
    what = "is not a readable JPEG/PNG image (" + (
        "an empty file, 0 bytes)" if not data else
        f"{len(data):,} bytes in no format PIL recognises)")
    raise DataError(name, what, "replace or remove the file.") from None
  except (OSError, SyntaxError, ValueError, EOFError,
          Image.DecompressionBombError) as e:
    raise DataError(name, f"is not a readable JPEG/PNG image ({e})",
                    "replace or remove the file.") from None
  return arr if arr.ndim == 3 else arr[:, :, None]


def _decode_split(tree, items, image_size, channels, max_bytes, first):
  """Decodes `items` into one uint8 array; `first` = [(name, shape)] or []."""
  out = None
  for i, (parts, _) in enumerate(items):
    name = tree.display(parts)
    arr = _decode(tree.read(parts, max_bytes), name, image_size, channels,
                  max_bytes)
    if not first:
      first.append((name, arr.shape))
    if arr.shape != first[0][1]:
      h0, w0, _ = first[0][1]
      raise DataError(name, f"is {arr.shape[1]}x{arr.shape[0]} pixels but "
                      f"{first[0][0]} is {w0}x{h0}",
                      "set data.image_size to resize all images to one square "
                      "size.")
    if out is None:
      if image_size is None:  # the first image gives the size of all
        memory.require("data.path", name, len(items) * arr.nbytes,
                       f"the decoded split ({len(items):,} images of "
                       f"{'x'.join(map(str, arr.shape))})",
                       "set data.image_size to shrink the images")
      out = np.empty((len(items),) + arr.shape, np.uint8)
    out[i] = arr
  return out


def _max_bytes(data_cfg) -> int:
  # Checked (a positive int) by config.check_section in load_dataset.
  return int(data_cfg.max_image_bytes)


def _dir_fingerprint(tree: _DirTree, items: Iterable[_Parts]) -> str:
  """Hash of every image's name, size, mtime and ctime: any edit changes the key.

  Only metadata is read, so a cache hit never opens an image. The ctime is
  there because an mtime can be set back (`touch -r`, `cp -p`, `rsync -t`)
  over a file of the same size and other content; a ctime cannot, so a
  copied folder decodes once more instead of reusing stale arrays.
  """
  digest = hashlib.sha256()
  for parts in items:
    st = tree.stat(parts)
    digest.update(f"{'/'.join(parts)}\0{st.st_size}\0{st.st_mtime_ns}\0"
                  f"{st.st_ctime_ns}\n"
                  .encode("utf-8", "surrogateescape"))
  return digest.hexdigest()


@register_source("folder")
def load_folder(data_cfg, *, image_size: int | None, channels: int) -> Dataset:
  """Loads `data_cfg.path` (directory or tar), using the decoded-array cache.

  Args:
    data_cfg: config.data; reads path, train_split, test_split, cache_dir and
      optionally max_image_bytes.
    image_size: square size to resize to, or None to require one size.
    channels: 1 or 3.
  """
  raw = data_cfg.path
  if not raw:
    raise ConfigError("data.path", raw, "set it to a directory or a "
                      ".tar/.tar.gz of split/class/image files.")
  path = os.path.abspath(os.path.expanduser(raw))
  if not os.path.exists(path):
    raise DataError(path, "does not exist", "set data.path to an existing "
                    "directory or .tar/.tar.gz of split/class/image files.")
  train_split, test_split = data_cfg.train_split, data_cfg.test_split
  if train_split == test_split:
    raise ConfigError("data.test_split", test_split,
                      "use a different split than data.train_split.")
  max_bytes = _max_bytes(data_cfg)
  # Keyed by content, not by path: a source reached by two paths (or two
  # copies of one archive) is decoded and cached once.
  key = {"source": "folder", "splits": [train_split, test_split],
         "image_size": image_size, "channels": channels}

  if os.path.isdir(path):
    tree = _DirTree(path)
    class_names, splits = _layout(tree, train_split, test_split)
    key["files"] = _dir_fingerprint(
        tree, [p for s in (train_split, test_split) for p, _ in splits[s]])
  else:
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
      raise DataError(path, "is neither a directory nor a regular file",
                      "point data.path at a directory or a .tar/.tar.gz.")
    key["sha256"] = cache.file_digest(path, cache.cache_dir(data_cfg.cache_dir))
    tree = None

  entry, key_text = cache.entry_path(cache.cache_dir(data_cfg.cache_dir),
                                     "folder", key)
  remember = lambda: "sha256" in key and cache.remember_digest(
      path, key["sha256"], cache.cache_dir(data_cfg.cache_dir))
  hit = cache.load(entry, key_text)
  if hit is not None:
    remember()
    return Dataset(
        train_images=hit["train_images"], train_labels=hit["train_labels"],
        test_images=hit["test_images"], test_labels=hit["test_labels"],
        class_names=tuple(str(c) for c in hit["class_names"]),
        description=f"folder:{path} (cached)", fingerprint=hit.get("fingerprint"))

  if tree is None:
    tree = _TarTree(path, max_bytes)
    class_names, splits = _layout(tree, train_split, test_split)
  memory.check_data(len(splits[train_split]) + len(splits[test_split]), image_size, channels,
                    path)
  first = []
  arrays = {}
  for prefix, split in (("train", train_split), ("test", test_split)):
    items = splits[split]
    arrays[f"{prefix}_images"] = _decode_split(tree, items, image_size,
                                               channels, max_bytes, first)
    arrays[f"{prefix}_labels"] = np.array([y for _, y in items], np.int32)
  arrays["class_names"] = np.array(class_names, dtype=str)
  fp = cache.fingerprint(arrays["train_images"], arrays["train_labels"],
                         arrays["test_images"], arrays["test_labels"], class_names)
  cache.save(entry, key_text, arrays, fp)
  remember()  # only now: a rejected archive leaves nothing in the cache folder
  return Dataset(class_names=class_names, description=f"folder:{path}", fingerprint=fp,
                 **{k: v for k, v in arrays.items() if k != "class_names"})


@register_sizes("folder")
def folder_sizes(data_cfg) -> tuple[int, int] | None:
  """(images of data.train_split, images of data.test_split), counted from
  the file names of a directory or the member headers of a tar (no image
  is read or decoded). None when data.path is unset or absent; a bad layout
  raises the loader's DataError (`jax_al.data.sizes` turns it into None)."""
  raw = data_cfg.path
  if not raw:
    return None
  path = os.path.abspath(os.path.expanduser(raw))
  if not os.path.exists(path):
    return None
  tree = (_DirTree(path) if os.path.isdir(path)
          else _TarTree(path, _max_bytes(data_cfg), names_only=True))
  _, splits = _layout(tree, data_cfg.train_split, data_cfg.test_split)
  return len(splits[data_cfg.train_split]), len(splits[data_cfg.test_split])


@register_shape("folder")
def folder_shape(data_cfg) -> tuple[int, int] | None:
  """(height, width) of the first training image of a directory, from its
  header (the loader requires one size for all when data.image_size is
  unset); None for a tar, whose images are only read by loading it."""
  raw = data_cfg.path
  path = os.path.abspath(os.path.expanduser(raw)) if raw else ""
  if not path or not os.path.isdir(path):
    return None
  tree = _DirTree(path)
  _, splits = _layout(tree, data_cfg.train_split, data_cfg.test_split)
  parts, _ = splits[data_cfg.train_split][0]
  with Image.open(tree._path(parts)) as img:  # the header only: nothing is decoded
    width, height = img.size
  return height, width
