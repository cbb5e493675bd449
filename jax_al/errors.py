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
