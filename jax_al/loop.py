"""The active-learning loop: trials x cycles of train -> test -> score -> select.

`run(config, workdir)` is the library's entry point; `run.py` only parses
flags. Each cycle ends with a checkpoint, so rerunning the same command on
the same workdir continues after the last finished cycle and reproduces the
uninterrupted run exactly (every random key is derived by name from
(seed, trial, cycle)).

Every check (config, workdir, data, sizes, strategy, model, saved
checkpoints) runs before anything in the workdir is written or deleted, so
bad input never costs a previous run. Results files are replaced atomically
(see io.py); a diverged cycle stops the run with an error record in
metrics.jsonl and leaves the last good checkpoint as it was.

`compare.parallel = "vmap"` runs the trials in lockstep: at each cycle the
trials train as one vmapped program (`jax_al.parallel`), then test, select
and checkpoint one by one with their own random streams. The files are the
same as a sequential run's (records kept in trial order; a cycle record's
`train_s` is the shared training time), and either mode resumes the other's
checkpoints: `compare.parallel` is left out of the config comparison.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_al import checkpoint, compiles, io, memory, parallel, rng, sharding
from jax_al import config as config_lib
from jax_al import strategies
from jax_al import workdir as workdir_lib
from jax_al.data import load_dataset
from jax_al.errors import ConfigError, Interrupted, TrainingError, critical
from jax_al.train import StepConfig, Trainer, init_model

def _summary(config, records: list[dict], seconds: float) -> dict:
  cyc = [r for r in records if r["kind"] == "cycle"]
  trials = sorted({r["trial"] for r in cyc})
  acc = [[r["test_acc"] for r in cyc if r["trial"] == t] for t in trials]
  sizes = [r["labeled"] for r in cyc if r["trial"] == trials[0]] if trials else []
  full = [a for a in acc if len(a) == len(sizes)]
  arr = np.asarray(full, float) if full else np.zeros((0, len(sizes)))
  return {
      "strategy": config.al.strategy, "seed": config.seed, "labeled": sizes,
      "test_acc": acc, "mean": arr.mean(0).tolist() if len(arr) else [],
      # the sample std (ddof 1), as the report and its t-intervals use; 0 for one trial
      "std": (arr.std(0, ddof=1) if len(arr) > 1 else np.zeros(arr.shape[1:])).tolist()
             if len(arr) else [], "trials": len(acc),
      "seconds": seconds,
  }


class _EpochBar:
  """A tqdm bar over epochs when attached to a terminal, else nothing."""

  def __init__(self, total: int, desc: str):
    self.bar = None
    if io.is_terminal():
      from tqdm import tqdm
      self.bar = tqdm(total=total, desc=desc, leave=False)

  def __call__(self, epoch: int) -> None:
    if self.bar is not None:
      self.bar.update(1)

  def close(self):
    if self.bar is not None:
      self.bar.close()


@dataclasses.dataclass
class Progress:
  """Where a run is: the (trial, cycle) in progress and the cycles finished
  by this process (what an interrupt is recorded against, and whether the
  summary is rewritten)."""

  position: tuple[int, int] | None = None
  cycles_run: int = 0


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
  """Everything the trials of one run share, fixed for the run.

  Attributes:
    config: the run's ConfigDict.
    mesh: the device mesh, or None on one device.
    ds: the loaded Dataset (host arrays).
    trainer: the jitted Trainer.
    strategy: the selection strategy.
    images, labels, test_images, test_labels: the splits on the device.
    log: the text log (log.txt and stdout).
    metrics, selected: the metrics.jsonl and selected.jsonl logs.
    workdir: the run's folder.
    image_shape: (H, W, C).
    done: {trial: last checkpointed cycle} found when the run started.
    on_checkpoint: called after every checkpoint (a replaced run's old
      outputs can go after the first).
    progress: the mutable Progress.
  """

  config: Any
  mesh: Any
  ds: Any
  trainer: Trainer
  strategy: Any
  images: Any
  labels: Any
  test_images: Any
  test_labels: Any
  log: io.TextLog
  metrics: "_TrialOrderedLog"
  selected: "_TrialOrderedLog"
  workdir: Path
  image_shape: tuple
  done: dict
  on_checkpoint: Any
  progress: Progress


def run(config, workdir, *, overwrite: bool = False, quiet: bool = False) -> dict:
  """Runs `config.num_trials` trials of `config.al.cycles` cycles; returns the summary.

  Every check (config, workdir, data, sizes, memory, strategy, saved
  checkpoints) runs before anything in `workdir` is written or deleted, so
  bad input never costs a previous run's files. With `overwrite`, the
  previous run is set aside and comes back if this one fails before its
  first checkpoint. Ctrl-C and SIGTERM (see `errors.Interrupted`) append an
  error record and keep every finished cycle.
  """
  t_start = time.perf_counter()
  workdir = Path(workdir)
  mesh = sharding.setup(config)  # first JAX call: jax.distributed.initialize() when asked
  cache_dir = compiles.use_persistent_cache(config.compile_cache_dir)
  check_parallel(config, mesh)
  main = sharding.is_main_process()  # only process 0 writes logs and results
  checked = check_run(config, workdir, overwrite)
  resuming, ds, strategy, done, graphdef = checked.resuming, checked.ds, checked.strategy, \
      checked.done, checked.graphdef
  n_train = len(ds.train_labels)
  out = workdir if main else Path(tempfile.mkdtemp(prefix="jax_al_worker_"))
  lock = checked.lock if main else workdir_lib.Lock(out)
  replacement = workdir_lib.Replacement(workdir)
  progress = Progress()
  try:
    if overwrite and main:
      replacement.set_aside()
    sharding.barrier("jax_al_workdir")
    for p in out.glob(".*.tmp"):  # temporary files of writes that a kill interrupted
      if any(p.name.startswith(f".{n}.") for n in workdir_lib.RESULTS):
        p.unlink(missing_ok=True)

    if not (resuming and (out / "config.json").exists()):  # a resume keeps the run's record
      io.write_json(out / "config.json", workdir_lib.config_record(config))
    log = io.TextLog(out / "log.txt", quiet=quiet or not main)
    if checked.settled:
      log(f"Note: {checked.settled}")
    log(f"{'Resuming' if resuming else 'Starting'} {config.al.strategy} on {ds.description}, "
        f"{ds.num_classes} classes; workdir {workdir}")
    note = ""
    if cache_dir != compiles.requested_cache_dir(config.compile_cache_dir):
      note = (f" (compile_cache_dir={config.compile_cache_dir!r} not applied: this process "
              "opened its cache before, and the first setting wins)")
    log(f"XLA compilation cache: {cache_dir or 'off'}{note}")

    images = sharding.place(mesh, ds.train_images)
    labels = sharding.place(mesh, ds.train_labels.astype(np.int32))
    test_images = sharding.place(mesh, ds.test_images)
    test_labels = sharding.place(mesh, ds.test_labels.astype(np.int32))
    image_shape = tuple(ds.train_images.shape[1:])
    trainer = _trainer(graphdef, StepConfig.from_config(config, n_train), n_train, mesh)

    # Neither log touches its file before its first record: a resumed run
    # rewrites them from the checkpoints, a failed one leaves them as they were.
    metrics = _TrialOrderedLog(out / "metrics.jsonl")
    selected = _TrialOrderedLog(out / "selected.jsonl")
    rs = Run(config=config, mesh=mesh, ds=ds, trainer=trainer, strategy=strategy,
              images=images, labels=labels, test_images=test_images, test_labels=test_labels,
              log=log, metrics=metrics, selected=selected, workdir=workdir,
              image_shape=image_shape, done=done, on_checkpoint=replacement.commit,
              progress=progress)
    try:
      if config.compare.parallel == "vmap" and config.num_trials > 1:
        _run_lockstep(rs)
      else:
        for trial in range(config.num_trials):
          _run_trial(trial, rs)
    except KeyboardInterrupt as e:
      _interrupted(e, rs)
    summary = _summary(config, metrics.records, time.perf_counter() - t_start)
    summary_path = out / "summary.json"
    if progress.cycles_run or not summary_path.exists():  # a rerun of a finished run keeps it
      io.write_json(summary_path, summary)
    else:
      summary = json.loads(summary_path.read_text())
  except BaseException:
    if main and replacement.active:
      replacement.restore()
      if not quiet:
        print(f"The previous run in {workdir} is back as it was: the new one stopped before "
              "its first checkpoint.", file=sys.stderr, flush=True)
    raise
  finally:
    lock.close()
  return summary


def _interrupted(e: KeyboardInterrupt, rs: Run):
  """Records Ctrl-C or SIGTERM against the cycle it stopped; re-raises as Interrupted."""
  import signal

  signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
  trial, cycle = rs.progress.position or (None, None)
  err = Interrupted(signum, trial, cycle)
  if trial is not None:
    rs.metrics.append({"kind": "error", "trial": trial, "cycle": cycle,
                           "error": f"interrupted by {err.signal_name}"})
    rs.log(f"INTERRUPTED: trial {trial + 1} cycle {cycle} by {err.signal_name}; "
               "finished cycles are kept")
  raise err from None


def check_parallel(config, mesh) -> None:
  """`compare.parallel = "vmap"` stacks trials on one device: not with a multi-device mesh."""
  if config.compare.parallel == "vmap" and config.num_trials > 1 and mesh is not None:
    raise ConfigError("compare.parallel", "vmap",
                      f"vmapped trials run on one device, but mesh.data = {config.mesh.data} "
                      f"spreads each batch over {sharding.mesh_size(mesh)} devices; use "
                      "--config.compare.parallel=none with the mesh, or --config.mesh.data=1 "
                      "to train the trials vmapped on one device")


class _TrialOrderedLog(io.JsonlLog):
  """A JsonlLog kept in trial order (stable), so that a vmapped run, whose
  trials advance in lockstep, writes the same files as a sequential one."""

  def extend(self, records) -> None:
    self.records.extend(io.jsonable(list(records)))
    self.records.sort(key=lambda r: r.get("trial", -1))
    io.write_jsonl(self.path, self.records)


@functools.lru_cache(maxsize=4)
def _trainer(graphdef, sc: StepConfig, num_train: int, mesh=None) -> Trainer:
  """One Trainer, so one compilation, per model and step settings in a process.

  A Trainer holds only jitted pure functions, so runs may share it: a
  comparison of strategies, or a resumed run, compiles its steps once.
  """
  return Trainer(graphdef, sc, num_train, mesh=mesh)


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
  """

  resuming: bool
  ds: Any
  strategy: Any
  done: dict
  graphdef: Any
  lock: workdir_lib.Lock
  settled: str = ""


