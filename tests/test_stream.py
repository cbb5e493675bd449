"""A pool held on the host, sent to the device a block at a time (`jax_al.stream`).

Real data: scikit-learn's digits with a LogisticRegression's probabilities.
A streamed selection must pick what the resident one picks: to the bit for
the per-batch strategies on integer-valued features (the pixels: the
block-by-block mean is then the whole array's), to float32 rounding on
real-valued ones, and for every rowwise score strategy. Strategies that
read every candidate at each step refuse, naming the setting.
"""

from __future__ import annotations

import csv
import json

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import jax_al
from jax_al import memory, select_files, stream
from jax_al.errors import ConfigError
from jax_al.scores import minibatch


@pytest.fixture(scope="module")
def digits():
  x, y = load_digits(return_X_y=True)
  x = x.astype(np.float32)
  labeled = np.zeros(len(x), bool)
  labeled[::9] = True  # 200 labeled rows spread over the pool: candidates are not a range
  probs = LogisticRegression(max_iter=3000).fit(x[labeled], y[labeled]).predict_proba(x)
  return x, probs, labeled


@pytest.fixture
def blocks_sent(monkeypatch):
  """The row count of every block a streamed selection sends to the device."""
  sizes = []
  orig = stream.HostPool.pool
  monkeypatch.setattr(stream.HostPool, "pool",
                      lambda self, a, b, **kw: (sizes.append(b - a), orig(self, a, b, **kw))[1])
  return sizes


PER_BATCH = [("cluster_margin", {}), ("users", {}), ("users", {"approx": "rff"}),
             ("users", {"mmd_scope": "batch", "term": "witness"}),
             ("users", {"mmd_scope": "batch", "term": "decrease"}),
             ("users", {"use_mmd": False})]


@pytest.mark.slow
@pytest.mark.parametrize("strategy,settings", PER_BATCH,
                         ids=[f"{s}-{'-'.join(map(str, kw.values())) or 'default'}"
                              for s, kw in PER_BATCH])
def test_per_batch_streamed_selection_is_the_resident_one_to_the_bit(
    digits, blocks_sent, monkeypatch, strategy, settings):
  x, probs, labeled = digits
  # Smaller vmapped steps (for both runs), so that 1,597 candidates make
  # several blocks: 31 minibatches of 32 at a time, 49 full ones and a tail of 29.
  monkeypatch.setattr(memory, "PASS_BYTES", 1 << 20)
  kw = dict(features=x, probs=probs, labeled=labeled, budget=30, seed=3, batch=32, **settings)
  whole = jax_al.select(strategy, **kw)
  blocks_sent.clear()
  part = jax_al.select(strategy, stream=True, stream_rows=300, **kw)
  assert part.stream_rows == 300 and whole.stream_rows is None
  # The mean's blocks of 300 (the last 97), two overlapping blocks of 31
  # minibatches, the tail.
  assert sorted(set(blocks_sent)) == [29, 97, 300, 992], blocks_sent
  assert max(blocks_sent) < labeled.size - labeled.sum()
  np.testing.assert_array_equal(part.indices, whole.indices)
  np.testing.assert_array_equal(part.scores, whole.scores)
  if settings.get("term") in ("witness", "decrease") or settings.get("approx") == "rff":
    # Their sums over the labeled set (or the RFF products) run in row blocks
    # whose rows sit elsewhere in a streamed block: the raw term's last bits
    # move (the rank-normalised scores above do not).
    assert part.stats.keys() == whole.stats.keys()
    np.testing.assert_allclose([part.stats[k] for k in whole.stats],
                               list(whole.stats.values()), rtol=1e-5)
  else:
    assert part.stats == whole.stats


@pytest.mark.slow
def test_real_valued_features_stream_to_float32_rounding(digits, blocks_sent, monkeypatch):
  x, probs, labeled = digits
  noisy = (x + np.random.default_rng(0).standard_normal(x.shape)).astype(np.float32)
  monkeypatch.setattr(memory, "PASS_BYTES", 1 << 20)
  kw = dict(features=noisy, probs=probs, labeled=labeled, budget=30, seed=3, batch=32)
  whole = jax_al.select("users", **kw)
  part = jax_al.select("users", stream=True, stream_rows=300, **kw)
  assert len(set(blocks_sent)) >= 3
  # The mean summed block by block rounds differently in its last bits.
  assert len(set(part.indices) & set(whole.indices)) >= 27
  np.testing.assert_allclose(np.sort(part.scores), np.sort(whole.scores), rtol=1e-4)


