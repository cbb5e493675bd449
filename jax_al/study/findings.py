"""The study's answers: paired statistics over the jobs, findings.md/json, plots.

A job is one trial (its own seed) of one run, or with `study.trials_per_job`
= k > 1 k trials of one job seed. A replicate is (job seed, trial), labelled
by the seed alone when k = 1 and "seed:trial" otherwise. `combine` stacks the
replicates of a run into a `report.load_run`-shaped dict whose trial labels
are the replicates' labels, so `report.paired` pairs two runs by replicate,
i.e. by initial labeled set and weights. Only complete trials count.
"""

from __future__ import annotations

import datetime
import json
import math
import platform
from pathlib import Path

import numpy as np

from jax_al import files, report


def combine(name: str, dirs: dict) -> dict:
  """{label: workdir or (workdir, trial)} of one run's replicates, in order ->
  one run dict with trials = the labels of the complete replicates.

  A bare workdir means its trial 0 (a one-trial job).
  """
  rows, seeds, sizes, sel = [], [], None, []
  missing, loaded = [], {}
  for seed, d in dirs.items():
    d, trial = d if isinstance(d, tuple) else (d, 0)
    if not (Path(d) / "metrics.jsonl").is_file():
      missing.append(seed)
      continue
    if str(d) not in loaded:  # a grouped job's trials share one workdir
      loaded[str(d)] = report.load_run(d)
    r = loaded[str(d)]
    if trial not in r["complete"]:
      missing.append(seed)
      continue
    i = r["trials"].index(trial)
    if sizes is None:
      sizes = r["labeled"]
    if r["labeled"] != sizes or not np.isfinite(r["acc"][i]).all():
      missing.append(seed)
      continue
    rows.append(r["acc"][i])
    sel.append(r["select_s"][i])
    seeds.append(seed)
  n = len(sizes or [])
  return {"name": name, "trials": seeds, "complete": list(seeds), "partial": [],
          "missing": missing, "labeled": sizes or [],
          "acc": np.asarray(rows, float).reshape(len(rows), n),
          "select_s": np.asarray(sel, float).reshape(len(sel), n)}


def auc_of(run: dict) -> np.ndarray:
  if not len(run["trials"]):
    return np.array([])
  return report.auc(run["labeled"], run["acc"])


def row(run: dict) -> dict:
  a = auc_of(run)
  return {"name": run["name"], "seeds": run["trials"], "auc": float(a.mean()) if len(a) else math.nan,
          "auc_std": float(report.std_over_trials(a)) if len(a) > 1 else math.nan,
          "final": float(run["acc"][:, -1].mean()) if len(a) else math.nan,
          "per_seed_auc": a.tolist()}


def pair(a: dict, b: dict) -> dict:
  """report.paired over the seeds both runs finished, with a verdict."""
  common = sorted(set(a["trials"]) & set(b["trials"]))
  if not common or a["labeled"] != b["labeled"]:
    return {"diff": math.nan, "lo": math.nan, "hi": math.nan, "pairs": len(common),
            "per_trial": [], "significant": False, "seeds": common,
            "verdict": "no common finished seed"}
  p = report.paired(a, b, common)
  p["seeds"] = common
  p["verdict"] = verdict(p)
  return p


def verdict(p: dict) -> str:
  if p.get("per_trial") and all(d == 0 for d in p["per_trial"]):
    return "identical in every seed"
  if not np.isfinite(p["lo"]):
    return "one pair: no interval"
  if p["lo"] > 0:
    return "better"
  if p["hi"] < 0:
    return "worse"
  return "level (interval covers 0)"


def _ci(p: dict) -> str:
  if not np.isfinite(p["diff"]):
    return "n/a"
  if not np.isfinite(p["lo"]):
    return f"{p['diff']:+.2f} (1 pair)"
  return f"{p['diff']:+.2f} [{p['lo']:+.2f}, {p['hi']:+.2f}]"


def _mean_share(steps, key, name):
  v = [s[key][name] for s in steps if name in s[key]]
  return float(np.mean(v)) if v else math.nan


