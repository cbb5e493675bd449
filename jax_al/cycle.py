"""One active-learning cycle, step by step: keys, starting state, training,
candidates, pool, selection.

The loop (`jax_al.loop`) strings these steps together over trials and
cycles, and `jax_al.replay` calls the same functions to rebuild any
selection step of a finished run, so there is one definition of a cycle.

Every random draw of cycle c of trial t comes from the named stream
`fold_in(rng.stream(seed, t, name), c)` (`Keys`): the same config and seed
give the same weights, data orders, candidates and picks, whether the cycle
runs in one go, after a resume, vmapped with other trials, or in a replay.

The strategy is built once per run and travels in the `Experiment`; what
its `requires` declares decides the pool's forward passes through one table
of input providers (`providers`).

The functions are plain Python around jitted programs held by the
`Experiment`'s Trainer; nothing here writes files.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import TYPE_CHECKING, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jax_al import errors, rng, sharding, strategies, vmap_trials
from jax_al.errors import TrainingError
from jax_al.scores import bayes
from jax_al.strategies.base import Requires, Samples
from jax_al import train as train_lib
from jax_al.train import StepConfig, Trainer, TrainState, init_model

if TYPE_CHECKING:  # annotations only: the data package is imported where data load
  from ml_collections import ConfigDict

  from jax_al.data.dataset import Dataset


@dataclasses.dataclass(frozen=True)
class Keys:
  """The random keys of one cycle of one trial (named streams, folded with the cycle).

  Attributes:
    init: re-initial weights (`train.reinit_each_cycle`).
    data_order: the epochs' batch orders (folded with the epoch).
    augment: the training views (folded with the epoch and the step).
    subset: the random candidate subset of the unlabeled pool.
    select: the strategy's own draws.
  """

  init: jax.Array
  data_order: jax.Array
  augment: jax.Array
  subset: jax.Array
  select: jax.Array


def keys(seed: int, trial: int, cycle: int) -> Keys:
  """The keys of `cycle` (1-based) of `trial` (0-based) in run `seed`."""
  return Keys(**{f.name: rng.cycle_key(seed, trial, f.name, cycle)
                 for f in dataclasses.fields(Keys)})


@dataclasses.dataclass(frozen=True, eq=False)
class Experiment:
  """What every cycle of a run needs, fixed for the run: the data on the
  device, the compiled Trainer and the strategy.

  Attributes:
    config: the run's ConfigDict.
    ds: the loaded Dataset (host arrays).
    trainer: the Trainer (its jitted steps compile once per process).
    strategy: the selection strategy, built once per run.
    mesh: the device mesh, or None on one device.
    images, labels, test_images, test_labels: the splits on the device
      (sharded over the mesh when there is one).
  """

  config: ConfigDict
  ds: Dataset
  trainer: Trainer
  strategy: strategies.Strategy
  mesh: Mesh | None
  images: jax.Array
  labels: jax.Array
  test_images: jax.Array
  test_labels: jax.Array

  @classmethod
  def build(cls, config: ConfigDict, ds: Dataset, strategy: strategies.Strategy,
            mesh: Mesh | None = None, graphdef=None) -> "Experiment":
    """Places the dataset on the device(s) and gets the run's Trainer."""
    n_train = len(ds.train_labels)
    if graphdef is None:
      graphdef, _, _ = init_model(config, ds.num_classes, tuple(ds.train_images.shape[1:]),
                                  rng.stream(config.seed, 0, "init"))
    return cls(config=config, ds=ds, trainer=trainer(graphdef, config, n_train, mesh),
               strategy=strategy, mesh=mesh,
               images=sharding.place(mesh, ds.train_images),
               labels=sharding.place(mesh, ds.train_labels.astype(np.int32)),
               test_images=sharding.place(mesh, ds.test_images),
               test_labels=sharding.place(mesh, ds.test_labels.astype(np.int32)))

  @property
  def num_train(self) -> int:
    return len(self.ds.train_labels)

  @property
  def image_shape(self) -> tuple:
    return tuple(self.ds.train_images.shape[1:])


