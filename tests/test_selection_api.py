"""`jax_al.select` on arrays from a model jax-al did not train (digits with
scikit-learn's LogisticRegression): the module docstring's example, NumPy
references for margin and entropy, every registered strategy, determinism,
and one-line refusals of bad settings and arrays."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import jax_al
from jax_al import selection, strategies
from jax_al.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def digits():
  """The docstring's example: 100 labeled digits, a logistic model's probabilities."""
  x, y = load_digits(return_X_y=True)
  labeled = np.zeros(len(x), bool)
  labeled[:100] = True
  model = LogisticRegression(max_iter=2000).fit(x[labeled], y[labeled])
  return x, model.predict_proba(x), labeled


def _reference(p, labeled, budget, kind):
  """NumPy: the unlabeled rows with the smallest top-2 gap / largest entropy."""
  cand = np.flatnonzero(~labeled)
  q = p[cand]
  if kind == "margin":
    s = np.sort(q, axis=1)
    key = s[:, -1] - s[:, -2]          # smallest first
  else:
    key = np.sum(q * np.log(np.maximum(q, 1e-30)), axis=1)  # -entropy: largest first
  return cand[np.argsort(key, kind="stable")[:budget]]


@pytest.mark.parametrize("kind", ["margin", "entropy"])
def test_docstring_example_matches_numpy(digits, kind):
  x, p, labeled = digits
  picks = jax_al.select(kind, features=x, probs=p, labeled=labeled, budget=20)
  ref = _reference(p, labeled, 20, kind)
  assert not labeled[picks.indices].any()
  np.testing.assert_array_equal(picks.indices, ref)
  assert picks.indices.shape == (20,) and picks.scores.shape == (20,)
  assert picks.strategy == kind


@pytest.mark.slow
def test_every_strategy_and_preset(digits):
  x, p, labeled = digits
  rng = np.random.default_rng(0)
  samples = np.log(np.maximum(p, 1e-9))[None] + rng.normal(size=(4, *p.shape))
  loss = rng.random(len(x))
  for name in strategies.names() + ["users", "greedy", "witness"]:
    a = jax_al.select(name, features=x, probs=p, labeled=labeled, budget=15,
                      sample_logits=samples, predicted_loss=loss, seed=3)
    b = jax_al.select(name, features=x, probs=p, labeled=labeled, budget=15,
                      sample_logits=samples, predicted_loss=loss, seed=3)
    assert len(np.unique(a.indices)) == 15 and not labeled[a.indices].any(), name
    np.testing.assert_array_equal(a.indices, b.indices, err_msg=name)  # deterministic
    if name != "random":
      assert np.isfinite(a.scores).all(), (name, a.scores)


def test_a_labeled_set_outside_the_pool(digits):
  x, p, labeled = digits
  a = jax_al.select("coreset", features=x, labeled=labeled, budget=10)
  pool = np.flatnonzero(~labeled)
  b = jax_al.select("coreset", features=x[pool],
                    labeled=selection.Labeled(features=x[labeled]), budget=10)
  np.testing.assert_array_equal(a.indices, pool[b.indices])


@pytest.mark.parametrize("kwargs, field", [
    (dict(strategy="entropy", budget=5), "logits"),                  # needs logits
    (dict(strategy="bald", budget=5, probs=True), "sample_logits"),
    (dict(strategy="learning_loss", budget=5), "predicted_loss"),
    (dict(strategy="entropyy", budget=5), "strategy"),
    (dict(strategy="margin", budget=0, probs=True), "budget"),
    (dict(strategy="margin", budget=10_000, probs=True), "budget"),
    (dict(strategy="users", budget=5, lam=float("nan")), "lam"),
    (dict(strategy="users", budget=5, lamb=1.0), "lamb"),
    (dict(strategy="users", budget=5, cycles=3), "cycles"),
    (dict(strategy="users", budget=5, kmeans={"n_init": 0}), "kmeans.n_init"),
])
def test_bad_settings_name_the_setting(digits, kwargs, field):
  x, p, labeled = digits
  kwargs = dict(kwargs)
  if kwargs.pop("probs", False):
    kwargs["probs"] = p
  with pytest.raises((ConfigError, DataError)) as e:
    jax_al.select(features=x, labeled=labeled, **kwargs)
  msg = str(e.value)
  assert "\n" not in msg and field in msg, msg


def test_bad_arrays_name_the_array_and_row(digits):
  x, p, labeled = digits
  bad = p.copy()
  bad[7] *= 0.5
  with pytest.raises(DataError, match=r"probs: row 7 sums to"):
    jax_al.select("margin", features=x, probs=bad, budget=5)
  nan = x.astype(np.float32).copy()
  nan[11, 3] = np.nan
  with pytest.raises(DataError, match=r"features: row 11 holds NaN"):
    jax_al.select("coreset", features=nan, budget=5)
  with pytest.raises(DataError, match=r"logits: has 10 rows but features has"):
    jax_al.select("margin", features=x, logits=p[:10], budget=5)
  with pytest.raises(DataError, match=r"labeled.features: has 3 dimensions"):
    jax_al.select("coreset", features=x, budget=5,
                  labeled={"features": np.zeros((4, 3))})


@pytest.mark.parametrize("strategy", ["coreset", "users", "badge", "typiclust"])
def test_features_too_large_for_float32_distances_are_refused(digits, strategy):
  """Finite features whose squared distances overflow float32 gave NaN scores
  and repeated picks (coreset: rows 2, 3, 2, 3, 2); now one line, before selecting."""
  x, p, labeled = digits
  huge = x.astype(np.float32) * np.float32(1e30)
  with pytest.raises(DataError, match=r"features: .*overflow float32.*standardise") as e:
    jax_al.select(strategy, features=huge, probs=p, labeled=labeled, budget=5)
  assert "\n" not in str(e.value)
  # Large but safe values still select, with distinct picks and finite scores.
  big = x.astype(np.float32) * np.float32(1e6)
  picks = jax_al.select(strategy, features=big, probs=p, labeled=labeled, budget=5)
  assert len(set(picks.indices.tolist())) == 5 and np.isfinite(picks.scores).all()


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("take", [False, True])
def test_to_device_in_blocks_equals_numpy(monkeypatch, axis, take):
  # Blocks of 64 rows, a last partial block, rows along axis 0 or 1
  # ([S, N, C] sample logits): the device array equals NumPy's indexing.
  shape = (1000, 3) if axis == 0 else (9, 1000, 3)
  a = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  n = a.shape[axis]
  rows = np.sort(np.random.default_rng(1).choice(n, n // 2, replace=False)) if take else None
  monkeypatch.setattr(selection, "BLOCK_BYTES", 4 * int(np.prod(a.shape)) // n * 64)
  got = np.asarray(selection.to_device(a, rows, axis=axis))
  np.testing.assert_array_equal(got, a if rows is None else np.take(a, rows, axis=axis))


def test_arrays_a_strategy_does_not_read_are_not_scanned():
  # margin reads only the logits: a NaN in the features changes nothing (the
  # features are neither scanned nor sent to the device); coreset reads them
  # and refuses the NaN in one line naming its row.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(50, 4)).astype(np.float32)
  lg = rng.normal(size=(50, 3)).astype(np.float32)
  clean = jax_al.select("margin", features=x, logits=lg, budget=5)
  x[7, 2] = np.nan
  np.testing.assert_array_equal(
      jax_al.select("margin", features=x, logits=lg, budget=5).indices, clean.indices)
  with pytest.raises(DataError, match="row 7"):
    jax_al.select("coreset", features=x, budget=5)


def test_a_setting_that_cannot_fit_is_refused_before_selecting(digits):
  # The loop's memory estimate, on the arrays given: repeats=10000 (the
  # allowed maximum) with the per-sample MMD once compiled for minutes and
  # then ran out of memory.
  x, p, labeled = digits
  with pytest.raises(ConfigError) as e:
    jax_al.select("users", features=x, probs=p, labeled=labeled, budget=10, repeats=10000)
  msg = str(e.value)
  assert e.value.field == "repeats" and ("of host memory" in msg or "of device memory" in msg)
  assert "al." not in msg and "e.g." in msg, msg
  fits = int(msg.rsplit("e.g. ", 1)[1].split()[0].rstrip(",;"))
  assert 1 <= fits < 10000


def test_a_far_slower_setting_warns_and_still_selects(digits):
  x, p, labeled = digits
  with pytest.warns(selection.SlowSettingsWarning, match=r"block=1 \(default 1024\).*x the "
                    r"work.*the selection will be"):
    got = jax_al.select("coreset", features=x, probs=p, labeled=labeled, budget=5, block=1)
  ref = jax_al.select("coreset", features=x, probs=p, labeled=labeled, budget=5)
  np.testing.assert_array_equal(got.indices, ref.indices)
