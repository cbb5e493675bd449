"""Resume, determinism, atomic results, training guards and runs saved by
older versions (the workdir's and checkpoints' own tests: test_workdir.py,
test_checkpoint.py)."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import REPO, Interrupt, count_fits, snapshot, tiny_digits_config
from jax_al import checkpoint, files, loop, preflight, rng, strategies, train
from jax_al import workdir as workdir_lib
from jax_al.errors import ConfigError, TrainingError


def records(workdir: Path, name: str = "metrics.jsonl") -> list[dict]:
  """Every line of a results file, parsed as strict JSON (no NaN)."""
  def no_constants(c):
    raise AssertionError(f"{name} holds the non-JSON constant {c}")
  text = (Path(workdir) / name).read_text()
  assert text.endswith("\n") or not text
  return [json.loads(l, parse_constant=no_constants) for l in text.splitlines()]


def cycle_accs(workdir: Path) -> list[tuple]:
  return [(r["trial"], r["cycle"], r["labeled"], r["test_acc"])
          for r in records(workdir) if r["kind"] == "cycle"]


def eval_accs(workdir: Path) -> list[tuple]:
  return [(r["trial"], r["cycle"], r["epoch"], r["test_acc"], r["train_loss"])
          for r in records(workdir) if r["kind"] == "eval"]


def assert_same_run(a: Path, b: Path) -> None:
  """Same selections, and the same accuracies within float tolerance."""
  assert records(a, "selected.jsonl") == records(b, "selected.jsonl")
  for x, y in zip(cycle_accs(a), cycle_accs(b), strict=True):
    assert x[:3] == y[:3] and math.isclose(x[3], y[3], abs_tol=1e-4), (x, y)
  for x, y in zip(eval_accs(a), eval_accs(b), strict=True):
    assert x[:3] == y[:3] and np.allclose(x[3:], y[3:], rtol=1e-5, atol=1e-4), (x, y)


# -------------------------------------------------------- kill + resume ------


KILL_RUN = dict(al__cycles=3, train__epochs=100, train__eval_every=10,
                train__milestones=(80,), train__reinit_each_cycle=False)


def _cli(workdir: Path) -> subprocess.Popen:
  """`run.py` on digits with entropy and the KILL_RUN settings."""
  flags = [f"--config.{k.replace('__', '.')}={str(v).lower() if isinstance(v, bool) else v}"
           for k, v in KILL_RUN.items()]
  args = [sys.executable, str(REPO / "run.py"), "--config", "configs/digits.py:entropy",
          f"--workdir={workdir}", *flags]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, pred, proc, timeout=240.0) -> None:
  t0 = time.monotonic()
  while time.monotonic() - t0 < timeout:
    if path.exists():
      try:
        recs = [json.loads(l) for l in path.read_text().splitlines()]
      except ValueError:  # never: every write is atomic
        raise AssertionError(f"half-written {path}")
      if any(pred(r) for r in recs):
        return
    if proc.poll() is not None:
      raise AssertionError(f"the run ended before the kill point: {proc.stderr.read()}")
    time.sleep(0.02)
  raise AssertionError("timed out waiting for the kill point")


@pytest.mark.slow
def test_sigkill_in_cycle_2_then_resume_matches_uninterrupted(tmp_path):
  """A real run (entropy, warm start) killed mid cycle 2 resumes to the same result."""
  ref, killed = tmp_path / "ref", tmp_path / "killed"
  proc = _cli(killed)
  _wait_for(killed / "metrics.jsonl",
            lambda r: r["kind"] == "eval" and r["cycle"] == 2, proc)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  # Killed mid cycle 2: cycle 1 is checkpointed, cycle 2 is not.
  assert checkpoint.latest(killed, 0) == 1
  assert not (killed / "summary.json").exists()
  records(killed, "selected.jsonl")  # whole, strict JSON
  json.loads((killed / "config.json").read_text())
  partial = eval_accs(killed)

  proc = _cli(killed)  # the same command again; meanwhile the uninterrupted run here
  loop.run(tiny_digits_config("entropy", **KILL_RUN), ref, quiet=True)
  assert proc.wait() == 0, proc.stderr.read()
  assert_same_run(killed, ref)
  assert set(partial) <= set(eval_accs(ref))  # the partial cycle was replayed exactly
  assert "resuming after cycle 1" in (killed / "log.txt").read_text()
  assert json.loads((killed / "summary.json").read_text())["test_acc"] == \
      json.loads((ref / "summary.json").read_text())["test_acc"]


@pytest.fixture(scope="module")
def kill_ref(tmp_path_factory):
  """The uninterrupted KILL_RUN, for comparing resumed runs with."""
  ref = tmp_path_factory.mktemp("kill_ref") / "ref"
  loop.run(tiny_digits_config("entropy", **KILL_RUN), ref, quiet=True)
  return ref


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["ctrl_c", "sigterm"])
@pytest.mark.slow
def test_signal_in_cycle_2_is_one_line_and_an_error_record_then_resumes(
    tmp_path, kill_ref, sig, code):
  run = tmp_path / "run"
  proc = _cli(run)
  _wait_for(run / "metrics.jsonl", lambda r: r["kind"] == "eval" and r["cycle"] == 2, proc)
  proc.send_signal(sig)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == code, err
  assert "Traceback" not in err, err
  assert err.strip().splitlines() == [
      "interrupted in trial 1, cycle 2; finished cycles are kept; rerun the same command "
      "to resume"], err
  assert records(run)[-1] == {"kind": "error", "trial": 0, "cycle": 2,
                              "error": f"interrupted by {sig.name}"}
  assert "INTERRUPTED: trial 1 cycle 2" in (run / "log.txt").read_text()
  assert checkpoint.latest(run, 0) == 1 and not (run / "summary.json").exists()

  proc = _cli(run)  # the same command again
  assert proc.wait() == 0, proc.stderr.read()
  assert_same_run(run, kill_ref)
  log = (run / "log.txt").read_text()
  assert "resuming after cycle 1; lines of cycle 2 above this mark came from the " \
      "interrupted attempt" in log


# ---------------------------------------------- in-process interrupt + resume ------


@pytest.mark.parametrize("reinit", [True, False], ids=["reinit", "warm_start"])
@pytest.mark.slow
def test_interrupted_trial_2_resumes_exactly(tmp_path, monkeypatch, reinit):
  config = tiny_digits_config("random", num_trials=2, al__cycles=3,
                              train__reinit_each_cycle=reinit)
  ref = tmp_path / "ref"
  loop.run(config, ref, quiet=True)

  run = tmp_path / "run"
  with monkeypatch.context() as m:
    count_fits(m, interrupt_at=5)  # trial 0: cycles 1-3, trial 1: cycle 1, then cycle 2
    with pytest.raises(Interrupt):
      loop.run(config, run, quiet=True)
  assert checkpoint.latest(run, 0) == 3 and checkpoint.latest(run, 1) == 1
  # A write killed inside orbax leaves a temporary folder: it must not count.
  junk = checkpoint.root(run, 1) / "2.orbax-checkpoint-tmp-1234"
  shutil.copytree(checkpoint.root(run, 1) / "1", junk)
  (junk / "state" / "_METADATA").write_text("{half")
  (run / ".metrics.jsonl.abc.tmp").write_text("{half")  # a killed atomic write
  calls = count_fits(monkeypatch)
  loop.run(config, run, quiet=True)
  assert len(calls) == 2  # only trial 1's cycles 2 and 3 were trained
  assert_same_run(run, ref)
  assert not junk.exists() and not (run / ".metrics.jsonl.abc.tmp").exists()


def test_rerun_of_finished_run_trains_nothing(tmp_path, monkeypatch):
  config = tiny_digits_config("entropy")
  run = tmp_path / "run"
  first = loop.run(config, run, quiet=True)
  selected = (run / "selected.jsonl").read_text()
  monkeypatch.setattr(train.Trainer, "fit", lambda *a, **k: pytest.fail("trained again"))
  again = loop.run(config, run, quiet=True)
  assert again["test_acc"] == first["test_acc"] and again["labeled"] == first["labeled"]
  assert (run / "selected.jsonl").read_text() == selected


# ---------------------------------------------------------- determinism ------


@pytest.fixture(scope="module")
def per_strategy(tmp_path_factory):
  """Two identical tiny runs of every registered strategy."""
  out = {}
  for name in strategies.names():
    dirs = []
    for i in range(2):
      d = tmp_path_factory.mktemp(f"{name}{i}") / "run"
      need = strategies.get_strategy(name, tiny_digits_config().al).requires
      # Each strategy's model needs: dropout for MC dropout, a ResNet's stages
      # for the loss-prediction module.
      sampled = need.samples is not strategies.base.Samples.NONE
      model = ({"model__name": "resnet18", "model__width": 0.0625}
               if need.predicted_loss else {"model__dropout": 0.3 if sampled else 0.0})
      loop.run(tiny_digits_config(name, train__epochs=1, train__milestones=(), **model), d,
               quiet=True)
      dirs.append(d)
    out[name] = dirs
  return out


def _sampled(need) -> bool:
  """The strategy reads more than one plain model's outputs."""
  return need.predicted_loss or need.samples is not strategies.base.Samples.NONE


