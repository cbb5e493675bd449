"""Compilation: measured per cycle, and paid once per run, not once per cycle."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from jax_al import compiles, cycle, loop, train
from jax_al.strategies import uncertainty_mmd as umm
from test_reliability import records

ROOT = Path(__file__).resolve().parents[1]


def test_compile_log_sees_a_compilation_and_not_a_cache_hit():
  f = jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)
  x = jnp.arange(7.0)
  with compiles.CompileLog() as first:
    f(x).block_until_ready()
  with compiles.CompileLog() as again:
    f(x).block_until_ready()
  assert first.count == 1 and "<lambda>" in first.compiled()
  assert first.seconds > 0 and "<lambda>" in first.by_function()
  assert again.count == 0 and again.seconds == 0.0
  # Inactive logs hear nothing.
  jax.jit(lambda x: x - 2.0)(x).block_until_ready()
  assert again.count == 0


def _cycles(wd):
  return [r for r in records(wd) if r["kind"] == "cycle"]


def _selected(wd):
  return [r["indices"] for r in records(wd, "selected.jsonl")]


@pytest.mark.slow
def test_users_method_compiles_its_programs_once_per_run(tiny_config, tmp_path, monkeypatch):
  # A fixed-size subset (as in the CIFAR protocol; 397, a size no other test
  # compiles, so the jit caches count this run only) and labeled rows padded to
  # the run's largest set: the step, evaluation, k-means and selection compile
  # in cycle 1 only, although the labeled set grows 20 -> 100.
  sizes, made = {}, []

  class Recorded(train.Trainer):
    def __init__(self, *args, **kwargs):
      super().__init__(*args, **kwargs)
      made.append(self)

  monkeypatch.setattr(cycle, "Trainer", Recorded)

  def run(pad):
    cycle._trainer.cache_clear()  # a fresh Trainer, so its jit caches start empty
    c = tiny_config("uncertainty_mmd", al__cycles=5, al__subset=397, al__pad_labeled=pad,
                    train__eval_every=2)
    before = (umm.uncertainty._cache_size(), umm.select_indices._cache_size())
    loop.run(c, tmp_path / pad, quiet=True)
    assert cycle._trainer.cache_info().currsize == 1 and len(made) == 1
    trainer = made.pop()
    # One train chunk for all cycles; prediction once per image array (train,
    # test). (Both jit a fresh functools.partial per Trainer, so their caches
    # hold this run's programs only; `epoch_order`'s cache is shared by all.)
    assert (trainer._train._cache_size(), trainer._eval._cache_size()) == (1, 2)
    sizes[pad] = (umm.uncertainty._cache_size() - before[0],
                  umm.select_indices._cache_size() - before[1])
    return _cycles(tmp_path / pad)

  run_cycles = run("run")
  assert sizes["run"] == (1, 1)
  assert run_cycles[0]["compiles"] >= 4 and run_cycles[0]["compile_s"] > 0
  # The last cycle trains and tests only: nothing left to compile.
  assert run_cycles[-1]["compiles"] == 0 and run_cycles[-1]["compile_s"] == 0.0

  bucket_cycles = run("bucket")
  # Buckets 32, 64, 64, 128 for 20, 40, 60, 80 labeled; 128 rows were compiled
  # by the "run" pass (capacity 80), so two new selection programs.
  assert sizes["bucket"] == (0, 2)
  # Padding rows are masked out of every sum: the same picks either way.
  assert _selected(tmp_path / "run") == _selected(tmp_path / "bucket")
  assert [r["test_acc"] for r in run_cycles] == [r["test_acc"] for r in bucket_cycles]




def _run_digits(workdir, cache, env, *extra):
  args = [sys.executable, "run.py", "--config", "configs/digits.py", "--workdir", str(workdir),
          "--config.al.cycles=2", "--config.train.epochs=2", "--config.train.eval_every=2",
          "--config.train.milestones=(1,)", "--config.al.strategy=entropy",
          f"--config.compile_cache_dir={cache}", *extra]
  p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  return p.stdout, _cycles(workdir)


@pytest.mark.slow
def test_persistent_cache_serves_a_second_process(tmp_path):
  env = {k: v for k, v in os.environ.items() if not k.startswith(
      ("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
  cache = tmp_path / "xla"
  out1, first = _run_digits(tmp_path / "a", cache, env)
  assert f"XLA compilation cache: {cache}" in out1
  assert sum(r["compile_cache_hits"] for r in first) == 0 and any(cache.iterdir())
  out2, second = _run_digits(tmp_path / "b", cache, env)
  # Every program of the cycles comes from the disk, quick ones included.
  assert sum(r["compile_cache_hits"] for r in second) == sum(r["compiles"] for r in second) > 5
  # Loaded executables are the compiled ones: the same run.
  assert _selected(tmp_path / "a") == _selected(tmp_path / "b")
  assert [r["test_acc"] for r in first] == [r["test_acc"] for r in second]
  # The cache turned off (one cycle of the random strategy: only the line matters).
  out3, third = _run_digits(tmp_path / "c", "off", env, "--config.al.cycles=1",
                            "--config.al.strategy=random")
  assert "XLA compilation cache: off" in out3
  assert third[0]["compile_cache_hits"] == 0 and third[0]["compiles"] > 5


@pytest.mark.slow
def test_coreset_compiles_once_and_picks_the_same(tiny_config, tmp_path):
  from jax_al.strategies import coreset

  def run(pad):
    before = coreset.k_center_greedy._cache_size()
    c = tiny_config("coreset", al__cycles=4, al__subset=397, al__pad_labeled=pad)
    loop.run(c, tmp_path / pad, quiet=True)
    return coreset.k_center_greedy._cache_size() - before

  assert run("run") == 1  # labeled 20, 40, 60 padded to the capacity, 60
  assert run("bucket") == 2  # 20 and 40 are new shapes; 60 was compiled above
  assert _selected(tmp_path / "run") == _selected(tmp_path / "bucket")


@pytest.mark.slow
def test_the_median_bandwidth_compiles_once_for_every_pool_size():
  """The median heuristic reads 1,024 sampled rows whatever the pool's size,
  so its program is compiled once, while `select_indices` compiles per
  candidate count (a labeled pool shrinks every cycle); its bandwidth is
  `mmd.median_sigma` of the centred candidates and labeled rows."""
  import numpy as np
  from sklearn.datasets import load_digits

  from jax_al.scores import mmd
  x = load_digits().data.astype(np.float32)
  x = jnp.asarray(np.concatenate([x, x[:, :1] * 0.5], axis=1))  # a d no other test uses: 65
  key = jax.random.key(3)
  before = umm._median_sigma_of._cache_size()
  for m in (100, 140):
    feats, labeled = x[m:], jnp.zeros((256, 65)).at[:m].set(x[:m])  # padded as select pads
    sigma = umm.median_sigma(feats, labeled, jnp.int32(m), key)
    c = jnp.mean(feats, axis=0)
    pts = jnp.concatenate([feats - c, labeled - c])
    w = jnp.concatenate([jnp.ones(len(feats)), (jnp.arange(256) < m) * 1.0])
    want = mmd.median_sigma(pts, jax.random.split(key, 3)[0], weights=w)
    np.testing.assert_allclose(float(sigma), float(want), rtol=1e-6)
  assert umm._median_sigma_of._cache_size() - before == 1