def trainer(graphdef, config, num_train: int, mesh=None) -> Trainer:
  """The Trainer of this model and these step settings, built once per process."""
  return _trainer(graphdef, StepConfig.from_config(config, num_train), num_train, mesh)


@functools.lru_cache(maxsize=4)
def _trainer(graphdef, sc: StepConfig, num_train: int, mesh=None) -> Trainer:
  # A Trainer holds only jitted pure functions, so runs may share it: a
  # comparison of strategies, a resumed run or a replay compiles its steps once.
  return Trainer(graphdef, sc, num_train, mesh=mesh)


@functools.lru_cache(maxsize=4)
def stacked_trainer(tr: Trainer) -> vmap_trials.StackedTrainer:
  """The vmapped counterpart of a Trainer (its step compiles once per trial count)."""
  return vmap_trials.StackedTrainer(tr)


def members(config, strategy) -> int:
  """Models a cycle trains: `al.ensemble_size` for an ensemble strategy
  (`requires.samples is Samples.ENSEMBLE`), else 1."""
  return (int(config.al.ensemble_size)
          if strategy.requires.samples is Samples.ENSEMBLE else 1)


def member_key(key: jax.Array, m: int) -> jax.Array:
  """Member m's key of a named stream: member 0 has the trial's own keys (it
  is the single model of the same run without the ensemble), member m > 0
  folds m in, so members differ in initial weights, data order and views."""
  return key if m == 0 else jax.random.fold_in(key, m)


def labeled_capacity(config, num_train: int) -> int:
  """The largest labeled set a selection of this run scores: the one after
  cycle `al.cycles - 1` (the last cycle selects nothing)."""
  al = config.al
  return min(num_train, al.initial + al.budget * max(al.cycles - 2, 0))


def initial(exp: Experiment, trial: int) -> tuple[TrainState, np.ndarray]:
  """A trial's fresh state (weights from its "init" stream) and initial labeled set."""
  config = exp.config
  labeled = jax.random.permutation(rng.stream(config.seed, trial, "initial_set"),
                                   exp.num_train)[:config.al.initial]
  return _fresh(exp, rng.stream(config.seed, trial, "init")), np.asarray(labeled, np.int64)


def _fresh(exp: Experiment, key: jax.Array) -> TrainState:
  """New weights from `key`: one model, or an ensemble's members stacked."""
  def one(k):
    _, params, bs = init_model(exp.config, exp.ds.num_classes, exp.image_shape, k)
    return exp.trainer.new_state(params, bs)

  k = members(exp.config, exp.strategy)
  return one(key) if k == 1 else vmap_trials.stack([one(member_key(key, m)) for m in range(k)])


def start_state(exp: Experiment, trial: int, cycle: int, state: TrainState) -> TrainState:
  """The state a cycle trains from: re-initialised (`train.reinit_each_cycle`,
  after cycle 1), or the previous cycle's weights; the optimizer and its
  schedule are new every cycle."""
  config = exp.config
  if config.train.reinit_each_cycle and cycle > 1:
    return _fresh(exp, keys(config.seed, trial, cycle).init)
  return exp.trainer.new_state(state.params, state.batch_stats)  # per member when stacked


