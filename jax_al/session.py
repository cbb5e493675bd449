"""One run's hold on its workdir, from the first write to the last.

`Session` is a context manager around a run's cycles. On entry it takes
over the lock `preflight.check_run` took, sets a previous run aside for
`--overwrite` (`workdir.Replacement`), removes the temporary files of
writes a kill interrupted, writes config.json (a resume keeps the one
there), opens the logs and writes the opening lines and warnings. After
each checkpoint `checkpointed()` lets the set-aside run go. `summary()`
writes summary.json and the learning curve, or, on a rerun of a finished
run that trained nothing, keeps the summary.json there. On a failure
before the first checkpoint the set-aside run is restored and said so;
an interruption says what a rerun would do. On exit the logs and the lock
close, whatever happened.

With several processes only process 0 writes into the workdir; the others
write into a temporary folder of their own.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from jax_al import files, records, sharding
from jax_al import workdir as workdir_lib
from jax_al.errors import Interrupted


class Session:
  """The workdir of one run while it runs (a context manager).

  Attributes:
    config: the run's ConfigDict.
    workdir: the run's folder.
    out: where this process writes: the workdir on process 0, a temporary
      folder on the others.
    main: this is process 0 (it writes logs and results).
    logs: the run's Logs (`records.Logs`), open from entry to exit.
    replacement: the previous run set aside by --overwrite (`workdir.Replacement`).
  """

  def __init__(self, config, workdir: Path, checked, *, overwrite: bool = False,
               quiet: bool = False, cache_dir=None):
    """`checked` is `preflight.check_run`'s `Checked` (its lock is taken over);
    `cache_dir` the persistent compilation cache in use (for the opening lines)."""
    self.config = config
    self.workdir = Path(workdir)
    self.checked = checked
    self.overwrite = overwrite
    self.quiet = quiet
    self.cache_dir = cache_dir
    self.main = sharding.is_main_process()  # only process 0 writes logs and results
    self.out: Path | None = None
    self.lock: workdir_lib.Lock | None = None
    self.logs: records.Logs | None = None
    self.replacement = workdir_lib.Replacement(self.workdir)

  def __enter__(self) -> "Session":
    self.out = self.workdir if self.main else Path(tempfile.mkdtemp(prefix="jax_al_worker_"))
    self.lock = self.checked.lock if self.main else workdir_lib.Lock(self.out)
    try:
      self._open()
    except BaseException as e:
      self.__exit__(type(e), e, e.__traceback__)
      raise
    return self

  def _open(self) -> None:
    checked, out, config = self.checked, self.out, self.config
    if self.overwrite and self.main:
      self.replacement.set_aside()
    sharding.barrier("jax_al_workdir")
    for p in out.glob(".*.tmp"):  # temporary files of writes that a kill interrupted
      if any(p.name.startswith(f".{n}.") for n in workdir_lib.RESULTS):
        p.unlink(missing_ok=True)
    if not (checked.resuming and (out / "config.json").exists()):  # a resume keeps it
      files.write_json(out / "config.json",
                       workdir_lib.config_record(config, checked.ds.fingerprint))
    self.logs = records.Logs.open(out, quiet=self.quiet or not self.main, events=checked.events)
    self.logs.start(config, checked.ds, checked.resuming, self.workdir, checked.settled,
                    self.cache_dir)
    for line in checked.warnings:  # before any cycle: the user can stop it now
      self.logs(f"Warning: {line}")
      if self.quiet and self.main:
        print(f"Warning: {line}", file=sys.stderr, flush=True)

  def checkpointed(self) -> None:
    """Called after every checkpoint: a replaced run's old outputs go after the first."""
    self.replacement.commit()

  def summary(self, summary: dict, rewrite: bool) -> dict:
    """Writes summary.json (and, on process 0, the learning curve) when
    `rewrite` (this process ran cycles) or none is there; otherwise, a rerun
    of a finished run, returns the summary.json there unchanged."""
    path = self.out / "summary.json"
    if rewrite or not path.exists():
      files.write_json(path, summary)
      if self.main:
        from jax_al import ending
        ending.write_curve(summary, self.out)
      return summary
    return json.loads(path.read_text())

  def __exit__(self, kind, e, tb) -> bool:
    try:
      if isinstance(e, BaseException):
        self._failed(e)
    finally:
      if self.logs is not None:
        self.logs.close()
      self.lock.close()
    return False

  def _failed(self, e: BaseException) -> None:
    """The run stopped with `e`: brings the set-aside run back if the new one
    never checkpointed, and tells an interruption what a rerun does."""
    replacement, workdir = self.replacement, self.workdir
    restored = self.main and replacement.active
    if restored:
      replacement.restore()
      if not self.quiet:
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