@pytest.mark.slow
def test_same_seed_same_result_for_every_strategy(per_strategy):
  for name, (a, b) in per_strategy.items():
    assert records(a, "selected.jsonl") == records(b, "selected.jsonl"), name
    assert cycle_accs(a) == cycle_accs(b), name  # same backend: bit-identical
    assert eval_accs(a) == eval_accs(b), name


@pytest.mark.slow
def test_strategy_never_changes_initial_set_or_weights(per_strategy):
  # Every strategy starts from the same initial set. Those that train the plain
  # model also train the same first cycle; the MC-dropout ones run with
  # model.dropout and the ensembles report their ensemble's accuracy, so
  # their first-cycle accuracies differ by design (test_ensemble checks that
  # member 0 is the plain model).
  plain = {n for n in per_strategy
           if not _sampled(strategies.get_strategy(n, tiny_digits_config().al).requires)}
  assert len(plain) >= 9, plain
  initial = {json.dumps(records(a, "selected.jsonl")[0]) for a, _ in per_strategy.values()}
  assert len(initial) == 1
  firsts = {name: (records(a, "selected.jsonl")[0], cycle_accs(a)[0], eval_accs(a)[0])
            for name, (a, _) in per_strategy.items() if name in plain}
  assert len({json.dumps(v) for v in firsts.values()}) == 1, firsts
  # The picks themselves differ between strategies (it is not all one code path).
  picks = {json.dumps(records(a, "selected.jsonl")[1]) for a, _ in per_strategy.values()}
  assert len(picks) > 1


