"""`entropy`: the candidates whose softmax has the highest Shannon entropy."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_al.strategies.base import Pool, ScoreStrategy, register


@jax.jit
def entropy_scores(logits: jax.Array) -> jax.Array:
  """[N] entropy (nats) of softmax(logits) per row of [N, C] logits.

  Computed from log_softmax so that probabilities that underflow to 0 add
  0 * finite rather than 0 * -inf = NaN.
  """
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


@register("entropy")
class Entropy(ScoreStrategy):
  """Largest entropy first; logs u_min, u_median, u_max of the entropy."""

  rowwise = True

  def score(self, pool: Pool, rng: jax.Array) -> jax.Array:
    del rng  # deterministic: ties go to the lower position
    return entropy_scores(pool.logits)
