"""`variation_ratio`: the share of MC-dropout passes that disagree with the modal class.

Freeman, "Elementary Applied Statistics" (1965); as a deep-AL acquisition
with MC dropout, Gal, Islam and Ghahramani, "Deep Bayesian Active Learning
with Image Data" (ICML 2017). Score: 1 - f_mode / S over the argmax of
`al.mc_samples` stochastic passes (`scores.bayes.variation_ratio`); ties,
frequent with few passes, go to the lower position (the candidates are in
random order). Dropout sits before the head only, as for `bald`.
"""

from __future__ import annotations

import jax

from jax_al.scores import bayes
from jax_al.strategies.base import Pool, Requires, Samples, ScoreStrategy, register


@register("variation_ratio")
class VariationRatio(ScoreStrategy):
  """Largest variation ratio first; logs u_min, u_median, u_max of it."""

  rowwise = True

  requires = Requires(samples=Samples.MC_DROPOUT)

  def score(self, pool: Pool, rng: jax.Array) -> jax.Array:
    del rng
    return bayes.variation_ratio(pool.sample_logits)
