"""The run's folder: what is ours in it, the lock, resume or replace.

A workdir holds a jax-al run only when its `config.json` carries the tool's
marker (`{"jax_al": {"tool": "jax-al", "format": 1}}`; files written before
the marker existed are recognised by their config schema). Files named like
ours without that marker are someone else's: every command refuses to touch
them and lists them.

What a run owns, and the only things `--overwrite` ever removes: the results
files in `RESULTS`, the checkpoint steps in `checkpoints/trial<N>/` (orbax's
numbered folders and its temporary ones), the TensorBoard event files in
`tensorboard/trial<N>/` (and those folders once empty), `.lock` and the
temporary files of its own atomic writes. Anything else in the workdir, inside
`checkpoints/` and `tensorboard/` too, is left where it is.

`--overwrite` replaces a run only after the new one has shown it can run:
the old outputs are moved aside into `.jax_al_replaced/` inside the workdir,
moved back if the new run fails before its first checkpoint, and deleted
after that checkpoint. A process killed in between leaves them aside; the
next command on the workdir finds them and restores them (or, if the new
run had checkpointed, deletes them).
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import ml_collections

from jax_al import schema
from jax_al.errors import ConfigError, DataError

TOOL = "jax-al"
FORMAT = 1
MARKER_KEY = "jax_al"
# config.json's record of the data the run started on (`cache.fingerprint`):
# not a config field, so no digest or comparison of configs sees it.
DATA_KEY = "jax_al_data"
_NOT_CONFIG = (MARKER_KEY, DATA_KEY)
RESULTS = ("config.json", "log.txt", "metrics.jsonl", "selected.jsonl", "summary.json",
           "learning_curve.png")
CHECKPOINTS = "checkpoints"
EVENTS = "tensorboard"  # the optional TensorBoard event files (log.tensorboard)
ASIDE = ".jax_al_replaced"
LOCK = ".lock"
_TRIAL_DIR = re.compile(r"trial\d+")
# What a run writes inside a trial folder: orbax's step folders (and their
# temporary ones while a step is written), tensorboardX's event files.
_STEP = re.compile(r"\d+(\.orbax-checkpoint-tmp.*)?")
_EVENT_FILE = re.compile(r"events\.out\.tfevents\..+")
# Top-level fields of every config this tool writes: how a config.json written
# before the marker existed is still recognised as a run of ours.
_SCHEMA = {"seed", "num_trials", "resume", "data", "model", "train", "al", "compare"}

# Fields that change how a run executes, not its results (a run may resume
# with other values), and results fields added after runs were first saved,
# with the value a saved config.json lacking them ran with: declared in the
# schema (`Field.execution_only`, `Field.before`).
EXECUTION_ONLY = schema.EXECUTION_ONLY
ADDED_FIELDS = schema.ADDED_FIELDS
with_added_fields = schema.with_added_fields


def marker() -> dict:
  return {"tool": TOOL, "format": FORMAT}


def config_record(config, data: dict | None = None) -> dict:
  """What `config.json` holds: the config's fields, the tool's marker and the
  fingerprint of the data the run starts on (`Dataset.fingerprint`)."""
  return {**config.to_dict(), MARKER_KEY: marker(), **({DATA_KEY: data} if data else {})}


def saved_data(workdir: Path) -> dict | None:
  """The data fingerprint the run in `workdir` recorded, or None (unknown: a
  run saved before runs recorded one)."""
  saved = _read_config(Path(workdir) / "config.json")
  fp = saved.get(DATA_KEY) if isinstance(saved, dict) else None
  return fp if isinstance(fp, dict) else None


def data_changes(then: dict | None, now: dict | None) -> str | None:
  """What differs between two data fingerprints, in words, or None when they
  agree or either is unknown (None)."""
  change = _data_change(then, now)
  return None if change is None else change[0]


def _data_change(then: dict | None, now: dict | None) -> tuple[str, bool] | None:
  """(what differs, in words; whether the training side changed, which moves
  the recorded labeled indices), or None (`data_changes`)."""
  if not isinstance(then, dict) or not isinstance(now, dict):
    return None
  for key, what in (("train", "training images"), ("test", "test images")):
    if then.get(key) != now.get(key):
      return f"the {what}: {now.get(key)} now, {then.get(key)} then", key == "train"
  if then.get("classes") != now.get("classes"):
    a, b = then.get("classes") or [], now.get("classes") or []
    gone, new = [c for c in a if c not in b], [c for c in b if c not in a]
    detail = (f"only then: {gone[:5]}, only now: {new[:5]}" if gone or new
              else "same names, other order")
    return f"the classes ({detail})", True
  if (then.get("shape"), then.get("dtype")) != (now.get("shape"), now.get("dtype")):
    return (f"the image shape: {now.get('shape')} {now.get('dtype')} now, "
            f"{then.get('shape')} {then.get('dtype')} then", True)
  for key, what in (("train_digest", "training"), ("test_digest", "test")):
    if then.get(key) != now.get(key):
      return f"the {what} split's images or labels (same count, other content)", \
          key == "train_digest"
  return None


def check_data(workdir: Path, data: dict | None, action: str = "resume") -> None:
  """Raises DataError when the data fingerprint the run in `workdir` recorded
  differs from `data` (the data now); a run without one is let through."""
  change = _data_change(saved_data(workdir), data)
  if change:
    change, train_side = change
    why = ("its recorded labeled indices would point at other images" if train_side else
           "its accuracies so far were measured on other test images")
    raise DataError(str(Path(workdir) / "config.json"),
                    f"the run started on other data than it would {action} on now (changed: "
                    f"{change}), so {why}",
                    "restore the data the run started on, or pass --overwrite (or another "
                    "--workdir) to start afresh on the new data")


# ------------------------------------------------------------ creation ------


def prepare(workdir: Path) -> list[Path]:
  """Creates `workdir` if needed and checks that it is writable.

  Returns the folders this call created, deepest first. Writes no file that stays.
  """
  workdir = Path(workdir)
  created = [p for p in (workdir, *workdir.parents) if not p.exists()]
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=workdir, prefix=".write_test")
    os.close(fd)
    os.unlink(probe)
  except OSError as e:
    remove_empty(created)
    raise ConfigError("--workdir", str(workdir),
                      f"cannot write there ({e.strerror or e}); choose a writable folder") from None
  return created


def remove_empty(folders: list[Path]) -> None:
  """Removes `folders` (deepest first) while they are empty."""
  for p in folders:
    try:
      p.rmdir()
    except OSError:
      return


class Lock:
  """An exclusive lock on the workdir, so two processes never write one run.

  `release(remove=True)` also deletes the lock file when this lock created
  it, so a command refused for bad input leaves no file behind.
  """

  def __init__(self, workdir: Path):
    self.path = Path(workdir) / LOCK
    self.created = not self.path.exists()
    self.file = open(self.path, "a")
    try:
      fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self.file.close()
      raise ConfigError("--workdir", str(workdir),
                        "another jax-al process is running in it; wait for it to finish or "
                        "choose another --workdir") from None

  def release(self, remove: bool = False) -> None:
    if self.file.closed:
      return
    if remove and self.created:
      self.path.unlink(missing_ok=True)
    self.file.close()

  def close(self) -> None:
    self.release()


# ------------------------------------------------------------ ownership ------


def _read_config(path: Path):
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError, UnicodeDecodeError):
    return None


def load_config(workdir: Path):
  """The ConfigDict a run in `workdir` ran with, from its config.json.

  JSON lists become tuples again (the config files write sequences as
  tuples), so the digest equals the run's. A field the saved run lacks is
  set as the schema says (`schema.completed`): an added field to the value
  it ran with, an execution-only one to its default; the digest is the same.
  """
  path = Path(workdir) / "config.json"
  saved = _read_config(path)
  if not isinstance(saved, dict) or not is_ours(Path(workdir)):
    raise DataError(str(path), "is missing or not a jax-al run's config",
                    "pass the folder of a run made by run.py (it holds config.json)")

  def tuples(v):
    if isinstance(v, list):
      return tuple(tuples(x) for x in v)
    return {k: tuples(x) for k, x in v.items()} if isinstance(v, dict) else v

  saved = schema.completed({k: v for k, v in saved.items() if k not in _NOT_CONFIG})
  return ml_collections.ConfigDict(tuples(saved))


def is_ours(workdir: Path) -> bool:
  """True when `workdir/config.json` was written by this tool."""
  saved = _read_config(Path(workdir) / "config.json")
  if not isinstance(saved, dict):
    return False
  m = saved.get(MARKER_KEY)
  if isinstance(m, dict):
    return m.get("tool") == TOOL and isinstance(m.get("format"), int)
  return _SCHEMA <= set(saved)


def _trial_entries(folder: Path, ours: re.Pattern) -> list[Path]:
  """The entries named `ours` in `folder`'s trial<N> folders (a trial<N> that
  is a link or a file counts whole: the run's to judge, refused where it is read)."""
  out = []
  for t in sorted(folder.iterdir()):
    if not _TRIAL_DIR.fullmatch(t.name):
      continue
    if t.is_symlink() or not t.is_dir():
      out.append(t)
    else:
      out += sorted(p for p in t.iterdir() if ours.fullmatch(p.name))
  return out


