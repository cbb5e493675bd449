"""Smoke tests of `python -m jax_al.bench` at tiny sizes (in-process)."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

from jax_al.bench.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def _positive(x):
  return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_train_and_features_json(tmp_path):
  out = tmp_path / "b.json"
  doc = main(["train,features", "--quick", "--models", "cnn", "--cnn-width", "0.25",
              "--dtypes", "float32", "--variants", "step,chunk,epoch", "--batch", "32",
              "--n-train", "128", "--sizes", "64,128", "--repeats", "1", "--pool", "96",
              "--eval-batch", "64", "--json", str(out)])
  saved = json.loads(out.read_text())
  assert len(saved["train"]) == len(doc["train"])
  meta = saved["meta"]
  for k in ("date", "backend", "device_kind", "jax", "flax", "quick", "parts"):
    assert k in meta
  assert meta["quick"] is True and meta["parts"] == ["train", "features"]
  rows = saved["train"]
  assert {(r["variant"], r["labeled"]) for r in rows} == {
      (v, n) for v in ("step", "chunk", "epoch") for n in (64, 128)}
  for r in rows:
    for k in ("images_per_s", "epoch_s", "step_ms", "cycle_s_est", "first_epoch_s"):
      assert _positive(r[k]), (k, r)
    assert r["compile_s"] >= 0 and r["peak_rss_bytes"] > 0
    assert "peak_device_bytes" in r  # None on CPU
    assert r["train_step_executables"] == 1  # a new labeled size reuses the executable
    assert r["steps"] == math.ceil(r["labeled"] / 32)
  # XLA's cost of the one-step program, shared by every variant of the model.
  flops = {r["flops_per_image"] for r in rows}
  assert len(flops) == 1 and all(_positive(r["tflops"]) for r in rows)
  assert _positive(rows[0]["bytes_per_image"])
  spc = {r["variant"]: r["steps_per_call"] for r in rows}
  assert spc == {"step": 1, "chunk": 4, "epoch": 4}  # chunk 40 is capped at the 4 rows
  assert "train_protocol_estimates" not in saved  # not extrapolated from --quick sizes
  (f,) = saved["features"]
  assert f["pool"] == 96 and _positive(f["images_per_s"]) and f["feature_dim"] == 32
  assert saved["memory"]["peak_rss_bytes"] > 0


@pytest.mark.slow
def test_protocol_on_digits(tmp_path):
  doc = main(["protocol", "--config", "configs/digits.py", "--config.al.cycles=2",
              "--config.train.epochs=2", "--config.train.eval_every=1", "--quiet",
              "--workdir", str(tmp_path / "run"), "--json", str(tmp_path / "p.json")])
  p = doc["protocol"]
  assert p["status"] == "done" and [c["cycle"] for c in p["cycles"]] == [1, 2]
  assert all(_positive(c["total_s"]) for c in p["cycles"])
  assert p["total_s"] >= p["cycles_s"] > 0
  assert json.loads((tmp_path / "p.json").read_text())["protocol"]["status"] == "done"
  # Compilation is measured per cycle (zero here when earlier tests in this
  # process compiled the same programs; tests/test_compiles.py checks values).
  assert all(c["compile_s"] >= 0 and c["compiles"] >= 0 for c in p["cycles"])


@pytest.mark.slow
def test_gpu_summary_reads_the_bench_json(tmp_path, capsys):
  # benchmarks/summarize.py prints the last table of benchmarks/gpu.sh.
  main(["protocol", "--config", "configs/digits.py", "--config.al.cycles=2",
        "--config.train.epochs=2", "--config.train.eval_every=1", "--quiet",
        "--json", str(tmp_path / "protocol.json")])
  spec = importlib.util.spec_from_file_location("summarize", ROOT / "benchmarks" / "summarize.py")
  summarize = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(summarize)
  capsys.readouterr()
  summarize.main(str(tmp_path))
  out = capsys.readouterr().out
  assert "compile s" in out and "protocol (done)" in out
  assert "not the full protocol: no goal check" in out  # digits is not the 7-cycle goal
  rows = [l.split() for l in out.splitlines() if l.strip()[:1].isdigit()]
  assert [r[0] for r in rows] == ["1", "2"] and [r[1] for r in rows] == ["20", "40"]


@pytest.mark.parametrize("argv", [["nope"], ["train", "--models", "vgg"],
                                  ["train", "--config.x=1"], ["train", "--bogus"]])
def test_bad_arguments_exit_with_a_message(argv):
  with pytest.raises(SystemExit) as e:
    main(argv)
  assert "error" in str(e.value)


def test_trace_summary_counts_overlaps_once_and_nested_ops_by_self_time():
  from jax_al.bench.profile import summarize_trace
  M = lambda pid, tid, kind, name: {"ph": "M", "pid": pid, "tid": tid, "name": kind,
                                    "args": {"name": name}}
  X = lambda pid, tid, name, ts, dur: {"ph": "X", "pid": pid, "tid": tid, "name": name,
                                       "ts": ts, "dur": dur}
  trace = {"traceEvents": [
      M(1, None, "process_name", "/host:CPU"), M(2, None, "process_name", "/device:GPU:0"),
      M(2, 7, "thread_name", "Stream #7"), M(2, 8, "thread_name", "Stream #8"),
      M(2, 9, "thread_name", "XLA Modules"), M(2, 10, "thread_name", "XLA Ops"),
      X(1, 1, "PjitFunction(step)", 0, 1000),          # host: not device time
      X(2, 9, "jit_train_chunk", 50, 900),             # spans the gaps: not busy time
      X(2, 10, "convolution.3", 100, 300), X(2, 10, "fusion.7", 400, 100),
      X(2, 7, "conv_fprop", 100, 300), X(2, 7, "bn_fusion", 400, 100),
      X(2, 8, "conv_wgrad", 200, 300),                 # overlaps stream 7: 100..500
      X(2, 8, "wrapper", 600, 200), X(2, 8, "inner", 650, 100)]}
  s = summarize_trace(trace)
  assert s["window_s"] == pytest.approx(1000e-6)
  (dev,) = s["devices"]
  assert dev["device"] == "/device:GPU:0" and dev["events"] == 5
  assert dev["busy_s"] == pytest.approx(600e-6)  # [100, 500) + [600, 800)
  assert dev["busy_frac"] == pytest.approx(0.6)
  ops = {o["name"]: o["total_ms"] for o in dev["top_ops"]}
  assert ops == pytest.approx({"conv_fprop": 0.3, "conv_wgrad": 0.3, "bn_fusion": 0.1,
                               "wrapper": 0.1, "inner": 0.1})
  assert [o["name"] for o in dev["top_ops"]][:2] == ["conv_fprop", "conv_wgrad"]
  assert sum(o["frac"] for o in dev["top_ops"]) == pytest.approx(1.0)
  assert [o["name"] for o in dev["top_hlo_ops"]] == ["convolution.3", "fusion.7"]
  assert [o["total_ms"] for o in dev["top_hlo_ops"]] == pytest.approx([0.3, 0.1])


@pytest.mark.slow
def test_profile_smoke(tmp_path):
  doc = main(["profile", "--quick", "--models", "cnn", "--cnn-width", "0.25", "--dtypes",
              "float32", "--batch", "32", "--n-train", "128", "--sizes", "64", "--repeats", "1",
              "--profile-dir", str(tmp_path / "prof"), "--json", str(tmp_path / "p.json")])
  p = doc["profile"]
  assert p["labeled"] == 64 and p["steps_per_call"] == 1  # auto on CPU
  assert p["devices"], p
  d = p["devices"][0]
  assert 0 < d["busy_frac"] <= 1 and d["top_ops"] and d["events"] > 0
  assert p["trace_file"] and Path(p["trace_file"]).exists()


def test_protocol_cycles_reach_the_json_while_the_run_goes_on(tmp_path):
  """A protocol killed mid-run keeps its finished cycles in the bench JSON."""
  from jax_al.bench import common, protocol
  metrics, out = tmp_path / "metrics.jsonl", tmp_path / "protocol.json"
  results = common.Results(str(out))
  rec = {"status": "running"}
  watcher = protocol._CycleWatcher(metrics, rec, results, 0.0, every_s=3600)  # polled by hand
  try:
    watcher.poll()  # no file yet: nothing written
    assert "protocol" not in json.loads(out.read_text())
    cycle = lambda c, acc: json.dumps({"kind": "cycle", "trial": 0, "cycle": c, "labeled": 10 * c,
                                       "test_acc": acc, "train_s": 1.0, "total_s": 2.0})
    metrics.write_text(json.dumps({"kind": "eval", "epoch": 1}) + "\n" + cycle(1, 75.5) + "\n"
                       + '{"kind": "cyc')  # a line being written is skipped
    watcher.poll()
    saved = json.loads(out.read_text())["protocol"]
    assert saved["status"] == "running" and [c["cycle"] for c in saved["cycles"]] == [1]
    assert saved["cycle1_acc"] == 75.5
    metrics.write_text(cycle(1, 75.5) + "\n" + cycle(2, 80.0) + "\n")
    watcher.poll()
    assert [c["cycle"] for c in json.loads(out.read_text())["protocol"]["cycles"]] == [1, 2]
  finally:
    watcher.stop()


def test_acquisitions_bench_times_every_chosen_strategy(tmp_path):
  from jax_al.bench import acquisitions

  out = tmp_path / "acq.json"
  r = acquisitions.main(["--quick", "--n", "300", "--dim", "8", "--labeled", "20",
                         "--budget", "10", "--samples", "4", "--members", "3",
                         "--repeats", "1", "--strategies", "entropy,bald,ensemble_bald,learning_loss",
                         "--json", str(out)])
  rows = {row["strategy"]: row for row in r["acquisitions"]}
  assert [rows[s]["samples"] for s in ("entropy", "bald", "ensemble_bald", "learning_loss")] \
      == [0, 4, 3, 0]
  assert all(row["select_ms"] > 0 and row["first_call_s"] > 0 for row in rows.values())
  assert len(json.loads(out.read_text())["acquisitions"]) == 4
  with pytest.raises(SystemExit):
    acquisitions.main(["--strategies", "nope"])


@pytest.mark.slow
def test_select_scale_bench_compares_the_same_selection(tmp_path):
  # One process per cell: jax_al.select and the NumPy reference pick the same
  # rows for margin and coreset on the synthetic pool, never a labeled one;
  # FLOPs are reported for coreset, and an unknown strategy is one line.
  from jax_al.bench import scale

  out = tmp_path / "select.json"
  doc = main(["select", "--sizes", "600", "--dim", "16", "--classes", "5",
              "--strategies", "margin,margin_streamed,coreset,coreset_lazy", "--impls", "jax,numpy",
              "--data-dir", str(tmp_path / "pools"), "--json", str(out)])
  rows = {(r["strategy"], r["impl"]): r for r in doc["select"]}
  assert set(rows) == {(s, i) for s in ("margin", "coreset") for i in ("jax", "numpy")} | {
      ("coreset_lazy", "jax"), ("margin_streamed", "jax")}
  for r in rows.values():
    assert r["status"] == "ok", r
    assert r["picks"] == r["unique"] == 6 and r["labeled_picked"] == 0
    assert r["time_s"] > 0 and r["peak_rss_bytes"] > 0
  assert rows["coreset", "jax"]["flops"] == 2.0 * (600 - 10) * 16 * (10 + 6)
  # The lazy search is compared with NumPy's (dense) coreset: the same picks.
  # So is the pool streamed from the host in blocks.
  assert {(r["strategy"], r["vs"], r["same_picks"]) for r in doc["ratios"]} == {
      ("margin", "numpy", True), ("coreset", "numpy", True), ("coreset_lazy", "numpy", True),
      ("margin_streamed", "numpy", True)}
  assert json.loads(out.read_text())["ratios"] == doc["ratios"]
  with pytest.raises(SystemExit, match="unknown value"):
    scale.main(["--strategies", "nope"])


@pytest.mark.parametrize("flags, says", [
    (["--labeled-frac=1"], "--labeled-frac=1.0 with --budget-frac=0.01 leaves no pool"),
    (["--mem-limit-gb=-1"], "--mem-limit-gb=-1.0: must be positive"),
    (["--data-dir", "FILE"], "is a file, not a folder"),
])
def test_select_scale_bench_refuses_bad_flags_in_one_line(flags, says, tmp_path):
  from jax_al.bench import scale
  f = tmp_path / "notes.txt"
  f.write_text("mine\n")
  flags = [str(f) if a == "FILE" else a for a in flags]
  with pytest.raises(SystemExit) as e:
    scale.main(["--quick", "--json", str(tmp_path / "out.json"), *flags])
  msg = str(e.value.code)
  assert msg.startswith("error: ") and says in msg and "Fix:" in msg and "\n" not in msg, msg
  assert not (tmp_path / "out.json").exists() and f.read_text() == "mine\n"


# ------------------------------------------------ nothing replaced unasked ----

PROTOCOL = ["protocol", "--config", "configs/digits.py", "--config.al.cycles=2",
            "--config.train.epochs=2", "--config.train.eval_every=1", "--quiet"]


def test_protocol_refuses_a_finished_run_and_replaces_it_only_with_overwrite(victim, tmp_path,
                                                                             monkeypatch):
  from conftest import snapshot
  from jax_al import cycle
  from jax_al.errors import TrainingError

  before = snapshot(victim)
  with pytest.raises(SystemExit) as e:
    main(PROTOCOL + ["--workdir", str(victim), "--json", str(tmp_path / "p.json")])
  msg = str(e.value)
  assert "\n" not in msg and str(victim) in msg and "--overwrite" in msg, msg
  assert snapshot(victim) == before and not (tmp_path / "p.json").exists()
  # --overwrite uses the run's replacement: a new run failing before its first
  # checkpoint gives the old one back.
  real = cycle.train
  monkeypatch.setattr(cycle, "train", lambda *a, **k: (_ for _ in ()).throw(
      TrainingError("boom in cycle 1")))
  with pytest.raises(SystemExit, match="boom in cycle 1"):
    main(PROTOCOL + ["--workdir", str(victim), "--overwrite"])
  assert snapshot(victim) == before
  monkeypatch.setattr(cycle, "train", real)
  doc = main(PROTOCOL + ["--workdir", str(victim), "--overwrite"])
  assert doc["protocol"]["status"] == "done"
  saved = json.loads((victim / "config.json").read_text())
  assert saved["train"]["milestones"] != [1]  # the bench's config, not the old run's
  assert not (victim / ".jax_al_replaced").exists()


def test_protocol_refuses_someone_elses_folder(tmp_path):
  theirs = tmp_path / "theirs"
  theirs.mkdir()
  (theirs / "metrics.jsonl").write_text("mine\n")
  with pytest.raises(SystemExit, match="someone else's"):
    main(PROTOCOL + ["--workdir", str(theirs), "--overwrite"])
  assert (theirs / "metrics.jsonl").read_text() == "mine\n"


@pytest.mark.parametrize("part", ["train", "scaling"])
def test_json_never_replaces_a_users_file(tmp_path, part):
  notes = tmp_path / "notes.json"
  notes.write_bytes(b'{"my": "notes"}\n')
  argv = ["train", "--quick", "--models", "cnn", "--json", str(notes)]
  with pytest.raises(SystemExit) as e:
    if part == "scaling":
      from jax_al.bench import scaling
      scaling.main(["--no-train", "--no-select", "--json", str(notes)])
    else:
      main(argv)
  msg = str(e.value)
  assert "\n" not in msg and "--json" in msg and str(notes) in msg and "did not write" in msg
  assert notes.read_bytes() == b'{"my": "notes"}\n'


def test_json_replaces_its_own_and_an_older_bench_json(tmp_path):
  from jax_al.bench import common
  out = tmp_path / "b.json"
  common.Results(str(out)).set("x", 1)
  common.Results(str(out)).set("x", 2)  # ours (the ledger): replaced
  assert json.loads(out.read_text())["x"] == 2
  (tmp_path / ".jax_al_written.json").unlink()  # as written before the ledger existed
  common.Results(str(out))  # recognised by its environment record
  assert "x" not in json.loads(out.read_text())


def test_profile_dir_holding_a_users_files_is_refused(tmp_path):
  prof = tmp_path / "prof"
  prof.mkdir()
  (prof / "thesis.tex").write_text("chapter 1")
  with pytest.raises(SystemExit, match="--profile-dir.*did not put there"):
    main(["profile", "--quick", "--models", "cnn", "--profile-dir", str(prof)])
  assert [p.name for p in prof.iterdir()] == ["thesis.tex"]


def test_selection_bench_matches_its_numpy_reference_on_a_tiny_pool(tmp_path):
  from jax_al.bench import selection
  out = tmp_path / "sel.json"
  doc = selection.main(["--sizes", "64", "--dim", "8", "--labeled", "32", "--k", "4",
                        "--budget", "8", "--repeats", "1", "--rff-dim", "256",
                        "--variants", "witness_exact,witness_rff", "--json", str(out)])
  exact, rff = doc["selection"]
  assert (exact["variant"], rff["variant"]) == ("witness_exact", "witness_rff")
  assert exact["jax_ms"] > 0 and exact["ref_ms"] > 0
  assert exact["max_abs_diff_vs_ref"] < 1e-5  # the same witness as NumPy's
  assert rff["spearman"] > 0.8  # 256 random features rank the pool as the exact kernel
  assert json.loads(out.read_text())["selection"] == doc["selection"]
  with pytest.raises(SystemExit, match="unknown variants"):
    selection.main(["--quick", "--variants", "nope"])


@pytest.mark.parametrize("flags, says", [
    (["--trials", "a"], "--trials 'a': give integers"),
    (["--labeled", "0"], "1 <= --labeled <= --n-train"),
    (["--model", "vit"], "--model is resnet18, cnn or mlp"),
])
def test_parallel_bench_refuses_bad_flags_in_one_line(flags, says):
  from jax_al.bench import parallel
  with pytest.raises(SystemExit) as e:
    parallel.main(["--quick", *flags])
  msg = str(e.value.code)
  assert msg.startswith("error: ") and says in msg and "\n" not in msg, msg
