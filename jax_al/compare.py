"""Paired comparisons: strategies x trials, each strategy in its own workdir.

Pairing needs no bookkeeping: the initial labeled set and the initial weights
come from the (seed, trial) random streams, which no strategy setting
touches, so trial t of every strategy starts from the same point. Each
strategy's run resumes on its own, so a rerun skips what already finished.
"""

from __future__ import annotations

import copy
from pathlib import Path

from jax_al import config as config_lib
from jax_al import loop, presets


def strategies_of(config) -> list[str]:
  return config_lib.compare_strategies(config)


def strategy_config(config, name: str):
  """`config` with preset/strategy `name` applied and no comparison left in it."""
  c = copy.deepcopy(config)
  with c.unlocked():
    presets.apply(c, name, field="compare.strategies")
    c.compare.strategies = ""
  return c


def run(config, workdir, *, overwrite: bool = False, quiet: bool = False) -> dict:
  """Runs every strategy of `compare.strategies`; writes the report; returns it."""
  from jax_al import report

  config_lib.check_config(config)
  workdir = Path(workdir)
  names = strategies_of(config)
  configs = {n: strategy_config(config, n) for n in names}
  for c in configs.values():  # fail on any bad strategy setting before training
    config_lib.check_config(c)
  # ... and on a report folder the report would refuse to write into, rather
  # than after every strategy has trained.
  report.check_out(workdir / "report", "the comparison's report")
  dirs = []
  for name, c in configs.items():
    loop.run(c, workdir / name, overwrite=overwrite, quiet=quiet)
    dirs.append(workdir / name)
  return report.make_report(dirs, workdir / "report")
