"""Score building blocks against independent references (NumPy, scikit-learn)."""

from __future__ import annotations

import functools

import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs

from jax_al.scores import cluster_margin, distances, greedy, kmeans, minibatch, mmd
from jax_al.scores import normalize as norm_lib


# ----------------------------------------------------------- references


def np_kernel(a, b, sigma):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  d2 = ((a[:, None, :] - b[None, :, :])**2).sum(-1)
  return np.exp(-d2 / (2 * sigma**2))


def np_mmd2(p, q, sigma, unbiased=False):
  kpp, kqq, kpq = np_kernel(p, p, sigma), np_kernel(q, q, sigma), np_kernel(
      p, q, sigma)
  if unbiased:
    n, m = len(p), len(q)
    return ((kpp.sum() - np.trace(kpp)) / (n * (n - 1))
            + (kqq.sum() - np.trace(kqq)) / (m * (m - 1)) - 2 * kpq.mean())
  return kpp.mean() + kqq.mean() - 2 * kpq.mean()


def np_decrease(x, u, l, sigma, unbiased=False):
  """MMD^2(L, U) - MMD^2(L + {x}, U), literally, for every row of x."""
  before = np_mmd2(l, u, sigma, unbiased)
  return np.array([before - np_mmd2(np.vstack([l, xi[None]]), u, sigma,
                                    unbiased) for xi in x])


def np_witness(x, u, l, sigma):
  return np_kernel(x, u, sigma).mean(1) - np_kernel(x, l, sigma).mean(1)


def jitted(fn, **static):
  """fn jitted with keyword arguments fixed: one compilation per call shape.

  Calling the score functions eagerly compiles every primitive separately
  for every shape, which costs more than the tests themselves.
  """
  return jax.jit(functools.partial(fn, **static))


@functools.lru_cache(maxsize=None)
def digits():
  x, y = load_digits(return_X_y=True)
  return (x / 16.0).astype(np.float32), y


def split_points(n, batch, min_size):
  full, tail = minibatch.layout(n, batch, min_size)
  bounds = [(i * batch, (i + 1) * batch) for i in range(full)]
  if tail:
    bounds.append((full * batch, n))
  return bounds


# ------------------------------------------------------------- minibatch


@pytest.mark.parametrize("n,batch,min_size,want", [
    (300, 64, 5, (4, 44)), (195, 64, 5, (2, 67)), (256, 64, 5, (4, 0)),
    (3, 64, 1, (0, 3)), (130, 128, 10, (0, 130))])
def test_layout(n, batch, min_size, want):
  assert minibatch.layout(n, batch, min_size) == want
  ids = minibatch.batch_ids(n, batch, min_size)
  assert len(ids) == n and np.all(np.diff(ids) >= 0)
  assert minibatch.num_batches(n, batch, min_size) == ids.max() + 1


# ---------------------------------------------------------------- k-means


@pytest.mark.parametrize("init", ["random", "k-means++"])
@pytest.mark.slow
def test_kmeans_inertia_matches_sklearn(init):
  x, _ = make_blobs(n_samples=600, centers=6, n_features=8, cluster_std=1.5,
                    random_state=0)
  ref = KMeans(n_clusters=6, n_init=10, random_state=0).fit(x).inertia_
  f = jax.jit(functools.partial(kmeans.kmeans, k=6, init=init, n_init=10))
  out = f(jnp.asarray(x, jnp.float32), jax.random.key(0))
  assert float(out.error) == pytest.approx(ref, rel=0.01)
  direct = ((x - np.asarray(out.centroids)[np.asarray(out.assignment)])**2).sum()
  assert float(out.error) == pytest.approx(direct, rel=1e-4)


def _ott_kmeans_pp(x, rng, k, n_init, max_iter, tol):
  from ott.tools import k_means
  out = k_means.k_means(x, k, init="k-means++", n_init=n_init, tol=tol,
                        max_iterations=max_iter, rng=rng)
  return out.assignment.astype(jnp.int32), out.centroids


