"""`least_confidence`: the candidates whose top softmax probability is lowest."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_al.strategies.base import Pool, ScoreStrategy, register


@jax.jit
def least_confidence_scores(logits: jax.Array) -> jax.Array:
  """[N] 1 - max softmax probability per row of [N, C] logits, in [0, 1 - 1/C]."""
  p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  return 1.0 - jnp.max(p, axis=-1)


@register("least_confidence")
class LeastConfidence(ScoreStrategy):
  """Largest 1 - p(1st) first; logs u_min, u_median, u_max of it."""

  rowwise = True

  def score(self, pool: Pool, rng: jax.Array) -> jax.Array:
    del rng  # deterministic: ties go to the lower position
    return least_confidence_scores(pool.logits)
