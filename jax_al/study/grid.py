"""The study's fields, its grid of runs, its jobs and its cost estimate.

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
import math
from pathlib import Path

from ml_collections import config_dict
from ml_collections.config_dict import placeholder

from jax_al.errors import ConfigError, suggest

MODES = ("ci", "full")
EXECUTORS = ("local", "slurm")
NORMS = ("none", "minmax", "zscore", "rank")
DEFAULT_BASELINES = "random,entropy,margin,least_confidence,coreset,badge,typiclust"
# Joined to the default baselines where the config's model can run them:
# every model trains an ensemble; bald needs model.dropout > 0 and
# learning_loss a ResNet (config.check_config says which is missing).
BAYESIAN_BASELINES = ("ensemble_bald", "bald", "learning_loss")

# The cluster-margin + MMD method (preset users), every method field spelled
# out: each variant below sets all of these, so a preset in the given config
# (`configs/x.py:rank`) never leaks into a variant that means something else.
# Other `config.al` fields (sigma, repeats, draw_size, kmeans, batch, ...)
# pass through to every run.
USERS = dict(strategy="uncertainty_mmd", use_mmd=True, u_scope="batch", mmd_scope="batch",
             term="per_sample", sign=1, lam=1.0, normalize="none", mode="topk",
             utility="cluster_margin", greedy_weight=1.0, prefilter=0)

# What each mode uses where the study field is unset. "ci" is tiny (tests;
# its numbers are not evidence); "full" keeps the config's own sizes.
MODE_DEFAULTS = {
    "ci": dict(trials=2, report_trials=2, lams=(1.0,), norms=("none", "rank"),
               sign_lams=(1.0,), probe_trials=1),
    "full": dict(trials=3, report_trials=5, lams=(0.1, 1.0, 10.0), norms=NORMS,
                 sign_lams=(0.1, 1.0), probe_trials=2),
}
# ci mode shrinks these config fields (unless given with --config.*).
CI_SIZES = dict(epochs=6, cycles=3, subset=300, initial=20, budget=20, width=0.0625)


def study_defaults() -> config_dict.ConfigDict:
  """Every study field (`--study.<field>=...`); unset ones come from --mode."""
  s = config_dict.ConfigDict()
  s.trials = placeholder(int)          # selection replicates (questions 1-3, choosing the best)
  s.report_trials = placeholder(int)   # report replicates (question 4)
  # Trials per job: 1 = a job per (run, seed); k > 1 = a job per (run, job seed)
  # of k vmapped trials (num_trials=k, compare.parallel=vmap). trials and
  # report_trials must be multiples of it.
  s.trials_per_job = 1
  s.report_offset = 1000               # report seed i = config.seed + report_offset + i
  # Lists are comma-separated strings; unset = the mode's default. An empty
  # list (`--study.lams=`) is refused, except `--study.baselines=` (or
  # `=none`): no baselines, question 4 compares the best with the users' method.
  s.lams = placeholder(str)            # lam sweep (question 1); 0 = uncertainty only is always run
  s.norms = placeholder(str)           # normalisations swept (none,minmax,zscore,rank)
  s.sign_lams = placeholder(str)       # lams at which large and small MMD are compared (question 3)
  s.sign_norm = "rank"                 # normalisation of the sign runs, witness and proposal
  s.baselines = placeholder(str)       # comma-separated strategies or presets (question 4);
                                       # unset = DEFAULT_BASELINES + the Bayesian ones the model runs
  s.candidates = placeholder(str)      # runs the best is chosen among; unset = every variant of 1-3
  s.probe_trials = placeholder(int)    # selection replicates whose steps are replayed (pick shares)
  s.probe_cycles = placeholder(str)    # replayed selection steps; unset = all when the model is
                                       # re-initialised each cycle, else the last selecting cycle
  s.pca_cycle = placeholder(int)       # the step of the score-scale and PCA pictures
  # Cost of --plan where nothing was measured under --out yet (assumptions, stated in the plan).
  s.device = "auto"                    # auto (this machine's JAX backend) | cpu | gpu
  s.train_images_per_s = placeholder(float)  # unset = the table in jax_al/study/grid.py
  s.job_overhead_s = placeholder(float)      # start, data load, compilation per job
  # Total training images/s of trials_per_job vmapped trials (all trials together);
  # unset = train_images_per_s x VMAP_GAIN of the device (an assumption the plan states).
  s.vmap_images_per_s = placeholder(float)
  # --executor slurm (submitit). cluster: "" = SLURM; "local" runs the jobs as
  # local subprocesses (tests, a workstation); "debug" runs them in this process.
  s.slurm = config_dict.ConfigDict()
  s.slurm.cluster = ""
  s.slurm.partition = ""
  s.slurm.gpus = 1                     # GPUs per job
  s.slurm.cpus = 8                     # CPUs per job
  s.slurm.mem_gb = 32
  s.slurm.time_min = 240               # per job; a pre-empted or timed-out job is requeued
  s.slurm.array_parallelism = 16       # tasks running at once
  s.slurm.group = 1                    # jobs per submitted task, run one after another (small
                                       # jobs amortise the start-up); each keeps its own workdir
  s.slurm.account = ""
  s.slurm.extra = ""                   # more sbatch options: "key=value,key=value"
  return s


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
        c.compare.parallel = "vmap" if vmap_trials.stacks_trials(c) else "none"
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


# ----------------------------------------------------------------- resolve


# The study's list fields, and an example of each for the messages.
LISTS = ("lams", "norms", "sign_lams", "candidates", "probe_cycles")
LIST_EXAMPLES = {"lams": "0.1,1,10", "norms": "none,rank", "sign_lams": "0.1,1",
                 "candidates": "users,rank_lam1", "probe_cycles": "1,2"}


def _tuple(value, field: str, kind=float) -> tuple:
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    value = (value,)
  if isinstance(value, str):
    value = tuple(v for v in value.split(",") if v.strip())
  try:
    return tuple(kind(v) if kind is not str else str(v).strip() for v in value)
  except (TypeError, ValueError):
    raise ConfigError(f"study.{field}", value, f"use a comma-separated list, e.g. "
                      f"--study.{field}=" + ("none,rank" if kind is str else "0.1,1")) from None


def _check_int(value, field: str, low: int, high: int | None = None) -> int:
  ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (
      high is None or value <= high)
  if not ok:
    rng = f">= {low}" + (f" and <= {high:,}" if high is not None else "")
    raise ConfigError(f"study.{field}", value, f"use an integer {rng}, e.g. --study.{field}="
                      f"{max(low, 2)}")
  return value


def ci_shrink(config, given: set) -> None:
  """Makes `config` tiny for --mode ci, except the fields given with --config.*."""
  with config.unlocked():
    def put(field, value):
      if field in given:
        return
      node, *rest = field.split(".")
      getattr(config, node)[rest[0]] = value

    epochs = min(config.train.epochs, CI_SIZES["epochs"])
    if "train.epochs" not in given:
      put("train.epochs", epochs)
      put("train.milestones", (max(1, int(0.8 * epochs)),))
      put("train.eval_every", epochs)
    put("al.cycles", min(config.al.cycles, CI_SIZES["cycles"]))
    put("al.subset", min(config.al.subset or CI_SIZES["subset"], CI_SIZES["subset"]))
    put("al.initial", min(config.al.initial, CI_SIZES["initial"]))
    put("al.budget", min(config.al.budget, CI_SIZES["budget"]))
    if config.model.name == "resnet18":
      put("model.width", min(config.model.width, CI_SIZES["width"]))


def build(config, fields, *, config_spec: str, mode: str, out, executor: str = "local",
          given: set = frozenset()) -> Study:
  """Checks the study fields and resolves the grid; raises ConfigError (one line)."""
  from jax_al import config as config_lib
  from jax_al import presets, strategies

  if mode not in MODES:
    raise ConfigError("--mode", mode, suggest(str(mode), MODES))
  if executor not in EXECUTORS:
    raise ConfigError("--executor", executor, suggest(str(executor), EXECUTORS))
  if config.compare.strategies:
    raise ConfigError("compare.strategies", config.compare.strategies,
                      "the study chooses its own runs; drop --config.compare.strategies "
                      "(add strategies with --study.baselines)")
  base = copy.deepcopy(config)
  if mode == "ci":
    ci_shrink(base, given)
  config_lib.check_config(base)
  d = MODE_DEFAULTS[mode]
  resolved = fields.to_dict()
  for k in LISTS:
    if resolved[k] is not None and not _tuple(resolved[k], k, str):
      raise ConfigError(f"study.{k}", resolved[k], f"an empty list; name at least one value, "
                        f"e.g. --study.{k}={LIST_EXAMPLES[k]}, or drop the flag for the "
                        "default")
  for k, v in d.items():
    if resolved[k] is None:
      resolved[k] = v
  given_baselines = resolved["baselines"]
  # Unset text fields keep the "" the study record always had for them.
  resolved["candidates"] = resolved["candidates"] or ""
  resolved["baselines"] = ("" if given_baselines is None else
                           "none" if not _tuple(given_baselines, "baselines", str)
                           else given_baselines)
  f = config_dict.ConfigDict(resolved)
  trials = _check_int(f.trials, "trials", 1, 10_000)
  report_trials = _check_int(f.report_trials, "report_trials", 1, 10_000)
  per_job = _check_int(f.trials_per_job, "trials_per_job", 1, 1_000)
  for field, n in (("trials", trials), ("report_trials", report_trials)):
    if n % per_job:
      raise ConfigError(f"study.{field}", n, f"it counts replicates and a job holds "
                        f"study.trials_per_job = {per_job} of them; use a multiple of "
                        f"{per_job}, e.g. --study.{field}={per_job * max(1, round(n / per_job))}")
  if per_job > 1:
    check_vmapped(base, per_job)
  offset = _check_int(f.report_offset, "report_offset", 0, config_lib.MAX_SEED)
  lams = _tuple(f.lams, "lams")
  if not lams or not all(math.isfinite(x) and 0 <= x <= 1e12 for x in lams):
    raise ConfigError("study.lams", f.lams, "use finite lams >= 0, e.g. --study.lams=0.1,1,10")
  sign_lams = _tuple(f.sign_lams, "sign_lams")
  if not sign_lams or not all(math.isfinite(x) and 0 < x <= 1e12 for x in sign_lams):
    raise ConfigError("study.sign_lams", f.sign_lams,
                      "use finite lams > 0, e.g. --study.sign_lams=0.1,1")
  norms = _tuple(f.norms, "norms", str)
  for n in norms + (f.sign_norm,):
    if n not in NORMS:
      field = "study.sign_norm" if n == f.sign_norm and n not in norms else "study.norms"
      raise ConfigError(field, n, suggest(n, NORMS))
  if not norms:
    raise ConfigError("study.norms", f.norms, "name at least one of " + ", ".join(NORMS))
  left_out = {}
  if given_baselines is None:
    baselines, left_out = default_baselines(base)
  else:  # "" or "none": no baselines
    baselines = [b for b in _tuple(given_baselines, "baselines", str) if b != "none"]
  for b in baselines:
    if b not in presets.names():
      raise ConfigError("study.baselines", b, suggest(b, presets.names()))
  if f.device not in ("auto", "cpu", "gpu"):
    raise ConfigError("study.device", f.device, suggest(str(f.device), ("auto", "cpu", "gpu")))
  for name in ("train_images_per_s", "vmap_images_per_s", "job_overhead_s"):
    v = f[name]
    if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
                              and (name == "job_overhead_s" or v > 0)):
      raise ConfigError(f"study.{name}", v, f"use a positive number, e.g. --study.{name}=1000")
  sl = f.slurm
  if sl.cluster not in ("", "slurm", "local", "debug"):
    raise ConfigError("study.slurm.cluster", sl.cluster,
                      'use "" (SLURM), "local" (local subprocesses) or "debug" (this process)')
  for k, low in (("gpus", 0), ("cpus", 1), ("mem_gb", 1), ("time_min", 1),
                 ("array_parallelism", 1), ("group", 1)):
    v = sl[k]
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
      raise ConfigError(f"study.slurm.{k}", v, f"use an integer >= {low}, e.g. "
                        f"--study.slurm.{k}={max(low, 1)}")
  for kv in [x for x in sl.extra.split(",") if x.strip()]:
    if "=" not in kv:
      raise ConfigError("study.slurm.extra", sl.extra, 'use "key=value,key=value", e.g. '
                        "--study.slurm.extra=constraint=h100,qos=high")
  cycles = base.al.cycles
  if cycles < 2:
    raise ConfigError("al.cycles", cycles, "a study needs selection steps: use al.cycles >= 2")
  _check_int(f.probe_trials, "probe_trials", 1, trials)
  if f.probe_cycles is None:
    probe = (list(range(1, cycles)) if base.train.reinit_each_cycle and mode == "full"
             else [cycles - 1])
  else:
    probe = [int(x) for x in _tuple(f.probe_cycles, "probe_cycles", int)]
  for c in probe:
    if not 1 <= c < cycles:
      raise ConfigError("study.probe_cycles", c, f"runs select after cycles 1..{cycles - 1}; "
                        f"e.g. --study.probe_cycles={cycles - 1}")
  pca = f.pca_cycle if f.pca_cycle is not None else probe[len(probe) // 2]
  _check_int(pca, "pca_cycle", 1, cycles - 1)
  if pca not in probe:
    probe = sorted(set(probe) | {pca})
  seed = base.seed
  # Job seeds; each holds k replicates (seed, trial).
  select_seeds = [seed + i for i in range(trials // per_job)]
  report_seeds = [seed + offset + i for i in range(report_trials // per_job)]
  if max(select_seeds + report_seeds) > config_lib.MAX_SEED:
    raise ConfigError("seed", seed, f"the study's seeds run up to "
                      f"{max(select_seeds + report_seeds)}, above {config_lib.MAX_SEED}; "
                      "use a smaller --config.seed or --study.report_offset")
  f = config_dict.ConfigDict({**f.to_dict(), "lams": lams, "norms": norms,
                              "sign_lams": sign_lams, "probe_cycles": tuple(probe),
                              "pca_cycle": pca})
  runs, aliases = grid(lams, norms, sign_lams, f.sign_norm, baselines)
  st = Study(config_spec, mode, base, f, None if out is None else Path(out), select_seeds, report_seeds, runs, aliases,
             probe, pca, baselines, executor, left_out)
  want = [x.strip() for x in f.candidates.split(",") if x.strip()]
  for n in want:
    if n not in runs or runs[n].phase != "select":
      raise ConfigError("study.candidates", n, suggest(n, [k for k, r in runs.items()
                                                           if r.phase == "select"]))
  # Every job's config must pass the run checks before anything runs.
  for n, r in runs.items():
    config_lib.check_config(st.run_config(n, seed, r))
  strategies.names()
  return st


def check_vmapped(base, k: int) -> None:
  """Refuses k > 1 trials per job for a config whose trials cannot train vmapped."""
  from jax_al import vmap_trials

  c = copy.deepcopy(base)
  with c.unlocked():
    c.num_trials, c.compare.parallel = k, "vmap"
  try:
    vmap_trials.check_config(c)
  except ConfigError as e:
    raise ConfigError("study.trials_per_job", k, f"a job's {k} trials train vmapped, but "
                      f"{e.field} = {e.value!r}: {e.fix}; or use --study.trials_per_job=1"
                      ) from None


def default_baselines(base) -> tuple[list, dict]:
  """(the default baselines for config `base`, {Bayesian baseline left out: why}).

  DEFAULT_BASELINES always; each of BAYESIAN_BASELINES when its run config
  passes `config.check_config` (the model rules), else it is left out with
  that check's one-line message, which the plan prints.
  """
  from jax_al import config as config_lib
  from jax_al import presets

  out, left = DEFAULT_BASELINES.split(","), {}
  for b in BAYESIAN_BASELINES:
    c = copy.deepcopy(base)
    with c.unlocked():
      presets.apply(c, b)
    try:
      config_lib.check_config(c)
    except ConfigError as e:
      left[b] = str(e)
      continue
    out.append(b)
  return out, left


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
  for b in baselines:
    if b in runs:
      raise ConfigError("study.baselines", b, f"{b!r} is the name of a study variant; "
                        "drop it from --study.baselines")
    add(b, f"baseline `{b}`", ("q4",), preset=b, phase="report")
  return runs, aliases


def sweep_name(norm: str, lam: float, sign: int = 1) -> str:
  return f"{norm}_lam{lam:g}" + ("_small" if sign < 0 else "")


# ------------------------------------------------------------------- cost

# Training images per second where nothing was measured, by (model, device),
# at width 1. Assumptions, printed with every estimate. cpu: this project's
# 2-core CPU machines (docs/scale_out.md, docs/bench). gpu: NOT measured: no GPU was
# available to this project's sessions; 20,000 images/s is a third of the
# project's 60,000 images/s goal for ResNet-18 in bfloat16 on one H200.
THROUGHPUT = {("resnet18", "cpu"): 20.0, ("resnet18", "gpu"): 20_000.0,
              ("cnn", "cpu"): 2_000.0, ("cnn", "gpu"): 200_000.0,
              ("mlp", "cpu"): 40_000.0, ("mlp", "gpu"): 1_000_000.0}
OVERHEAD_S = {"cpu": 4.0, "gpu": 40.0}  # start, data, compilation (from the disk cache after one)
INFER_FRACTION = 1 / 3                  # a forward pass costs about a third of a training step
# Total training throughput of a job's vmapped trials over that of one trial
# trained alone, where nothing measured it (an assumption the plan states).
VMAP_GAIN = {"cpu": 0.4, "gpu": 1.0}
VMAP_GAIN_WHY = {"cpu": "on a CPU, XLA runs the batched convolutions 2-3x slower than "
                        "sequential trials (docs/scale_out.md, "
                        "`python -m jax_al.bench parallel --quick`)",
                 "gpu": "no gain from vmapping assumed, as no GPU measured one"}


# Calibrated on a measured study, by (model, device): (factor on the assumed
# job seconds above, seconds per selection of the analysis' replays). The
# committed digits study (docs/study/digits/findings.json, 2026-12-02, 2-core
# CPU): its 102 jobs took 312.8 s where the assumptions gave 707 s (factor
# 0.4424), its analysis 18.0 s where 2 s per replayed selection gave 951 s:
# 0.0301 s each. tests/test_limits.py re-derives both from that file.
CALIBRATED = {("mlp", "cpu"): (0.4424, 0.0301)}
CALIBRATED_FROM = "docs/study/digits (102 jobs in 312.8 s, analysis 18.0 s, 2-core CPU)"
SELECT_S = 2.0  # a replayed selection's seconds where nothing measured or calibrated it


def pool_size(config) -> int | None:
  """Training images of known datasets, from the config alone (no data is loaded)."""
  d = config.data
  if d.source == "digits":
    return 1797 - d.num_test
  if d.source == "tfds" and d.name in ("cifar10", "cifar100"):
    return 50_000
  return None


def test_size(config) -> int:
  d = config.data
  if d.source == "digits":
    return d.num_test
  return 10_000


def job_images(config) -> dict:
  """Images one job trains on, runs forward (test, features) and scores, from its sizes."""
  al, tr = config.al, config.train
  n_train = pool_size(config)
  train = infer = scored = 0
  for c in range(1, al.cycles + 1):
    m = al.initial + (c - 1) * al.budget
    if n_train is not None:
      m = min(m, n_train)
    train += tr.epochs * m
    evals = len(range(tr.eval_every, tr.epochs + 1, tr.eval_every)) + (
        tr.epochs % tr.eval_every != 0)
    infer += evals * test_size(config)
    if c < al.cycles:
      unl = None if n_train is None else max(n_train - m, 0)
      s = al.subset if al.subset else (unl if unl is not None else 0)
      if unl is not None:
        s = min(s, unl)
      scored += s
      infer += s + m
  # An ensemble trains and runs forward its members (`al.ensemble_size`).
  from jax_al import strategies
  ensemble = (strategies.get_strategy(al.strategy, al).requires.samples
              is strategies.base.Samples.ENSEMBLE)
  k = int(al.ensemble_size) if ensemble else 1
  return {"train": k * train, "infer": k * infer, "scored": scored,
          "pool_known": n_train is not None}


def device_of(fields) -> str:
  if fields.device != "auto":
    return fields.device
  import jax
  return "cpu" if jax.default_backend() == "cpu" else "gpu"


def _is_vmapped(cfg: dict) -> bool:
  """Whether a saved config.json trained its trials as one vmapped program."""
  return int(cfg.get("num_trials", 1)) > 1 and cfg.get("compare", {}).get("parallel") == "vmap"


def _steady(items: list, cycle) -> list:
  """The items of cycles after the first (the first also compiles), or all when none is later."""
  return [x for x in items if cycle(x) > 1] or list(items)


def _group_cycles(records: list) -> list[tuple[int, float, int]]:
  """(cycle, shared train_s, labeled images summed over the trials) per cycle of a
  vmapped job: its trials' cycle records all carry the group's training time."""
  by_c = {}
  for r in records:
    t, n = by_c.get(r.get("cycle", 1), (0.0, 0))
    by_c[r.get("cycle", 1)] = (max(t, float(r.get("train_s", 0.0))),
                               n + int(r.get("labeled", 0)))
  return [(c, t, n) for c, (t, n) in by_c.items()]


def measured_rates(out: Path) -> dict | None:
  """Per-image training seconds, per-candidate selection seconds and per-job
  overhead measured by the finished cycles under `out` (None if none).

  The rates come from cycles after the first (the first also compiles).
  Jobs of one-by-one trials give `train_s_per_image` (one trial's image);
  jobs of vmapped trials give `vmap_s_per_image`, seconds per image of all
  the job's trials together (a cycle's shared `train_s` over the images of
  every trial). Either is None when no such job finished a cycle. The
  overhead is the median over finished jobs of their wall time minus what
  the rates predict for their cycles (start-up, data, compilation).
  """
  out = Path(out)
  runs = out / "runs"
  if not runs.is_dir():
    return None
  jobs = []
  for m in sorted(runs.glob("*/seed*/metrics.jsonl")):
    try:
      cfg = json.loads((m.parent / "config.json").read_text())
      epochs = int(cfg["train"]["epochs"])
      recs = [json.loads(x) for x in m.read_text().splitlines() if x.strip()]
      vmapped = _is_vmapped(cfg)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
      continue
    cyc = [r for r in recs if isinstance(r, dict) and r.get("kind") == "cycle"]
    if cyc:
      jobs.append((m.parent, epochs, cyc, vmapped))
  one = _steady([(e, r) for _, e, cs, v in jobs if not v for r in cs],
                lambda x: x[1].get("cycle", 1))
  grouped = _steady([(e, g) for _, e, cs, v in jobs if v for g in _group_cycles(cs)],
                    lambda x: x[1][0])
  grouped_recs = _steady([r for _, _, cs, v in jobs if v for r in cs],
                         lambda r: r.get("cycle", 1))
  if not one and not grouped:
    return None
  t_train = sum(float(r.get("train_s", 0.0)) for _, r in one)
  n_train = sum(e * int(r.get("labeled", 0)) for e, r in one)
  t_vmap = sum(g[1] for _, g in grouped)
  n_vmap = sum(e * g[2] for e, g in grouped)
  sel = [r for _, r in one if r.get("scored")] + [r for r in grouped_recs if r.get("scored")]
  t_sel = sum(float(r.get("select_s", 0.0)) for r in sel)
  n_sel = sum(int(r["scored"]) for r in sel)
  if not n_train and not n_vmap:
    return None
  train_rate = t_train / n_train if n_train else None
  vmap_rate = t_vmap / n_vmap if n_vmap else None
  sel_rate = t_sel / n_sel if n_sel else 0.0
  over = []
  for wd, e, cs, v in jobs:
    t = out / "timing" / f"{wd.parent.name}__{wd.name}.json"
    try:
      seconds = float(json.loads(t.read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
      continue
    scored = sum(int(r.get("scored", 0)) for r in cs) * sel_rate
    if v:
      pred = sum(e * n * vmap_rate for _, _, n in _group_cycles(cs)) + scored
    else:
      pred = sum(e * int(r.get("labeled", 0)) * train_rate for r in cs) + scored
    over.append(max(seconds - pred, 0.0))
  return {"train_s_per_image": train_rate, "select_s_per_candidate": sel_rate,
          "vmap_s_per_image": vmap_rate,
          "overhead_s": (sorted(over)[len(over) // 2] if over else None),
          "cycles": len(one) + len(grouped_recs),
          "vmap_cycles": len(grouped), "jobs": len(over)}


def job_seconds(config, train_s: float, vmap_s: float, infer_s: float, sel_s: float,
                over: float) -> float:
  """Seconds of one job of `config`: its `num_trials` trials one by one
  (`train_s` per image of one trial), or vmapped (`vmap_s` per image of all
  trials together); tests, features and selection run per trial."""
  img = job_images(config)
  n = int(config.num_trials)
  vmapped = n > 1 and config.compare.parallel == "vmap"
  return (over + n * img["train"] * (vmap_s if vmapped else train_s)
          + n * img["infer"] * infer_s + n * img["scored"] * sel_s)


def estimate(st: Study) -> dict:
  """Seconds per job of each run and in total, with what the numbers assume."""
  dev = device_of(st.fields)
  meas = measured_rates(st.out) if st.out is not None else None
  model, width = st.base.model.name, st.base.model.width
  gain = VMAP_GAIN[dev]
  vsrc = None
  replay_select_s = SELECT_S
  if meas:
    train_s, vmap_s = meas["train_s_per_image"], meas["vmap_s_per_image"]
    sel_s = meas["select_s_per_candidate"]
    infer_s = 0.0  # measured train_s includes the test passes; select_s the features pass
    over = meas["overhead_s"] if meas["overhead_s"] is not None else OVERHEAD_S[dev]
    if train_s is None:  # only vmapped jobs finished cycles
      train_s, tsrc = vmap_s * gain, f" (derived from the vmapped rate / {gain:g}, VMAP_GAIN)"
    else:
      tsrc = ""
    basis = (f"measured under {st.out}: {meas['cycles']} finished cycles (after the first) give "
             f"{1 / train_s:,.0f} training images/s{tsrc} (test passes included) and "
             f"{sel_s * 1e6:,.1f} us per scored candidate (features pass included); "
             f"{over:.1f} s per job for start-up and compilation"
             + (f" (median of {meas['jobs']} finished jobs)" if meas["overhead_s"] is not None else
                " (assumed)"))
    if vmap_s is not None:
      vsrc = f"measured over {meas['vmap_cycles']} vmapped cycles (after the first)"
  else:
    rate = st.fields.train_images_per_s
    scale = width ** 2 if model in ("resnet18", "cnn") else 1.0
    if rate is None:
      rate = THROUGHPUT.get((model, dev), THROUGHPUT[("resnet18", dev)]) / max(scale, 1e-6)
      src = ("assumed, NOT measured (no GPU was available): a third of the project's "
             "60,000 images/s ResNet-18 goal on one H200, scaled by width^2"
             if dev == "gpu" else "assumed from this project's 2-core CPU measurements, "
             "scaled by width^2")
    else:
      src = "given by --study.train_images_per_s"
    over = st.fields.job_overhead_s if st.fields.job_overhead_s is not None else OVERHEAD_S[dev]
    cal = CALIBRATED.get((model, dev)) if st.fields.train_images_per_s is None else None
    if cal is not None:  # the assumed rates scaled to a measured study's seconds
      rate /= cal[0]
      src = f"calibrated on {CALIBRATED_FROM}"
      if st.fields.job_overhead_s is None:
        over *= cal[0]
    train_s = 1.0 / rate
    vmap_s = None
    infer_s = train_s * INFER_FRACTION
    sel_s = 0.0
    replay_select_s = cal[1] if cal is not None else SELECT_S
    where = f"under {st.out} yet" if st.out is not None else "(no --out given)"
    basis = (f"nothing measured {where}; {model} (width {width:g}) on {dev}: "
             f"{rate:,.0f} training images/s ({src}); a forward pass costs "
             f"{INFER_FRACTION:.2f} of a training step; selection itself not counted; "
             + (f"{over:.1f} s per job for start-up and compilation (calibrated)"
                if cal is not None else
                f"{over:.0f} s per job for start-up and compilation (assumed)"))
  if vmap_s is None:
    if st.fields.vmap_images_per_s is not None:
      vmap_s, vsrc = 1.0 / st.fields.vmap_images_per_s, "given by --study.vmap_images_per_s"
    else:
      vmap_s = train_s / gain
      vsrc = (f"assumed, NOT measured: {gain:g} x the one-trial rate ({VMAP_GAIN_WHY[dev]}); "
              "set --study.vmap_images_per_s to a measured total, e.g. gpu.sh speed's "
              "parallel rows")
  if st.k > 1:
    basis += (f"; {st.k} vmapped trials of a job together: {1 / vmap_s:,.0f} training images/s "
              f"in all ({vsrc})")
  per_run = {}
  names = list(st.phase2_runs(None)) + [n for n, r in st.runs.items() if r.phase == "select"]
  for n in dict.fromkeys(names):
    per_run[n] = job_seconds(st.run_config(n, st.select_seeds[0]), train_s, vmap_s, infer_s,
                             sel_s, over)
  n1 = [n for n, r in st.runs.items() if r.phase == "select"]
  p1 = sum(per_run[n] for n in n1) * len(st.select_seeds)
  # Phase 2: the best variant is not known before phase 1; costed as the dearest candidate.
  best_cost = max(per_run[n] for n in st.candidates())
  fixed2 = [n for n in st.phase2_runs(None)]
  p2 = (sum(per_run[n] for n in fixed2) + best_cost) * len(st.report_seeds)
  # Replay: the probe steps retrain every cycle whose checkpoint was not kept
  # (the last two are), one trial at a time.
  cycles = st.base.al.cycles
  uimg = job_images(st.run_config("u_batch", st.select_seeds[0]))
  per_cycle = (uimg["train"] * train_s + uimg["infer"] * infer_s) / cycles
  kept = {cycles - 1, cycles}
  retrain = 0
  for c in st.probe_cycles:
    if c in kept:
      continue
    retrain += 1 if st.base.train.reinit_each_cycle else c
  probes = len(st.probe_cycles) * st.fields.probe_trials
  # Each probe step selects once per variant and normalisation, plus the pictures.
  selects = probes * (len(n1) + len(st.fields.norms) + 2) + len(n1) + 2
  per_select = (sel_s * (uimg["scored"] / max(cycles - 1, 1)) if sel_s else replay_select_s)
  analysis = over + retrain * st.fields.probe_trials * per_cycle + selects * per_select
  return {"device": dev, "basis": basis, "per_job_s": per_run, "phase1_s": p1,
          "phase2_s": p2, "analysis_s": analysis, "total_s": p1 + p2 + analysis,
          "images": job_images(st.base), "measured": bool(meas),
          "vmap_images_per_s": 1.0 / vmap_s}


def fmt_s(s: float) -> str:
  if s < 120:
    return f"{s:.0f} s"
  if s < 2 * 3600:
    return f"{s / 60:.1f} min"
  return f"{s / 3600:.1f} h"


def _jobs_of(st: Study) -> tuple[str, str]:
  """How the plan names a job and its seeds: one trial each, or k trials each."""
  if st.k == 1:
    return ("each job = 1 trial (num_trials=1, its own seed)", "seeds")
  return (f"each job = {st.k} trials of one job seed (num_trials={st.k}, compare.parallel=vmap: "
          f"they train as one vmapped program; a replicate = (job seed, trial))",
          f"job seeds of {st.k} trials")


def _run_note(st: Study, name: str) -> str:
  if st.k > 1 and st.run_config(name, st.select_seeds[0]).compare.parallel != "vmap":
    return f" ({st.k} trials one after another: an ensemble cannot vmap trials)"
  return ""


def plan_text(st: Study) -> str:
  """What --plan prints: every run and job, and the estimated cost."""
  e = estimate(st)
  c = st.base
  each, seeds = _jobs_of(st)
  k = st.k
  if k == 1:
    seed_line = (f"selection seeds {st.select_seeds} (questions 1-3, choosing the best); report "
                 f"seeds {st.report_seeds} (question 4)")
  else:
    seed_line = (f"selection job seeds {st.select_seeds} x {k} trials = "
                 f"{len(st.select_seeds) * k} replicates (questions 1-3, choosing the best); "
                 f"report job seeds {st.report_seeds} x {k} trials = "
                 f"{len(st.report_seeds) * k} replicates (question 4)")
  out = st.out if st.out is not None else "(none: a plan only)"
  lines = [f"study of {st.config_spec} (--mode {st.mode}, --executor {st.executor}), out: {out}",
           f"sizes: {c.al.initial} initial + {c.al.budget} per cycle x {c.al.cycles} cycles, "
           f"{c.train.epochs} epochs, subset {c.al.subset or 'whole pool'}, model {c.model.name} "
           f"(width {c.model.width:g}); {each}", seed_line, ""]
  n1 = [n for n, r in st.runs.items() if r.phase == "select"]
  lines.append(f"phase 1: {len(n1)} runs x {len(st.select_seeds)} selection {seeds} = "
               f"{len(n1) * len(st.select_seeds)} jobs, {fmt_s(e['phase1_s'])}")
  for n in n1:
    r = st.runs[n]
    lines.append(f"  {n:22s} {','.join(r.questions):12s} {fmt_s(e['per_job_s'][n]):>9s}/job  "
                 f"{r.what}{_run_note(st, n)}")
  fixed2 = list(st.phase2_runs(None))
  lines += ["", f"phase 2: {len(fixed2) + 1} runs x {len(st.report_seeds)} report {seeds} = "
            f"{(len(fixed2) + 1) * len(st.report_seeds)} jobs, {fmt_s(e['phase2_s'])}",
            f"  {'<best of phase 1>':22s} {'q4':12s} {fmt_s(max(e['per_job_s'][n] for n in st.candidates())):>9s}/job  (at most) chosen by mean AUC on "
            f"the selection {'seeds' if k == 1 else 'replicates'} among {len(st.candidates())} "
            "candidates"]
  for n in fixed2:
    r = st.runs[n]
    lines.append(f"  {n:22s} {'q4':12s} {fmt_s(e['per_job_s'][n]):>9s}/job  {r.what}"
                 f"{_run_note(st, n)}")
  lines += ["", f"analysis: replays {len(st.probe_cycles)} selection step(s) (cycles "
            f"{st.probe_cycles}) of u_batch on {st.fields.probe_trials} selection "
            f"{'seed' if k == 1 else 'replicate'}(s): "
            f"pick shares, score scales (cycle {st.pca_cycle}), PCA picture, "
            f"{fmt_s(e['analysis_s'])}", "",
            f"estimated total: {fmt_s(e['total_s'])} of {e['device']} time "
            f"({len(n1) * len(st.select_seeds) + (len(fixed2) + 1) * len(st.report_seeds)} jobs "
            "+ the analysis), one after another",
            f"estimate basis: {e['basis']}"]
  for b, why in st.left_out.items():
    lines.append(f"default baseline {b} left out: {why}")
  if not e["images"]["pool_known"]:
    lines.append("note: the pool size of this data source is unknown before loading it; "
                 "scoring cost counts al.subset only")
  if set(st.select_seeds) & set(st.report_seeds):
    lines.append(f"WARNING: report seeds {sorted(set(st.select_seeds) & set(st.report_seeds))} "
                 "are also selection seeds: question 4 would be reported on seeds it was "
                 "chosen on (--study.report_offset)")
  return "\n".join(lines)