def check_run(config, workdir: Path, overwrite: bool) -> Checked:
  """Every check before a run, in order; writes and deletes nothing of a run.

  The workdir lock is taken first, before the data loads, so a second
  process is refused at once. A workdir that did not exist is created for
  the write probe and the lock, and removed again if a check fails.
  """
  config_lib.check_config(config)
  created = workdir_lib.prepare(workdir)
  lock = None
  try:
    lock = workdir_lib.Lock(workdir)
    settled = workdir_lib.restore_aside(workdir) or ""
    resuming = workdir_lib.existing_run(workdir, config, overwrite)
    ds = load_dataset(config.data)
    n_train = len(ds.train_labels)
    config_lib.check_sizes(config, n_train, ds.num_classes)
    strategy = strategies.get_strategy(config.al.strategy, config.al)
    n_cand = min(config.al.subset or n_train, n_train - config.al.initial)
    strategy.check(n_cand, config.al.budget, ds.num_classes, num_labeled=config.al.initial)
    image_shape = tuple(ds.train_images.shape[1:])
    # Traced abstractly (checks the model fields against the data's shape)
    # and held against the free memory before any weight is allocated.
    prof = memory.model_profile(config, ds.num_classes, image_shape)
    memory.check_run(config, n_train, len(ds.test_labels), ds.num_classes, image_shape, n_cand,
                     labeled_capacity(config, n_train), prof, ds.train_images.dtype.itemsize)
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
  return Checked(resuming, ds, strategy, done, graphdef, lock, settled)


