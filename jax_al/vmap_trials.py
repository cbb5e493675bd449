"""Trials vmapped on one accelerator: `compare.parallel = "vmap"`.

Every trial of a run grows its labeled set by the same budget, so at every
cycle all trials train on sets of one size. T trials can then train as one
program: `jax.vmap` of the very step of `jax_al.train` over a leading trial
axis of the state (params, batch statistics, optimizer state), the epoch
orders and the augmentation keys. The uint8 images and labels are shared
(`in_axes=None`), not copied. The validity mask of the padded batches
depends only on the labeled-set size, so it is shared too: a chunk's
"skip padding-only steps" `lax.cond` stays a real branch under vmap.

Each trial keeps its own named random streams, folded exactly as in
`Trainer.fit`, so a vmapped run trains the same models as the sequential
run; only the arithmetic of the batched kernels may differ in the last bits.
Evaluation and selection stay per trial (`Trainer.evaluate` / `predict` on
each trial's slice of the stacked state).

The step variants of `train.StepConfig` (skip_padding, bn_mask,
epochs_per_call, flat_state) apply here too. With `epochs_per_call`, the
labeled count goes in as one shared scalar, so the validity mask and the
on-device loops' trip counts stay unbatched.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_al import sharding, train
from jax_al.errors import ConfigError
from jax_al.train import TrainState, Trainer


def check(config, mesh) -> None:
  """`compare.parallel = "vmap"` stacks trials on one device: not with a multi-device mesh."""
  if config.compare.parallel == "vmap" and config.num_trials > 1 and mesh is not None:
    raise ConfigError("compare.parallel", "vmap",
                      f"vmapped trials run on one device, but mesh.data = {config.mesh.data} "
                      f"spreads each batch over {sharding.mesh_size(mesh)} devices; use "
                      "--config.compare.parallel=none with the mesh, or --config.mesh.data=1 "
                      "to train the trials vmapped on one device")


def check_config(config) -> None:
  """`check` decided by the config alone, before any mesh exists: vmapped
  trials need `mesh.data = 1`."""
  if config.compare.parallel == "vmap" and config.num_trials > 1 and config.mesh.data != 1:
    raise ConfigError("mesh.data", config.mesh.data,
                      "vmapped trials run on one device; use --config.mesh.data=1, or "
                      "train the trials one after another (compare.parallel=none)")


def stacks_trials(config) -> bool:
  """Whether the trials of `config`'s strategy can train as one vmapped program.

  An ensemble strategy cannot: its members already are one vmapped program
  per trial, on one device (`jax_al.preflight` refuses vmapped trials and a
  mesh where this is False).
  """
  from jax_al import strategies

  return (strategies.get_strategy(config.al.strategy, config.al).requires.samples
          is not strategies.base.Samples.ENSEMBLE)


def stack(states: Sequence[Any]):
  """Per-trial pytrees -> one pytree with a leading trial axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def unstack(stacked, num: int) -> list:
  """The inverse of `stack`: `num` per-trial pytrees (copies)."""
  return [jax.tree.map(lambda x, t=t: x[t], stacked) for t in range(num)]


_fold = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))