def owned(workdir: Path) -> list[Path]:
  """The paths in `workdir` a run of this tool writes that exist now: never a
  folder that could hold someone else's files too."""
  workdir = Path(workdir)
  out = [workdir / n for n in RESULTS if (workdir / n).exists() or (workdir / n).is_symlink()]
  ck = workdir / CHECKPOINTS
  if ck.is_dir() and not ck.is_symlink():
    out += _trial_entries(ck, _STEP)
  elif ck.is_symlink() or ck.exists():
    out.append(ck)  # a link or a file named checkpoints: ours to judge, refused below
  ev = workdir / EVENTS
  if ev.is_dir() and not ev.is_symlink():
    out += _trial_entries(ev, _EVENT_FILE)
  return out


def _prune(workdir: Path) -> None:
  """Removes the trial, checkpoints and tensorboard folders left empty."""
  for top in (CHECKPOINTS, EVENTS):
    d = Path(workdir) / top
    if not d.is_dir() or d.is_symlink():
      continue
    for t in d.iterdir():
      if _TRIAL_DIR.fullmatch(t.name) and t.is_dir() and not t.is_symlink() \
          and not any(t.iterdir()):
        t.rmdir()
    if not any(d.iterdir()):
      d.rmdir()


def foreign_named(workdir: Path) -> list[str]:
  """Names in `workdir` that look like a run's outputs (for the refusal)."""
  workdir = Path(workdir)
  names = [n for n in RESULTS if (workdir / n).exists()]
  names += [n + "/" for n in (CHECKPOINTS, EVENTS) if (workdir / n).exists()]
  return names