class _Trial:
  """One trial between cycles: its state, labeled set and next cycle."""

  def __init__(self, trial: int, state, labeled: np.ndarray, first: int):
    self.trial, self.state, self.labeled, self.next = trial, state, labeled, first


def _start_trial(trial: int, rs: Run) -> _Trial:
  """Fresh weights and initial set, or the state of the trial's last checkpoint."""
  config, ds, trainer = rs.config, rs.ds, rs.trainer
  al, log, metrics, selected = config.al, rs.log, rs.metrics, rs.selected
  key = lambda name: rng.stream(config.seed, trial, name)
  n_train = len(ds.train_labels)
  _, params, bs = init_model(config, ds.num_classes, rs.image_shape, key("init"))
  state = trainer.new_state(params, bs)
  labeled = np.asarray(jax.random.permutation(key("initial_set"), n_train)[:al.initial],
                       np.int64)
  first = 1
  last_done = rs.done.get(trial)
  if last_done is not None:
    state, meta = checkpoint.restore(rs.workdir, trial, last_done, state)
    labeled = np.asarray(meta["labeled"], np.int64)
    metrics.extend(meta["metrics"])
    selected.extend(meta["selected"])
    first = al.cycles + 1 if meta.get("finished") else last_done + 1
    if first <= al.cycles:
      log(f"---- {time.strftime('%Y-%m-%d %H:%M:%S')} Trial {trial + 1}: resuming after cycle "
          f"{last_done}; lines of cycle {last_done + 1} above this mark came from the "
          "interrupted attempt ----")
  else:
    selected.append({"trial": trial, "cycle": 0, "indices": labeled.tolist()})
  return _Trial(trial, state, labeled, first)


