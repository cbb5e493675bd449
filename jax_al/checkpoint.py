"""Per-cycle checkpoints with orbax, one manager per trial.

A checkpoint holds the model (params + batch statistics) and optimizer state
after a cycle's training, and a JSON `meta` with the labeled indices for the
next cycle, the counters, the random-stream keys and the metrics and
selections so far. Every key is derived from (seed, trial, name) and folded
with the cycle, so the stored keys serve to check, on resume, that the run
would draw the same numbers again.

orbax writes each step into a temporary folder and renames it when complete,
so an interrupted write never replaces the last good checkpoint; leftover
temporary folders are ignored and cleaned up by the next save.

Checkpoints are read only from the run's own workdir: the checkpoint folder
and everything inside a step must resolve to paths under it (no symlink may
lead elsewhere), and state is restored only into the known shapes.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from flax import nnx
import jax
import orbax.checkpoint as ocp

import numpy as np

from jax_al import files, rng
from jax_al import workdir as workdir_lib
from jax_al.errors import DataError

_TMP = ".orbax-checkpoint-tmp"
_FIX = ("checkpoints are read only from inside the run's own workdir; remove the "
        "link, or pass --overwrite to start the run afresh")


def _inside(path: Path, base: Path) -> bool:
  return path == base or base in path.parents


def root(workdir: Path, trial: int) -> Path:
  """The resolved checkpoint folder of `trial`, guaranteed to be inside `workdir`."""
  if isinstance(trial, bool) or not isinstance(trial, int) or trial < 0:
    raise ValueError(f"trial must be an int >= 0, got {trial!r}")
  base = Path(workdir).resolve()
  path = (base / "checkpoints" / f"trial{trial}").resolve()
  if not _inside(path, base):
    raise DataError(str(base / "checkpoints" / f"trial{trial}"),
                    f"resolves to {path}, outside the workdir {base}", _FIX)
  return path


def _check_step_dir(step_dir: Path, base: Path) -> None:
  """Raises DataError if the step folder or anything in it leads outside `base`."""
  real = step_dir.resolve()
  if not _inside(real, base):
    raise DataError(str(step_dir), f"resolves to {real}, outside {base}", _FIX)
  for dirpath, dirnames, filenames in os.walk(step_dir, followlinks=False):
    for name in dirnames + filenames:
      p = Path(dirpath) / name
      if p.is_symlink():
        target = p.resolve()
        if not _inside(target, base):
          raise DataError(str(p), f"is a symbolic link to {target}, outside {base}", _FIX)


def _short(e: BaseException, limit: int = 200) -> str:
  """The gist of an orbax/TensorStore error: its first line, without the
  kilobytes of TensorStore spec it appends."""
  text = str(e).split("See full TensorStore details")[0].strip()
  text = (text.splitlines() or [""])[0].strip().rstrip(".")
  if len(text) > limit:
    text = text[:limit - 3] + "..."
  return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _StderrHeld:
  """Holds what is written to file descriptor 2 while orbax restores.

  When a damaged checkpoint fails to read, TensorStore reads still in flight
  call back into orbax's closed event loop from other threads, and each
  prints an "Event loop is closed" traceback. On failure those lines are
  dropped after a short grace period; on success what was held is written
  out unchanged.
  """

  GRACE_S = 1.0

  def __enter__(self):
    import tempfile
    sys.stderr.flush()
    self.held = tempfile.TemporaryFile()
    self.saved = os.dup(2)
    os.dup2(self.held.fileno(), 2)
    return self

  def __exit__(self, exc_type, exc, tb):
    import time
    if exc_type is not None:
      time.sleep(self.GRACE_S)  # let the stray callbacks print into the held file
    sys.stderr.flush()
    os.dup2(self.saved, 2)
    os.close(self.saved)
    if exc_type is None:
      self.held.seek(0)
      data = self.held.read()
      if data:
        sys.stderr.write(data.decode(errors="replace"))
    self.held.close()
    return False


def _manager(path: Path) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      path, item_names=("state", "meta"),
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def _remove_partial_writes(path: Path) -> None:
  """Deletes the temporary folders of writes that were killed before finishing."""
  if path.is_dir():
    for p in path.iterdir():
      if _TMP in p.name and not p.is_symlink() and p.is_dir():
        shutil.rmtree(p, ignore_errors=True)


def _pure(tree):
  return jax.tree.map(lambda x: x, nnx.to_pure_dict(tree) if isinstance(tree, nnx.State) else tree)


def save(workdir: Path, trial: int, cycle: int, state, meta: dict) -> None:
  """Saves `state` (a TrainState) and `meta` as step `cycle`; waits until written."""
  path = root(workdir, trial)
  _remove_partial_writes(path)
  mngr = _manager(path)
  tree = {"params": _pure(state.params), "batch_stats": _pure(state.batch_stats),
          "opt_state": state.opt_state}
  need = nbytes(tree, meta)
  free = files.free_bytes(path)
  # Checked first: orbax hits a full disk in its writer threads, which print
  # pages of tracebacks before the error arrives here.
  if free is not None and free < need:
    mngr.close()
    raise files.no_space(path, need, f"the checkpoint of trial {trial + 1}, cycle {cycle}")
  try:
    with _StderrHeld():
      mngr.save(cycle, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                               meta=ocp.args.JsonSave(meta)))
      mngr.wait_until_finished()
  except Exception as e:  # pylint: disable=broad-except
    try:
      mngr.close()
    except Exception:  # pylint: disable=broad-except  # the write's own error wins
      pass
    _remove_partial_writes(path)  # gives back the space of the half-written step
    if files.is_full(e):
      raise files.no_space(path, need, f"the checkpoint of trial {trial + 1}, "
                           f"cycle {cycle}") from None
    raise
  mngr.close()


def nbytes(tree, meta: dict) -> int:
  """About the bytes one checkpoint takes on disk: the arrays, the meta JSON and
  orbax's metadata (a margin of 10 % + 64 kB)."""
  arrays = sum(int(getattr(x, "nbytes", 0)) for x in jax.tree.leaves(tree))
  text = len(files.dumps(meta))
  return int(1.1 * (arrays + text)) + 65536


