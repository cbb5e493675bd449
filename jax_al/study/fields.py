"""The study's own fields (`--study.<field>`) and every check of them.

The fields are declared in `jax_al/schema.py` under `study.*`;
`study_defaults()` builds their ConfigDict. `check_study` resolves what
`--mode` decides for unset fields and runs every check a study needs before
anything is built: the schema's per-field checks (`config.check_section`),
then the rules between fields and the lists (empty lists, lams, multiples of
`trials_per_job`, probe cycles, candidates, seeds). It returns the resolved
fields; `grid.build` only builds from them. Every failure is a ConfigError
of one line naming the field, the value and the fix.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

from ml_collections import config_dict

from jax_al import schema
from jax_al.scores import normalize as norm_lib
from jax_al.errors import ConfigError, suggest

MODES = ("ci", "full")
EXECUTORS = ("local", "slurm")
NORMS = norm_lib.METHODS  # the normalisations the method offers, swept by the study
DEFAULT_BASELINES = "random,entropy,margin,least_confidence,coreset,badge,typiclust"
# Joined to the default baselines where the config's model can run them:
# every model trains an ensemble; bald needs model.dropout > 0 and
# learning_loss a ResNet (config.check_config says which is missing).
BAYESIAN_BASELINES = ("ensemble_bald", "bald", "learning_loss")

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

# The study's list fields (comma-separated strings), and an example of each for the messages.
LISTS = ("lams", "norms", "sign_lams", "candidates", "probe_cycles")
LIST_EXAMPLES = {"lams": "0.1,1,10", "norms": "none,rank", "sign_lams": "0.1,1",
                 "candidates": "users,rank_lam1", "probe_cycles": "1,2"}


def study_defaults() -> config_dict.ConfigDict:
  """Every study field (`--study.<field>=...`) at its default; unset ones come from --mode."""
  return schema.defaults(schema.STUDY)


class Resolved(NamedTuple):
  """What `check_study` resolved: the run config sized by the mode (`base`),
  the study's fields with the mode's values and the lists as tuples, the
  baselines (and the default ones left out, with why), the job seeds."""

  base: object
  fields: config_dict.ConfigDict
  baselines: list
  left_out: dict
  select_seeds: list
  report_seeds: list


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


def _check_within(value, field: str, low: int, high: int) -> int:
  """An int field bounded by another field (probe_trials <= trials, pca_cycle < cycles)."""
  if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
    raise ConfigError(f"study.{field}", value, f"use an integer >= {low} and <= {high:,}, "
                      f"e.g. --study.{field}={max(low, 2)}")
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


def check_vmapped(base, k: int) -> None:
  """Refuses k > 1 trials per job for a config whose trials cannot train vmapped."""
  from jax_al import config as config_lib

  c = copy.deepcopy(base)
  with c.unlocked():
    c.num_trials, c.compare.parallel = k, "vmap"
  try:
    config_lib.check_vmapped_trials(c)
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


def check_study(config, fields, *, mode: str, executor: str,
                given: set = frozenset()) -> Resolved:
  """Resolves and checks the study's fields for run config `config`; raises
  ConfigError (one line) at the first bad flag or field.

  `given`: the config fields set with --config.* (ci mode leaves them as given).
  """
  from jax_al import config as config_lib
  from jax_al import preflight, presets
  from jax_al.study import grid

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
  preflight.check_compile_cache(base.compile_cache_dir)  # the probes' replays turn it on
  config_lib.check_section(fields, schema.STUDY)
  resolved = fields.to_dict()
  for k in LISTS:
    if resolved[k] is not None and not _tuple(resolved[k], k, str):
      raise ConfigError(f"study.{k}", resolved[k], f"an empty list; name at least one value, "
                        f"e.g. --study.{k}={LIST_EXAMPLES[k]}, or drop the flag for the "
                        "default")
  for k, v in MODE_DEFAULTS[mode].items():
    if resolved[k] is None:
      resolved[k] = v
  given_baselines = resolved["baselines"]
  # Unset text fields keep the "" the study record always had for them.
  resolved["candidates"] = resolved["candidates"] or ""
  resolved["baselines"] = ("" if given_baselines is None else
                           "none" if not _tuple(given_baselines, "baselines", str)
                           else given_baselines)
  f = config_dict.ConfigDict(resolved)
  trials, report_trials, per_job = f.trials, f.report_trials, f.trials_per_job
  for field, n in (("trials", trials), ("report_trials", report_trials)):
    if n % per_job:
      raise ConfigError(f"study.{field}", n, f"it counts replicates and a job holds "
                        f"study.trials_per_job = {per_job} of them; use a multiple of "
                        f"{per_job}, e.g. --study.{field}={per_job * max(1, round(n / per_job))}")
  if per_job > 1:
    check_vmapped(base, per_job)
  lams = _tuple(f.lams, "lams")
  if not lams or not all(math.isfinite(x) and 0 <= x <= 1e12 for x in lams):
    raise ConfigError("study.lams", f.lams, "use finite lams >= 0, e.g. --study.lams=0.1,1,10")
  sign_lams = _tuple(f.sign_lams, "sign_lams")
  if not sign_lams or not all(math.isfinite(x) and 0 < x <= 1e12 for x in sign_lams):
    raise ConfigError("study.sign_lams", f.sign_lams,
                      "use finite lams > 0, e.g. --study.sign_lams=0.1,1")
  norms = _tuple(f.norms, "norms", str)
  for n in norms:
    if n not in NORMS:
      raise ConfigError("study.norms", n, suggest(n, NORMS))
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
  for kv in [x for x in f.slurm.extra.split(",") if x.strip()]:
    if "=" not in kv:
      raise ConfigError("study.slurm.extra", f.slurm.extra, 'use "key=value,key=value", e.g. '
                        "--study.slurm.extra=constraint=h100,qos=high")
  cycles = base.al.cycles
  if cycles < 2:
    raise ConfigError("al.cycles", cycles, "a study needs selection steps: use al.cycles >= 2")
  _check_within(f.probe_trials, "probe_trials", 1, trials)
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
  _check_within(pca, "pca_cycle", 1, cycles - 1)
  if pca not in probe:
    probe = sorted(set(probe) | {pca})
  seed = base.seed
  # Job seeds; each holds k replicates (seed, trial).
  select_seeds = [seed + i for i in range(trials // per_job)]
  report_seeds = [seed + f.report_offset + i for i in range(report_trials // per_job)]
  if max(select_seeds + report_seeds) > config_lib.MAX_SEED:
    raise ConfigError("seed", seed, f"the study's seeds run up to "
                      f"{max(select_seeds + report_seeds)}, above {config_lib.MAX_SEED}; "
                      "use a smaller --config.seed or --study.report_offset")
  f = config_dict.ConfigDict({**f.to_dict(), "lams": lams, "norms": norms,
                              "sign_lams": sign_lams, "probe_cycles": tuple(probe),
                              "pca_cycle": pca})
  select = grid.select_names(lams, norms, sign_lams, f.sign_norm)
  seen = set(select)
  for i, b in enumerate(baselines):
    if b in baselines[:i]:
      raise ConfigError("study.baselines", b, f"it is named twice in --study.baselines="
                        f"{','.join(baselines)}; name each baseline once")
    if b in seen:
      raise ConfigError("study.baselines", b, f"{b!r} is the name of a study variant; "
                        "drop it from --study.baselines")
    seen.add(b)
  for n in [x.strip() for x in f.candidates.split(",") if x.strip()]:
    if n not in select:
      raise ConfigError("study.candidates", n, suggest(n, select))
  return Resolved(base, f, baselines, left_out, select_seeds, report_seeds)
