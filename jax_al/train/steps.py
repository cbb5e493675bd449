"""The pure training and evaluation functions (the `Trainer` jits them).

The model is split once (`nnx.split`) into a graph definition and plain
pytrees (params, batch statistics); the functions merge them inside. The
whole dataset sits on the device as uint8 and each step gathers its batch by
index, so no host-to-device copy happens per step.

Every step has one fixed shape: the epoch order is a [rows, batch] index
array over the *whole* training set with a validity mask, the last partial
batch is padded and masked (it is trained, not dropped), and steps without a
valid row are skipped. So labeled-set growth never triggers a recompilation.

Data parallelism (optional `mesh`, see `jax_al.sharding`): the same
functions, with the gathered batch constrained to `NamedSharding(mesh,
P("data"))` and the state to `P()` (replicated). XLA inserts the all-reduces,
so the loss, gradients and BatchNorm statistics are those of the global batch
and the result matches the single-device run within float tolerance. The
uint8 images stay replicated: each device gathers its own rows locally.

Nothing here jits or vmaps a step: `jax_al.train.trainer` does, once per run,
and `jax_al.vmap_trials` vmaps the same functions over stacked trials.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jax_al import augment, schema
from jax_al import sharding as sharding_lib
from jax_al.models import create_model, loss_net
from jax_al.models.layers import head_dropout


@dataclasses.dataclass(frozen=True)
class StepVariant:
  """How the steps run: the benchmark-only train.* fields (`StepVariant()` is
  the shipped path, see docs/bench/README.md). Each variant trains the same
  steps with the same keys; only the programs differ.

  Attributes:
    skip_padding: how a chunk skips its padding-only steps: "cond" (a
      `lax.cond`), "select" (the step is computed and its update dropped by a
      select) or "while" (a loop over the chunk's real steps only: a dynamic
      trip count).
    bn_mask: "always" masks BatchNorm in every step; "partial" runs the chunks
      made only of full batches without mask, skip or select (another program).
    epochs_per_call: 0 = one jitted call per chunk; k >= 1 = up to k epochs per
      call, the chunks looped on the device (`Trainer.run_epochs`).
    flat_state: the jitted calls take the state as a flat list of leaves.
  """

  skip_padding: str = schema.FIELDS["train.skip_padding"].default
  bn_mask: str = schema.FIELDS["train.bn_mask"].default
  epochs_per_call: int = schema.FIELDS["train.epochs_per_call"].default
  flat_state: bool = schema.FIELDS["train.flat_state"].default

  @classmethod
  def from_config(cls, train_cfg) -> "StepVariant":
    """The variant of `config.train` (the one place that reads these fields)."""
    return cls(skip_padding=str(train_cfg.skip_padding), bn_mask=str(train_cfg.bn_mask),
               epochs_per_call=int(train_cfg.epochs_per_call),
               flat_state=bool(train_cfg.flat_state))


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """Static settings of the steps (hashable: a Trainer is cached per StepConfig)."""

  batch_size: int
  steps_per_call: int
  eval_batch_size: int
  flip: bool
  crop_pad: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  dtype: str
  momentum: float
  weight_decay: float
  variant: StepVariant = StepVariant()
  # The learning-loss objective (the model carries a loss-prediction module),
  # or None: plain cross-entropy.
  learning_loss: loss_net.Objective | None = None

  @classmethod
  def from_config(cls, config, num_train: int) -> "StepConfig":
    t = config.train
    rows = math.ceil(num_train / t.batch_size)
    spc = t.steps_per_call if t.steps_per_call > 0 else auto_steps_per_call(rows)
    return cls(batch_size=t.batch_size, steps_per_call=min(spc, rows),
               eval_batch_size=t.eval_batch_size, flip=bool(config.augment.flip),
               crop_pad=int(config.augment.crop_pad), mean=tuple(config.data.mean),
               std=tuple(config.data.std), dtype=t.dtype, momentum=t.momentum,
               weight_decay=t.weight_decay, variant=StepVariant.from_config(t),
               learning_loss=loss_net.objective(config))


def auto_steps_per_call(rows: int) -> int:
  """`train.steps_per_call = 0`: 1 on CPU, chunks of up to 40 steps elsewhere.

  XLA:CPU runs convolutions inside a while loop (`lax.scan`) about 14x slower
  than the same steps outside one (measured here: 4 steps of a tiny
  ResNet-18, 38 s in a scan vs 2.7 s as separate calls). On a GPU a fused
  chunk removes per-step dispatch; 40 steps (5,120 images at batch 128) keeps
  the skipped padding steps of the last chunk few while the labeled set
  grows from 5,000 to 20,000.
  """
  return 1 if jax.default_backend() == "cpu" else min(rows, 40)


class TrainState(NamedTuple):
  params: Any
  batch_stats: Any
  opt_state: Any


def init_model(config, num_classes: int, image_shape: tuple[int, int, int], rng: jax.Array):
  """Returns (graphdef, params, batch_stats) of a freshly initialised model.

  A learning-loss run (`loss_net.enabled`) wraps the model with its
  loss-prediction module, drawn after the model from the same stream, so the
  model's own initial weights are those of every other run.
  """
  seed = int(jax.random.randint(rng, (), 0, 2**31 - 1))
  rngs = nnx.Rngs(seed)
  model = create_model(config.model, num_classes, image_shape, config.train.dtype, rngs)
  if loss_net.enabled(config):
    model = loss_net.LossPredictionModel(model, jnp.dtype(config.train.dtype), rngs=rngs)
  return nnx.split(model, nnx.Param, nnx.BatchStat)


def make_optimizer(sc: StepConfig) -> optax.GradientTransformation:
  """PyTorch-style SGD: the decay joins the gradient before momentum.

  The learning rate is applied outside (`lr` argument of the steps), so one
  compiled step serves every epoch of the multistep schedule.
  """
  return optax.chain(optax.add_decayed_weights(sc.weight_decay),
                     optax.sgd(learning_rate=1.0, momentum=sc.momentum))


def learning_rate(train_cfg, epoch: int) -> float:
  """Multistep schedule: lr * gamma^(number of milestones <= epoch), epoch 0-based.

  Host arithmetic in float32, bit for bit `optax.piecewise_constant_schedule`
  (tests/test_train.py): evaluating that schedule on the device each epoch
  and reading it back would wait for the queued training steps, a host sync
  per epoch.
  """
  lr = np.float32(train_cfg.lr)
  for m in sorted({int(m) for m in train_cfg.milestones}):
    if epoch >= m:
      lr = lr * np.float32(train_cfg.gamma)
  return float(lr)


def loss_fn(graphdef, params, batch_stats, x, y, mask, bn_mask: bool = True,
            dropout_rng=None, learning_loss: loss_net.Objective | None = None):
  """Masked mean cross-entropy; returns (loss, new batch statistics).

  `bn_mask=False` leaves the mask out of BatchNorm: only for batches whose
  rows are all valid, where the statistics are the same up to rounding.
  `dropout_rng` draws the dropout mask of models with `model.dropout > 0`.
  With `learning_loss`, the loss adds weight x the ranking loss of the
  model's predicted losses against the per-sample cross-entropies (valid
  rows are a prefix of the batch, as `epoch_order_n` lays them out).
  """
  model = nnx.merge(graphdef, params, batch_stats, copy=True)
  bn = mask if bn_mask else None
  if learning_loss is None:
    logits, _ = model(x, train=True, mask=bn, dropout_rng=dropout_rng)
  else:
    logits, _, predicted = model.with_loss(x, train=True, mask=bn, dropout_rng=dropout_rng,
                                           detach=learning_loss.detached)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
  m = mask.astype(jnp.float32)
  loss = jnp.sum(ce * m) / jnp.maximum(jnp.sum(m), 1.0)
  if learning_loss is not None:
    loss = loss + learning_loss.weight * loss_net.ranking_loss(
        predicted, ce, jnp.sum(mask.astype(jnp.int32)), learning_loss.margin)
  return loss, nnx.state(model, nnx.BatchStat)


# Folded into a step's augmentation key to give its dropout key.
DROPOUT_FOLD = 0x64726F70


def _constrain(tree, mesh: Mesh | None, spec: P):
  """`with_sharding_constraint` on every leaf, or nothing without a mesh."""
  if mesh is None:
    return tree
  return jax.lax.with_sharding_constraint(tree, NamedSharding(mesh, spec))


def train_step(graphdef, tx, sc: StepConfig, state: TrainState, images, labels,
               idx, mask, rng, lr, mesh: Mesh | None = None, bn_mask: bool = True):
  """One SGD step on the batch `images[idx]` (rows with mask False are padding).

  With a `mesh`, the batch rows are sharded over its "data" axis and the
  returned state is replicated. `bn_mask=False`: a full batch, BatchNorm
  without the mask (see `loss_fn`).
  """
  idx, mask = _constrain((idx, mask), mesh, P(sharding_lib.DATA))
  x = _constrain(images[idx], mesh, P(sharding_lib.DATA))
  y = _constrain(labels[idx], mesh, P(sharding_lib.DATA))
  x = augment.train_view(rng, x, flip=sc.flip, crop_pad=sc.crop_pad,
                         mean=sc.mean, std=sc.std, dtype=jnp.dtype(sc.dtype))
  x = _constrain(x, mesh, P(sharding_lib.DATA))
  # The dropout mask's key comes from the step's key, so it is a pure function
  # of (seed, trial, cycle, epoch, step): no RNG state to carry or checkpoint.
  (loss, bs), grads = jax.value_and_grad(loss_fn, argnums=1, has_aux=True)(
      graphdef, state.params, state.batch_stats, x, y, mask, bn_mask,
      jax.random.fold_in(rng, DROPOUT_FOLD), sc.learning_loss)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = jax.tree.map(lambda p, u: p + lr * u.astype(p.dtype), state.params, updates)
  return _constrain(TrainState(params, bs, opt_state), mesh, P()), loss


def train_steps(graphdef, tx, sc: StepConfig, state: TrainState, images, labels,
                order, valid, start, rng, lr, mesh: Mesh | None = None, full: bool = False):
  """`sc.steps_per_call` steps fused in one `lax.scan`, rows start..start+S.

  A step whose rows are all padding leaves the state untouched (no momentum
  or batch-statistics update) and reports a loss of 0, so that summing the
  losses of a chunk counts real steps only (a NaN still propagates). How it
  is skipped follows `sc.variant.skip_padding` (see `StepVariant`). `full=True`: the
  caller guarantees every row of the chunk is valid, so no step is skipped
  and BatchNorm runs unmasked (`sc.variant.bn_mask = "partial"`).
  """
  s = sc.steps_per_call
  step = lambda st, i, idx, m: train_step(graphdef, tx, sc, st, images, labels, idx, m,
                                          jax.random.fold_in(rng, start + i), lr, mesh,
                                          bn_mask=not full)
  if s == 1:  # no loop at all: see `auto_steps_per_call`
    st, loss = step(state, 0, order[start], valid[start])
    return st, loss[None]
  rows = jax.lax.dynamic_slice_in_dim(order, start, s)
  masks = jax.lax.dynamic_slice_in_dim(valid, start, s)
  steps = jnp.arange(s)
  if full:  # every step real: no branch, no select, no mask
    return jax.lax.scan(lambda st, xs: step(st, *xs), state, (steps, rows, masks))

  if sc.variant.skip_padding == "while":
    # Valid rows are a prefix of the epoch order, so the real steps are the
    # first n of the chunk: loop over exactly those (dynamic trip count).
    n = jnp.sum(jnp.any(masks, axis=1)).astype(jnp.int32)

    def wbody(i, carry):
      st, losses = carry
      st, loss = step(st, i, rows[i], masks[i])
      return st, losses.at[i].set(loss)

    return jax.lax.fori_loop(0, n, wbody, (state, jnp.zeros((s,), jnp.float32)))

  if sc.variant.skip_padding == "select":
    def sbody(st, xs):
      i, idx, m = xs
      new, loss = step(st, i, idx, m)
      real = jnp.any(m)
      # A padding-only step is computed and its result dropped: no branch.
      st = jax.tree.map(lambda a, b: jnp.where(real, a, b), new, st)
      return st, jnp.where(real, loss, jnp.float32(0.0))

    return jax.lax.scan(sbody, state, (steps, rows, masks))

  def body(st, xs):
    i, idx, m = xs
    run = lambda st: step(st, i, idx, m)
    skip = lambda st: (st, jnp.float32(0.0))
    return jax.lax.cond(jnp.any(m), run, skip, st)

  return jax.lax.scan(body, state, (steps, rows, masks))


def train_chunk(graphdef, tx, sc: StepConfig, state: TrainState, loss_sum, images, labels,
                order, valid, start, rng, lr, mesh: Mesh | None = None, full: bool = False):
  """`train_steps`, adding the chunk's step losses to the running `loss_sum`.

  The epoch's loss stays on the device: no host sync and no concatenation
  whose shape follows the labeled-set size (which would compile anew each
  cycle).
  """
  state, losses = train_steps(graphdef, tx, sc, state, images, labels, order, valid, start,
                              rng, lr, mesh, full)
  return state, loss_sum + jnp.sum(losses)


def full_chunks(sc: StepConfig, num_labeled):
  """Chunks at the start of an epoch whose batches are all full (no padding row).

  Works on Python ints and on traced integers alike.
  """
  if sc.variant.bn_mask != "partial":
    return 0 * num_labeled
  return num_labeled // (sc.batch_size * sc.steps_per_call)


def train_epochs(graphdef, tx, sc: StepConfig, rows: int, state: TrainState, images, labels,
                 labeled_mask, num_labeled, order_key, aug_key, first_epoch, n_epochs, lrs,
                 mesh: Mesh | None = None):
  """Epochs first_epoch .. first_epoch + n_epochs - 1 in one program.

  `sc.variant.epochs_per_call = k`: `lrs` holds k learning rates (the first
  `n_epochs` used) and the k per-epoch mean losses come back (0 past
  `n_epochs`). Every epoch draws its order from `fold_in(order_key, epoch)`
  and its augmentation from `fold_in(aug_key, epoch)`, and runs the chunks
  of `train_steps` in an on-device loop whose trip count is the epoch's own
  number of chunks, so the same programs and keys as `Trainer.run_epoch`.
  """
  s, b = sc.steps_per_call, sc.batch_size
  num_labeled = jnp.asarray(num_labeled, jnp.int32)
  steps = (num_labeled + b - 1) // b
  n_chunks = (steps + s - 1) // s
  n_full = full_chunks(sc, num_labeled)

  def epoch_body(e, carry):
    st, losses = carry
    epoch = first_epoch + e
    order, valid = epoch_order_n(jax.random.fold_in(order_key, epoch), labeled_mask,
                                 num_labeled, b, rows)
    akey, lr = jax.random.fold_in(aug_key, epoch), lrs[e]

    def chunk(full):
      def body(c, carry):
        st, loss_sum = carry
        return train_chunk(graphdef, tx, sc, st, loss_sum, images, labels, order, valid,
                           (c * s).astype(jnp.int32), akey, lr, mesh, full)
      return body

    carry = (st, jnp.zeros((), jnp.float32))
    carry = jax.lax.fori_loop(0, n_full, chunk(True), carry)
    st, loss_sum = jax.lax.fori_loop(n_full, n_chunks, chunk(False), carry)
    return st, losses.at[e].set(loss_sum / steps)

  k = lrs.shape[0]
  return jax.lax.fori_loop(0, n_epochs, epoch_body, (state, jnp.zeros((k,), jnp.float32)))


def epoch_order(key, labeled_mask, batch_size: int, rows: int):
  """A random order of the labeled examples as [rows, batch] indices + validity.

  Works on the fixed-size mask over the whole training set, so its shape never
  depends on the labeled-set size: labeled examples get a uniform key in
  [0, 1), the others 2, and the argsort puts a random permutation of the
  labeled set first.
  """
  return epoch_order_n(key, labeled_mask, jnp.sum(labeled_mask), batch_size, rows)


def epoch_order_n(key, labeled_mask, num_labeled, batch_size: int, rows: int):
  """`epoch_order` with the labeled count given (vmapped trials share it, so
  the validity mask, and every branch on it, stays unbatched)."""
  n = labeled_mask.shape[0]
  keys = jnp.where(labeled_mask, jax.random.uniform(key, (n,)), 2.0)
  order = jnp.argsort(keys).astype(jnp.int32)
  total = rows * batch_size
  order = jnp.pad(order, (0, total - n))
  valid = jnp.arange(total) < num_labeled
  return order.reshape(rows, batch_size), valid.reshape(rows, batch_size)


def _inference_input(graphdef, sc: StepConfig, params, batch_stats, images, idx, mesh):
  """(the merged model, the normalised batch `images[idx]`, sharded over the mesh)."""
  model = nnx.merge(graphdef, params, batch_stats)
  idx = _constrain(idx, mesh, P(sharding_lib.DATA))
  x = _constrain(images[idx], mesh, P(sharding_lib.DATA))
  return model, augment.normalize(x, sc.mean, sc.std, jnp.dtype(sc.dtype))


def eval_chunk(graphdef, sc: StepConfig, params, batch_stats, images, idx,
               mesh: Mesh | None = None):
  """Logits and features (float32) of `images[idx]` in inference mode."""
  model, x = _inference_input(graphdef, sc, params, batch_stats, images, idx, mesh)
  return _constrain(model(x, train=False), mesh, P(sharding_lib.DATA))


def mc_chunk(graphdef, sc: StepConfig, params, batch_stats, images, idx, keys,
             mesh: Mesh | None = None):
  """[T, B, C] float32 logits of `images[idx]` under T dropout masks (one per key).

  Dropout sits only before the head, so the network body runs once in
  inference mode and only the head is applied T times (vmapped).
  """
  model = nnx.merge(graphdef, params, batch_stats)
  _, feats = eval_chunk(graphdef, sc, params, batch_stats, images, idx, mesh)
  head = lambda k: model.head(head_dropout(model.drop, feats, k)).astype(jnp.float32)
  return jax.vmap(head)(keys)


def loss_chunk(graphdef, sc: StepConfig, params, batch_stats, images, idx,
               mesh: Mesh | None = None):
  """[B] float32 predicted losses of `images[idx]` (a learning-loss model), inference mode."""
  model, x = _inference_input(graphdef, sc, params, batch_stats, images, idx, mesh)
  return _constrain(model.with_loss(x, train=False)[2], mesh, P(sharding_lib.DATA))
