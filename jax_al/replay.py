"""Any selection step of a finished run, rebuilt exactly: model, pool, picks, raw scores.

    step = replay.step("runs/digits_users", trial=0, cycle=3)
    replay.select(step)                       # the run's own picks (positions)
    replay.select(step, other_config)         # what another strategy would pick
    replay.raw_scores(step)                   # u and the MMD term before normalisation

The model a cycle selected with is restored from the run's checkpoint of
that cycle when it is still there (a run keeps its last two), otherwise
retrained with `jax_al.cycle` from the nearest earlier checkpoint (or from
the initial weights) on the labeled sets the run recorded, with the run's own
random streams. Every checkpoint used passes the checks a resume makes
(meta, config digest, random streams), selected.jsonl must agree with the
trial's checkpoints, and the data must be the data the run recorded. So the
state, the candidates and the selection key are the run's, and every variant
asked to select from one Step sees the same model and pool with the same
key: differences between their picks come from the strategy alone.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import jax
import numpy as np

from jax_al import checkpoint, files, preflight, strategies
from jax_al import cycle as cycle_lib
from jax_al import workdir as workdir_lib
from jax_al.data import load_dataset
from jax_al.errors import DataError


@dataclasses.dataclass(frozen=True, eq=False)
class Step:
  """A rebuilt selection step of a run.

  Attributes:
    config: the run's config.
    trial, cycle: which step (cycle 1-based; cycle c selects after training c).
    labeled: [M] dataset indices of the labeled set cycle c trained on.
    subset: [N] dataset indices of the scored candidates (pool order).
    pool: the strategies' input (features and logits on the device).
    key: the selection key the run used.
    labels: [N] true labels of the candidates (for pictures only).
    state: the model's TrainState after training cycle c.
    restored: True when `state` came from the cycle's own checkpoint, False
      when it was retrained.
    strategy: the run's strategy, built once for the replay (`select` and
      `raw_scores` use it when given no other config).
  """

  config: object
  trial: int
  cycle: int
  labeled: np.ndarray
  subset: np.ndarray
  pool: strategies.Pool
  key: jax.Array
  labels: np.ndarray
  state: object
  restored: bool
  strategy: strategies.Strategy | None = None


def selected_sets(workdir: Path) -> dict[tuple[int, int], np.ndarray]:
  """{(trial, cycle): dataset indices} from a run's selected.jsonl (cycle 0 = initial set)."""
  return {(r["trial"], r["cycle"]): np.asarray(r["indices"], np.int64)
          for r in files.read_jsonl(Path(workdir) / "selected.jsonl")}


def labeled_before(workdir: Path, trial: int, cycle: int) -> np.ndarray:
  """The labeled set a run trained on in `cycle` (initial set + picks of earlier cycles)."""
  sel = selected_sets(workdir)
  missing = [c for c in range(cycle) if (trial, c) not in sel]
  if missing:
    raise DataError(str(Path(workdir) / "selected.jsonl"),
                    f"has no selection of trial {trial} cycle {missing[0]}",
                    "replay a cycle the run has finished")
  return np.concatenate([sel[(trial, c)] for c in range(cycle)])


_EXPERIMENTS: dict = {}


def experiment(config) -> cycle_lib.Experiment:
  """The run's `cycle.Experiment` (data on the device, Trainer, strategy).

  The data and the Trainer are built once per process for every config that
  differs only in `config.al` (a sweep over strategy settings reuses them),
  and built again when the data changed on disk since: the data are loaded
  at every call (a folder source from its decoded-array cache) so that the
  fingerprint a replay checks is the data's now.
  """
  k = repr(sorted((k, v) for k, v in config.to_dict().items() if k != "al"))
  ds = load_dataset(config.data)
  strategy = strategies.get_strategy(config.al.strategy, config.al)  # once per replay
  if k not in _EXPERIMENTS or _EXPERIMENTS[k].ds.fingerprint != ds.fingerprint:
    _EXPERIMENTS[k] = cycle_lib.Experiment.build(config, ds, strategy,
                                                  preflight.check_devices(config))
  return dataclasses.replace(_EXPERIMENTS[k], config=config, strategy=strategy)


