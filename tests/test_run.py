"""End-to-end: `run.py` on digits, the workdir files, and a paired comparison."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def run_cli(*args, cwd=ROOT, check=True):
  p = subprocess.run([sys.executable, "run.py", *args], cwd=cwd, capture_output=True, text=True,
                     timeout=900)
  if check and p.returncode:
    raise AssertionError(f"run.py failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
  return p


def read_jsonl(path):
  return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]


SMALL = ["--config.al.cycles=3", "--config.train.epochs=40", "--config.train.eval_every=20",
         "--config.train.milestones=(30,)"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
  wd = tmp_path_factory.mktemp("run") / "wd"
  p = run_cli("--config", "configs/digits.py:random", "--workdir", str(wd), "--config.seed=3",
              "--config.al.budget=25", *SMALL)
  return wd, p.stdout


@pytest.mark.slow
def test_end_to_end_digits_through_run_py(digits_run):
  wd, out = digits_run
  for name in ("config.json", "log.txt", "metrics.jsonl", "selected.jsonl", "summary.json"):
    assert (wd / name).exists(), name
  # The users' log format.
  assert "Cycle: 1 Epoch: 20 --- Val Acc:" in out and "Best Acc:" in out
  assert "Trial 1/1 || Cycle 3/3 || Label set size 70: Test acc" in out
  cfg = json.loads((wd / "config.json").read_text())
  assert cfg["al"]["budget"] == 25 and cfg["seed"] == 3  # overrides reached the config
  sel = read_jsonl(wd / "selected.jsonl")
  assert [r["cycle"] for r in sel] == [0, 1, 2]
  assert len(sel[0]["indices"]) == 20
  assert all(len(r["indices"]) == 25 for r in sel[1:])  # grows by exactly the budget
  every = np.concatenate([r["indices"] for r in sel])
  assert len(np.unique(every)) == len(every)  # never selected twice; labeled/pool disjoint
  assert every.min() >= 0 and every.max() < 1297
  cycles = [r for r in read_jsonl(wd / "metrics.jsonl") if r["kind"] == "cycle"]
  assert [r["labeled"] for r in cycles] == [20, 45, 70]
  assert all(r["test_acc"] > 30 for r in cycles)  # chance is 10 %
  assert cycles[-1]["test_acc"] > cycles[0]["test_acc"]
  for r in cycles:
    assert r["train_s"] > 0 and r["total_s"] >= r["train_s"]
  evals = [r for r in read_jsonl(wd / "metrics.jsonl") if r["kind"] == "eval"]
  assert {(r["cycle"], r["epoch"]) for r in evals} == {(c, e) for c in (1, 2, 3) for e in (20, 40)}
  summary = json.loads((wd / "summary.json").read_text())
  assert summary["labeled"] == [20, 45, 70]
  assert summary["test_acc"][0] == pytest.approx([r["test_acc"] for r in cycles])


@pytest.mark.slow
def test_same_seed_same_indices(digits_run, tmp_path):
  wd, _ = digits_run
  run_cli("--config", "configs/digits.py:random", "--workdir", str(tmp_path / "again"),
          "--config.seed=3", "--config.al.budget=25", *SMALL)
  a = read_jsonl(wd / "selected.jsonl")
  b = read_jsonl(tmp_path / "again" / "selected.jsonl")
  assert a == b
  acc = lambda d: [r["test_acc"] for r in read_jsonl(d / "metrics.jsonl") if r["kind"] == "cycle"]
  assert acc(wd) == acc(tmp_path / "again")


@pytest.mark.skipif(not CIFAR.exists(), reason="../shared CIFAR-10 copy not present")
@pytest.mark.slow
def test_cifar10_config_runs_on_the_folder_copy(tmp_path, cifar_cache):
  """The README's CIFAR command with tiny overrides, to the end, on CPU."""
  wd = tmp_path / "cifar"
  run_cli("--config", "configs/cifar10.py", "--config.data.source=folder",
          f"--config.data.path={CIFAR}", f"--config.data.cache_dir={cifar_cache}",
          "--config.model.width=0.0625", "--config.train.epochs=1", "--config.al.cycles=2",
          "--config.al.initial=256", "--config.al.budget=128", "--config.al.subset=512",
          "--config.train.eval_every=1", "--workdir", str(wd))
  cycles = [r for r in read_jsonl(wd / "metrics.jsonl") if r["kind"] == "cycle"]
  assert [r["labeled"] for r in cycles] == [256, 384]
  assert cycles[0]["scored"] == 512 and "u_median" in cycles[0]