def train(exp: Experiment, trial: int, cycle: int, labeled: np.ndarray, state: TrainState,
          on_eval: Callable[[dict], None] | None = None,
          progress: Callable[[int], None] | None = None):
  """Trains cycle `cycle` of `trial` on `labeled` from `state` (the previous
  cycle's, or the initial one); returns (state, evaluation history).

  For an ensemble strategy the state is the members' stack, the history is
  member 0's, and its last record's `test_acc` is the ensemble's (mean
  softmax) with member 0's as `member_acc`.
  """
  k = keys(exp.config.seed, trial, cycle)
  n = members(exp.config, exp.strategy)
  test_idx = np.arange(len(exp.ds.test_labels))
  if n == 1:
    return exp.trainer.fit(
        start_state(exp, trial, cycle, state), exp.images, exp.labels, labeled, test_idx,
        exp.test_images, exp.test_labels, exp.config.train, k.data_order, k.augment,
        on_eval=on_eval, progress=progress)
  # An ensemble: the members train as one vmapped program; member 0's
  # evaluations are the logged ones, and the cycle's last record carries the
  # ensemble's accuracy (mean softmax) beside member 0's.
  state, hists = stacked_trainer(exp.trainer).fit(
      start_state(exp, trial, cycle, state), exp.images, exp.labels, [labeled] * n, test_idx,
      exp.test_images, exp.test_labels, exp.config.train,
      [member_key(k.data_order, m) for m in range(n)],
      [member_key(k.augment, m) for m in range(n)],
      on_eval=None if on_eval is None else (lambda i, rec: on_eval(rec) if i == 0 else None),
      progress=progress)
  logits, _ = _member_logits(exp, state, exp.test_images, test_idx)
  pred = jnp.argmax(bayes.mean_log_probs(logits), -1)
  acc = 100.0 * float(jnp.mean(pred == exp.test_labels))
  last = dict(hists[0][-1], test_acc=acc, member_acc=hists[0][-1]["test_acc"])
  return state, hists[0][:-1] + [last]


def _member_logits(exp: Experiment, state: TrainState, images, idx):
  """[K, N, C] logits and [K, N, d] features of `images[idx]` under each member."""
  outs = [exp.trainer.predict(p, b, images, idx) for p, b in vmap_trials.unstack(
      (state.params, state.batch_stats), members(exp.config, exp.strategy))]
  return jnp.stack([o[0] for o in outs]), jnp.stack([o[1] for o in outs])



def train_stacked(exp: Experiment, trials: Sequence[int], cycle: int,
                  labeled: Sequence[np.ndarray], states: Sequence[TrainState],
                  on_eval: Callable[[int, dict], None] | None = None,
                  progress: Callable[[int], None] | None = None):
  """`train` for several trials at one cycle, as one vmapped program.

  Every labeled set must have the same size. `on_eval(i, record)` gets the
  position i in `trials`. Returns ([state per trial], [history per trial]).
  """
  ks = [keys(exp.config.seed, t, cycle) for t in trials]
  stacked = vmap_trials.stack([start_state(exp, t, cycle, s) for t, s in zip(trials, states)])
  stacked, hists = stacked_trainer(exp.trainer).fit(
      stacked, exp.images, exp.labels, list(labeled), np.arange(len(exp.ds.test_labels)),
      exp.test_images, exp.test_labels, exp.config.train, [k.data_order for k in ks],
      [k.augment for k in ks], on_eval=on_eval, progress=progress)
  return vmap_trials.unstack(stacked, len(trials)), hists


def candidates(exp: Experiment, trial: int, cycle: int, labeled: np.ndarray) -> np.ndarray:
  """Dataset indices of the unlabeled examples a cycle scores: a random
  subset of `al.subset` (all when 0), in random order (per-batch scopes see
  batches in this order). Empty when nothing is left unlabeled."""
  unlabeled = np.setdiff1d(np.arange(exp.num_train), labeled)
  if len(unlabeled) == 0:
    return unlabeled
  n_sub = min(exp.config.al.subset or len(unlabeled), len(unlabeled))
  order = np.asarray(jax.random.permutation(keys(exp.config.seed, trial, cycle).subset,
                                            len(unlabeled)))
  return unlabeled[order[:n_sub]]


# Folded into a cycle's selection key to give the keys of its MC-dropout passes.
MC_FOLD = 0x6D63


@dataclasses.dataclass(frozen=True, eq=False)
class Scored:
  """What an input provider reads: the cycle's model and its two sets.

  Attributes:
    exp: the run's Experiment.
    state: the model after training the cycle.
    labeled: [M] dataset indices of the labeled set.
    subset: [N] dataset indices of the candidates (pool order).
    trial, cycle: whose keys the stochastic passes use.
  """

  exp: Experiment
  state: TrainState
  labeled: np.ndarray
  subset: np.ndarray
  trial: int
  cycle: int


