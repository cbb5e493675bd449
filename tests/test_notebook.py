"""The seed-questions notebook: its helpers, and one execution in CI mode.

The notebook (notebooks/seed_questions.ipynb) is executed with nbclient in
the reduced mode `JAX_AL_NOTEBOOK_MODE=ci` (same cells, 2 trials of 3 cycles
of 8 epochs), with runs and figures in a temporary folder, so the committed
figures under docs/findings/ are never touched.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "notebooks"))  # the notebook's helpers live next to it
NOTEBOOK = REPO / "notebooks" / "seed_questions.ipynb"
FIGURES = ("q1_scales.png", "q1_lam_sweep.png", "q2_scope.png", "q3_sign_curves.png",
           "q3_sign_pca.png", "q4_baselines.png")


def test_plan_modes(monkeypatch):
  import seed_helpers as A

  monkeypatch.setenv(A.MODE_ENV, "ci")
  assert A.plan().mode == "ci"
  monkeypatch.delenv(A.MODE_ENV)
  assert A.plan().mode == "full"
  with pytest.raises(ValueError, match="JAX_AL_NOTEBOOK_MODE"):
    A.plan("fast")
  c = A.digits_config("rank", A.plan("ci"), sign=-1)
  assert (c.al.normalize, c.al.sign, c.al.cycles, c.train.epochs) == ("rank", -1, 3, 8)


def test_small_helpers():
  import seed_helpers as A
  from jax_al import report

  assert A.overlap(np.array([1, 2, 3, 4]), np.array([4, 3, 9, 10])) == 0.5
  x = np.random.default_rng(0).normal(size=(50, 5)) * np.array([5, 3, 1, 0.1, 0.1])
  xy = A.pca_2d(x)
  assert xy.shape == (50, 2) and abs(xy[:, 0].var() - xy.var(0).max()) < 1e-9
  r = {"trials": [0, 1, 2], "labeled": [1, 2], "acc": np.array([[1., 2.], [3., 4.], [5., 6.]]),
       "select_s": np.zeros((3, 2))}
  a, b = report.first_trials(r, 2), {**r, "acc": r["acc"] - 1.0}
  assert a["trials"] == [0, 1] and a["acc"].shape == (2, 2)
  p = report.paired(r, b)
  assert p["pairs"] == 3 and p["diff"] == pytest.approx(1.0)
  assert A.cifar_runs(REPO / "no" / "such" / "folder") == {}


def test_cifar_results_are_found(tmp_path):
  import seed_helpers as A

  (tmp_path / "cmp").mkdir()
  (tmp_path / "cmp" / "report.json").write_text(json.dumps({"strategies": {
      "users": {"labeled": [5000, 7500], "mean": [79.2, 86.4]}}}))
  runs = A.cifar_runs(tmp_path)
  assert list(runs) == ["cmp/users"] and runs["cmp/users"]["acc"].tolist() == [[79.2, 86.4]]


def test_cifar_comparison_is_loaded_once(tmp_path):
  """A comparison folder (runs + report/report.json) gives each strategy once, from its run."""
  import seed_helpers as A
  from jax_al import loop

  cfg = A.digits_config("random", A.PLANS["ci"], trials=1)
  cfg.al.cycles, cfg.train.epochs = 2, 1
  loop.run(cfg, tmp_path / "cmp" / "random", quiet=True)
  (tmp_path / "cmp" / "report").mkdir()
  (tmp_path / "cmp" / "report" / "report.json").write_text(json.dumps({"strategies": {
      "random": {"labeled": [20, 40], "mean": [50.0, 60.0]},
      "other": {"labeled": [20, 40], "mean": [51.0, 61.0]}}}))
  runs = A.cifar_runs(tmp_path)
  assert sorted(runs) == ["cmp/random", "cmp/report/other"]
  assert runs["cmp/random"]["labeled"] == [20, 40]


def test_kernel_runs_this_environment():
  """nbclient's "python3" kernel is this interpreter's (jupyter_client maps "python")."""
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  nb = nbformat.v4.new_notebook()
  nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
  nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
  out = nb.cells[0].outputs[0]["text"].strip()
  assert Path(out).resolve() == Path(sys.executable).resolve()


@pytest.mark.slow
def test_notebook_runs_in_ci_mode(tmp_path):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  nb = nbformat.read(NOTEBOOK, as_version=4)
  for cell in nb.cells:  # the committed outputs must not mask a failure
    if cell.cell_type == "code":
      cell.outputs, cell.execution_count = [], None
  figs = tmp_path / "figures"
  env = {"JAX_AL_NOTEBOOK_MODE": "ci", "JAX_AL_NOTEBOOK_RUNS": str(tmp_path / "runs"),
         "JAX_AL_NOTEBOOK_FIGS": str(figs)}
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
  for name in FIGURES:
    assert (figs / name).stat().st_size > 10_000, name
  images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.outputs)
  assert images >= len(FIGURES)
  text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
  assert "No CIFAR-10 results" in text or "cifar10_curves.png" in os.listdir(figs)
  found = json.loads((figs / "findings.json").read_text())
  assert found["mode"] == "ci"
  assert {"q1_raw", "q1_sweep", "q2", "q3", "q3_profile", "q4"} <= set(found)
  assert found["q4"]["best"] in {r["name"] for r in found["q4"]["table"]}


def test_the_overlap_sweep_of_a_replayed_step(tmp_path):
  """The notebook's sweep on a rebuilt step: lam 0 always shares every pick."""
  import seed_helpers as A
  from jax_al import replay

  p = A.PLANS["ci"]
  cfg = A.digits_config("users", p, trials=1)
  cfg.al.cycles = 2
  A.run_all({"users": cfg}, tmp_path, log=None)
  step = replay.step(tmp_path / "users", trial=0, cycle=1, config=cfg)
  ov = A.overlap_sweep([step], cfg, (0.0, 1.0), ("none", "rank"))
  assert ov.shape == (2, 2, 1) and np.all(ov[:, 0] == 1.0)
