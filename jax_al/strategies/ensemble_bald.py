"""`ensemble_bald`: the mutual information (BALD) over the members of a deep ensemble.

Deep ensembles: Lakshminarayanan, Pritzel and Blundell, "Simple and
Scalable Predictive Uncertainty Estimation using Deep Ensembles" (NeurIPS
2017); for active learning, Beluch, Genewein, Nuernberger and Koehler, "The
Power of Ensembles for Active Learning in Image Classification" (CVPR 2018),
who found them stronger than MC dropout.

Each cycle trains `al.ensemble_size` members (default 5) with different
initial weights, data orders and augmentation (member 0 has the trial's own
keys, member m folds m into each) as one vmapped program: the stacked
training of `jax_al.vmap_trials`. The pool carries the members' logits; the
cycle's test accuracy is the ensemble's (mean softmax), with member 0's
recorded beside it as `member_acc`. Score: H[mean_m p_m] - mean_m H[p_m], 0 when the members agree.
"""

from __future__ import annotations

import jax

from jax_al.scores import bayes
from jax_al.strategies.base import Pool, ScoreStrategy, register


@register("ensemble_bald")
class EnsembleBALD(ScoreStrategy):
  """Largest mutual information first; logs u_min, u_median, u_max of it."""

  samples = "ensemble"

  def score(self, pool: Pool, rng: jax.Array) -> jax.Array:
    del rng
    return bayes.mutual_information(pool.sample_logits)
