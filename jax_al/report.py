"""Aggregates finished runs into tables and plots.

    python -m jax_al.report runs/cmp --out runs/cmp/report
    python -m jax_al.report runs/a runs/b --out report/

Each argument is a run workdir (with metrics.jsonl) or a folder of them (a
comparison). Writes report.md, report.csv, report.json, learning_curves.png
and selection_time.png. Trials are paired by index: trial t of every
strategy started from the same initial set and weights.
"""

from __future__ import annotations

import argparse
import csv
import io as _io
import math
from pathlib import Path

import numpy as np

from jax_al import io


def find_runs(paths) -> list[Path]:
  """Expands comparison folders into their run workdirs (sorted, unique)."""
  runs = []
  for p in map(Path, paths):
    if (p / "metrics.jsonl").exists():
      runs.append(p)
    elif p.is_dir():
      runs += sorted(q for q in p.iterdir() if (q / "metrics.jsonl").exists())
    else:
      raise FileNotFoundError(f"{p}: not a run workdir (no metrics.jsonl) nor a folder of them")
  if not runs:
    raise FileNotFoundError(f"no run workdirs (with metrics.jsonl) under {list(map(str, paths))}")
  return list(dict.fromkeys(runs))


def load_run(workdir: Path) -> dict:
  """Accuracy [trials, cycles], labeled sizes and selection seconds of one run.

  Only trials that finished every cycle of the longest trial are kept, so
  curves never mix lengths.
  """
  recs = [r for r in io.read_jsonl(workdir / "metrics.jsonl") if r.get("kind") == "cycle"]
  trials = sorted({r["trial"] for r in recs})
  by_t = {t: sorted((r for r in recs if r["trial"] == t), key=lambda r: r["cycle"]) for t in trials}
  n = max((len(v) for v in by_t.values()), default=0)
  full = {t: v for t, v in by_t.items() if len(v) == n}
  first = next(iter(full.values()), [])
  return {
      "name": workdir.name, "trials": sorted(full),
      "labeled": [r["labeled"] for r in first],
      "acc": np.array([[r["test_acc"] for r in full[t]] for t in sorted(full)], float).reshape(len(full), n),
      "select_s": np.array([[r.get("select_s", 0.0) for r in full[t]] for t in sorted(full)], float).reshape(len(full), n),
  }


def auc(labeled, acc) -> np.ndarray:
  """Normalised area under the learning curve, per trial, in accuracy %.

  Trapezoids over the labeled-set sizes divided by the size range: the mean
  accuracy over the budget axis (equal to the plain accuracy for one cycle).
  """
  x = np.asarray(labeled, float)
  acc = np.atleast_2d(acc)
  if len(x) < 2:
    return acc[:, 0]
  return np.trapezoid(acc, x, axis=1) / (x[-1] - x[0])


def paired_ci(diffs: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
  """(mean, low, high) of a Student-t interval for the mean of paired differences."""
  from scipy import stats

  d = np.asarray(diffs, float)
  m = float(d.mean()) if len(d) else math.nan
  if len(d) < 2:
    return m, math.nan, math.nan
  half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
  return m, m - half, m + half


def _std(x: np.ndarray) -> np.ndarray:
  """Sample standard deviation over trials (ddof=1, as the t-intervals); 0 for one trial."""
  return x.std(0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1:])


def summarize(runs: list[dict], baseline: str = "random") -> dict:
  """Per-strategy mean/std per size, AUC, and paired differences against `baseline`."""
  out = {"strategies": {}, "baseline": baseline if any(r["name"] == baseline for r in runs) else None}
  base = next((r for r in runs if r["name"] == baseline), None)
  for r in runs:
    a = auc(r["labeled"], r["acc"]) if len(r["trials"]) else np.array([])
    s = {"labeled": r["labeled"], "trials": r["trials"],
         "mean": r["acc"].mean(0).tolist() if len(a) else [],
         "std": _std(r["acc"]).tolist() if len(a) else [],
         "auc_mean": float(a.mean()) if len(a) else math.nan,
         "auc_std": float(_std(a)) if len(a) else math.nan,
         "select_s_mean": r["select_s"].mean(0).tolist() if len(a) else []}
    if base is not None and r is not base and base["labeled"] == r["labeled"]:
      common = sorted(set(base["trials"]) & set(r["trials"]))
      bi = [base["trials"].index(t) for t in common]
      ri = [r["trials"].index(t) for t in common]
      d = a[ri] - auc(base["labeled"], base["acc"])[bi]
      m, lo, hi = paired_ci(d)
      s["vs_baseline"] = {"auc_diff": m, "ci95": [lo, hi], "pairs": len(common)}
    out["strategies"][r["name"]] = s
  return out


def _fmt(m, s):
  return f"{m:.2f} ± {s:.2f}"


