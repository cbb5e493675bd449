"""The notebook (notebooks/seed_questions.ipynb), a view of `jax_al.study`.

Its display helpers (notebooks/seed_helpers.py) are tested directly; the
notebook itself is executed once with nbclient in ci mode
(`JAX_AL_NOTEBOOK_MODE=ci`), its study in a temporary folder and a fake
CIFAR-10 folder, and its outputs are checked against the findings.json the
study wrote and against the committed docs/study/digits/findings.json.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from conftest import snapshot

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "notebooks"))  # the notebook's helpers live next to it
NOTEBOOK = REPO / "notebooks" / "seed_questions.ipynb"
COMMITTED = REPO / "docs" / "study" / "digits"
PLOTS = ("learning_curves.png", "paired_auc.png", "score_scales.png", "pca_step.png")


def _text(items) -> str:
  """The markdown of a list of display objects, joined."""
  from IPython.display import Markdown

  return "\n".join(x.data for x in items if isinstance(x, Markdown))


def _images(items) -> list[str]:
  from IPython.display import Image

  return [Path(x.filename).name for x in items if isinstance(x, Image)]


def _study_rows(f: dict) -> list[str]:
  """Table rows that findings.md writes for questions 1 and 4 (findings.markdown)."""
  rows = [f"| {r['norm']} | {r['lam']:g} | {r['run']} | {r['auc']:.2f} |"
          for r in f["q1"]["sweep"]]
  rows += [f"| {r['name']} | {len(r['seeds'])} | {r['auc']:.2f}" for r in f["q4"]["table"]]
  rows.append(f"**{f['q4']['best']}**")
  return rows


def _fake_cifar(root: Path) -> None:
  """A comparison with report.md and a PNG, a report.json alone, and a README."""
  (root / "cmp").mkdir(parents=True)
  (root / "README.md").write_text("# CIFAR-10 on the GPU\n\nfake results for the test\n")
  (root / "cmp" / "report.md").write_text(
      "# Active-learning comparison\n\n| strategy | AUC |\n| --- | --- |\n"
      "| greedy | 71.23 ± 0.45 |\n\n![learning curves](learning_curves.png)\n")
  shutil.copy(COMMITTED / "learning_curves.png", root / "cmp" / "learning_curves.png")
  (root / "json_only").mkdir()
  (root / "json_only" / "report.json").write_text(json.dumps({
      "baseline": "random", "notes": [], "strategies": {
          "random": {"labeled": [5000, 7500], "mean": [79.2, 86.4], "std": [0.3, 0.2],
                     "trials": [0, 1], "partial": [], "partial_included": [],
                     "auc_mean": 82.8, "auc_std": 0.25, "select_s_mean": [1.0, 0.0]},
          "coreset": {"labeled": [5000, 7500], "mean": [79.2, 87.9], "std": [0.3, 0.1],
                      "trials": [0, 1], "partial": [], "partial_included": [],
                      "auc_mean": 83.55, "auc_std": 0.15, "select_s_mean": [2.0, 0.0],
                      "vs_baseline": {"auc_diff": 0.75, "ci95": [0.11, 1.39], "pairs": 2}}}}))


# ------------------------------------------------------------------ helpers


def test_settings_from_the_environment(tmp_path):
  import seed_helpers as V

  s = V.settings(REPO, env={})
  assert s == V.Settings("full", REPO / "runs" / "study_digits", "",
                         REPO / "docs" / "results" / "cifar10")
  s = V.settings(REPO, env={V.MODE_ENV: "ci", V.CIFAR_ENV: str(tmp_path),
                            V.BASELINES_ENV: " random,coreset "})
  assert s == V.Settings("ci", REPO / "runs" / "study_digits_ci", "random,coreset", tmp_path)
  assert V.settings(REPO, env={V.OUT_ENV: "runs/x"}).out == REPO / "runs" / "x"
  with pytest.raises(ValueError, match=r"^\$JAX_AL_NOTEBOOK_MODE='fast': use one of full, ci$"):
    V.settings(REPO, env={V.MODE_ENV: "fast"})
  for bad in ("docs", "docs/study/digits", str(REPO / "docs" / "x")):
    with pytest.raises(ValueError, match=r"JAX_AL_NOTEBOOK_OUT.*docs/ holds committed results"):
      V.settings(REPO, env={V.OUT_ENV: bad})


def test_local_markdown_shifts_headings_and_drops_png_links():
  import seed_helpers as V

  text = ("# Title\n\n## 1. Scale\n\nbody #3\n\n![curves](learning_curves.png)\n\n"
          "Plots: [learning curves](learning_curves.png), [x](x.png).\n\n"
          "![elsewhere](https://example.org/a.png)\n")
  out = V.local_markdown(text, 2)
  assert out.splitlines()[0] == "### Title" and "#### 1. Scale" in out and "body #3" in out
  assert "learning_curves.png" not in out and "Plots:" not in out
  assert "https://example.org/a.png" in out  # only the folder's own PNGs are dropped


def test_committed_study_items_show_its_numbers():
  import seed_helpers as V

  f = json.loads((COMMITTED / "findings.json").read_text())
  items = V.study_items(COMMITTED, repo=REPO)
  text = _text(items)
  for row in _study_rows(f):
    assert row in text, row
  assert "full mode" in text and "CI mode" not in text
  assert "#### 1. Scale" in text  # findings.md's headings sit under the notebook's
  assert _images(items) == list(PLOTS)
  with pytest.raises(ValueError, match="has no findings.md or findings.json"):
    V.study_items(REPO / "notebooks", repo=REPO)


def test_cifar_items_without_results(tmp_path):
  import seed_helpers as V

  (missing,) = V.cifar_items(REPO / "no" / "such", repo=REPO)
  assert missing.data.startswith("No CIFAR-10 results: `no/such/` does not exist")
  (tmp_path / "empty").mkdir()
  (empty,) = V.cifar_items(tmp_path / "empty")
  assert "holds no findings.md, findings.json, report.md or report.json" in empty.data
  assert ("docs/results/cifar10" in _text(V.cifar_items(REPO / "docs" / "results" / "cifar10",
                                                        repo=REPO)))


def test_cifar_items_show_reports_and_studies(tmp_path):
  import seed_helpers as V

  root = tmp_path / "cifar10"
  _fake_cifar(root)
  (root / "study").mkdir()  # a study folder with findings.json only
  shutil.copy(COMMITTED / "findings.json", root / "study" / "findings.json")
  items = V.cifar_items(root)
  text = _text(items)
  assert text.startswith("### CIFAR-10 on the GPU\n\nfake results")
  assert "| greedy | 71.23 ± 0.45 |" in text and "![learning curves]" not in text
  assert "| coreset | 2 | 79.20 ± 0.30 | 87.90 ± 0.10 | 83.55 ± 0.15 |" in text  # report.json
  assert "| coreset | +0.75 | [+0.11, +1.39] | 2 |" in text
  f = json.loads((COMMITTED / "findings.json").read_text())
  for row in _study_rows(f):  # findings.json rendered by jax_al.study.findings.markdown
    assert row in text, row
  assert _images(items) == ["learning_curves.png"]
  heads = [x for x in text.splitlines() if x.startswith("### `")]
  assert heads == [f"### `{root.resolve() / d}`" for d in ("cmp", "json_only", "study")]


def test_committed_notebook_is_the_builder_output_without_outputs():
  nbformat = pytest.importorskip("nbformat")
  import build_notebook

  committed = nbformat.read(NOTEBOOK, as_version=4)
  built = build_notebook.build()
  assert [(c.cell_type, c.source) for c in committed.cells] == \
      [(c.cell_type, c.source) for c in built.cells], "rebuild: python notebooks/build_notebook.py"
  for c in committed.cells:
    if c.cell_type == "code":
      assert c.outputs == [] and c.execution_count is None


def test_kernel_runs_this_environment():
  """nbclient's "python3" kernel is this interpreter's (jupyter_client maps "python")."""
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  nb = nbformat.v4.new_notebook()
  nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
  nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
  out = nb.cells[0].outputs[0]["text"].strip()
  assert Path(out).resolve() == Path(sys.executable).resolve()


# ---------------------------------------------------------- the notebook


def _cell(nb, needle: str):
  (cell,) = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
  return cell


def _out_text(cell) -> str:
  parts = []
  for o in cell.outputs:
    parts.append(o.get("text", ""))
    parts.append(o.get("data", {}).get("text/markdown", ""))
  return "\n".join(parts)


def _out_images(cell) -> int:
  return sum("image/png" in o.get("data", {}) for o in cell.outputs)


@pytest.mark.slow
def test_notebook_in_ci_mode_shows_the_study_it_ran(tmp_path):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  nb = nbformat.read(NOTEBOOK, as_version=4)
  out, cifar = tmp_path / "study", tmp_path / "cifar10"
  _fake_cifar(cifar)
  docs = snapshot(REPO / "docs")
  # Baselines "random": the smallest real study, as in tests/test_study.py.
  env = {"JAX_AL_NOTEBOOK_MODE": "ci", "JAX_AL_NOTEBOOK_OUT": str(out),
         "JAX_AL_NOTEBOOK_BASELINES": "random", "JAX_AL_NOTEBOOK_CIFAR": str(cifar)}
  old = {k: os.environ.get(k) for k in env}
  os.environ.update(env)  # the kernel inherits this process's environment
  try:
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
  finally:
    for k, v in old.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
  assert snapshot(REPO / "docs") == docs  # nothing written under docs/
  f = json.loads((out / "findings.json").read_text())
  assert f["mode"] == "ci" and f["config"] == "configs/digits.py"
  assert f["study_fields"]["baselines"] == "random"
  # 1. The study, run now: its plan, its jobs, and the best variant it chose.
  ran = _out_text(_cell(nb, "study.run_study(ST)"))
  assert "study of configs/digits.py (--mode ci" in ran and "phase 1:" in ran
  assert f"best variant {f['q4']['best']}" in ran
  shown = _cell(nb, "V.study_items(S.out")
  text = _out_text(shown)
  for row in _study_rows(f):
    assert row in text, row
  assert "CI mode" in text and _out_images(shown) == len(PLOTS)
  # 2. The committed full run, read from docs/study/digits/.
  committed = json.loads((COMMITTED / "findings.json").read_text())
  shown = _cell(nb, 'V.study_items(REPO / "docs" / "study" / "digits"')
  text = _out_text(shown)
  for row in _study_rows(committed):
    assert row in text, row
  assert "full mode" in text and "CI mode" not in text and _out_images(shown) == len(PLOTS)
  # 3. CIFAR-10: the fake folder's reports.
  shown = _cell(nb, "V.cifar_items(S.cifar")
  text = _out_text(shown)
  assert "| greedy | 71.23 ± 0.45 |" in text and "| coreset | +0.75 | [+0.11, +1.39] | 2 |" in text
  assert _out_images(shown) == 1
