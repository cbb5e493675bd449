"""Learning loss (Yoo & Kweon 2019): the ranking loss against a NumPy
reference, the gradient stop at the detach epoch, the ResNet-only rule, and
the defining property on real data: the module's predicted losses rank the
true losses of held-out digits."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.stats import spearmanr

from conftest import tiny_digits_config
from jax_al import config as config_lib, cycle, strategies, train
from jax_al.data import load_dataset
from jax_al.errors import ConfigError
from jax_al.models import loss_net


def ranking_loss_np(pred, target, n, margin):
  """The paper's pairing written out: rows i and n-1-i, i < n // 2."""
  terms = []
  for i in range(n // 2):
    j = n - 1 - i
    s = 1.0 if target[i] > target[j] else -1.0
    terms.append(max(0.0, margin - s * (pred[i] - pred[j])))
  return float(np.mean(terms)) if terms else 0.0


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 16])
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_ranking_loss_matches_numpy(n, margin):
  rs = np.random.RandomState(n)
  pred = rs.normal(size=16).astype(np.float32)
  target = np.round(rs.exponential(size=16), 1).astype(np.float32)  # ties included
  got = float(loss_net.ranking_loss(jnp.asarray(pred), jnp.asarray(target), n, margin))
  assert got == pytest.approx(ranking_loss_np(pred, target, n, margin), rel=1e-6, abs=1e-7)


def test_ranking_loss_is_zero_for_a_correct_ranking_beyond_the_margin():
  target = jnp.arange(8.0)
  assert float(loss_net.ranking_loss(3.0 * target, target, 8, 1.0)) == 0.0
  assert float(loss_net.ranking_loss(-3.0 * target, target, 8, 1.0)) > 0.0
  # No gradient reaches the targets (the true losses are constants).
  g = jax.grad(lambda t: loss_net.ranking_loss(-target, t, 8, 1.0))(target)
  assert float(jnp.max(jnp.abs(g))) == 0.0


def _ll_config(**fields):
  fields = {"model__name": "resnet18", "model__width": 0.125, **fields}
  return tiny_digits_config("learning_loss", **fields)


@pytest.fixture(scope="module")
def digits():
  return load_dataset(_ll_config().data)


def test_resnet_only():
  with pytest.raises(ConfigError, match=r"model\.name.*'mlp'.*resnet18"):
    config_lib.check_config(tiny_digits_config("learning_loss"))
  config_lib.check_config(_ll_config())


@pytest.mark.slow
def test_backbone_starts_from_the_plain_models_weights():
  """The module is drawn after the backbone: a learning-loss run starts from
  the weights every other strategy's run starts from."""
  key = jax.random.key(3)
  _, plain, plain_bs = train.init_model(_ll_config(al__strategy="random"), 10, (8, 8, 1), key)
  _, ll, ll_bs = train.init_model(_ll_config(), 10, (8, 8, 1), key)
  assert "loss_net" in ll and "loss_net" not in plain
  same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), plain, ll["backbone"])
  assert all(jax.tree.leaves(same))
  assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)),
                                          plain_bs, ll_bs["backbone"])))


@pytest.mark.slow
def test_the_memory_estimate_counts_the_module():
  """The estimate traces the model a run trains: with the module, its weights
  are exactly those `train.init_model` creates."""
  from jax_al import memory

  key = jax.random.key(0)
  sizes = {}
  for s in ("random", "learning_loss"):
    c = _ll_config(al__strategy=s)
    prof = memory.model_profile(c, 10, (8, 8, 1))
    _, params, bs = train.init_model(c, 10, (8, 8, 1), key)
    assert prof.param_bytes == 4 * sum(x.size for x in jax.tree.leaves((params, bs)))
    sizes[s] = prof
  assert sizes["learning_loss"].param_bytes > sizes["random"].param_bytes
  assert sizes["learning_loss"].train_bytes_per_image > sizes["random"].train_bytes_per_image


def _grads(gd, params, bs, x, y, mask, objective):
  return jax.grad(lambda p: train.loss_fn(gd, p, bs, x, y, mask, True, None, objective)[0])(
      params)


