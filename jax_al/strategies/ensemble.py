"""`ensemble_entropy`, `ensemble_bald`, `ensemble_variation_ratio`: scores over
the members of a deep ensemble.

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
recorded beside it as `member_acc`. Scores (`scores.bayes`):

- `ensemble_entropy`: H[mean_m p_m];
- `ensemble_bald`: H[mean_m p_m] - mean_m H[p_m], 0 when the members agree;
- `ensemble_variation_ratio`: 1 - (votes of the modal class) / K.
"""

from __future__ import annotations

import jax

from jax_al.scores import bayes
from jax_al.strategies.base import Pool, Requires, Samples, ScoreStrategy, register


class _Ensemble(ScoreStrategy):
  """Largest `fn` of the members' logits first; logs u_min, u_median, u_max of it."""

  rowwise = True

  requires = Requires(samples=Samples.ENSEMBLE)
  fn = staticmethod(bayes.predictive_entropy)

  def score(self, pool: Pool, rng: jax.Array) -> jax.Array:
    del rng
    return self.fn(pool.sample_logits)


@register("ensemble_entropy")
class EnsembleEntropy(_Ensemble):
  fn = staticmethod(bayes.predictive_entropy)


@register("ensemble_bald")
class EnsembleBALD(_Ensemble):
  fn = staticmethod(bayes.mutual_information)


@register("ensemble_variation_ratio")
class EnsembleVariationRatio(_Ensemble):
  fn = staticmethod(bayes.variation_ratio)