def _commit(tr: _Trial, cycle: int, state, rec: dict, picks, rs: Run) -> None:
  """Records a finished cycle of `tr` and checkpoints it; advances `tr`."""
  config, log, metrics, selected = rs.config, rs.log, rs.metrics, rs.selected
  trial, finished = tr.trial, False
  if picks is None and cycle < config.al.cycles:
    log("The unlabeled pool is empty: nothing left to select, stopping the trial.")
    finished = True
  trial_records = lambda log_: [r for r in log_.records if r.get("trial") == trial]
  with critical():  # a signal waits until the cycle is recorded and checkpointed
    if picks is not None:
      tr.labeled = np.concatenate([tr.labeled, picks])
      selected.append({"trial": trial, "cycle": cycle, "indices": picks.tolist()})
    metrics.append(rec)
    checkpoint.save(rs.workdir, trial, cycle, state, {
        "trial": trial, "cycle": cycle, "labeled": tr.labeled.tolist(), "finished": finished,
        "config_hash": workdir_lib.config_hash(config), "rng": checkpoint.rng_record(config.seed, trial),
        "metrics": trial_records(metrics), "selected": trial_records(selected)})
    tr.state, tr.next = state, (config.al.cycles + 1 if finished else cycle + 1)
    rs.progress.cycles_run += 1
    if tr.next <= config.al.cycles:  # a signal held back above lands in the next cycle
      rs.progress.position = (trial, tr.next)
    rs.on_checkpoint()  # a replaced run's old outputs can go now


def _fail(trial: int, cycle: int, e: Exception, rs: Run) -> None:
  """Logs a cycle's failure; the checkpoint of the last finished cycle stays as it is."""
  msg = str(e) if isinstance(e, TrainingError) else f"{type(e).__name__}: {e}"
  rs.metrics.append({"kind": "error", "trial": trial, "cycle": cycle, "error": msg})
  rs.log(f"ERROR: trial {trial + 1} cycle {cycle}: {msg}")


def _run_trial(trial: int, rs: Run) -> None:
  tr = _start_trial(trial, rs)
  while tr.next <= rs.config.al.cycles:
    cycle = tr.next
    rs.progress.position = (trial, cycle)
    try:
      state, rec, picks = _run_cycle(trial, cycle, tr.labeled, tr.state, rs)
    except Exception as e:
      _fail(trial, cycle, e, rs)
      raise
    _commit(tr, cycle, state, rec, picks, rs)


def _run_lockstep(rs: Run) -> None:
  """`compare.parallel = "vmap"`: the trials' cycles in lockstep, trained as one program.

  Trials at the same next cycle train together (on a resumed run, trials
  that lag behind first catch up alone, through the sequential path).
  """
  config = rs.config
  trials = [_start_trial(t, rs) for t in range(config.num_trials)]
  while True:
    pending = [tr for tr in trials if tr.next <= config.al.cycles]
    if not pending:
      return
    cycle = min(tr.next for tr in pending)
    group = [tr for tr in pending if tr.next == cycle]
    rs.progress.position = (group[0].trial, cycle)
    if len(group) == 1:
      tr = group[0]
      try:
        state, rec, picks = _run_cycle(tr.trial, cycle, tr.labeled, tr.state, rs)
      except Exception as e:
        _fail(tr.trial, cycle, e, rs)
        raise
      _commit(tr, cycle, state, rec, picks, rs)
    else:
      _run_group_cycle(group, cycle, rs)


