"""Paired comparisons and the report: a 2-trial version of docs/results/digits."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from configs import digits
from jax_al import compare, report

ROOT = Path(__file__).resolve().parents[1]
# Every strategy and preset of the committed digits report.
STRATEGIES = ("random,entropy,margin,least_confidence,coreset,badge,typiclust,users,"
              "global_uncertainty,batch_uncertainty,rank,global_u_batch_mmd,witness,greedy")


def test_auc_and_paired_interval_match_references():
  from scipy import stats
  x = [20, 40, 80]
  acc = np.array([[50.0, 70.0, 90.0], [40.0, 60.0, 60.0]])
  # Trapezoids by hand: (60*20 + 80*40) / 60 and (50*20 + 60*40) / 60.
  np.testing.assert_allclose(report.auc(x, acc), [(1200 + 3200) / 60, (1000 + 2400) / 60])
  d = np.array([1.0, 2.0, 0.5, 1.5])
  m, lo, hi = report.paired_ci(d)
  ref = stats.t.interval(0.95, 3, loc=d.mean(), scale=stats.sem(d))
  assert m == pytest.approx(1.25) and (lo, hi) == pytest.approx(ref)


@pytest.fixture(scope="module")
def two_trial_report(tmp_path_factory):
  wd = tmp_path_factory.mktemp("cmp")
  c = digits.get_config("random")
  c.num_trials = 2
  c.al.cycles = 3
  c.train.epochs = 30
  c.train.milestones = (25,)
  c.train.eval_every = 30
  c.compare.strategies = STRATEGIES
  summary = compare.run(c, wd, quiet=True)
  return wd, summary


@pytest.mark.slow
def test_comparison_is_paired_and_complete(two_trial_report):
  wd, summary = two_trial_report
  names = STRATEGIES.split(",")
  assert sorted(summary["strategies"]) == sorted(names)
  initial = {}
  for n in names:
    sel = [json.loads(l) for l in (wd / n / "selected.jsonl").read_text().splitlines()]
    firsts = {r["trial"]: r["indices"] for r in sel if r["cycle"] == 0}
    assert sorted(firsts) == [0, 1]
    initial[n] = firsts
    s = summary["strategies"][n]
    assert s["labeled"] == [20, 40, 60] and s["trials"] == [0, 1]
    assert all(10 < a <= 100 for a in s["mean"])
  # Paired design: trial t of every strategy starts from the same initial set.
  for n in names:
    assert initial[n] == initial["random"]
  assert initial["random"][0] != initial["random"][1]
  for n in names:
    if n != "random":
      v = summary["strategies"][n]["vs_baseline"]
      assert v["pairs"] == 2 and v["ci95"][0] <= v["auc_diff"] <= v["ci95"][1]


@pytest.mark.slow
def test_report_files(two_trial_report):
  wd, _ = two_trial_report
  out = wd / "report"
  md = (out / "report.md").read_text()
  assert "| random | 2 |" in md and "Paired AUC difference" in md
  rows = (out / "report.csv").read_text().splitlines()
  assert rows[0].startswith("strategy,labeled,mean_acc")
  assert len(rows) == 1 + 14 * 3
  for png in ("learning_curves.png", "selection_time.png"):
    data = (out / png).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
  # The report command reproduces the same numbers from the workdirs alone.
  again = report.make_report([wd], wd / "report2")
  assert json.loads((out / "report.json").read_text()) == json.loads(
      (wd / "report2" / "report.json").read_text())
  assert not math.isnan(again["strategies"]["users"]["auc_mean"])


@pytest.mark.slow
def test_rerun_skips_finished_work(two_trial_report, capsys):
  wd, summary = two_trial_report
  c = digits.get_config("random")
  c.num_trials, c.al.cycles, c.train.epochs = 2, 3, 30
  c.train.milestones, c.train.eval_every = (25,), 30
  c.compare.strategies = "random,entropy"
  before = (wd / "entropy" / "metrics.jsonl").read_text()
  again = compare.run(c, wd, quiet=True)
  assert (wd / "entropy" / "metrics.jsonl").read_text() == before
  assert again["strategies"]["entropy"]["mean"] == summary["strategies"]["entropy"]["mean"]