def test_different_seeds_give_different_initial_sets(tmp_path):
  sets = []
  for seed in (0, 1, 2):
    d = tmp_path / f"s{seed}"
    loop.run(tiny_digits_config(seed=seed, al__cycles=1, train__epochs=1), d, quiet=True)
    sets.append(records(d, "selected.jsonl")[0]["indices"])
  assert len({tuple(s) for s in sets}) == 3
  assert all(len(set(s)) == 20 for s in sets)


def test_named_streams_are_distinct_and_stable():
  keys = {n: tuple(np.asarray(jax.random.key_data(rng.stream(0, 0, n))).tolist())
          for n in rng.STREAMS}
  assert len(set(keys.values())) == len(rng.STREAMS)
  assert keys == {n: tuple(np.asarray(jax.random.key_data(rng.stream(0, 0, n))).tolist())
                  for n in rng.STREAMS}
  other_trial = jax.random.key_data(rng.stream(0, 1, "init"))
  assert not np.array_equal(other_trial, jax.random.key_data(rng.stream(0, 0, "init")))


# ------------------------------------------------------------ results files ------


def test_atomic_json_survives_sigkill(tmp_path):
  """Kill a writer in a tight loop of large rewrites: the file is always whole."""
  target = tmp_path / "summary.json"
  code = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
          "from jax_al import files\n"
          f"big = {{'x': list(range(200000))}}\n"
          "i = 0\n"
          "while True:\n"
          f"  files.write_json({str(target)!r}, dict(big, i=i)); i += 1\n")
  proc = subprocess.Popen([sys.executable, "-c", code])
  t0 = time.monotonic()
  while not target.exists() and time.monotonic() - t0 < 60:
    time.sleep(0.01)
  time.sleep(0.3)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  doc = json.loads(target.read_text())
  assert doc["x"][-1] == 199999 and isinstance(doc["i"], int)


