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
  """Replaces `path` by `text` atomically: readers see the old or the new file."""
  path = Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
      f.flush()
      os.fchmod(f.fileno(), _FILE_MODE)
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  _fsync_dir(path.parent)


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
      with open(self.path, "a") as f:
        f.write(line + "\n")


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
