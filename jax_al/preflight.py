"""Every check a run makes before it writes anything, in one pass.

`check_run` takes the workdir lock, then checks the config, the workdir
(an existing run to resume, or someone else's files), the dataset (on a
resume: the same data the run started on, by its recorded fingerprint), the
sizes, the strategy, the model against the data, the memory the run will
need and every saved checkpoint. Nothing of a run is written or deleted
before all of them pass, so bad input never costs a previous run's files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from jax_al import checkpoint, cycle, files, memory, rng, strategies, vmap_trials
from jax_al import config as config_lib
from jax_al import events as events_lib
from jax_al import workdir as workdir_lib
from jax_al.data import load_dataset
from jax_al.errors import ConfigError
from jax_al.train import init_model


@dataclasses.dataclass(frozen=True, eq=False)
class Checked:
  """What `check_run` found; nothing in the workdir was written but the lock.

  Attributes:
    resuming: the workdir holds this run, to be continued.
    ds: the loaded dataset.
    strategy: the built selection strategy.
    done: {trial: last checkpointed cycle}.
    graphdef: the model's graph definition.
    lock: the held workdir lock.
    settled: what was done with outputs an interrupted --overwrite had set
      aside, or "".
    events: the TensorBoard writer (`log.tensorboard`), or None.
    warnings: lines to show before the first cycle (settings that make a
      selection far slower than at the defaults, `memory.slow_settings`).
  """

  resuming: bool
  ds: Any
  strategy: Any
  done: dict
  graphdef: Any
  lock: workdir_lib.Lock
  settled: str = ""
  events: Any = None
  warnings: tuple = ()


def check_run(config, workdir: Path, overwrite: bool, mesh=None) -> Checked:
  """Every check before a run, in order; writes and deletes nothing of a run.

  The workdir lock is taken first, before the data loads, so a second
  process is refused at once. A workdir that did not exist is created for
  the write probe and the lock, and removed again if a check fails.
  `mesh` is the run's device mesh (vmapped trials need one device).
  """
  config_lib.check_config(config)
  vmap_trials.check(config, mesh)
  created = workdir_lib.prepare(workdir)
  lock = None
  try:
    lock = workdir_lib.Lock(workdir)
    settled = workdir_lib.restore_aside(workdir) or ""
    resuming = workdir_lib.existing_run(workdir, config, overwrite)
    events = events_lib.from_config(config, workdir)  # writes nothing before its first record
    ds = load_dataset(config.data)
    if resuming:  # the recorded indices point into the data the run started on
      workdir_lib.check_data(workdir, ds.fingerprint)
    n_train = len(ds.train_labels)
    config_lib.check_sizes(config, n_train, ds.num_classes)
    strategy = strategies.get_strategy(config.al.strategy, config.al)
    n_cand = min(config.al.subset or n_train, n_train - config.al.initial)
    strategy.check(n_cand, config.al.budget, ds.num_classes, num_labeled=config.al.initial)
    if not vmap_trials.stacks_trials(config) and (mesh is not None or (
        config.compare.parallel == "vmap" and config.num_trials > 1)):
      raise ConfigError("al.strategy", config.al.strategy,
                        "an ensemble already trains its members as one vmapped program on "
                        "one device; use --config.compare.parallel=none and --config.mesh.data=1")
    image_shape = tuple(ds.train_images.shape[1:])
    # Traced abstractly (checks the model fields against the data's shape)
    # and held against the free memory before any weight is allocated.
    prof = memory.model_profile(config, ds.num_classes, image_shape)
    memory.check_run(config, n_train, len(ds.test_labels), ds.num_classes, image_shape, n_cand,
                     cycle.labeled_capacity(config, n_train), prof,
                     ds.train_images.dtype.itemsize, cycle.members(config, strategy))
    check_disk(config, workdir, prof, resuming)
    slow = memory.slow_settings(config, n_cand, cycle.labeled_capacity(config, n_train),
                                prof.feature_dim, ds.num_classes)
    graphdef, _, _ = init_model(config, ds.num_classes, image_shape,
                                rng.stream(config.seed, 0, "init"))
    done = {}
    if resuming:
      for trial in range(config.num_trials):
        step = checkpoint.latest(workdir, trial)
        if step is not None:
          meta = checkpoint.restore_meta(workdir, trial, step)
          checkpoint.check_meta(meta, config, trial, step, n_train, workdir)
          done[trial] = step
  except BaseException:
    if lock is not None:
      lock.release(remove=True)
    workdir_lib.remove_empty(created)  # made just now and still empty: leave no trace
    raise
  return Checked(resuming, ds, strategy, done, graphdef, lock, settled, events,
                 (slow,) if slow else ())


def check_disk(config, workdir: Path, prof: memory.ModelProfile, resuming: bool) -> None:
  """Refuses a run whose checkpoints cannot fit on the workdir's disk.

  A checkpoint holds the weights and batch statistics (`prof.param_bytes`)
  and as much optimizer state; two are kept per trial and a third is being
  written. A resumed run has its kept ones on disk already.
  """
  one = 2 * prof.param_bytes + 2**20  # + the meta JSON and orbax's files
  need = one if resuming else (2 * config.num_trials + 1) * one + 2**20  # + the results files
  free = files.free_bytes(workdir)
  if free is not None and free < need:
    raise files.no_space(Path(workdir), need, f"this run's checkpoints ({config.num_trials} "
                         f"trial(s), two kept of about {files._human(one)} each)",
                         started=False)