def step(workdir, trial: int, cycle: int, config=None) -> Step:
  """Rebuilds selection step `cycle` of `trial` of the run in `workdir`.

  `config` defaults to the run's own (config.json); one given must be the
  run's (same digest), since the model and the pool depend on every field.
  """
  workdir = Path(workdir)
  saved = workdir_lib.load_config(workdir)
  config = saved if config is None else config
  if workdir_lib.comparable(config.to_dict()) != workdir_lib.comparable(saved.to_dict()):
    raise DataError(str(workdir / "config.json"), "is not the config given to replay.step "
                    f"({workdir_lib.differences(saved.to_dict(), config.to_dict())})",
                    "pass the run's own config, or none to use config.json")
  if not 1 <= cycle < config.al.cycles:
    raise ValueError(f"cycle {cycle}: runs select after cycles 1..{config.al.cycles - 1}")
  exp = experiment(config)
  workdir_lib.check_data(workdir, exp.ds.fingerprint, action="replay")
  last = checkpoint.latest(workdir, trial)
  if last is not None:  # the run's fullest record of the trial: selected.jsonl must match it
    check_checkpoint(exp, workdir, trial, last, checkpoint.restore_meta(workdir, trial, last))
  state, restored = _state(exp, workdir, trial, cycle)
  labeled = labeled_before(workdir, trial, cycle)
  subset = cycle_lib.candidates(exp, trial, cycle, labeled)
  pool = cycle_lib.pool(exp, state, labeled, subset, trial, cycle)
  return Step(config, trial, cycle, labeled, subset, pool,
              cycle_lib.keys(config.seed, trial, cycle).select, exp.ds.train_labels[subset],
              state, restored, exp.strategy)


_FIX = ("replay reads a run's own checkpoints and selected.jsonl only; put back the files "
        "the run wrote, or replay another run")


def _hashable(rec: tuple) -> tuple:
  return rec[0], tuple(rec[1])


def check_checkpoint(exp: cycle_lib.Experiment, workdir: Path, trial: int, step: int,
                     meta: dict) -> None:
  """Raises DataError unless checkpoint `step` of `trial` is this run's (the
  checks a resume makes: `checkpoint.check_meta`) and selected.jsonl holds
  the same selections of the trial up to `step` as the checkpoint records."""
  checkpoint.check_meta(meta, exp.config, trial, step, len(exp.ds.train_labels), workdir,
                        fix=_FIX)
  key = lambda r: (r.get("cycle"), list(r.get("indices") or []))
  jsonl = sorted(key(r) for r in files.read_jsonl(Path(workdir) / "selected.jsonl")
                 if r.get("trial") == trial and isinstance(r.get("cycle"), int)
                 and r["cycle"] <= step)
  recorded = sorted(key(r) for r in meta["selected"])
  if jsonl != recorded:
    # The first cycle whose record differs, or is in one of the two only.
    first = min({c for c, _ in set(map(_hashable, jsonl)) ^ set(map(_hashable, recorded))})
    raise DataError(str(Path(workdir) / "selected.jsonl"),
                    f"trial {trial}'s selections up to cycle {step} differ from what its "
                    f"checkpoint {checkpoint.root(workdir, trial) / str(step)} records "
                    f"(first at cycle {first})", _FIX)


def _state(exp: cycle_lib.Experiment, workdir: Path, trial: int, cycle: int):
  """The state after training `cycle`: its checkpoint, or retrained forward."""
  saved = [s for s in checkpoint.steps(workdir, trial) if s <= cycle]
  state, _ = cycle_lib.initial(exp, trial)
  if saved:
    state, meta = checkpoint.restore(workdir, trial, saved[-1], state)
    check_checkpoint(exp, workdir, trial, saved[-1], meta)
    if saved[-1] == cycle:
      return state, True
  # A re-initialised cycle does not depend on the one before: train it alone.
  first = cycle if exp.config.train.reinit_each_cycle else (saved[-1] + 1 if saved else 1)
  for c in range(first, cycle + 1):
    state, _ = cycle_lib.train(exp, trial, c, labeled_before(workdir, trial, c), state)
  return state, False


def with_al(config, **al):
  """A copy of `config` with `config.al` fields replaced."""
  c = copy.deepcopy(config)
  for k, v in al.items():
    c.al[k] = v
  return c


def _strategy(st: Step, config):
  """(config, strategy): the step's own, built when the step was, or those of
  another `config` (a variant is built for its own settings)."""
  if config is None or config is st.config:
    config = st.config
    if st.strategy is not None:
      return config, st.strategy
  return config, strategies.get_strategy(config.al.strategy, config.al)


def select(st: Step, config=None, budget: int | None = None) -> np.ndarray:
  """Positions (into the step's candidates) that the strategy of `config.al`
  (default: the run's) picks from the step's pool with the run's key."""
  config, s = _strategy(st, config)
  return np.asarray(s.select(st.pool, budget or config.al.budget, st.key).indices)


def raw_scores(st: Step, config=None) -> dict:
  """The raw uncertainty u and MMD term t (before normalisation and sign)
  that the uncertainty + MMD strategy of `config.al` (default: the run's)
  ranks at this step, with its kernel width sigma: {"u", "t", "sigma"}."""
  config, s = _strategy(st, config)
  if not hasattr(s, "raw_terms"):
    raise ValueError(f"{config.al.strategy} has no uncertainty and MMD terms")
  return s.raw_terms(st.pool, st.key, min(config.al.budget, len(st.subset)))