def compute(st, best: str | None, choice: dict, analysis: dict, runtime: dict) -> dict:
  """findings.json: every number the findings state, from the jobs' files."""
  sel = {n: combine(n, st.replicate_dirs(n, "select"))
         for n, r in st.runs.items() if r.phase == "select"}
  rep_runs = st.phase2_runs(best)
  rep = {n: combine(n, st.replicate_dirs(n, "report")) for n in rep_runs}
  base = sel["u_batch"]
  steps = analysis.get("steps", [])
  alias = lambda n: st.aliases.get(n, n)
  f = {"tool": "jax-al study", "format": 1, "config": st.config_spec, "mode": st.mode,
       "executor": st.executor, "select_seeds": st.select_seeds, "report_seeds": st.report_seeds,
       "same_seeds": sorted(set(st.select_seeds) & set(st.report_seeds)),
       "sizes": {"initial": st.base.al.initial, "budget": st.base.al.budget,
                 "cycles": st.base.al.cycles, "epochs": st.base.train.epochs,
                 "subset": st.base.al.subset, "model": st.base.model.name,
                 "width": st.base.model.width, "dataset": st.base.data.source +
                 (f":{st.base.data.name}" if st.base.data.name else "")},
       "study_fields": json.loads(json.dumps(st.fields.to_dict(), default=str)),
       "runs": {n: {"what": r.what, "questions": list(r.questions), "al": r.al,
                    "preset": r.preset, "phase": r.phase} for n, r in st.runs.items()},
       "aliases": st.aliases, "runtime": runtime}
  if st.k > 1:  # replicates = (job seed, trial); k = 1 findings keep their old keys
    f["trials_per_job"] = st.k
    f["select_replicates"] = list(st.replicate_dirs("u_batch", "select"))
    f["report_replicates"] = list(st.replicate_dirs("u_batch", "report"))
  f["missing"] = {n: r["missing"] for n, r in {**sel, **{f"{k} (report)": v for k, v in
                                                         rep.items()}}.items() if r["missing"]}
  # ---- q1
  q1 = []
  u_row = row(base)
  lam0_share = [s["lam0_vs_u_only"].get(nm) for s in steps for nm in st.fields.norms
                if nm in s["lam0_vs_u_only"]]
  for nm in st.fields.norms:
    q1.append({"norm": nm, "lam": 0.0, "run": "u_batch", "auc": u_row["auc"],
               "vs_u_only": pair(base, base) | {"diff": 0.0},
               "share_kept": float(np.mean([s["lam0_vs_u_only"][nm] for s in steps]))
               if steps else math.nan})
    for lam in st.fields.lams:
      if lam == 0:
        continue
      from jax_al.study.grid import sweep_name
      n = alias(sweep_name(nm, lam))
      q1.append({"norm": nm, "lam": float(lam), "run": n, "auc": row(sel[n])["auc"],
                 "vs_u_only": pair(sel[n], base),
                 "share_kept": _mean_share(steps, "share_vs_lam0", n)})
  for r in q1:
    r["share_changed"] = 1 - r["share_kept"] if np.isfinite(r["share_kept"]) else math.nan
  f["q1"] = {"scales": analysis.get("scales", {}), "sweep": q1,
             "lam0_shares_with_u_only": float(np.mean(lam0_share)) if lam0_share else math.nan,
             "replay_reproduces_runs": all(s["own_equals_run"] for s in steps
                                           if s["own_equals_run"] is not None) if steps else None,
             "steps": len(steps)}
  best_q1 = max((r for r in q1 if r["lam"] > 0), key=lambda r: r["auc"]
                if np.isfinite(r["auc"]) else -1e9, default=None)
  f["q1"]["best"] = best_q1 and {"norm": best_q1["norm"], "lam": best_q1["lam"],
                                 "vs_u_only": best_q1["vs_u_only"]}
  # ---- q2
  q2_names = ["u_batch", "u_global", "users", "proposal"]
  f["q2"] = {"rows": [row(sel[alias(n)]) | {"run": n} for n in q2_names],
             "vs_u_batch": {n: pair(sel[alias(n)], base) for n in q2_names[1:]},
             "proposal_vs_u_global": pair(sel[alias("proposal")], sel["u_global"]),
             "proposal_vs_users": pair(sel[alias("proposal")], sel["users"]),
             "users_equals_u_only": bool(
                 len(sel["users"]["trials"]) and sel["users"]["trials"] == base["trials"]
                 and np.array_equal(sel["users"]["acc"], base["acc"]))}
  # ---- q3
  from jax_al.study.grid import sweep_name
  sn = st.fields.sign_norm
  signs = []
  for lam in st.fields.sign_lams:
    for sign in (1, -1):
      n = alias(sweep_name(sn, lam, sign))
      signs.append({"sign": sign, "lam": float(lam), "run": n, "auc": row(sel[n])["auc"],
                    "vs_u_only": pair(sel[n], base),
                    "share_kept_vs_u_only": _mean_share(steps, "share_vs_u_only", n)})
  f["q3"] = {"norm": sn, "signs": signs,
             "witness": row(sel["witness"]) | {"vs_u_only": pair(sel["witness"], base)},
             "greedy": row(sel["greedy"]) | {"vs_u_only": pair(sel["greedy"], base),
                                             "vs_u_global": pair(sel["greedy"], sel["u_global"])},
             "pick_profile": analysis.get("pca", {}).get("profile", {}),
             "pca_step": {k: v for k, v in analysis.get("pca", {}).items() if k != "profile"}}
  # ---- q4
  f["q4"] = {"candidates": choice.get("aucs", {}), "best": best,
             "chosen_on_seeds": st.select_seeds, "reported_on_seeds": st.report_seeds,
             "chosen_and_reported_on_same_seeds": bool(set(st.select_seeds) & set(st.report_seeds)),
             "table": [row(rep[n]) for n in rep],
             "best_vs": {n: pair(rep[best], rep[n]) for n in rep if n != best} if best else {},
             "vs_random": {n: pair(rep[n], rep["random"]) for n in rep if n != "random"}
             if "random" in rep else {}}
  f["_runs"] = {"select": sel, "report": rep}  # for the plots; dropped before writing
  return f