def _cycle_state(trial: int, cycle: int, state, rs: Run):
  """The state a cycle starts from: re-initialised, or warm with a fresh optimizer."""
  config, ds, trainer = rs.config, rs.ds, rs.trainer
  if config.train.reinit_each_cycle and cycle > 1:
    _, params, bs = init_model(config, ds.num_classes, rs.image_shape,
                               rng.cycle_key(config.seed, trial, "init", cycle))
    return trainer.new_state(params, bs)
  # the optimizer and its schedule are re-created every cycle
  return trainer.new_state(state.params, state.batch_stats)


def _on_eval(trial: int, cycle: int, rs: Run):
  """The per-evaluation callback of a trial's cycle: guard, log line, metrics record."""
  log, metrics = rs.log, rs.metrics

  def on_eval(rec):
    for k in ("train_loss", "test_loss"):
      if not np.isfinite(rec[k]):
        raise TrainingError(
            f"the {k.replace('_', ' ')} became {rec[k]} at epoch {rec['epoch']} "
            f"(lr {rec['lr']:g}): the network diverged; lower train.lr or use "
            "train.dtype=float32")
    log(f"Cycle: {cycle} Epoch: {rec['epoch']} --- Val Acc: {rec['test_acc']:.3f} \t"
        f"Best Acc: {rec['best_acc']:.3f}")
    metrics.append({"kind": "eval", "trial": trial, "cycle": cycle, **rec})

  return on_eval


def _end_cycle(trial: int, cycle: int, labeled: np.ndarray, state, hist: list,
               t_train: float, rs: Run):
  """After training: the log line, the cycle record and (before the last cycle) selection."""
  config, log = rs.config, rs.log
  al = config.al
  t0 = time.perf_counter()
  acc = hist[-1]["test_acc"]
  log(f"Trial {trial + 1}/{config.num_trials} || Cycle {cycle}/{al.cycles} || "
      f"Label set size {len(labeled)}: Test acc {acc:.2f}")
  rec = {"kind": "cycle", "trial": trial, "cycle": cycle, "labeled": len(labeled),
         "test_acc": acc, "train_s": t_train, "select_s": 0.0}
  picks = None
  if cycle < al.cycles:
    picks, stats, t_sel = _select(trial, cycle, labeled, state, rs)
    if picks is not None:
      rec.update(select_s=t_sel, **stats)
  rec["total_s"] = t_train + time.perf_counter() - t0
  return rec, picks


def _run_cycle(trial: int, cycle: int, labeled: np.ndarray, state, rs: Run):
  """Trains on `labeled`, tests, and (before the last cycle) selects.

  Returns (state, cycle record, new dataset indices or None).
  """
  config, ds, trainer = rs.config, rs.ds, rs.trainer
  t0 = time.perf_counter()
  with compiles.CompileLog() as clog:
    state = _cycle_state(trial, cycle, state, rs)
    bar = _EpochBar(config.train.epochs, f"trial {trial + 1} cycle {cycle}")
    try:
      state, hist = trainer.fit(
          state, rs.images, rs.labels, labeled, np.arange(len(ds.test_labels)),
          rs.test_images, rs.test_labels, config.train,
          rng.cycle_key(config.seed, trial, "data_order", cycle),
          rng.cycle_key(config.seed, trial, "augment", cycle), on_eval=_on_eval(trial, cycle, rs),
          progress=bar)
    finally:
      bar.close()
    rec, picks = _end_cycle(trial, cycle, labeled, state, hist, time.perf_counter() - t0, rs)
  return state, _with_compiles(rec, clog), picks


def _with_compiles(rec: dict, *logs: compiles.CompileLog) -> dict:
  """The cycle record plus the compilation it spent: seconds and programs compiled."""
  return dict(rec, compile_s=sum(l.seconds for l in logs), compiles=sum(l.count for l in logs),
              compile_cache_hits=sum(l.cache_hits for l in logs))


