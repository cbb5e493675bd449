"""Workdir files: atomic JSON writes, the metrics log and the text log.

Results files are rewritten whole through a temporary file and `os.replace`,
which is atomic on POSIX: a kill at any moment leaves either the old or the
new file, never half a JSON document.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable


def atomic_write_text(path: Path, text: str) -> None:
  path = Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def write_json(path: Path, obj: Any) -> None:
  atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
  atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def read_jsonl(path: Path) -> list[dict]:
  path = Path(path)
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class JsonlLog:
  """An append-only list of records kept in memory and mirrored atomically."""

  def __init__(self, path: Path, records: list[dict] | None = None):
    self.path = Path(path)
    self.records = list(records or [])
    write_jsonl(self.path, self.records)

  def append(self, record: dict) -> None:
    self.records.append(record)
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