def damaged_config(workdir: Path) -> str | None:
  """What is wrong with the config.json of what looks like a jax-al run, or None.

  A run's config.json that is truncated (not a JSON object) or gone while its
  checkpoint steps or metrics records remain: the folder is then refused like
  anyone's, but the message says what happened.
  """
  workdir = Path(workdir)
  path = workdir / "config.json"
  if path.is_file():
    return None if isinstance(_read_config(path), dict) else (
        "is damaged: it cannot be read as a JSON object (truncated, or overwritten)")
  ck = workdir / CHECKPOINTS
  steps = ck.is_dir() and any(_TRIAL_DIR.fullmatch(t.name) and t.is_dir() and
                              any(s.name.isdigit() for s in t.iterdir()) for t in ck.iterdir())
  if steps or (workdir / "metrics.jsonl").is_file() and '"kind": "cycle"' in (
      workdir / "metrics.jsonl").read_text(errors="replace")[:100_000]:
    return "is missing, though the folder holds a run's checkpoints or metrics"
  return None


def refuse_foreign(workdir: Path) -> None:
  """Raises unless every run-named file in `workdir` belongs to a jax-al run."""
  names = foreign_named(workdir)
  if names and not is_ours(workdir):
    damaged = damaged_config(workdir)
    if damaged:
      raise DataError(str(Path(workdir) / "config.json"), f"this run's config {damaged}",
                      "restore config.json from a copy to resume the run (rerun the same "
                      "command then), or choose another --workdir; jax-al never replaces "
                      "or deletes a run whose config it cannot read")
    raise DataError(
        str(workdir), f"holds {', '.join(names)} but no jax-al run (no config.json with the jax-al "
        "marker), so these files are someone else's",
        "choose another --workdir; jax-al never resumes, replaces or deletes files it did "
        "not write")


