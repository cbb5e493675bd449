"""The `uncertainty_mmd` and `cluster_margin` strategies on real features.

Features are scikit-learn digits pixels (64-d), logits one-hot-ish from the
true labels. The score building blocks are checked against NumPy and
scikit-learn in test_scores.py; here: every option runs, picks exactly
`budget` distinct candidates, is reproducible, and bad settings raise
ConfigError naming the field.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from configs import common
from jax_al import config as config_lib
from jax_al.errors import ConfigError
from jax_al.scores import normalize as norm_lib
from jax_al.strategies import Pool, get_strategy
from jax_al.strategies import uncertainty_mmd as um

BUDGET = 25
STAT_KEYS = {"u_min", "u_median", "u_max", "mmd_min", "mmd_median", "mmd_max",
             "sigma"}


@functools.lru_cache(maxsize=None)
def digits_pool(num_candidates=3 * 128 + 4, num_labeled=60) -> Pool:
  # 3 minibatches of 128 and a tail of 4 < K = 10, merged into the third.
  x, y = load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32)
  rng = np.random.default_rng(0)
  perm = rng.permutation(len(x))
  cand, lab = perm[:num_candidates], perm[num_candidates:][:num_labeled]
  logits = (3.0 * np.eye(10)[y] + rng.normal(size=(len(x), 10))).astype(
      np.float32)
  return Pool(features=jnp.asarray(x[cand]), logits=jnp.asarray(logits[cand]),
              labeled_features=jnp.asarray(x[lab]),
              labeled_logits=jnp.asarray(logits[lab]), num_classes=10)


def al_config(**overrides):
  c = common.base().al
  c.strategy = "uncertainty_mmd"
  for name, value in overrides.items():
    node = c
    *parents, leaf = name.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def check_selection(sel, n, budget=BUDGET):
  idx = sel.indices
  assert idx.dtype == np.int64 and idx.shape == (budget,)
  assert len(np.unique(idx)) == budget
  assert idx.min() >= 0 and idx.max() < n
  assert all(np.isfinite(v) for v in sel.stats.values())


def check_all(strategy, num_candidates, budget, num_classes, num_labeled=None):
  """What a run checks before training: the fields and the rules between
  them (config.check_al), then the sizes (the strategy's check)."""
  config_lib.check_al(strategy.cfg)
  strategy.check(num_candidates, budget, num_classes, num_labeled)


def run(strategy, pool, seed=0, budget=BUDGET):
  check_all(strategy, pool.size, budget, pool.num_classes,
            pool.labeled_features.shape[0])
  return strategy.select(pool, budget, jax.random.key(seed))


# One compilation per case; every value of every static field appears, and
# within each case the traced fields (normalize x sign) run in full.
CASES = [
    dict(),  # the users' default: batch/batch, per_sample, inverse
    dict(u_scope="global", mmd_scope="global", term="witness"),
    dict(mmd_scope="global", term="decrease", estimator="unbiased"),
    dict(u_scope="global", term="witness", approx="rff", rff_dim=512),
    dict(term="decrease", approx="rff", rff_dim=512),
    dict(mmd_scope="global", approx="rff", rff_dim=512, estimator="unbiased",
         transform="neg_gap"),
    dict(u_scope="global", **{"kmeans.n_init": 2}),  # k-means++: test_scores
    dict(mode="greedy", mmd_scope="global"),
    dict(mode="greedy", mmd_scope="global", u_scope="global", approx="rff",
         rff_dim=512, estimator="unbiased", sigma=2.0),
]


def _label(case):
  return ",".join(f"{k}={v}" for k, v in case.items()) or "default"


@pytest.mark.parametrize("case", CASES, ids=[_label(c) for c in CASES])
@pytest.mark.slow
def test_every_option_picks_budget_unique_reproducible(case):
  pool = digits_pool()
  greedy = case.get("mode") == "greedy"
  for norm, sign in itertools.product(norm_lib.METHODS, (1, -1)):
    if greedy and sign == -1:
      continue  # sign does not apply to greedy mode
    extra = dict(greedy_weight=0.0) if greedy and norm == "none" else {}
    strategy = get_strategy("uncertainty_mmd", al_config(
        **case, **extra, normalize=norm, sign=sign))
    sel = run(strategy, pool)
    check_selection(sel, pool.size)
    assert STAT_KEYS <= set(sel.stats)
    assert sel.stats["sigma"] > 0
    if case.get("transform", "inverse") == "inverse":
      assert sel.stats["u_min"] > 0
    if norm == "none":  # reproducible (once per case: each run costs)
      np.testing.assert_array_equal(run(strategy, pool).indices, sel.indices)
    if greedy:
      assert sel.stats["mmd2_after"] < sel.stats["mmd2_before"]


@pytest.mark.slow
@pytest.mark.parametrize("case", [
    dict(term=t, u_scope=us, mmd_scope=ms, approx=a, rff_dim=512)
    for t, us, ms, a in itertools.product(
        ("per_sample", "witness", "decrease"), um.SCOPES, um.SCOPES,
        um.APPROX)] + [
    dict(mode="greedy", mmd_scope="global", u_scope=us, approx=a,
         rff_dim=512, normalize="rank")
    for us, a in itertools.product(um.SCOPES, um.APPROX)])
def test_full_product_of_static_options(case):
  pool = digits_pool()
  strategy = get_strategy("uncertainty_mmd", al_config(**case))
  sel = run(strategy, pool)
  check_selection(sel, pool.size)
  np.testing.assert_array_equal(run(strategy, pool).indices, sel.indices)


@pytest.mark.slow
def test_traced_fields_do_not_recompile():
  pool = digits_pool()
  before = None
  for lam, sign, norm, gw in [(1.0, 1, "none", 1.0), (0.3, -1, "rank", 0.0),
                              (50.0, 1, "zscore", 2.0)]:
    run(get_strategy("uncertainty_mmd", al_config(
        lam=lam, sign=sign, normalize=norm, greedy_weight=gw)), pool)
    size = um.select_indices._cache_size()  # pylint: disable=protected-access
    before = size if before is None else before
    assert size == before


def test_default_preset_is_dominated_by_uncertainty():
  # The users' observation: with raw scales, lam = 1 and normalize none the
  # MMD term barely changes the picks.
  pool = digits_pool()
  both = run(get_strategy("uncertainty_mmd", al_config()), pool)
  alone = run(get_strategy("uncertainty_mmd", al_config(use_mmd=False)), pool)
  assert set(alone.stats) == {"u_min", "u_median", "u_max"}
  overlap = len(set(both.indices) & set(alone.indices)) / BUDGET
  assert overlap >= 0.8
  assert both.stats["u_max"] > 100 * both.stats["mmd_max"]


def test_cluster_margin_strategy_is_uncertainty_alone():
  pool = digits_pool()
  cfg = al_config(u_scope="global", term="nonsense")  # MMD fields not read
  # (config.check_al would refuse the typo; the strategy never looks at it)
  strategy = get_strategy("cluster_margin", cfg)
  strategy.check(pool.size, BUDGET, pool.num_classes, 60)
  sel = strategy.select(pool, BUDGET, jax.random.key(0))
  check_selection(sel, pool.size)
  ref = run(get_strategy("uncertainty_mmd",
                         al_config(u_scope="global", use_mmd=False)), pool)
  np.testing.assert_array_equal(sel.indices, ref.indices)


def test_different_seeds_differ_and_labeled_bucket():
  pool = digits_pool()
  s = get_strategy("uncertainty_mmd", al_config())
  assert not np.array_equal(run(s, pool, seed=0).indices,
                            run(s, pool, seed=1).indices)
  assert [um.labeled_bucket(m, 4096) for m in (1, 5, 8, 9, 4096, 4097)] == [
      2, 8, 8, 16, 4096, 8192]


@pytest.mark.parametrize("field,value", [
    ("transform", "inverse_gap"), ("u_scope", "pool"), ("mmd_scope", "all"),
    ("term", "witnes"), ("sign", 0), ("sign", 2), ("lam", -1.0),
    ("lam", float("nan")), ("normalize", "softmax"), ("mode", "top"),
    ("repeats", 0), ("draw_size", 0), ("estimator", "mle"), ("approx", "nys"),
    ("rff_dim", 7), ("rff_dim", 0), ("sigma", -1.0), ("block", 0),
    ("greedy_weight", -0.5), ("batch", 0), ("kmeans.init", "kmeans++"),
    ("kmeans.n_init", 0), ("kmeans.max_iter", 0), ("kmeans.tol", -1.0),
    ("k", 1), ("k", 389), ("k", 129),
])
def test_bad_values_raise_config_error_naming_the_field(field, value):
  strategy = get_strategy("uncertainty_mmd", al_config(**{field: value}))
  with pytest.raises(ConfigError, match=f"al.{field}") as info:
    check_all(strategy, 388, BUDGET, 10)
  assert repr(value) in str(info.value) or str(value) in str(info.value)


@pytest.mark.parametrize("overrides,field", [
    (dict(estimator="unbiased", draw_size=1), "al.draw_size"),
    (dict(mode="greedy"), "al.mmd_scope"),  # default scope is batch
    (dict(mode="greedy", mmd_scope="global", normalize="none"),
     "al.normalize"),
    (dict(mode="greedy", mmd_scope="global", use_mmd=False), "al.mode"),
    (dict(k=200, u_scope="global"), "al.k"),
])
def test_inconsistent_settings_raise(overrides, field):
  strategy = get_strategy("uncertainty_mmd", al_config(**overrides))
  with pytest.raises(ConfigError, match=field):
    check_all(strategy, 100, 10, 10)
  with pytest.raises(ConfigError, match="al.budget"):
    check_all(get_strategy("uncertainty_mmd", al_config()), 100, 101, 10)


def test_too_few_labeled_points_raise():
  pool = digits_pool()
  pool = Pool(pool.features, pool.logits, pool.labeled_features[:1],
              pool.labeled_logits[:1], 10)
  s = get_strategy("uncertainty_mmd",
                   al_config(term="decrease", estimator="unbiased"))
  with pytest.raises(ConfigError, match="al.initial"):
    s.select(pool, BUDGET, jax.random.key(0))
  # check() knows the labeled count too, so a run refuses this before training
  # (tests/test_bad_input.py: too_few_labeled_for_the_mmd).
  with pytest.raises(ConfigError, match="al.initial") as e:
    s.check(pool.size, BUDGET, 10, num_labeled=1)
  assert "at least 2 labeled points" in str(e.value)
  s.check(pool.size, BUDGET, 10, num_labeled=2)
  s.check(pool.size, BUDGET, 10)  # labeled count unknown: not checked
  with pytest.raises(ConfigError, match="al.initial"):
    get_strategy("uncertainty_mmd", al_config()).check(pool.size, BUDGET, 10, num_labeled=0)
  get_strategy("uncertainty_mmd", al_config(use_mmd=False)).check(
      pool.size, BUDGET, 10, num_labeled=0)  # uncertainty alone needs none


def test_field_values_are_checked_by_the_config_table_alone():
  # One place per field: the strategy's check covers sizes only.
  bad = get_strategy("uncertainty_mmd", al_config(term="witnes", sign=0, rff_dim=7))
  bad.check(388, BUDGET, 10, num_labeled=60)
  with pytest.raises(ConfigError, match="al.term"):
    config_lib.check_al(bad.cfg)


@pytest.mark.parametrize("case", [
    dict(), dict(u_scope="global", mmd_scope="global", term="witness"),
    dict(mode="greedy", mmd_scope="global", normalize="rank"),
    dict(use_mmd=False), dict(utility="margin", term="witness", approx="rff", rff_dim=512),
], ids=["default", "witness", "greedy", "no_mmd", "softmax_rff"])
@pytest.mark.slow
def test_raw_terms_are_what_select_ranked(case):
  pool = digits_pool()
  s = get_strategy("uncertainty_mmd", al_config(**case))
  key = jax.random.key(4)
  sel = s.select(pool, BUDGET, key)
  terms = s.raw_terms(pool, key, budget=BUDGET)  # the very program select ran
  u, t = terms["u"], terms["t"]
  assert u.shape == (pool.size,) and u.dtype == np.float32
  for name, v in (("u", u), ("mmd", t)):
    if name == "mmd" and not case.get("use_mmd", True):
      assert t is None and terms["sigma"] is None
      assert "mmd_min" not in sel.stats
      continue
    assert v.shape == (pool.size,)
    assert float(v.min()) == sel.stats[f"{name}_min"]
    assert float(v.max()) == sel.stats[f"{name}_max"]
    assert np.isclose(np.median(v), sel.stats[f"{name}_median"], rtol=1e-6, atol=0)
  if t is not None:
    assert terms["sigma"] == sel.stats["sigma"]
  # The terms do not depend on the budget: the default (1) gives them too.
  again = s.raw_terms(pool, key)
  np.testing.assert_allclose(again["u"], u, rtol=1e-6)
  if t is not None:
    np.testing.assert_allclose(again["t"], t, rtol=1e-5, atol=1e-7)
    assert np.isclose(again["sigma"], terms["sigma"], rtol=1e-6)
  # In top-k mode select's picks are the top-k of norm(u) + lam * sign * norm(t).
  if t is not None and s.cfg.mode == "topk" and s.cfg.normalize == "none":
    score = u.astype(np.float64) + s.cfg.lam * s.cfg.sign * t
    assert set(np.argsort(-score, kind="stable")[:BUDGET - 5]) <= set(sel.indices)