def _real_valued(n, d, seed=0):
  # Digits' pixels are small integers, whose products float32 holds exactly;
  # real values show any difference in the order of additions.
  r = np.random.default_rng(seed)
  means = r.normal(size=(12, d))
  return (means[r.integers(0, 12, n)] + r.normal(size=(n, d))).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("pool, k, settings, rows", [
    ("digits", 10, {}, None),             # one block
    ("digits", 150, {}, 64),              # 29 blocks, the last one overlapping
    ("digits", 60, {"n_init": 3}, 500),   # restarts: the lowest inertia kept
    ("digits", 60, {"max_iter": 3}, None),  # stopped by the cap: assigned once more
    ("digits", 60, {"tol": 10.0}, None),    # stopped by the tolerance
    ("real", 500, {}, 777),               # TypiClust's cap, real values, 6 blocks
])
def test_blocked_kmeans_is_ott_kmeans_to_the_bit(pool, k, settings, rows):
  # TypiClust's committed results were made with ott-jax's k_means; the
  # blocked k-means must give its clusters.
  x = digits()[0] if pool == "digits" else _real_valued(4000, 384)
  x = x[np.random.default_rng(0).permutation(len(x))]
  kw = dict(n_init=1, max_iter=100, tol=1e-4) | settings
  rng = jax.random.key(7)
  want_a, want_c = jax.jit(_ott_kmeans_pp, static_argnums=(2, 3, 4, 5))(
      jnp.asarray(x), rng, k, kw["n_init"], kw["max_iter"], kw["tol"])
  rows = rows or kmeans.assign_rows(k, x.shape[1])
  got = jax.jit(lambda a, r: kmeans.blocked_kmeans(a, r, k=k, rows=rows, **kw))(
      jnp.asarray(x), rng)
  np.testing.assert_array_equal(got.assignment, want_a)
  np.testing.assert_array_equal(got.centroids, want_c)
  direct = ((x - np.asarray(got.centroids)[np.asarray(got.assignment)])**2).sum()
  assert float(got.error) == pytest.approx(direct, rel=1e-3)


def test_blocked_kmeans_refuses_more_clusters_than_points():
  with pytest.raises(ValueError, match="cannot cluster 5 points into 6"):
    kmeans.blocked_kmeans(jnp.zeros((5, 3)), jax.random.key(0), k=6, rows=8)


@pytest.mark.slow
def test_cluster_margin_matches_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(50, 7)).astype(np.float32)
  c = rng.normal(size=(4, 7)).astype(np.float32)
  d = np.sqrt(((x[:, None].astype(np.float64) - c[None])**2).sum(-1))
  d.sort(axis=1)
  d1, d2 = d[:, 0], d[:, 1]
  got1, got2 = cluster_margin.two_nearest(jnp.asarray(x), jnp.asarray(c))
  np.testing.assert_allclose(got1, d1, rtol=1e-5)
  np.testing.assert_allclose(got2, d2, rtol=1e-5)
  np.testing.assert_allclose(
      cluster_margin.cluster_margin(x, c, "inverse"),
      10 / (np.abs(d1 - d2) + cluster_margin.EPS), rtol=1e-3)
  np.testing.assert_allclose(cluster_margin.cluster_margin(x, c, "neg_gap"),
                             -(d2 - d1), atol=1e-5)


