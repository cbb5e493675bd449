"""The report's rules: it pairs only runs whose configs differ in al.* alone
(and whose data agree), never prints a NaN interval, skips hidden folders,
names a single run by its strategy without "± 0.00", says where it wrote,
and never replaces a file in --out that it did not write."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import REPO, snapshot, tiny_digits_config
from jax_al import files, loop, report
from jax_al import workdir as workdir_lib


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """One-trial tiny runs: cmp/{random,entropy} (alike but for al.strategy) and
  long/entropy (train.epochs 3, not 2)."""
  root = tmp_path_factory.mktemp("runs")
  loop.run(tiny_digits_config("random"), root / "cmp" / "random", quiet=True)
  loop.run(tiny_digits_config("entropy"), root / "cmp" / "entropy", quiet=True)
  loop.run(tiny_digits_config("entropy", train__epochs=3), root / "long" / "entropy", quiet=True)
  return root


def _md(out):
  return (out / "report.md").read_text()


@pytest.mark.slow
def test_alike_runs_pair_and_one_pair_prints_no_nan_interval(runs, tmp_path):
  s = report.make_report([runs / "cmp"], tmp_path / "out")
  v = s["strategies"]["entropy"]["vs_baseline"]
  assert v["pairs"] == 1
  md = _md(tmp_path / "out")
  assert "nan" not in md.lower()
  row = next(l for l in md.splitlines() if l.startswith("| entropy | ") and "pair" in l)
  assert "none (1 pair; an interval needs 2+)" in row, row


@pytest.mark.slow
def test_runs_differing_outside_al_are_not_paired(runs, tmp_path):
  mixed = tmp_path / "mixed"
  shutil.copytree(runs / "cmp" / "random", mixed / "random")
  shutil.copytree(runs / "long" / "entropy", mixed / "entropy")
  warnings = []
  s = report.make_report([mixed], tmp_path / "out", warn=warnings.append)
  assert "vs_baseline" not in s["strategies"]["entropy"]
  note = next(n for n in s["notes"] if n.startswith("entropy: no paired row"))
  assert "train.epochs 3 vs 2" in note and "outside al.*" in note, note
  assert note in warnings and "Paired AUC difference" not in _md(tmp_path / "out")


def test_runs_on_other_data_are_not_paired(runs, tmp_path):
  mixed = tmp_path / "mixed"
  shutil.copytree(runs / "cmp", mixed)
  path = mixed / "entropy" / "config.json"
  saved = json.loads(path.read_text())
  saved[workdir_lib.DATA_KEY]["train"] += 5
  path.write_text(json.dumps(saved))
  s = report.make_report([mixed], tmp_path / "out")
  assert "vs_baseline" not in s["strategies"]["entropy"]
  assert any("its data differ (the training images" in n for n in s["notes"]), s["notes"]


def test_a_hidden_replaced_folder_is_no_strategy(runs, tmp_path):
  root = tmp_path / "cmp"
  shutil.copytree(runs / "cmp", root)
  shutil.copytree(runs / "cmp" / "random", root / workdir_lib.ASIDE)
  s = report.make_report([root], tmp_path / "out")
  assert sorted(s["strategies"]) == ["entropy", "random"]
  plain = tmp_path / "plain"
  shutil.copytree(runs / "cmp" / "random", plain)
  shutil.copytree(runs / "cmp" / "random", plain / workdir_lib.ASIDE)
  warnings = []
  s = report.make_report([plain], tmp_path / "out2", warn=warnings.append)
  assert list(s["strategies"]) == ["random"]
  assert any(workdir_lib.ASIDE in w and "interrupted --overwrite" in w for w in warnings)


def test_one_run_is_named_by_its_strategy_and_says_where_it_wrote(runs, tmp_path, capsys):
  wd = tmp_path / "my_first_try"
  shutil.copytree(runs / "cmp" / "entropy", wd)
  out = tmp_path / "out"
  report.main([str(wd), "--out", str(out)])
  printed = capsys.readouterr().out
  assert "| entropy | 1 |" in printed and "my_first_try" not in printed
  assert "±" not in printed  # one trial: no spread to show
  assert printed.strip().splitlines()[-1] == f"wrote {', '.join(report.OUTPUTS)} to {out}"
  assert all((out / n).is_file() for n in report.OUTPUTS)


@pytest.mark.slow
def test_out_never_replaces_a_file_the_report_did_not_write(runs, tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  (out / "report.md").write_text("my own report draft\n")
  before = snapshot(out)
  with pytest.raises(files.OutputError) as e:
    report.make_report([runs / "cmp"], out)
  msg = str(e.value)
  assert "\n" not in msg and "--out" in msg and str(out / "report.md") in msg, msg
  assert snapshot(out) == before
  # Its own files are replaced, and so are those of a report from before the ledger.
  mine = tmp_path / "mine"
  report.make_report([runs / "cmp"], mine)
  report.make_report([runs / "cmp" / "random"], mine)
  assert json.loads((mine / "report.json").read_text())["strategies"].keys() == {"random"}
  old = tmp_path / "old"
  shutil.copytree(REPO / "docs" / "results" / "digits", old)
  report.make_report([runs / "cmp"], old)
  assert files.written_by_us(old / "report.md")


def test_an_out_that_is_a_file_is_one_line_saying_so(runs, tmp_path):
  out = tmp_path / "notes.txt"
  out.write_text("my notes\n")
  with pytest.raises(files.OutputError) as e:
    report.make_report([runs / "cmp"], out)
  msg = str(e.value)
  assert "\n" not in msg and msg.startswith(f"--out {out}: is a file, not a folder"), msg
  assert out.read_text() == "my notes\n"


def test_a_folder_named_for_another_strategy_is_not_taken_for_it(runs, tmp_path):
  # Swapped folders: "random" holds the entropy run and "entropy" the random
  # one. Rows named by folder would pair them backwards under their names.
  mixed = tmp_path / "mixed"
  shutil.copytree(runs / "cmp" / "random", mixed / "entropy")
  shutil.copytree(runs / "cmp" / "entropy", mixed / "random")
  warnings = []
  s = report.make_report([mixed], tmp_path / "out", warn=warnings.append)
  assert set(s["strategies"]) == {"random [al.strategy=entropy]",
                                  "entropy [al.strategy=random]"}, s["strategies"]
  assert s["baseline"] is None  # no row is the random baseline by name alone
  assert any("the folder is named 'random' but its run has al.strategy=entropy" in w
             for w in warnings), warnings
  assert "| random [al.strategy=entropy] |" in _md(tmp_path / "out")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "150.0", "-3.0"])
def test_a_hand_edited_accuracy_outside_0_to_100_is_named_not_reported(runs, tmp_path, value):
  """A NaN test_acc showed as a blank cell ("a size that strategy never reached")
  with no AUC; 150 % was averaged in. Both are a garbled metrics.jsonl."""
  wd = tmp_path / "run"
  shutil.copytree(runs / "cmp" / "random", wd)
  path = wd / "metrics.jsonl"
  lines = path.read_text().splitlines()
  i = next(k for k, l in enumerate(lines) if json.loads(l)["kind"] == "cycle")
  rec = json.loads(lines[i])
  lines[i] = json.dumps(rec).replace(f'"test_acc": {json.dumps(rec["test_acc"])}',
                                     f'"test_acc": {value}')
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(report.DataError, match=rf"metrics.jsonl:{i + 1}: .*test_acc"):
    report.make_report([wd], tmp_path / "out")
  assert not (tmp_path / "out").exists()


def test_a_comparison_whose_report_folder_holds_a_users_file_is_refused_before_training(
    tmp_path, monkeypatch):
  """It was refused only after every strategy had trained."""
  from jax_al import compare
  root = tmp_path / "cmp"
  (root / "report").mkdir(parents=True)
  (root / "report" / "report.md").write_text("mine")
  monkeypatch.setattr(loop, "run", lambda *a, **k: pytest.fail("trained first"))
  with pytest.raises(files.OutputError, match="comparison's report .*report.md: the file exists"):
    compare.run(tiny_digits_config(compare__strategies="random,entropy"), root, quiet=True)
  assert (root / "report" / "report.md").read_text() == "mine"
  assert sorted(p.name for p in root.iterdir()) == ["report"]
