"""`learning_loss`: the candidates whose loss a learned module predicts largest.

Yoo and Kweon, "Learning Loss for Active Learning" (CVPR 2019). A
loss-prediction module reads the four ResNet stage outputs (GAP, 128 units
and a ReLU each, concatenated, one linear output; `models.loss_net`) and
trains jointly with the classifier on a margin ranking loss over pairs of
each batch (margin `al.ll_margin` = 1, weight `al.ll_weight` = 1). After
`al.ll_detach` x `train.epochs` epochs (120 of 200) its gradient no longer
reaches the backbone. Each cycle scores the candidates (the random subset of
`al.subset`, 10,000 in the paper) with the module and picks the top
`budget` predicted losses.

ResNet only: another `model.name` is refused when the config is checked.

Deviations from the paper's code: the ranking pairs of the last, partial
batch of an epoch pair its valid rows among themselves (the code's last
batch is simply smaller); a batch's middle row is unpaired when its size is
odd (the code asserts an even size); the detach starts at 0-based epoch
round(al.ll_detach x epochs) = 120, where the code's `epoch > 120` starts at
121; one SGD optimizer updates both the backbone and the module, with the
same learning rate, momentum, weight decay and schedule the code gives its
two optimizers.
"""

from __future__ import annotations

import jax

from jax_al.strategies.base import Pool, Requires, ScoreStrategy, register


@register("learning_loss")
class LearningLoss(ScoreStrategy):
  """Largest predicted loss first; logs u_min, u_median, u_max of it."""

  rowwise = True

  requires = Requires(predicted_loss=True)

  def score(self, pool: Pool, rng: jax.Array) -> jax.Array:
    del rng  # deterministic: the module's prediction
    if pool.predicted_loss is None:
      raise ValueError("learning_loss scores the pool's predicted losses; this pool has "
                       "none (the model was built without a loss-prediction module)")
    return pool.predicted_loss
