"""The users' method, the RFF witness and TypiClust hold no second copy of the pool.

At a million rows of 768 features the pool is 3 GB, and every extra [N, d]
array the selection programs make (a centred copy, a sliced or concatenated
one, k-means state of all minibatches at once, [N, D] projections, cosines
and sines) costs as much again (issue 25). Here the compiled programs'
temporary memory (`memory_analysis`) is bounded by a fraction of the pool
on a pool (100 MB) large against the (patched down) bytes one blocked step
may hold and against what the programs hold whatever N,
and the blocked passes are checked to give the values of the whole-array
computations they replace, bit for bit, so that the picks stay the same.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from jax_al import memory, selection, strategies
from jax_al.scores import cluster_margin, minibatch, mmd
from jax_al.strategies import uncertainty_mmd as um
from jax_al.strategies import uncertainty_term as ut

# Shapes used nowhere else in the suite, so that no program traced under the
# default PASS_BYTES is reused from a cache.
N, D, C = 33_001, 768, 4
# What the programs hold whatever N: the median heuristic's 1,024 x 1,024
# distances and masks, kernel blocks, the labeled set.
FIXED = 24 << 20
RFF = 32


def _programs(name, settings, n=N):
  al = selection.al_config(name, n // 100, settings)
  s = strategies.get_strategy(al.strategy, al)
  st = s.settings(C)
  f = jax.ShapeDtypeStruct((n, D), jnp.float32)
  key = jax.random.key(0)
  m = n // 100
  args = (f, jax.ShapeDtypeStruct((n,), jnp.float32),
          jax.ShapeDtypeStruct((um.labeled_bucket(m, st.block), D), jnp.float32),
          jnp.int32(m), key, s.knobs())
  return (ut.uncertainty.lower(f, key, s=st.u).compile().memory_analysis(),
          um.select_indices.lower(*args, s=st, budget=n // 100).compile().memory_analysis())


@pytest.mark.slow
@pytest.mark.parametrize("name, settings, held", [
    ("uncertainty_mmd", {}, 0),  # the users' method at its defaults
    # the bench's witness_rff; its [N, RFF] features are held whole (their sum
    # is one reduction, see mmd.sums_to_self)
    ("witness", {"approx": "rff", "rff_dim": RFF}, N * RFF * 4),
])
def test_selection_temp_memory_is_not_a_pool_copy(monkeypatch, name, settings, held):
  monkeypatch.setattr(memory, "PASS_BYTES", 1 << 14, raising=False)
  pool = N * D * 4
  u_mem, sel_mem = _programs(name, settings)
  # Before issue 25: the uncertainty's temp was 3.3 pools (a centred copy,
  # ott-jax's weighted copy and the loop's copies of every minibatch at once),
  # the users' select_indices 1.2 to 2 pools, the RFF witness's 5.4.
  assert u_mem.temp_size_in_bytes < FIXED + pool / 2, u_mem.temp_size_in_bytes
  assert sel_mem.temp_size_in_bytes < FIXED + held + pool / 2, sel_mem.temp_size_in_bytes


@pytest.mark.slow
def test_typiclust_kmeans_holds_no_pool_copy(monkeypatch):
  # ott-jax's k-means held the labeled + candidates concatenated, a weighted
  # copy of them and [N, K] cost matrices: at this shape 381 MB of temp,
  # 3.8 pools (14 GiB peak RSS at 1,000,000 x 768). The blocked one holds the
  # concatenation (its seeding's products round as ott's only on one array),
  # [N] vectors and one [rows, K] block.
  from jax_al.strategies import typiclust
  monkeypatch.setattr(memory, "PASS_BYTES", 1 << 14, raising=False)
  k, m = typiclust.MAX_CLUSTERS, N // 100
  rows = typiclust.kmeans.assign_rows(k, D)
  assert rows * k * 4 < 1 << 20
  mem = typiclust._clusters_jit.lower(
      jax.ShapeDtypeStruct((N, D), jnp.float32), jax.ShapeDtypeStruct((m, D), jnp.float32),
      jax.random.key(0), k=k, n_init=1, max_iter=100, tol=1e-4,
      rows=rows).compile().memory_analysis()
  assert mem.temp_size_in_bytes < FIXED + (N + m) * D * 4 + N * D * 4 / 2, \
      mem.temp_size_in_bytes


@pytest.mark.slow
def test_rff_features_above_the_hold_limit_are_streamed_not_held(monkeypatch):
  # The bench's witness_rff at 1,000,000 x 768 held its [N, 2,048] features,
  # 8 GB (peak RSS 11.7 GiB). Above memory.RFF_HOLD_BYTES they are summed in
  # one pass and dotted in a second: the program holds no [N, D] array. (Its
  # own N, so that no program traced with the features held is reused.)
  monkeypatch.setattr(memory, "PASS_BYTES", 1 << 14, raising=False)
  n, rff = N + 2, 8192  # held: 33,003 x 8,192 x 4 = 1.08 GB, above the limit
  assert n * rff * 4 > memory.RFF_HOLD_BYTES
  _, sel_mem = _programs("witness", {"approx": "rff", "rff_dim": rff}, n=n)
  assert sel_mem.temp_size_in_bytes < FIXED + n * D * 4 / 2, sel_mem.temp_size_in_bytes


@pytest.mark.slow
def test_streamed_rff_sums_agree_with_the_held_ones(monkeypatch):
  x = jax.random.normal(jax.random.key(0), (5003, 32))
  l = jax.random.normal(jax.random.key(1), (300, 32)) + 0.3
  freqs = mmd.rff_frequencies(jax.random.key(2), 32, 256, jnp.float32(4.0))
  c = jnp.mean(x, axis=0)
  kw = dict(l_count=250, freqs=freqs, centre=c)
  fns = (lambda: mmd.witness(x, l, 4.0, **kw), lambda: mmd.mmd2_decrease(x, l, 4.0, **kw),
         lambda: mmd.sums_to_self(x, 4.0, freqs=freqs))
  assert not mmd.streams_rff(x, freqs)
  held = [np.asarray(f()) for f in fns]
  monkeypatch.setattr(memory, "RFF_HOLD_BYTES", 1000, raising=False)
  monkeypatch.setattr(memory, "PASS_BYTES", 1 << 17, raising=False)  # 64-row blocks
  assert mmd.streams_rff(x, freqs)
  for f, h in zip(fns, held):
    got = np.asarray(f())
    # other additions (in 64-row blocks), the same sums to float32 rounding
    np.testing.assert_allclose(got, h, rtol=1e-5, atol=1e-6 * np.abs(h).max())
    np.testing.assert_array_equal(np.asarray(f()), got)  # deterministic
  # The sum in blocks is the sum: against float64 NumPy features.
  z = np.asarray(mmd.rff_map(x - c, freqs), np.float64)
  got = np.asarray(mmd.rff_column_sum(x, freqs, rows=64, centre=c))
  np.testing.assert_allclose(got, z.sum(axis=0), rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def digits():
  x = (load_digits().data / 16.0).astype(np.float32)
  return jnp.asarray(x)


@pytest.mark.slow
def test_chunked_minibatch_kmeans_is_bit_identical(digits):
  x = digits[:1100]
  centre = jnp.mean(x, axis=0)
  kw = dict(batch=128, k=10, max_iter=30)
  whole = jax.jit(lambda x: cluster_margin.minibatch_kmeans_margin(
      x - jnp.mean(x, axis=0), jax.random.key(3), **kw))(x)
  for chunk in (1, 3, 8, 64):  # 8 full minibatches (the tail of 76 is its own)
    got = jax.jit(lambda x: cluster_margin.minibatch_kmeans_margin(
        x, jax.random.key(3), centre=centre, chunk=chunk, **kw))(x)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(whole), err_msg=f"chunk {chunk}")


@pytest.mark.slow
def test_chunked_map_batches_matches_vmap():
  x = jax.random.normal(jax.random.key(0), (10 * 7 + 3, 5))

  def fn(key, xb):
    return xb * jax.random.uniform(key) + jnp.sum(xb), jnp.max(xb)

  want = jax.jit(lambda x: minibatch.map_batches(fn, (x,), jax.random.key(1), 7, min_size=4))(x)
  for chunk in (1, 3, 4, 9, 20):
    got = jax.jit(lambda x, c=chunk: minibatch.map_batches(
        fn, (x,), jax.random.key(1), 7, min_size=4, chunk=c))(x)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


@pytest.mark.slow
@pytest.mark.parametrize("pool, rff_dim, rows", [
    ("digits", 256, (100, 500, 1797)),  # 1797 rows: one block
    # last blocks that would be 32 rows long, which XLA:CPU multiplies with
    # another kernel, whose sums differ in the last bits (mmd._row_blocks)
    ("gauss", 2048, (100, 5000)),
])
def test_blocked_rff_features_and_dots_are_bit_identical(digits, pool, rff_dim, rows):
  x = digits if pool == "digits" else jax.random.normal(jax.random.key(0), (20_000, 64))
  centre = jnp.mean(x, axis=0)
  freqs = mmd.rff_frequencies(jax.random.key(2), x.shape[1], rff_dim, jnp.float32(2.0))
  v = jax.random.normal(jax.random.key(4), (rff_dim,))
  hi = jax.lax.Precision.HIGHEST
  z_all = jax.jit(lambda x: mmd.rff_map(x - centre, freqs))(x)
  dot_all = jax.jit(lambda z: jnp.dot(z, v, precision=hi))(z_all)
  for r in rows:
    z = jax.jit(lambda x: mmd.rff_features(x, freqs, rows=r, centre=centre))(x)
    np.testing.assert_array_equal(np.asarray(z), np.asarray(z_all), err_msg=f"rows {r}")
    dots, = jax.jit(lambda x: mmd.rff_dots(x, freqs, (v,), rows=r, centre=centre))(x)
    np.testing.assert_array_equal(np.asarray(dots), np.asarray(dot_all), err_msg=f"rows {r}")


@pytest.mark.slow
def test_median_from_sampled_rows_is_the_concatenated_median(digits):
  x, l = digits[:1500], digits[1500:1600]
  key = jax.random.key(5)
  w = jnp.concatenate([jnp.ones(len(x)), (jnp.arange(len(l)) < 60) * 1.0])
  want = mmd.median_sigma(jnp.concatenate([x, l]), key, weights=w)
  ids, ok = mmd.median_rows(len(x) + len(l), key, weights=w)
  n = len(x)
  pts = jnp.where((ids < n)[:, None], x[jnp.minimum(ids, n - 1)],
                  l[jnp.clip(ids - n, 0, len(l) - 1)])
  assert float(mmd.median_sigma_of(pts, ids, ok)) == float(want)


def test_a_memory_mapped_pool_is_not_copied_to_the_cpu_device(tmp_path):
  # The bench's pools: the labeled rows first, the candidates every row
  # after them, memory-mapped. On the CPU backend their device array is the
  # file's pages themselves (before issue 25: a second, anonymous copy).
  if jax.devices()[0].platform != "cpu":
    pytest.skip("the CPU backend aliases host memory")
  path = tmp_path / "x.npy"
  x = np.lib.format.open_memmap(path, "w+", np.float32, (4096, 16))
  x[:] = np.random.default_rng(0).normal(size=x.shape)
  x.flush()
  x = np.load(path, mmap_mode="r")
  rows = np.arange(64, 4096)
  got = selection.to_device(x, rows)
  np.testing.assert_array_equal(np.asarray(got), x[64:])
  assert got.unsafe_buffer_pointer() == x[64:].ctypes.data
  # Row numbers that are not a range are gathered (a copy), still exactly.
  some = np.sort(np.random.default_rng(1).choice(4096, 1000, replace=False))
  np.testing.assert_array_equal(np.asarray(selection.to_device(x, some)), x[some])