# ------------------------------------------------------------ comparison ------


def _flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = json.loads(json.dumps(v, default=str))
  return out


def _strip(d: dict) -> dict:
  """A copy of `d` without the marker, the data record and the execution-only fields.

  `compare.parallel` is kept as "none" rather than dropped, so that digests
  of runs saved before the other fields joined EXECUTION_ONLY stay the same;
  for the same reason a section left empty (`log`, whose only field is
  execution-only) is dropped too.
  """
  d = copy.deepcopy({k: v for k, v in d.items() if k not in _NOT_CONFIG})
  for field in EXECUTION_ONLY:
    *parents, last = field.split(".")
    nodes = [d]
    for p in parents:
      nodes.append(nodes[-1].get(p) if isinstance(nodes[-1], dict) else None)
    node = nodes[-1]
    if isinstance(node, dict) and last in node:
      if field == "compare.parallel":
        node[last] = "none"
      else:
        node.pop(last)
        for parent, key, child in zip(nodes[-2::-1], parents[::-1], nodes[:0:-1]):
          if child != {}:
            break
          parent.pop(key)
  return d


def differences(saved: dict, now: dict, limit: int = 3) -> str:
  a, b = _flat(_strip(with_added_fields(saved))), _flat(_strip(with_added_fields(now)))
  keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
  parts = [f"{k}: {a.get(k)!r} there, {b.get(k)!r} now" for k in keys[:limit]]
  return "; ".join(parts) + (" ..." if len(keys) > limit else "")


def comparable(d: dict) -> str:
  """What two configs must share for one run to continue the other: every
  field but the execution-only ones, a field added since taken at its
  `ADDED_FIELDS` value when absent."""
  return json.dumps(_strip(with_added_fields(d)), sort_keys=True, default=str)


def _digest(d: dict) -> str:
  return hashlib.sha256(json.dumps(_strip(d), sort_keys=True, default=str).encode()
                        ).hexdigest()[:16]


def config_hash(config) -> str:
  """A digest of every config field except the execution-only ones (what a
  checkpoint's meta records)."""
  return _digest(config.to_dict())


def saved_hash(workdir: Path) -> str | None:
  """The digest of the run's config.json as saved, the one the checkpoints of
  the version that wrote it record (None without a readable config.json)."""
  saved = _read_config(Path(workdir) / "config.json")
  return _digest(saved) if isinstance(saved, dict) else None


def existing_run(workdir: Path, config, overwrite: bool) -> bool:
  """Decides what to do with a previous run in `workdir`; changes nothing.

  Returns True when the run resumes it. Raises when it must not be touched:
  files that are not a jax-al run's (with or without --overwrite),
  resume=false without --overwrite, or a run with a different config.
  """
  workdir = Path(workdir)
  refuse_foreign(workdir)
  existing = [p.name for p in owned(workdir)]
  if not existing or overwrite:
    return False
  if not config.resume:
    raise ConfigError("resume", False,
                      f"{workdir} already holds a run ({', '.join(existing)}); pass --overwrite "
                      "to replace it, --config.resume=true to continue it, or another --workdir")
  saved_path = workdir / "config.json"
  if saved_path.exists():
    saved = _read_config(saved_path)
    if not isinstance(saved, dict):
      raise DataError(str(saved_path), "cannot be read as a JSON object",
                      "pass --overwrite to replace the run, or choose another --workdir")
    if comparable(saved) != comparable(config.to_dict()):
      raise ConfigError("--workdir", str(workdir),
                        f"it holds a run with a different config "
                        f"({differences(saved, config.to_dict())}); pass --overwrite "
                        "to replace it or choose another --workdir")
  return True


