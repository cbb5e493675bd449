"""The summary a run prints when it ends (jax_al/ending.py), parsed from a tiny digits run."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from jax_al import ending, loop, workdir as workdir_lib

from conftest import tiny_digits_config


def test_a_finished_run_prints_accuracy_auc_time_files_and_next_commands(tmp_path, capsys):
  work = tmp_path / "run"
  c = tiny_digits_config("random", num_trials=2)
  summary = loop.run(c, work)
  out = capsys.readouterr().out.splitlines()
  start = out.index(next(l for l in out if l.startswith("Finished random")))
  text = out[start:]
  assert text[0] == "Finished random: 2 trial(s), 2 cycle(s), 20 -> 40 labels"
  m = re.fullmatch(r"  final accuracy ([\d.]+) ± ([\d.]+) % at 40 labels; AUC ([\d.]+) ± "
                   r"([\d.]+) \(over 2 complete trial\(s\)\)", text[1])
  assert m, text[1]
  final = [a[-1] for a in summary["test_acc"]]
  assert abs(float(m.group(1)) - sum(final) / 2) < 0.006
  auc = [(a[0] + a[1]) / 2 for a in summary["test_acc"]]  # two sizes: the trapezoid's mean
  assert abs(float(m.group(3)) - sum(auc) / 2) < 0.006
  assert re.fullmatch(r"  wall time [\d.]+ s \(this process\)", text[2])
  assert text[3].startswith(f"  workdir {work}: ")
  listed = text[3].split(": ", 1)[1].split(", ")
  assert set(listed) >= {"config.json", "log.txt", "metrics.jsonl", "selected.jsonl",
                         "summary.json", "learning_curve.png", "checkpoints/"}
  assert all((work / n.rstrip("/")).exists() for n in listed)
  assert text[4] == "Next:"
  report_cmd = shlex.split(text[5].split(":", 1)[1])
  assert report_cmd == ["python", "-m", "jax_al.report", str(work), "--out", str(work / "report")]
  assert "resume:" in text[6] and "compare:" in text[7]
  assert "--config.compare.strategies=random,entropy" in text[7]


def test_resume_and_compare_commands_follow_the_run_py_command(tmp_path):
  c = tiny_digits_config("margin")
  summary = {"labeled": [20, 40], "test_acc": [[50.0, 60.0]], "trials": 1}
  argv = ["run.py", "--config", "configs/digits.py:margin", "--config.al.cycles=2",
          "--overwrite"]
  text = ending.lines(c, summary, tmp_path / "w", 1.0, argv)
  resume = next(l for l in text if l.startswith("  resume:"))
  cmd = shlex.split(resume.split(":", 1)[1].split("  (")[0])
  assert cmd == ["python", "run.py", "--config", "configs/digits.py:margin",
                 "--config.al.cycles=2", "--workdir", str(tmp_path / "w")]
  compare = next(l for l in text if l.startswith("  compare:"))
  assert "--config configs/digits.py:margin --config.compare.strategies=random,margin" in compare
  assert text[1] == "  final accuracy 60.00 % at 40 labels; AUC 55.00 (over 1 complete trial(s))"


def test_a_single_run_writes_a_valid_learning_curve_png(tmp_path):
  work = tmp_path / "run"
  loop.run(tiny_digits_config("random"), work, quiet=True)
  data = (work / "learning_curve.png").read_bytes()
  assert data[:8] == b"\x89PNG\r\n\x1a\n"
  from PIL import Image
  with Image.open(work / "learning_curve.png") as img:
    img.verify()
  with Image.open(work / "learning_curve.png") as img:
    assert img.size[0] > 100 and img.size[1] > 100
  assert "learning_curve.png" in workdir_lib.RESULTS


@pytest.mark.parametrize("argv0", ["jax-al run", "python -m jax_al run"])
def test_resume_command_follows_the_installed_command(tmp_path, argv0):
  """`jax-al run` (jax_al/commands.py sets argv[0]) gets its own resume command."""
  c = tiny_digits_config("margin")
  summary = {"labeled": [20, 40], "test_acc": [[50.0, 60.0]], "trials": 1}
  text = ending.lines(c, summary, tmp_path / "w", 1.0,
                      [argv0, "--config", "configs/digits.py:margin", "--overwrite"])
  resume = next(l for l in text if l.startswith("  resume:"))
  cmd = shlex.split(resume.split(":", 1)[1].split("  (")[0])
  assert cmd == [*argv0.split(), "--config", "configs/digits.py:margin",
                 "--workdir", str(tmp_path / "w")]
  report = next(l for l in text if l.startswith("  report:"))
  assert shlex.split(report.split(":", 1)[1])[:-3] == [*argv0.split()[:-1], "report"]
  compare = next(l for l in text if l.startswith("  compare:"))
  assert compare.startswith(f"  compare: {argv0} --config configs/digits.py:margin "
                            "--config.compare.strategies=random,margin")


def test_the_compare_command_keeps_the_runs_own_config_flags(tmp_path):
  """An embeddings run's data path (and any other --config.* flag) goes into
  the suggested comparison; only the strategies change (found by a hostile
  pass: the compare hint dropped --config.data.path)."""
  c = tiny_digits_config("margin")
  summary = {"labeled": [20, 40], "test_acc": [[50.0, 60.0]], "trials": 1}
  argv = ["run.py", "--config", "configs/embeddings.py", "--config.data.path=/data/my emb.npz",
          "--config.train.epochs", "5", "--config.al.strategy=margin",
          "--config.compare.strategies=x", "--overwrite"]
  text = ending.lines(c, summary, tmp_path / "w", 1.0, argv)
  compare = next(l for l in text if l.startswith("  compare:"))
  words = shlex.split(compare.split(":", 1)[1])
  assert words[:5] == ["python", "run.py", "--config", "configs/embeddings.py",
                       "--config.compare.strategies=random,margin"]
  assert words[5:8] == ["--config.data.path=/data/my emb.npz", "--config.train.epochs", "5"]
  assert words[8:] == ["--workdir", str(tmp_path / "w") + "_compare"]
