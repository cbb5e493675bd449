"""Models, augmentation and the jitted training steps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import common
from jax_al import augment, train
from jax_al.models.cnn import SmallCNN
from jax_al.models.resnet import ResNet18


def _digits(n=400):
  from sklearn.datasets import load_digits
  d = load_digits()
  x = (d.images[:n] * 255 / 16).astype(np.uint8)[..., None]
  return x, d.target[:n].astype(np.int32)


@pytest.mark.slow
def test_resnet18_shapes_and_size():
  m = ResNet18(10, width=1.0, rngs=nnx.Rngs(0))
  n_params = sum(p.size for p in jax.tree.leaves(nnx.state(m, nnx.Param)))
  assert 11.1e6 < n_params < 11.2e6  # the CIFAR ResNet-18 has 11.17 M parameters
  tiny = ResNet18(7, image_shape=(32, 32, 3), width=0.125, rngs=nnx.Rngs(0))
  logits, feats = tiny(jnp.zeros((2, 32, 32, 3)))
  assert logits.shape == (2, 7) and feats.shape == (2, 64)
  assert logits.dtype == feats.dtype == jnp.float32


@pytest.mark.slow
def test_cnn_shapes_any_size_and_bf16():
  m = SmallCNN(10, image_shape=(8, 8, 1), width=0.5, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  for hw in (8, 13, 32):
    logits, feats = m(jnp.zeros((3, hw, hw, 1)))
    assert logits.shape == (3, 10) and feats.shape == (3, 64)
    assert logits.dtype == jnp.float32


@pytest.mark.slow
def test_flip_really_flips_and_crop_keeps_shape():
  x = jnp.arange(2 * 4 * 5 * 3, dtype=jnp.uint8).reshape(2, 4, 5, 3)
  # Find a key that flips the first image and not the second.
  for s in range(50):
    k = jax.random.key(s)
    f = jax.random.bernoulli(k, 0.5, (2,))
    if bool(f[0]) and not bool(f[1]):
      break
  y = augment.random_flip(k, x)
  np.testing.assert_array_equal(y[0], x[0, :, ::-1])
  np.testing.assert_array_equal(y[1], x[1])
  c = augment.random_crop(jax.random.key(1), x, 2)
  assert c.shape == x.shape and c.dtype == jnp.uint8
  v = augment.train_view(jax.random.key(0), x, flip=True, crop_pad=2, mean=(0.5,) * 3,
                         std=(0.25,) * 3, dtype=jnp.float32)
  assert v.shape == x.shape and v.dtype == jnp.float32


def test_crop_offsets_cover_both_extremes():
  # pad 1 on a 1x1 image of value 255: offsets 0..2 in each axis; only offset
  # (1, 1) keeps the pixel, and all 9 offsets must occur.
  x = jnp.full((4000, 1, 1, 1), 255, jnp.uint8)
  c = augment.random_crop(jax.random.key(0), x, 1)
  frac = float(jnp.mean(c > 0))
  assert 0.08 < frac < 0.14  # 1/9 of crops keep the pixel


def test_normalize_matches_numpy():
  x = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 3)).astype(np.uint8)
  mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
  ref = (x / 255.0 - np.array(mean)) / np.array(std)
  np.testing.assert_allclose(augment.normalize(jnp.asarray(x), mean, std), ref, rtol=1e-5, atol=1e-5)


def _setup(batch=32, steps_per_call=0, n=400):
  c = common.base()
  c.model.name, c.model.width = "cnn", 0.5
  c.train.batch_size, c.train.steps_per_call = batch, steps_per_call
  c.train.lr, c.train.milestones = 0.05, (1000,)
  c.data.mean, c.data.std = (0.3,), (0.4,)
  x, y = _digits(n)
  gd, p, bs = train.init_model(c, 10, (8, 8, 1), jax.random.key(0))
  sc = train.StepConfig.from_config(c, n)
  return c, train.Trainer(gd, sc, n), p, bs, jnp.asarray(x), jnp.asarray(y)


@pytest.mark.slow
def test_steps_lower_the_loss_on_a_fixed_batch():
  c, tr, p, bs, x, y = _setup()
  state = tr.new_state(p, bs)
  idx, mask = jnp.arange(32), jnp.ones(32, bool)
  step = jax.jit(lambda s, r: train.train_step(tr.graphdef, tr.tx, tr.sc, s, x, y, idx, mask, r, 0.05))
  losses = []
  for i in range(40):
    state, loss = step(state, jax.random.key(i))
    losses.append(float(loss))
  assert losses[-1] < 0.5 * losses[0]


@pytest.mark.slow
def test_padded_rows_do_not_change_the_step():
  """A masked (padded) row must not affect the update: the last partial batch is exact."""
  c, tr, p, bs, x, y = _setup()
  s0 = tr.new_state(p, bs)
  idx = jnp.arange(32)
  mask = jnp.arange(32) < 20
  idx_other = jnp.where(mask, idx, 399)  # different padding content
  out = []
  for ix in (idx, idx_other):
    s, _ = train.train_step(tr.graphdef, tr.tx, tr.sc, s0, x, y, ix, mask, jax.random.key(0), 0.05)
    out.append(s)
  for a, b in zip(jax.tree.leaves(out[0]), jax.tree.leaves(out[1])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("steps_per_call", [1, 3])
@pytest.mark.slow
def test_fused_epoch_matches_per_step_path(steps_per_call):
  """The lax.scan epoch gives the same parameters as calling the step one by one."""
  c, tr, p, bs, x, y = _setup(steps_per_call=0)
  c2, tr2, _, _, _, _ = _setup(steps_per_call=steps_per_call)
  labeled = np.random.default_rng(0).choice(400, 150, replace=False)  # 5 batches, last partial
  mask = np.zeros(400, bool)
  mask[labeled] = True
  k_order, k_aug = jax.random.key(1), jax.random.key(2)
  fused, fused_loss = tr.run_epoch(tr.new_state(p, bs), x, y, jnp.asarray(mask), 150, k_order,
                                   k_aug, 0.05)
  chunked, chunked_loss = tr2.run_epoch(tr2.new_state(p, bs), x, y, jnp.asarray(mask), 150,
                                        k_order, k_aug, 0.05)
  # The simple path: one jitted step per batch, in the same order with the same keys.
  order, valid = train.epoch_order(k_order, jnp.asarray(mask), 32, tr.rows)
  state, losses = tr.new_state(p, bs), []
  for i in range(5):
    state, loss = train.train_step(tr.graphdef, tr.tx, tr.sc, state, x, y, order[i], valid[i],
                                   jax.random.fold_in(k_aug, i), 0.05)
    losses.append(float(loss))
  for a, b, d in zip(jax.tree.leaves(fused), jax.tree.leaves(state), jax.tree.leaves(chunked)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(d, b, rtol=2e-4, atol=2e-5)
  # The epoch loss is the mean over the 5 real steps; the chunked path's
  # padding-only step (6 rows for 5 steps at 3 per call) adds nothing.
  np.testing.assert_allclose([float(fused_loss), float(chunked_loss)], np.mean(losses), rtol=1e-4)


def test_epoch_order_is_a_permutation_of_the_labeled_set():
  mask = np.zeros(100, bool)
  mask[[3, 5, 7, 11, 50, 99, 0]] = True
  order, valid = train.epoch_order(jax.random.key(0), jnp.asarray(mask), 4, 25)
  got = np.asarray(order)[np.asarray(valid)]
  assert sorted(got.tolist()) == [0, 3, 5, 7, 11, 50, 99]
  assert int(valid.sum()) == 7


def test_learning_rate_schedule():
  c = common.base()
  assert train.learning_rate(c.train, 0) == pytest.approx(0.1)
  assert train.learning_rate(c.train, 159) == pytest.approx(0.1)
  assert train.learning_rate(c.train, 160) == pytest.approx(0.01)


@pytest.mark.parametrize("lr,gamma,milestones", [
    (0.1, 0.1, (160,)), (0.1, 0.1, (80,)), (0.05, 0.2, (30, 60, 90)), (0.3, 0.5, (90, 10, 0))])
def test_learning_rate_is_optax_multistep_bit_for_bit(lr, gamma, milestones):
  # The host-side schedule must give the float32 values optax's schedule gives
  # (the values earlier runs trained with), or results would drift in the last bits.
  c = common.base()
  c.train.lr, c.train.gamma, c.train.milestones = lr, gamma, milestones
  ref = optax.piecewise_constant_schedule(lr, {int(m): gamma for m in milestones})
  for epoch in range(0, 200):
    assert train.learning_rate(c.train, epoch) == float(ref(epoch)), epoch


# ---- step variants (train.skip_padding / bn_mask / epochs_per_call / flat_state) ----

def _variant_setup(n=400, **fields):
  c = common.base()
  c.model.name, c.model.width = "cnn", 0.25
  c.train.batch_size, c.train.lr, c.train.milestones = 32, 0.05, (1000,)
  c.data.mean, c.data.std = (0.3,), (0.4,)
  for k, v in fields.items():
    c.train[k] = v
  x, y = _digits(n)
  gd, p, bs = train.init_model(c, 10, (8, 8, 1), jax.random.key(0))
  return train.Trainer(gd, train.StepConfig.from_config(c, n), n), p, bs, jnp.asarray(x), \
      jnp.asarray(y)


def _per_step_epochs(tr, p, bs, x, y, mask, num, k_order, k_aug, lrs):
  """The simple path: one jitted step per real batch, keys folded per epoch as in fit."""
  step = jax.jit(lambda s, i, v, r, lr: train.train_step(tr.graphdef, tr.tx, tr.sc, s, x, y,
                                                         i, v, r, lr))
  state, means = tr.new_state(p, bs), []
  for e, lr in enumerate(lrs):
    order, valid = train.epoch_order(jax.random.fold_in(k_order, e), mask, 32, tr.rows)
    losses = []
    for i in range(-(-num // 32)):
      state, loss = step(state, order[i], valid[i], jax.random.fold_in(
          jax.random.fold_in(k_aug, e), i), lr)
      losses.append(float(loss))
    means.append(np.mean(losses))
  return state, means


def _close(a, b):
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(u, v, rtol=2e-4, atol=2e-5)


# 150 labeled of 400 at batch 32: 5 real steps, the last partial; 3 steps per
# call gives a chunk with a padding-only step, 2 per call a full first chunk.
VARIANTS = [dict(steps_per_call=3, skip_padding="select"),
            dict(steps_per_call=3, skip_padding="while"),
            dict(steps_per_call=2, bn_mask="partial"),
            dict(steps_per_call=1, bn_mask="partial"),
            dict(steps_per_call=3, flat_state=True),
            dict(steps_per_call=2, epochs_per_call=2),
            dict(steps_per_call=2, epochs_per_call=3, skip_padding="select", bn_mask="partial",
                 flat_state=True)]


@pytest.mark.parametrize("fields", VARIANTS, ids=lambda f: ",".join(f"{k}={v}" for k, v in
                                                                    f.items()))
@pytest.mark.slow
def test_step_variant_matches_per_step_path(fields):
  tr, p, bs, x, y = _variant_setup(**fields)
  mask = np.zeros(400, bool)
  mask[np.random.default_rng(0).choice(400, 150, replace=False)] = True
  mask = jnp.asarray(mask)
  k_order, k_aug, lrs = jax.random.key(1), jax.random.key(2), [0.05, 0.01]
  ref, ref_losses = _per_step_epochs(tr, p, bs, x, y, mask, 150, k_order, k_aug, lrs)
  state = tr.new_state(p, bs)
  if tr.sc.variant.epochs_per_call:  # both epochs in one call when k >= 2
    state, losses = tr.run_epochs(state, x, y, mask, 150, k_order, k_aug, 0, lrs)
    losses = np.asarray(losses)
    assert losses.shape == (tr.sc.variant.epochs_per_call,) and not losses[2:].any()
    losses = losses[:2]
  else:
    losses = []
    for e, lr in enumerate(lrs):
      state, loss = tr.run_epoch(state, x, y, mask, 150, jax.random.fold_in(k_order, e),
                                 jax.random.fold_in(k_aug, e), lr)
      losses.append(float(loss))
  _close(state, ref)
  np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
  assert isinstance(state, train.TrainState)  # flat_state packs only inside the Trainer
  # bn_mask=partial: a full first chunk runs its own (unmasked) program.
  expect = 1 + (fields.get("bn_mask") == "partial" and not tr.sc.variant.epochs_per_call)
  assert tr.train_executables() in (expect, None)


@pytest.mark.parametrize("fields", [dict(steps_per_call=3),
                                    dict(steps_per_call=2, epochs_per_call=3, bn_mask="partial",
                                         flat_state=True)],
                         ids=["chunks", "epochs3+bnpartial+flat"])
@pytest.mark.slow
def test_stacked_trainer_of_one_trial_is_the_trainer(fields, lr_scale=1.0):
  """Vmapped trials run the Trainer's own epoch loops (`trainer.run_epoch` /
  `run_epochs`) over the vmapped programs: a stack of one trial trains the
  same parameters, batch statistics and losses as the Trainer, to float32
  rounding. Not to the bit: the batched kernels of the vmapped step round
  differently on some CPUs (an AVX2 AMD EPYC, 2026-12-07: the first step's
  parameters already differ by up to 7e-9, from the backward pass's
  reductions), as jax_al/vmap_trials.py allows. A plumbing error (another
  key, mask or learning rate) differs by orders of magnitude more:
  `lr_scale` (a 1 % larger rate for the stack) must fail this test."""
  from jax_al import vmap_trials
  tr, p, bs, x, y = _variant_setup(**fields)
  st = vmap_trials.StackedTrainer(tr)
  mask = np.zeros(400, bool)
  mask[np.random.default_rng(0).choice(400, 150, replace=False)] = True
  mask = jnp.asarray(mask)
  k_order, k_aug, lrs = jax.random.key(1), jax.random.key(2), [0.05, 0.01]
  one, stacked = tr.new_state(p, bs), vmap_trials.stack([tr.new_state(p, bs)])
  if tr.sc.variant.epochs_per_call:
    one, loss = tr.run_epochs(one, x, y, mask, 150, k_order, k_aug, 0, lrs)
    stacked, losses = st.run_epochs(stacked, x, y, mask[None], 150, k_order[None],
                                    k_aug[None], 0, [lr * lr_scale for lr in lrs])
    pairs = [(loss, losses)]
  else:
    pairs = []
    for e, lr in enumerate(lrs):
      ko, ka = jax.random.fold_in(k_order, e), jax.random.fold_in(k_aug, e)
      one, loss = tr.run_epoch(one, x, y, mask, 150, ko, ka, lr)
      stacked, losses = st.run_epoch(stacked, x, y, mask[None], 150, ko[None], ka[None],
                                     lr * lr_scale)
      pairs.append((loss, losses))
  for a, b in pairs:
    np.testing.assert_allclose(np.asarray(b)[0], np.asarray(a), rtol=2e-5, atol=1e-7)
  assert isinstance(stacked, train.TrainState)
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(stacked), strict=True):
    np.testing.assert_allclose(np.asarray(b)[0], np.asarray(a), rtol=2e-5, atol=1e-7)
  assert any(float(jnp.abs(u - v).max()) > 0  # it trained
             for u, v in zip(jax.tree.leaves(one.params), jax.tree.leaves(p)))


@pytest.mark.slow
def test_stacked_trainer_comparison_catches_a_one_percent_learning_rate():
  with pytest.raises(AssertionError):
    test_stacked_trainer_of_one_trial_is_the_trainer(dict(steps_per_call=3), lr_scale=1.01)


@pytest.mark.slow
def test_partial_bn_mask_really_drops_the_mask_on_full_batches():
  """The unmasked program is a different computation from the masked one: with
  a padded batch it gives other statistics (so `full` is not silently ignored)."""
  tr, p, bs, x, y = _variant_setup(steps_per_call=1, bn_mask="partial")
  s0 = tr.new_state(p, bs)
  idx, mask = jnp.arange(32), jnp.arange(32) < 20
  got = [train.train_steps(tr.graphdef, tr.tx, tr.sc, s0, x, y, idx[None], mask[None],
                           jnp.int32(0), jax.random.key(0), 0.05, full=f)[0].batch_stats
         for f in (False, True)]
  diffs = [float(jnp.abs(a - b).max()) for a, b in zip(*map(jax.tree.leaves, got))]
  assert max(diffs) > 1e-4


@pytest.mark.slow
def test_fit_with_epochs_per_call_matches_default_fit():
  """Segments end at every evaluation epoch: the same history as epoch by epoch."""
  c = common.base()
  c.train.epochs, c.train.eval_every, c.train.milestones = 5, 2, (3,)
  segs = list(train.epoch_segments(c.train, 3))
  assert [(f, len(l), ev) for f, l, ev in segs] == [(0, 2, True), (2, 2, True), (4, 1, True)]
  assert [lr for _, l, _ in segs for lr in l] == [train.learning_rate(c.train, e)
                                                  for e in range(5)]
  assert [(f, len(l), ev) for f, l, ev in train.epoch_segments(c.train, 1)][:2] == [
      (0, 1, False), (1, 1, True)]
  hists = []
  for fields in (dict(steps_per_call=2), dict(steps_per_call=2, epochs_per_call=3)):
    tr, p, bs, x, y = _variant_setup(**fields)
    labeled, test = np.arange(150), np.arange(300, 400)
    seen = []
    _, hist = tr.fit(tr.new_state(p, bs), x, y, labeled, test, x, y, c.train,
                     jax.random.key(1), jax.random.key(2), progress=seen.append)
    assert seen == [1, 2, 3, 4, 5]
    hists.append(hist)
  assert [h["epoch"] for h in hists[0]] == [h["epoch"] for h in hists[1]] == [2, 4, 5]
  for a, b in zip(*hists):
    for k in ("train_loss", "test_acc", "test_loss", "lr"):
      assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-4), (k, a, b)


@pytest.mark.parametrize("field,value", [("skip_padding", "branch"), ("bn_mask", "never"),
                                         ("epochs_per_call", -1)])
def test_bad_step_variant_is_a_config_error(field, value):
  from jax_al.config import check_config
  from jax_al.errors import ConfigError
  c = common.base()
  c.train[field] = value
  with pytest.raises(ConfigError, match=f"train.{field}"):
    check_config(c)


@pytest.mark.slow
def test_dropout_models_split_train_and_stay_deterministic(tmp_path):
  """`model.dropout`: the model still splits into params + batch statistics
  (the mask's key is an argument, not state), training draws a mask per step
  (the loss differs from no dropout), inference ignores it, and the same
  seed gives the same run."""
  from conftest import tiny_digits_config
  from jax_al import files, loop, train as train_lib

  c = tiny_digits_config("entropy", model__dropout=0.5)
  graphdef, params, bs = train_lib.init_model(c, 10, (8, 8, 1), jax.random.key(0))
  model = nnx.merge(graphdef, params, bs)
  x = jnp.ones((4, 8, 8, 1))
  assert bool(jnp.all(model(x)[0] == model(x)[0]))
  a = model(x, dropout_rng=jax.random.key(1))[0]
  b = model(x, dropout_rng=jax.random.key(2))[0]
  assert not bool(jnp.all(a == b)) and not bool(jnp.all(a == model(x)[0]))
  losses = {}
  for name, rate in (("off", 0.0), ("on", 0.5), ("on_again", 0.5)):
    loop.run(tiny_digits_config("entropy", model__dropout=rate), tmp_path / name, quiet=True)
    losses[name] = [r["train_loss"] for r in files.read_jsonl(tmp_path / name / "metrics.jsonl")
                    if r["kind"] == "eval"]
  assert losses["on"] == losses["on_again"] and losses["on"] != losses["off"]
  assert (tmp_path / "on" / "selected.jsonl").read_text() == (
      tmp_path / "on_again" / "selected.jsonl").read_text()
