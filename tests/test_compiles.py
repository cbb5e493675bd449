"""Compilation: measured per cycle, and paid once per run, not once per cycle."""

import json

import jax
import jax.numpy as jnp
import numpy as np

from jax_al import compiles, loop
from jax_al.strategies import uncertainty_mmd as umm


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
  recs = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
  return [r for r in recs if r["kind"] == "cycle"]


def _selected(wd):
  return [json.loads(l)["indices"] for l in (wd / "selected.jsonl").read_text().splitlines()]


def test_users_method_compiles_its_programs_once_per_run(tiny_config, tmp_path):
  # A fixed-size subset (as in the CIFAR protocol; 397, a size no other test
  # compiles, so the jit caches count this run only) and labeled rows padded to
  # the run's largest set: the step, evaluation, k-means and selection compile
  # in cycle 1 only, although the labeled set grows 20 -> 100.
  sizes = {}

  def run(pad):
    loop._trainer.cache_clear()  # a fresh Trainer, so its jit caches start empty
    c = tiny_config("uncertainty_mmd", al__cycles=5, al__subset=397, al__pad_labeled=pad,
                    train__eval_every=2)
    before = (umm.uncertainty._cache_size(), umm.select_indices._cache_size())
    loop.run(c, tmp_path / pad, quiet=True)
    trainer = loop._trainer.cache_info()
    assert trainer.currsize == 1
    sizes[pad] = (umm.uncertainty._cache_size() - before[0],
                  umm.select_indices._cache_size() - before[1])
    return _cycles(tmp_path / pad)

  run_cycles = run("run")
  assert sizes["run"] == (1, 1)
  assert run_cycles[0]["compiles"] >= 4 and run_cycles[0]["compile_s"] > 0
  # The last cycle trains and tests only: nothing left to compile.
  assert run_cycles[-1]["compiles"] == 0 and run_cycles[-1]["compile_s"] == 0.0
  for r in run_cycles[1:]:
    assert r["compile_s"] < run_cycles[0]["compile_s"] / 4

  bucket_cycles = run("bucket")
  # Buckets 32, 64, 64, 128 for 20, 40, 60, 80 labeled; 128 rows were compiled
  # by the "run" pass (capacity 80), so two new selection programs.
  assert sizes["bucket"] == (0, 2)
  # Padding rows are masked out of every sum: the same picks either way.
  assert _selected(tmp_path / "run") == _selected(tmp_path / "bucket")
  assert [r["test_acc"] for r in run_cycles] == [r["test_acc"] for r in bucket_cycles]


def test_labeled_capacity_is_the_last_selection_size(tiny_config):
  c = tiny_config("uncertainty_mmd", al__cycles=5, al__initial=20, al__budget=20)
  assert loop.labeled_capacity(c, 1297) == 80  # selections after cycles 1-4: 20..80 labeled
  c.al.cycles = 1
  assert loop.labeled_capacity(c, 1297) == 20
  c.al.cycles, c.al.initial, c.al.budget = 7, 5000, 2500
  assert loop.labeled_capacity(c, 50000) == 17500
  assert np.isclose(umm.labeled_bucket(17500, 1024) / 1024, 18)
