"""`compare.parallel = "vmap"`: trials trained as one vmapped program match the
sequential run (same selections, accuracies within float tolerance), write the
same files, and resume, in either mode, from each other's checkpoints."""

from __future__ import annotations

import json

import jax
import math

import numpy as np
import pytest

from conftest import Interrupt, count_calls, tiny_digits_config
from jax_al import checkpoint, loop, train, vmap_trials
from jax_al.errors import TrainingError
from test_reliability import assert_same_run, records

# 3 trials x 3 cycles of the digits MLP (re-initialised each cycle), 2 steps
# per call: the vmapped lax.scan with its skip-padding lax.cond.
RUN = dict(num_trials=3, al__cycles=3, train__epochs=8, train__eval_every=4,
           train__milestones=(6,), train__steps_per_call=2)


def _config(parallel_mode: str, strategy: str = "entropy", **fields):
  return tiny_digits_config(strategy, compare__parallel=parallel_mode, **{**RUN, **fields})


@pytest.fixture(scope="module")
def seq_and_vmap(tmp_path_factory):
  root = tmp_path_factory.mktemp("parallel")
  loop.run(_config("none"), root / "seq", quiet=True)
  with pytest.MonkeyPatch.context() as m:
    seq_fits = count_calls(m, train.Trainer, "fit")
    vmap_fits = count_calls(m, vmap_trials.StackedTrainer, "fit")
    loop.run(_config("vmap"), root / "vmap", quiet=True)
  assert (len(seq_fits), len(vmap_fits)) == (0, 3)  # one vmapped fit per cycle, no other
  return root / "seq", root / "vmap"


def _log_lines(workdir, prefix):
  return sorted(l for l in (workdir / "log.txt").read_text().splitlines() if l.startswith(prefix))


@pytest.mark.slow
def test_vmap_matches_sequential_and_writes_the_same_files(seq_and_vmap):
  seq, vmap = seq_and_vmap
  assert (seq / "selected.jsonl").read_text() == (vmap / "selected.jsonl").read_text()
  assert_same_run(seq, vmap)
  a, b = records(seq), records(vmap)
  assert [sorted(r) for r in a] == [sorted(r) for r in b]  # same records, same fields
  for x, y in zip(a, b):
    for k, v in x.items():
      # timings, and the process's compile history (what the cache held before)
      if k.endswith("_s") or k in ("seconds", "compiles", "compile_cache_hits"):
        continue
      if isinstance(v, float):
        assert math.isclose(v, y[k], rel_tol=1e-5, abs_tol=1e-5), (k, x, y)
      else:
        assert v == y[k], (k, x, y)
  summary = [json.loads((d / "summary.json").read_text()) for d in (seq, vmap)]
  assert summary[0]["labeled"] == summary[1]["labeled"] == [20, 40, 60]
  np.testing.assert_allclose(summary[0]["test_acc"], summary[1]["test_acc"], atol=1e-4)
  for prefix in ("Trial ", "Cycle: "):  # same lines; in lockstep order
    assert _log_lines(seq, prefix) == _log_lines(vmap, prefix)
  # Each trial's checkpoint holds the same meta as in the sequential run.
  for t in range(3):
    ma, mb = (checkpoint.restore_meta(d, t, 3) for d in (seq, vmap))
    assert ma["labeled"] == mb["labeled"] and ma["config_hash"] == mb["config_hash"]
    assert ma["selected"] == mb["selected"]


@pytest.mark.slow
def test_warm_start_cnn_with_augmentation_matches(tmp_path):
  """BatchNorm, convolutions, flip/crop keys and warm start."""
  kw = dict(num_trials=2, al__cycles=2, model__name="cnn", model__width=0.25,
            train__reinit_each_cycle=False, augment__flip=True, augment__crop_pad=1,
            train__steps_per_call=1, train__epochs=3, train__eval_every=3,
            train__milestones=())
  loop.run(_config("none", "margin", **kw), tmp_path / "seq", quiet=True)
  loop.run(_config("vmap", "margin", **kw), tmp_path / "vmap", quiet=True)
  assert_same_run(tmp_path / "seq", tmp_path / "vmap")


@pytest.mark.parametrize("variant", [
    dict(train__epochs_per_call=2, train__bn_mask="partial", train__skip_padding="select",
         train__flat_state=True),
    # the MLP: XLA:CPU runs convolutions inside while loops very slowly
    dict(train__skip_padding="while", train__steps_per_call=3, model__name="mlp")],
    ids=["epochs2+all", "while"])
