"""Learning loss: a module that predicts the loss of an image from the
backbone's intermediate feature maps, and the ranking loss it trains with.

Yoo and Kweon, "Learning Loss for Active Learning" (CVPR 2019). Each of the
four ResNet stages' outputs goes through global average pooling, a linear
layer to 128 units and a ReLU; the four are concatenated and a linear layer
gives one number, the predicted loss. It trains with the classifier, on the
same batches and optimizer, minimising

    mean cross-entropy + weight * ranking_loss(predicted, true per-sample CE)

and, after `detach_epoch` epochs (epoch 120 of 200 in the paper), the
feature maps enter the module through `stop_gradient`: the module keeps
learning but no longer shapes the backbone. The `learning_loss` strategy
picks the candidates with the largest predicted loss.

The module exists only in a run whose `al.strategy` is `learning_loss`
(`enabled`); the backbone is built first from the same random stream, so its
initial weights are those of every other strategy's run.
"""

from __future__ import annotations

import dataclasses

from flax import nnx
import jax
import jax.numpy as jnp

HIDDEN = 128  # units per stage (the paper's)


def enabled(config) -> bool:
  """True when the run trains a loss-prediction module: its `al.strategy`
  scores the module's predictions (`Strategy.requires.predicted_loss`,
  the attribute `cycle.pool` reads too)."""
  from jax_al import strategies  # lazy: strategies import modules that import this one

  need = strategies.base.requires_of(config.al.strategy)
  return need is not None and need.predicted_loss


@dataclasses.dataclass(frozen=True)
class Objective:
  """The static settings of the joint objective (part of `train.StepConfig`).

  Attributes:
    weight: lambda, the ranking loss's weight (`al.ll_weight`, 1 in the paper).
    margin: the ranking margin (`al.ll_margin`, 1 in the paper).
    detach_epoch: the 0-based epoch from which the feature maps are detached
      (`round(al.ll_detach * train.epochs)`: 120 of 200).
    detached: which of the two programs this is: before or after that epoch.
  """

  weight: float
  margin: float
  detach_epoch: int
  detached: bool = False


def objective(config) -> Objective | None:
  """The run's Objective, or None when it has no loss-prediction module."""
  if not enabled(config):
    return None
  al = config.al
  return Objective(weight=float(al.ll_weight), margin=float(al.ll_margin),
                   detach_epoch=int(round(float(al.ll_detach) * int(config.train.epochs))))


class LossNet(nnx.Module):
  """GAP -> Linear(width_i, 128) -> ReLU per feature map, concatenated, -> Linear(., 1)."""

  def __init__(self, widths, dtype=jnp.float32, *, rngs: nnx.Rngs):
    self.fcs = nnx.List([nnx.Linear(int(w), HIDDEN, dtype=dtype, rngs=rngs) for w in widths])
    self.out = nnx.Linear(HIDDEN * len(widths), 1, dtype=dtype, rngs=rngs)

  def __call__(self, maps) -> jax.Array:
    """[B] float32 predicted losses from the NHWC feature maps (one per stage)."""
    h = [jax.nn.relu(fc(jnp.mean(m, axis=(1, 2)))) for fc, m in zip(self.fcs, maps)]
    return self.out(jnp.concatenate(h, axis=-1))[:, 0].astype(jnp.float32)


class LossPredictionModel(nnx.Module):
  """A backbone with `forward(...) -> (logits, features, stage maps)` plus a LossNet.

  Called like any model it is the backbone alone, so training without the
  objective, evaluation and feature extraction are unchanged.
  """

  def __init__(self, backbone: nnx.Module, dtype=jnp.float32, *, rngs: nnx.Rngs):
    self.backbone = backbone
    self.loss_net = LossNet(backbone.stage_widths, dtype, rngs=rngs)
    self.feature_dim = backbone.feature_dim

  def __call__(self, x, train: bool = False, mask=None, dropout_rng=None):
    return self.backbone(x, train, mask, dropout_rng)

  def with_loss(self, x, train: bool = False, mask=None, dropout_rng=None,
                detach: bool = False):
    """(logits, features, [B] predicted losses); `detach` stops the module's
    gradient at the feature maps."""
    logits, feats, maps = self.backbone.forward(x, train, mask, dropout_rng)
    if detach:
      maps = [jax.lax.stop_gradient(m) for m in maps]
    return logits, feats, self.loss_net(maps)


def ranking_loss(predicted: jax.Array, target: jax.Array, num_valid, margin: float = 1.0):
  """The margin ranking loss of Yoo and Kweon over the pairs of one batch.

  Rows 0 .. n-1 of the batch are valid (n = `num_valid`; padding follows).
  Row i is paired with row n-1-i for i < n // 2 (with n even, every row
  once; the middle row of an odd batch is left out). For each pair, with
  s = +1 if target_i > target_j else -1 (ties count as -1),

      loss_ij = max(0, margin - s * (predicted_i - predicted_j)),

  and the result is their mean (0 when n < 2). `target` (the true
  per-sample losses) is a constant: no gradient flows into it.

  Args:
    predicted: [B] predicted losses.
    target: [B] true per-sample losses.
    num_valid: n, a Python or traced integer.
    margin: the margin (1 in the paper).
  """
  b = predicted.shape[0]
  n = jnp.asarray(num_valid, jnp.int32)
  i = jnp.arange(b)
  j = jnp.clip(n - 1 - i, 0, b - 1)
  pair = i < n // 2
  target = jax.lax.stop_gradient(target)
  s = jnp.where(target > target[j], 1.0, -1.0)
  terms = jnp.maximum(0.0, margin - s * (predicted - predicted[j]))
  pairs = jnp.sum(pair)
  return jnp.sum(jnp.where(pair, terms, 0.0)) / jnp.maximum(pairs, 1).astype(jnp.float32)