ROWWISE = ["margin", "entropy", "least_confidence", "bald", "variation_ratio",
           "ensemble_bald", "ensemble_entropy", "learning_loss", "random"]


@pytest.mark.parametrize("strategy", ROWWISE)
def test_rowwise_strategies_stream_the_same_picks(digits, blocks_sent, strategy):
  x, probs, labeled = digits
  r = np.random.default_rng(1)
  logits = np.log(np.maximum(probs, 1e-12)).astype(np.float32)
  extra = {"sample_logits": (logits[None] + r.standard_normal((4,) + logits.shape)).astype(
      np.float32), "predicted_loss": r.random(len(x)).astype(np.float32)}
  kw = dict(features=x, logits=logits, labeled=labeled, budget=25, seed=5, **extra)
  whole = jax_al.select(strategy, **kw)
  blocks_sent.clear()
  part = jax_al.select(strategy, stream=True, stream_rows=256, **kw)
  np.testing.assert_array_equal(part.indices, whole.indices)
  # Per-row reductions may round differently in a block than in the whole array.
  np.testing.assert_allclose(part.scores, whole.scores, rtol=1e-5, atol=1e-7)
  assert set(part.stats) == set(whole.stats)
  if strategy == "random":
    assert blocks_sent == []  # reads nothing of the pool
  else:
    assert blocks_sent and max(blocks_sent) == 256 and sum(blocks_sent) == (~labeled).sum()


def test_random_streams_a_pool_of_features_alone(digits):
  x, _, labeled = digits
  whole = jax_al.select("random", features=x, labeled=labeled, budget=12, seed=2)
  part = jax_al.select("random", features=x, labeled=labeled, budget=12, seed=2, stream=True)
  np.testing.assert_array_equal(part.indices, whole.indices)
  assert part.stream_rows is not None and not labeled[part.indices].any()


@pytest.mark.parametrize("strategy,settings,field", [
    ("coreset", {}, "strategy"), ("badge", {}, "strategy"), ("typiclust", {}, "strategy"),
    ("users", {"mmd_scope": "global"}, "mmd_scope"),
    ("greedy_margin", {}, "mode"),
    ("greedy", {}, "u_scope"), ("cluster_margin", {"u_scope": "global"}, "u_scope")])
def test_strategies_that_read_every_candidate_refuse_to_stream(digits, strategy, settings,
                                                               field):
  x, probs, labeled = digits
  kw = dict(features=x, probs=probs, labeled=labeled, budget=10, **settings)
  with pytest.raises(ConfigError) as e:
    jax_al.select(strategy, stream=True, **kw)
  assert e.value.field == field
  assert "cannot select from a pool streamed from the host" in str(e.value)
  assert "stream=False" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("bad", [{"stream": "yes"}, {"stream": 1}, {"stream_rows": 0},
                                 {"stream_rows": 2.5}, {"stream_rows": True},
                                 {"stream_rows": 100, "stream": False}])
def test_bad_stream_settings_are_one_line(digits, bad):
  x, probs, labeled = digits
  with pytest.raises(ConfigError) as e:
    jax_al.select("margin", features=x, probs=probs, labeled=labeled, budget=5, **bad)
  field = "stream_rows" if "stream_rows" in bad else "stream"
  assert e.value.field == field and "\n" not in str(e.value)


def test_a_pool_the_device_cannot_hold_streams_by_itself(digits, blocks_sent, monkeypatch):
  x, probs, labeled = digits
  kw = dict(features=x, probs=probs, labeled=labeled, budget=20)
  whole = jax_al.select("entropy", **kw)
  assert whole.stream_rows is None and blocks_sent == []
  # A device with 64 kB free: the 0.5 MB of candidates do not fit.
  monkeypatch.setattr(memory, "device_available", lambda: (64_000, "gpu device"))
  part = jax_al.select("entropy", **kw)
  assert part.stream_rows is not None and len(blocks_sent) == 1
  np.testing.assert_array_equal(part.indices, whole.indices)
  # One that cannot stream keeps the memory refusal, naming the device's memory.
  with pytest.raises(ConfigError, match="of gpu device memory, 64 kB are free"):
    jax_al.select("coreset", **kw)