@pytest.mark.slow
def test_step_variants_vmapped_match_sequential(tmp_path, variant):
  """The train.* step variants (pinned to the per-step path in test_train.py)
  give the same run vmapped as trial by trial."""
  kw = {**dict(num_trials=2, al__cycles=2, model__name="cnn", model__width=0.25,
              train__reinit_each_cycle=False, augment__flip=True, train__steps_per_call=2,
              train__epochs=3, train__eval_every=2, train__milestones=(2,)), **variant}
  loop.run(_config("none", "margin", **kw), tmp_path / "seq", quiet=True)
  loop.run(_config("vmap", "margin", **kw), tmp_path / "vmap", quiet=True)
  assert_same_run(tmp_path / "seq", tmp_path / "vmap")
  evals = [r["epoch"] for r in records(tmp_path / "vmap") if r.get("kind") == "eval"]
  assert evals and set(evals) == {2, 3}


@pytest.mark.slow
def test_vmap_run_interrupted_resumes_sequentially(seq_and_vmap, tmp_path, monkeypatch):
  """A vmap run stopped in cycle 2, resumed by a sequential run: the same result."""
  seq, _ = seq_and_vmap
  run = tmp_path / "run"
  with monkeypatch.context() as m:
    count_calls(m, vmap_trials.StackedTrainer, "fit", interrupt_at=2)
    with pytest.raises(Interrupt):
      loop.run(_config("vmap"), run, quiet=True)
  assert [checkpoint.latest(run, t) for t in range(3)] == [1, 1, 1]
  fits = count_calls(monkeypatch, train.Trainer, "fit")
  loop.run(_config("none"), run, quiet=True)
  assert len(fits) == 6  # cycles 2 and 3 of each trial
  assert_same_run(run, seq)


@pytest.mark.slow
def test_lagging_trials_catch_up_then_train_together(seq_and_vmap, tmp_path, monkeypatch):
  """Killed while checkpointing trial 1's cycle 2: trial 0 is a cycle ahead.

  The vmap resume trains trials 1 and 2 together at cycle 2, then all three.
  """
  _, vmap = seq_and_vmap
  run = tmp_path / "run"
  real_save = checkpoint.save

  def save(workdir, trial, cycle, *a):
    if (trial, cycle) == (1, 2):
      raise Interrupt()
    return real_save(workdir, trial, cycle, *a)

  with monkeypatch.context() as m:
    m.setattr(loop.checkpoint, "save", save)
    with pytest.raises(Interrupt):
      loop.run(_config("vmap"), run, quiet=True)
  assert [checkpoint.latest(run, t) for t in range(3)] == [2, 1, 1]
  real_fit = vmap_trials.StackedTrainer.fit
  groups = []

  def fit(self, state, images, labels, labeled_idx, *a, **k):
    groups.append(len(labeled_idx))
    return real_fit(self, state, images, labels, labeled_idx, *a, **k)

  monkeypatch.setattr(vmap_trials.StackedTrainer, "fit", fit)
  seq_fits = count_calls(monkeypatch, train.Trainer, "fit")
  loop.run(_config("vmap"), run, quiet=True)
  assert groups == [2, 3] and len(seq_fits) == 0
  assert_same_run(run, vmap)


def test_diverging_trials_stop_with_an_error_record(tmp_path):
  run = tmp_path / "run"
  with pytest.raises(TrainingError, match="lower train.lr"):
    loop.run(_config("vmap", train__lr=1e6, al__cycles=2), run, quiet=True)
  last = records(run)[-1]
  assert last["kind"] == "error" and last["cycle"] == 1 and last["trial"] == 0
  assert all(checkpoint.latest(run, t) is None for t in range(3))


def test_stack_and_unstack_round_trip():
  import jax.numpy as jnp
  trees = [{"a": jnp.full((2,), t), "b": (jnp.float32(t),)} for t in range(3)]
  stacked = vmap_trials.stack(trees)
  assert stacked["a"].shape == (3, 2) and stacked["b"][0].shape == (3,)
  back = vmap_trials.unstack(stacked, 3)
  for x, y in zip(trees, back):
    np.testing.assert_array_equal(x["a"], y["a"])
    assert float(y["b"][0]) == float(x["b"][0])


