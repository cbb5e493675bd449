"""A round folder's state on disk: reading it whole, and changing it one
atomic step at a time.

Every state file is replaced by an atomic rename (`files.atomic_write_text`)
and a round's folder appears by renaming its finished staging folder, so a
reader (or a rerun after a kill) sees the old state or the new one.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import fcntl
import io
import json
import os
import shutil
import signal
import time
from pathlib import Path

from jax_al import files
from jax_al.errors import DataError

TOOL = "jax-al round"
FORMAT = 1
ROUND_JSON = "round.json"
POOL_CSV = "pool.csv"
HOLDOUT_CSV = "holdout.csv"
LABELS = "labels.jsonl"
UNDONE = "undone.jsonl"
LOCK = ".jax_al_round.lock"
# Files init writes before round.json marks the folder as a round folder.
INIT_FILES = (POOL_CSV, HOLDOUT_CSV, LOCK)

# Fault injection for the kill tests: the process kills itself (SIGKILL, no
# cleanup) when it reaches the phase named by this variable; "PHASE@TERM" or
# "PHASE@INT" sends itself that signal instead (what the command answers).
KILL_ENV = "JAX_AL_ROUND_KILL_AT"


def phase(name: str) -> None:
  """A named point between the steps of a command (see KILL_ENV)."""
  at, _, sig = os.environ.get(KILL_ENV, "").partition("@")
  if at == name:
    os.kill(os.getpid(), getattr(signal, f"SIG{sig}") if sig else signal.SIGKILL)


def now() -> str:
  """UTC time stamp of a merge; SOURCE_DATE_EPOCH (the reproducible-builds
  variable) fixes it, so two runs of the same commands write the same bytes."""
  fixed = os.environ.get("SOURCE_DATE_EPOCH")
  t = float(fixed) if fixed else time.time()
  return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
      "%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Item:
  """One pool item: its row in the pool, stable id, image path and digest."""

  row: int
  id: str
  path: str | None
  sha256: str


@dataclasses.dataclass(frozen=True)
class Label:
  """One merged label (a line of labels.jsonl)."""

  id: str
  label: str
  round: int
  merge: int
  time: str
  source: str
  source_sha256: str

  def record(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Round:
  """One round's folder: what it asked for and its model's outputs."""

  number: int
  asked: tuple[str, ...]          # ids, in pick order
  selection: dict                 # selection.json
  closed: bool                    # closed with items left unlabeled

  def remaining(self, labeled: set[str]) -> list[str]:
    return [i for i in self.asked if i not in labeled]


@dataclasses.dataclass(frozen=True)
class Project:
  """Everything a round folder holds, read once per command."""

  dir: Path
  meta: dict                       # round.json
  items: tuple[Item, ...]
  holdout: dict[str, str]          # id -> label
  labels: tuple[Label, ...]
  undone: tuple[dict, ...]
  rounds: tuple[Round, ...]

  @property
  def by_id(self) -> dict[str, Item]:
    return {it.id: it for it in self.items}

  @property
  def labeled(self) -> dict[str, str]:
    return {lab.id: lab.label for lab in self.labels}

  @property
  def classes(self) -> list[str]:
    """The fixed class list, or the labels' classes in order of first appearance."""
    if self.meta["classes_fixed"]:
      return list(self.meta["classes"])
    seen = dict.fromkeys(self.meta["classes"])
    for lab in self.labels:
      seen.setdefault(lab.label)
    for lab in self.holdout.values():
      seen.setdefault(lab)
    return list(seen)

  @property
  def open_round(self) -> Round | None:
    """The last round when it still waits for labels (not all asked ids
    labeled, not closed)."""
    if not self.rounds:
      return None
    last = self.rounds[-1]
    if last.closed or not last.remaining(set(self.labeled)):
      return None
    return last

  @property
  def next_merge(self) -> int:
    used = [lab.merge for lab in self.labels] + [u["merge"] for u in self.undone]
    return max(used, default=0) + 1


def round_dir(d: Path, n: int) -> Path:
  return Path(d) / f"round_{n}"


def staging_dir(d: Path, n: int) -> Path:
  return Path(d) / f".round_{n}.partial"


def digest_bytes(raw: bytes) -> str:
  import hashlib
  return hashlib.sha256(raw).hexdigest()


def digest_file(path: Path) -> str:
  import hashlib
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


# ------------------------------------------------------------------ lock ----


class Lock:
  """DIR's exclusive lock: a second process waits up to `wait` seconds for
  it, then refuses in one line."""

  def __init__(self, d: Path, wait: float = 0.0):
    self.path = Path(d) / LOCK
    self.file = open(self.path, "a")
    deadline = time.monotonic() + max(0.0, wait)
    while True:
      try:
        fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
      except OSError:
        if time.monotonic() >= deadline:
          self.file.close()
          raise DataError(str(d), "another jax-al round command is working in it",
                          "wait for it to finish, or pass --wait SECONDS to wait") from None
        time.sleep(0.2)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.file.close()


# ------------------------------------------------------------------ read ----


def is_project(d: Path) -> bool:
  meta = read_json(Path(d) / ROUND_JSON)
  return isinstance(meta, dict) and meta.get("tool") == TOOL


def read_json(path: Path):
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError, UnicodeDecodeError):
    return None