def _one_model(s: Scored) -> dict:
  """Features and logits of the candidates and of the labeled set: one
  forward pass each of the single model."""
  tr, st = s.exp.trainer, s.state
  logits, feats = tr.predict(st.params, st.batch_stats, s.exp.images, s.subset)
  l_logits, l_feats = tr.predict(st.params, st.batch_stats, s.exp.images, s.labeled)
  return {"features": feats, "logits": logits, "labeled_features": l_feats,
          "labeled_logits": l_logits}


def _mc_dropout(s: Scored) -> dict:
  """The single model's pass, then `al.mc_samples` MC-dropout passes of the
  candidates with keys split from the selection key folded with MC_FOLD."""
  out = _one_model(s)
  k = jax.random.fold_in(keys(s.exp.config.seed, s.trial, s.cycle).select, MC_FOLD)
  out["sample_logits"] = s.exp.trainer.predict_mc(
      s.state.params, s.state.batch_stats, s.exp.images, s.subset,
      jax.random.split(k, s.exp.config.al.mc_samples))
  return out


def _ensemble(s: Scored) -> dict:
  """Each member's pass: the sample logits are the members' logits, the
  logits their mean prediction and the features member 0's."""
  samples, feats = _member_logits(s.exp, s.state, s.exp.images, s.subset)
  l_samples, l_feats = _member_logits(s.exp, s.state, s.exp.images, s.labeled)
  return {"features": feats[0], "logits": bayes.mean_log_probs(samples),
          "labeled_features": l_feats[0], "labeled_logits": bayes.mean_log_probs(l_samples),
          "sample_logits": samples}


def _predicted_loss(s: Scored) -> dict:
  """The candidates' losses as a learning-loss model's module predicts them."""
  return {"predicted_loss": s.exp.trainer.predict_loss(
      s.state.params, s.state.batch_stats, s.exp.images, s.subset)}


# The input providers, by what `Strategy.requires` declares. Where the sample
# logits come from decides the passes that give the features and logits too
# (an ensemble's are its members'), so one provider per `Samples` value gives
# those; then one per optional input, for a strategy whose flag asks for it,
# in this order. Each returns {Pool field: array}.
SAMPLE_PROVIDERS: dict[Samples, Callable[[Scored], dict]] = {
    Samples.NONE: _one_model,
    Samples.MC_DROPOUT: _mc_dropout,
    Samples.ENSEMBLE: _ensemble,
}
OPTIONAL_PROVIDERS: tuple[tuple[str, Callable[[Scored], dict]], ...] = (
    ("predicted_loss", _predicted_loss),
)


def providers(need: Requires) -> list[Callable[[Scored], dict]]:
  """The providers that compute the pool of a strategy with `requires` `need`, in order."""
  return [SAMPLE_PROVIDERS[need.samples]] + [
      provide for flag, provide in OPTIONAL_PROVIDERS if getattr(need, flag)]


# The Pool's arrays in the order their finiteness is checked.
_CHECKED = ("features", "logits", "labeled_features", "labeled_logits", "sample_logits",
            "predicted_loss")


@jax.jit
def _finite_and_top(checked: tuple, feats: tuple) -> tuple[jax.Array, jax.Array]:
  """(whether every array of `checked` is finite, the largest |value| of
  `feats`, 0 when it is empty) in one program per cycle's shapes: eagerly,
  each `isfinite`, `all`, `abs` and `max` compiled a program of its own for
  every new pool size."""
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in checked]))
  tops = [jnp.max(jnp.abs(f)) for f in feats if f.size]
  top = jnp.max(jnp.stack(tops)) if tops else jnp.float32(0.0)
  return finite, top