def test_cluster_margin_equidistant_point_is_finite():
  c = jnp.array([[-1.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
  u = cluster_margin.cluster_margin(jnp.array([[0.0, 3.0]]), c)
  assert np.isfinite(u).all() and float(u[0]) == pytest.approx(1e7, rel=1e-3)


@pytest.mark.slow
def test_minibatch_kmeans_equals_python_loop():
  n = 195  # 3 minibatches of 64 and a 3-point tail merged (< k = 5)
  x = jnp.asarray(digits()[0][:n])
  rng = jax.random.key(3)
  kw = dict(k=5, init="random", n_init=1, max_iter=50)

  @jax.jit
  def batched(x, rng):
    out = kmeans.minibatch_kmeans(x, rng, batch=64, **kw)
    u = cluster_margin.minibatch_kmeans_margin(x, rng, batch=64, **kw)
    return out.centroids, out.assignment, u

  @jax.jit
  def one(xb, key):
    out = kmeans.kmeans(xb, key, **kw)
    return out.centroids, out.assignment, cluster_margin.cluster_margin(
        xb, out.centroids)

  centroids, assignment, u = batched(x, rng)
  bounds = split_points(n, 64, 5)
  assert bounds == [(0, 64), (64, 128), (128, 195)]
  keys = jax.random.split(rng, len(bounds))
  for i, ((a, b), key) in enumerate(zip(bounds, keys)):
    c, asg, ub = one(x[a:b], key)
    np.testing.assert_allclose(centroids[i], c, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(assignment[a:b], asg)
    np.testing.assert_allclose(u[a:b], ub, rtol=1e-4)


# -------------------------------------------------------------------- MMD


@pytest.fixture(scope="module")
def sets():
  x, _ = digits()
  rng = np.random.default_rng(1)
  idx = rng.permutation(len(x))
  return x[idx[:37]], x[idx[37:60]]  # U (candidates), L


@pytest.mark.parametrize("block", [5, 1000])
def test_kernel_matvec_blockwise_equals_dense(sets, block):
  u, l = sets
  w = np.random.default_rng(0).normal(size=(len(l), 3)).astype(np.float32)
  got = jitted(mmd.kernel_matvec, block=block)(u, l, w, 2.0)
  np.testing.assert_allclose(got, np_kernel(u, l, 2.0) @ w, rtol=1e-5,
                             atol=1e-5)


@pytest.mark.parametrize("block", [5, 1000])
def test_symmetric_kernel_sum_equals_dense(sets, block):
  u, _ = sets
  w = np.random.default_rng(0).random(len(u)).astype(np.float32)
  got = jitted(mmd.kernel_sum, block=block)(u, w, 2.0)
  assert float(got) == pytest.approx(w @ np_kernel(u, u, 2.0) @ w, rel=1e-5)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("block", [6, 4096])
@pytest.mark.slow
def test_mmd2_matches_numpy(sets, unbiased, block):
  u, l = sets
  got = jitted(mmd.mmd2, unbiased=unbiased, block=block)(l, u, 2.5)
  assert float(got) == pytest.approx(np_mmd2(l, u, 2.5, unbiased), abs=1e-5)


def test_median_sigma_small_set_is_exact(sets):
  u, _ = sets
  d = np.sqrt(((u[:, None].astype(np.float64) - u[None])**2).sum(-1))
  want = np.median(d[np.triu_indices(len(u), 1)])
  got = jitted(mmd.median_sigma)(u, jax.random.key(0))
  assert float(got) == pytest.approx(want, rel=1e-5)
  # Padding rows (weight 0) are ignored.
  padded = jnp.concatenate([jnp.asarray(u), jnp.zeros((5, u.shape[1]))])
  w = jnp.concatenate([jnp.ones(len(u)), jnp.zeros(5)])
  got = jitted(mmd.median_sigma)(padded, jax.random.key(0), weights=w)
  assert float(got) == pytest.approx(want, rel=1e-5)


def test_median_sigma_subsample_is_close():
  x = jnp.asarray(digits()[0])
  d = np.sqrt(((np.asarray(x)[:400, None] - np.asarray(x)[None, :400])**2)
              .sum(-1))
  want = np.median(d[np.triu_indices(400, 1)])
  got = jitted(mmd.median_sigma, max_points=256)(x, jax.random.key(0))
  assert float(got) == pytest.approx(want, rel=0.05)


@pytest.mark.slow
def test_median_sigma_constant_points():
  assert float(mmd.median_sigma(jnp.ones((6, 3)), jax.random.key(0))) == 1.0


@pytest.mark.parametrize("block", [7, 4096])
def test_witness_matches_numpy(sets, block):
  u, l = sets
  got = jitted(mmd.witness, block=block)(u, l, 2.0)
  np.testing.assert_allclose(got, np_witness(u, u, l, 2.0), atol=1e-5)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("block", [7, 4096])
def test_decrease_matches_numpy(sets, unbiased, block):
  u, l = sets
  got = jitted(mmd.mmd2_decrease, unbiased=unbiased, block=block)(u, l, 2.0)
  np.testing.assert_allclose(got, np_decrease(u, u, l, 2.0, unbiased),
                             atol=1e-5)


@pytest.mark.slow
def test_padded_labeled_rows_are_ignored(sets):
  u, l = sets
  pad = jnp.concatenate([jnp.asarray(l), 100 + jnp.zeros((9, l.shape[1]))])
  for fn in (mmd.witness, mmd.mmd2_decrease):
    np.testing.assert_allclose(
        jitted(fn, block=8)(u, pad, 2.0, l_count=len(l)),
        jitted(fn)(u, l, 2.0), atol=1e-6)


@pytest.mark.parametrize("unbiased", [False, True])
def test_batch_scope_uses_own_minibatch(sets, unbiased):
  u, l = sets  # 37 candidates, minibatches of 10 -> 10, 10, 17 (tail 7 < 8)
  bounds = split_points(len(u), 10, 8)
  assert bounds[-1] == (20, 37)
  wit = jitted(mmd.witness, batch=10, min_size=8)(u, l, 2.0)
  dec = jitted(mmd.mmd2_decrease, batch=10, min_size=8, unbiased=unbiased)(
      u, l, 2.0)
  for a, b in bounds:
    ub = u[a:b]
    np.testing.assert_allclose(wit[a:b], np_witness(ub, ub, l, 2.0), atol=1e-5)
    np.testing.assert_allclose(dec[a:b], np_decrease(ub, ub, l, 2.0, unbiased),
                               atol=1e-5)


@pytest.mark.parametrize("unbiased", [False, True])
def test_per_sample_matches_numpy(sets, unbiased):
  u, l = sets
  rng = np.random.default_rng(0)
  draws = l[rng.integers(0, len(l), size=(3, 8))]
  want = np.mean([[np_mmd2(xi[None], d, 2.0) if not unbiased else
                   1 + (np_kernel(d, d, 2.0).sum() - 8) / 56
                   - 2 * np_kernel(xi[None], d, 2.0).mean()
                   for d in draws] for xi in u], axis=1)
  got = jitted(mmd.per_sample_from_draws, unbiased=unbiased, block=5)(
      u, draws, 2.0)
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.slow
def test_per_sample_draws_global_and_per_batch(sets):
  u, l = sets
  x, lj, key = jnp.asarray(u), jnp.asarray(l), jax.random.key(4)
  kw = dict(repeats=3, draw_size=6)
  ref = jitted(mmd.per_sample_from_draws)
  draw = lambda k: lj[jax.random.randint(k, (3, 6), 0, len(l))]
  got = jitted(mmd.per_sample_mmd2, **kw)(x, lj, 2.0, key)
  np.testing.assert_allclose(got, ref(x, draw(key), 2.0), atol=1e-6)
  got = jitted(mmd.per_sample_mmd2, batch=10, chunk=2, **kw)(x, lj, 2.0, key)
  bounds = split_points(len(u), 10, 1)
  for (a, b), k in zip(bounds, jax.random.split(key, len(bounds))):
    np.testing.assert_allclose(got[a:b], ref(x[a:b], draw(k), 2.0), atol=1e-6)


def test_cos_sin_polynomial():
  theta = jnp.linspace(-300, 300, 100001)
  c, s = mmd._cos_sin(theta)  # pylint: disable=protected-access
  assert float(jnp.max(jnp.abs(c - jnp.cos(theta)))) < 5e-5
  assert float(jnp.max(jnp.abs(s - jnp.sin(theta)))) < 5e-5


def test_rff_approximates_the_kernel(sets):
  u, l = sets
  freqs = mmd.rff_frequencies(jax.random.key(0), u.shape[1], 8192, 2.0)
  zu, zl = jitted(mmd.rff_map)(u, freqs), jitted(mmd.rff_map)(l, freqs)
  np.testing.assert_allclose(jnp.sum(zu * zu, 1), 1.0, atol=1e-4)
  assert np.abs(np.asarray(zu @ zl.T) - np_kernel(u, l, 2.0)).max() < 0.05


@pytest.mark.parametrize("term", ["witness", "decrease", "per_sample"])
def test_rff_scores_track_exact(term):
  x = jnp.asarray(digits()[0])
  u, l = x[:800], x[800:1000]
  freqs = mmd.rff_frequencies(jax.random.key(1), 64, 4096, 3.0)
  if term == "witness":
    f = jitted(mmd.witness)
  elif term == "decrease":
    f = jitted(mmd.mmd2_decrease)
  else:
    f = functools.partial(jitted(mmd.per_sample_mmd2, repeats=5, draw_size=64),
                          rng=jax.random.key(2))
  exact, approx = f(u, l, 3.0), f(u, l, 3.0, freqs=freqs)
  assert scipy.stats.spearmanr(exact, approx).statistic > 0.9


# ---------------------------------------------------------------- greedy


def toy_two_clusters():
  """U: 50 points near 0 and 50 near (6, 6); L: 40 points near 0."""
  rng = np.random.default_rng(0)
  a = rng.normal(size=(50, 2))
  b = rng.normal(size=(50, 2)) + 6
  u = np.vstack([a, b]).astype(np.float32)
  l = rng.normal(size=(40, 2)).astype(np.float32)
  return u, l


def test_greedy_beats_random_batches():
  u, l = toy_two_clusters()
  res = jitted(greedy.greedy_mmd, budget=10)(u, l, 1.5)
  idx = np.asarray(res.indices)
  assert len(set(idx.tolist())) == 10
  # L lacks the far cluster, half of U: matching U means querying it.
  assert (idx >= 50).all()
  got = np_mmd2(np.vstack([l, u[idx]]), u, 1.5)
  assert float(res.mmd2_after) == pytest.approx(got, abs=1e-5)
  assert float(res.mmd2_before) == pytest.approx(np_mmd2(l, u, 1.5), abs=1e-5)
  rng = np.random.default_rng(1)
  rand = [np_mmd2(np.vstack([l, u[rng.choice(100, 10, replace=False)]]), u,
                  1.5) for _ in range(50)]
  assert got < min(rand)
  # The first pick maximises the one-step decrease.
  np.testing.assert_allclose(res.first_gain, np_decrease(u, u, l, 1.5),
                             atol=1e-5)
  assert idx[0] == int(np.argmax(np_decrease(u, u, l, 1.5)))


@pytest.mark.slow
def test_greedy_unbiased_running_sums():
  u, l = toy_two_clusters()
  res = jitted(greedy.greedy_mmd, budget=7, unbiased=True, normalize="rank",
               block=16)(u, l, 1.5)
  got = np_mmd2(np.vstack([l, u[np.asarray(res.indices)]]), u, 1.5, True)
  assert float(res.mmd2_after) == pytest.approx(got, abs=1e-5)


def test_greedy_heavy_utility_picks_top_utility_and_never_repeats():
  u, l = toy_two_clusters()
  util = jnp.asarray(np.random.default_rng(2).permutation(100) / 99.0)
  res = jitted(greedy.greedy_mmd, budget=100, normalize="minmax")(
      u, l, 1.5, utility=util, weight=1e6)
  idx = np.asarray(res.indices)
  assert sorted(idx.tolist()) == list(range(100))
  np.testing.assert_array_equal(idx[:20], np.argsort(-np.asarray(util))[:20])


def test_greedy_rff_initial_sums_still_match_the_toy():
  u, l = toy_two_clusters()
  freqs = mmd.rff_frequencies(jax.random.key(0), 2, 4096, 1.5)
  res = jitted(greedy.greedy_mmd, budget=10)(u, l, 1.5, freqs=freqs)
  assert (np.asarray(res.indices) >= 50).all()


# ---------------------------------------------------------- normalisation

# XLA on CPU flushes subnormals to zero, so they tie with 0 there.
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False,
                   width=32)
_PAD = 40


@jax.jit
def _all_norms(x, where):
  return tuple(norm_lib.normalize(x, m, where) for m in norm_lib.METHODS[1:])


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(hnp.arrays(np.float32, st.integers(1, _PAD), elements=finite))
@hypothesis.example(np.array([1.1754944e-38, 0.0], np.float32))  # a subnormal mean
def test_normalisations_have_their_properties(x):
  # One padded shape and a `where` mask: one compilation for every example,
  # and the masked path is what the greedy loop uses.
  n = len(x)
  padded = np.full(_PAD, 123.0, np.float32)
  padded[:n] = x
  where = np.arange(_PAD) < n
  outs = [np.asarray(v) for v in _all_norms(padded, where)]
  for v in outs:
    assert np.all(v[n:] == 0)
  mm, zs, rk = (v[:n] for v in outs)
  x64 = x.astype(np.float64)
  for v in (mm, zs, rk):
    assert np.isfinite(v).all()
  # Monotone: never reorders.
  order = np.argsort(x64, kind="stable")
  for v in (mm, zs, rk):
    assert np.all(np.diff(v[order]) >= -1e-6)
  want_rank = ((scipy.stats.rankdata(x64) - 1) / (n - 1) if n > 1
               else np.full(1, 0.5))
  np.testing.assert_allclose(rk, want_rank, atol=1e-6)
  if np.ptp(x64) == 0:
    assert np.all(mm == 0) and np.all(zs == 0) and np.all(rk == 0.5)
  else:
    assert mm.min() == 0 and mm.max() == pytest.approx(1, abs=1e-6)
    if np.std(x64) > 1e-3 * np.abs(x64).max():  # well-conditioned in float32
      assert zs.mean() == pytest.approx(0, abs=1e-4)
      assert zs.std() == pytest.approx(1, abs=1e-3)


@pytest.mark.slow
def test_normalize_where_and_indexed():
  x = jnp.array([3.0, -1.0, 7.0, 7.0, 2.0])
  w = np.array([True, True, False, True, True])

  @jax.jit
  def all_ways(x, w, xw):
    return [(norm_lib.normalize(x, m), norm_lib.normalize_indexed(x, i),
             norm_lib.normalize(x, m, where=w), norm_lib.normalize(xw, m))
            for i, m in enumerate(norm_lib.METHODS)]

  for m, (full, indexed, masked, sub) in zip(norm_lib.METHODS,
                                             all_ways(x, w, x[w])):
    np.testing.assert_allclose(indexed, full)
    if m != "none":
      assert float(masked[2]) == 0.0
      np.testing.assert_allclose(masked[w], sub, atol=1e-6)
  np.testing.assert_allclose(norm_lib.rank(x), [0.5, 0, 0.875, 0.875, 0.25])
  with pytest.raises(ValueError, match="unknown"):
    norm_lib.normalize(x, "softmax")


@pytest.mark.parametrize("n", [1, 2, 7, 10, 301])
def test_masked_median_matches_numpy(n):
  rng = np.random.default_rng(n)
  f = jax.jit(mmd.masked_median)
  for v in (rng.normal(size=n), np.round(rng.normal(size=n))):  # ties too
    v = v.astype(np.float32)
    ok = rng.random(n) < 0.7
    ok[0] = True
    assert float(f(v, ok)) == pytest.approx(float(np.median(v[ok])), abs=1e-6)


@pytest.mark.parametrize("shape", [(7, 2), (50, 10), (3, 4, 100)])
def test_two_largest_equals_top_k(shape):
  # Ties (few distinct values), a row of one repeated value and -inf: the
  # values are top_k's exactly, so margins and cluster gaps are unchanged.
  rng = np.random.default_rng(0)
  x = rng.integers(0, 4, size=shape).astype(np.float32) / 3
  x[..., 0, :] = 0.5
  x.reshape(-1)[::5] = -np.inf
  want, _ = jax.lax.top_k(jnp.asarray(x), 2)
  got = distances.two_largest(jnp.asarray(x))
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