@pytest.mark.slow
def test_bench_parallel_smoke(tmp_path):
  from jax_al.bench.parallel import main
  doc = main(["--quick", "--model", "cnn", "--width", "0.25", "--trials", "2", "--batch", "32",
              "--n-train", "96", "--labeled", "64", "--repeats", "1",
              "--json", str(tmp_path / "p.json")])
  rows = json.loads((tmp_path / "p.json").read_text())["parallel"]["rows"]
  assert [(r["mode"], r["trials"]) for r in rows] == [("sequential", 1), ("vmap", 2)]
  assert all(r["images_per_s"] > 0 and r["epoch_s"] > 0 for r in rows)
  check = doc["parallel"]["check"]
  assert check["max_param_diff"] <= 1e-3 * check["max_update"] + 10 * check["nudged_param_diff"]


@pytest.mark.slow
def test_bench_parallel_ensemble_rows(tmp_path):
  """`--ensemble`: the stacked members share one labeled set, and the row
  gives the ensemble's epoch in units of one member's."""
  from jax_al.bench.parallel import main
  main(["--quick", "--model", "mlp", "--width", "0.25", "--trials", "3", "--batch", "32",
        "--n-train", "96", "--labeled", "64", "--repeats", "1", "--ensemble", "--vmap-only",
        "--json", str(tmp_path / "e.json")])
  rows = json.loads((tmp_path / "e.json").read_text())["parallel"]["rows"]
  assert [(r["mode"], r["trials"]) for r in rows] == [("ensemble", 3)]
  assert rows[0]["vs_one_member"] is None  # --vmap-only: no single member to compare with
  main(["--quick", "--model", "mlp", "--width", "0.25", "--trials", "3", "--batch", "32",
        "--n-train", "96", "--labeled", "64", "--repeats", "1", "--ensemble",
        "--json", str(tmp_path / "f.json")])
  seq, ens = json.loads((tmp_path / "f.json").read_text())["parallel"]["rows"]
  assert seq["mode"] == "sequential" and ens["mode"] == "ensemble"
  assert ens["vs_one_member"] == pytest.approx(ens["epoch_s"] / seq["epoch_s"])


@pytest.mark.slow
def test_learning_loss_vmapped_switches_with_the_sequential_trainer():
  """Learning loss switches program at its detach epoch (`Trainer.at`); the
  vmapped trials switch with it. One epoch (one step) of each program from
  the same weights, vmapped vs trial by trial: equal within float tolerance,
  and the two programs give different steps. Over several steps the runs
  cannot be compared so: the ranking loss's sign(l_i - l_j) flips on a
  one-ulp difference between two per-sample losses."""
  from jax_al import cycle, strategies
  from jax_al.data import load_dataset

  c = _config("none", "learning_loss", model__name="resnet18", model__width=0.0625,
              train__steps_per_call=1, train__epochs=4, al__ll_detach=0.5, al__initial=64)
  ds = load_dataset(c.data)
  exp = cycle.Experiment.build(c, ds, strategies.get_strategy("learning_loss", c.al))
  tr, st = exp.trainer, cycle.stacked_trainer(exp.trainer)
  assert [st.at(e).base is tr.at(e) for e in range(4)] == [True] * 4
  assert st.at(1) is st and st.at(2) is st.after_detach is not None

  starts = [cycle.initial(exp, t) for t in (0, 1)]
  masks = np.zeros((2, len(ds.train_labels)), bool)
  for t, (_, labeled) in enumerate(starts):
    masks[t, labeled] = True
  ks = [cycle.keys(c.seed, t, 1) for t in (0, 1)]
  flat = lambda p: np.concatenate([np.ravel(np.asarray(a)) for a in jax.tree.leaves(p)])
  steps = {}
  for epoch in (0, 2):  # joint, detached
    stacked, _ = st.at(epoch).run_epoch(
        vmap_trials.stack([tr.new_state(s.params, s.batch_stats) for s, _ in starts]),
        exp.images, exp.labels, jax.numpy.asarray(masks), 64,
        jax.numpy.stack([k.data_order for k in ks]), jax.numpy.stack([k.augment for k in ks]),
        0.1)
    for t, (s, _) in enumerate(starts):
      alone, _ = tr.at(epoch).run_epoch(tr.new_state(s.params, s.batch_stats), exp.images,
                                        exp.labels, jax.numpy.asarray(masks[t]), 64,
                                        ks[t].data_order, ks[t].augment, 0.1)
      np.testing.assert_allclose(flat(jax.tree.map(lambda a: a[t], stacked.params)),
                                 flat(alone.params), rtol=1e-4, atol=1e-5)
      steps[epoch, t] = flat(alone.params["backbone"])
  for t in (0, 1):  # the detached step leaves out the ranking loss's pull on the backbone
    assert np.max(np.abs(steps[0, t] - steps[2, t])) > 1e-4