@pytest.mark.slow
def test_the_gradient_into_the_backbone_stops_at_the_detach_epoch(digits):
  config = _ll_config()
  gd, params, bs = train.init_model(config, 10, (8, 8, 1), jax.random.key(0))
  x = (jnp.asarray(digits.train_images[:32], jnp.float32) / 255.0 - 0.5) / 0.25
  y = jnp.asarray(digits.train_labels[:32], jnp.int32)
  mask = jnp.arange(32) < 30  # a partial batch: 30 valid rows
  obj = loss_net.objective(config)
  assert obj.detach_epoch == round(0.6 * config.train.epochs) and not obj.detached
  joint = _grads(gd, params, bs, x, y, mask, obj)
  detached = _grads(gd, params, bs, x, y, mask, dataclasses.replace(obj, detached=True))
  ce_only = _grads(gd, params, bs, x, y, mask, None)

  flat = lambda t: np.concatenate([np.ravel(a) for a in jax.tree.leaves(t)])
  # Detached: the backbone sees the cross-entropy alone ...
  np.testing.assert_allclose(flat(detached["backbone"]), flat(ce_only["backbone"]),
                             rtol=1e-5, atol=1e-7)
  # ... jointly, the ranking loss shapes it too.
  assert np.max(np.abs(flat(joint["backbone"]) - flat(ce_only["backbone"]))) > 1e-4
  # The module learns the same way in both phases, and not at all without the objective.
  np.testing.assert_allclose(flat(detached["loss_net"]), flat(joint["loss_net"]), rtol=1e-5,
                             atol=1e-7)
  assert np.max(np.abs(flat(joint["loss_net"]))) > 1e-4
  assert np.max(np.abs(flat(ce_only["loss_net"]))) == 0.0


@pytest.mark.slow
def test_the_trainer_switches_program_at_the_detach_epoch(digits):
  config = _ll_config(train__epochs=10, train__eval_every=10, al__ll_detach=0.4)
  exp = cycle.Experiment.build(config, digits, strategies.get_strategy("learning_loss",
                                                                       config.al))
  tr = exp.trainer
  assert [tr.at(e) is tr for e in range(10)] == [True] * 4 + [False] * 6
  assert tr.at(4).sc.learning_loss.detached and tr.at(4).after_detach is None
  # With several epochs per call, no call spans the switch.
  segs = list(train.epoch_segments(config.train, 3, breaks=(4,)))
  assert [(first, len(lrs)) for first, lrs, _ in segs] == [(0, 3), (3, 1), (4, 3), (7, 3)]
  # A plain run has a single program.
  plain = cycle.Experiment.build(tiny_digits_config("random"), digits,
                                 strategies.get_strategy("random", config.al))
  assert plain.trainer.after_detach is None and plain.trainer.at(9) is plain.trainer


@pytest.mark.slow
def test_the_module_ranks_held_out_losses_and_the_strategy_picks_its_top(digits):
  """Trained jointly on 300 digits, the module's predicted losses on the 500
  held-out test digits rank their true cross-entropies (measured here:
  Spearman 0.73 at width 0.25, 30 epochs); the strategy picks the top
  predicted losses of the candidates."""
  config = _ll_config(model__width=0.25, al__initial=300, train__epochs=30,
                      train__eval_every=30, train__milestones=(24,))
  exp = cycle.Experiment.build(config, digits, strategies.get_strategy("learning_loss",
                                                                       config.al))
  state, labeled = cycle.initial(exp, 0)
  state, hist = cycle.train(exp, 0, 1, labeled, state)
  assert hist[-1]["test_acc"] > 80.0, hist[-1]
  tr, test_idx = exp.trainer, np.arange(len(digits.test_labels))
  pred = np.asarray(tr.predict_loss(state.params, state.batch_stats, exp.test_images, test_idx))
  logits, _ = tr.predict(state.params, state.batch_stats, exp.test_images, test_idx)
  ce = np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, exp.test_labels))
  rho = spearmanr(pred, ce).correlation
  assert rho > 0.4, rho

  picked = cycle.select(exp, 0, 1, labeled, state)
  subset = cycle.candidates(exp, 0, 1, labeled)
  scores = np.asarray(tr.predict_loss(state.params, state.batch_stats, exp.images, subset))
  top = subset[np.argsort(-scores, kind="stable")[:config.al.budget]]
  assert sorted(picked.indices.tolist()) == sorted(top.tolist())
  assert picked.stats["u_max"] == pytest.approx(float(scores.max()), rel=1e-6)