def to_markdown(summary: dict) -> str:
  strats = summary["strategies"]
  sizes = next((s["labeled"] for s in strats.values() if s["labeled"]), [])
  lines = ["# Active-learning comparison", "",
           "Test accuracy (%), mean ± sample std over trials, by labeled-set size.", "",
           "| strategy | trials | " + " | ".join(map(str, sizes)) + " | AUC |",
           "| --- | --- | " + " | ".join("---" for _ in sizes) + " | --- |"]
  for name, s in strats.items():
    cells = [_fmt(m, sd) for m, sd in zip(s["mean"], s["std"])]
    lines.append(f"| {name} | {len(s['trials'])} | " + " | ".join(cells) +
                 f" | {_fmt(s['auc_mean'], s['auc_std'])} |")
  if summary["baseline"]:
    lines += ["", f"Paired AUC difference against `{summary['baseline']}` "
              "(same trial = same initial set and weights), 95 % t-interval:", "",
              "| strategy | AUC diff | 95 % CI | pairs |", "| --- | --- | --- | --- |"]
    for name, s in strats.items():
      if "vs_baseline" in s:
        v = s["vs_baseline"]
        lines.append(f"| {name} | {v['auc_diff']:+.2f} | [{v['ci95'][0]:+.2f}, "
                     f"{v['ci95'][1]:+.2f}] | {v['pairs']} |")
  lines += ["", "AUC: area under the learning curve divided by the labeled-size range "
            "(the mean accuracy over the budget axis).", "",
            "![learning curves](learning_curves.png)", "", "![selection time](selection_time.png)", ""]
  return "\n".join(lines)


def to_csv(summary: dict) -> str:
  buf = _io.StringIO()
  w = csv.writer(buf)
  w.writerow(["strategy", "labeled", "mean_acc", "std_acc", "trials", "select_s"])
  for name, s in summary["strategies"].items():
    for i, n in enumerate(s["labeled"]):
      w.writerow([name, n, f"{s['mean'][i]:.4f}", f"{s['std'][i]:.4f}", len(s["trials"]),
                  f"{s['select_s_mean'][i]:.4f}"])
  return buf.getvalue()


def plot(summary: dict, out: Path) -> list[Path]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  paths = []
  # tab20 + line styles keep up to 20 strategies apart (tab10 repeats after 10).
  colors = plt.get_cmap("tab20").colors
  style = lambda i: dict(color=colors[(2 * i) % 20 + (i // 10) % 2],
                         linestyle=("-", "--", ":")[(i // 10) % 3])
  fig, ax = plt.subplots(figsize=(7.2, 4.6))
  for i, (name, s) in enumerate(summary["strategies"].items()):
    if not s["labeled"]:
      continue
    x, m, sd = np.array(s["labeled"]), np.array(s["mean"]), np.array(s["std"])
    ax.plot(x, m, marker="o", ms=3, label=f"{name} (AUC {s['auc_mean']:.1f})", **style(i))
    ax.fill_between(x, m - sd, m + sd, alpha=0.12, color=style(i)["color"])
  ax.set_xlabel("labeled images")
  ax.set_ylabel("test accuracy (%)")
  ax.set_title("Learning curves (mean ± std over trials)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  paths.append(out / "learning_curves.png")
  fig.savefig(paths[-1], dpi=120)
  plt.close(fig)

  fig, ax = plt.subplots(figsize=(7.2, 4.0))
  for i, (name, s) in enumerate(summary["strategies"].items()):
    if s["labeled"]:
      k = len(s["labeled"]) - 1  # the last cycle selects nothing
      ax.plot(np.arange(1, k + 1), np.array(s["select_s_mean"][:k]) * 1e3, marker="o", ms=3,
              label=name, **style(i))
  ax.set_xlabel("cycle")
  ax.set_ylabel("selection time (ms, incl. features)")
  ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  paths.append(out / "selection_time.png")
  fig.savefig(paths[-1], dpi=120)
  plt.close(fig)
  return paths


def make_report(paths, out, baseline: str = "random") -> dict:
  """Writes the report for the runs under `paths` into `out`; returns the summary."""
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  summary = summarize([load_run(p) for p in find_runs(paths)], baseline)
  io.write_json(out / "report.json", summary)
  io.atomic_write_text(out / "report.md", to_markdown(summary))
  io.atomic_write_text(out / "report.csv", to_csv(summary))
  plot(summary, out)
  return summary


def main(argv=None) -> None:
  p = argparse.ArgumentParser(prog="python -m jax_al.report", description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="+", help="run workdirs or folders of them")
  p.add_argument("--out", required=True, help="output folder")
  p.add_argument("--baseline", default="random", help="strategy for paired differences")
  a = p.parse_args(argv)
  s = make_report(a.runs, a.out, a.baseline)
  print(to_markdown(s))


if __name__ == "__main__":
  main()
