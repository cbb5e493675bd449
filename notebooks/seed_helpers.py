"""Helpers of `seed_questions.ipynb`: its plans, runs, tables and pictures.

The notebook answers four questions about the k-means cluster-margin + MMD
method on digits through the library's API: `loop.run` for the runs,
`report` for the paired statistics, `replay` to look inside single
selection steps. What is here is presentation: the notebook's run plans,
the digits configs they use, overlap sweeps, PCA pictures and plots.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Iterable

import jax.numpy as jnp
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))  # `configs` is a top-level package of the repository

from jax_al import loop, replay, report  # noqa: E402
from jax_al.study.analysis import pca_2d  # noqa: E402,F401  (the study's; used by the notebook)
from jax_al.scores import normalize as norm_lib  # noqa: E402

MODE_ENV = "JAX_AL_NOTEBOOK_MODE"


# ------------------------------------------------------------------ settings


@dataclasses.dataclass(frozen=True)
class Plan:
  """How much the notebook runs.

  Attributes:
    mode: "full" (the committed notebook) or "ci" (the test run).
    trials: trials of every learning-curve run (paired by trial index).
    sweep_trials: trials of each run of the lam x normalisation sweep.
    epochs: training epochs per cycle (the digits config has 100).
    cycles: AL cycles (labeled sizes 20, 40, ..., 20 * cycles).
    subset: random unlabeled candidates scored per cycle (fixed, so every
      cycle has the same pool shape and compiles once).
    lams: the lam sweep; 0 is uncertainty only.
    norms: the normalisations swept.
    sign_lams: lams at which large (+1) and small (-1) rank-normalised MMD
      are compared (1.0 is the main runs `mmd_large` / `mmd_small`).
    probe_cycles: cycles whose selection steps are reproduced for overlaps.
    probe_trials: trials whose selection steps are reproduced for overlaps.
    pca_cycle: the cycle whose selection step is drawn in the PCA picture.
  """

  mode: str
  trials: int
  sweep_trials: int
  epochs: int
  cycles: int
  subset: int
  lams: tuple[float, ...]
  norms: tuple[str, ...]
  sign_lams: tuple[float, ...]
  probe_cycles: tuple[int, ...]
  probe_trials: tuple[int, ...]
  pca_cycle: int


PLANS = {
    "full": Plan("full", trials=5, sweep_trials=3, epochs=50, cycles=10, subset=1000,
                 lams=(0.0, 0.1, 0.3, 1.0, 3.0, 10.0),
                 norms=("none", "minmax", "zscore", "rank"), sign_lams=(0.1, 0.3, 1.0),
                 probe_cycles=(1, 3, 5, 7, 9), probe_trials=(0, 1, 2), pca_cycle=3),
    "ci": Plan("ci", trials=2, sweep_trials=2, epochs=8, cycles=3, subset=1000,
               lams=(0.0, 1.0, 10.0), norms=("none", "rank"), sign_lams=(1.0, 10.0),
               probe_cycles=(1, 2), probe_trials=(0,), pca_cycle=2),
}


def plan(mode: str | None = None) -> Plan:
  """The Plan for `mode`, or for $JAX_AL_NOTEBOOK_MODE (default "full")."""
  mode = mode or os.environ.get(MODE_ENV, "full") or "full"
  if mode not in PLANS:
    raise ValueError(f"${MODE_ENV}={mode!r}: use one of {sorted(PLANS)}")
  return PLANS[mode]


def digits_config(preset: str, p: Plan, *, trials: int | None = None, **al):
  """`configs/digits.py:<preset>` sized by the plan, with `config.al` overrides.

  Epochs and the learning-rate milestone scale together (milestone at 80 %
  of the epochs, as in the digits config); test accuracy is measured only
  after the last epoch, the one the learning curves use.
  """
  from configs import digits

  c = digits.get_config(preset)
  c.num_trials = p.trials if trials is None else trials
  c.train.epochs = p.epochs
  c.train.milestones = (max(1, int(0.8 * p.epochs)),)
  c.train.eval_every = p.epochs
  c.al.cycles = p.cycles
  c.al.subset = p.subset
  for k, v in al.items():
    c.al[k] = v
  return c


# ----------------------------------------------------------------------- runs


def run_all(configs: dict, root: Path, log=print) -> dict[str, float]:
  """Runs (or resumes) each named config under `root/<name>`; returns seconds per run.

  A finished run with the same config is reused as it is, so re-executing
  the notebook only computes what is missing.
  """
  root = Path(root)
  seconds = {}
  for name, c in configs.items():
    t = time.perf_counter()
    loop.run(c, root / name, quiet=True)
    seconds[name] = time.perf_counter() - t
    if log:
      log(f"{name:28s} {seconds[name]:6.1f} s")
  return seconds


def load(root: Path, names: Iterable[str]) -> dict[str, dict]:
  """`report.load_run` of `root/<name>` for each name, in order."""
  return {n: report.load_run(Path(root) / n) for n in names}


def aucs(runs: dict[str, dict]) -> dict[str, np.ndarray]:
  """Per-trial normalised AUC (`report.auc`) of each run."""
  return {n: report.auc(r["labeled"], r["acc"]) for n, r in runs.items()}


def auc_table(runs: dict[str, dict], against: str | None = None) -> list[dict]:
  """Rows of name, trials, AUC mean and std, final accuracy, and (optionally)
  the paired AUC difference against run `against`."""
  rows = []
  for n, r in runs.items():
    a = report.auc(r["labeled"], r["acc"])
    row = {"name": n, "trials": len(r["trials"]), "auc": float(a.mean()),
           "auc_std": float(a.std(ddof=1)) if len(a) > 1 else math.nan,
           "final": float(r["acc"][:, -1].mean())}
    if against is not None and n != against:
      row["vs"] = report.paired(r, runs[against])
    rows.append(row)
  return rows


def format_table(rows: list[dict], against: str | None = None) -> str:
  """A fixed-width text table of `auc_table` rows."""
  head = f"{'variant':28s} {'n':>2s} {'AUC':>6s} {'sd':>5s} {'final':>6s}"
  if against:
    head += f"   AUC - {against} [95% CI]"
  lines = [head]
  for r in rows:
    s = f"{r['name']:28s} {r['trials']:2d} {r['auc']:6.2f} {r['auc_std']:5.2f} {r['final']:6.2f}"
    if "vs" in r:
      v = r["vs"]
      s += f"   {v['diff']:+6.2f} [{v['lo']:+.2f}, {v['hi']:+.2f}]" + (" *" if v["significant"] else "")
    lines.append(s)
  return "\n".join(lines)



# ------------------------------------------------------ selection steps


def normalised(v: np.ndarray, method: str) -> np.ndarray:
  """`scores.normalize.normalize` on a NumPy vector."""
  return np.asarray(norm_lib.normalize(jnp.asarray(v), method))


def overlap(a: np.ndarray, b: np.ndarray) -> float:
  """|a & b| / |a|: the fraction of picks two selections share."""
  a = np.asarray(a)
  return len(np.intersect1d(a, b)) / max(len(a), 1)


def overlap_sweep(steps: list[replay.Step], config, lams, norms) -> np.ndarray:
  """[norms, lams, steps] share of the picks of `config` with al.normalize = norm
  and al.lam = lam that equal its picks with lam = 0 (uncertainty only).

  `lam`, `normalize` and `sign` are traced in the strategy: the sweep
  compiles once per step shape.
  """
  out = np.zeros((len(norms), len(lams), len(steps)))
  for k, st in enumerate(steps):
    base = replay.select(st, replay.with_al(config, lam=0.0))
    for i, nm in enumerate(norms):
      for j, lam in enumerate(lams):
        out[i, j, k] = overlap(base, replay.select(st, replay.with_al(config, lam=float(lam), normalize=nm)))
  return out


# ---------------------------------------------------------------- pictures


def pick_profile(step: replay.Step, picks: np.ndarray) -> dict[str, float]:
  """Where picks sit: distance to the nearest labeled point, pool density, classes.

  dist_labeled: mean Euclidean distance (features) of a pick to its nearest
    labeled point, relative to the same mean over all candidates (1 = typical).
  density_pct: mean percentile (0-100) of the picks' pool density
    mean_u k(x, u) (Gaussian kernel, median-heuristic sigma) among all
    candidates: high = a dense region, low = an outlier.
  classes: distinct true classes among the picks.
  """
  x = np.asarray(step.pool.features, np.float64)
  l = np.asarray(step.pool.labeled_features, np.float64)
  d2 = (x**2).sum(1)[:, None] + (l**2).sum(1)[None] - 2 * x @ l.T
  near = np.sqrt(np.maximum(d2.min(1), 0))
  dxx = np.sqrt(np.maximum((x**2).sum(1)[:, None] + (x**2).sum(1)[None] - 2 * x @ x.T, 0))
  sigma = np.median(dxx[np.triu_indices(len(x), 1)])
  dens = np.exp(-dxx**2 / (2 * sigma**2)).mean(1)
  pct = 100.0 * (np.argsort(np.argsort(dens)) / max(len(x) - 1, 1))
  picks = np.asarray(picks)
  return {"dist_labeled": float(near[picks].mean() / near.mean()),
          "density_pct": float(pct[picks].mean()),
          "classes": int(len(np.unique(step.labels[picks])))}


def plot_curves(ax, runs: dict[str, dict], names: Iterable[str] | None = None,
                title: str = "") -> None:
  """Mean learning curves with a band of +-1 sample std over trials, AUC in the legend."""
  for n in (names or runs):
    r = runs[n]
    x, acc = np.asarray(r["labeled"]), r["acc"]
    m, sd = acc.mean(0), report.std_over_trials(acc)
    a = report.auc(r["labeled"], acc).mean()
    (line,) = ax.plot(x, m, marker="o", ms=3, label=f"{n} (AUC {a:.1f})")
    ax.fill_between(x, m - sd, m + sd, alpha=0.15, color=line.get_color())
  ax.set_xlabel("labeled images")
  ax.set_ylabel("test accuracy (%)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  if title:
    ax.set_title(title, fontsize=10)


def plot_paired(ax, diffs: dict[str, dict], xlabel: str) -> None:
  """Paired AUC differences ({label: `paired(...)`}) as points with 95 % intervals.

  A difference with a single pair (no interval) is drawn as a bare point.
  """
  labels = list(diffs)
  y = np.arange(len(labels))
  d = np.array([diffs[k]["diff"] for k in labels])
  lo = np.array([diffs[k]["lo"] for k in labels])
  hi = np.array([diffs[k]["hi"] for k in labels])
  ok = np.isfinite(lo)
  ax.errorbar(d[ok], y[ok], xerr=[d[ok] - lo[ok], hi[ok] - d[ok]], fmt="o", capsize=4)
  ax.plot(d[~ok], y[~ok], "o")
  ax.axvline(0, color="k", lw=0.8)
  ax.set_yticks(y, labels)
  ax.set_xlabel(xlabel)
  ax.grid(alpha=0.3, axis="x")


# ------------------------------------------------------------ CIFAR results


def cifar_runs(root: Path = Path("docs/results/cifar10")) -> dict[str, dict]:
  """Loaded CIFAR-10 runs under `root`: run folders with metrics.jsonl, or report.json files.

  Returns {name: run} in `report.load_run` form (for report.json, only the
  mean curve, as a single pseudo-trial); empty when nothing is there.
  """
  root = Path(root)
  runs = {}
  if not root.is_dir():
    return runs
  for m in sorted(root.rglob("metrics.jsonl")):
    r = report.load_run(m.parent)
    if len(r["trials"]):
      runs[str(m.parent.relative_to(root))] = r
  loaded = {(m.parent / "metrics.jsonl") for m in root.rglob("metrics.jsonl")}
  for rep in sorted(root.rglob("report.json")):
    summ = json.loads(rep.read_text())
    for name, s in summ.get("strategies", {}).items():
      # A comparison's report sits in <cmp>/report/ next to its runs <cmp>/<name>/:
      # a run already loaded from its metrics.jsonl is not added twice.
      if any(rep.parent.parent / name / "metrics.jsonl" == m for m in loaded):
        continue
      key = (rep.parent.relative_to(root) / name).as_posix()
      if key not in runs and s.get("labeled") and s.get("mean"):
        runs[key] = {"name": name, "trials": [0], "labeled": s["labeled"],
                     "acc": np.asarray([s["mean"]], float),
                     "select_s": np.zeros((1, len(s["labeled"])))}
  return runs
