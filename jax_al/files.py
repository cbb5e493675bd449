"""Workdir files: atomic JSON writes, the metrics log and the text log.

Results files are rewritten whole through a temporary file and `os.replace`,
which is atomic on POSIX: a kill at any moment leaves either the old or the
new file, never half a JSON document. Non-finite floats (a diverged loss) are
written as `null`, so every file is strict JSON.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from jax_al.errors import DataError, JaxALError

# errno values that mean "the disk (or the user's quota) is full".
_FULL = (28, 122)  # ENOSPC, EDQUOT


class WriteError(DataError):
  """A file of a run or command could not be written (a full disk, a
  read-only filesystem): one line naming the folder, the bytes and the fix."""


def free_bytes(folder: Path) -> int | None:
  """Bytes free for this user in `folder` (or its nearest existing parent), or None."""
  folder = Path(folder)
  while not folder.exists() and folder != folder.parent:
    folder = folder.parent
  try:
    st = os.statvfs(folder)
  except (OSError, AttributeError):
    return None
  return st.f_bavail * st.f_frsize


def _human(n: float) -> str:
  for unit in ("B", "kB", "MB", "GB", "TB"):
    if n < 1000 or unit == "TB":
      return f"{int(n)} B" if unit == "B" else f"{n:.3g} {unit}"
    n /= 1000
  return f"{n:.3g} TB"


def no_space(folder: Path, need: int, what: str, started: bool = True) -> WriteError:
  """The one-line error of a full disk for `what` (about `need` bytes).

  `started`: something was already written (a rerun resumes), or the check
  came before anything was.
  """
  free = free_bytes(folder)
  have = "" if free is None else f", {_human(free)} are free"
  then = ("then rerun the same command: finished cycles are kept and it resumes" if started
          else "then rerun the same command; nothing was written")
  return WriteError(str(folder), f"no space left on the device for {what} "
                    f"(it needs about {_human(need)}{have})",
                    f"free at least {_human(need)} there (or use a folder on another disk), "
                    f"{then}")


def is_full(e: BaseException) -> bool:
  """Whether `e` (an OSError, or an error that wraps one, like orbax's) says the disk is full."""
  seen = 0
  while e is not None and seen < 10:
    if isinstance(e, OSError) and e.errno in _FULL:
      return True
    text = str(e)
    if "No space left on device" in text or "Disk quota exceeded" in text or "ENOSPC" in text:
      return True
    e, seen = e.__cause__ or e.__context__, seen + 1
  return False


def write_failed(e: OSError, path: Path, need: int, what: str) -> WriteError:
  """The WriteError for an OSError raised while `path` (about `need` bytes) was written."""
  if is_full(e):
    return no_space(Path(path).parent, need, what)
  return WriteError(str(path), f"cannot be written ({e.strerror or e})",
                    "make the folder writable, or pass a folder on a writable filesystem")


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


# mkstemp creates 0600 files; results files get the usual 0666 & ~umask.
_FILE_MODE = 0o666 & ~_umask()


def _fsync_dir(path: Path) -> None:
  """Makes a rename in `path` durable (best effort: not every OS allows it)."""
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
  """Replaces `path` by `text` atomically: readers see the old or the new file.

  A full disk or an unwritable folder raises WriteError (one line), and the
  old file stays as it was.
  """
  _atomic_write_bytes(Path(path), text.encode())


def jsonable(obj: Any) -> Any:
  """`obj` with numpy scalars/arrays as Python values and NaN/inf as None."""
  if isinstance(obj, dict):
    return {str(k): jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [jsonable(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return jsonable(obj.tolist())
  if isinstance(obj, np.generic):
    obj = obj.item()
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def dumps(obj: Any, **kw) -> str:
  return json.dumps(jsonable(obj), allow_nan=False, sort_keys=True, default=str, **kw)


def write_json(path: Path, obj: Any) -> None:
  atomic_write_text(path, dumps(obj, indent=1) + "\n")


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
  atomic_write_text(path, "".join(dumps(r) + "\n" for r in records))


def read_jsonl(path: Path) -> list[dict]:
  path = Path(path)
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class JsonlLog:
  """An append-only list of records kept in memory and mirrored atomically.

  The file is first written by the first `append`, so creating the log never
  truncates what a previous run left there.
  """

  def __init__(self, path: Path, records: list[dict] | None = None):
    self.path = Path(path)
    self.records = list(records or [])
    if self.records:
      write_jsonl(self.path, self.records)

  def append(self, record: dict) -> None:
    self.extend([record])

  def extend(self, records: Iterable[dict]) -> None:
    self.records.extend(jsonable(list(records)))
    write_jsonl(self.path, self.records)


class TrialOrderedLog(JsonlLog):
  """A JsonlLog kept in trial order (stable), so that a vmapped run, whose
  trials advance in lockstep, writes the same files as a sequential one."""

  def extend(self, records: Iterable[dict]) -> None:
    self.records.extend(jsonable(list(records)))
    self.records.sort(key=lambda r: r.get("trial", -1))
    write_jsonl(self.path, self.records)


class TextLog:
  """Prints a line and appends it to `log.txt` (flushed at once)."""

  def __init__(self, path: Path | None, quiet: bool = False):
    self.path, self.quiet = path, quiet

  def __call__(self, line: str) -> None:
    if not self.quiet:
      print(line, flush=True)
    if self.path is not None:
      raw = (line + "\n").encode()
      try:
        with open(self.path, "ab") as f:
          _write_all(f, raw)
      except OSError as e:
        raise write_failed(e, self.path, len(raw), self.path.name) from None


def is_terminal() -> bool:
  return sys.stdout.isatty()


class EpochBar:
  """A tqdm bar over epochs when attached to a terminal, else nothing."""

  def __init__(self, total: int, desc: str):
    self.bar = None
    if is_terminal():
      from tqdm import tqdm
      self.bar = tqdm(total=total, desc=desc, leave=False)

  def __call__(self, epoch: int) -> None:
    if self.bar is not None:
      self.bar.update(1)

  def close(self):
    if self.bar is not None:
      self.bar.close()


# ------------------------------------------------------ outputs we own ------
#
# Rule: no command replaces a file that it did not write. jax-al records what
# it writes outside a run's workdir in a small ledger in the file's folder,
# `.jax_al_written.json`: {"tool": "jax-al", "format": 1, "files": {name:
# sha256 of the bytes written}, "folder": true when jax-al made the folder}.
# A path may be (re)written when it does not exist, or when its bytes are
# still the ones the ledger records (a file edited since, or replaced by a
# user's, is theirs again). Run workdirs have their own rules (workdir.py).

LEDGER = ".jax_al_written.json"
_LEDGER_TOOL = "jax-al"


class OutputError(JaxALError, ValueError):
  """An output path holds something jax-al did not write: one line naming the
  flag, the path and the fix; raised before anything is written."""


def _ledger(folder: Path) -> dict | None:
  """The ledger of `folder`: {} when absent, None when a file of that name is not ours."""
  path = Path(folder) / LEDGER
  if not path.exists() and not path.is_symlink():
    return {}
  if path.is_symlink() or not path.is_file():
    return None
  try:
    doc = json.loads(path.read_text())
  except (OSError, ValueError, UnicodeDecodeError):
    return None
  if not isinstance(doc, dict) or doc.get("tool") != _LEDGER_TOOL \
      or not isinstance(doc.get("files", {}), dict):
    return None
  return doc


def _sha256_file(path: Path) -> str | None:
  import hashlib
  h = hashlib.sha256()
  try:
    with open(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
  except OSError:
    return None
  return h.hexdigest()


def ledger_files(folder) -> dict:
  """{file name: sha256} that the ledger of `folder` records ({} without one;
  OutputError when a file of the ledger's name is not ours)."""
  return dict(_check_ledger(Path(folder)).get("files", {}))


def written_by_us(path: Path) -> bool:
  """True when `path` is a plain file whose bytes are what jax-al last wrote there."""
  path = Path(path)
  if path.is_symlink() or not path.is_file():
    return False
  doc = _ledger(path.parent)
  want = (doc or {}).get("files", {}).get(path.name)
  return isinstance(want, str) and _sha256_file(path) == want


def check_output(path, flag: str, legacy=None) -> Path:
  """Raises OutputError unless jax-al may write the file `path`; writes nothing.

  Allowed: a path that does not exist, a file `written_by_us`, or one that
  `legacy(path)` (optional) recognises as written by a jax-al version from
  before the ledger. `flag` names the option that gave the path, for the
  one-line refusal. Returns `path` as a Path.
  """
  path = Path(path)
  _check_ledger(path.parent)
  if not path.exists() and not path.is_symlink():
    return path
  if path.is_dir() and not path.is_symlink():
    raise OutputError(f"{flag} {path}: is a folder, not a file. Fix: pass a file path")
  # The legacy test is for files from before the ledger: one the ledger
  # records, with other bytes now, was edited after jax-al wrote it.
  recorded = path.name in (_ledger(path.parent) or {}).get("files", {})
  if written_by_us(path) or (legacy is not None and not recorded and not path.is_symlink()
                             and _legacy(legacy, path)):
    return path
  raise OutputError(f"{flag} {path}: the file exists and jax-al did not write it (or it was "
                    "edited since), so it is not replaced. Fix: pass another path, or move "
                    "the file away")


def _legacy(legacy, path: Path) -> bool:
  try:
    return bool(legacy(path))
  except (OSError, ValueError, UnicodeDecodeError):
    return False


def _check_ledger(folder: Path) -> dict:
  """The folder's ledger; OutputError when a file of its name is not ours
  (checked with the outputs, so that no output is written before the
  ledger write fails)."""
  doc = _ledger(folder)
  if doc is None:
    raise OutputError(f"{Path(folder) / LEDGER}: exists but is not jax-al's record of its "
                      "outputs. Fix: move the file away or write elsewhere")
  return doc


def _record(folder: Path, name: str | None, digest: str | None, folder_mark: bool = False) -> None:
  doc = _check_ledger(folder)
  doc = {"tool": _LEDGER_TOOL, "format": 1, **doc}
  doc.setdefault("files", {})
  if name is not None:
    doc["files"][name] = digest
  if folder_mark:
    doc["folder"] = True
  atomic_write_text(Path(folder) / LEDGER, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def write_output(path, data: str | bytes) -> None:
  """Writes `data` to `path` atomically and records it in the folder's ledger.

  Call `check_output` first (for every output of a command, before writing
  any of them). Creates the parent folders.
  """
  import hashlib
  path = Path(path)
  raw = data.encode() if isinstance(data, str) else bytes(data)
  path.parent.mkdir(parents=True, exist_ok=True)
  _check_ledger(path.parent)  # a foreign ledger: refused before the file is written
  if isinstance(data, str):
    atomic_write_text(path, data)
  else:
    _atomic_write_bytes(path, raw)
  _record(path.parent, path.name, hashlib.sha256(raw).hexdigest())


def write_output_json(path, obj: Any) -> None:
  """`write_output` of `obj` as indented strict JSON (as `write_json`)."""
  write_output(path, dumps(obj, indent=1) + "\n")


def _atomic_write_bytes(path: Path, raw: bytes) -> None:
  tmp = None
  try:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
      _write_all(f, raw)
      f.flush()
      os.fchmod(f.fileno(), _FILE_MODE)
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException as e:
    if tmp is not None and os.path.exists(tmp):
      os.unlink(tmp)
    if isinstance(e, OSError):  # ENOSPC, EROFS, EACCES: one line, the old file kept
      raise write_failed(e, path, len(raw), path.name) from None
    raise
  _fsync_dir(path.parent)


def atomic_write_bytes(path, raw: bytes) -> None:
  """`atomic_write_text` for bytes (a PNG)."""
  _atomic_write_bytes(Path(path), raw)


def _write_all(f, raw: bytes) -> None:
  """f.write(raw); a seam for tests that fill the disk."""
  f.write(raw)


def check_output_dir(path, flag: str, legacy=None) -> Path:
  """Raises OutputError unless jax-al may fill the folder `path` as its own.

  For outputs whose file names jax-al does not choose (a profiler trace):
  the folder must not exist, be empty, carry jax-al's folder mark (made by
  `claim_output_dir`), or be recognised by `legacy(path)`. Writes nothing.
  """
  path = Path(path)
  if not path.exists() and not path.is_symlink():
    return path
  if path.is_symlink() or not path.is_dir():
    raise OutputError(f"{flag} {path}: is not a folder. Fix: pass a new folder")
  _check_ledger(path)
  if not any(path.iterdir()) or ((_ledger(path) or {}).get("folder") is True) or (
      legacy is not None and _legacy(legacy, path)):
    return path
  raise OutputError(f"{flag} {path}: the folder holds files jax-al did not put there, so it "
                    "does not write into it. Fix: pass a new or empty folder")


def claim_output_dir(path) -> Path:
  """Creates the folder `path` (after `check_output_dir`) and marks it as jax-al's."""
  path = Path(path)
  path.mkdir(parents=True, exist_ok=True)
  if (_ledger(path) or {}).get("folder") is not True:
    _record(path, None, None, folder_mark=True)
  return path
