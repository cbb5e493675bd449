"""Baseline strategies against their defining properties, on sklearn digits.

The first section is the template every registered strategy goes through
(`strategies.names()`): valid, budget-sized, unique, in-range indices with
finite stats, deterministic in the key, a selection (or a refusal from
`check`) with no labeled set, degenerate pools, and `check` refusing a
budget above the candidates. A new strategy gets these tests by registering.

Features are the 64 raw pixels (integers 0..16, so float32 squared distances
are exact and greedy choices can be compared with NumPy tie for tie); logits
come from a logistic regression fitted on a small labeled set, so that the
pool has a realistic spread of confident and unsure points.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from configs.common import base
from jax_al.errors import ConfigError
from jax_al import strategies
from jax_al.scores import distances
from jax_al.strategies import Pool, get_strategy
from jax_al.strategies import badge as badge_lib
from jax_al.strategies import typiclust as typiclust_lib

ALL = strategies.names()  # every registered strategy
# The MMD term compares candidates with the labeled set: with none, check()
# refuses the run (al.initial) instead of selecting.
NEEDS_LABELED = {"uncertainty_mmd"}
NUM_LABELED, NUM_POOL, BUDGET = 40, 1000, 30


@pytest.fixture(scope="module")
def cfg():
  c = base().al
  c.block = 64  # small, so the block-wise paths run over several blocks
  return c


@pytest.fixture(scope="module")
def digits():
  x, y = load_digits(return_X_y=True)
  x = x.astype(np.float32)
  # A fixed shuffle so the labeled set covers all classes.
  perm = np.random.RandomState(0).permutation(len(x))
  x, y = x[perm], y[perm]
  lab = slice(0, NUM_LABELED)
  clf = LogisticRegression(max_iter=2000).fit(x[lab] / 16.0, y[lab])
  logits = clf.decision_function(x / 16.0).astype(np.float32)
  return x, logits


def with_samples(p: Pool, num: int = 8) -> Pool:
  """`p` with what the model-based strategies read: stochastic predictions
  (bald, variation_ratio, ensembles), its logits under `num` fixed
  perturbations; predicted losses (learning_loss), the logits' entropy plus
  noise, as a loss module trained on the labeled set would roughly give."""
  rs = np.random.RandomState(1)
  noise = rs.normal(size=(num, *p.logits.shape)).astype(np.float32)
  ent = -jnp.sum(jax.nn.softmax(p.logits) * jax.nn.log_softmax(p.logits), -1)
  loss = ent + 0.1 * jnp.asarray(rs.normal(size=p.logits.shape[0]).astype(np.float32))
  return dataclasses.replace(p, sample_logits=p.logits[None] + jnp.asarray(noise),
                             predicted_loss=loss)


def make_pool(x, logits, num_labeled=NUM_LABELED, num_pool=NUM_POOL):
  cand = slice(num_labeled, num_labeled + num_pool)
  return with_samples(Pool(features=jnp.asarray(x[cand]), logits=jnp.asarray(logits[cand]),
                           labeled_features=jnp.asarray(x[:num_labeled]),
                           labeled_logits=jnp.asarray(logits[:num_labeled]),
                           num_classes=logits.shape[1]))


@pytest.fixture(scope="module")
def pool(digits):
  return make_pool(*digits)


def assert_valid(sel, n, budget):
  idx = sel.indices
  assert isinstance(idx, np.ndarray) and idx.dtype == np.int64
  assert idx.shape == (budget,)
  assert len(np.unique(idx)) == budget
  assert idx.min() >= 0 and idx.max() < n
  for k, v in sel.stats.items():
    assert isinstance(v, float) and np.isfinite(v), (k, v)


# ---- every strategy -----------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
@pytest.mark.slow
def test_contract_and_determinism(name, cfg, pool):
  s = get_strategy(name, cfg)
  s.check(pool.size, BUDGET, pool.num_classes, NUM_LABELED)
  a = s.select(pool, BUDGET, jax.random.key(3))
  b = s.select(pool, BUDGET, jax.random.key(3))
  assert_valid(a, pool.size, BUDGET)
  np.testing.assert_array_equal(a.indices, b.indices)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.slow
def test_no_labeled_set(name, cfg, digits):
  x, logits = digits
  p = make_pool(x, logits, num_labeled=0, num_pool=300)
  s = get_strategy(name, cfg)
  if name in NEEDS_LABELED:
    with pytest.raises(ConfigError, match="al.initial"):
      s.check(300, 20, 10, num_labeled=0)
    return
  s.check(300, 20, 10, num_labeled=0)
  assert_valid(s.select(p, 20, jax.random.key(0)), 300, 20)


def _degenerate_pools(x, logits):
  n = 200
  const = Pool(jnp.ones((n, 64)), jnp.zeros((n, 10)), jnp.ones((5, 64)),
               jnp.zeros((5, 10)), 10)
  # Four distinct images repeated: far fewer distinct points than the budget.
  rep = np.tile(x[:4], (n // 4, 1))
  rep_logits = np.tile(logits[:4], (n // 4, 1))
  dup = Pool(jnp.asarray(rep), jnp.asarray(rep_logits), jnp.asarray(x[:3]),
             jnp.asarray(logits[:3]), 10)
  # Saturated logits: one-hot probabilities, zero gradient embeddings.
  sat = Pool(jnp.asarray(x[:n]), jnp.asarray(1e4 * np.eye(10)[np.arange(n) % 10],
                                             dtype=jnp.float32),
             jnp.asarray(x[n:n + 5]), jnp.zeros((5, 10)), 10)
  return {k: with_samples(v) for k, v in
          {"constant": const, "duplicated": dup, "saturated": sat}.items()}


@pytest.mark.parametrize("case", ["constant", "duplicated", "saturated"])
@pytest.mark.parametrize("name", ALL)
@pytest.mark.slow
def test_degenerate_inputs(name, case, cfg, digits):
  p = _degenerate_pools(*digits)[case]
  sel = get_strategy(name, cfg).select(p, 40, jax.random.key(1))
  assert_valid(sel, p.size, 40)


@pytest.mark.parametrize("name", ALL)
def test_budget_above_candidates_is_rejected(name, cfg):
  with pytest.raises(ConfigError, match="al.budget"):
    get_strategy(name, cfg).check(num_candidates=10, budget=11, num_classes=10,
                                  num_labeled=NUM_LABELED)


def test_every_strategy_is_in_the_template():
  # The template above runs over the registry, so this only pins that the
  # registry holds the strategies this file was written for.
  assert {"random", "entropy", "margin", "least_confidence", "coreset", "badge",
          "typiclust", "cluster_margin", "uncertainty_mmd"} <= set(ALL)


def test_margin_rejects_one_class(cfg):
  with pytest.raises(ConfigError, match="al.strategy"):
    get_strategy("margin", cfg).check(100, 10, num_classes=1)


# ---- uncertainty: exact top-k against NumPy ------------------------------------


def _np_probs(logits):
  z = logits.astype(np.float64)
  e = np.exp(z - z.max(1, keepdims=True))
  return e / e.sum(1, keepdims=True)


def _np_entropy(logits):
  p = _np_probs(logits)
  return -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=1)


def _np_neg_margin(logits):
  p = np.sort(_np_probs(logits), axis=1)
  return -(p[:, -1] - p[:, -2])


def _np_least_confidence(logits):
  return 1.0 - _np_probs(logits).max(1)


@pytest.mark.parametrize("name,ref", [("entropy", _np_entropy),
                                      ("margin", _np_neg_margin),
                                      ("least_confidence",
                                       _np_least_confidence)])
def test_uncertainty_picks_numpy_top_k(name, ref, cfg, pool):
  budget = 50
  scores = ref(np.asarray(pool.logits))
  order = np.argsort(-scores, kind="stable")
  # The comparison is only meaningful if the k-th and (k+1)-th scores differ
  # by more than float32 rounding.
  assert scores[order[budget - 1]] - scores[order[budget]] > 1e-5
  sel = get_strategy(name, cfg).select(pool, budget, jax.random.key(0))
  assert set(sel.indices.tolist()) == set(order[:budget].tolist())
  # Best first, like the reference.
  np.testing.assert_array_equal(sel.indices[:5], order[:5])


# ---- coreset ---------------------------------------------------------------------


def _np_k_center(x, labeled, budget):
  x, labeled = x.astype(np.float64), labeled.astype(np.float64)
  d = ((x[:, None] - labeled[None]) ** 2).sum(-1).min(1)
  picks = []
  for _ in range(budget):
    masked = d.copy()
    masked[picks] = -1
    i = int(np.argmax(masked))
    picks.append(i)
    d = np.minimum(d, ((x - x[i]) ** 2).sum(1))
  return np.array(picks)


def _radius(x, centres):
  d = ((x[:, None].astype(np.float64) - centres[None]) ** 2).sum(-1)
  return np.sqrt(d.min(1).max())


def test_coreset_matches_numpy_k_center(cfg, digits):
  x, logits = digits
  p = make_pool(x, logits, num_labeled=10, num_pool=300)
  cfg = cfg.copy_and_resolve_references()
  cfg.block = 16  # 300 x 10 split into 19 x 1 blocks of at most 16 x 16
  sel = get_strategy("coreset", cfg).select(p, 25, jax.random.key(0))
  ref = _np_k_center(np.asarray(p.features), np.asarray(p.labeled_features),
                     25)
  np.testing.assert_array_equal(sel.indices, ref)


@pytest.mark.parametrize("labeled", [10, 0])
@pytest.mark.slow
def test_coreset_lazy_search_equals_dense_and_numpy(cfg, digits, labeled):
  # Blocks of 16 rows (19 blocks, the last partial), refreshes of 3 centres
  # at a time: the lazy search picks what the dense one and NumPy pick, with
  # the same radii, also with nothing labeled (a random first centre).
  from jax_al.strategies import coreset as coreset_lib

  x, logits = digits
  p = make_pool(x, logits, num_labeled=max(labeled, 1), num_pool=300)
  lab = p.labeled_features[:labeled]
  key = jax.random.key(3)
  dense = coreset_lib.k_center_greedy(p.features, lab, 40, 16, key)
  lazy = coreset_lib.k_center_greedy_lazy(p.features, lab, 40, 16, key, chunk=3)
  np.testing.assert_array_equal(np.asarray(lazy[0]), np.asarray(dense[0]))
  for got, want in zip(lazy[1:], dense[1:]):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)
  if labeled:
    ref = _np_k_center(np.asarray(p.features), np.asarray(lab), 40)
    np.testing.assert_array_equal(np.asarray(lazy[0]), ref)
  cfg = cfg.copy_and_resolve_references()
  cfg.coreset_search, cfg.block = "lazy", 16
  sel = get_strategy("coreset", cfg).select(dataclasses.replace(
      p, labeled_features=lab), 40, key)
  np.testing.assert_array_equal(sel.indices, np.asarray(dense[0]))


@pytest.mark.slow
def test_coreset_lazy_search_ties_and_every_row(cfg):
  # Duplicated rows (many equal distances) and a budget of every row: the
  # lowest row among equal maxima wins in both searches, no row twice.
  from jax_al.strategies import coreset as coreset_lib

  x = jnp.asarray(np.repeat(np.eye(5, 8, dtype=np.float32), 7, axis=0))  # 35 rows
  lab = x[:1]
  dense = coreset_lib.k_center_greedy(x, lab, 35, 4, jax.random.key(0))
  lazy = coreset_lib.k_center_greedy_lazy(x, lab, 35, 4, jax.random.key(0), chunk=2)
  np.testing.assert_array_equal(np.asarray(lazy[0]), np.asarray(dense[0]))
  assert sorted(np.asarray(lazy[0]).tolist()) == list(range(35))


def test_coreset_radius_beats_random(cfg, pool):
  x, lab = np.asarray(pool.features), np.asarray(pool.labeled_features)
  sel = get_strategy("coreset", cfg).select(pool, BUDGET, jax.random.key(0))
  r_core = _radius(x, np.concatenate([lab, x[sel.indices]]))
  assert np.isclose(r_core, sel.stats["radius_after"], rtol=1e-4)
  rand = get_strategy("random", cfg)
  r_rand = [
      _radius(x, np.concatenate(
          [lab, x[rand.select(pool, BUDGET, jax.random.key(s)).indices]]))
      for s in range(5)]
  assert r_core <= np.mean(r_rand)


# ---- badge ----------------------------------------------------------------------


def _np_embedding(logits, features):
  p = _np_probs(logits)
  a = p - np.eye(p.shape[1])[p.argmax(1)]
  return (a[:, :, None] * features.astype(np.float64)[:, None, :]).reshape(
      len(p), -1)


@pytest.mark.slow
def test_badge_embedding_matches_closed_form(pool):
  logits, feats = np.asarray(pool.logits), np.asarray(pool.features)
  ref = _np_embedding(logits, feats)
  got = np.asarray(badge_lib.gradient_embedding(pool.logits, pool.features))
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
  # The factorised distances used by the seeding equal distances between
  # the explicit embeddings.
  a, h = badge_lib.gradient_factors(pool.logits, pool.features)
  g_sq = jnp.sum(a * a, -1) * jnp.sum(h * h, -1)
  for i in (0, 17, 512):
    d = np.asarray(badge_lib.sq_dists_to_point(a, h, g_sq, jnp.asarray(i)))
    ref_d = ((ref - ref[i]) ** 2).sum(1)
    np.testing.assert_allclose(d, ref_d, rtol=1e-3, atol=1e-2)


def test_badge_favours_large_gradients(cfg, pool):
  norms = np.linalg.norm(
      _np_embedding(np.asarray(pool.logits), np.asarray(pool.features)), axis=1)
  sel = get_strategy("badge", cfg).select(pool, BUDGET, jax.random.key(0))
  assert norms[sel.indices].mean() > norms.mean()
  assert sel.indices[0] == np.argmax(norms)  # the seeding starts there
  assert np.isclose(sel.stats["gnorm_picked_mean"],
                    norms[sel.indices].mean(), rtol=1e-4)


def test_badge_seeds_differ_with_rng(cfg, pool):
  s = get_strategy("badge", cfg)
  a = s.select(pool, BUDGET, jax.random.key(0)).indices
  b = s.select(pool, BUDGET, jax.random.key(1)).indices
  assert not np.array_equal(a, b)


# ---- typiclust ---------------------------------------------------------------


def test_typiclust_one_point_per_largest_uncovered_cluster(cfg, pool):
  s = get_strategy("typiclust", cfg)
  rng = jax.random.key(0)
  _, cand, lab, typ = (np.asarray(v) for v in s.plan(pool, BUDGET, rng))
  sel = s.select(pool, BUDGET, rng)
  uncovered = np.setdiff1d(np.unique(cand), lab)
  assert len(uncovered) >= BUDGET  # 40 labeled + 30 budget = 70 clusters
  picked = cand[sel.indices]
  assert len(np.unique(picked)) == BUDGET  # at most one per cluster
  assert np.isin(picked, uncovered).all()  # only uncovered clusters
  size = np.bincount(np.concatenate([cand, lab]), minlength=cand.max() + 1)
  skipped = np.setdiff1d(uncovered, picked)
  assert size[picked].min() >= size[skipped].max()  # the largest ones
  for i, c in zip(sel.indices, picked):  # the most typical of each
    assert typ[i] == typ[cand == c].max()


def test_typiclust_typicality_matches_numpy(cfg, pool):
  x = np.asarray(pool.features).astype(np.float64)
  _, cand, _, typ = (np.asarray(v) for v in
                     get_strategy("typiclust", cfg).plan(pool, BUDGET,
                                                         jax.random.key(0)))
  for c in np.unique(cand)[:10]:
    members = np.flatnonzero(cand == c)
    d = np.sqrt(((x[members, None] - x[None, members]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    k = min(typiclust_lib.TYPICALITY_K, len(members) - 1)
    if k == 0:
      assert typ[members[0]] == 0
      continue
    ref = 1.0 / np.sort(d, axis=1)[:, :k].mean(1)
    np.testing.assert_allclose(typ[members], ref, rtol=1e-3)


@pytest.mark.slow
def test_typiclust_fill_order_is_round_robin():
  # Clusters 0..3; labeled points in cluster 1 only. Candidates: cluster 0
  # has 3, cluster 1 has 4, cluster 2 has 1, cluster 3 has 2.
  assign = jnp.array([0, 1, 0, 1, 2, 1, 3, 0, 1, 3])
  typ = jnp.array([.5, .9, .7, .1, .3, .8, .2, .6, .4, .9])
  lab = jnp.array([1, 1])
  order = np.asarray(typiclust_lib.round_robin_order(assign, typ, lab, 4))
  # Cluster order: uncovered by size (0: 3, 3: 2, 2: 1), then covered 1.
  # Round 0: best of 0 (pos 2), 3 (pos 9), 2 (pos 4), 1 (pos 1);
  # round 1: 0 (pos 7), 3 (pos 6), 1 (pos 5); round 2: 0 (pos 0), 1 (pos 8);
  # round 3: 1 (pos 3).
  np.testing.assert_array_equal(order, [2, 9, 4, 1, 7, 6, 5, 0, 8, 3])


def test_typiclust_caps_clusters():
  assert typiclust_lib.num_clusters(40, 1000, 30) == 70
  assert typiclust_lib.num_clusters(5000, 10000, 2500) == \
      typiclust_lib.MAX_CLUSTERS
  assert typiclust_lib.num_clusters(0, 3, 3) == 3


# ---- block-wise distances --------------------------------------------------------


def _knn_reference(x, groups, k):
  """Count and distance sum of each point's k nearest group mates, float64."""
  d = np.sqrt(((x[:, None].astype(np.float64) - x[None]) ** 2).sum(-1))
  d[groups[:, None] != groups[None, :]] = np.inf
  np.fill_diagonal(d, np.inf)
  near = np.sort(d, axis=1)[:, :k]
  found = np.isfinite(near)
  return found.sum(1), np.where(found, near, 0).sum(1)