# ------------------------------------------------------------ replacing ------


def _move(src: Path, dst: Path) -> None:
  dst.parent.mkdir(parents=True, exist_ok=True)
  os.replace(src, dst)


def _delete(p: Path) -> None:
  if p.is_dir() and not p.is_symlink():
    shutil.rmtree(p)
  else:
    p.unlink(missing_ok=True)


def remove_outputs(workdir: Path) -> None:
  """Deletes this tool's outputs in `workdir` (and nothing else)."""
  workdir = Path(workdir)
  for p in owned(workdir):
    _delete(p)
  _prune(workdir)


class Replacement:
  """The previous run of a workdir, set aside while a new one proves itself.

  `set_aside()` moves the old outputs into `.jax_al_replaced/`; `commit()`
  deletes them (the new run has checkpointed); `restore()` removes the new
  run's outputs and moves the old ones back.
  """

  def __init__(self, workdir: Path):
    self.workdir = Path(workdir)
    self.aside = self.workdir / ASIDE
    self.active = False
    self.committed = False  # the old outputs were deleted: the new run replaced them

  def set_aside(self) -> None:
    if self.aside.exists():
      raise DataError(str(self.aside), "already exists",
                      "a previous --overwrite was interrupted; rerun once without changes "
                      "so it is restored, or move the folder away")
    items = owned(self.workdir)
    if not items:
      return
    self.aside.mkdir()
    for p in items:
      _move(p, self.aside / p.relative_to(self.workdir))
    _prune(self.workdir)
    self.active = True

  def commit(self) -> None:
    """The new run has checkpointed: the old outputs go for good."""
    if self.active:
      shutil.rmtree(self.aside)
      self.active = False
      self.committed = True

  def restore(self) -> None:
    """The new run failed: its outputs go, the old ones come back."""
    if not self.active:
      return
    restore_aside(self.workdir)
    self.active = False


def restore_aside(workdir: Path) -> str | None:
  """Settles a `.jax_al_replaced/` folder left by an interrupted --overwrite.

  If the new run in `workdir` has a finished checkpoint it had succeeded, so
  the old outputs are deleted; otherwise the new run's outputs are removed
  and the old ones moved back. Returns what was done, or None.
  """
  workdir = Path(workdir)
  aside = workdir / ASIDE
  if not aside.is_dir() or aside.is_symlink():
    return None
  ck = workdir / CHECKPOINTS
  checkpointed = ck.is_dir() and any(
      _TRIAL_DIR.fullmatch(t.name) and any(s.name.isdigit() for s in t.iterdir())
      for t in ck.iterdir() if t.is_dir())
  if checkpointed:
    shutil.rmtree(aside)
    return "deleted the previous run an interrupted --overwrite had set aside"
  remove_outputs(workdir)
  _merge_back(aside, workdir)
  shutil.rmtree(aside)
  return "restored the previous run that an interrupted --overwrite had set aside"


def _merge_back(src: Path, dst: Path) -> None:
  """Moves everything under `src` to the same place under `dst`, folder into
  folder: a user's file that stayed in `dst/checkpoints/trial0/` is kept."""
  for p in src.iterdir():
    target = dst / p.name
    if p.is_dir() and not p.is_symlink() and target.is_dir() and not target.is_symlink():
      _merge_back(p, target)
    elif not (target.exists() or target.is_symlink()):
      _move(p, target)
    else:  # the new run's outputs were removed: only a file someone put there since
      raise DataError(str(target), f"is in the way of the previous run's {p.name}, which "
                      f"{ASIDE}/ holds", f"move {target} away and rerun the same command")