def test_results_files_are_strict_json_and_readable(tmp_path):
  files.write_jsonl(tmp_path / "m.jsonl", [{"a": float("nan"), "b": [np.float32(np.inf)],
                                         "c": np.int64(3)}])
  assert records(tmp_path, "m.jsonl") == [{"a": None, "b": [None], "c": 3}]
  assert oct((tmp_path / "m.jsonl").stat().st_mode & 0o777) != oct(0o600)
  log = files.JsonlLog(tmp_path / "m.jsonl")  # creating a log truncates nothing
  assert records(tmp_path, "m.jsonl") == [{"a": None, "b": [None], "c": 3}]
  log.append({"d": 1})
  assert records(tmp_path, "m.jsonl") == [{"d": 1}]


# ------------------------------------------------------------ training guards ------


def test_diverging_model_stops_with_error_record(tmp_path):
  run = tmp_path / "run"
  config = tiny_digits_config(train__lr=1e6, train__epochs=4, train__milestones=())
  with pytest.raises(TrainingError, match="lower train.lr"):
    loop.run(config, run, quiet=True)
  last = records(run)[-1]
  assert last["kind"] == "error" and last["cycle"] == 1 and "diverged" in last["error"]
  assert checkpoint.latest(run, 0) is None
  assert "ERROR" in (run / "log.txt").read_text()


def test_nonfinite_loss_in_cycle_2_keeps_cycle_1_checkpoint(tmp_path, monkeypatch):
  config = tiny_digits_config("entropy", al__cycles=3)
  ref = tmp_path / "ref"
  loop.run(config, ref, quiet=True)
  run = tmp_path / "run"
  real = train.Trainer.run_epoch

  def nan_in_cycle_2(self, state, images, labels, mask, num_labeled, *args):
    state, loss = real(self, state, images, labels, mask, num_labeled, *args)
    return state, (loss * np.nan if num_labeled == 40 else loss)

  with monkeypatch.context() as m:
    m.setattr(train.Trainer, "run_epoch", nan_in_cycle_2)
    with pytest.raises(TrainingError, match="train.lr") as e:
      loop.run(config, run, quiet=True)
  assert "nan" in str(e.value)
  last = records(run)[-1]
  assert last == {"kind": "error", "trial": 0, "cycle": 2, "error": str(e.value)}
  assert checkpoint.latest(run, 0) == 1
  meta = checkpoint.restore_meta(run, 0, 1)
  assert meta["cycle"] == 1 and len(meta["labeled"]) == 40
  loop.run(config, run, quiet=True)  # once fixed, the run resumes after cycle 1
  assert "resuming after cycle 1" in (run / "log.txt").read_text()
  assert_same_run(run, ref)




@pytest.mark.slow
def test_empty_pool_ends_the_run_cleanly(tmp_path, monkeypatch, capsys):
  # The size checks forbid budgets that exhaust the pool; bypass them to reach
  # the loop's own guard: 1200 + 97 labels use up all 1297 digits after cycle 1.
  monkeypatch.setattr(preflight.config_lib, "check_sizes", lambda *a: None)
  config = tiny_digits_config(al__initial=1200, al__budget=97, al__cycles=3,
                              train__epochs=1, train__milestones=())
  run = tmp_path / "run"
  summary = loop.run(config, run)
  assert summary["labeled"] == [1200, 1297]
  assert "unlabeled pool is empty" in capsys.readouterr().out
  monkeypatch.setattr(train.Trainer, "fit", lambda *a, **k: pytest.fail("trained again"))
  assert loop.run(config, run, quiet=True)["labeled"] == [1200, 1297]


# ----------------------------------------------- stopped and older runs ------


def test_stopped_run_resumes(stopped_copy):
  run, config = stopped_copy
  assert loop.run(config, run, quiet=True)["labeled"] == [20, 40, 60]


