"""The active-learning loop: trials x cycles of train -> test -> select -> checkpoint.

`run(config, workdir)` is the library's entry point; `run.py` only parses
flags. The steps of a cycle are `jax_al.cycle`'s; this module orders them,
records them and checkpoints after every cycle, so rerunning the same
command on the same workdir continues after the last finished cycle and
reproduces the uninterrupted run exactly.

Every check runs first (`preflight.check_run`), so bad input never costs a
previous run. Results files are replaced atomically; a diverged cycle stops
the run with an error record in metrics.jsonl and leaves the last good
checkpoint as it was.

`compare.parallel = "vmap"` runs the trials in lockstep: at each cycle the
trials train as one vmapped program (`jax_al.vmap_trials`), then test,
select and checkpoint one by one. The files are the same as a sequential
run's (records in trial order; a cycle record's `train_s` is the shared
training time), and either mode resumes the other's checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jax_al import checkpoint, compiles, cycle, files, preflight, records, report, sharding
from jax_al import train
from jax_al import workdir as workdir_lib
from jax_al.errors import Interrupted, TrainingError, acknowledge_signal, critical


@dataclasses.dataclass
class Progress:
  """Where a run is: the (trial, cycle) in progress and the cycles finished
  by this process (what an interrupt is recorded against, and whether the
  summary is rewritten)."""

  position: tuple[int, int] | None = None
  cycles_run: int = 0


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
  """Everything the trials of one run share.

  Attributes:
    exp: the data, Trainer and strategy (`cycle.Experiment`).
    logs: log.txt, metrics.jsonl and selected.jsonl (`records.Logs`).
    workdir: the run's folder.
    done: {trial: last checkpointed cycle} found when the run started.
    on_checkpoint: called after every checkpoint (a replaced run's old
      outputs can go after the first).
    progress: the mutable Progress.
  """

  exp: cycle.Experiment
  logs: records.Logs
  workdir: Path
  done: dict
  on_checkpoint: object
  progress: Progress

  @property
  def config(self):
    return self.exp.config


@dataclasses.dataclass
class Trial:
  """One trial between cycles: its state, labeled set and next cycle."""

  trial: int
  state: object
  labeled: np.ndarray
  next: int


def run(config, workdir, *, overwrite: bool = False, quiet: bool = False) -> dict:
  """Runs `config.num_trials` trials of `config.al.cycles` cycles; returns the summary.

  With `overwrite`, the previous run is set aside and comes back if this one
  fails before its first checkpoint. Ctrl-C and SIGTERM (`errors.Interrupted`)
  append an error record and keep every finished cycle.
  """
  t_start = time.perf_counter()
  workdir = Path(workdir)
  mesh = sharding.setup(config)  # first JAX call: jax.distributed.initialize() when asked
  cache_dir = compiles.use_persistent_cache(config.compile_cache_dir)
  main = sharding.is_main_process()  # only process 0 writes logs and results
  checked = preflight.check_run(config, workdir, overwrite, mesh)
  out = workdir if main else Path(tempfile.mkdtemp(prefix="jax_al_worker_"))
  lock = checked.lock if main else workdir_lib.Lock(out)
  replacement = workdir_lib.Replacement(workdir)
  progress, logs = Progress(), None
  try:
    if overwrite and main:
      replacement.set_aside()
    sharding.barrier("jax_al_workdir")
    for p in out.glob(".*.tmp"):  # temporary files of writes that a kill interrupted
      if any(p.name.startswith(f".{n}.") for n in workdir_lib.RESULTS):
        p.unlink(missing_ok=True)
    if not (checked.resuming and (out / "config.json").exists()):  # a resume keeps it
      files.write_json(out / "config.json",
                       workdir_lib.config_record(config, checked.ds.fingerprint))
    logs = records.Logs.open(out, quiet=quiet or not main, events=checked.events)
    logs.start(config, checked.ds, checked.resuming, workdir, checked.settled, cache_dir)
    for line in checked.warnings:  # before any cycle: the user can stop it now
      logs(f"Warning: {line}")
      if quiet and main:
        print(f"Warning: {line}", file=sys.stderr, flush=True)
    exp = cycle.Experiment.build(config, checked.ds, checked.strategy, mesh, checked.graphdef)
    rs = Run(exp, logs, workdir, checked.done, replacement.commit, progress)
    try:
      for group, c in _schedule(rs):
        progress.position = (group[0].trial, c)
        if len(group) > 1:
          _run_group(group, c, rs)
        else:
          _run_one(group[0], c, rs)
    except KeyboardInterrupt as e:
      _interrupted(e, rs)
    summary = report.run_summary(config, logs.metrics.records, time.perf_counter() - t_start)
    path = out / "summary.json"
    if progress.cycles_run or not path.exists():  # a rerun of a finished run keeps it
      files.write_json(path, summary)
      if main:
        from jax_al import ending
        ending.write_curve(summary, out)
    else:
      summary = json.loads(path.read_text())
    if main and not quiet:
      from jax_al import ending
      print("\n".join(ending.lines(config, summary, workdir, time.perf_counter() - t_start)),
            flush=True)
  except BaseException as e:
    restored = main and replacement.active
    if restored:
      replacement.restore()
      if not quiet:
        print(f"The previous run in {workdir} is back as it was: the new one stopped before "
              "its first checkpoint.", file=sys.stderr, flush=True)
    # After a replacement, "rerun the same command" would replace again: say what happened.
    if isinstance(e, Interrupted) and restored:
      e.outcome = (f"the new run stopped before its first checkpoint, so the previous run in "
                   f"{workdir} is back as it was; rerun with --overwrite to replace it again, "
                   "or without --overwrite to resume the previous run")
    elif isinstance(e, Interrupted) and replacement.committed:
      e.outcome = ("the new run replaced the previous one and its finished cycles are kept; "
                   "rerun without --overwrite to resume it (with --overwrite it would start "
                   "again)")
    raise
  finally:
    if logs is not None:
      logs.close()
    lock.close()
  return summary


def _schedule(rs: Run):
  """Yields ([Trial], cycle) to run next: each trial started when it is
  reached and run to its end, or, with vmapped trials, all trials at the
  same next cycle together (on a resumed run, trials that lag behind first
  catch up alone)."""
  config, cycles = rs.config, rs.config.al.cycles
  if not (config.compare.parallel == "vmap" and config.num_trials > 1):
    for t in range(config.num_trials):
      tr = _start_trial(t, rs)
      while tr.next <= cycles:
        yield [tr], tr.next
    return
  trials = [_start_trial(t, rs) for t in range(config.num_trials)]
  while pending := [tr for tr in trials if tr.next <= cycles]:
    c = min(tr.next for tr in pending)
    yield [tr for tr in pending if tr.next == c], c


def _interrupted(e: KeyboardInterrupt, rs: Run):
  """Records Ctrl-C or SIGTERM against the cycle it stopped; re-raises as Interrupted."""
  acknowledge_signal()
  signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
  trial, c = rs.progress.position or (None, None)
  err = Interrupted(signum, trial, c)
  if trial is not None:
    rs.logs.interrupted(trial, c, err.signal_name)
  raise err from None


def _start_trial(trial: int, rs: Run) -> Trial:
  """Fresh weights and initial set, or the state of the trial's last checkpoint."""
  state, labeled = cycle.initial(rs.exp, trial)
  last = rs.done.get(trial)
  if last is None:
    rs.logs.selected.append({"trial": trial, "cycle": 0, "indices": labeled.tolist()})
    return Trial(trial, state, labeled, 1)
  state, meta = checkpoint.restore(rs.workdir, trial, last, state)
  rs.logs.metrics.extend(meta["metrics"])
  rs.logs.selected.extend(meta["selected"])
  first = rs.config.al.cycles + 1 if meta.get("finished") else last + 1
  if first <= rs.config.al.cycles:
    rs.logs.resumed(trial, last)
  return Trial(trial, state, np.asarray(meta["labeled"], np.int64), first)


