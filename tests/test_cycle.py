"""jax_al/cycle.py: one cycle's steps (the pool's input providers, its
guards, the labeled capacity), and the loop's record of a finished cycle
(`loop.CycleResult`, `loop._commit`)."""

from __future__ import annotations

import dataclasses
import types

import jax
import numpy as np
import pytest

from conftest import tiny_digits_config
from jax_al import checkpoint, cycle, loop, strategies, train
from jax_al import records as records_lib
from jax_al.data import load_dataset
from jax_al.errors import TrainingError
from jax_al.strategies import uncertainty_mmd as umm
from jax_al.strategies.base import Samples
from test_reliability import records


def test_labeled_capacity_is_the_last_selection_size(tiny_config):
  c = tiny_config("uncertainty_mmd", al__cycles=5, al__initial=20, al__budget=20)
  assert cycle.labeled_capacity(c, 1297) == 80  # selections after cycles 1-4: 20..80 labeled
  c.al.cycles = 1
  assert cycle.labeled_capacity(c, 1297) == 20
  c.al.cycles, c.al.initial, c.al.budget = 7, 5000, 2500
  assert cycle.labeled_capacity(c, 50000) == 17500
  assert np.isclose(umm.labeled_bucket(17500, 1024) / 1024, 18)



def test_nan_features_never_reach_a_strategy(tmp_path, monkeypatch):
  real = train.Trainer.predict

  def nan_feats(self, params, bs, images, idx):
    logits, feats = real(self, params, bs, images, idx)
    return logits, feats.at[0, 0].set(np.nan)

  monkeypatch.setattr(train.Trainer, "predict", nan_feats)
  monkeypatch.setattr(strategies.get_strategy("random", None).__class__, "select",
                      lambda *a: pytest.fail("a strategy got NaN features"))
  run = tmp_path / "run"
  with pytest.raises(TrainingError, match="non-finite features"):
    loop.run(tiny_digits_config(), run, quiet=True)
  last = records(run)[-1]
  assert last["kind"] == "error" and last["cycle"] == 1
  assert checkpoint.latest(run, 0) is None


def test_features_too_large_for_float32_distances_never_reach_a_strategy(tmp_path,
                                                                          monkeypatch):
  """Finite features of 1e30 overflow coreset's distances (NaN scores, repeated
  picks); the guard stops the cycle as it does NaN features."""
  real = train.Trainer.predict

  def huge_feats(self, params, bs, images, idx):
    logits, feats = real(self, params, bs, images, idx)
    return logits, feats * 1e30

  monkeypatch.setattr(train.Trainer, "predict", huge_feats)
  monkeypatch.setattr(strategies.get_strategy("coreset", None).__class__, "select",
                      lambda *a: pytest.fail("a strategy got overflowing features"))
  run = tmp_path / "run"
  with pytest.raises(TrainingError, match="overflow float32"):
    loop.run(tiny_digits_config("coreset"), run, quiet=True)
  assert records(run)[-1]["kind"] == "error"


# ------------------------------------------------------- input providers ------


def test_every_strategys_requires_maps_to_the_providers_of_its_inputs():
  """One provider per source of sample logits, then the optional inputs in
  order; together they give every Pool array the declaration names."""
  assert set(cycle.SAMPLE_PROVIDERS) == set(Samples)
  for name in strategies.names():
    need = strategies.get_strategy(name, tiny_digits_config().al).requires
    got = cycle.providers(need)
    assert got[0] is cycle.SAMPLE_PROVIDERS[need.samples], name
    assert got[1:] == [p for flag, p in cycle.OPTIONAL_PROVIDERS if getattr(need, flag)], name


@pytest.fixture(scope="module")
def bald_exp():
  """A digits Experiment of an MC-dropout strategy and its initial state."""
  config = tiny_digits_config("bald", model__dropout=0.3)
  exp = cycle.Experiment.build(config, load_dataset(config.data),
                               strategies.get_strategy("bald", config.al))
  state, labeled = cycle.initial(exp, 0)
  return exp, state, labeled


