"""bald and variation_ratio on real data: MC dropout through the whole loop."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from conftest import tiny_digits_config
from jax_al import cycle, loop, replay, train
from jax_al.errors import ConfigError
from jax_al.scores import bayes


@pytest.fixture(scope="module")
def bald_run(tmp_path_factory):
  wd = tmp_path_factory.mktemp("bald") / "run"
  c = tiny_digits_config("bald", model__dropout=0.5, al__mc_samples=16, train__epochs=4)
  loop.run(c, wd, quiet=True)
  return c, wd


@pytest.mark.slow
def test_bald_runs_and_replays_its_picks(bald_run):
  """A digits run selects with BALD, and its step rebuilds: same MC passes
  (keys from the cycle's selection key), same picks."""
  c, wd = bald_run
  st = replay.step(wd, 0, 1)
  assert st.pool.sample_logits.shape == (16, st.subset.size, 10)
  assert sorted(st.subset[replay.select(st)]) == sorted(replay.selected_sets(wd)[(0, 1)])


def test_bald_is_zero_without_dropout_and_grows_with_it(bald_run):
  """The trained weights under dropout rates 0, 0.2 and 0.5: identical passes
  (zero mutual information, zero variation ratio) at 0, more disagreement
  at a higher rate."""
  c, wd = bald_run
  st = replay.step(wd, 0, 1)
  mean_mi, vr = [], []
  for rate in (0.0, 0.2, 0.5):
    c2 = tiny_digits_config("bald", model__dropout=rate)
    graphdef, _, _ = train.init_model(c2, 10, (8, 8, 1), cycle.keys(0, 0, 1).init)
    tr = cycle.trainer(graphdef, c2, 1297)
    keys = jax.random.split(st.key, 16)
    s = tr.predict_mc(st.state.params, st.state.batch_stats, replay.experiment(c2).images,
                      st.subset, keys)
    mean_mi.append(float(np.mean(bayes.mutual_information(s))))
    vr.append(float(np.mean(bayes.variation_ratio(s))))
  assert mean_mi[0] < 1e-6 and vr[0] == 0.0
  assert mean_mi[0] < mean_mi[1] < mean_mi[2]
  assert vr[1] < vr[2]


def test_variation_ratio_runs(tmp_path):
  c = tiny_digits_config("variation_ratio", model__dropout=0.5, al__mc_samples=8)
  summary = loop.run(c, tmp_path / "run", quiet=True)
  assert summary["labeled"] == [20, 40]


@pytest.mark.parametrize("name", ["bald", "variation_ratio"])
def test_without_dropout_is_one_line_before_anything(tmp_path, name):
  with pytest.raises(ConfigError, match="model.dropout.*set model.dropout > 0"):
    loop.run(tiny_digits_config(name), tmp_path / "run", quiet=True)
  assert not (tmp_path / "run").exists()
