"""Errors raised for bad input.

Every message names the offending field (or file), the value that was given
and how to fix it, so a researcher never has to read a traceback.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable


class JaxALError(Exception):
  """Base class of every error jax-al raises on purpose."""


_WHOLE = object()  # marks an error built from one finished message


class ConfigError(JaxALError, ValueError):
  """A config field has a value that cannot work.

  Built as ConfigError(field, value, fix). A single argument is taken as the
  whole message, because some libraries (ml_collections' config_flags) re-raise
  an exception as `type(e)(message)`.
  """

  def __init__(self, field: str, value: Any = _WHOLE, fix: str | None = None):
    self.field, self.value, self.fix = field, value, fix
    if value is _WHOLE:
      super().__init__(field)
    else:
      super().__init__(f"config field `{field}` = {value!r}: {fix}")


class DataError(JaxALError, ValueError):
  """A data source, file or array is missing, corrupt or inconsistent.

  Built as DataError(what, problem, fix); one argument is the whole message.
  """

  def __init__(self, what: str, problem: str | None = None, fix: str | None = None):
    self.what, self.problem, self.fix = what, problem, fix
    super().__init__(what if problem is None else f"{what}: {problem}. Fix: {fix}")


class TrainingError(JaxALError, RuntimeError):
  """Training diverged (non-finite loss) or otherwise cannot go on."""


def suggest(name: str, choices: Iterable[str]) -> str:
  """Returns ' Did you mean X?' for a near match, else the list of choices."""
  choices = sorted(choices)
  close = difflib.get_close_matches(name, choices, n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  return f"choose one of {', '.join(choices)}.{hint}"


class Interrupted(KeyboardInterrupt):
  """Ctrl-C (SIGINT) or SIGTERM stopped a run; finished cycles are kept.

  A KeyboardInterrupt, so that `except Exception` never swallows it.
  `exit_code` is the shell's convention, 128 + the signal number (130, 143).
  """

  def __init__(self, signum: int, trial: int | None = None, cycle: int | None = None):
    import signal

    self.signum, self.trial, self.cycle = int(signum), trial, cycle
    self.signal_name = signal.Signals(self.signum).name
    self.exit_code = 128 + self.signum
    self.outcome = None  # set by a run that --overwrite was replacing: what became of it
    self.unfinished = False  # set by `answering_signals`: its worker still runs
    super().__init__(self.message())

  def message(self) -> str:
    if self.outcome:
      where = "before any cycle ran" if self.trial is None else \
          f"in trial {self.trial + 1}, cycle {self.cycle}"
      return f"interrupted by {self.signal_name} {where}; {self.outcome}"
    if self.trial is None:
      return (f"interrupted by {self.signal_name} before any cycle ran; nothing of a run "
              "was lost; rerun the same command to start it")
    return (f"interrupted in trial {self.trial + 1}, cycle {self.cycle}; finished cycles are "
            "kept; rerun the same command to resume")


class _Signals:
  """SIGINT and SIGTERM raise Interrupted, except inside `critical()` sections,
  where they wait until the section ends (a checkpoint is never cut half-way
  through its bookkeeping).

  Python drops an exception raised in a garbage-collection callback (jax
  runs one) with only an "Exception ignored" line, so a signal raised there
  would be lost and the run would go on to exit 0. `delivered` remembers a
  raised signal until the loop acknowledges it; the end of the next
  `critical()` section (a cycle's commit) raises it again.
  """

  def __init__(self):
    self.depth, self.pending, self.delivered = 0, None, None
    self.installed = 0  # handle_signals blocks active in the main thread

  def handler(self, signum, frame):
    del frame
    if self.depth:
      self.pending = signum
      return
    self.delivered = signum
    raise Interrupted(signum)


_SIGNALS = _Signals()


def acknowledge_signal() -> None:
  """Tells the handler that its Interrupted reached the loop (was not lost)."""
  _SIGNALS.delivered = None


class handle_signals:
  """Context manager (main thread only): SIGINT/SIGTERM become Interrupted."""

  def __enter__(self):
    import signal
    import threading

    self.old = None
    _SIGNALS.delivered = None
    if threading.current_thread() is threading.main_thread():
      self.old = {s: signal.signal(s, _SIGNALS.handler) for s in (signal.SIGINT, signal.SIGTERM)}
      _SIGNALS.installed += 1
    return self

  def __exit__(self, *exc):
    import signal

    _SIGNALS.delivered = None
    if self.old:
      _SIGNALS.installed -= 1
      for s, h in self.old.items():
        signal.signal(s, h)
    return False


def answering_signals(fn):
  """fn(), with Ctrl-C and SIGTERM answered while it runs.

  Python runs signal handlers in the main thread between bytecodes, and
  reading a compiled program's result back (`np.asarray`) holds that thread
  until the program ends: a selection of minutes would answer a Ctrl-C only
  then. So where `handle_signals` is active and this is the main thread, fn
  runs in a worker thread while the main thread sleeps, and a signal raises
  Interrupted at once. The worker is then left to finish on its own (a
  daemon thread; the commands end through `cli.exit_now`, whose `os._exit`
  does not wait for it), and the Interrupted says so (`unfinished`).
  Elsewhere, fn() runs as it is. fn's exception is re-raised here.
  """
  import threading
  import time

  if not _SIGNALS.installed or threading.current_thread() is not threading.main_thread():
    return fn()
  box: dict = {}
  done = threading.Event()

  def work():
    try:
      box["value"] = fn()
    except BaseException as e:  # pylint: disable=broad-except  # re-raised below
      box["error"] = e
    finally:
      done.set()

  threading.Thread(target=work, name="jax-al-answering-signals", daemon=True).start()
  # Sleeps, not Thread.join or Event.wait: a signal that interrupts join()
  # leaves the thread reported as stopped while it still runs (CPython 3.11).
  try:
    while not done.is_set():
      time.sleep(0.02)
  except Interrupted as e:
    e.unfinished = not done.is_set()
    raise
  if "error" in box:
    raise box["error"]
  return box["value"]


class critical:
  """A section that a signal delivered through `handle_signals` does not cut."""

  def __enter__(self):
    _SIGNALS.depth += 1

  def __exit__(self, *exc):
    _SIGNALS.depth -= 1
    if not _SIGNALS.depth and _SIGNALS.pending is not None:
      signum, _SIGNALS.pending = _SIGNALS.pending, None
      if exc[0] is None:
        raise Interrupted(signum)
    lost = _SIGNALS.delivered
    if not _SIGNALS.depth and lost is not None and exc[0] is None:
      _SIGNALS.delivered = None  # raised once more, after the section's commit
      raise Interrupted(lost)
    return False
