"""`bald`: Bayesian Active Learning by Disagreement with MC dropout.

Houlsby, Huszar, Ghahramani and Lengyel, "Bayesian Active Learning for
Classification and Preference Learning" (2011); with MC dropout as the
posterior, Gal, Islam and Ghahramani, "Deep Bayesian Active Learning with
Image Data" (ICML 2017).

The score is the mutual information between a candidate's label and the
model parameters, estimated from `al.mc_samples` stochastic forward passes:
H[mean_s p_s] - mean_s H[p_s] (`scores.bayes.mutual_information`). It is 0
where every pass agrees and grows with their disagreement. The top
`budget` scores are picked (top-k, not BatchBALD's joint batch).

Deviations from Gal et al.: dropout is applied once, before the head
(`model.dropout`), not after every layer, so the network body runs once and
only the head is sampled (`Trainer.predict_mc`); the passes use BatchNorm's
running averages, as in inference.
"""

from __future__ import annotations

import jax

from jax_al.scores import bayes
from jax_al.strategies.base import Pool, Requires, Samples, ScoreStrategy, register


@register("bald")
class BALD(ScoreStrategy):
  """Largest mutual information first; logs u_min, u_median, u_max of it."""

  rowwise = True

  requires = Requires(samples=Samples.MC_DROPOUT)

  def score(self, pool: Pool, rng: jax.Array) -> jax.Array:
    del rng  # the passes' keys come from the cycle's selection key (cycle.pool)
    return bayes.mutual_information(pool.sample_logits)