def latest(workdir: Path, trial: int) -> int | None:
  """The last completed cycle checkpointed for `trial`, or None."""
  path = root(workdir, trial)
  if not path.is_dir():
    return None
  mngr = _manager(path)
  try:
    return mngr.latest_step()  # finalized steps only: never a half-written one
  finally:
    mngr.close()


def steps(workdir: Path, trial: int) -> list[int]:
  """The completed cycles checkpointed for `trial` (the last two are kept), ascending."""
  path = root(workdir, trial)
  if not path.is_dir():
    return []
  mngr = _manager(path)
  try:
    return sorted(mngr.all_steps())
  finally:
    mngr.close()


def _step_dir(workdir: Path, trial: int, cycle: int) -> Path:
  base = root(workdir, trial)
  step_dir = base / str(cycle)
  _check_step_dir(step_dir, Path(workdir).resolve())
  return step_dir


def restore_meta(workdir: Path, trial: int, cycle: int) -> dict:
  """The JSON meta of step `cycle` (cheap: no arrays are read)."""
  step_dir = _step_dir(workdir, trial, cycle)
  mngr = _manager(step_dir.parent)
  try:
    with _StderrHeld():
      meta = mngr.restore(cycle, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
  except Exception as e:  # orbax raises many kinds; all mean "unreadable"
    raise DataError(str(step_dir / "meta"), f"cannot be read ({_short(e)})",
                    f"delete the folder {step_dir} to resume from the cycle before, or "
                    "pass --overwrite to start afresh") from None
  finally:
    mngr.close()
  if not isinstance(meta, dict):
    raise DataError(str(step_dir / "meta"), f"holds a {type(meta).__name__}, not a dict",
                    "pass --overwrite to start afresh")
  return meta


def restore(workdir: Path, trial: int, cycle: int, like_state):
  """Returns (state, meta) of step `cycle`; `like_state` gives the structure."""
  step_dir = _step_dir(workdir, trial, cycle)
  like = {"params": _pure(like_state.params), "batch_stats": _pure(like_state.batch_stats),
          "opt_state": like_state.opt_state}
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  mngr = _manager(step_dir.parent)
  try:
    with _StderrHeld():
      out = mngr.restore(cycle, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
  except Exception as e:
    raise DataError(str(step_dir), f"cannot be restored ({_short(e)})",
                    f"delete the folder {step_dir} to resume from the cycle before, or "
                    "pass --overwrite to start afresh") from None
  finally:
    mngr.close()
  tree = out.state
  shapes = jax.tree.map(lambda x: (x.shape, x.dtype), tree)
  if shapes != jax.tree.map(lambda x: (x.shape, x.dtype), abstract):
    raise DataError(str(step_dir), "holds arrays of other shapes than this run's model",
                    "pass --overwrite to start afresh, or use the config it was written with")
  params, bs = like_state.params, like_state.batch_stats
  if isinstance(params, nnx.State):
    params = nnx.State(params)
    nnx.replace_by_pure_dict(params, tree["params"])
    bs = nnx.State(bs)
    nnx.replace_by_pure_dict(bs, tree["batch_stats"])
  else:
    params, bs = tree["params"], tree["batch_stats"]
  return type(like_state)(params, bs, tree["opt_state"]), out.meta


def rng_record(seed: int, trial: int) -> dict:
  """The keys of every named random stream of `trial`, as stored in checkpoints."""
  return {name: np.asarray(jax.random.key_data(rng.stream(seed, trial, name))).tolist()
          for name in rng.STREAMS}


def check_meta(meta: dict, config, trial: int, step: int, n_train: int, workdir: Path,
               fix: str = "pass --overwrite to start the run afresh, or choose another "
                          "--workdir") -> None:
  """Raises DataError unless a checkpoint's meta is one this run could have written.

  `fix` is the refusal's advice (resume and replay differ).
  """
  where = str(root(workdir, trial) / str(step))

  def bad(problem):
    raise DataError(where, problem, fix)

  if not isinstance(meta, dict):
    bad("its meta is not a JSON object")
  for key, kind in (("trial", int), ("cycle", int), ("labeled", list), ("metrics", list),
                    ("selected", list)):
    if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
      bad(f"its meta lacks {key!r} (or it is not a {kind.__name__})")
  if meta["trial"] != trial or meta["cycle"] != step:
    bad(f"it claims trial {meta['trial']} cycle {meta['cycle']}, but is stored as trial "
        f"{trial} cycle {step}")
  if not 1 <= step <= config.al.cycles:
    bad(f"cycle {step} is outside 1..al.cycles = {config.al.cycles}")
  # The run's config.json was compared with `config` already; a checkpoint of
  # the version that wrote it records that file's digest (fields added since absent).
  if "config_hash" in meta and meta["config_hash"] not in (
      workdir_lib.config_hash(config), workdir_lib.saved_hash(workdir)):
    bad("it was written by a run with a different config")
  if "rng" in meta and meta["rng"] != rng_record(config.seed, trial):
    bad("its random-stream keys differ from this run's (another seed, or another jax "
        "PRNG implementation); resuming would not reproduce the run")
  labeled = meta["labeled"]
  if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_train
             for i in labeled):
    bad(f"its labeled indices are not all integers in [0, {n_train})")
  if len(set(labeled)) != len(labeled) or len(labeled) < config.al.initial:
    bad(f"its {len(labeled)} labeled indices are not {config.al.initial}+ distinct ones")
  picks = []
  for r in meta["selected"]:
    if not isinstance(r, dict) or not isinstance(r.get("indices"), list):
      bad("its selection records are malformed")
    picks.extend(r["indices"])
  if picks != labeled:
    bad("its labeled indices do not match its recorded selections")
