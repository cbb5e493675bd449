"""Aggregates finished runs into tables and plots.

    python -m jax_al.report runs/cmp --out runs/cmp/report
    python -m jax_al.report runs/a runs/b --out report/

Each argument is a run workdir (with metrics.jsonl) or a folder of them (a
comparison; hidden folders such as `.jax_al_replaced` are not runs). Writes
report.md, report.csv, report.json, learning_curves.png and
selection_time.png, and says where; a file of those names that jax-al did
not write is never replaced (`files.check_output`). Rows are named by the
run folders (a single run by its strategy); a folder named after a
strategy or preset that its run's config contradicts is named with what
its run used instead (`margin [al.strategy=random]`). Trials are paired by index:
trial t of two runs started from the same initial set and weights only when
their configs differ in al.* (and num_trials) alone and their recorded data
fingerprints agree; other runs get no paired row, with a note naming what
differs. An interval over fewer than 2 pairs is reported as none.

Only complete trials count (every cycle of the run's config, or ended early
on an empty pool); partial ones are left out with a warning, or shown marked
with --include-partial. Curves are aligned by labeled-set size. Why a
strategy has no paired row is said in the report's notes. Bad inputs (no
runs, garbled metrics, no finished trial, an unwritable --out) stop with one
line that names the file.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np

from jax_al import files, usage
from jax_al import workdir as workdir_lib
from jax_al.errors import DataError, JaxALError

# What the report writes into --out (each one checked with files.check_output first).
OUTPUTS = ("report.json", "report.md", "report.csv", "learning_curves.png",
           "selection_time.png")
# Fields in which two runs may differ and still be paired trial by trial: the
# selection (al.*, what a comparison varies), how many trials ran, and the
# comparison list itself. The execution-only fields never count
# (workdir.comparable drops them).
PAIRABLE = ("al.", "num_trials", "compare.strategies")


def _has_metrics(p: Path) -> bool:
  return (p / "metrics.jsonl").is_file()


def find_runs(paths, warn=None) -> list[Path]:
  """Expands comparison folders into their run workdirs (sorted, unique).

  A folder with its own metrics.jsonl is a run; its subfolders with one are
  runs too (a plain run written into a comparison root): both are kept, and
  `warn` is told.
  """
  warn = warn or (lambda msg: None)
  runs = []
  for p in map(Path, paths):
    if not p.exists():
      raise DataError(str(p), "does not exist", "pass run workdirs or folders of them")
    if not p.is_dir():
      raise DataError(str(p), "is a file, not a run workdir (a folder with metrics.jsonl) nor a "
                      "folder of them", "pass the folder that holds metrics.jsonl")
    # Hidden folders are never runs: `.jax_al_replaced` holds a run that an
    # interrupted --overwrite set aside, for the next run command to settle.
    subs = sorted(q for q in p.iterdir()
                  if q.is_dir() and not q.name.startswith(".") and _has_metrics(q))
    if (p / workdir_lib.ASIDE).is_dir():
      what = f"the run in {p} itself" if _has_metrics(p) else "not that one"
      warn(f"{p}: an interrupted --overwrite left the previous run aside in "
           f"{workdir_lib.ASIDE}/ (the next run command on {p} settles it); reported: {what}")
    if _has_metrics(p):
      runs.append(p)
      if subs:
        warn(f"{p} holds a run of its own and {len(subs)} run folder(s) "
             f"({', '.join(q.name for q in subs)}): a plain run was written into a "
             "comparison root; both are reported")
    runs += subs
  if not runs:
    raise DataError(", ".join(map(str, paths)), "holds no run workdir (a folder with "
                    "metrics.jsonl, directly or one level down)",
                    "pass the --workdir of a run or of a comparison")
  return list(dict.fromkeys(runs))


def _records(path: Path) -> list[dict]:
  """The records of a metrics.jsonl; DataError naming the file and line if garbled."""
  out = []
  try:
    text = path.read_text()
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(str(path), f"cannot be read ({e})", "check the file") from None
  for i, line in enumerate(text.splitlines(), 1):
    if not line.strip():
      continue
    try:
      r = json.loads(line)
    except ValueError as e:
      raise DataError(f"{path}:{i}", f"is not a JSON record ({e})",
                      "the file is not a jax-al metrics.jsonl, or it was edited") from None
    if not isinstance(r, dict) or not isinstance(r.get("kind"), str):
      raise DataError(f"{path}:{i}", "is not a jax-al record (no 'kind')",
                      "the file is not a jax-al metrics.jsonl")
    if r["kind"] == "cycle":
      for k, kind in (("trial", int), ("cycle", int), ("labeled", int),
                      ("test_acc", (int, float))):
        if not isinstance(r.get(k), kind) or isinstance(r.get(k), bool):
          raise DataError(f"{path}:{i}", f"its cycle record lacks a numeric {k!r}",
                          "the file is not a jax-al metrics.jsonl, or it was edited")
      # A run never records a NaN (it writes null) or an accuracy outside 0-100:
      # such a value is an edit, and averaging it in would be a wrong result.
      if not 0 <= r["test_acc"] <= 100:
        raise DataError(f"{path}:{i}", f"its cycle record's test_acc {r['test_acc']!r} is "
                        "not an accuracy in [0, 100]",
                        "the file was edited; restore it from a copy")
    out.append(r)
  return out


def _saved_config(workdir: Path) -> dict | None:
  try:
    saved = json.loads((Path(workdir) / "config.json").read_text())
  except (OSError, ValueError, UnicodeDecodeError):
    return None
  return saved if isinstance(saved, dict) else None


def unpairable_fields(a: dict | None, b: dict | None) -> list[str] | None:
  """The fields outside `PAIRABLE` in which saved configs `a` and `b` differ
  (None when either is unknown): trial t of two runs starts from the same
  labeled set and weights only when this list is empty."""
  if a is None or b is None:
    return None
  fa = workdir_lib._flat(workdir_lib._strip(workdir_lib.with_added_fields(a)))
  fb = workdir_lib._flat(workdir_lib._strip(workdir_lib.with_added_fields(b)))
  fa.pop(workdir_lib.DATA_KEY, None), fb.pop(workdir_lib.DATA_KEY, None)
  return sorted(k for k in set(fa) | set(fb)
                if fa.get(k) != fb.get(k) and not k.startswith(PAIRABLE))


def _field_diff(a: dict, b: dict, fields: list[str], limit: int = 3) -> str:
  fa = workdir_lib._flat(workdir_lib.with_added_fields(a))
  fb = workdir_lib._flat(workdir_lib.with_added_fields(b))
  parts = [f"{k} {fa.get(k)!r} vs {fb.get(k)!r}" for k in fields[:limit]]
  return ", ".join(parts) + (f" and {len(fields) - limit} more" if len(fields) > limit else "")


def setup_mismatch(a: dict, b: dict) -> str | None:
  """Why runs `a` and `b` (`load_run` dicts) are not paired trial by trial,
  or None when they may be: configs that differ outside `PAIRABLE`, data
  whose recorded fingerprints differ, or an unknown config."""
  ca, cb = a.get("config"), b.get("config")
  if ca is None or cb is None:
    missing = a if ca is None else b
    return f"{missing['path']} has no readable config.json, so the pairing cannot be checked"
  fields = unpairable_fields(ca, cb)
  if fields:
    return f"its config differs outside al.* ({_field_diff(ca, cb, fields)})"
  change = workdir_lib.data_changes(ca.get(workdir_lib.DATA_KEY), cb.get(workdir_lib.DATA_KEY))
  if change:
    return f"its data differ ({change})"
  return None


def _expected_cycles(workdir: Path) -> int | None:
  try:
    saved = json.loads((workdir / "config.json").read_text())
    n = saved["al"]["cycles"]
    return n if isinstance(n, int) and n > 0 else None
  except (OSError, ValueError, KeyError, TypeError):
    return None


def load_run(workdir: Path, include_partial: bool = False) -> dict:
  """Accuracy [trials, sizes], labeled sizes and selection seconds of one run.

  A trial is complete when it has a cycle record for each of the run's
  `al.cycles` (read from config.json), or when the run ended normally
  (summary.json) after stopping the trial early on an empty pool. Only
  complete trials are kept unless `include_partial`; then partial trials
  join with NaN for the sizes they did not reach. Accuracies are aligned by
  labeled-set size, never by position.
  """
  workdir = Path(workdir)
  recs = _records(workdir / "metrics.jsonl")
  cyc = [r for r in recs if r["kind"] == "cycle"]
  errors = [r for r in recs if r["kind"] == "error"]
  trials = sorted({r["trial"] for r in cyc} | {r["trial"] for r in errors
                                                if isinstance(r.get("trial"), int)})
  by_t = {t: sorted((r for r in cyc if r["trial"] == t), key=lambda r: r["cycle"])
          for t in trials}
  expected = _expected_cycles(workdir) or max((len(v) for v in by_t.values()), default=0)
  ended = (workdir / "summary.json").exists()

  def complete(t):
    if not by_t[t]:
      return False
    if len(by_t[t]) >= expected:
      return True
    last = by_t[t][-1]["cycle"] if by_t[t] else 0
    return ended and bool(by_t[t]) and not any(
        e.get("trial") == t and e.get("cycle", 0) > last for e in errors)

  full = [t for t in trials if complete(t)]
  partial = [t for t in trials if t not in full]
  kept = sorted(full + (partial if include_partial else []))
  sizes = sorted({r["labeled"] for t in kept for r in by_t[t]})
  col = {n: i for i, n in enumerate(sizes)}
  acc = np.full((len(kept), len(sizes)), np.nan)
  sel = np.full((len(kept), len(sizes)), np.nan)
  comp = np.full((len(kept), len(sizes)), np.nan)  # nan: not recorded (runs before it was)
  for i, t in enumerate(kept):
    for r in by_t[t]:
      acc[i, col[r["labeled"]]] = r["test_acc"]
      sel[i, col[r["labeled"]]] = r.get("select_s", 0.0)
      comp[i, col[r["labeled"]]] = r.get("select_compile_s",
                                         np.nan if r.get("scored") else 0.0)
  config = _saved_config(workdir)
  strategy = ((config or {}).get("al") or {}).get("strategy")
  return {"name": workdir.name, "path": str(workdir), "trials": kept, "complete": full,
          "partial": partial, "expected_cycles": expected, "labeled": sizes, "acc": acc,
          "select_s": sel, "select_compile_s": comp, "errors": len(errors), "config": config,
          "strategy": strategy if isinstance(strategy, str) else None}


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


def paired(a: dict, b: dict, trials=None) -> dict:
  """AUC(a) - AUC(b) of two runs (`load_run` dicts) over the trials both hold
  (or over `trials`): mean, Student-t 95 % interval, pairs, per-trial values.

  Trial t of every run starts from the same labeled set and weights, so the
  per-trial differences are paired. `significant`: the interval excludes 0.
  """
  common = sorted(set(a["trials"]) & set(b["trials"])) if trials is None else list(trials)
  ia = [a["trials"].index(t) for t in common]
  ib = [b["trials"].index(t) for t in common]
  d = auc(a["labeled"], a["acc"][ia]) - auc(b["labeled"], b["acc"][ib])
  m, lo, hi = paired_ci(d)
  return {"diff": m, "lo": lo, "hi": hi, "pairs": len(common), "per_trial": d.tolist(),
          "significant": bool(np.isfinite(lo) and (lo > 0 or hi < 0))}


def first_trials(run: dict, n: int) -> dict:
  """`run` (a `load_run` dict) restricted to its trials numbered below `n`."""
  keep = [i for i, t in enumerate(run["trials"]) if t < n]
  return {**run, "trials": [run["trials"][i] for i in keep], "acc": run["acc"][keep],
          "select_s": run["select_s"][keep]}


def std_over_trials(x: np.ndarray) -> np.ndarray:
  """Sample standard deviation over trials (ddof=1, as the t-intervals); 0 for one trial.

  NaN cells (sizes a partial trial did not reach) are left out.
  """
  x = np.asarray(x, float)
  if not np.isnan(x).any():
    return x.std(0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1:])
  n = np.sum(~np.isnan(x), axis=0)
  with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # sizes with one trial: 0 below
    sd = np.nanstd(x, 0, ddof=1)
  return np.where(n > 1, sd, 0.0)


def _nanmean(x: np.ndarray) -> list:
  if not x.size:
    return []
  if not np.isnan(x).any():
    return x.mean(0).tolist()
  with np.errstate(invalid="ignore"):
    return [float(v) for v in np.nanmean(x, 0)]


def run_summary(config, records: list[dict], seconds: float) -> dict:
  """summary.json of one run: accuracy per trial and cycle, and the mean and
  sample std (ddof 1, 0 for one trial) over its complete trials."""
  cyc = [r for r in records if r["kind"] == "cycle"]
  trials = sorted({r["trial"] for r in cyc})
  acc = [[r["test_acc"] for r in cyc if r["trial"] == t] for t in trials]
  sizes = [r["labeled"] for r in cyc if r["trial"] == trials[0]] if trials else []
  full = [a for a in acc if len(a) == len(sizes)]
  full = np.asarray(full, float) if full else np.zeros((0, len(sizes)))
  return {
      "strategy": config.al.strategy, "seed": config.seed, "labeled": sizes,
      "test_acc": acc, "mean": full.mean(0).tolist() if len(full) else [],
      "std": std_over_trials(full).tolist() if len(full) else [], "trials": len(acc),
      "seconds": seconds,
  }


def summarize(runs: list[dict], baseline: str = "random") -> dict:
  """Per-strategy mean/std per size, AUC, and paired differences against `baseline`.

  AUC and the paired differences use complete trials only. `notes` says
  why a strategy has no paired row (or why there is no paired table).
  """
  names = [r["name"] for r in runs]
  out = {"strategies": {}, "baseline": baseline if baseline in names else None, "notes": []}
  base = next((r for r in runs if r["name"] == baseline), None)
  if base is None:
    out["notes"].append(f"no paired table: the baseline {baseline!r} is not among the runs "
                        f"({', '.join(names)}); pass --baseline NAME")
  elif not base["complete"]:
    out["notes"].append(f"no paired table: the baseline {baseline!r} has no complete trial")
  for r in runs:
    full = [i for i, t in enumerate(r["trials"]) if t in r["complete"]]
    a = auc(r["labeled"], r["acc"][full]) if full else np.array([])
    s = {"labeled": r["labeled"], "trials": [r["trials"][i] for i in full],
         "partial": r["partial"], "partial_included": [t for t in r["trials"]
                                                       if t not in r["complete"]],
         "mean": _nanmean(r["acc"]),
         "std": std_over_trials(r["acc"]).tolist() if r["acc"].size else [],
         "auc_mean": float(a.mean()) if len(a) else math.nan,
         "auc_std": float(std_over_trials(a[:, None])[0]) if len(a) else math.nan,
         "select_s_mean": _nanmean(r["select_s"]),
         "select_compile_s_mean": _nanmean(r["select_compile_s"])}
    if base is not None and r is not base and base["complete"]:
      common = sorted(set(base["complete"]) & set(r["complete"]))
      mismatch = setup_mismatch(r, base)
      if mismatch:
        out["notes"].append(f"{r['name']}: no paired row, {mismatch} from {baseline}'s; "
                            "trial t of the two runs did not start from the same point")
      elif base["labeled"] != r["labeled"]:
        out["notes"].append(f"{r['name']}: no paired row, its labeled sizes {r['labeled']} "
                            f"differ from {baseline}'s {base['labeled']}")
      elif not common:
        out["notes"].append(f"{r['name']}: no paired row, no complete trial in common with "
                            f"{baseline}")
      else:
        p = paired(r, base, common)
        s["vs_baseline"] = {"auc_diff": p["diff"], "ci95": [p["lo"], p["hi"]],
                            "pairs": p["pairs"]}
    out["strategies"][r["name"]] = s
  ref = base or (runs[0] if runs else None)
  for r in runs:  # one table, one setup: say which rows do not share it
    if ref is not None and r is not ref and (base is None or not base["complete"]):
      mismatch = setup_mismatch(r, ref)
      if mismatch and r.get("config") is not None and ref.get("config") is not None:
        out["notes"].append(f"{r['name']}: {mismatch} from {ref['name']}'s, so its row is "
                            "not comparable with that one")
  return out


def _fmt(m, s, n: int = 2):
  """Mean ± sample std; the mean alone over one trial (its std is no measure)."""
  return f"{m:.2f}" if n < 2 else f"{m:.2f} ± {s:.2f}"


def _ci_cell(lo: float, hi: float, pairs: int) -> str:
  """The 95 % interval, or why there is none (a NaN is never printed as one)."""
  if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
    return f"none ({pairs} pair{'s' if pairs != 1 else ''}; an interval needs 2+)"
  return f"[{lo:+.2f}, {hi:+.2f}]"


def _isnan(x) -> bool:
  return x is None or (isinstance(x, float) and math.isnan(x))  # report.json holds NaN as null


def _trials_cell(s: dict) -> str:
  n = str(len(s["trials"]))
  if s["partial_included"]:
    return n + f" (+{len(s['partial_included'])} partial*)"
  if s["partial"]:
    return n + f" ({len(s['partial'])} partial left out)"
  return n


def to_markdown(summary: dict) -> str:
  strats = summary["strategies"]
  sizes = sorted({n for s in strats.values() for n in s["labeled"]})
  n = [len(s["trials"]) + len(s.get("partial_included", [])) for s in strats.values()]
  what = ("of the one trial" if max(n, default=0) < 2 else "mean ± sample std over trials"
          + (" (the mean alone for one)" if min(n) < 2 else ""))
  lines = ["# Active-learning comparison" if len(strats) > 1 else "# Active-learning run", "",
           f"Test accuracy (%), {what}, by labeled-set size "
           "(columns are sizes; a blank cell is a size that strategy never reached).", "",
           "| strategy | trials | " + " | ".join(map(str, sizes)) + " | AUC |",
           "| --- | --- | " + " | ".join("---" for _ in sizes) + " | --- |"]
  for name, s in strats.items():
    at = {n: (m, sd) for n, m, sd in zip(s["labeled"], s["mean"], s["std"])}
    n_trials = len(s["trials"]) + len(s.get("partial_included", []))
    cells = [_fmt(*at[n], n_trials) if n in at and not _isnan(at[n][0]) else "" for n in sizes]
    auc_cell = ("" if _isnan(s["auc_mean"])
                else _fmt(s["auc_mean"], s["auc_std"], len(s["trials"])))
    lines.append(f"| {name} | {_trials_cell(s)} | " + " | ".join(cells) + f" | {auc_cell} |")
  if any(s["partial_included"] for s in strats.values()):
    lines += ["", "\\* partial trials are included in the size columns (--include-partial), "
              "not in the AUC or the paired differences."]
  paired = [(n, s["vs_baseline"]) for n, s in strats.items() if "vs_baseline" in s]
  if summary["baseline"] and paired:
    lines += ["", f"Paired AUC difference against `{summary['baseline']}` "
              "(same trial = same initial set and weights), 95 % t-interval:", "",
              "| strategy | AUC diff | 95 % CI | pairs |", "| --- | --- | --- | --- |"]
    for name, v in paired:
      lines.append(f"| {name} | {v['auc_diff']:+.2f} | "
                   f"{_ci_cell(*v['ci95'], v['pairs'])} | {v['pairs']} |")
  if summary.get("notes"):
    lines += ["", "Notes:", ""] + [f"- {n}" for n in summary["notes"]]
  lines += ["", "AUC: area under the learning curve divided by the labeled-size range "
            "(the mean accuracy over the budget axis), over complete trials only.", "",
            "![learning curves](learning_curves.png)", "", "![selection time](selection_time.png)", ""]
  return "\n".join(lines)


def to_csv(summary: dict) -> str:
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(["strategy", "labeled", "mean_acc", "std_acc", "trials", "select_s"])
  for name, s in summary["strategies"].items():
    for i, n in enumerate(s["labeled"]):
      w.writerow([name, n, f"{s['mean'][i]:.4f}", f"{s['std'][i]:.4f}", len(s["trials"]),
                  f"{s['select_s_mean'][i]:.4f}"])  # nan where no trial reached the size
  return buf.getvalue()


def _png(fig, dpi: int) -> bytes:
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi)
  return buf.getvalue()


def selection_series(summary: dict) -> dict:
  """What selection_time.png plots, per strategy: every cycle that selects
  (1 .. cycles - 1; the last trains and tests only), its selection seconds
  without compilation (`steady_s`) and the compilation apart (`compile_s`).

  Runs recorded before `select_compile_s` existed have no compile time: their
  first cycle, which pays for it, is left out (`compile_s` None).
  """
  out = {}
  for name, s in summary["strategies"].items():
    if not s["labeled"]:
      continue
    k = len(s["labeled"]) - 1
    sel = np.array(s["select_s_mean"][:k], dtype=float)
    comp = np.array(s.get("select_compile_s_mean", [math.nan] * (k + 1))[:k], dtype=float)
    cycles = np.arange(1, k + 1)
    if k and np.all(np.isfinite(comp)):
      steady, compile_s = np.maximum(sel - comp, 0.0), comp
    else:
      cycles, steady, compile_s = cycles[1:], sel[1:], None
    # A log axis cannot show 0: such points (an instant strategy) sit at 1 us.
    out[name] = {"cycles": cycles.tolist(), "steady_s": np.maximum(steady, 1e-6).tolist(),
                 "compile_s": None if compile_s is None else np.maximum(compile_s, 1e-6).tolist(),
                 "cycles_total": k + 1}
  return out


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
  files.write_output(paths[-1], _png(fig, 120))
  plt.close(fig)

  from matplotlib.ticker import MaxNLocator

  fig, ax = plt.subplots(figsize=(7.2, 4.0))
  series = selection_series(summary)
  last = max((se["cycles_total"] for se in series.values()), default=1)
  for i, (name, se) in enumerate(series.items()):
    ax.plot(se["cycles"], np.array(se["steady_s"]) * 1e3, marker="o", ms=3, label=name,
            **style(i))
    if se["compile_s"] is not None:
      ax.plot(se["cycles"], np.array(se["compile_s"]) * 1e3, marker="x", ms=4, lw=0.6,
              alpha=0.6, **{**style(i), "linestyle": ":"})
  ax.set_xlabel(f"cycle (cycle {last}, the last, selects nothing)")
  ax.set_ylabel("selection time (ms, incl. features)")
  ax.set_title("Selection time without compilation (o); its compilation (x, dotted)",
               fontsize=9)
  ax.set_xlim(0.5, last + 0.5)
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  paths.append(out / "selection_time.png")
  files.write_output(paths[-1], _png(fig, 120))
  plt.close(fig)
  return paths


def _legacy_report(path: Path) -> bool:
  """Whether `path` is one of the files of a report written before jax-al kept
  a ledger of its outputs: a name in OUTPUTS beside a report.json of ours."""
  doc = json.loads((Path(path).parent / "report.json").read_text())
  return Path(path).name in OUTPUTS and isinstance(doc, dict) and {
      "strategies", "baseline", "notes"} <= set(doc)


def _disagreement(folder: str, al: dict) -> str | None:
  """How a run's al.* contradicts its folder's name, when the name is a preset
  or strategy (e.g. "al.strategy=random" for a folder `margin`); None when it
  agrees or names neither."""
  from jax_al import presets, strategies
  if folder in presets.PRESETS:
    wants = presets.PRESETS[folder]
  elif folder in strategies.names():
    wants = {"strategy": folder}
  else:
    return None
  off = [f"al.{k}={al.get(k)}" for k, v in wants.items() if al.get(k) != v]
  return ", ".join(off) or None


def name_runs(runs: list[dict], say=None) -> list[dict]:
  """Gives every run a unique row name.

  A single run is named by its strategy (al.strategy). In a comparison a row
  is its folder's name, which is what `compare` names a strategy's or
  preset's run; a folder named after a preset or strategy that its run's
  config contradicts (a `margin` folder holding a random run) is named
  `folder [al.strategy=random]` and `say` is told, so a row never claims a
  strategy its run did not use. Folders sharing a name are told apart by the
  folder above.
  """
  if len(runs) == 1 and runs[0].get("strategy"):
    return [{**runs[0], "name": runs[0]["strategy"]}]
  named = []
  for r in runs:
    al = (r.get("config") or {}).get("al")
    off = _disagreement(r["name"], al) if isinstance(al, dict) else None
    if off:
      say and say(f"{r['path']}: the folder is named {r['name']!r} but its run has {off}; "
                  f"its row is {r['name']} [{off}]")
      r = {**r, "name": f"{r['name']} [{off}]"}
    named.append(r)
  counts = {}
  for r in named:
    counts[r["name"]] = counts.get(r["name"], 0) + 1
  out = []
  for r in named:
    if counts[r["name"]] > 1:
      p = Path(r["path"])
      r = {**r, "name": f"{p.parent.name}/{r['name']}"}
    out.append(r)
  return out


def check_out(out, flag: str = "--out") -> None:
  """Raises OutputError unless every report file may be written into `out`."""
  if Path(out).exists() and not Path(out).is_dir():
    raise files.OutputError(f"{flag} {out}: is a file, not a folder. Fix: pass a folder "
                            "for the report (one that does not exist is created)")
  for name in OUTPUTS:
    files.check_output(Path(out) / name, flag, legacy=_legacy_report)


def make_report(paths, out, baseline: str = "random", include_partial: bool = False,
                warn=None) -> dict:
  """Writes the report for the runs under `paths` into `out`; returns the summary.

  `warn(message)` is told about partial trials left out and runs mixed into
  a comparison root; the same lines end up in the summary's `notes`.
  Raises DataError (one line naming the file) for inputs that are no runs,
  garbled metrics, runs with no finished trial, or an unwritable `out`.
  """
  out = Path(out)
  check_out(out)  # before anything is read or written
  notes = []
  say = lambda m: (notes.append(m), warn and warn(m))
  runs = name_runs([load_run(p, include_partial) for p in find_runs(paths, say)], say)
  for r in runs:
    if r["partial"]:
      what = "included, marked" if include_partial else "left out (--include-partial shows them)"
      say(f"{r['name']}: {len(r['partial'])} partial trial(s) {r['partial']} of "
          f"{r['expected_cycles']} cycles, {what}")
  empty = [r for r in runs if not r["complete"] and not (include_partial and r["trials"])]
  if len(empty) == len(runs):
    r = empty[0]
    why = (f"{r['errors']} error record(s) and no finished trial" if r["errors"]
           else "no finished trial")
    raise DataError(str(Path(r["path"]) / "metrics.jsonl"),
                    f"holds {why}" + (f" (nor do {len(empty) - 1} other run(s))"
                                      if len(empty) > 1 else ""),
                    "finish the run (rerun its command to resume), or pass "
                    "--include-partial to report what it has")
  for r in empty:
    say(f"{r['name']}: no finished trial, shown without values")
  summary = summarize(runs, baseline)
  summary["notes"] = notes + summary["notes"]
  for n in summary["notes"][len(notes):]:
    warn and warn(n)
  try:
    out.mkdir(parents=True, exist_ok=True)
    files.write_output_json(out / "report.json", summary)
    files.write_output(out / "report.md", to_markdown(summary))
    files.write_output(out / "report.csv", to_csv(summary))
    plot(summary, out)
  except OSError as e:
    raise DataError(str(out), f"cannot be written ({e.strerror or e})",
                    "pass a writable --out folder") from None
  return summary


def main(argv=None) -> None:
  import sys

  p = argparse.ArgumentParser(prog=usage.argparse_prog("python -m jax_al.report"),
                              description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="+", help="run workdirs or folders of them")
  p.add_argument("--out", required=True, help="output folder")
  p.add_argument("--baseline", default="random", help="strategy for paired differences")
  p.add_argument("--include-partial", action="store_true",
                 help="include unfinished trials in the size columns (marked)")
  a = p.parse_args(argv)
  warn = lambda m: print(f"warning: {m}", file=sys.stderr)
  try:
    s = make_report(a.runs, a.out, a.baseline, a.include_partial, warn=warn)
  except JaxALError as e:
    raise SystemExit(f"error: {e}") from None
  print(to_markdown(s))
  print(f"wrote {', '.join(OUTPUTS)} to {a.out}")


if __name__ == "__main__":
  main()
