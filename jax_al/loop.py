"""The active-learning loop: trials x cycles of train -> test -> select -> checkpoint.

`run(config, workdir)` is the library's entry point; `run.py` only parses
flags. It reads: every check first (`preflight.check_run`, so bad input
never costs a previous run), then the run's hold on its folder
(`session.Session`: the lock, --overwrite's set-aside run, config.json, the
logs, the summary), then the cycles in schedule order.

The steps of a cycle are `jax_al.cycle`'s; this module orders them and
records them. A cycle's outcome is a frozen `CycleResult`, which `_commit`
records and checkpoints as one step that a signal does not cut; it returns
the trial advanced (a `Trial` is frozen), and moves the run's one mutable
`Position` on. Rerunning the same command on the same workdir continues
after the last finished cycle and reproduces the uninterrupted run exactly.

Results files are replaced atomically; a diverged cycle stops the run with
an error record in metrics.jsonl and leaves the last good checkpoint as it
was.

`compare.parallel = "vmap"` runs the trials in lockstep: at each cycle the
trials train as one vmapped program (`jax_al.vmap_trials`), then test,
select and checkpoint one by one. The files are the same as a sequential
run's (records in trial order; a cycle record's `train_s` is the shared
training time), and either mode resumes the other's checkpoints.
"""

from __future__ import annotations

import dataclasses
import signal
import time
import types
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from jax_al import checkpoint, compiles, cycle, files, preflight, records, report
from jax_al import session as session_lib
from jax_al import train
from jax_al import workdir as workdir_lib
from jax_al.errors import Interrupted, TrainingError, acknowledge_signal, critical


@dataclasses.dataclass
class Position:
  """Where a run is, the one mutable record of a run's progress; `run` owns
  it and hands it to the steps that move it.

  Attributes:
    current: the (trial, cycle) in progress, what an interrupt is recorded
      against (None before the first cycle).
    cycles_run: cycles finished by this process (whether the summary is
      rewritten).
  """

  current: tuple[int, int] | None = None
  cycles_run: int = 0


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
  """Everything the trials of one run share, fixed for the run.

  Attributes:
    exp: the data, Trainer and strategy (`cycle.Experiment`).
    logs: log.txt, metrics.jsonl and selected.jsonl (`records.Logs`).
    workdir: the run's folder.
    done: {trial: last checkpointed cycle} found when the run started (read-only).
    on_checkpoint: called after every checkpoint (a replaced run's old
      outputs can go after the first: `session.Session.checkpointed`).
  """

  exp: cycle.Experiment
  logs: records.Logs
  workdir: Path
  done: Mapping[int, int]
  on_checkpoint: Callable[[], None]

  @property
  def config(self):
    return self.exp.config


@dataclasses.dataclass(frozen=True, eq=False)
class Trial:
  """One trial between cycles: its state, labeled set and next cycle.
  A finished cycle gives a new Trial (`_commit`)."""

  trial: int
  state: object
  labeled: np.ndarray
  next: int


@dataclasses.dataclass(frozen=True, eq=False)
class CycleResult:
  """A cycle of one trial, trained, tested and (before the last cycle)
  selected, that `_commit` records and checkpoints.

  Attributes:
    trial: the Trial as it was before the cycle.
    cycle: the cycle (1-based).
    state: the TrainState after training it.
    history: its evaluation records (the last one's test_acc is the cycle's).
    train_s: seconds of training (with vmapped trials, the group's).
    total_s: seconds of the cycle up to its selection's end.
    picked: the selection (`cycle.Picked`), or None when nothing was picked.
    compile_logs: the CompileLogs of the compilation the cycle spent.
  """

  trial: Trial
  cycle: int
  state: object
  history: list
  train_s: float
  total_s: float
  picked: cycle.Picked | None
  compile_logs: tuple[compiles.CompileLog, ...]


def run(config, workdir, *, overwrite: bool = False, quiet: bool = False) -> dict:
  """Runs `config.num_trials` trials of `config.al.cycles` cycles; returns the summary.

  With `overwrite`, the previous run is set aside and comes back if this one
  fails before its first checkpoint. Ctrl-C and SIGTERM (`errors.Interrupted`)
  append an error record and keep every finished cycle.
  """
  t_start = time.perf_counter()
  workdir = Path(workdir)
  checked = preflight.check_run(config, workdir, overwrite)  # every check, then the cache
  with session_lib.Session(config, workdir, checked, overwrite=overwrite, quiet=quiet,
                           cache_dir=checked.cache_dir) as ses:
    exp = cycle.Experiment.build(config, checked.ds, checked.strategy, checked.mesh)
    rs = Run(exp, ses.logs, workdir, types.MappingProxyType(dict(checked.done)),
             ses.checkpointed)
    at = Position()
    try:
      _run_cycles(rs, at)
    except KeyboardInterrupt as e:
      _interrupted(e, rs, at)
    summary = ses.summary(
        report.run_summary(config, ses.logs.metrics.records, time.perf_counter() - t_start),
        rewrite=at.cycles_run > 0)  # a rerun of a finished run keeps its summary
    if ses.main and not quiet:
      from jax_al import ending
      print("\n".join(ending.lines(config, summary, workdir, time.perf_counter() - t_start)),
            flush=True)
  return summary