def pool(exp: Experiment, state: TrainState, labeled: np.ndarray, subset: np.ndarray,
         trial: int, cycle: int) -> strategies.Pool:
  """The strategies' input: logits and features of the candidates and of the
  labeled set under `state`, on the device (sharded over the pool on a mesh),
  plus `al.mc_samples` MC-dropout predictions of the candidates, or the
  predicted losses of a learning-loss model, for a strategy that asks for
  them (`Strategy.requires`, read through `providers`).

  Features, logits and the labeled set's features come from one forward
  pass each and are always there, whatever the strategy reads: a replay
  scores one step's pool under other settings (the study's probes).

  Raises TrainingError when the model produced non-finite values.
  """
  where = Scored(exp, state, labeled, subset, trial, cycle)
  arrays: dict = {}
  for provide in providers(exp.strategy.requires):
    arrays.update(provide(where))
  need = exp.strategy.requires
  feats = ([arrays[n] for n in ("features", "labeled_features") if n in arrays]
           if need.features or need.labeled else [])
  finite, top = _finite_and_top(tuple(arrays[n] for n in _CHECKED if n in arrays), tuple(feats))
  if not bool(finite):
    raise TrainingError(f"cycle {cycle}: the model produced non-finite features or logits, "
                        "so no strategy can score the pool; the network diverged; "
                        f"{train_lib.divergence_fix(exp.config.train)}")
  if feats:
    # Finite but huge features overflow the float32 distances the strategy
    # computes: NaN scores and repeated picks, not a selection.
    from jax_al import selection
    top = float(top)
    rows, dim = sum(int(f.shape[0]) for f in feats), int(feats[0].shape[-1])
    if top > selection.feature_limit(rows, dim):
      raise TrainingError(f"cycle {cycle}: the model's features reach {top:.3g}, so the "
                          "squared distances the strategy computes overflow float32; the "
                          f"network diverged; {train_lib.divergence_fix(exp.config.train)}")
  return sharding.place_pool(exp.mesh, strategies.Pool(
      num_classes=exp.ds.num_classes,
      labeled_capacity=labeled_capacity(exp.config, exp.num_train), **arrays))


@dataclasses.dataclass(frozen=True)
class Picked:
  """A cycle's selection.

  Attributes:
    indices: [budget] dataset indices of the picks.
    stats: the record's selection fields: features_s, strategy_s, scored,
      select_compile_s (the part of the step spent compiling) and the
      strategy's own statistics.
    seconds: the whole step (candidates, features pass, strategy).
  """

  indices: np.ndarray
  stats: dict
  seconds: float


def select(exp: Experiment, trial: int, cycle: int, labeled: np.ndarray,
           state: TrainState) -> Picked | None:
  """Scores the candidates of a cycle under `state` and picks `al.budget` of
  them (fewer when fewer are left); None when the pool is empty."""
  from jax_al import compiles

  t0 = time.perf_counter()
  subset = candidates(exp, trial, cycle, labeled)
  if len(subset) == 0:
    return None
  budget = min(exp.config.al.budget, len(subset))
  # The selection's own compilation, apart: the first call of a strategy pays
  # for it, which would make it look slower than the later, steady ones.
  with compiles.CompileLog() as clog:
    p = pool(exp, state, labeled, subset, trial, cycle)
    t_feat = time.perf_counter() - t0
    t1 = time.perf_counter()
    key = keys(exp.config.seed, trial, cycle).select

    def pick():
      sel = exp.strategy.select(p, budget, key)
      return sel, np.asarray(sel.indices)

    # A compiled selection can hold the main thread for minutes (a large
    # pool): run it where a Ctrl-C is still answered at once.
    sel, idx = errors.answering_signals(pick)
    t_sel = time.perf_counter() - t1
  if (len(idx) != budget or len(np.unique(idx)) != budget or idx.min() < 0
      or idx.max() >= len(subset)):
    raise RuntimeError(f"strategy {exp.config.al.strategy} returned invalid indices "
                       f"{idx[:10]}...")
  stats = {"features_s": t_feat, "strategy_s": t_sel, "scored": int(len(subset)),
           "select_compile_s": min(clog.seconds, time.perf_counter() - t0),
           **{k: float(v) for k, v in sel.stats.items()}}
  return Picked(subset[idx], stats, time.perf_counter() - t0)
