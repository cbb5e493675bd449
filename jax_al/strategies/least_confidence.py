"""`least_confidence`: the candidates whose top softmax probability is lowest."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_al.strategies.base import Pool, Selection, Strategy, register, top_k_indices


@jax.jit
def least_confidence_scores(
    logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """1 - max softmax probability per row, and its [min, median, max].

  Args:
    logits: [N, C].

  Returns:
    ([N] scores in [0, 1 - 1/C], [3] summary).
  """
  p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  s = 1.0 - jnp.max(p, axis=-1)
  return s, jnp.stack([s.min(), jnp.median(s), s.max()])


@register("least_confidence")
class LeastConfidence(Strategy):

  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    del rng  # deterministic: ties go to the lower position
    s, (lo, med, hi) = least_confidence_scores(pool.logits)
    return Selection(top_k_indices(s, budget),
                     {"u_min": float(lo), "u_median": float(med),
                      "u_max": float(hi)})