def test_the_pool_of_an_mc_dropout_strategy_is_its_providers_arrays(bald_exp):
  """The one model's pass, then the MC-dropout passes with the selection key
  folded with MC_FOLD; no predicted loss."""
  exp, state, labeled = bald_exp
  subset = cycle.candidates(exp, 0, 1, labeled)[:50]
  pool = cycle.pool(exp, state, labeled, subset, 0, 1)
  tr = exp.trainer
  logits, feats = tr.predict(state.params, state.batch_stats, exp.images, subset)
  l_logits, l_feats = tr.predict(state.params, state.batch_stats, exp.images, labeled)
  k = jax.random.fold_in(cycle.keys(exp.config.seed, 0, 1).select, cycle.MC_FOLD)
  samples = tr.predict_mc(state.params, state.batch_stats, exp.images, subset,
                          jax.random.split(k, exp.config.al.mc_samples))
  for got, want in ((pool.features, feats), (pool.logits, logits),
                    (pool.labeled_features, l_feats), (pool.labeled_logits, l_logits),
                    (pool.sample_logits, samples)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  assert pool.sample_logits.shape == (exp.config.al.mc_samples, 50, 10)
  assert pool.predicted_loss is None and pool.num_classes == 10
  assert pool.labeled_capacity == cycle.labeled_capacity(exp.config, exp.num_train)


# ------------------------------------------------ a cycle's result, committed ------


def _run_of(exp, workdir):
  """A Run writing into `workdir`, and the list its checkpoints append to."""
  checkpoints = []
  return loop.Run(exp, records_lib.Logs.open(workdir, quiet=True), workdir,
                  types.MappingProxyType({}), lambda: checkpoints.append(1)), checkpoints


def test_commit_records_and_checkpoints_a_cycle_and_returns_the_trial_advanced(
    bald_exp, tmp_path):
  exp, state, labeled = bald_exp
  rs, checkpoints = _run_of(exp, tmp_path)
  at = loop.Position(current=(0, 1))
  tr = loop.Trial(0, state, labeled, 1)
  picks = np.arange(1000, 1020, dtype=np.int64)
  result = loop.CycleResult(tr, 1, state, [{"test_acc": 12.5}], 1.0, 1.5,
                            cycle.Picked(picks, {"scored": 50}, 0.25), ())
  with pytest.raises(dataclasses.FrozenInstanceError):
    result.cycle = 2
  with pytest.raises(dataclasses.FrozenInstanceError):
    tr.labeled = picks
  advanced = loop._commit(result, rs, at)
  # The trial is a new one; the one the cycle started from is as it was.
  assert tr.next == 1 and len(tr.labeled) == 20
  assert advanced.trial == 0 and advanced.next == 2 and advanced.state is state
  np.testing.assert_array_equal(advanced.labeled, np.concatenate([labeled, picks]))
  assert at == loop.Position(current=(0, 2), cycles_run=1) and checkpoints == [1]
  rec = [r for r in rs.logs.metrics.records if r["kind"] == "cycle"]
  assert len(rec) == 1 and rec[0]["test_acc"] == 12.5 and rec[0]["train_s"] == 1.0
  assert rec[0]["total_s"] == 1.5 and rec[0]["select_s"] == 0.25 and rec[0]["scored"] == 50
  assert rs.logs.selected.records[-1] == {"trial": 0, "cycle": 1, "indices": picks.tolist()}
  meta = checkpoint.restore_meta(tmp_path, 0, 1)
  assert meta["labeled"] == advanced.labeled.tolist() and meta["finished"] is False
  # The last cycle selects nothing: the trial ends, and the position stays on it.
  at.current = (0, 2)
  last = loop._commit(loop.CycleResult(advanced, 2, state, [{"test_acc": 13.0}], 1.0, 1.0,
                                       None, ()), rs, at)
  assert last.next == exp.config.al.cycles + 1 == 3 and last.labeled is advanced.labeled
  assert at == loop.Position(current=(0, 2), cycles_run=2) and checkpoints == [1, 1]
  assert checkpoint.restore_meta(tmp_path, 0, 2)["finished"] is False


def test_commit_of_an_empty_pool_before_the_last_cycle_finishes_the_trial(bald_exp, tmp_path):
  exp, state, labeled = bald_exp
  rs, _ = _run_of(exp, tmp_path)
  at = loop.Position(current=(0, 1))
  done = loop._commit(loop.CycleResult(loop.Trial(0, state, labeled, 1), 1, state,
                                       [{"test_acc": 1.0}], 0.0, 0.0, None, ()), rs, at)
  assert done.next == exp.config.al.cycles + 1 and at.current == (0, 1)
  assert checkpoint.restore_meta(tmp_path, 0, 1)["finished"] is True
  assert "unlabeled pool is empty" in (tmp_path / "log.txt").read_text()