class StackedTrainer:
  """Trains T models of one architecture as one vmapped program.

  Wraps a single-device `Trainer` (same graph, step settings and optimizer)
  and reuses its `evaluate` per trial. Build it once per Trainer: the vmapped
  step compiles once per number of trials.
  """

  def __init__(self, trainer: Trainer):
    if trainer.mesh is not None:  # `check` tells a user this before anything runs
      raise ValueError("a StackedTrainer stacks trials on one device: give it a Trainer "
                       "without a mesh")
    self.base, self.sc = trainer, trainer.sc
    step = functools.partial(train.train_chunk, trainer.graphdef, trainer.tx, trainer.sc)
    # (state, loss_sum, images, labels, order, valid, start, rng, lr): per trial or shared.
    axes = (0, 0, None, None, 0, None, None, 0, None)
    self._train = jax.jit(jax.vmap(step, in_axes=axes), donate_argnums=(0, 1))
    self._order = jax.jit(jax.vmap(train.epoch_order, in_axes=(0, 0, None, None)),
                          static_argnums=(2, 3))
    # The step variants (train.StepConfig), vmapped the same way.
    vstep = lambda full: jax.vmap(functools.partial(step, full=full), in_axes=axes)
    self._chunks = train.StepFns(self.sc, {False: vstep(False), True: vstep(True)},
                                 donate=(0, 1), default=self._train)
    # (state, images, labels, labeled_mask, num_labeled, order_key, aug_key, first, n, lrs):
    # the labeled count is shared, so the validity mask and the trip counts stay unbatched.
    epochs = functools.partial(train.train_epochs, trainer.graphdef, trainer.tx, self.sc,
                               trainer.rows)
    self._epochs = train.StepFns(
        self.sc, {False: jax.vmap(epochs, in_axes=(0, None, None, 0, None, 0, 0, None, None,
                                                   None))}, donate=(0,))
    # A learning-loss run's epochs after its detach epoch (`Trainer.at`).
    self.after_detach = None if trainer.after_detach is None else StackedTrainer(
        trainer.after_detach)

  def at(self, epoch: int) -> "StackedTrainer":
    return self if self.after_detach is None or self.base.at(epoch) is self.base else (
        self.after_detach)

  def run_epoch(self, state: TrainState, images, labels, labeled_masks, num_labeled: int,
                order_keys, aug_keys, lr: float):
    """One epoch of every trial; returns (state, mean loss per trial [T])."""
    order, valid = self._order(order_keys, labeled_masks, self.sc.batch_size, self.base.rows)
    valid = valid[0]  # the same for every trial: it depends on the set size only
    steps = math.ceil(num_labeled / self.sc.batch_size)
    lr_ = jnp.asarray(np.float32(lr))
    loss_sum = jnp.zeros((aug_keys.shape[0],), jnp.float32)
    n_full = train.full_chunks(self.sc, num_labeled)
    state, unpack = self._chunks.pack(state)
    for c in range(math.ceil(steps / self.sc.steps_per_call)):
      start = jnp.asarray(np.int32(c * self.sc.steps_per_call))
      state, loss_sum = self._chunks.fn(c < n_full)(state, loss_sum, images, labels, order,
                                                    valid, start, aug_keys, lr_)
    return unpack(state), loss_sum / steps

  def run_epochs(self, state: TrainState, images, labels, labeled_masks, num_labeled: int,
                 order_keys, aug_keys, first_epoch: int, lrs: Sequence[float]):
    """`Trainer.run_epochs` for every trial: the run's (unfolded) keys per
    trial; returns (state, mean losses [T, epochs_per_call])."""
    k = self.sc.epochs_per_call
    if not 1 <= len(lrs) <= k:
      raise ValueError(f"{len(lrs)} epochs in one call; train.epochs_per_call is {k}")
    lr_arr = np.zeros(k, np.float32)
    lr_arr[:len(lrs)] = np.asarray(lrs, np.float32)
    state, unpack = self._epochs.pack(state)
    state, losses = self._epochs.fn(False)(
        state, images, labels, labeled_masks, np.int32(num_labeled), order_keys, aug_keys,
        np.int32(first_epoch), np.int32(len(lrs)), lr_arr)
    return unpack(state), losses

  def fit(self, state: TrainState, images, labels, labeled_idx: Sequence[np.ndarray],
          test_idx: np.ndarray, test_images, test_labels, train_cfg,
          order_keys: Sequence[jax.Array], aug_keys: Sequence[jax.Array],
          on_eval: Callable[[int, dict], None] | None = None,
          progress: Callable[[int], None] | None = None):
    """`Trainer.fit` for stacked trials: trial t trains on `labeled_idx[t]`.

    The epoch loop is `train.fit_epochs`, the one `Trainer.fit` runs. Every
    labeled set must have the same size. Calls `on_eval(t, record)` per trial
    at each evaluation, in trial order. A non-finite training loss raises
    TrainingError with the attribute `trial` (its index here). Returns
    (stacked state, [history of each trial]).
    """
    num = len(labeled_idx)
    sizes = sorted({len(l) for l in labeled_idx})
    if len(sizes) != 1 or len(order_keys) != num or len(aug_keys) != num:
      raise ValueError(f"stacked trials need labeled sets of one size and one key each; "
                       f"got sizes {sizes}, {len(order_keys)} order and {len(aug_keys)} "
                       f"augmentation keys for {num} trials")
    masks = np.zeros((num, labels.shape[0]), bool)
    for t, idx in enumerate(labeled_idx):
      masks[t, idx] = True
    masks = jnp.asarray(masks)
    order_keys, aug_keys = jnp.stack(list(order_keys)), jnp.stack(list(aug_keys))
    n = sizes[0]
    pick = lambda tree, t: jax.tree.map(lambda x: x[t], tree)
    return train.fit_epochs(
        state, train_cfg, self.sc, num,
        epoch=lambda st, e, lr: self.at(e).run_epoch(st, images, labels, masks, n,
                                                     _fold(order_keys, e), _fold(aug_keys, e),
                                                     lr),
        epochs=lambda st, first, lrs: self.at(first).run_epochs(
            st, images, labels, masks, n, order_keys, aug_keys, first, lrs),
        evaluate=lambda st, t: self.base.evaluate(*pick((st.params, st.batch_stats), t),
                                                  test_images, test_labels, test_idx),
        on_eval=on_eval, progress=progress)