def check_project(d: Path) -> None:
  """Refuses, in one line, a DIR that is not a round folder."""
  d = Path(d)
  if not d.is_dir():
    raise DataError(str(d), "no such folder" if not d.exists() else "is not a folder",
                    f"make it with jax-al round init {d} --images FOLDER (or --embeddings FILE)")
  if not is_project(d):
    raise DataError(str(d / ROUND_JSON), "is missing or not written by jax-al round init",
                    f"pass a folder made by jax-al round init, or run init on {d}")


def read_items(path: Path) -> tuple[Item, ...]:
  with open(path, newline="") as f:
    return tuple(Item(int(r["row"]), r["id"], r["path"] or None, r["sha256"])
                 for r in csv.DictReader(f))


def items_csv(items) -> str:
  out = io.StringIO()
  w = csv.writer(out, lineterminator="\n")
  w.writerow(["row", "id", "path", "sha256"])
  for it in items:
    w.writerow([it.row, it.id, it.path or "", it.sha256])
  return out.getvalue()


def labels_csv(pairs) -> str:
  out = io.StringIO()
  w = csv.writer(out, lineterminator="\n")
  w.writerow(["id", "label"])
  for i, lab in pairs:
    w.writerow([i, lab])
  return out.getvalue()


def _read_rounds(d: Path) -> tuple[Round, ...]:
  out = []
  n = 1
  while round_dir(d, n).is_dir():
    rd = round_dir(d, n)
    sel = read_json(rd / "selection.json")
    if not isinstance(sel, dict):
      raise DataError(str(rd / "selection.json"), "is missing or not JSON",
                      "this round folder was changed by hand; restore it from a copy")
    out.append(Round(n, tuple(sel["picks"]), sel, (rd / "closed.json").exists()))
    n += 1
  return tuple(out)


def load(d: Path) -> Project:
  d = Path(d)
  check_project(d)
  meta = read_json(d / ROUND_JSON)
  items = read_items(d / POOL_CSV)
  holdout = {}
  if (d / HOLDOUT_CSV).exists():
    with open(d / HOLDOUT_CSV, newline="") as f:
      holdout = {r["id"]: r["label"] for r in csv.DictReader(f)}
  labels = _read_labels(d / LABELS, {it.id for it in items}, holdout,
                        meta["classes"] if meta.get("classes_fixed") else None)
  undone = tuple(r for _, r in _jsonl(d / UNDONE))
  return Project(d, meta, items, holdout, labels, undone, _read_rounds(d))


_HAND = "the file was changed by hand; restore it from a copy, or take the line out"


def _jsonl(path: Path):
  """(line number, record) of a state file's JSON lines; one line naming a bad one."""
  try:
    text = path.read_text() if path.exists() else ""
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(str(path), f"cannot be read ({e})", _HAND) from None
  for i, line in enumerate(text.splitlines(), 1):
    if not line.strip():
      continue
    try:
      r = json.loads(line)
    except ValueError:
      r = None
    if not isinstance(r, dict):
      raise DataError(f"{path}:{i}", "is not a JSON record", _HAND)
    yield i, r


def _read_labels(path: Path, ids: set, holdout: dict, classes) -> tuple[Label, ...]:
  """labels.jsonl, checked as `add` checks what it merges: a hand edit that
  breaks it is one line naming the line, never a traceback in a later step."""
  out, seen = [], {}
  fields = {f.name: f.type for f in dataclasses.fields(Label)}
  for i, r in _jsonl(path):
    kinds = {"int": int, "str": str}
    if set(r) != set(fields) or any(
        not isinstance(r[k], kinds[t]) or isinstance(r[k], bool) for k, t in fields.items()):
      raise DataError(f"{path}:{i}", f"is not a label record (fields {', '.join(fields)})",
                      _HAND)
    if r["id"] not in ids:
      raise DataError(f"{path}:{i}", f"id {r['id']!r} is not in the pool", _HAND)
    if r["id"] in holdout:
      raise DataError(f"{path}:{i}", f"id {r['id']!r} is in the holdout set", _HAND)
    if classes is not None and r["label"] not in classes:
      raise DataError(f"{path}:{i}", f"label {r['label']!r} is not a class "
                      f"({', '.join(map(str, classes))})", _HAND)
    if r["id"] in seen:
      raise DataError(f"{path}:{i}", f"id {r['id']!r} is merged again (line {seen[r['id']]})",
                      _HAND)
    seen[r["id"]] = i
    out.append(Label(**r))
  return tuple(out)


# ----------------------------------------------------------------- write ----


def write_labels(d: Path, labels) -> None:
  files.write_jsonl(Path(d) / LABELS, [lab.record() for lab in labels])


def append_undone(d: Path, undone, removed: list[Label]) -> None:
  files.write_jsonl(Path(d) / UNDONE, list(undone) + [lab.record() for lab in removed])


def publish_round(d: Path, n: int) -> Path:
  """Renames round n's finished staging folder into place (one atomic step)."""
  src, dst = staging_dir(d, n), round_dir(d, n)
  os.rename(src, dst)
  files._fsync_dir(Path(d))  # pylint: disable=protected-access
  return dst


def fresh_staging(d: Path, n: int) -> Path:
  """An empty staging folder for round n (a kill's leftover is ours: removed)."""
  s = staging_dir(d, n)
  if s.exists():
    shutil.rmtree(s)
  s.mkdir()
  return s
