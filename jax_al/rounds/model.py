"""A round's model and picks, through the same cycle code as `jax-al run`.

Round n trains the configured model (a network on images, the configured
head on embeddings) from fresh weights on every label merged so far, with
the keys of cycle n of trial 0 (`cycle.keys`), scores the unlabeled,
non-holdout items with the configured strategy and picks the budget. Before
the labels hold two classes there is no model to train: a cold-start pick
(random, TypiClust or coreset) runs on the raw features instead (the
embeddings, or an image's standardised pixels).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jax_al.errors import ConfigError

COLD_STARTS = ("typiclust", "random", "coreset")


@dataclasses.dataclass(frozen=True)
class Outcome:
  """What `next` computed for round n.

  Attributes:
    rows: [B] pool rows picked, best (or first) first.
    scores: [B] the strategy's score per pick (NaN when it has none).
    strategy: the strategy that ran (a cold start names its method).
    cold_start: True when no model was trained (fewer than 2 classes labeled).
    stop_predictions: the model's class index per stop-set item, or None.
    holdout_acc: accuracy (%) on the holdout set, or None.
    stats: the strategy's statistics.
    seconds: seconds per phase (train, predict, select).
  """

  rows: np.ndarray
  scores: np.ndarray
  strategy: str
  cold_start: bool
  stop_predictions: list[int] | None
  holdout_acc: float | None
  stats: dict
  seconds: dict


def tuples(v):
  """JSON lists back to the tuples config files hold."""
  if isinstance(v, list):
    return tuple(tuples(x) for x in v)
  return {k: tuples(x) for k, x in v.items()} if isinstance(v, dict) else v


def config_for(meta: dict, *, num_labeled: int, budget: int, strategy: str | None):
  """The round's ConfigDict: the saved config, with the label-set sizes of
  this round (`al.initial` = the labels so far, one selection step)."""
  from ml_collections import config_dict

  from jax_al import config as config_lib
  from jax_al import preflight, presets, schema
  # A pool set up by an older version lacks the fields added since: the schema fills them.
  c = config_dict.ConfigDict(tuples(schema.completed(meta["config"])))
  if strategy:
    presets.apply(c, strategy, field="--strategy")
  c.al.initial = max(1, num_labeled)
  c.al.budget = budget
  c.al.cycles = 2
  config_lib.check_config(c)
  preflight.check_compile_cache(c.compile_cache_dir)
  return c


def cold_features(x: np.ndarray, meta: dict) -> np.ndarray:
  """[N, d] features for a cold start: embeddings as given, or pixels
  scaled to [0, 1] and standardised with the config's data.mean/std."""
  if x.dtype != np.uint8:
    return x.reshape(len(x), -1)
  mean = np.asarray(meta["config"]["data"]["mean"], np.float32)
  std = np.asarray(meta["config"]["data"]["std"], np.float32)
  return ((x.astype(np.float32) / 255.0 - mean) / std).reshape(len(x), -1)


def cold_start(x: np.ndarray, meta: dict, labeled: np.ndarray, cands: np.ndarray,
               budget: int, method: str, seed: int, round_n: int) -> Outcome:
  """`method` on the raw features of the candidates (and the labeled rows,
  which coreset keeps away from)."""
  import time

  import jax_al
  t0 = time.perf_counter()
  feats = cold_features(x, meta)
  rows = np.concatenate([cands, labeled]).astype(np.int64)
  mask = np.zeros(len(rows), bool)
  mask[len(cands):] = True
  picks = jax_al.select(method, features=feats[rows], labeled=mask, budget=budget,
                        seed=seed * 1000 + round_n)
  return Outcome(rows=rows[picks.indices], scores=picks.scores, strategy=method,
                 cold_start=True, stop_predictions=None, holdout_acc=None,
                 stats=picks.stats, seconds={"select": time.perf_counter() - t0})


def train_and_pick(x: np.ndarray, y: np.ndarray, config, classes, labeled: np.ndarray,
                   cands: np.ndarray, holdout: np.ndarray, holdout_y: np.ndarray,
                   stop: np.ndarray, round_n: int) -> Outcome:
  """Trains round `round_n`'s model on `labeled` (rows of x with labels y)
  and picks `config.al.budget` of `cands`."""
  import time

  import jax
  import jax.numpy as jnp

  from jax_al import cycle, strategies
  from jax_al.data.dataset import Dataset
  from jax_al.scores import bayes

  # Each round is a new process: the on-disk cache spares it the compiles of the
  # last (its folder was checked with the round's config, `config_for`).
  from jax_al import compiles
  compiles.use_persistent_cache(config.compile_cache_dir)

  images = x if x.dtype == np.uint8 else x.reshape(len(x), 1, -1, 1)
  # Without a holdout the evaluation runs on the labeled set (not reported).
  test = holdout if len(holdout) else labeled
  test_y = holdout_y if len(holdout) else y[labeled]
  ds = Dataset(train_images=images, train_labels=y.astype(np.int32),
               test_images=images[test], test_labels=test_y.astype(np.int32),
               class_names=tuple(classes), description="round pool")
  strategy = strategies.get_strategy(config.al.strategy, config.al)
  exp = cycle.Experiment.build(config, ds, strategy)
  k = cycle.keys(config.seed, 0, round_n)
  t0 = time.perf_counter()
  state, hist = cycle.train(exp, 0, round_n, labeled, cycle._fresh(exp, k.init))  # pylint: disable=protected-access
  t1 = time.perf_counter()
  if cycle.members(config, strategy) > 1:
    logits = bayes.mean_log_probs(cycle._member_logits(exp, state, exp.images, stop)[0])  # pylint: disable=protected-access
  else:
    logits, _ = exp.trainer.predict(state.params, state.batch_stats, exp.images, stop)
  stop_pred = [int(v) for v in np.asarray(jnp.argmax(logits, -1))]
  t2 = time.perf_counter()
  subset = cands
  if config.al.subset and config.al.subset < len(cands):
    order = np.asarray(jax.random.permutation(k.subset, len(cands)))
    subset = cands[order[:config.al.subset]]
  pool = cycle.pool(exp, state, labeled, subset, 0, round_n)
  sel = strategy.select(pool, config.al.budget, k.select)
  idx = np.asarray(sel.indices, np.int64)
  scores = (np.full(idx.shape, np.nan, np.float32) if sel.scores is None
            else np.asarray(sel.scores, np.float32))
  t3 = time.perf_counter()
  acc = float(hist[-1]["test_acc"]) if len(holdout) else None
  return Outcome(rows=subset[idx], scores=scores, strategy=config.al.strategy,
                 cold_start=False, stop_predictions=stop_pred, holdout_acc=acc,
                 stats={k_: float(v) for k_, v in sel.stats.items()},
                 seconds={"train": t1 - t0, "predict": t2 - t1, "select": t3 - t2})


def check_cold_start(method: str) -> None:
  if method not in COLD_STARTS:
    from jax_al.errors import suggest
    raise ConfigError("--cold-start", method, suggest(method, COLD_STARTS))
