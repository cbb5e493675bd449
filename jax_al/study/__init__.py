"""`python -m jax_al.study`: plans, runs and reports the study that answers the
four questions about the uncertainty + MMD selection for a given config.

    python -m jax_al.study --config configs/digits.py --out runs/study            # full
    python -m jax_al.study --config configs/digits.py --out runs/s --mode ci      # tiny
    python -m jax_al.study --config configs/cifar10.py --out runs/c --plan        # cost only
    python -m jax_al.study --config configs/cifar10.py --out /shared/c --executor slurm \\
        --study.slurm.partition=gpu --study.slurm.array_parallelism=32

1. scale: a lam x normalisation sweep, with the share of picks the MMD term
   changes at rebuilt selection steps (`jax_al.replay`);
2. scope: per-batch vs whole-pool clustering, and the proposal (global
   uncertainty + per-batch MMD);
3. sign: large and small per-sample MMD at several lams, the witness and
   the greedy set-level batch;
4. the best variant, CHOSEN on the selection seeds, REPORTED on fresh report
   seeds against the baselines (`--study.baselines`).

Every (run, seed) is one job: a plain `loop.run` of one trial in its own
workdir `<out>/runs/<run>/seed<s>`, or with `--study.trials_per_job=k` of k
vmapped trials in `<out>/runs/<run>/seed<s>x<k>`; rerunning the command
skips finished jobs and resumes unfinished ones. The library API:

    st = study.build(config, study.fields.study_defaults(), config_spec=..., mode="ci", out=...)
    print(study.plan_text(st))
    findings = study.run_study(st)

Outputs in `--out`: findings.md, findings.json, learning_curves.png,
paired_auc.png, score_scales.png, pca_step.png, study.json, choice.json,
analysis/, runs/, timing/ (and submitit/ for --executor slurm).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from jax_al import files
from jax_al.errors import ConfigError, DataError
from jax_al.study import cost, executors, fields, findings, grid, plan, probes
from jax_al.study.grid import Study, build  # noqa: F401
from jax_al.study.plan import plan_text  # noqa: F401

TOOL = "jax-al study"
FORMAT = 1
# What a study writes at the top of --out (nothing else is ever written there).
OWNED = ("study.json", "choice.json", "findings.md", "findings.json", "learning_curves.png",
         "paired_auc.png", "score_scales.png", "pca_step.png", "runs", "analysis", "timing",
         "submitit", ".study.lock", "study_log.txt", files.LEDGER)
# The files among them a user may open and edit: written through the output
# ledger, so that an edited one is refused instead of replaced.
EDITABLE = ("choice.json", "findings.md", "findings.json", "learning_curves.png",
            "paired_auc.png", "score_scales.png", "pca_step.png")


def check_out(out: Path) -> None:
  """Raises unless `out` is absent, empty, or a study's folder (study.json with the marker).

  Never deletes: a folder with other files is refused with their names.
  """
  out = Path(out)
  if not out.exists():
    return
  if not out.is_dir():
    raise ConfigError("--out", str(out), "it is a file; pass a folder (new, empty, or a "
                      "previous study's --out to resume it)")
  entries = sorted(p.name for p in out.iterdir())
  if not entries:
    return
  marker = out / "study.json"
  ok = False
  if marker.is_file():
    try:
      ok = json.loads(marker.read_text()).get("tool") == TOOL
    except (OSError, ValueError, AttributeError):
      ok = False
    if not ok:
      raise ConfigError("--out", str(out), f"its study.json is not a jax-al study's record "
                        "(damaged, or another tool's); restore it from a copy to resume the "
                        "study, or pass a new or empty folder; the study never writes into or "
                        "deletes other files")
  if not ok:
    shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
    raise ConfigError("--out", str(out), f"it holds files that are not a jax-al study's "
                      f"({shown}) and no study.json; pass a new or empty folder, the study "
                      "never writes into or deletes other files")
  foreign = [e for e in entries if e not in OWNED and not e.startswith(".")]
  if foreign:
    raise ConfigError("--out", str(out), f"this study folder also holds files the study did "
                      f"not write ({', '.join(foreign[:5])}); move them out or pass another --out")
  ledger = files.ledger_files(out)
  for name in EDITABLE:
    # A study from before the ledger has no record of its files: they are its own.
    try:
      files.check_output(out / name, "--out", legacy=lambda p: p.name not in ledger)
    except files.OutputError:
      raise ConfigError("--out", str(out / name), "it was edited after the study wrote it, "
                        "and continuing the study would replace it; move it out (or copy your "
                        "edits elsewhere) and rerun") from None


def check_jobs(st: Study) -> None:
  """Refuses, before anything runs, job workdirs that hold a run of another config."""
  from jax_al import workdir as workdir_lib

  root = st.out / "runs"
  if not root.is_dir():
    return
  by_dir = {j.workdir: j for j in st.phase1_jobs()}
  for n in st.runs:
    for s in st.report_seeds:
      j = st.job(n, s, "report")
      by_dir.setdefault(j.workdir, j)
  data = {}  # fingerprints now, by data section
  for d, j in by_dir.items():
    cfg = d / "config.json"
    if not cfg.is_file():
      continue
    try:
      saved = json.loads(cfg.read_text())
    except (OSError, ValueError):
      raise DataError(str(cfg), "cannot be read as JSON", "move that job folder away and "
                      "rerun") from None
    now = st.run_config(j.run, j.seed).to_dict()
    if workdir_lib.comparable(saved) != workdir_lib.comparable(now):
      raise ConfigError("--out", str(st.out), f"job {d.relative_to(st.out)} holds a run of "
                        f"another config ({workdir_lib.differences(saved, now)}); rerun with "
                        "the first command's --config/--mode/--config.* flags, or pass "
                        "another --out")
    # Finished jobs are never rerun (so no resume would see it): a study goes
    # on only on the data its jobs started on.
    recorded = saved.get(workdir_lib.DATA_KEY)
    if isinstance(recorded, dict):
      change = workdir_lib.data_changes(recorded, _data_now(st.run_config(j.run, j.seed), data))
      if change:
        raise DataError(str(cfg), f"job {d.relative_to(st.out)} started on other data than "
                        f"the study would continue on now (changed: {change})",
                        "restore the data the study started on, or pass another --out to "
                        "start a study on the new data")


def _data_now(config, memo: dict) -> dict | None:
  """The fingerprint of `config.data` as it loads now, loaded once per data section."""
  from jax_al.data import load_dataset

  key = json.dumps(config.data.to_dict(), sort_keys=True, default=str)
  if key not in memo:
    memo[key] = load_dataset(config.data).fingerprint
  return memo[key]


def _record(st: Study) -> dict:
  return {"tool": TOOL, "format": FORMAT, "config": st.config_spec, "mode": st.mode,
          "base_config": st.base.to_dict(), "select_seeds": st.select_seeds,
          "report_seeds": st.report_seeds, "runs": sorted(st.runs)} | (
              {"trials_per_job": st.k} if st.k > 1 else {})


def choose_best(st: Study) -> tuple[str, dict]:
  """The candidate with the highest mean AUC over the selection replicates."""
  aucs = {}
  for n in st.candidates():
    r = findings.combine(n, st.replicate_dirs(n, "select"))
    a = findings.auc_of(r)
    aucs[n] = float(a.mean()) if len(a) else float("-inf")
  best = max(aucs, key=lambda n: aucs[n])
  choice = {"best": best, "aucs": aucs, "chosen_on_seeds": st.select_seeds,
            "rule": "highest mean AUC over the selection seeds"}
  if st.k > 1:
    choice["rule"] = "highest mean AUC over the selection replicates"
    choice["trials_per_job"] = st.k
    choice["chosen_on_replicates"] = list(st.replicate_dirs(best, "select"))
  return best, choice


def _args(st: Study, jobs) -> list[tuple]:
  return [(st.run_config(j.run, j.seed), str(j.workdir), str(st.timing_path(j))) for j in jobs]


def run_study(st: Study, log=print) -> dict:
  """Runs (or resumes) every job, the analysis and the report; returns the findings."""
  from jax_al import workdir as workdir_lib

  t0 = time.perf_counter()
  check_out(st.out)
  check_jobs(st)
  try:
    st.out.mkdir(parents=True, exist_ok=True)
    lock = workdir_lib.Lock(st.out)
  except OSError as e:  # a read-only filesystem, a file above it, no space
    raise ConfigError("--out", str(st.out), f"cannot write there ({e.strerror or e}); pass a "
                      "folder on a writable filesystem") from None
  except ConfigError:
    raise ConfigError("--out", str(st.out), "another study command is running on it; wait "
                      "for it to finish or pass another --out") from None
  lock_path = st.out / ".lock"
  try:
    if not (st.out / "study.json").exists():
      files.write_json(st.out / "study.json", _record(st))
    ran = skipped = 0
    folder = st.out / "submitit"

    def todo(jobs):
      nonlocal skipped
      out = [j for j in jobs if not executors.job_finished(j.workdir, st.run_config(j.run, j.seed))]
      skipped += len(jobs) - len(out)
      return out

    p1 = todo(st.phase1_jobs())
    log(f"phase 1: {len(p1)} of {len(st.phase1_jobs())} jobs to run (selection seeds "
        f"{st.select_seeds})")
    executors.call(st.executor, _args(st, p1), fields=st.fields, folder=folder, log=log)
    ran += len(p1)
    best, choice = choose_best(st)
    files.write_output_json(st.out / "choice.json", choice)
    log(f"best variant on the selection seeds: {best} (mean AUC {choice['aucs'][best]:.2f})")
    # The replays read phase 1's checkpoints only: run them now, so that a study
    # stopped in phase 2 and continued without those checkpoints (another
    # machine) need not retrain the replayed steps.
    log("analysis: replaying selection steps")
    executors.call(st.executor, [(st, "analysis", best)], fields=st.fields, folder=folder,
                   log=log, label="analysis job", fn=probes.run_analysis)
    all2 = st.phase2_jobs(best)
    p2 = todo(all2)
    log(f"phase 2: {len(p2)} of {len(all2)} jobs to run (report seeds {st.report_seeds})")
    executors.call(st.executor, _args(st, p2), fields=st.fields, folder=folder, log=log)
    ran += len(p2)
    an = json.loads((st.out / "analysis" / "analysis.json").read_text())
    job_s = 0.0
    for t in (st.out / "timing").glob("*.json"):
      try:
        job_s += float(json.loads(t.read_text())["seconds"])
      except (OSError, ValueError, KeyError):
        pass
    runtime = {"command_s": time.perf_counter() - t0, "jobs_run": ran, "jobs_skipped": skipped,
               "job_seconds_total": job_s, "analysis_s": an.get("seconds", 0.0),
               "machine": findings.machine(), "date": findings.today()}
    f = findings.compute(st, best, choice, an, runtime)
    paths = findings.write(f, st.out)
    log("wrote " + ", ".join(str(p) for p in paths))
    return {k: v for k, v in f.items() if k != "_runs"}
  finally:
    lock.release()
    lock_path.unlink(missing_ok=True)


__all__ = ["Study", "build", "plan_text", "run_study", "check_out", "fields", "grid", "cost",
           "plan", "findings", "probes", "executors"]
del os
