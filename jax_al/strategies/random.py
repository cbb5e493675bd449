"""`random`: a uniform sample of the scored candidates, without replacement."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jax_al.strategies.base import Pool, Selection, Strategy, register


@register("random")
class Random(Strategy):

  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    idx = jax.random.choice(rng, pool.size, (budget,), replace=False)
    return Selection(np.asarray(idx, dtype=np.int64))

  def stream_refusal(self):
    return None  # it reads only the number of candidates

  def select_streamed(self, host, budget: int, rng: jax.Array) -> Selection:
    # A pool of no columns: the same draw as `select`, and nothing on the device.
    return self.select(Pool(jnp.zeros((host.size, 0)), jnp.zeros((host.size, 0)),
                            host.labeled_features, host.labeled_logits, host.num_classes),
                       budget, rng)
