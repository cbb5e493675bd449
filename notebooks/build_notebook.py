"""Generates notebooks/seed_questions.ipynb (without outputs) from the cells below.

    python notebooks/build_notebook.py            # writes the notebook
    mkdir -p notebooks/runs && JAX_AL_NOTEBOOK_MODE=ci jupyter execute \
        --output=runs/seed_questions_ci notebooks/seed_questions.ipynb
                                                  # runs it; the executed copy goes
                                                  # to notebooks/runs/ (git-ignored)

The notebook is a view of `jax_al.study`: it builds and runs the study on
`configs/digits.py` (`study.build` + `study.run_study`, mode from
$JAX_AL_NOTEBOOK_MODE, folder from $JAX_AL_NOTEBOOK_OUT, never under docs/)
and shows the findings.md and plots it wrote, then the committed full run in
docs/study/digits/, then CIFAR-10 results under docs/results/cifar10/ (or
$JAX_AL_NOTEBOOK_CIFAR) when that folder exists. tests/test_notebook.py
executes it in ci mode with baselines "random": 65 s on the idle 2-core CPU
VM, 72-98 s while other jobs ran (1.5-2 min with the study's default
baselines).
The full mode runs the full study: 33-40 min from scratch on the same VM; a
rerun on a finished runs/study_digits took 40 s (docs/study/digits/README.md). Its display
helpers are in `notebooks/seed_helpers.py`. Edit this file, not the .ipynb,
then rebuild; the .ipynb is committed without outputs (tests/test_notebook.py
checks that it matches this file).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
OUT = HERE / "seed_questions.ipynb"

CELLS: list[tuple[str, str]] = []


def md(text: str) -> None:
  CELLS.append(("md", text.strip("\n")))


def code(text: str) -> None:
  CELLS.append(("code", text.strip("\n")))


md("""
# The four questions, answered by the study on digits

This notebook is a view of the study (`python -m jax_al.study`, package
`jax_al/study/`), which answers the four questions about the k-means
cluster-margin + MMD selection: 1. scale (tune lam or normalise),
2. scope (per-batch or whole-pool clustering), 3. sign (large or small MMD,
or a set-level objective), 4. the best variant against the baselines. It
runs no experiment of its own. It shows, in order:

1. **the study, run now** on `configs/digits.py` through the library API
   (`study.build` + `study.run_study`), and the tables and plots it wrote;
2. **the committed full run** in `docs/study/digits/` (the evidence);
3. **CIFAR-10 results** from `docs/results/cifar10/`, when that folder exists.

**Mode.** `JAX_AL_NOTEBOOK_MODE=full` (the default) is the study's
`--mode full` into `runs/study_digits`, the folder of the command in
`docs/study/digits/README.md`: a finished study there is reused (its jobs
are skipped), otherwise it takes 33-40 min on 2 CPU cores.
`JAX_AL_NOTEBOOK_MODE=ci` is the study's tiny `--mode ci` into
`runs/study_digits_ci` (1.5-2 min on 2 CPU cores; `tests/test_notebook.py`
executes the notebook this way, with baselines `random`); its numbers are
not evidence.
`JAX_AL_NOTEBOOK_OUT` sets another study folder, `JAX_AL_NOTEBOOK_BASELINES`
the study's `--study.baselines`, `JAX_AL_NOTEBOOK_CIFAR` another CIFAR-10
folder (paths relative to the repository root). Nothing is written under
`docs/`.
""")

code("""
import sys, time
from pathlib import Path

REPO = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "pyproject.toml").exists())
sys.path.insert(0, str(REPO))  # `configs` is a top-level package of the repo

from IPython.display import display

from configs import digits
from jax_al import study
import seed_helpers as V  # next to this notebook: settings and display helpers

S = V.settings(REPO)  # from $JAX_AL_NOTEBOOK_MODE, _OUT, _BASELINES, _CIFAR
print(f"mode {S.mode}; study folder {S.out}; baselines {S.baselines or 'the study default'}; "
      f"CIFAR-10 folder {S.cifar}")
""")

md("""
## 1. The study, run now

The same grid as `python -m jax_al.study --config configs/digits.py
--mode <mode> --out <folder> [--study.baselines=<baselines>]`: the plan
with its cost estimate, then every job (finished jobs in the folder are
skipped), the analysis and the report.
""")

code("""
FIELDS = study.fields.study_defaults()
if S.baselines:  # $JAX_AL_NOTEBOOK_BASELINES, the study's --study.baselines
  FIELDS.baselines = S.baselines
ST = study.build(digits.get_config(), FIELDS, config_spec="configs/digits.py",
                 mode=S.mode, out=S.out)
print(study.plan_text(ST), end="\\n\\n")
t0 = time.perf_counter()
FINDINGS = study.run_study(ST)
print(f"\\nstudy: {time.perf_counter() - t0:.0f} s in this kernel; best variant "
      f"{FINDINGS['q4']['best']}")
""")

md("""
What it wrote: `findings.md` (every table below; every number is also in
`findings.json`) and the four plots.
""")

code("""
display(*V.study_items(S.out, repo=REPO))
""")

md("""
## 2. The committed full run: `docs/study/digits/`

The study in `--mode full` on `configs/digits.py` (MLP, 20 + 20 labels x 10
cycles, 100 epochs, 3 selection seeds, 5 report seeds, 102 jobs), committed
with its command, grid and runtime in `docs/study/digits/README.md` (about
40 min of wall time). The header of its `findings.md` describes the rerun
that regenerated that file after a wording change, with all 102 jobs found
finished. The tables and plots below are read from the committed files, not
recomputed.
""")

code("""
display(*V.study_items(REPO / "docs" / "study" / "digits", repo=REPO))
""")

md("""
## 3. CIFAR-10 results

GPU results of `configs/cifar10.py` are committed under
`docs/results/cifar10/`: a study's folder (findings.md, plots) or a
comparison's report (report.md or report.json, plots). Each one there is
shown below; without the folder, one line says so.
""")

code("""
display(*V.cifar_items(S.cifar, repo=REPO))
""")


def build() -> nbformat.NotebookNode:
  nb = new_notebook()
  for kind, text in CELLS:
    nb.cells.append(new_markdown_cell(text) if kind == "md" else new_code_cell(text))
  nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
  nb.metadata["language_info"] = {"name": "python"}
  return nb


if __name__ == "__main__":
  nbformat.write(build(), OUT)
  print(f"wrote {OUT}")