def _run_one(tr: Trial, c: int, rs: Run) -> None:
  """Cycle `c` of one trial: train, test, select, checkpoint."""
  t0 = time.perf_counter()
  try:
    with compiles.CompileLog() as clog:
      bar = files.EpochBar(rs.config.train.epochs, f"trial {tr.trial + 1} cycle {c}")
      try:
        on_eval = rs.logs.on_eval(tr.trial, c, train.divergence_fix(rs.config.train))
        state, hist = cycle.train(rs.exp, tr.trial, c, tr.labeled, tr.state, on_eval, bar)
      finally:
        bar.close()
      t_train = time.perf_counter() - t0
      picked, total_s = _end_cycle(tr, c, state, hist, t_train, rs)
  except Exception as e:
    rs.logs.error(tr.trial, c, e)
    raise
  _commit(tr, c, state, hist, t_train, total_s, picked, [clog], rs)


def _run_group(group: list[Trial], c: int, rs: Run) -> None:
  """Cycle `c` of several trials: trained as one vmapped program, then tested,
  selected and checkpointed trial by trial (`train_s` is the shared time)."""
  current = group[0].trial  # the trial an error is recorded against
  fix = train.divergence_fix(rs.config.train)
  callbacks = [rs.logs.on_eval(tr.trial, c, fix) for tr in group]

  def on_eval(i, rec):
    nonlocal current
    current = group[i].trial
    callbacks[i](rec)

  t0 = time.perf_counter()
  bar = files.EpochBar(rs.config.train.epochs,
                    f"trials {group[0].trial + 1}-{group[-1].trial + 1} cycle {c}")
  train_log = compiles.CompileLog().start()  # shared by the group, like train_s
  try:
    states, hists = cycle.train_stacked(rs.exp, [tr.trial for tr in group], c,
                                        [tr.labeled for tr in group],
                                        [tr.state for tr in group], on_eval, bar)
  except Exception as e:
    i = getattr(e, "trial", None) if isinstance(e, TrainingError) else None
    rs.logs.error(current if i is None else group[i].trial, c, e)
    raise
  finally:
    bar.close()
    train_log.stop()
  t_train = time.perf_counter() - t0
  for tr, state, hist in zip(group, states, hists):
    rs.progress.position = (tr.trial, c)
    try:
      with compiles.CompileLog() as clog:
        picked, total_s = _end_cycle(tr, c, state, hist, t_train, rs)
    except Exception as e:
      rs.logs.error(tr.trial, c, e)
      raise
    _commit(tr, c, state, hist, t_train, total_s, picked, [train_log, clog], rs)


