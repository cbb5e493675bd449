"""The study's grid of runs and its jobs.

The study's fields and their checks are `jax_al/study/fields.py`, the
cost estimate `cost.py`, the text of `--plan` `plan.py`.

A study is a list of *runs* (a name and the `config.al` method fields it
sets on top of the given config) and a list of *jobs*, one per (run, job
seed). With `study.trials_per_job` = k = 1 (the default) every job is an
ordinary jax-al run with `num_trials = 1` and `seed = <the trial's seed>` in
its own workdir, `<out>/runs/<run>/seed<s>`. With k > 1 a job is one run of
k trials (`num_trials = k`, `compare.parallel = "vmap"`: they train in
lockstep as one vmapped program) in `<out>/runs/<run>/seed<s>x<k>`, and its
replicates are (job seed s, trial t) for t < k. An ensemble cannot vmap
trials (its members already are one vmapped program), so an ensemble run
keeps the grouped job and its workdir but trains its k trials one after
another (`compare.parallel = "none"`): its replicates pair with every other
run's.

Pairing holds across runs because the initial labeled set and the initial
weights come from the streams `rng.stream(seed, trial, "initial_set" |
"init")`, which no strategy setting touches: replicate (s, t) of every run
starts from the same labeled set and weights. Nothing is added to the
loop, and a job never shares a workdir (nor its lock) with another.

Two sets of job seeds: the *selection* seeds (`config.seed + i`,
i < trials / k) run the grid of questions 1-3, on which the best variant of
question 4 is chosen; the *report* seeds (`config.seed + study.report_offset
+ i`, i < report_trials / k) run that variant, the `users` preset (the
cluster-margin + MMD method as first run) and the baselines again, and
question 4 is reported on them only. `trials` and `report_trials` count
replicates. Replicates are keyed by (seed, trial) and the two seed lists are
disjoint unless `report_offset` forces them together (the plan warns), so a
selection replicate never shares its random streams with a report one.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

# The cluster-margin + MMD method (preset users), every method field spelled
# out: each variant below sets all of these, so a preset in the given config
# (`configs/x.py:rank`) never leaks into a variant that means something else.
# Other `config.al` fields (sigma, repeats, draw_size, kmeans, batch, ...)
# pass through to every run.
USERS = dict(strategy="uncertainty_mmd", use_mmd=True, u_scope="batch", mmd_scope="batch",
             term="per_sample", sign=1, lam=1.0, normalize="none", mode="topk",
             utility="cluster_margin", greedy_weight=1.0, prefilter=0)

# What each mode uses where the study field is unset. "ci" is tiny (tests;


@dataclasses.dataclass(frozen=True)
class Run:
  """A variant or baseline: its name, what it is, the questions it serves and
  the `config.al` fields it sets (`preset`: a preset or strategy name applied first)."""

  name: str
  what: str
  questions: tuple
  al: dict
  preset: str = ""
  phase: str = "select"  # "select" (selection seeds) or "report" (report seeds)


@dataclasses.dataclass(frozen=True)
class Job:
  run: str
  seed: int
  phase: str
  workdir: Path


@dataclasses.dataclass
class Study:
  """A resolved study: the base config, the fields, the runs and the jobs."""

  config_spec: str
  mode: str
  base: object                      # the run config, sized by the mode, overrides applied
  fields: object                    # the resolved study ConfigDict
  out: Path | None                  # None: a plan only (nothing measured, nothing written)
  select_seeds: list
  report_seeds: list
  runs: dict                        # name -> Run (phase 1 and the fixed part of phase 2)
  aliases: dict                     # name -> the run with the same settings
  probe_cycles: list
  pca_cycle: int
  baselines: list
  executor: str = "local"
  left_out: dict = dataclasses.field(default_factory=dict)  # default baseline -> why not run

  @property
  def k(self) -> int:
    """Trials per job (`study.trials_per_job`)."""
    return int(self.fields.trials_per_job)

  def run_config(self, name: str, seed: int, run: Run | None = None):
    """The config of job (run `name`, job seed): num_trials k, its own seed;
    with k > 1 the trials vmapped, unless the strategy cannot vmap trials."""
    from jax_al import presets, vmap_trials

    run = run or self.runs[name]
    c = copy.deepcopy(self.base)
    with c.unlocked():
      if run.preset:
        presets.apply(c, run.preset, field="--study.baselines")
      for k, v in run.al.items():
        c.al[k] = v
      c.num_trials = self.k
      c.seed = int(seed)
      c.compare.strategies = ""
      if self.k > 1:  # k = 1 leaves the field as the config has it (one trial never vmaps)
        c.compare.parallel = "vmap" if vmap_trials.stacks_trials(c.al.strategy) else "none"
    return c

  def job(self, name: str, seed: int, phase: str) -> Job:
    leaf = f"seed{int(seed)}" if self.k == 1 else f"seed{int(seed)}x{self.k}"
    return Job(name, int(seed), phase, self.out / "runs" / name / leaf)

  def label(self, seed: int, trial: int):
    """A replicate's name in the findings: the seed (k = 1) or "seed:trial"."""
    return int(seed) if self.k == 1 else f"{int(seed)}:{int(trial)}"

  def replicates(self, seeds) -> list[tuple[int, int]]:
    """(job seed, trial) of every replicate of the job seeds `seeds`, in order."""
    return [(int(s), t) for s in seeds for t in range(self.k)]

  def replicate_dirs(self, name: str, phase: str) -> dict:
    """{replicate label: (workdir, trial)} of run `name` on the seeds of `phase`."""
    seeds = self.select_seeds if phase == "select" else self.report_seeds
    return {self.label(s, t): (self.job(name, s, phase).workdir, t)
            for s, t in self.replicates(seeds)}

  def timing_path(self, job: Job) -> Path:
    return self.out / "timing" / f"{job.run}__{job.workdir.name}.json"

  def phase1_jobs(self) -> list[Job]:
    return [self.job(n, s, "select") for n, r in self.runs.items() if r.phase == "select"
            for s in self.select_seeds]

  def phase2_runs(self, best: str | None) -> dict:
    """The runs of question 4 on the report seeds: the best, the `users` preset, the baselines."""
    out = {}
    if best is not None:
      out[best] = self.runs[best]
    out.setdefault("users", self.runs["users"])
    for b in self.baselines:
      out.setdefault(b, self.runs[b])
    return out

  def phase2_jobs(self, best: str | None) -> list[Job]:
    return [self.job(n, s, "report") for n in self.phase2_runs(best) for s in self.report_seeds]

  def candidates(self) -> list[str]:
    names = [n for n, r in self.runs.items() if r.phase == "select"]
    want = [x.strip() for x in self.fields.candidates.split(",") if x.strip()]
    return want or names



