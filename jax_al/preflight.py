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
import os
from pathlib import Path
from typing import Any

from jax_al import checkpoint, compiles, cycle, files, memory, sharding, strategies, vmap_trials
from jax_al import config as config_lib
from jax_al import events as events_lib
from jax_al import workdir as workdir_lib
from jax_al.data import load_dataset
from jax_al.errors import ConfigError


@dataclasses.dataclass(frozen=True, eq=False)
class Checked:
  """What `check_run` found; nothing in the workdir was written but the lock.

  Attributes:
    resuming: the workdir holds this run, to be continued.
    ds: the loaded dataset.
    strategy: the built selection strategy.
    done: {trial: last checkpointed cycle}.
    mesh: the device mesh, or None on one device in one process.
    lock: the held workdir lock.
    cache_dir: the XLA compilation cache's folder, turned on once every
      check passed (None: off).
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
  mesh: Any
  lock: workdir_lib.Lock
  cache_dir: str | None
  settled: str = ""
  events: Any = None
  warnings: tuple = ()


def check_run(config, workdir: Path, overwrite: bool) -> Checked:
  """Every check before a run, in order; writes and deletes nothing of a run.

  First what needs neither the workdir nor the data: the config (the
  schema's fields and rules), the compile cache's folder and the devices
  (`check_devices`, which starts multi-host JAX when asked: the first JAX
  call). The workdir lock is taken next, before the data loads, so a second
  process is refused at once. A workdir that did not exist is created for
  the write probe and the lock, and removed again if a check fails.
  """
  config_lib.check_config(config)
  check_compile_cache(config.compile_cache_dir)
  mesh = check_devices(config)
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
    if not vmap_trials.stacks_trials(config.al.strategy) and (mesh is not None or (
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
    done = {}
    if resuming:
      for trial in range(config.num_trials):
        step = checkpoint.latest(workdir, trial)
        if step is not None:
          meta = checkpoint.restore_meta(workdir, trial, step)
          checkpoint.check_meta(meta, config, trial, step, n_train, workdir)
          done[trial] = step
    # Every check passed: the cache goes on before the run's first compilation.
    cache_dir = compiles.use_persistent_cache(config.compile_cache_dir)
  except BaseException:
    if lock is not None:
      lock.release(remove=True)
    workdir_lib.remove_empty(created)  # made just now and still empty: leave no trace
    raise
  return Checked(resuming, ds, strategy, done, mesh, lock, cache_dir, settled, events,
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


def check_compile_cache(setting) -> None:
  """Refuses a `compile_cache_dir` whose folder cannot be used; creates nothing.

  The folder must be a writable folder, or not exist yet below a writable
  one. A cache set before in this process (the first setting wins) or
  "off" needs nothing.
  """
  import jax

  if not isinstance(setting, str):
    raise ConfigError("compile_cache_dir", setting,
                      'use a folder, "" for ~/.cache/jax_al/xla, or "off"')
  path = compiles.requested_cache_dir(setting)
  if path is None or jax.config.jax_compilation_cache_dir:
    return
  p = Path(path)
  existing = next(q for q in (p, *p.parents) if q.exists() or q == q.parent)
  if not existing.is_dir():
    raise ConfigError("compile_cache_dir", setting,
                      f"cannot create {path} ({existing} is a file, not a folder); choose a "
                      'writable folder or "off"')
  if not os.access(existing, os.W_OK | os.X_OK):
    what = f"{path} is not writable" if existing == p else (
        f"cannot create {path} ({existing} is not writable)")
    raise ConfigError("compile_cache_dir", setting, f'{what}; choose a writable folder or "off"')


def check_devices(config):
  """Checks the devices `config.mesh` asks for and returns the run's mesh.

  Starts multi-host JAX first when asked (`mesh.distributed` or the
  JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID variables):
  `jax.distributed.initialize()` must precede every other JAX call. Returns
  None for one device in one process (the unsharded path), else a 1-D mesh
  ("data",). Refuses more devices than are visible, a partial mesh over
  several processes, a training batch that does not split over the devices,
  and vmapped trials on more than one device.
  """
  import jax

  for name in (sharding.ENV_NUM_PROCESSES, sharding.ENV_PROCESS_ID):
    try:
      sharding.env_int(name, 0)  # the parse initialize_distributed uses
    except ValueError:
      raise ConfigError("mesh.distributed", f"${name}={os.environ[name]}",
                        f"{name} must be an integer; fix or unset it") from None
  try:
    sharding.initialize_distributed(config)
  except RuntimeError as e:
    raise ConfigError(
        "mesh.distributed", True,
        f"jax.distributed.initialize() failed ({e}). It must run before any JAX "
        "computation, and needs "
        f"{sharding.ENV_COORDINATOR}=host:port, {sharding.ENV_NUM_PROCESSES} and "
        f"{sharding.ENV_PROCESS_ID} set on every host unless SLURM/Open MPI provide "
        "them") from None
  n, total = config.mesh.data, jax.device_count()
  if n > total:
    plat = jax.devices()[0].platform
    hint = (" On CPU, simulate devices with XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{n} set before Python starts." if plat == "cpu" else "")
    raise ConfigError("mesh.data", n,
                      f"only {total} {plat} device(s) are visible; use at most {total}, "
                      f"or -1 for all.{hint}")
  n = total if n == -1 else n
  if jax.process_count() > 1 and n != total:
    raise ConfigError("mesh.data", n,
                      f"with {jax.process_count()} processes the mesh must span all "
                      f"{total} devices; use -1")
  if n == 1 and jax.process_count() == 1:
    return None
  b = config.train.batch_size
  if b % n:
    lo, hi = (b // n) * n, -(-b // n) * n
    fix = f"use a multiple of {n}, e.g. {hi}" + (f" or {lo}" if lo else "")
    raise ConfigError("train.batch_size", b,
                      f"the batch is split over {n} devices (mesh.data); {fix}")
  if config.compare.parallel == "vmap" and config.num_trials > 1:
    raise ConfigError("compare.parallel", "vmap",
                      f"vmapped trials run on one device, but mesh.data = {config.mesh.data} "
                      f"spreads each batch over {n} devices; use "
                      "--config.compare.parallel=none with the mesh, or --config.mesh.data=1 "
                      "to train the trials vmapped on one device")
  return sharding.make_mesh(n)
