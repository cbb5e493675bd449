"""`margin`: the candidates with the smallest gap between the top two softmax
probabilities."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_al.errors import ConfigError
from jax_al.scores import distances
from jax_al.strategies.base import Pool, ScoreStrategy, register


@jax.jit
def margin_gaps(logits: jax.Array) -> jax.Array:
  """[N] p(1st) - p(2nd) of softmax(logits) per row of [N, C] logits, C >= 2,
  in [0, 1]."""
  p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  top2 = distances.two_largest(p)
  return top2[:, 0] - top2[:, 1]


@register("margin")
class Margin(ScoreStrategy):
  """Smallest gap first (top-k of the negated gap); logs margin_min,
  margin_median, margin_max of the gap itself."""

  rowwise = True

  stat = "margin"
  smallest_first = True

  def check(self, num_candidates: int, budget: int, num_classes: int,
            num_labeled: int | None = None) -> None:
    super().check(num_candidates, budget, num_classes, num_labeled)
    if num_classes < 2:
      raise ConfigError("al.strategy", "margin",
                        f"the data has {num_classes} class; margin needs at "
                        "least 2. Choose another strategy")

  def score(self, pool: Pool, rng: jax.Array) -> jax.Array:
    del rng  # deterministic: ties go to the lower position
    return margin_gaps(pool.logits)
