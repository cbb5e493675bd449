"""The stateful side of training: the jitted programs of a run and its epoch loop.

`Trainer` jits the pure functions of `jax_al.train.steps` once per run (one
program per step variant used) and drives them from the host: `run_epoch`
calls one jitted chunk after another, `run_epochs` one on-device loop over
several epochs, `fit_epochs` runs the schedule, the evaluations and the
divergence check. The epoch loops take their programs as arguments, so the
vmapped trials of `jax_al.vmap_trials` run the very same loops with the
steps vmapped over a leading trial axis.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax.sharding import Mesh, PartitionSpec as P

from jax_al import sharding as sharding_lib
from jax_al.errors import ConfigError, TrainingError
from jax_al.train.steps import (StepConfig, TrainState, epoch_order,
                                eval_chunk, full_chunks, learning_rate,
                                loss_chunk, make_optimizer, mc_chunk, train_chunk,
                                train_epochs)


class StepFns:
  """The jitted programs of one kind of train call, keyed by `full`.

  With `flat_state` (`StepVariant.flat_state`), each takes and returns the
  state as a flat list of leaves (one jit per tree structure): jit's
  flattening of the nested nnx.State containers runs once per epoch (`pack`)
  instead of once per call.
  Otherwise `fn` returns plain jits of the functions (`default` for the
  masked one, the Trainer's original attribute) and `pack` is the identity.
  """

  def __init__(self, flat_state: bool, fns: dict, donate: tuple, default=None):
    self.flat_state, self.fns, self.donate = bool(flat_state), fns, donate
    self._jits = {} if default is None else {(False, None): default}
    self._treedef = None

  def pack(self, state):
    """(what the calls take, a function turning their result back into a state)."""
    if not self.flat_state:
      return state, lambda st: st
    leaves, treedef = jax.tree.flatten(state)
    self._treedef = treedef
    return leaves, lambda leaves: jax.tree.unflatten(treedef, leaves)

  def fn(self, full: bool):
    key = (bool(full), self._treedef if self.flat_state else None)
    f = self._jits.get(key)
    if f is None:
      base = self.fns[bool(full)]
      if self.flat_state:
        treedef = self._treedef

        def flat(leaves, *args):
          st, *rest = base(jax.tree.unflatten(treedef, leaves), *args)
          return (jax.tree.leaves(st), *rest)

        f = jax.jit(flat, donate_argnums=self.donate)
      else:
        f = jax.jit(base, donate_argnums=self.donate)
      self._jits[key] = f
    return f

  def executables(self) -> int | None:
    try:
      return int(sum(f._cache_size() for f in self._jits.values()))
    except Exception:  # a private jax API: absent in some version
      return None


def run_epoch(sc: StepConfig, rows: int, chunks: StepFns, order_fn: Callable, state, loss_sum,
              images, labels, labeled_mask, num_labeled: int, order_key, aug_key, lr: float,
              scalar: Callable = jnp.asarray):
  """One epoch over the labeled set; returns (state, mean loss on the device).

  The one host loop over an epoch's chunks, for a single model
  (`Trainer.run_epoch`) and for vmapped stacked trials
  (`jax_al.vmap_trials.StackedTrainer.run_epoch`): they differ only in the
  programs they pass. `chunks` holds the jitted `train_chunk` programs
  (`(state, loss_sum, images, labels, order, valid, start, rng, lr)`, vmapped
  over a leading trial axis or not), `order_fn(order_key, labeled_mask,
  batch, rows) -> (order, valid)` the jitted epoch order, `loss_sum` the
  zero the losses add to (one per trial when stacked). `scalar` turns each
  call's start row and learning rate (numpy scalars) into call arguments.
  """
  order, valid = order_fn(order_key, labeled_mask, sc.batch_size, rows)
  steps = math.ceil(num_labeled / sc.batch_size)
  n_full = full_chunks(sc, num_labeled)
  state, unpack = chunks.pack(state)
  for c in range(math.ceil(steps / sc.steps_per_call)):
    start, lr_ = scalar(np.int32(c * sc.steps_per_call)), scalar(np.float32(lr))
    state, loss_sum = chunks.fn(c < n_full)(state, loss_sum, images, labels, order, valid,
                                            start, aug_key, lr_)
  return unpack(state), loss_sum / steps


def run_epochs(sc: StepConfig, epochs: StepFns, state, images, labels, labeled_mask,
               num_labeled: int, order_key, aug_key, first_epoch: int, lrs: Sequence[float],
               put: Callable = lambda tree: tree):
  """`len(lrs)` epochs in one call (`sc.variant.epochs_per_call` >= that) from
  `first_epoch` on, the run's keys folded per epoch on the device; returns
  (state, the epochs' mean losses: a device array of `epochs_per_call`, zero
  past `len(lrs)`, with a leading trial axis when stacked).

  The one host side of `train_epochs`, for `Trainer.run_epochs` and the
  vmapped `StackedTrainer.run_epochs`: `epochs` holds the jitted program
  (`(state, images, labels, labeled_mask, num_labeled, order_key, aug_key,
  first, n, lrs)`), `put` places the host scalars.
  """
  k = sc.variant.epochs_per_call
  if not 1 <= len(lrs) <= k:
    raise ValueError(f"{len(lrs)} epochs in one call; train.epochs_per_call is {k}")
  lr_arr = np.zeros(k, np.float32)
  lr_arr[:len(lrs)] = np.asarray(lrs, np.float32)
  n, first, count, lr_arr = put((np.int32(num_labeled), np.int32(first_epoch),
                                 np.int32(len(lrs)), lr_arr))
  state, unpack = epochs.pack(state)
  state, losses = epochs.fn(False)(state, images, labels, labeled_mask, n, order_key, aug_key,
                                   first, count, lr_arr)
  return unpack(state), losses


class Trainer:
  """Holds the jitted functions of one run. Build it once: it compiles once.

  Usage per cycle: `state = trainer.new_state(params, bs)` (the optimizer is
  re-created every cycle), then `state, hist = trainer.fit(...)`.

  With a `mesh` (from `jax_al.preflight.check_devices`), training and prediction are
  data-parallel over its "data" axis; `train.batch_size` must divide by its
  size. Inputs not yet on the mesh (images, labels, keys) are placed there,
  replicated; place the images once with `sharding.place` to avoid a copy.
  """

  def __init__(self, graphdef, sc: StepConfig, num_train: int, mesh: Mesh | None = None):
    self.graphdef, self.sc, self.mesh = graphdef, sc, mesh
    n_dev = sharding_lib.mesh_size(mesh)
    if sc.batch_size % n_dev:
      raise ConfigError("train.batch_size", sc.batch_size,
                        f"the batch is split over {n_dev} devices (mesh.data); use a "
                        f"multiple of {n_dev}")
    # Prediction chunks are split over the devices too: round them up.
    self.eval_chunk = -(-sc.eval_batch_size // n_dev) * n_dev
    self.tx = make_optimizer(sc)
    steps = math.ceil(num_train / sc.batch_size)
    # Rows padded to whole calls, so dynamic_slice never clamps the start.
    self.rows = math.ceil(steps / sc.steps_per_call) * sc.steps_per_call
    self._train = jax.jit(functools.partial(train_chunk, graphdef, self.tx, sc, mesh=mesh),
                          donate_argnums=(0, 1))
    self._order = jax.jit(epoch_order, static_argnums=(2, 3))
    self._eval = jax.jit(functools.partial(eval_chunk, graphdef, sc, mesh=mesh))
    self._mc = jax.jit(functools.partial(mc_chunk, graphdef, sc, mesh=mesh))
    # The step variants' programs (StepVariant); jit compiles only those called.
    chunk = lambda full: functools.partial(train_chunk, graphdef, self.tx, sc, mesh=mesh,
                                           full=full)
    flat = sc.variant.flat_state
    self._chunks = StepFns(flat, {False: chunk(False), True: chunk(True)}, donate=(0, 1),
                           default=self._train)
    self._epochs = StepFns(flat, {False: functools.partial(train_epochs, graphdef, self.tx, sc,
                                                           self.rows, mesh=mesh)}, donate=(0,))
    # A chunk's start row and lr: numpy scalars on a mesh (jit places them with
    # the replicated arguments), device scalars without one.
    self._scalar = jnp.asarray if mesh is None else (lambda a: a)
    self._loss = jax.jit(functools.partial(loss_chunk, graphdef, sc, mesh=mesh))
    # Learning loss: the epochs from `detach_epoch` on run another program, in
    # which the loss module's gradient stops at the feature maps.
    ll = sc.learning_loss
    self.after_detach = None if ll is None or ll.detached else Trainer(
        graphdef, dataclasses.replace(sc, learning_loss=dataclasses.replace(ll, detached=True)),
        num_train, mesh)

  def at(self, epoch: int) -> "Trainer":
    """The Trainer whose programs train 0-based `epoch`: this one, or, from a
    learning-loss run's detach epoch on, `after_detach` (same state layout)."""
    if self.after_detach is not None and epoch >= self.sc.learning_loss.detach_epoch:
      return self.after_detach
    return self

  def _rep(self, tree):
    """Replicated on the mesh (a no-op without one or when already there)."""
    if self.mesh is None:
      return tree
    target = sharding_lib.replicated(self.mesh)

    def put(x):
      if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(target, x.ndim):
        return x
      return sharding_lib.place(self.mesh, x)

    return jax.tree.map(put, tree)

  def new_state(self, params, batch_stats) -> TrainState:
    """A fresh optimizer around copies of the weights (the steps donate their state)."""
    params, batch_stats = jax.tree.map(jnp.copy, (params, batch_stats))
    state = TrainState(params, batch_stats, self.tx.init(params))
    return state if self.mesh is None else sharding_lib.replicate(self.mesh, state)

  def run_epoch(self, state, images, labels, labeled_mask, num_labeled: int,
                order_key, aug_key, lr: float):
    """One epoch over the labeled set; returns (state, mean loss as a device scalar)."""
    images, labels, labeled_mask, order_key, aug_key = self._rep(
        (images, labels, labeled_mask, order_key, aug_key))
    return run_epoch(self.sc, self.rows, self._chunks, self._order, state,
                     self._rep(jnp.zeros((), jnp.float32)), images, labels, labeled_mask,
                     num_labeled, order_key, aug_key, lr, self._scalar)

  def run_epochs(self, state, images, labels, labeled_mask, num_labeled: int, order_key,
                 aug_key, first_epoch: int, lrs: Sequence[float]):
    """`len(lrs)` epochs in one call (`train.epochs_per_call` >= that), from
    `first_epoch` on; the keys are the run's, folded per epoch on the device.

    Returns (state, the epochs' mean losses as a device array of
    `epochs_per_call`, zero past `len(lrs)`).
    """
    images, labels, labeled_mask, order_key, aug_key = self._rep(
        (images, labels, labeled_mask, order_key, aug_key))
    return run_epochs(self.sc, self._epochs, state, images, labels, labeled_mask, num_labeled,
                      order_key, aug_key, first_epoch, lrs, self._rep)

  def train_executables(self) -> int | None:
    """Programs compiled for the train calls (1 per variant program used; more
    would mean a recompilation); None where jax does not tell."""
    a, b = self._chunks.executables(), self._epochs.executables()
    return None if a is None or b is None else a + b

  def _chunked(self, fn, idx: np.ndarray, *args) -> list:
    """`fn(*args, chunk of idx)` over `idx` padded to whole `eval_chunk`s: one
    compiled shape for any count (the pad rows are row 0, cut by the caller)."""
    b = self.eval_chunk
    padded = np.zeros(math.ceil(len(idx) / b) * b, np.int32)
    padded[:len(idx)] = idx
    put = jnp.asarray if self.mesh is None else (
        lambda a: sharding_lib.place(self.mesh, a, P(sharding_lib.DATA)))
    return [fn(*args, put(padded[i:i + b])) for i in range(0, len(padded), b)]

  def predict(self, params, batch_stats, images, idx: np.ndarray):
    """(logits, features) for `images[idx]`, in fixed-size chunks, on device."""
    n = len(idx)
    outs = self._chunked(self._eval, idx, params, batch_stats, self._rep(images))
    logits = jnp.concatenate([o[0] for o in outs])[:n]
    feats = jnp.concatenate([o[1] for o in outs])[:n]
    return logits, feats

  def predict_mc(self, params, batch_stats, images, idx: np.ndarray, keys: jax.Array):
    """[T, N, C] logits of `images[idx]` with dropout on, one pass per key of
    `keys` [T] (MC dropout), in fixed-size chunks, on device."""
    images, keys = self._rep((images, keys))
    outs = self._chunked(lambda p, bs, im, i: self._mc(p, bs, im, i, keys), idx, params,
                         batch_stats, images)
    return jnp.concatenate(outs, axis=1)[:, :len(idx)]

  def predict_loss(self, params, batch_stats, images, idx: np.ndarray):
    """[N] predicted losses of `images[idx]` by a learning-loss model's module."""
    if self.sc.learning_loss is None:
      raise ValueError("predict_loss needs a model with a loss-prediction module "
                       "(al.strategy=learning_loss)")
    outs = self._chunked(self._loss, idx, params, batch_stats, self._rep(images))
    return jnp.concatenate(outs)[:len(idx)]

  def evaluate(self, params, batch_stats, images, labels, idx: np.ndarray):
    """(accuracy in %, mean cross-entropy) on `images[idx]`."""
    logits, _ = self.predict(params, batch_stats, images, idx)
    y = self._rep(labels)[jnp.asarray(idx) if self.mesh is None else self._rep(
        np.asarray(idx, np.int32))]
    acc = 100.0 * jnp.mean(jnp.argmax(logits, -1) == y)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
    return float(acc), float(loss)

  def fit(self, state: TrainState, images, labels, labeled_idx: np.ndarray,
          test_idx: np.ndarray, test_images, test_labels, train_cfg,
          order_key, aug_key, on_eval: Callable[[dict], None] | None = None,
          progress: Callable[[int], None] | None = None):
    """Trains `train_cfg.epochs` epochs on the labeled set; returns (state, history).

    Evaluates on the test set every `eval_every` epochs and after the last,
    calling `on_eval(record)` with epoch (1-based), accuracy, loss, best
    accuracy and seconds. Raises TrainingError on a non-finite loss.
    """
    mask_np = np.zeros(labels.shape[0], bool)
    mask_np[labeled_idx] = True
    labeled_mask = jnp.asarray(mask_np) if self.mesh is None else self._rep(mask_np)
    n = len(labeled_idx)
    state, (history,) = fit_epochs(
        state, train_cfg, self.sc, 1,
        epoch=lambda st, e, lr: self.at(e).run_epoch(st, images, labels, labeled_mask, n,
                                                     jax.random.fold_in(order_key, e),
                                                     jax.random.fold_in(aug_key, e), lr),
        epochs=lambda st, first, lrs: self.at(first).run_epochs(
            st, images, labels, labeled_mask, n, order_key, aug_key, first, lrs),
        evaluate=lambda st, _: self.evaluate(st.params, st.batch_stats, test_images,
                                             test_labels, test_idx),
        on_eval=None if on_eval is None else (lambda _, rec: on_eval(rec)),
        progress=progress)
    return state, history



def fit_epochs(state, train_cfg, sc: StepConfig, num: int, epoch, epochs, evaluate,
               on_eval=None, progress=None):
  """The epoch loop of one model (`num = 1`) or of a vmapped stack of `num`.

  Runs the multistep schedule of `train_cfg` through `epoch(state, e, lr) ->
  (state, loss)` (one 0-based epoch), or, with `sc.variant.epochs_per_call`, through
  `epochs(state, first, lrs) -> (state, losses [..., epochs_per_call])` (one
  call per segment ending at an evaluation epoch). Losses carry a leading
  axis of `num` for a stack. At every evaluation epoch (each `eval_every`,
  and the last) it checks the losses, calls `evaluate(state, i) -> (acc,
  loss)` for model i and `on_eval(i, record)`, in model order; `progress(e)`
  follows each finished 1-based epoch e.

  A non-finite loss raises TrainingError with the attribute `trial`, the
  index i of the model. Returns (state, [history of each model]). A
  learning-loss run's segments also end before its detach epoch, where the
  program changes (`Trainer.at`).
  """
  best, histories, t0 = [0.0] * num, [[] for _ in range(num)], time.perf_counter()

  def record(state, e: int, loss, lr: float) -> None:
    losses = np.asarray(loss, np.float64).reshape(num)  # one host sync per evaluation
    for i, v in enumerate(losses):
      if not math.isfinite(v):
        err = TrainingError(f"training loss became {float(v)} at epoch {e + 1} (lr {lr}); "
                            f"{divergence_fix(train_cfg)}")
        err.trial = i
        raise err
    for i in range(num):
      acc, test_loss = evaluate(state, i)
      best[i] = max(best[i], acc)
      rec = dict(epoch=e + 1, train_loss=float(losses[i]), test_acc=acc, test_loss=test_loss,
                 best_acc=best[i], lr=lr, seconds=time.perf_counter() - t0)
      histories[i].append(rec)
      if on_eval:
        on_eval(i, rec)

  if sc.variant.epochs_per_call:
    breaks = () if sc.learning_loss is None else (sc.learning_loss.detach_epoch,)
    per_call = sc.variant.epochs_per_call
    for first, lrs, evaluate_now in epoch_segments(train_cfg, per_call, breaks):
      state, losses = epochs(state, first, lrs)
      last = first + len(lrs) - 1  # 0-based, the segment's last epoch
      if evaluate_now:
        record(state, last, losses[..., len(lrs) - 1], lrs[-1])
      for e in range(first, last + 1):
        if progress:
          progress(e + 1)
    return state, histories
  for e in range(train_cfg.epochs):
    lr = learning_rate(train_cfg, e)
    state, loss = epoch(state, e, lr)
    if (e + 1) % train_cfg.eval_every == 0 or e + 1 == train_cfg.epochs:
      record(state, e, loss, lr)
    if progress:
      progress(e + 1)
  return state, histories


def epoch_segments(train_cfg, per_call: int, breaks: Sequence[int] = ()):
  """Splits the epochs into calls of at most `per_call` that end at every
  evaluation epoch and before each 0-based epoch in `breaks` (where the
  program changes): yields (first epoch, [lr of each epoch], evaluate after)."""
  epochs, every = train_cfg.epochs, train_cfg.eval_every
  first = 0
  while first < epochs:
    end = min([epochs, first + per_call, (first // every + 1) * every]
              + [b for b in breaks if b > first])
    yield first, [learning_rate(train_cfg, e) for e in range(first, end)], (
        end % every == 0 or end == epochs)
    first = end


def divergence_fix(train_cfg) -> str:
  """What to change when training diverged, for this run's settings.

  SGD with weight decay multiplies the weights by (1 - lr * weight_decay)
  each step: past 1 the weights grow without bound whatever the data. A
  float32 run is not helped by "use float32"; bfloat16 is.
  """
  lr, wd = float(train_cfg.lr), float(train_cfg.weight_decay)
  if lr * wd >= 1:
    fix = (f"lower train.lr or train.weight_decay: lr x weight_decay = {lr * wd:.3g} >= 1 "
           f"makes every step grow the weights (e.g. train.weight_decay=5e-4, train.lr=0.1)")
  elif lr > 10:
    fix = f"lower train.lr ({lr:g} is far above the usual 0.01-1, e.g. train.lr=0.1)"
  else:
    fix = "lower train.lr (e.g. by 10x)"
  if train_cfg.dtype != "float32":
    fix += " or use train.dtype=float32"
  return fix


