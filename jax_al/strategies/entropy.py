"""`entropy`: the candidates whose softmax has the highest Shannon entropy."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_al.strategies.base import Pool, Selection, Strategy, register, top_k_indices


@jax.jit
def entropy_scores(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Entropy (nats) of softmax(logits) per row, and its [min, median, max].

  Computed from log_softmax so that probabilities that underflow to 0 add
  0 * finite rather than 0 * -inf = NaN.

  Args:
    logits: [N, C].

  Returns:
    ([N] entropies, [3] summary).
  """
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  h = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
  return h, jnp.stack([h.min(), jnp.median(h), h.max()])


@register("entropy")
class Entropy(Strategy):

  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    del rng  # deterministic: ties go to the lower position
    h, (lo, med, hi) = entropy_scores(pool.logits)
    return Selection(top_k_indices(h, budget),
                     {"u_min": float(lo), "u_median": float(med),
                      "u_max": float(hi)})
