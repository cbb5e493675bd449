"""Display helpers of `seed_questions.ipynb`: its settings and what it shows.

The notebook runs nothing of its own: it calls `jax_al.study` on
`configs/digits.py` and shows what study folders hold (findings.md and the
four plots), the committed full run in docs/study/digits/, and CIFAR-10
results under docs/results/cifar10/ when that folder exists. The helpers
return IPython display objects, so tests can read them without a kernel.

Environment (paths relative to the repository root):
  JAX_AL_NOTEBOOK_MODE       full (default) or ci: the study's --mode.
  JAX_AL_NOTEBOOK_OUT        the study's folder; default runs/study_digits in full
                             mode (the folder of the command in
                             docs/study/digits/README.md, so a finished study there
                             is reused), runs/study_digits_ci in ci mode.
  JAX_AL_NOTEBOOK_BASELINES  the study's --study.baselines; default its own list
                             (tests/test_notebook.py passes "random").
  JAX_AL_NOTEBOOK_CIFAR      CIFAR-10 results to show; default docs/results/cifar10.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

from IPython.display import Image, Markdown

MODE_ENV = "JAX_AL_NOTEBOOK_MODE"
OUT_ENV = "JAX_AL_NOTEBOOK_OUT"
CIFAR_ENV = "JAX_AL_NOTEBOOK_CIFAR"
BASELINES_ENV = "JAX_AL_NOTEBOOK_BASELINES"
MODES = ("full", "ci")
DEFAULT_OUT = {"full": "runs/study_digits", "ci": "runs/study_digits_ci"}

# The plots a study writes, with what each shows (jax_al/study/findings.py, `plots`).
STUDY_PLOTS = (
    ("learning_curves.png", "Learning curves, mean ± 1 sd over seeds: scope (question 2), "
     "sign and set-level (question 3), the best variant against the baselines (question 4)."),
    ("paired_auc.png", "Paired AUC differences with 95 % intervals, one panel per question."),
    ("score_scales.png", "Question 1: the raw uncertainty and MMD term at one selection step, "
     "and both after each normalisation."),
    ("pca_step.png", "Question 3: each variant's picks at one selection step, on a PCA of "
     "the features."),
)


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the notebook runs and shows: the study's mode, folder and baselines
  ("" = the study's default), and the CIFAR-10 folder."""

  mode: str
  out: Path
  baselines: str
  cifar: Path


def settings(repo: Path, env=None) -> Settings:
  """The Settings from the environment (`env`, default os.environ).

  Raises ValueError (one line) for an unknown mode or a study folder under
  docs/, which holds committed results only.
  """
  env = os.environ if env is None else env
  repo = Path(repo).resolve()
  mode = env.get(MODE_ENV) or "full"
  if mode not in MODES:
    raise ValueError(f"${MODE_ENV}={mode!r}: use one of {', '.join(MODES)}")
  out = (repo / (env.get(OUT_ENV) or DEFAULT_OUT[mode])).resolve()
  if out == repo / "docs" or (repo / "docs") in out.parents:
    raise ValueError(f"${OUT_ENV}={env.get(OUT_ENV)!r}: docs/ holds committed results only; "
                     f"pass a folder outside it, e.g. {DEFAULT_OUT[mode]}")
  cifar = (repo / (env.get(CIFAR_ENV) or "docs/results/cifar10")).resolve()
  return Settings(mode, out, env.get(BASELINES_ENV, "").strip(), cifar)


def _shown(path: Path, repo: Path | None) -> str:
  path = Path(path).resolve()
  if repo is not None and Path(repo).resolve() in path.parents:
    return path.relative_to(Path(repo).resolve()).as_posix()
  return str(path)


def local_markdown(text: str, shift: int = 0) -> str:
  """`text` for a notebook cell: headings `shift` levels deeper, and without the
  lines that only link a folder's own PNGs (the notebook shows them as images)."""
  out = []
  for line in text.splitlines():
    if re.fullmatch(r"\s*!\[[^\]]*\]\([^)/]+\.png\)\s*", line):
      continue
    if line.startswith("Plots: [") and ".png)" in line:
      continue
    if shift and re.match(r"#{1,6} ", line):
      line = "#" * shift + line
    out.append(line)
  return "\n".join(out).strip("\n") + "\n"


def study_items(folder: Path, shift: int = 2, repo: Path | None = None) -> list:
  """What a study folder shows: its findings.md (every table; findings.json
  rendered by `jax_al.study.findings.markdown` when there is no .md), then its plots.

  Raises ValueError (one line) when the folder has neither file.
  """
  from jax_al.study import findings

  folder = Path(folder)
  if (folder / "findings.md").is_file():
    text = (folder / "findings.md").read_text()
  elif (folder / "findings.json").is_file():
    text = findings.markdown(json.loads((folder / "findings.json").read_text()))
  else:
    raise ValueError(f"study folder {_shown(folder, repo)!r} has no findings.md or "
                     f"findings.json; run python -m jax_al.study --config configs/digits.py "
                     f"--out {folder} first")
  items = [Markdown(local_markdown(text, shift))]
  for name, caption in STUDY_PLOTS:
    if (folder / name).is_file():
      items += [Markdown(f"**`{_shown(folder / name, repo)}`**: {caption}"),
                Image(filename=str(folder / name))]
  return items


def _report_items(folder: Path, shift: int, repo: Path | None) -> list:
  """A comparison's report.md (report.json rendered by `report.to_markdown`
  when there is no .md) and the folder's PNGs."""
  from jax_al import report

  if (folder / "report.md").is_file():
    text = (folder / "report.md").read_text()
  else:
    text = report.to_markdown(json.loads((folder / "report.json").read_text()))
  items = [Markdown(local_markdown(text, shift))]
  for png in sorted(folder.glob("*.png")):
    items += [Markdown(f"**`{_shown(png, repo)}`**"), Image(filename=str(png))]
  return items


def cifar_items(root: Path, repo: Path | None = None) -> list:
  """What the CIFAR-10 section shows.

  The README.md of `root`, then every folder under it (itself included)
  holding a study's findings.md / findings.json or a comparison's
  report.md / report.json, in path order, each with its README.md and
  PNGs. A missing `root`, or one holding none of those files, gives a
  single line saying so.
  """
  root = Path(root)
  shown = _shown(root, repo)
  if not root.is_dir():
    return [Markdown(f"No CIFAR-10 results: `{shown}/` does not exist (no GPU run has been "
                     "committed), so every answer above rests on digits alone.")]
  items = []
  for d in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
    study = any((d / n).is_file() for n in ("findings.md", "findings.json"))
    comparison = any((d / n).is_file() for n in ("report.md", "report.json"))
    if not (study or comparison):
      continue
    items.append(Markdown(f"### `{_shown(d, repo)}`"))
    if d != root and (d / "README.md").is_file():
      items.append(Markdown(local_markdown((d / "README.md").read_text(), 3)))
    items += study_items(d, 3, repo) if study else _report_items(d, 3, repo)
  if not items:
    return [Markdown(f"No CIFAR-10 results: `{shown}/` holds no findings.md, findings.json, "
                     "report.md or report.json.")]
  if (root / "README.md").is_file():
    items.insert(0, Markdown(local_markdown((root / "README.md").read_text(), 2)))
  return items