def _run_group_cycle(group: list[_Trial], cycle: int, rs: Run) -> None:
  """One cycle of several trials: trained as one vmapped program, then tested,
  selected and checkpointed trial by trial.

  A cycle record's `train_s` is the time of the shared training (all the
  group's trials together).
  """
  config, ds = rs.config, rs.ds
  key = lambda trial, name: rng.cycle_key(config.seed, trial, name, cycle)
  current = group[0].trial  # the trial an error is recorded against

  def on_eval(t, rec):
    nonlocal current
    current = group[t].trial
    callbacks[t](rec)

  t0 = time.perf_counter()
  bar = _EpochBar(config.train.epochs,
                  f"trials {group[0].trial + 1}-{group[-1].trial + 1} cycle {cycle}")
  train_log = compiles.CompileLog().start()  # shared by the group, like train_s
  try:
    stacked = parallel.stack([_cycle_state(tr.trial, cycle, tr.state, rs) for tr in group])
    callbacks = [_on_eval(tr.trial, cycle, rs) for tr in group]
    stacked, hists = _stacked_trainer(rs.trainer).fit(
        stacked, rs.images, rs.labels, [tr.labeled for tr in group],
        np.arange(len(ds.test_labels)), rs.test_images, rs.test_labels, config.train,
        [key(tr.trial, "data_order") for tr in group],
        [key(tr.trial, "augment") for tr in group], on_eval=on_eval, progress=bar)
  except Exception as e:
    t = getattr(e, "trial", None) if isinstance(e, TrainingError) else None
    _fail(current if t is None else group[t].trial, cycle, e, rs)
    raise
  finally:
    bar.close()
    train_log.stop()
  t_train = time.perf_counter() - t0
  for tr, state, hist in zip(group, parallel.unstack(stacked, len(group)), hists):
    rs.progress.position = (tr.trial, cycle)
    try:
      with compiles.CompileLog() as clog:
        rec, picks = _end_cycle(tr.trial, cycle, tr.labeled, state, hist, t_train, rs)
    except Exception as e:
      _fail(tr.trial, cycle, e, rs)
      raise
    _commit(tr, cycle, state, _with_compiles(rec, train_log, clog), picks, rs)


@functools.lru_cache(maxsize=4)
def _stacked_trainer(trainer: Trainer) -> parallel.StackedTrainer:
  """The vmapped counterpart of a cached Trainer (compiled once per trial count)."""
  return parallel.StackedTrainer(trainer)


def labeled_capacity(config, n_train: int) -> int:
  """The largest labeled set a selection of this run scores: the one after
  cycle `al.cycles - 1` (the last cycle selects nothing)."""
  al = config.al
  return min(n_train, al.initial + al.budget * max(al.cycles - 2, 0))


def _select(trial: int, cycle: int, labeled: np.ndarray, state, rs: Run):
  """Scores a random subset of the unlabeled pool; returns (dataset indices, stats, seconds)."""
  config, trainer, ds = rs.config, rs.trainer, rs.ds
  al = config.al
  t0 = time.perf_counter()
  unlabeled = np.setdiff1d(np.arange(len(ds.train_labels)), labeled)
  if len(unlabeled) == 0:
    return None, {}, 0.0
  key = lambda name: rng.cycle_key(config.seed, trial, name, cycle)
  n_sub = min(al.subset or len(unlabeled), len(unlabeled))
  order = np.asarray(jax.random.permutation(key("subset"), len(unlabeled)))
  subset = unlabeled[order[:n_sub]]  # random order: per-batch scopes see batches in it
  budget = min(al.budget, n_sub)
  logits, feats = trainer.predict(state.params, state.batch_stats, rs.images, subset)
  l_logits, l_feats = trainer.predict(state.params, state.batch_stats, rs.images, labeled)
  if not all(bool(jnp.all(jnp.isfinite(a))) for a in (feats, logits, l_feats, l_logits)):
    raise TrainingError(f"cycle {cycle}: the model produced non-finite features or logits, "
                        "so no strategy can score the pool; the network diverged. Lower "
                        "train.lr or use train.dtype=float32")
  pool = sharding.place_pool(rs.mesh, strategies.Pool(
      feats, logits, l_feats, l_logits, ds.num_classes,
      labeled_capacity(config, len(ds.train_labels))))
  t_feat = time.perf_counter() - t0
  t1 = time.perf_counter()
  sel = rs.strategy.select(pool, budget, key("select"))
  idx = np.asarray(sel.indices)
  t_sel = time.perf_counter() - t1
  if len(idx) != budget or len(np.unique(idx)) != budget or idx.min() < 0 or idx.max() >= n_sub:
    raise RuntimeError(f"strategy {al.strategy} returned invalid indices {idx[:10]}...")
  stats = {"features_s": t_feat, "strategy_s": t_sel, "scored": int(n_sub),
           **{k: float(v) for k, v in sel.stats.items()}}
  return subset[idx], stats, time.perf_counter() - t0