def build(config, fields, *, config_spec: str, mode: str, out, executor: str = "local",
          given: set = frozenset()) -> Study:
  """Checks the study fields (`fields.check_study`) and resolves the grid;
  raises ConfigError (one line)."""
  from jax_al import config as config_lib
  from jax_al import strategies
  from jax_al.study import fields as fields_lib

  r = fields_lib.check_study(config, fields, mode=mode, executor=executor, given=given)
  f = r.fields
  runs, aliases = grid(f.lams, f.norms, f.sign_lams, f.sign_norm, r.baselines)
  st = Study(config_spec, mode, r.base, f, None if out is None else Path(out), r.select_seeds,
             r.report_seeds, runs, aliases, list(f.probe_cycles), f.pca_cycle, r.baselines,
             executor, r.left_out)
  # Every job's config must pass the run checks before anything runs.
  for n, run in runs.items():
    config_lib.check_config(st.run_config(n, r.base.seed, run))
  strategies.names()
  return st


def select_names(lams, norms, sign_lams, sign_norm) -> list[str]:
  """The names of the runs of questions 1-3 (the candidates of the best)."""
  return list(grid(lams, norms, sign_lams, sign_norm, [])[0])


def grid(lams, norms, sign_lams, sign_norm, baselines) -> tuple[dict, dict]:
  """The runs of questions 1-3 (phase "select") and the baselines (phase "report").

  Runs with identical settings are one run (the first name); `aliases` maps
  every other name to it.
  """
  runs, aliases, seen = {}, {}, {}

  def add(name, what, q, preset="", phase="select", **al):
    spec = json.dumps([preset, sorted(al.items())], default=str)
    if spec in seen:
      first = seen[spec]
      aliases[name] = first
      old = runs[first]
      runs[first] = dataclasses.replace(old, questions=tuple(dict.fromkeys(old.questions + q)))
      return first
    seen[spec] = name
    runs[name] = Run(name, what, q, al, preset, phase)
    return name

  add("u_batch", "uncertainty only, per-batch k-means (lam = 0)", ("q1", "q2", "q3"),
      **{**USERS, "use_mmd": False})
  add("users", "the users' method: per-batch uncertainty + raw per-sample MMD, lam 1, large MMD",
      ("q1", "q2", "q4"), **USERS)
  for nm in norms:
    for lam in lams:
      if lam == 0:
        continue
      add(sweep_name(nm, lam), f"per-batch uncertainty + per-sample MMD, {nm}, lam {lam:g}",
          ("q1",), **{**USERS, "normalize": nm, "lam": float(lam)})
  add("u_global", "uncertainty only, one k-means over all candidates", ("q2",),
      **{**USERS, "use_mmd": False, "u_scope": "global"})
  add("proposal", f"the proposal: global uncertainty + per-batch MMD, {sign_norm}, lam 1",
      ("q2",), **{**USERS, "u_scope": "global", "normalize": sign_norm})
  for lam in sign_lams:
    add(sweep_name(sign_norm, lam), f"per-batch uncertainty + per-sample MMD, {sign_norm}, "
        f"lam {lam:g}, large MMD (+1)", ("q3",), **{**USERS, "normalize": sign_norm,
                                                   "lam": float(lam)})
    add(sweep_name(sign_norm, lam, -1), f"per-batch uncertainty + per-sample MMD, {sign_norm}, "
        f"lam {lam:g}, small MMD (-1)", ("q3",), **{**USERS, "normalize": sign_norm,
                                                   "lam": float(lam), "sign": -1})
  add("witness", f"uncertainty + witness mean_u k(x,u) - mean_l k(x,l) over the pool, {sign_norm}",
      ("q3",), **{**USERS, "term": "witness", "mmd_scope": "global", "normalize": sign_norm})
  add("greedy", "greedy set-level batch minimising MMD^2(L + Q, U), with global uncertainty",
      ("q3",), **{**USERS, "mode": "greedy", "term": "decrease", "mmd_scope": "global",
                  "normalize": sign_norm, "u_scope": "global"})
  for b in baselines:  # fields.check_study refuses a baseline named like a variant
    add(b, f"baseline `{b}`", ("q4",), preset=b, phase="report")
  return runs, aliases


def sweep_name(norm: str, lam: float, sign: int = 1) -> str:
  return f"{norm}_lam{lam:g}" + ("_small" if sign < 0 else "")
