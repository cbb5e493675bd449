"""A study's own files a user may edit (findings.md, the PNGs, choice.json)
go through the output ledger: continuing a study never replaces an edited
one, and a study from before the ledger continues as before."""

from __future__ import annotations

import json

import pytest

from jax_al import files, study
from jax_al.errors import ConfigError


def _study_folder(tmp_path):
  out = tmp_path / "s"
  out.mkdir()
  (out / "study.json").write_text(json.dumps({"tool": study.TOOL, "format": study.FORMAT}))
  return out


def test_an_edited_findings_file_is_refused_before_anything_runs(tmp_path):
  out = _study_folder(tmp_path)
  files.write_output(out / "findings.md", "# findings\n")
  files.write_output(out / "paired_auc.png", b"\x89PNG...")
  study.check_out(out)  # its own, unedited: the study may continue
  (out / "findings.md").write_text("# findings\nmy notes on seed 3\n")
  with pytest.raises(ConfigError) as e:
    study.check_out(out)
  msg = str(e.value)
  assert "findings.md" in msg and "edited" in msg and "\n" not in msg
  assert (out / "findings.md").read_text() == "# findings\nmy notes on seed 3\n"


def test_a_study_from_before_the_ledger_continues(tmp_path):
  # No ledger: its findings.md and choice.json are its own (as the committed
  # docs/study/digits), so they may be rewritten.
  out = _study_folder(tmp_path)
  (out / "findings.md").write_text("# old findings\n")
  (out / "choice.json").write_text("{}\n")
  study.check_out(out)
  # Once the ledger records a file, an edit of it is caught.
  files.write_output_json(out / "choice.json", {"best": "users"})
  study.check_out(out)
  (out / "choice.json").write_text('{"best": "mine"}\n')
  with pytest.raises(ConfigError, match="choice.json"):
    study.check_out(out)


def test_findings_write_records_every_file(tmp_path):
  # findings.write's outputs are on the ledger, PNGs included.
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from jax_al.study import findings

  fig, ax = plt.subplots()
  ax.plot([0, 1], [1, 0])
  findings._save(fig, tmp_path / "learning_curves.png")
  plt.close(fig)
  assert files.written_by_us(tmp_path / "learning_curves.png")
  assert (tmp_path / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