# Every results field of the first saved runs (format 1, 2026-11-28). A field
# added since must be in workdir.ADDED_FIELDS (or be execution-only).
FIRST_FIELDS = {
    "al.approx", "al.batch", "al.block", "al.budget", "al.cycles", "al.draw_size",
    "al.estimator", "al.greedy_weight", "al.initial", "al.k", "al.kmeans.init",
    "al.kmeans.max_iter", "al.kmeans.n_init", "al.kmeans.tol", "al.lam", "al.mmd_scope",
    "al.mode", "al.normalize", "al.repeats", "al.rff_dim", "al.sigma", "al.sign",
    "al.strategy", "al.subset", "al.term", "al.transform", "al.u_scope", "al.use_mmd",
    "augment.crop_pad", "augment.flip", "compare.parallel", "compare.strategies",
    "data.cache_dir", "data.channels", "data.data_dir", "data.image_size",
    "data.max_image_bytes", "data.mean", "data.name", "data.num_test", "data.path",
    "data.source", "data.std", "data.test_split", "data.train_split", "mesh.data",
    "mesh.distributed", "model.name", "model.width", "num_trials", "resume", "seed",
    "train.batch_size", "train.dtype", "train.epochs", "train.eval_batch_size",
    "train.eval_every", "train.gamma", "train.lr", "train.milestones", "train.momentum",
    "train.reinit_each_cycle", "train.steps_per_call", "train.weight_decay"}


def _fields(d, prefix=""):
  out = set()
  for k, v in d.items():
    out |= _fields(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
  return out


def test_every_field_added_since_the_first_runs_has_its_old_value():
  """Otherwise a run saved before the field existed could not be resumed."""
  from configs import cifar10, cifar10_features, digits

  for c in (digits.get_config(), cifar10.get_config(), cifar10_features.get_config()):
    new = _fields(c.to_dict()) - FIRST_FIELDS - set(workdir_lib.EXECUTION_ONLY)
    assert new <= set(workdir_lib.ADDED_FIELDS), sorted(new - set(workdir_lib.ADDED_FIELDS))


def _as_if_saved_before_the_added_fields(run: Path) -> None:
  """Rewrites a run as the version before ADDED_FIELDS wrote it: config.json
  without those fields, and every checkpoint meta recording that file's digest."""
  path = run / "config.json"
  saved = json.loads(path.read_text())
  for field in workdir_lib.ADDED_FIELDS:
    *parents, last = field.split(".")
    node = saved
    for p in parents:
      node = node[p]
    node.pop(last)
  saved["data"].pop("coates")
  path.write_text(json.dumps(saved, indent=2))
  digest = workdir_lib.saved_hash(run)
  metas = list((run / "checkpoints").rglob("meta/metadata"))
  assert metas
  for m in metas:
    meta = json.loads(m.read_text())
    assert meta["config_hash"] != digest
    meta["config_hash"] = digest
    m.write_text(json.dumps(meta))


def test_a_run_saved_before_fields_were_added_resumes_exactly(stopped, tmp_path):
  run, config = stopped
  old, plain = tmp_path / "old", tmp_path / "plain"
  shutil.copytree(run, old, symlinks=True)
  shutil.copytree(run, plain, symlinks=True)
  _as_if_saved_before_the_added_fields(old)
  assert loop.run(config, old, quiet=True)["labeled"] == [20, 40, 60]
  loop.run(config, plain, quiet=True)
  assert (old / "selected.jsonl").read_text() == (plain / "selected.jsonl").read_text()
  # replay rebuilds its steps from the saved config, the added fields filled in
  assert workdir_lib.load_config(old).al.ll_weight == workdir_lib.ADDED_FIELDS["al.ll_weight"]


def test_a_run_saved_before_a_field_is_refused_with_another_value(stopped_copy, no_training):
  run, config = stopped_copy
  _as_if_saved_before_the_added_fields(run)
  before = snapshot(run)
  config = copy.deepcopy(config)  # the module's fixture serves the tests after this one
  config.al.pad_labeled = "run"
  with pytest.raises(ConfigError, match=r"al\.pad_labeled: 'bucket' there, 'run' now"):
    loop.run(config, run, quiet=True)
  assert snapshot(run) == before