@pytest.mark.parametrize("block", [1, 7, 64, 4096])
def test_knn_within_groups_matches_brute_force(block):
  rng = np.random.RandomState(0)
  x = rng.randn(203, 5).astype(np.float32)
  x[50:54] = x[10]  # exact duplicates: neighbours at distance 0
  # Group sizes from 1 (no neighbour) through fewer than k + 1 to many, in
  # no particular order of the rows.
  groups = rng.permutation(np.repeat(np.arange(7), [1, 3, 6, 13, 40, 60, 80]))
  groups[10], groups[50:54] = groups[52], groups[52]
  k = 6
  layout = distances.group_layout(groups, block)
  count, total = distances.knn_dist_sums(
      jnp.asarray(x), jnp.asarray(groups), jnp.asarray(layout.order),
      jnp.asarray(layout.starts), k, layout.rows, layout.width)
  ref_count, ref_total = _knn_reference(x[layout.order], groups[layout.order], k)
  np.testing.assert_array_equal(np.asarray(count), ref_count)
  np.testing.assert_allclose(np.asarray(total), ref_total, rtol=1e-5, atol=1e-5)
  assert set(ref_count) == {0, 2, 5, 6}  # the cases above all occur


def test_group_layout_spans_hold_every_group_mate():
  rng = np.random.RandomState(1)
  groups = rng.randint(0, 30, size=5000)
  groups[:2500] = 3  # one group of half the pool
  for block in (1, 64, 1024):
    layout = distances.group_layout(groups, block)
    g = groups[layout.order]
    assert (np.diff(g) >= 0).all() and sorted(layout.order) == list(range(5000))
    assert layout.width % 128 == 0 or layout.width == 5000
    assert layout.rows * layout.width <= 8 * block * block or layout.rows <= 8
    assert len(layout.starts) == -(-5000 // layout.rows)
    for b, lo in enumerate(layout.starts):
      top = min(b * layout.rows, 5000 - layout.rows)  # the last block overlaps
      rows = g[top:top + layout.rows]
      mates = np.flatnonzero(np.isin(g, rows))
      assert lo <= mates.min() and mates.max() < lo + layout.width
  # The large group bounds the span: blocks shrink so the matrix stays small.
  assert distances.group_layout(groups, 64).rows < 64



@pytest.mark.parametrize("block", [1, 7, 64, 4096])
@pytest.mark.slow
def test_blockwise_distances_match_brute_force(block):
  rng = np.random.RandomState(0)
  x = rng.randn(53, 5).astype(np.float32)
  y = rng.randn(29, 5).astype(np.float32)
  full = ((x[:, None].astype(np.float64) - y[None]) ** 2).sum(-1)
  np.testing.assert_allclose(
      distances.min_sq_dists(jnp.asarray(x), jnp.asarray(y), block),
      full.min(1), rtol=1e-5, atol=1e-5)
  assert distances.min_sq_dists(jnp.asarray(x), jnp.zeros((0, 5)),
                                block).tolist() == [np.inf] * 53
