"""Limits a run meets outside its config: a full disk, unwritable folders,
fields that size memory or work, a damaged run or study record (issue 24,
items 8-11, 13-15)."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import orbax.checkpoint as ocp
import pytest

from conftest import snapshot, tiny_digits_config
from jax_al import checkpoint, files, loop
from jax_al.errors import ConfigError, DataError


def _records(workdir: Path) -> list[dict]:
  return [json.loads(l) for l in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]


def _same_run(a: Path, b: Path) -> None:
  """Same picks, and the same accuracies within float tolerance."""
  assert (a / "selected.jsonl").read_text() == (b / "selected.jsonl").read_text()
  cyc = lambda w: [(r["trial"], r["cycle"], r["labeled"], r["test_acc"])
                   for r in _records(w) if r["kind"] == "cycle"]
  for x, y in zip(cyc(a), cyc(b), strict=True):
    assert x[:3] == y[:3] and math.isclose(x[3], y[3], abs_tol=1e-4), (x, y)


def _one_line(e: BaseException) -> str:
  text = str(e)
  assert "\n" not in text and "Traceback" not in text, text
  return text


# ------------------------------------------------------------ disk full ------

FULL_RUN = dict(al__cycles=3)


@pytest.fixture(scope="module")
def full_ref(tmp_path_factory):
  ref = tmp_path_factory.mktemp("full_ref") / "ref"
  loop.run(tiny_digits_config("random", **FULL_RUN), ref, quiet=True)
  return ref


def _enospc(*_a, **_k):
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_at_the_start_is_one_line_naming_folder_and_bytes(tmp_path, monkeypatch):
  run = tmp_path / "run"
  monkeypatch.setattr(files, "_write_all", _enospc)
  with pytest.raises(files.WriteError) as e:
    loop.run(tiny_digits_config("random"), run, quiet=True)
  msg = _one_line(e.value)
  assert str(run) in msg and "no space left" in msg and "config.json" in msg, msg
  assert "needs about " in msg and "kB" in msg and "free at least " in msg, msg
  assert not (run / "config.json").exists()  # the temporary file went too
  assert not any(run.glob(".*.tmp"))


@pytest.mark.slow
def test_disk_full_while_a_checkpoint_is_written_then_resume_is_exact(tmp_path, monkeypatch,
                                                                     full_ref):
  run = tmp_path / "run"
  config = tiny_digits_config("random", **FULL_RUN)
  real, calls = ocp.CheckpointManager.save, []

  def save(self, *a, **k):  # orbax's write of cycle 2 hits a full disk
    calls.append(1)
    if len(calls) == 2:
      raise ValueError("tensorstore write failed: No space left on device [OSError 28]")
    return real(self, *a, **k)

  with monkeypatch.context() as m:
    m.setattr(ocp.CheckpointManager, "save", save)
    with pytest.raises(files.WriteError) as e:
      loop.run(config, run, quiet=True)
  msg = _one_line(e.value)
  assert "checkpoints" in msg and "trial 1, cycle 2" in msg and "needs about" in msg, msg
  assert "rerun the same command" in msg, msg
  last = _records(run)[-1]
  assert last["kind"] == "error" and (last["trial"], last["cycle"]) == (0, 2), last
  assert "no space left" in last["error"], last
  # Cycle 2 is not finished: no cycle record, no picks of it until it is redone.
  assert not [r for r in _records(run) if r["kind"] == "cycle" and r["cycle"] == 2]
  picks = [json.loads(l) for l in (run / "selected.jsonl").read_text().splitlines()]
  assert [p["cycle"] for p in picks] == [0, 1]
  assert checkpoint.latest(run, 0) == 1
  assert not any(".orbax-checkpoint-tmp" in p.name for p in checkpoint.root(run, 0).iterdir())
  loop.run(config, run, quiet=True)  # space freed: the same command resumes
  _same_run(run, full_ref)


def test_free_space_below_a_checkpoint_is_refused_before_orbax_writes(tmp_path, monkeypatch,
                                                                      full_ref):
  run = tmp_path / "run"
  config = tiny_digits_config("random", **FULL_RUN)
  real, state = files.free_bytes, {"full": False}
  monkeypatch.setattr(files, "free_bytes",
                      lambda p: 1000 if state["full"] and "checkpoints" in str(p) else real(p))
  real_commit = loop._commit

  def commit(result, *a):
    state["full"] = result.cycle == 2
    return real_commit(result, *a)

  monkeypatch.setattr(loop, "_commit", commit)
  with pytest.raises(files.WriteError) as e:
    loop.run(config, run, quiet=True)
  msg = _one_line(e.value)
  assert "1 kB are free" in msg and "trial 1, cycle 2" in msg, msg
  assert _records(run)[-1]["kind"] == "error"
  monkeypatch.undo()  # space freed
  loop.run(config, run, quiet=True)
  _same_run(run, full_ref)


def test_a_disk_too_small_for_the_checkpoints_is_refused_before_anything_is_written(
    tmp_path, monkeypatch):
  run = tmp_path / "run"
  monkeypatch.setattr(files, "free_bytes", lambda p: 10_000)
  with pytest.raises(files.WriteError) as e:
    loop.run(tiny_digits_config("random"), run, quiet=True)
  msg = _one_line(e.value)
  assert "10 kB are free" in msg and "nothing was written" in msg, msg
  assert not run.exists()


def test_disk_full_while_the_learning_curve_is_written_is_one_line(tmp_path, monkeypatch):
  real = files._write_all

  def write_all(f, raw):  # the disk fills up at the run's last file, its PNG
    if raw[:4] == b"\x89PNG":
      _enospc()
    real(f, raw)

  monkeypatch.setattr(files, "_write_all", write_all)
  run = tmp_path / "run"
  with pytest.raises(files.WriteError) as e:
    loop.run(tiny_digits_config("random"), run, quiet=True)
  msg = _one_line(e.value)
  assert "learning_curve.png" in msg and "no space left" in msg, msg
  assert not any(run.glob(".*.tmp")) and (run / "summary.json").exists()


def test_disk_full_reaches_the_command_line_as_one_line(tmp_path, monkeypatch):
  from jax_al import cli
  monkeypatch.setattr(files, "_write_all", _enospc)
  with pytest.raises(SystemExit) as e:
    cli.run_command(tiny_digits_config("random"), str(tmp_path / "run"), False)
  assert str(e.value.code).startswith("error: ") and "\n" not in str(e.value.code)


# ------------------------------------------------- TensorBoard folder ------


class _Stop(BaseException):
  """Stands for a kill after cycle 1."""


@pytest.fixture(scope="module")
def stopped_tb(tmp_path_factory):
  """A run of ours stopped after cycle 1 of 2 (log.tensorboard on)."""
  from jax_al import train
  run = tmp_path_factory.mktemp("stopped_tb") / "run"
  real, calls = train.Trainer.fit, []

  def fit(*a, **k):
    calls.append(1)
    if len(calls) == 2:
      raise _Stop()
    return real(*a, **k)

  mp = pytest.MonkeyPatch()
  mp.setattr(train.Trainer, "fit", fit)
  try:
    with pytest.raises(_Stop):
      loop.run(tiny_digits_config("random", log__tensorboard=True), run, quiet=True)
  finally:
    mp.undo()
  return run


def _break_file(tb: Path, monkeypatch) -> None:
  import shutil
  shutil.rmtree(tb)
  tb.write_text("my notes")


def _break_link(tb: Path, monkeypatch) -> None:
  import shutil
  shutil.rmtree(tb)
  tb.symlink_to(tb.parent / "gone")


def _break_readonly(tb: Path, monkeypatch) -> None:
  if os.geteuid() != 0:
    tb.chmod(0o555)
    (tb / "trial0").chmod(0o555)
    return
  import tempfile  # root writes through any mode bits: the filesystem refuses instead
  real = tempfile.mkstemp

  def mkstemp(*a, dir=None, **k):
    if dir is not None and Path(dir).resolve().is_relative_to(tb.resolve()):
      raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
    return real(*a, dir=dir, **k)

  monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("brk,needle", [(_break_file, "is a file"),
                                        (_break_link, "does not exist"),
                                        (_break_readonly, "cannot be written")],
                         ids=["file", "dangling_link", "read_only"])
def test_unwritable_tensorboard_folder_is_refused_before_any_training(
    stopped_tb, tmp_path, monkeypatch, brk, needle):
  import shutil
  from jax_al import train
  run = tmp_path / "run"
  shutil.copytree(stopped_tb, run, symlinks=True)
  tb = run / "tensorboard"
  brk(tb, monkeypatch)
  before = snapshot(run)

  def fit(*a, **k):
    raise AssertionError("training started before the TensorBoard folder was checked")

  monkeypatch.setattr(train.Trainer, "fit", fit)
  with pytest.raises(DataError) as e:
    loop.run(tiny_digits_config("random", log__tensorboard=True), run, quiet=True)
  msg = _one_line(e.value)
  assert "tensorboard" in msg and needle in msg and "log.tensorboard=False" in msg, msg
  monkeypatch.undo()
  if tb.exists() and not tb.is_symlink() and tb.is_dir():
    tb.chmod(0o755)
    (tb / "trial0").chmod(0o755)
  assert snapshot(run) == before  # nothing written, nothing removed


# ------------------------------------------- study --out, study.json ------


def _tiny_study(out):
  from configs import digits
  from jax_al import study
  f = study.fields.study_defaults()
  with f.unlocked():
    f.baselines = "random"
    f.lams = "1"
    f.norms = "rank"
    f.sign_lams = "1"
  return study.build(digits.get_config(), f, config_spec="configs/digits.py", mode="ci",
                     out=out, executor="local")


def test_study_out_on_a_read_only_filesystem_is_one_line(tmp_path, monkeypatch):
  from jax_al import study
  ro = tmp_path / "ro"
  ro.mkdir()
  out = ro / "study"
  if os.geteuid() != 0:
    ro.chmod(0o555)
  else:  # root writes through mode bits: the filesystem refuses instead
    real = Path.mkdir

    def mkdir(self, *a, **k):
      if self == out or ro in self.parents:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
      return real(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
  try:
    with pytest.raises(ConfigError) as e:
      study.run_study(_tiny_study(out), log=lambda m: None)
  finally:
    ro.chmod(0o755)
  msg = _one_line(e.value)
  assert "--out" in msg and str(out) in msg, msg
  assert "Read-only file system" in msg or "Permission denied" in msg, msg
  assert "writable filesystem" in msg, msg
  assert not out.exists()


def test_garbage_study_json_is_named_as_damaged_not_as_missing(tmp_path):
  from jax_al import study
  out = tmp_path / "study"
  out.mkdir()
  (out / "study.json").write_text("{garb")
  (out / "findings.md").write_text("# findings\n")
  with pytest.raises(ConfigError) as e:
    study.check_out(out)
  msg = _one_line(e.value)
  assert "study.json is not a jax-al study's record" in msg and "no study.json" not in msg, msg
  assert "restore it from a copy" in msg, msg
  (out / "study.json").write_text(json.dumps({"tool": "someone else"}))
  with pytest.raises(ConfigError, match="not a jax-al study's record"):
    study.check_out(out)


# ------------------------------------------------- a damaged config.json ------


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_our_run_with_a_damaged_config_json_says_so_and_how_to_recover(
    finished, tmp_path, damage):
  import shutil
  run = tmp_path / "run"
  shutil.copytree(finished, run)
  cfg = run / "config.json"
  if damage == "truncated":
    cfg.write_text(cfg.read_text()[:40])
  else:
    cfg.unlink()
  before = snapshot(run)
  for overwrite in (False, True):
    with pytest.raises(DataError) as e:
      loop.run(tiny_digits_config("random"), run, overwrite=overwrite, quiet=True)
    msg = _one_line(e.value)
    assert "this run's config" in msg and "someone else" not in msg, msg
    assert ("is damaged" if damage == "truncated" else "is missing") in msg, msg
    assert "restore config.json" in msg, msg
    assert snapshot(run) == before


# ------------------------------------------ fields that size memory or work ------


def test_draw_size_past_46341_no_longer_overflows():
  import jax.numpy as jnp
  from jax_al.scores import mmd
  s = 46341  # s**2 > 2**31: an int32 argument could not hold it
  got = float(mmd.within_mean(jnp.float32(s * 3.0), s))
  assert math.isclose(got, 3.0 / s, rel_tol=1e-6)
  got = float(mmd.within_mean(jnp.float32(s * 3.0), s, unbiased=True))
  assert math.isclose(got, 2.0 / (s - 1), rel_tol=1e-5)
  got = float(mmd.mmd2_from_sums(jnp.float32(s * s), jnp.float32(s * s), jnp.float32(s * s),
                                 s, s))
  assert abs(got) < 1e-5




def test_typiclust_memory_estimate_counts_the_capped_clusters():
  # 1,000,000 candidates, 10,000 labeled, a budget of 10,000: TypiClust
  # clusters into MAX_CLUSTERS = 500, not labeled + budget = 20,000 (the
  # estimate of 20,000 centres, 243 GB, refused a selection that fits).
  from jax_al import memory
  from jax_al.strategies import typiclust

  c = tiny_digits_config("typiclust", al__budget=10_000)
  ((field, value, need_of, what, *_), _) = [
      e for e in memory.selection_needs(c, 1_000_000, 10_000, 768, 10)
      if e[0].startswith("al.kmeans.")]
  assert field == "al.kmeans.n_init" and f"x {typiclust.MAX_CLUSTERS} centres" in what
  # The blocked k-means holds the concatenated points (3.1 GB), [N] vectors and
  # one [rows, K] block, not ott-jax's weighted copy and [N, K] cost matrices
  # (another 9 GB here).
  need = need_of(value)
  assert 4 * (768 + 22) * 1_010_000 < need < 3.3e9, need
  assert need_of(10) - need == 9 * 4 * (1_010_000 + c.al.kmeans.max_iter)
  # Below the cap it is labeled + budget.
  small = tiny_digits_config("typiclust", al__budget=30)
  ((*_, what, _, _, _), _) = [e for e in memory.selection_needs(small, 1_000, 40, 768, 10)
                               if e[0].startswith("al.kmeans.")]
  assert "of 1,040 points x 70 centres" in what


def test_kernel_program_size_does_not_grow_with_columns_per_block():
  import jax
  import jax.numpy as jnp
  from jax_al.scores import mmd

  def size(m):
    x, y = jnp.ones((4, 3)), jnp.ones((m, 3))
    f = jax.jit(lambda x, y: mmd.kernel_matvec(x, y, jnp.ones(m), jnp.float32(1.0), block=1))
    return len(f.lower(x, y).as_text())  # the lowered program, where a scan is unrolled

  assert size(4000) < 1.2 * size(400)  # al.block=1 used to unroll every column




# -------------------------------------------------------- NaN advice ------


def test_1x1_images_are_refused_up_front_for_a_pooling_model(tmp_path, monkeypatch):
  from jax_al import train
  monkeypatch.setattr(train.Trainer, "fit", lambda *a, **k: pytest.fail("trained"))
  with pytest.raises(ConfigError) as e:
    loop.run(tiny_digits_config("random", model__name="cnn", data__image_size=1),
             tmp_path / "run", quiet=True)
  msg = _one_line(e.value)
  assert "`data.image_size` = '1x1'" in msg and "model.name=cnn" in msg, msg
  assert "0x0" in msg and "at least 2x2" in msg, msg
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("fields,needle", [
    (dict(train__weight_decay=1e30), "lower train.lr or train.weight_decay"),
    (dict(train__lr=1e30), "lower train.lr or train.weight_decay"),
    (dict(train__lr=1e30, train__weight_decay=0.0), "lower train.lr (1e+30 is far above"),
], ids=["weight_decay", "lr", "lr_no_decay"])
def test_divergence_advice_fits_the_case(tmp_path, fields, needle):
  from jax_al.errors import TrainingError
  with pytest.raises(TrainingError) as e:
    loop.run(tiny_digits_config("random", **fields), tmp_path / "run", quiet=True)
  msg = _one_line(e.value)
  assert needle in msg, msg
  assert "float32" not in msg, msg  # the run is float32 already
  err = _records(tmp_path / "run")[-1]
  assert err["kind"] == "error" and needle in err["error"]


def test_divergence_advice_on_bfloat16_still_suggests_float32():
  from jax_al import train
  c = tiny_digits_config("random", train__dtype="bfloat16")
  assert train.divergence_fix(c.train).endswith("or use train.dtype=float32")


# ------------------------------------------------- the study plan's estimate ------


def _digits_study():
  from configs import digits
  from jax_al import study
  f = study.fields.study_defaults()
  with f.unlocked():  # the committed study's command (docs/study/digits/README.md)
    f.baselines = "random,entropy,margin,least_confidence,coreset,badge,typiclust"
    f.device = "cpu"
  return study.build(digits.get_config(), f, config_spec="configs/digits.py", mode="full",
                     out=None, executor="local")


def _committed_runtime() -> dict:
  from conftest import REPO
  return json.loads((REPO / "docs/study/digits/findings.json").read_text())["runtime"]


def _pin_probe(monkeypatch) -> float:
  """The plan's throughput probe pinned at the rate the calibration was derived at
  (a timing of this machine would make the plan's numbers vary)."""
  from jax_al.study import cost, throughput
  rate = cost.CALIBRATED[("mlp", "cpu")][2]
  monkeypatch.setattr(throughput, "train_images_per_s",
                      lambda config, dev: (rate, "pinned by the test"))
  return rate


def test_plan_estimate_on_digits_lands_within_2x_of_the_committed_measurement(monkeypatch):
  from jax_al import study
  _pin_probe(monkeypatch)
  st = _digits_study()
  measured = _committed_runtime()["command_s"]  # 331 s for its 102 jobs and the analysis
  total = study.cost.estimate(st)["total_s"]
  assert measured / 2 <= total <= 2 * measured, (total, measured)
  text = study.plan_text(st)
  assert "102 jobs" in text and "calibrated on docs/study/digits" in text, text


def test_calibration_constants_rederive_from_the_committed_study(monkeypatch):
  from jax_al.study import cost
  _pin_probe(monkeypatch)
  st = _digits_study()
  rt = _committed_runtime()
  calibrated = cost.CALIBRATED
  factor, _, _ = calibrated[("mlp", "cpu")]
  monkeypatch.setattr(cost, "CALIBRATED", {})
  raw = cost.estimate(st)  # the uncalibrated assumptions
  monkeypatch.setattr(cost, "CALIBRATED", calibrated)
  assert math.isclose(factor, rt["job_seconds_total"] / (raw["phase1_s"] + raw["phase2_s"]),
                      rel_tol=0.01)
  cal = cost.estimate(st)
  assert math.isclose(cal["phase1_s"] + cal["phase2_s"], rt["job_seconds_total"], rel_tol=0.01)
  assert math.isclose(cal["analysis_s"], rt["analysis_s"], rel_tol=0.02), cal["analysis_s"]


# ------------------------------------------------- selection_time.png ------


@pytest.mark.slow
def test_selection_time_plot_data_shows_compilation_apart_and_every_cycle(tmp_path):
  import jax
  from jax_al import report
  root = tmp_path / "cmp"
  jax.clear_caches()  # earlier tests compiled these programs: the first selection here must again
  for name in ("random", "entropy"):
    loop.run(tiny_digits_config(name, al__cycles=3), root / name, quiet=True)
  summary = report.make_report([root], tmp_path / "report")
  series = report.selection_series(summary)
  assert set(series) == {"random", "entropy"}
  for name, se in series.items():
    assert se["cycles"] == [1, 2] and se["cycles_total"] == 3  # every cycle that selects
    assert all(isinstance(c, int) for c in se["cycles"])
    s = summary["strategies"][name]
    for i in range(2):  # steady + compilation = the recorded selection time
      assert math.isclose(se["steady_s"][i] + se["compile_s"][i], s["select_s_mean"][i],
                          rel_tol=1e-6, abs_tol=2e-6)
  recs = [r for r in _records(root / "random") if r["kind"] == "cycle" and r["cycle"] < 3]
  assert recs[0]["select_compile_s"] > 0  # the first selection of the process compiles
  assert (tmp_path / "report" / "selection_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # A run recorded before select_compile_s existed: its first, compiling call is left out.
  for s in summary["strategies"].values():
    s.pop("select_compile_s_mean")
  old = report.selection_series(summary)
  assert all(se["cycles"] == [2] and se["compile_s"] is None for se in old.values())
