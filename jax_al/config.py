"""Config checks that run before any data is touched or any model trained.

The one module of config validators. `check_config` validates every field
on its own, from one table (`FIELDS`): its type, that it is finite, its
range or its choices; then the rules between fields (`_check_rules`,
`_check_al_rules`). `check_al` does the same for `config.al` alone and
`check_section` for any sub-config (`load_dataset` checks `config.data`
with it). `check_sizes` validates the budgets against the loaded dataset,
and each strategy's `check` what depends on the sizes of a run (budget
against candidates, labeled count, classes). Every failure is a ConfigError
that names the field, the value and the fix in one line.

A field is checked here whatever the strategy: a strategy's fields (say
`al.term`) must hold valid values even in a run of another strategy.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from jax_al.errors import ConfigError, suggest
from jax_al.scores import cluster_margin as cluster_margin_lib
from jax_al.scores import kmeans as kmeans_lib
from jax_al.scores import mmd as mmd_lib
from jax_al.scores import normalize as norm_lib
from jax_al.strategies import base as strategy_base
from jax_al.strategies import uncertainty_mmd as umm

# Seeds feed jax.random.key: a 32-bit range is portable across PRNG implementations.
MAX_SEED = 2**32 - 1


@dataclasses.dataclass(frozen=True)
class Field:
  """How one config field is checked.

  kind: "int", "float", "bool", "choice", "ints" (a tuple of ints) or
  "floats" (a tuple of floats). `low`/`high` bound numbers (and the members
  of tuples); `open_low`/`open_high` exclude the bound itself. `optional`
  allows None (an unset placeholder). `multiple_of` asks an int to be a
  multiple of it.
  """

  kind: str
  low: float | None = None
  high: float | None = None
  open_low: bool = False
  open_high: bool = False
  choices: tuple = ()
  optional: bool = False
  example: Any = None
  noun: str = ""  # what the values mean, for the message ("epoch numbers")
  fix: str = ""   # the whole fix text, where the generic one reads badly
  multiple_of: int = 1

  def range_text(self) -> str:
    num = lambda x: f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"
    lo = "" if self.low is None else f"{'>' if self.open_low else '>='} {num(self.low)}"
    hi = "" if self.high is None else f"{'<' if self.open_high else '<='} {num(self.high)}"
    return " and ".join(p for p in (lo, hi) if p)


def _int(low=None, high=None, **kw):
  return Field("int", low, high, **kw)


def _float(low=None, high=None, **kw):
  return Field("float", low, high, **kw)


FIELDS: dict[str, Field] = {
    "seed": _int(0, MAX_SEED, example=0),
    "num_trials": _int(1, 10_000, example=5),
    "resume": Field("bool"),
    "data.num_test": _int(1, example=500),
    "data.image_size": _int(1, 4096, optional=True, fix=(
        "use a positive int (square side in pixels, at most 4,096) or leave it unset")),
    "data.channels": Field("choice", choices=(1, 3),
                           fix="use 1 (grayscale) or 3 (RGB; grayscale is repeated)"),
    "data.max_image_bytes": _int(1, example=64 * 2**20),
    "data.mean": Field("floats", -1e6, 1e6, example=(0.5, 0.5, 0.5)),
    "data.std": Field("floats", 0, open_low=True, example=(0.25, 0.25, 0.25),
                      fix="every std must be > 0 and finite, e.g. (0.25, 0.25, 0.25)"),
    "augment.flip": Field("bool"),
    "augment.crop_pad": _int(0, 1024, example=4),
    "model.width": _float(0, 64, open_low=True,
                          fix="use a positive width multiplier up to 64, e.g. 1.0"),
    "model.dropout": _float(0, 1, open_high=True,
                            fix="use a dropout rate in [0, 1), e.g. 0.3 (0 = off)"),
    "train.epochs": _int(1, 1_000_000, example=200),
    "train.batch_size": _int(1, 1_000_000, example=128),
    "train.lr": _float(0, open_low=True, example=0.1),
    "train.momentum": _float(0, 1, open_high=True, fix="use a value in [0, 1), e.g. 0.9"),
    "train.weight_decay": _float(0, example=5e-4),
    "train.milestones": Field("ints", 0, 10_000_000, example=(160,), noun="epoch numbers"),
    "train.gamma": _float(0, open_low=True, example=0.1),
    "train.eval_every": _int(1, example=20),
    "train.reinit_each_cycle": Field("bool"),
    "train.dtype": Field("choice", choices=("float32", "bfloat16")),
    "train.eval_batch_size": _int(1, example=500),
    "train.steps_per_call": _int(0, 1_000_000, example=0),
    # Step variants for speed, each pinned to the per-step path (docs/bench/README.md).
    "train.skip_padding": Field("choice", choices=("cond", "select", "while")),
    "train.bn_mask": Field("choice", choices=("always", "partial")),
    "train.epochs_per_call": _int(0, 1_000_000, fix="use an integer >= 0 (0 = one call per chunk)"),
    "train.flat_state": Field("bool"),
    "al.initial": _int(1, example=5000),
    "al.budget": _int(1, example=2500),
    "al.cycles": _int(1, 10_000, example=7),
    "al.subset": _int(0, example=10000),
    "al.mc_samples": _int(1, 10_000, example=20),
    "al.ensemble_size": _int(2, 1_000, example=5),
    "al.ll_weight": _float(0, 1e6, example=1.0),
    "al.ll_margin": _float(0, 1e6, example=1.0),
    "al.ll_detach": _float(0, 1, fix="use a fraction of train.epochs in [0, 1], e.g. 0.6 "
                           "(epoch 120 of 200; 1 = never detach)"),
    "al.batch": _int(1, example=128),
    "al.k": _int(2, optional=True, fix=(
        "the cluster margin needs two nearest centres: use an integer >= 2, "
        "or leave al.k unset for the number of classes")),
    "al.utility": Field("choice", choices=umm.UTILITIES),
    "al.transform": Field("choice", choices=cluster_margin_lib.TRANSFORMS),
    "al.u_scope": Field("choice", choices=umm.SCOPES),
    "al.mmd_scope": Field("choice", choices=umm.SCOPES),
    "al.term": Field("choice", choices=mmd_lib.TERMS),
    "al.sign": Field("choice", choices=(1, -1),
                     fix="use 1 (pick large MMD terms) or -1 (pick small ones)"),
    "al.lam": _float(0, 1e12, example=1.0),
    "al.normalize": Field("choice", choices=norm_lib.METHODS),
    "al.mode": Field("choice", choices=umm.MODES),
    "al.use_mmd": Field("bool"),
    "al.repeats": _int(1, 10_000, example=5),
    "al.estimator": Field("choice", choices=mmd_lib.ESTIMATORS),
    "al.draw_size": _int(1, example=128),
    "al.sigma": _float(0, 1e30, example=0.0),
    "al.block": _int(1, example=1024),
    "al.pad_labeled": Field("choice", choices=strategy_base.PADS),
    "al.coreset_search": Field("choice", choices=("dense", "lazy")),
    "al.approx": Field("choice", choices=umm.APPROX),
    "al.rff_dim": _int(2, multiple_of=2, fix=(
        "use an even integer >= 2 (cos and sin features come in pairs), e.g. 2048")),
    "al.greedy_weight": _float(0, 1e12, example=1.0),
    "al.prefilter": _int(0, example=0, fix=(
        "use an integer >= 0: the number of most uncertain candidates the "
        "greedy picks come from, 0 = all")),
    "al.kmeans.init": Field("choice", choices=kmeans_lib.INITS),
    "al.kmeans.n_init": _int(1, 1000, example=1),
    "al.kmeans.max_iter": _int(1, 1_000_000, example=100),
    "al.kmeans.tol": _float(0, 1e30, example=1e-4),
    "log.tensorboard": Field("bool"),
    "compare.parallel": Field("choice", choices=("none", "vmap")),
    "mesh.data": _int(-1, 1_000_000, example=1),
    "mesh.distributed": Field("bool"),
}


def _get(config, field: str) -> Any:
  node = config
  for part in field.split("."):
    node = node[part]
  return node


def _has(config, field: str) -> bool:
  node = config
  for part in field.split("."):
    if not hasattr(node, "keys") or part not in node.keys():
      return False
    node = node[part]
  return True


def _is_int(v) -> bool:
  return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
  return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
      v, (bool, np.bool_))


def _in_range(spec: Field, v) -> bool:
  if spec.low is not None and (v < spec.low or (spec.open_low and v == spec.low)):
    return False
  if spec.high is not None and (v > spec.high or (spec.open_high and v == spec.high)):
    return False
  return True


def check_field(field: str, value: Any, spec: Field | None = None) -> None:
  """Raises ConfigError unless `value` suits `field` (type, finite, range)."""
  spec = spec or FIELDS[field]
  if value is None and spec.optional:
    return
  example = f", e.g. {spec.example!r}" if spec.example is not None else ""

  def bad(generic: str, shown=value):
    raise ConfigError(field, shown, spec.fix or generic)

  if spec.kind == "bool":
    if not isinstance(value, (bool, np.bool_)):
      bad("use true or false")
  elif spec.kind == "choice":
    if value not in spec.choices or isinstance(value, bool):
      bad(suggest(str(value), map(str, spec.choices)))
  elif spec.kind == "int":
    if not _is_int(value) or not _in_range(spec, value) or value % spec.multiple_of:
      bad(f"use an integer {spec.range_text()}{example}")
  elif spec.kind == "float":
    if not _is_number(value) or not math.isfinite(value) or not _in_range(spec, value):
      bad(f"use a finite number {spec.range_text()}{example}")
  elif spec.kind in ("ints", "floats"):
    ok_type = _is_int if spec.kind == "ints" else _is_number
    items = tuple(value) if isinstance(value, (tuple, list)) else None
    if items is None or not all(ok_type(x) and math.isfinite(x) and _in_range(spec, x)
                                for x in items):
      what = "integers" if spec.kind == "ints" else "finite numbers"
      what += f" ({spec.noun})" if spec.noun else ""
      bad(f"use a tuple of {what} {spec.range_text()}{example}",
          items if items is not None else value)
  else:
    raise AssertionError(f"unknown field kind {spec.kind}")


def check_section(node, prefix: str) -> None:
  """Checks the `FIELDS` under `prefix` ("data", "al", ...) of a sub-config.

  `node` is that sub-config (e.g. `config.data`); fields it lacks are skipped.
  """
  for field, spec in FIELDS.items():
    head, _, rest = field.partition(".")
    if head == prefix and rest and _has(node, rest):
      check_field(field, _get(node, rest), spec)


def check_al(al) -> None:
  """Every check of `config.al` alone: its fields, then the rules between them."""
  check_section(al, "al")
  _check_al_rules(al)


def _check_al_rules(al) -> None:
  """The rules between `config.al` fields that hold at any size."""
  g = al.get
  if g("estimator") == "unbiased" and g("draw_size", 2) < 2:
    raise ConfigError("al.draw_size", al.draw_size,
                      "the unbiased estimator needs draws of at least 2 points: "
                      "use an integer >= 2, or al.estimator='biased'")
  prefilter = al.get("prefilter", 0)
  if prefilter and g("mode") != "greedy":
    raise ConfigError("al.prefilter", prefilter, "the pre-filter restricts "
                      "greedy picks; set al.mode='greedy' or al.prefilter=0")
  if g("mode") == "greedy":
    if not g("use_mmd", True):
      raise ConfigError("al.mode", al.mode, "greedy mode minimises an MMD; "
                        "set al.use_mmd=True or al.mode='topk'")
    if g("mmd_scope", "global") != "global":
      raise ConfigError("al.mmd_scope", al.mmd_scope, "greedy mode matches "
                        "L + Q to all candidates; set al.mmd_scope='global'")
    if g("normalize") == "none" and g("greedy_weight", 0) > 0:
      raise ConfigError("al.normalize", al.normalize, "greedy mode adds "
                        "al.greedy_weight * uncertainty to MMD^2 decreases "
                        "~1e4 times smaller; choose minmax, zscore or rank, "
                        "or set al.greedy_weight=0")


def _check_model_rules(config, strategy) -> None:
  """What `strategy` (the run's) needs of the model: dropout for MC-dropout
  passes, a ResNet's stage outputs for a loss-prediction module."""
  from jax_al import models

  name = config.al.strategy
  if (strategy.requires.samples is strategy_base.Samples.MC_DROPOUT
      and not config.model.get("dropout", 0.0) > 0):
    raise ConfigError("model.dropout", config.model.get("dropout", 0.0),
                      f"al.strategy={name} scores MC-dropout passes, which need dropout; "
                      "set model.dropout > 0, e.g. 0.3")
  if strategy.requires.predicted_loss:
    cls = models.registry.get(config.model.name)
    if cls is not None and not hasattr(cls, "forward"):
      with_stages = [n for n in models.names() if hasattr(models.registry.get(n), "forward")]
      raise ConfigError("model.name", config.model.name,
                        f"al.strategy={name} reads the stage outputs of a "
                        f"ResNet; use model.name={' or '.join(with_stages)}")


def _check_data_rules(config) -> None:
  """What data.source = "embeddings" (feature vectors, not images) needs of
  the other fields: a file, the MLP head, no image augmentation."""
  if config.data.get("source") != "embeddings":
    return
  if not str(config.data.get("path", "")):
    raise ConfigError("data.path", config.data.get("path", ""),
                      "point it at a .npz file holding train_features, train_labels, "
                      "test_features and test_labels")
  if config.data.get("features", ""):
    raise ConfigError("data.features", config.data.features,
                      "embeddings are features already; leave data.features empty")
  if config.model.name != "mlp":
    raise ConfigError("model.name", config.model.name,
                      "embeddings are feature vectors, not images; use model.name=mlp "
                      "(a head over the features)")
  for field in ("augment.flip", "augment.crop_pad"):
    if _get(config, field):
      raise ConfigError(field, _get(config, field),
                        "flips and crops would move features, not pixels; set "
                        "augment.flip=False and augment.crop_pad=0 for embeddings")


def check_config(config) -> None:
  """Checks every field whose validity does not depend on the data."""
  from jax_al import presets, strategies

  for field, spec in FIELDS.items():
    if _has(config, field):
      check_field(field, _get(config, field), spec)
  ms = tuple(config.train.milestones)
  if list(ms) != sorted(ms):
    raise ConfigError("train.milestones", ms,
                      "use increasing non-negative epoch numbers, e.g. '(160,)'")
  for f in ("data.mean", "data.std"):
    v = tuple(_get(config, f))
    if len(v) < config.data.channels:
      raise ConfigError(f, v, f"give one value per channel ({config.data.channels})")
  if config.mesh.data == 0:
    raise ConfigError("mesh.data", config.mesh.data, "use a device count >= 1, or -1 for all")
  _check_al_rules(config.al)
  _check_data_rules(config)
  _check_model_rules(config, strategies.get_strategy(config.al.strategy, config.al))
  raw = str(config.compare.strategies)
  names = compare_strategies(config)
  if raw.strip() and not names:
    raise ConfigError("compare.strategies", raw,
                      "it names no strategy; give comma-separated names, e.g. "
                      "'random,entropy,users', or leave it empty for a single run")
  for name in names:
    if name not in presets.names():
      raise ConfigError("compare.strategies", name, suggest(name, presets.names()))


def compare_strategies(config) -> list[str]:
  """The comma-separated `compare.strategies` as a list (empty = no comparison)."""
  return [s.strip() for s in str(config.compare.strategies).split(",") if s.strip()]


def check_sizes(config, num_train: int, num_classes: int) -> None:
  """Checks the AL budgets against the size of the training pool."""
  al = config.al
  if num_classes < 2:
    raise ConfigError("data", num_classes, "a classifier needs at least 2 classes")
  if al.initial >= num_train:
    raise ConfigError("al.initial", al.initial,
                      f"the pool has only {num_train} training images; use fewer initial labels")
  final = al.initial + al.budget * (al.cycles - 1)
  if final > num_train:
    raise ConfigError(
        "al.budget", al.budget,
        f"{al.initial} initial + {al.cycles - 1} x {al.budget} = {final} labels exceed the "
        f"{num_train} training images; lower al.budget, al.cycles or al.initial")
  if al.subset and al.subset < al.budget:
    raise ConfigError("al.subset", al.subset,
                      f"the scored subset must hold at least al.budget = {al.budget} "
                      "candidates; raise al.subset or set it to 0 (whole pool)")
