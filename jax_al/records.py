"""What a run writes as it goes: log.txt lines and the records of
metrics.jsonl and selected.jsonl.

Neither JSON log touches its file before its first record: a resumed run
rewrites them from the checkpoints, a failed one leaves them as they were.
Both keep their records in trial order, so a vmapped run, whose trials
advance in lockstep, writes the same files as a sequential one.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from jax_al import compiles, files
from jax_al import events as events_lib
from jax_al.errors import TrainingError


@dataclasses.dataclass(frozen=True, eq=False)
class Logs:
  """The text log and the two JSON-lines logs of a run.

  Attributes:
    text: log.txt (and stdout unless quiet).
    metrics: metrics.jsonl: per-evaluation, per-cycle and error records.
    selected: selected.jsonl: the initial set and each cycle's picks.
    events: TensorBoard event files (`log.tensorboard`), or None.
  """

  text: files.TextLog
  metrics: files.TrialOrderedLog
  selected: files.TrialOrderedLog
  events: events_lib.EventWriter | None = None

  @classmethod
  def open(cls, out: Path, quiet: bool, events=None) -> "Logs":
    return cls(files.TextLog(out / "log.txt", quiet=quiet),
               files.TrialOrderedLog(out / "metrics.jsonl"),
               files.TrialOrderedLog(out / "selected.jsonl"), events)

  def cycle(self, rec: dict) -> None:
    """A finished cycle's record (metrics.jsonl, and TensorBoard when on)."""
    self.metrics.append(rec)
    if self.events:
      self.events.cycle(rec)

  def close(self) -> None:
    if self.events:
      self.events.close()

  def __call__(self, line: str) -> None:
    self.text(line)

  def of_trial(self, trial: int) -> dict:
    """The trial's records, as its checkpoints keep them."""
    mine = lambda log: [r for r in log.records if r.get("trial") == trial]
    return {"metrics": mine(self.metrics), "selected": mine(self.selected)}

  def start(self, config, ds, resuming: bool, workdir: Path, settled: str,
            cache_dir) -> None:
    """The run's opening lines."""
    if settled:
      self(f"Note: {settled}")
    self(f"{'Resuming' if resuming else 'Starting'} {config.al.strategy} on "
         f"{ds.description}, {len(ds.train_labels):,} train and {len(ds.test_labels):,} test "
         f"items, {ds.num_classes} classes; workdir {workdir}")
    note = ""
    if cache_dir != compiles.requested_cache_dir(config.compile_cache_dir):
      note = (f" (compile_cache_dir={config.compile_cache_dir!r} not applied: this process "
              "opened its cache before, and the first setting wins)")
    self(f"XLA compilation cache: {cache_dir or 'off'}{note}")

  def resumed(self, trial: int, last: int) -> None:
    self(f"---- {time.strftime('%Y-%m-%d %H:%M:%S')} Trial {trial + 1}: resuming after "
         f"cycle {last}; lines of cycle {last + 1} above this mark came from the "
         "interrupted attempt ----")

  def on_eval(self, trial: int, cycle: int, fix: str = "lower train.lr"):
    """The per-evaluation callback of a trial's cycle: guard, log line, record.

    `fix`: what to change when a loss is not finite (`train.divergence_fix`).
    """

    def on_eval(rec):
      for k in ("train_loss", "test_loss"):
        if not np.isfinite(rec[k]):
          raise TrainingError(
              f"the {k.replace('_', ' ')} became {rec[k]} at epoch {rec['epoch']} "
              f"(lr {rec['lr']:g}): the network diverged; {fix}")
      self(f"Cycle: {cycle} Epoch: {rec['epoch']} --- Val Acc: {rec['test_acc']:.3f} \t"
           f"Best Acc: {rec['best_acc']:.3f}")
      self.metrics.append({"kind": "eval", "trial": trial, "cycle": cycle, **rec})
      if self.events:
        self.events.eval(trial, cycle, rec)

    return on_eval

  def error(self, trial: int, cycle: int, e: Exception) -> None:
    """A cycle's failure; the checkpoint of the last finished cycle stays as it is."""
    msg = str(e) if isinstance(e, (TrainingError, files.WriteError)) else \
        f"{type(e).__name__}: {e}"
    # Best effort: on a full disk the record itself may not fit; the error
    # that caused it still reaches the user.
    try:
      self.metrics.append({"kind": "error", "trial": trial, "cycle": cycle, "error": msg})
    except files.WriteError:
      pass
    try:
      self(f"ERROR: trial {trial + 1} cycle {cycle}: {msg}")
    except files.WriteError:
      pass

  def interrupted(self, trial: int, cycle: int, signal_name: str) -> None:
    self.metrics.append({"kind": "error", "trial": trial, "cycle": cycle,
                         "error": f"interrupted by {signal_name}"})
    self(f"INTERRUPTED: trial {trial + 1} cycle {cycle} by {signal_name}; "
         "finished cycles are kept")


def cycle_record(trial: int, cycle: int, labeled: int, test_acc: float, train_s: float,
                 total_s: float, picked, logs: list[compiles.CompileLog]) -> dict:
  """A cycle's metrics.jsonl record: accuracy, timings, the selection's
  statistics (`cycle.Picked`, None when nothing was picked) and the
  compilation it spent (seconds, programs, persistent-cache hits)."""
  rec = {"kind": "cycle", "trial": trial, "cycle": cycle, "labeled": labeled,
         "test_acc": test_acc, "train_s": train_s, "select_s": 0.0}
  if picked is not None:
    rec.update(select_s=picked.seconds, **picked.stats)
  rec["total_s"] = total_s
  return dict(rec, compile_s=sum(l.seconds for l in logs), compiles=sum(l.count for l in logs),
              compile_cache_hits=sum(l.cache_hits for l in logs))