def test_map_batches_takes_the_whole_pools_keys():
  """A block of whole minibatches given its keys computes what the whole
  pool's pass computes for them (the streamed per-batch blocks rely on it)."""
  x = np.asarray(load_digits().data[:700], np.float32)
  key = jax.random.key(4)
  fn = lambda k, xb: (xb.sum(axis=1) * jax.random.uniform(k), None)
  whole, _ = minibatch.map_batches(fn, (x,), key, 64, min_size=10)
  keys = jax.random.split(key, minibatch.num_batches(700, 64, 10))
  for blk in stream.minibatch_blocks(700, 64, 10, block_rows=128, width=2):
    part, _ = minibatch.map_batches(fn, (x[blk.start:blk.stop],),
                                    keys[blk.first:blk.first + blk.count], 64, min_size=10)
    np.testing.assert_array_equal(np.asarray(part), np.asarray(whole)[blk.start:blk.stop])
  with pytest.raises(ValueError, match="10 minibatches but 3 keys"):
    minibatch.map_batches(fn, (x[:640],), keys[:3], 64)


@pytest.mark.parametrize("n,batch,min_size,rows,width", [
    (1597, 32, 10, 300, 31), (700, 64, 10, 128, 2), (129, 128, 10, 10, 1),
    (137, 128, 10, 10, 1), (100, 128, 10, 64, 4), (4096, 128, 10, 1024, 16)])
def test_minibatch_blocks_cover_the_layout(n, batch, min_size, rows, width):
  blocks = stream.minibatch_blocks(n, batch, min_size, rows, width)
  num_full, tail = minibatch.layout(n, batch, min_size)
  covered = np.zeros(n, int)
  full = [b for b in blocks if b.stop - b.start == b.count * batch and b.first < num_full]
  for b in blocks:
    covered[b.start:b.stop] += 1
    assert b.start == b.first * batch
  assert covered.min() >= 1  # every candidate, in order; overlaps only recompute
  assert len({b.count for b in full}) <= 1  # one shape of full blocks
  if full:
    assert full[0].count == min(num_full, max(width, rows // batch))
  if tail:
    assert blocks[-1] == stream.Block(num_full * batch, n, num_full, 1)


def test_jax_al_select_streams_a_pool_file(digits, tmp_path):
  x, probs, labeled = digits
  ids = np.asarray([f"img_{i}" for i in range(len(x))])
  np.savez(tmp_path / "pool.npz", features=x, probs=probs, ids=ids)
  with open(tmp_path / "labeled.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "label"])
    w.writerows([ids[i], 0] for i in np.flatnonzero(labeled))
  base = ["--pool", str(tmp_path / "pool.npz"), "--labeled", str(tmp_path / "labeled.csv"),
          "--strategy", "entropy", "--budget", "15"]
  select_files.run(base + ["--out", str(tmp_path / "a.csv")])
  select_files.run(base + ["--out", str(tmp_path / "b.csv"), "--stream", "on",
                           "--stream-rows", "400"])  # 4 blocks of the 1,597 candidates
  a, b = (list(csv.DictReader(open(tmp_path / f"{n}.csv"))) for n in "ab")
  assert [(r["id"], r["rank"]) for r in a] == [(r["id"], r["rank"]) for r in b]
  np.testing.assert_allclose([float(r["score"]) for r in b], [float(r["score"]) for r in a],
                             rtol=1e-5)
  assert json.loads((tmp_path / "b.json").read_text())["stream_rows"] == 400
  assert json.loads((tmp_path / "a.json").read_text())["stream_rows"] is None
  # A strategy that cannot stream: one line naming the flag, nothing written.
  with pytest.raises(SystemExit) as e:
    select_files.run(["--pool", str(tmp_path / "pool.npz"), "--strategy", "coreset",
                      "--budget", "5", "--out", str(tmp_path / "c.csv"), "--stream", "on"])
  msg = str(e.value)
  assert msg.startswith("error: --stream on: coreset cannot select from a pool streamed")
  assert "--stream off" in msg and "\n" not in msg
  assert not (tmp_path / "c.csv").exists() and not (tmp_path / "c.json").exists()
  for flags, says in [(["--stream-rows", "0"], "--stream-rows 0: use a whole number"),
                      (["--stream", "off", "--stream-rows", "64"], "and --stream off holds")]:
    with pytest.raises(SystemExit) as e:
      select_files.run(base + ["--out", str(tmp_path / "c.csv"), *flags])
    assert str(e.value).startswith("error: ") and says in str(e.value), str(e.value)
    assert not (tmp_path / "c.csv").exists()
