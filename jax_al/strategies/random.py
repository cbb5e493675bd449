"""`random`: a uniform sample of the scored candidates, without replacement."""

from __future__ import annotations

import jax
import numpy as np

from jax_al.strategies.base import Pool, Selection, Strategy, register


@register("random")
class Random(Strategy):

  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    idx = jax.random.choice(rng, pool.size, (budget,), replace=False)
    return Selection(np.asarray(idx, dtype=np.int64))
