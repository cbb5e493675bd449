"""ensemble_*: K members trained as one vmapped program per cycle, on real data."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_digits_config
from jax_al import files, loop, replay
from jax_al.errors import ConfigError
from jax_al.scores import bayes


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("ensemble")
  c = tiny_digits_config("ensemble_bald", al__ensemble_size=3, train__epochs=4)
  loop.run(c, root / "ens", quiet=True)
  loop.run(tiny_digits_config("entropy", train__epochs=4), root / "single", quiet=True)
  cyc = lambda d: [r for r in files.read_jsonl(root / d / "metrics.jsonl") if r["kind"] == "cycle"]
  return root, cyc("ens"), cyc("single")


@pytest.mark.slow
def test_members_differ_and_member_zero_is_the_single_model(runs):
  """Member 0 has the trial's own keys: it trains the single model of the
  same config (up to the batched kernels' last bits); the record keeps the
  ensemble's accuracy beside it."""
  root, ens, single = runs
  assert [r["labeled"] for r in ens] == [20, 40]
  # Cycle 1 trains on the same initial set (later sets follow different picks).
  assert abs(ens[0]["member_acc"] - single[0]["test_acc"]) <= 0.2 + 1e-5  # one test image
  assert all(0 <= e["test_acc"] <= 100 and 0 <= e["member_acc"] <= 100 for e in ens)
  st = replay.step(root / "ens", 0, 1)
  assert st.pool.sample_logits.shape == (3, st.subset.size, 10)
  assert float(jnp.max(bayes.mutual_information(st.pool.sample_logits))) > 1e-3
  assert sorted(st.subset[replay.select(st)]) == sorted(replay.selected_sets(root / "ens")[(0, 1)])


def test_identical_members_carry_no_information(runs):
  root, _, _ = runs
  st = replay.step(root / "ens", 0, 1)
  same = jnp.stack([st.pool.sample_logits[0]] * 3)
  assert float(jnp.max(bayes.mutual_information(same))) < 1e-5
  assert float(jnp.max(bayes.variation_ratio(same))) == 0.0
  np.testing.assert_allclose(bayes.predictive_entropy(same),
                             bayes.predictive_entropy(same[:1]), atol=1e-5)


def test_vmapped_trials_of_an_ensemble_are_refused(tmp_path):
  c = tiny_digits_config("ensemble_entropy", num_trials=2, compare__parallel="vmap")
  with pytest.raises(ConfigError, match="al.strategy.*compare.parallel=none"):
    loop.run(c, tmp_path / "run", quiet=True)
  assert not (tmp_path / "run").exists()
