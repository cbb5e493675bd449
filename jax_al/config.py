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

import math
from typing import Any

import numpy as np

from jax_al import schema
from jax_al.errors import ConfigError, suggest
from jax_al.strategies import base as strategy_base

MAX_SEED = schema.MAX_SEED
Field = schema.Field
# The fields of a run's config (the study's own are checked by the study).
FIELDS: dict[str, Field] = {k: f for k, f in schema.FIELDS.items()
                            if schema.section_of(k) != schema.STUDY}


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
  spec = spec or schema.FIELDS[field]
  if value is None and spec.optional:
    return
  example = f", e.g. {spec.example!r}" if spec.example is not None else ""

  def bad(generic: str, shown=value):
    raise ConfigError(field, shown, spec.fix or generic)

  if spec.kind == "bool":
    if not isinstance(value, (bool, np.bool_)):
      bad("use true or false")
  elif spec.kind == "choice":
    options = spec.options()
    if isinstance(value, bool) or value not in options:
      bad(suggest(str(value), map(str, options)))
  elif spec.kind == "str":
    if not isinstance(value, str):
      bad(f"use a text value{example}")
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
  """Checks the schema's fields under `prefix` ("data", "al", "study", ...) of a sub-config.

  `node` is that sub-config (e.g. `config.data`); fields it lacks are skipped.
  """
  for field, spec in schema.FIELDS.items():
    head, _, rest = field.partition(".")
    if head == prefix and rest and _has(node, rest):
      check_field(field, _get(node, rest), spec)


def check_data(data) -> None:
  """Every check of `config.data` alone: its fields, then the rules between
  them (what the loaded data decides is the loaders' to check)."""
  check_section(data, "data")
  _check_data_fields(data)


def _check_data_fields(data) -> None:
  if data.source == "embeddings" and data.features:
    raise ConfigError("data.features", data.features,
                      "embeddings are features already; leave data.features empty")
  if data.features == "coates" and data.coates.n_patches < data.coates.k:
    raise ConfigError("data.coates.n_patches", data.coates.n_patches,
                      f"k-means needs at least k = {data.coates.k} patches; sample more "
                      "(the paper: 400000) or lower data.coates.k.")


def check_al(al) -> None:
  """Every check of `config.al` alone: its fields, then the rules between them."""
  check_section(al, "al")
  _check_al_rules(al)


def _check_al_rules(al) -> None:
  """The rules between `config.al` fields that hold at any size."""
  if al.estimator == "unbiased" and al.draw_size < 2:
    raise ConfigError("al.draw_size", al.draw_size,
                      "the unbiased estimator needs draws of at least 2 points: "
                      "use an integer >= 2, or al.estimator='biased'")
  if al.prefilter and al.mode != "greedy":
    raise ConfigError("al.prefilter", al.prefilter, "the pre-filter restricts "
                      "greedy picks; set al.mode='greedy' or al.prefilter=0")
  if al.mode == "greedy":
    if not al.use_mmd:
      raise ConfigError("al.mode", al.mode, "greedy mode minimises an MMD; "
                        "set al.use_mmd=True or al.mode='topk'")
    if al.mmd_scope != "global":
      raise ConfigError("al.mmd_scope", al.mmd_scope, "greedy mode matches "
                        "L + Q to all candidates; set al.mmd_scope='global'")
    if al.normalize == "none" and al.greedy_weight > 0:
      raise ConfigError("al.normalize", al.normalize, "greedy mode adds "
                        "al.greedy_weight * uncertainty to MMD^2 decreases "
                        "~1e4 times smaller; choose minmax, zscore or rank, "
                        "or set al.greedy_weight=0")


def _check_model_rules(config) -> None:
  """What the run's strategy needs of the model: dropout for MC-dropout
  passes, a ResNet's stage outputs for a loss-prediction module (read from
  the strategy class's `requires`: nothing is built)."""
  from jax_al import models

  name = config.al.strategy
  need = strategy_base.requires_of(name)
  if (need.samples is strategy_base.Samples.MC_DROPOUT
      and not config.model.dropout > 0):
    raise ConfigError("model.dropout", config.model.dropout,
                      f"al.strategy={name} scores MC-dropout passes, which need dropout; "
                      "set model.dropout > 0, e.g. 0.3")
  if need.predicted_loss:
    cls = models.registry.get(config.model.name)
    if cls is not None and not hasattr(cls, "forward"):
      with_stages = [n for n in models.names() if hasattr(models.registry.get(n), "forward")]
      raise ConfigError("model.name", config.model.name,
                        f"al.strategy={name} reads the stage outputs of a "
                        f"ResNet; use model.name={' or '.join(with_stages)}")


def _check_data_rules(config) -> None:
  """What data.source = "embeddings" (feature vectors, not images) needs of
  the other fields: a file, the MLP head, no image augmentation."""
  if config.data.source != "embeddings":
    return
  if not str(config.data.path):
    raise ConfigError("data.path", config.data.path,
                      "point it at a .npz file holding train_features, train_labels, "
                      "test_features and test_labels")
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
  from jax_al import presets

  check_declared(config)
  for field, spec in FIELDS.items():
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
  _check_data_fields(config.data)
  _check_data_rules(config)
  _check_model_rules(config)
  raw = str(config.compare.strategies)
  names = compare_strategies(config)
  if raw.strip() and not names:
    raise ConfigError("compare.strategies", raw,
                      "it names no strategy; give comma-separated names, e.g. "
                      "'random,entropy,users', or leave it empty for a single run")
  for name in names:
    if name not in presets.names():
      raise ConfigError("compare.strategies", name, suggest(name, presets.names()))


def check_declared(config) -> None:
  """Refuses a config that lacks a field of the schema or holds one it does
  not declare (a misspelt field in a config file would otherwise be ignored)."""
  for field in FIELDS:
    if not _has(config, field):
      raise ConfigError(field, "missing", "build the config on configs/common.py's "
                        "base() (the schema's defaults, jax_al.schema.defaults()), which "
                        "holds every field")
  extra = schema.undeclared(config.to_dict())
  if extra:
    known = [k for k in FIELDS if k.rsplit(".", 1)[0] == extra[0].rsplit(".", 1)[0]]
    raise ConfigError(extra[0], _get(config, extra[0]), "not a config field; remove it, or "
                      + (suggest(extra[0], known) if known else "add it to the schema"))


def check_vmapped_trials(config) -> None:
  """Vmapped trials need `mesh.data = 1`, decided by the config alone (a
  study's grouped jobs, before any mesh exists; a run's mesh is checked
  against the visible devices by `preflight.check_devices`)."""
  if config.compare.parallel == "vmap" and config.num_trials > 1 and config.mesh.data != 1:
    raise ConfigError("mesh.data", config.mesh.data,
                      "vmapped trials run on one device; use --config.mesh.data=1, or "
                      "train the trials one after another (compare.parallel=none)")


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
