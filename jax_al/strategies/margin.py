"""`margin`: the candidates with the smallest gap between the top two softmax
probabilities."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_al.errors import ConfigError
from jax_al.strategies.base import Pool, Selection, Strategy, register, top_k_indices


@jax.jit
def margin_gaps(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """p(1st) - p(2nd) of softmax(logits) per row, and its [min, median, max].

  Args:
    logits: [N, C] with C >= 2.

  Returns:
    ([N] gaps in [0, 1], [3] summary).
  """
  p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  top2, _ = jax.lax.top_k(p, 2)
  gap = top2[:, 0] - top2[:, 1]
  return gap, jnp.stack([gap.min(), jnp.median(gap), gap.max()])


@register("margin")
class Margin(Strategy):

  def check(self, num_candidates: int, budget: int, num_classes: int) -> None:
    super().check(num_candidates, budget, num_classes)
    if num_classes < 2:
      raise ConfigError("al.strategy", "margin",
                        f"the data has {num_classes} class; margin needs at "
                        "least 2. Choose another strategy")

  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    del rng  # deterministic: ties go to the lower position
    gap, (lo, med, hi) = margin_gaps(pool.logits)
    # The smallest gap first: top-k of the negated gap.
    return Selection(top_k_indices(-gap, budget),
                     {"margin_min": float(lo), "margin_median": float(med),
                      "margin_max": float(hi)})