# ------------------------------------------------------------------ markdown


def _t(rows, head):
  lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
  lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
  return lines


def _pct(x):
  return "n/a" if not np.isfinite(x) else f"{100 * x:.0f} %"


def markdown(f: dict) -> str:
  s = f["sizes"]
  rt = f["runtime"]
  n_sel = len(f.get("select_replicates", f["select_seeds"]))
  n_rep = len(f.get("report_replicates", f["report_seeds"]))
  L = [f"# Study: uncertainty + MMD on `{f['config']}`", "",
       f"Generated by `python -m jax_al.study` ({f['mode']} mode, executor {f['executor']}) on "
       f"{rt.get('date', '?')}, {rt.get('machine', '?')}; wall time of this command "
       f"{rt.get('command_s', 0):.0f} s, {rt.get('jobs_run', 0)} jobs run now, "
       f"{rt.get('jobs_skipped', 0)} found finished; job time summed over all finished jobs "
       f"{rt.get('job_seconds_total', 0):.0f} s.", ""]
  if f["mode"] == "ci":
    L += ["**CI mode: tiny sizes for tests. These numbers are not evidence.**", ""]
  L += [f"Setting: {s['dataset']}, model {s['model']} (width {s['width']:g}), {s['initial']} "
        f"initial labels + {s['budget']} per cycle, {s['cycles']} cycles, {s['epochs']} epochs, "
        f"subset {s['subset'] or 'whole pool'}. Every number is a paired difference in AUC "
        "(area under the learning curve: mean test accuracy in % over the budget axis) with a "
        "95 % Student-t interval over seeds; seed s of every run starts from the same labeled "
        "set and weights. Questions 1-3 run on the selection seeds "
        f"{f['select_seeds']}; question 4 on the report seeds {f['report_seeds']}. "
        + (f"Each job trained {f['trials_per_job']} trials as one vmapped program: a "
           "replicate is (job seed, trial), labelled seed:trial, and replicates pair across "
           f"runs; {n_sel} selection and {n_rep} report replicates. " if "trials_per_job" in f
           else "") +
        f"With {n_sel} and {n_rep} {'replicates' if 'trials_per_job' in f else 'seeds'} the "
        "intervals are wide: a verdict says better or "
        "worse only when the interval excludes 0, and every answer holds for this config "
        "(dataset, model, budgets) only.", ""]
  if f["missing"]:
    L += ["Unfinished jobs left out: " + "; ".join(f"{k}: seeds {v}" for k, v in
                                                   f["missing"].items()), ""]
  # q1
  q = f["q1"]
  sc = q["scales"]
  L += ["## 1. Scale: tune lam, or normalise?", ""]
  if sc:
    L += [f"Raw terms of the users' method at one selection step (seed {sc['seed']}, cycle "
          f"{sc['cycle']}, {sc['labeled']} labeled, {sc['candidates']} candidates): uncertainty u "
          f"median {sc['u_median']:.3g}, the {sc['budget']}-th largest {sc['u_cut']:.3g}, max "
          f"{sc['u_max']:.3g}; MMD term t in [{sc['t_min']:.3g}, {sc['t_max']:.3g}] (range "
          f"{sc['t_range']:.3g}, kernel sigma {sc['sigma']:.3g}).", ""]
  rows = []
  for r in q["sweep"]:
    rows.append([r["norm"], f"{r['lam']:g}", r["run"], f"{r['auc']:.2f}",
                 "(reference)" if r["lam"] == 0 else _ci(r["vs_u_only"]),
                 "" if r["lam"] == 0 else r["vs_u_only"]["verdict"], _pct(r["share_changed"])])
  L += _t(rows, ["norm", "lam", "run", "AUC", "vs uncertainty only", "verdict",
                 "picks the MMD term changes"])
  L += ["", f"Picks changed: share of the picks with (norm, lam) that differ from the picks with "
        f"(norm, lam = 0) in the same rebuilt selection step, mean over {q['steps']} steps "
        "(replayed steps of the uncertainty-only run, every variant with the step's own key). "
        f"lam = 0 shares {_pct(q['lam0_shares_with_u_only'])} of its picks with uncertainty only"
        + ("; the replays reproduce the runs' own picks." if q["replay_reproduces_runs"] else
           "; WARNING: a replay did not reproduce its run's picks." if
           q["replay_reproduces_runs"] is False else "."), ""]
  if q["best"]:
    b = q["best"]
    text = (f"Answer (data): the best (norm, lam) by mean AUC is {b['norm']}, lam {b['lam']:g}: "
            f"{_ci(b['vs_u_only'])} against uncertainty only ({b['vs_u_only']['verdict']}).")
    raw = [r for r in q["sweep"] if r["norm"] == "none" and r["lam"] > 0]
    if raw:
      text += (" With raw scores the MMD term changes "
               + ", ".join(f"{_pct(r['share_changed'])} of the picks at lam {r['lam']:g}"
                           for r in raw) + ".")
    better = [f"{r['norm']} lam {r['lam']:g}" for r in q["sweep"]
              if r["lam"] > 0 and r["vs_u_only"]["verdict"] == "better"]
    worse = [f"{r['norm']} lam {r['lam']:g}" for r in q["sweep"]
             if r["lam"] > 0 and r["vs_u_only"]["verdict"] == "worse"]
    text += (" Significantly better than uncertainty only: " + (", ".join(better) or "none")
             + "; significantly worse: " + (", ".join(worse) or "none") + ".")
    L += [text, ""]
  # q2
  q = f["q2"]
  L += ["## 2. Scope: per-batch or whole-pool clustering, and the proposal", ""]
  rows = [[r["run"], f"{r['auc']:.2f}", "(reference)" if r["run"] == "u_batch" else
           _ci(q["vs_u_batch"][r["run"]]), "" if r["run"] == "u_batch" else
           q["vs_u_batch"][r["run"]]["verdict"]] for r in q["rows"]]
  L += _t(rows, ["run", "AUC", "vs u_batch (per-batch uncertainty only)", "verdict"])
  L += ["", f"The proposal (global uncertainty + per-batch MMD, {f['q3']['norm']}) against "
        f"global uncertainty alone: {_ci(q['proposal_vs_u_global'])} "
        f"({q['proposal_vs_u_global']['verdict']}); against the users' method: "
        f"{_ci(q['proposal_vs_users'])} ({q['proposal_vs_users']['verdict']}). The users' "
        "method has the accuracy of uncertainty only in every seed and cycle: "
        f"{'yes' if q['users_equals_u_only'] else 'no'}.", ""]
  # q3
  q = f["q3"]
  L += ["## 3. Sign: large or small MMD, and the set-level variants", ""]
  rows = [[("large (+1)" if r["sign"] > 0 else "small (-1)"), f"{r['lam']:g}", r["run"],
           f"{r['auc']:.2f}", _ci(r["vs_u_only"]), r["vs_u_only"]["verdict"],
           _pct(1 - r["share_kept_vs_u_only"]) if np.isfinite(r["share_kept_vs_u_only"])
           else "n/a"] for r in q["signs"]]
  rows.append(["witness", "", "witness", f"{q['witness']['auc']:.2f}",
               _ci(q["witness"]["vs_u_only"]), q["witness"]["vs_u_only"]["verdict"], ""])
  rows.append(["greedy set-level", "", "greedy", f"{q['greedy']['auc']:.2f}",
               _ci(q["greedy"]["vs_u_only"]), q["greedy"]["vs_u_only"]["verdict"], ""])
  L += _t(rows, ["MMD", "lam", "run", "AUC", "vs uncertainty only", "verdict",
                 "picks changed vs uncertainty only"])
  L += ["", f"The greedy batch against its own uncertainty term (global uncertainty alone): "
        f"{_ci(q['greedy']['vs_u_global'])} ({q['greedy']['vs_u_global']['verdict']}).", ""]
  if q["pick_profile"]:
    ps = q["pca_step"]
    L += [f"Where the picks sit in one selection step (seed {ps.get('seed')}, cycle "
          f"{ps.get('cycle')}, {ps.get('labeled')} labeled): distance to the nearest labeled "
          "point relative to the typical candidate, mean percentile of pool density "
          f"(low = outliers), classes covered (of {ps.get('num_classes')}).", ""]
    L += _t([[n, f"x{p['dist_labeled']:.2f}", f"{p['density_pct']:.0f}", p["classes"]]
             for n, p in q["pick_profile"].items()],
            ["variant", "distance to labeled", "density percentile", "classes"])
    L += [""]
  # q4
  q = f["q4"]
  L += ["## 4. The best variant against the baselines", ""]
  cands = sorted(q["candidates"].items(), key=lambda kv: -kv[1] if np.isfinite(kv[1]) else 1e9)
  L += [f"Chosen on the selection seeds {q['chosen_on_seeds']}: **{q['best']}** (highest mean "
        f"AUC of {len(cands)} variants; top 3: "
        + ", ".join(f"{n} {a:.2f}" for n, a in cands[:3]) + f"). Reported below on the report "
        f"seeds {q['reported_on_seeds']}" + (
            ", which are NOT fresh: the user set the report seeds to overlap the selection "
            f"seeds {f['same_seeds']} (--study.report_offset), so the best variant's margin is "
            "optimistic." if q["chosen_and_reported_on_same_seeds"] else
            ", which it was not chosen on.") + "", ""]
  rows = []
  for r in q["table"]:
    vs = q["best_vs"].get(r["name"])
    rows.append([r["name"], len(r["seeds"]), f"{r['auc']:.2f}" + (
        f" ± {r['auc_std']:.2f}" if np.isfinite(r["auc_std"]) else ""),
        f"{r['final']:.2f}", "(best)" if vs is None else _ci(vs),
        "" if vs is None else vs["verdict"],
        _ci(q["vs_random"][r["name"]]) if r["name"] in q["vs_random"] else ""])
  L += _t(rows, ["run", "seeds", "AUC ± sd", "final acc", f"{q['best']} minus this run",
                 "verdict", "this run minus random"])
  beaten = [n for n, v in q["best_vs"].items() if v["verdict"] == "better"]
  lost = [n for n, v in q["best_vs"].items() if v["verdict"] == "worse"]
  level = [n for n, v in q["best_vs"].items() if v["verdict"] not in ("better", "worse")]
  L += ["", f"Answer (data): on fresh seeds {q['best']} is significantly better than "
        f"{', '.join(beaten) or 'none'}; significantly worse than {', '.join(lost) or 'none'}; "
        f"level with {', '.join(level) or 'none'}.", "",
        "Plots: [learning curves](learning_curves.png), [paired AUC differences]"
        "(paired_auc.png), [score scales](score_scales.png), [PCA of one step](pca_step.png).",
        ""]
  return "\n".join(L)


