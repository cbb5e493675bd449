"""Trials vmapped on one accelerator: `compare.parallel = "vmap"`.

Every trial of a run grows its labeled set by the same budget, so at every
cycle all trials train on sets of one size. T trials can then train as one
program: `jax.vmap` of the very step of `jax_al.train.steps` over a leading trial
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

The epoch loops are the Trainer's own (`jax_al.train.trainer.run_epoch` /
`run_epochs`), given the vmapped programs, so the step variants of
`StepVariant` (skip_padding, bn_mask, epochs_per_call, flat_state) apply
here too. With `epochs_per_call`, the labeled count goes in as one shared
scalar, so the validity mask and the on-device loops' trip counts stay
unbatched.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_al.train import steps, trainer as trainer_lib
from jax_al.train.steps import TrainState
from jax_al.train.trainer import Trainer


def stacks_trials(strategy: str) -> bool:
  """Whether the trials of the strategy registered as `strategy` can train
  as one vmapped program (read from its class's `requires`).

  An ensemble strategy cannot: its members already are one vmapped program
  per trial, on one device (`jax_al.preflight` refuses vmapped trials and a
  mesh where this is False).
  """
  from jax_al.strategies import base

  return base.requires_of(strategy).samples is not base.Samples.ENSEMBLE


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
    step = functools.partial(steps.train_chunk, trainer.graphdef, trainer.tx, trainer.sc)
    # (state, loss_sum, images, labels, order, valid, start, rng, lr): per trial or shared.
    axes = (0, 0, None, None, 0, None, None, 0, None)
    self._train = jax.jit(jax.vmap(step, in_axes=axes), donate_argnums=(0, 1))
    vorder = jax.jit(jax.vmap(steps.epoch_order, in_axes=(0, 0, None, None)),
                     static_argnums=(2, 3))

    def order(keys, masks, batch_size, rows):
      order, valid = vorder(keys, masks, batch_size, rows)
      return order, valid[0]  # the same for every trial: it depends on the set size only

    self._order = order
    # The step variants (StepVariant), vmapped the same way.
    vstep = lambda full: jax.vmap(functools.partial(step, full=full), in_axes=axes)
    flat = self.sc.variant.flat_state
    self._chunks = trainer_lib.StepFns(flat, {False: vstep(False), True: vstep(True)},
                                       donate=(0, 1), default=self._train)
    # (state, images, labels, labeled_mask, num_labeled, order_key, aug_key, first, n, lrs):
    # the labeled count is shared, so the validity mask and the trip counts stay unbatched.
    epochs = functools.partial(steps.train_epochs, trainer.graphdef, trainer.tx, self.sc,
                               trainer.rows)
    self._epochs = trainer_lib.StepFns(
        flat, {False: jax.vmap(epochs, in_axes=(0, None, None, 0, None, 0, 0, None, None,
                                                None))}, donate=(0,))
    # A learning-loss run's epochs after its detach epoch (`Trainer.at`).
    self.after_detach = None if trainer.after_detach is None else StackedTrainer(
        trainer.after_detach)

  def at(self, epoch: int) -> "StackedTrainer":
    return self if self.after_detach is None or self.base.at(epoch) is self.base else (
        self.after_detach)

  def run_epoch(self, state: TrainState, images, labels, labeled_masks, num_labeled: int,
                order_keys, aug_keys, lr: float):
    """One epoch of every trial; returns (state, mean loss per trial [T]).

    The Trainer's epoch loop (`trainer.run_epoch`) over the vmapped programs."""
    return trainer_lib.run_epoch(self.sc, self.base.rows, self._chunks, self._order, state,
                                 jnp.zeros((aug_keys.shape[0],), jnp.float32), images, labels,
                                 labeled_masks, num_labeled, order_keys, aug_keys, lr)

  def run_epochs(self, state: TrainState, images, labels, labeled_masks, num_labeled: int,
                 order_keys, aug_keys, first_epoch: int, lrs: Sequence[float]):
    """`Trainer.run_epochs` for every trial (the same loop, `trainer.run_epochs`,
    over the vmapped program): the run's (unfolded) keys per trial; returns
    (state, mean losses [T, epochs_per_call])."""
    return trainer_lib.run_epochs(self.sc, self._epochs, state, images, labels, labeled_masks,
                                  num_labeled, order_keys, aug_keys, first_epoch, lrs)

  def fit(self, state: TrainState, images, labels, labeled_idx: Sequence[np.ndarray],
          test_idx: np.ndarray, test_images, test_labels, train_cfg,
          order_keys: Sequence[jax.Array], aug_keys: Sequence[jax.Array],
          on_eval: Callable[[int, dict], None] | None = None,
          progress: Callable[[int], None] | None = None):
    """`Trainer.fit` for stacked trials: trial t trains on `labeled_idx[t]`.

    The epoch loop is `trainer.fit_epochs`, the one `Trainer.fit` runs. Every
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
    return trainer_lib.fit_epochs(
        state, train_cfg, self.sc, num,
        epoch=lambda st, e, lr: self.at(e).run_epoch(st, images, labels, masks, n,
                                                     _fold(order_keys, e), _fold(aug_keys, e),
                                                     lr),
        epochs=lambda st, first, lrs: self.at(first).run_epochs(
            st, images, labels, masks, n, order_keys, aug_keys, first, lrs),
        evaluate=lambda st, t: self.base.evaluate(*pick((st.params, st.batch_stats), t),
                                                  test_images, test_labels, test_idx),
        on_eval=on_eval, progress=progress)
