"""Config checks that run before any data is touched or any model trained.

`check_config` validates each field on its own; `check_sizes` validates the
budgets against the loaded dataset. Every failure is a ConfigError that names
the field, the value and the fix.
"""

from __future__ import annotations

from typing import Any

from jax_al.errors import ConfigError, suggest

_CHOICES = {
    "train.dtype": ("float32", "bfloat16"),
    "compare.parallel": ("none", "vmap"),
    "al.pad_labeled": ("bucket", "run"),  # read by uncertainty_mmd and coreset
}


def _get(config, field: str) -> Any:
  node = config
  for part in field.split("."):
    node = node[part]
  return node


def _positive_int(config, field: str, minimum: int = 1) -> None:
  v = _get(config, field)
  if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
    raise ConfigError(field, v, f"use an integer >= {minimum}")


def _positive(config, field: str, allow_zero: bool = False) -> None:
  v = _get(config, field)
  if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (v == 0 and not allow_zero):
    raise ConfigError(field, v, "use a number " + (">= 0" if allow_zero else "> 0"))


def check_config(config) -> None:
  """Checks every field whose validity does not depend on the data."""
  from jax_al import presets, strategies  # importing strategies registers them

  _positive_int(config, "seed", 0)
  _positive_int(config, "num_trials")
  for f in ("train.epochs", "train.batch_size", "train.eval_every", "train.eval_batch_size",
            "al.initial", "al.budget", "al.cycles"):
    _positive_int(config, f)
  for f in ("train.steps_per_call", "al.subset", "augment.crop_pad"):
    _positive_int(config, f, 0)
  _positive(config, "train.lr")
  _positive(config, "train.gamma")
  _positive(config, "train.weight_decay", allow_zero=True)
  if not 0 <= config.train.momentum < 1:
    raise ConfigError("train.momentum", config.train.momentum, "use a value in [0, 1), e.g. 0.9")
  ms = tuple(config.train.milestones)
  if any(not isinstance(m, int) or m < 0 for m in ms) or list(ms) != sorted(ms):
    raise ConfigError("train.milestones", ms,
                      "use increasing non-negative epoch numbers, e.g. '(160,)'")
  for field, choices in _CHOICES.items():
    v = _get(config, field)
    if v not in choices:
      raise ConfigError(field, v, suggest(str(v), choices))
  if config.data.channels not in (1, 3):
    raise ConfigError("data.channels", config.data.channels, "use 1 (grayscale) or 3 (RGB)")
  for f in ("data.mean", "data.std"):
    v = tuple(_get(config, f))
    if len(v) < config.data.channels:
      raise ConfigError(f, v, f"give one value per channel ({config.data.channels})")
  if any(s <= 0 for s in config.data.std):
    raise ConfigError("data.std", tuple(config.data.std), "every std must be > 0")
  if config.mesh.data == 0 or not isinstance(config.mesh.data, int):
    raise ConfigError("mesh.data", config.mesh.data, "use a device count >= 1, or -1 for all")
  _check_step_variants(config)
  strategies.get_strategy(config.al.strategy, config.al)
  for name in compare_strategies(config):
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


def _check_step_variants(config) -> None:
  """train.skip_padding / bn_mask / epochs_per_call (jax_al.train.StepConfig); flat_state is
  a bool, which the ConfigDict type check enforces."""
  t = config.train
  for field, choices in (("skip_padding", ("cond", "select", "while")),
                         ("bn_mask", ("always", "partial"))):
    v = t.get(field, choices[0])
    if v not in choices:
      raise ConfigError(f"train.{field}", v, suggest(str(v), choices))
  v = t.get("epochs_per_call", 0)
  if isinstance(v, bool) or not isinstance(v, int) or v < 0:
    raise ConfigError("train.epochs_per_call", v, "use an integer >= 0 (0 = one call per chunk)")