def _run_cycles(rs: Run, at: Position) -> None:
  """Runs every cycle left, in schedule order: each trial started when it is
  reached and run to its end, or, with vmapped trials, all trials at the
  same next cycle together (on a resumed run, trials that lag behind first
  catch up alone)."""
  config, cycles = rs.config, rs.config.al.cycles
  if not (config.compare.parallel == "vmap" and config.num_trials > 1):
    for t in range(config.num_trials):
      tr = _start_trial(t, rs)
      while tr.next <= cycles:
        (tr,) = _run_step([tr], tr.next, rs, at)
    return
  trials = [_start_trial(t, rs) for t in range(config.num_trials)]
  while pending := [tr for tr in trials if tr.next <= cycles]:
    c = min(tr.next for tr in pending)
    advanced = {tr.trial: tr for tr in _run_step([tr for tr in pending if tr.next == c], c,
                                                 rs, at)}
    trials = [advanced.get(tr.trial, tr) for tr in trials]


def _run_step(group: list[Trial], c: int, rs: Run, at: Position) -> list[Trial]:
  """Cycle `c` of the trials of `group` (one, or vmapped ones); returns them advanced."""
  at.current = (group[0].trial, c)
  if len(group) > 1:
    return _run_group(group, c, rs, at)
  return [_run_one(group[0], c, rs, at)]


def _interrupted(e: KeyboardInterrupt, rs: Run, at: Position):
  """Records Ctrl-C or SIGTERM against the cycle it stopped; re-raises as Interrupted."""
  acknowledge_signal()
  signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
  trial, c = at.current or (None, None)
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


def _run_one(tr: Trial, c: int, rs: Run, at: Position) -> Trial:
  """Cycle `c` of one trial: train, test, select, checkpoint; returns the trial advanced."""
  t0 = time.perf_counter()
  try:
    with compiles.CompileLog() as clog:
      bar = files.EpochBar(rs.config.train.epochs, f"trial {tr.trial + 1} cycle {c}")
      try:
        on_eval = rs.logs.on_eval(tr.trial, c, train.divergence_fix(rs.config.train))
        state, hist = cycle.train(rs.exp, tr.trial, c, tr.labeled, tr.state, on_eval, bar)
      finally:
        bar.close()
      result = _end_cycle(tr, c, state, hist, time.perf_counter() - t0, (clog,), rs)
  except Exception as e:
    rs.logs.error(tr.trial, c, e)
    raise
  return _commit(result, rs, at)


def _run_group(group: list[Trial], c: int, rs: Run, at: Position) -> list[Trial]:
  """Cycle `c` of several trials: trained as one vmapped program, then tested,
  selected and checkpointed trial by trial (`train_s` is the shared time);
  returns the trials advanced."""
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
  advanced = []
  for tr, state, hist in zip(group, states, hists):
    at.current = (tr.trial, c)
    try:
      with compiles.CompileLog() as clog:
        result = _end_cycle(tr, c, state, hist, t_train, (train_log, clog), rs)
    except Exception as e:
      rs.logs.error(tr.trial, c, e)
      raise
    advanced.append(_commit(result, rs, at))
  return advanced


def _end_cycle(tr: Trial, c: int, state, hist: list, t_train: float,
               clogs: tuple[compiles.CompileLog, ...], rs: Run) -> CycleResult:
  """After training: the log line and (before the last cycle) the selection;
  returns the cycle's CycleResult (`total_s`: the cycle's seconds so far)."""
  al, t0 = rs.config.al, time.perf_counter()
  rs.logs(f"Trial {tr.trial + 1}/{rs.config.num_trials} || Cycle {c}/{al.cycles} || "
          f"Label set size {len(tr.labeled)}: Test acc {hist[-1]['test_acc']:.2f}")
  picked = cycle.select(rs.exp, tr.trial, c, tr.labeled, state) if c < al.cycles else None
  return CycleResult(tr, c, state, hist, t_train, t_train + time.perf_counter() - t0, picked,
                     clogs)


def _commit(result: CycleResult, rs: Run, at: Position) -> Trial:
  """Records a finished cycle and checkpoints it; returns the trial advanced
  past it and moves `at` on."""
  config, tr, c, picked = rs.config, result.trial, result.cycle, result.picked
  trial, last, finished = tr.trial, result.history[-1], False
  rec = records.cycle_record(trial, c, len(tr.labeled), last["test_acc"], result.train_s,
                             result.total_s, picked, list(result.compile_logs))
  if "member_acc" in last:  # an ensemble: test_acc is the ensemble's, this member 0's
    rec["member_acc"] = last["member_acc"]
  if picked is None and c < config.al.cycles:
    rs.logs("The unlabeled pool is empty: nothing left to select, stopping the trial.")
    finished = True
  with critical():  # a signal waits until the cycle is recorded and checkpointed
    labeled = tr.labeled
    if picked is not None:
      labeled = np.concatenate([tr.labeled, picked.indices])
      rs.logs.selected.append({"trial": trial, "cycle": c, "indices": picked.indices.tolist()})
    try:
      rs.logs.cycle(rec)
      checkpoint.save(rs.workdir, trial, c, result.state, {
          "trial": trial, "cycle": c, "labeled": labeled.tolist(), "finished": finished,
          "config_hash": workdir_lib.config_hash(config),
          "rng": checkpoint.rng_record(config.seed, trial), **rs.logs.of_trial(trial)})
    except Exception as e:  # a full disk: recorded against the cycle; the last checkpoint stays
      _unrecord(rs.logs, trial, c)
      rs.logs.error(trial, c, e)
      raise
    advanced = dataclasses.replace(tr, state=result.state, labeled=labeled,
                                   next=config.al.cycles + 1 if finished else c + 1)
    at.cycles_run += 1
    if advanced.next <= config.al.cycles:  # a signal held back above lands in the next cycle
      at.current = (trial, advanced.next)
    rs.on_checkpoint()  # a replaced run's old outputs can go now
  return advanced


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