def _end_cycle(tr: Trial, c: int, state, hist: list, t_train: float, rs: Run):
  """After training: the log line and (before the last cycle) the selection;
  returns (`cycle.Picked` or None, seconds of the cycle so far)."""
  al, t0 = rs.config.al, time.perf_counter()
  rs.logs(f"Trial {tr.trial + 1}/{rs.config.num_trials} || Cycle {c}/{al.cycles} || "
          f"Label set size {len(tr.labeled)}: Test acc {hist[-1]['test_acc']:.2f}")
  picked = cycle.select(rs.exp, tr.trial, c, tr.labeled, state) if c < al.cycles else None
  return picked, t_train + time.perf_counter() - t0


def _commit(tr: Trial, c: int, state, hist, t_train, total_s, picked, clogs, rs: Run) -> None:
  """Records a finished cycle of `tr` and checkpoints it; advances `tr`."""
  config, trial, finished = rs.config, tr.trial, False
  rec = records.cycle_record(trial, c, len(tr.labeled), hist[-1]["test_acc"], t_train, total_s,
                             picked, clogs)
  if "member_acc" in hist[-1]:  # an ensemble: test_acc is the ensemble's, this member 0's
    rec["member_acc"] = hist[-1]["member_acc"]
  if picked is None and c < config.al.cycles:
    rs.logs("The unlabeled pool is empty: nothing left to select, stopping the trial.")
    finished = True
  with critical():  # a signal waits until the cycle is recorded and checkpointed
    if picked is not None:
      tr.labeled = np.concatenate([tr.labeled, picked.indices])
      rs.logs.selected.append({"trial": trial, "cycle": c, "indices": picked.indices.tolist()})
    try:
      rs.logs.cycle(rec)
      checkpoint.save(rs.workdir, trial, c, state, {
          "trial": trial, "cycle": c, "labeled": tr.labeled.tolist(), "finished": finished,
          "config_hash": workdir_lib.config_hash(config),
          "rng": checkpoint.rng_record(config.seed, trial), **rs.logs.of_trial(trial)})
    except Exception as e:  # a full disk: recorded against the cycle; the last checkpoint stays
      _unrecord(rs.logs, trial, c)
      rs.logs.error(trial, c, e)
      raise
    tr.state, tr.next = state, (config.al.cycles + 1 if finished else c + 1)
    rs.progress.cycles_run += 1
    if tr.next <= config.al.cycles:  # a signal held back above lands in the next cycle
      rs.progress.position = (trial, tr.next)
    rs.on_checkpoint()  # a replaced run's old outputs can go now


def _unrecord(logs, trial: int, c: int) -> None:
  """Takes back cycle `c`'s cycle record and picks when its checkpoint failed:
  the cycle is not finished (a rerun redoes it), so the files must not say it
  is. Best effort on a full disk; a resume rewrites both files anyway."""
  drop = lambda log, kind: [r for r in log.records if not (
      r.get("trial") == trial and r.get("cycle") == c and r.get("kind", kind) == kind)]
  logs.metrics.records[:] = drop(logs.metrics, "cycle")
  logs.selected.records[:] = drop(logs.selected, "picks")
  try:
    files.write_jsonl(logs.selected.path, logs.selected.records)
  except files.WriteError:
    pass
