"""TensorBoard event files for watching long runs (config `log.tensorboard`).

Off by default. When on, a run also writes, beside log.txt and metrics.jsonl
(which stay exactly as they are), event files under
`<workdir>/tensorboard/trial<N>/`, one folder per trial, for
`tensorboard --logdir <workdir>/tensorboard`:

* per evaluation (`eval`, a metrics.jsonl `kind=eval` record): `epoch/<key>`
  for every number in it but the epoch (train_loss, test_acc, test_loss,
  best_acc, lr, seconds), at step = the global epoch count across cycles,
  (cycle - 1) x train.epochs + epoch, so the cycles follow one another on
  one axis;
* per cycle (`cycle`, a `kind=cycle` record): `cycle/<key>` for every number
  in it but trial, cycle and labeled (test_acc, train_s, select_s, total_s,
  features_s, strategy_s, compile_s, compiles, ..., and the strategy's score
  statistics, e.g. u_min / u_median / mmd_max / sigma), at step = the labeled
  count, the x axis of a learning curve.

Both steps come from the records alone, so a resumed run continues the same
curves. Each record is flushed at once: a long run shows its progress live.

Writer: tensorboardX's `SummaryWriter`. It writes the TensorBoard event
format in pure Python on top of protobuf, and needs only numpy, packaging
and protobuf, all of which the core install already has (protobuf through
orbax-checkpoint), so it is a light core dependency. The alternatives each
bring a framework: `clu.metric_writers` (the flax examples' writer) writes
events through `tf.summary`, i.e. TensorFlow (or through PyTorch), and
TensorBoard's own writer comes with the TensorBoard server and its
dependencies. tensorboardX is imported only when `log.tensorboard` is on (it
imports PyTorch if that happens to be installed, to accept its tensors).
"""

from __future__ import annotations

import os
import uuid
from numbers import Real
from pathlib import Path

from jax_al.errors import ConfigError

FIELD = "log.tensorboard"
FOLDER = "tensorboard"
# Keys of the records that say where a value belongs, not what was measured.
_EVAL_IDS = ("kind", "trial", "cycle", "epoch")
_CYCLE_IDS = ("kind", "trial", "cycle", "labeled")


def _numbers(record: dict, skip) -> dict:
  """The real-number fields of `record` (bools excluded) as floats."""
  return {k: float(v) for k, v in record.items()
          if k not in skip and isinstance(v, Real) and not isinstance(v, bool)}


class EventWriter:
  """TensorBoard scalars of one run, an event file folder per trial.

  Args:
    logdir: the folder of the per-trial folders (`<workdir>/tensorboard`).
    epochs_per_cycle: `train.epochs`, for the global epoch step.
  """

  def __init__(self, logdir, epochs_per_cycle: int):
    from tensorboardX import SummaryWriter  # imported here: only when switched on
    self._new = SummaryWriter
    self.logdir = Path(logdir)
    self.epochs_per_cycle = int(epochs_per_cycle)
    self._writers: dict = {}

  def _writer(self, trial: int):
    w = self._writers.get(int(trial))
    if w is None:
      # tensorboardX names a file by the second and the host and opens it 'wb':
      # a resume or an --overwrite rerun in the same second would truncate the
      # earlier file. A random suffix keeps every writer's file its own.
      # flush_secs: a safety net only; every record below is flushed at once.
      w = self._new(logdir=str(self.logdir / f"trial{int(trial)}"), flush_secs=30,
                    filename_suffix=f".{os.getpid()}.{uuid.uuid4().hex[:8]}")
      self._writers[int(trial)] = w
    return w

  def global_epoch(self, cycle: int, epoch: int) -> int:
    """The step of an evaluation: epochs trained in this trial up to it."""
    return (int(cycle) - 1) * self.epochs_per_cycle + int(epoch)

  def eval(self, trial: int, cycle: int, record: dict) -> None:
    """One per-epoch evaluation record (epoch, train_loss, test_acc, ...)."""
    w = self._writer(trial)
    step = self.global_epoch(cycle, record["epoch"])
    for k, v in _numbers(record, _EVAL_IDS).items():
      w.add_scalar(f"epoch/{k}", v, step)
    w.flush()

  def cycle(self, record: dict) -> None:
    """One cycle record (trial, cycle, labeled, test_acc, train_s, select_s, stats)."""
    w = self._writer(record["trial"])
    step = int(record["labeled"])
    for k, v in _numbers(record, _CYCLE_IDS).items():
      w.add_scalar(f"cycle/{k}", v, step)
    w.flush()

  def close(self) -> None:
    for w in self._writers.values():
      w.close()
    self._writers.clear()

  def __enter__(self):
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def enabled(config) -> bool:
  """`log.tensorboard` (a saved run that predates it reads its default, off)."""
  return bool(config.log.tensorboard)


def from_config(config, workdir) -> EventWriter | None:
  """The run's EventWriter, or None when `log.tensorboard` is off, and on
  every process but the first of a multi-host run (only it writes results).

  Raises ConfigError when it is on but tensorboardX cannot be imported.
  """
  if not enabled(config):
    return None
  import jax
  if jax.process_index() != 0:
    return None
  import importlib
  try:
    importlib.import_module("tensorboardX")
  except ImportError:
    raise ConfigError(FIELD, True, "tensorboardX is not installed: pip install tensorboardX "
                      "(a dependency of jax-al), or set log.tensorboard=False") from None
  check_writable(Path(workdir) / FOLDER, config.num_trials)
  return EventWriter(Path(workdir) / FOLDER, config.train.epochs)


def _probe(folder: Path) -> None:
  """Creates and removes a file in `folder` (raises OSError where it cannot)."""
  import tempfile
  fd, name = tempfile.mkstemp(dir=folder, prefix=".write_test")
  os.close(fd)
  os.unlink(name)


def check_writable(logdir: Path, trials: int) -> None:
  """Raises DataError unless the event folders of `trials` trials can be written.

  Checked before a run starts (a writer opens its file only at the first
  record, inside cycle 1). Writes nothing that stays: an existing folder gets
  a probe file, created and removed; a missing one must sit in a folder
  that can be written.
  """
  from jax_al.errors import DataError

  fix = ("remove or fix that path (jax-al writes event files into a folder there), or set "
         "log.tensorboard=False")
  for path in [logdir] + [logdir / f"trial{t}" for t in range(int(trials))]:
    if path.is_symlink() and not path.exists():
      raise DataError(str(path), f"is a link to {os.readlink(path)}, which does not exist", fix)
    if path.exists() and not path.is_dir():
      raise DataError(str(path), "is a file, not a folder for TensorBoard event files", fix)
    if not path.exists():
      break  # created at the first record: its parent was probed already
    try:
      _probe(path)
    except OSError as e:
      raise DataError(str(path), f"cannot be written ({e.strerror or e})", fix) from None