# ------------------------------------------------------------------- plots


def plots(f: dict, analysis_npz: Path, out: Path) -> list[Path]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from jax_al.scores import normalize as norm_lib

  sel, rep = f["_runs"]["select"], f["_runs"]["report"]
  paths = []

  def curves(ax, runs, title):
    for r in runs:
      if not len(r["trials"]):
        continue
      x, acc = np.asarray(r["labeled"]), r["acc"]
      m, sd = acc.mean(0), report.std_over_trials(acc)
      (ln,) = ax.plot(x, m, marker="o", ms=3, label=f"{r['name']} ({auc_of(r).mean():.1f})")
      ax.fill_between(x, m - sd, m + sd, alpha=0.12, color=ln.get_color())
    ax.set_xlabel("labeled images")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)

  alias = lambda n: f["aliases"].get(n, n)
  fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
  curves(axes[0], [sel[n] for n in ("u_batch", "u_global", "users", alias("proposal"))],
         f"2. scope (selection seeds {f['select_seeds']})")
  q3 = ["u_batch"] + [r["run"] for r in f["q3"]["signs"] if r["lam"] == max(
      x["lam"] for x in f["q3"]["signs"])] + ["witness", "greedy"]
  curves(axes[1], [sel[n] for n in dict.fromkeys(q3)], "3. sign and set-level (selection seeds)")
  curves(axes[2], list(rep.values()), f"4. best vs baselines (report seeds {f['report_seeds']})")
  fig.tight_layout()
  paths.append(out / "learning_curves.png")
  _save(fig, paths[-1])
  plt.close(fig)

  groups = [("1. lam x norm vs uncertainty only",
             {f"{r['norm']} lam {r['lam']:g}": r["vs_u_only"] for r in f["q1"]["sweep"]
              if r["lam"] > 0}),
            ("2. scope vs u_batch", f["q2"]["vs_u_batch"]),
            ("3. sign / set-level vs uncertainty only",
             {**{f"{'+' if r['sign'] > 0 else '-'}MMD lam {r['lam']:g}": r["vs_u_only"]
                 for r in f["q3"]["signs"]},
              "witness": f["q3"]["witness"]["vs_u_only"],
              "greedy": f["q3"]["greedy"]["vs_u_only"]}),
            (f"4. {f['q4']['best']} minus baseline (report seeds)", f["q4"]["best_vs"])]
  fig, axes = plt.subplots(1, 4, figsize=(19, max(3.5, 0.28 * len(groups[0][1]) + 1.5)))
  for ax, (title, d) in zip(axes, groups):
    labels = list(d)
    y = np.arange(len(labels))
    m = np.array([d[k]["diff"] for k in labels], float)
    lo = np.array([d[k]["lo"] for k in labels], float)
    hi = np.array([d[k]["hi"] for k in labels], float)
    ok = np.isfinite(lo)
    ax.errorbar(m[ok], y[ok], xerr=[m[ok] - lo[ok], hi[ok] - m[ok]], fmt="o", capsize=3)
    ax.plot(m[~ok], y[~ok], "o", color="0.5")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel("paired AUC difference (points), 95 % CI", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, axis="x")
  fig.tight_layout()
  paths.append(out / "paired_auc.png")
  _save(fig, paths[-1])
  plt.close(fig)

  if Path(analysis_npz).is_file():
    z = np.load(analysis_npz)
    u, t = z["u"], z["t"]
    sc = f["q1"]["scales"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    pos = np.concatenate([u[u > 0], t[t > 0]])
    if len(pos) and pos.max() > pos.min():
      bins = np.logspace(np.log10(pos.min()), np.log10(pos.max()), 60)
      axes[0].hist(u[u > 0], bins=bins, alpha=0.6, label="uncertainty u (raw)")
      axes[0].hist(t[t > 0], bins=bins, alpha=0.6, label="MMD term t (raw)")
      axes[0].set_xscale("log")
    axes[0].axvline(sc["u_cut"], color="k", ls="--", lw=0.8, label=f"top-{sc['budget']} u cut")
    axes[0].set_title(f"raw, {sc['labeled']} labeled (cycle {sc['cycle']})", fontsize=9)
    axes[0].legend(fontsize=7)
    import jax.numpy as jnp
    for ax, nm in zip(axes[1:], ("minmax", "zscore", "rank")):
      nu = np.asarray(norm_lib.normalize(jnp.asarray(u), nm))
      nt = np.asarray(norm_lib.normalize(jnp.asarray(t), nm))
      b = np.linspace(min(nu.min(), nt.min()), max(nu.max(), nt.max()), 50)
      ax.hist(nu, bins=b, histtype="step", lw=1.5, label="u")
      ax.hist(nt, bins=b, histtype="step", lw=1.5, label="t")
      ax.set_title(f"after {nm}", fontsize=9)
      ax.legend(fontsize=7)
    for ax in axes:
      ax.set_xlabel("score")
      ax.set_ylabel("candidates")
    fig.tight_layout()
    paths.append(out / "score_scales.png")
    _save(fig, paths[-1])
    plt.close(fig)

    names = f["q3"]["pca_step"].get("variants", [])
    xy, lxy = z["pca_pool"], z["pca_labeled"]
    cols = 4
    rows_ = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows_, cols, figsize=(4 * cols, 3.6 * rows_), squeeze=False,
                             sharex=True, sharey=True)
    prof = f["q3"]["pick_profile"]
    for ax in axes.flat[len(names):]:
      ax.axis("off")
    for ax, n in zip(axes.flat, names):
      p = z[f"picks__{n}"]
      ax.scatter(*xy.T, s=3, c="0.8", label="candidates")
      ax.scatter(*lxy.T, s=14, c="k", marker="x", label="labeled")
      ax.scatter(*xy[p].T, s=30, c="tab:red", edgecolors="k", lw=0.4, label="picked")
      pr = prof.get(n, {})
      ax.set_title(f"{n}: dist x{pr.get('dist_labeled', math.nan):.2f}, density "
                   f"{pr.get('density_pct', math.nan):.0f}, {pr.get('classes', '?')} classes",
                   fontsize=7)
    axes.flat[0].legend(fontsize=6)
    ps = f["q3"]["pca_step"]
    fig.suptitle(f"picks of one selection step (seed {ps.get('seed')}, cycle {ps.get('cycle')}, "
                 f"{ps.get('labeled')} labeled; PCA of the features)", fontsize=9)
    fig.tight_layout()
    paths.append(out / "pca_step.png")
    _save(fig, paths[-1])
    plt.close(fig)
  return paths


def _save(fig, path: Path) -> None:
  """The figure as PNG through the output ledger (an edited copy is never replaced)."""
  import io
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=110)
  files.write_output(path, buf.getvalue())


def write(f: dict, out: Path) -> list[Path]:
  out = Path(out)
  paths = plots(f, out / "analysis" / "analysis.npz", out)
  clean = {k: v for k, v in f.items() if k != "_runs"}
  files.write_output_json(out / "findings.json", clean)
  files.write_output(out / "findings.md", markdown(f))
  return [out / "findings.md", out / "findings.json", *paths]


def machine() -> str:
  import os

  import jax
  dev = jax.devices()[0]
  return (f"{platform.node()} ({os.cpu_count()} CPUs, jax {jax.__version__}, "
          f"{dev.platform}: {getattr(dev, 'device_kind', dev.platform)})")


def today() -> str:
  return datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
