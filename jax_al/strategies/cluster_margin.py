"""`cluster_margin`: the k-means cluster-margin uncertainty alone.

The uncertainty term of the k-means cluster-margin + MMD method
(`uncertainty_mmd`) without its MMD term: picks the `budget` candidates with
the largest u (strategies/uncertainty_term.py). Reads only `al.utility`,
`al.batch`, `al.k`, `al.transform`, `al.u_scope` and `al.kmeans.*`; the MMD
fields are not read (`config.check_config` still validates every field,
whatever the strategy). With `al.u_scope="global"` this is the method's
earlier whole-pool variant (94.3 % at 20,000 CIFAR-10 labels). It picks
exactly what `uncertainty_mmd` with `al.use_mmd=False` picks.

Stats: u_min, u_median, u_max of the raw u.
"""

from __future__ import annotations

import jax

from jax_al.strategies.base import Pool, Requires, ScoreStrategy, Selection, register
from jax_al.strategies.uncertainty_term import UncertaintyTerm


@register("cluster_margin")
class ClusterMargin(ScoreStrategy):
  """Top-k of the uncertainty u; see the module docstring."""

  requires = Requires(features=True, logits=True)

  def __init__(self, cfg):
    super().__init__(cfg)
    self.uncertainty = UncertaintyTerm(cfg)
    self.requires = self.uncertainty.requires()

  def check(self, num_candidates: int, budget: int, num_classes: int,
            num_labeled: int | None = None) -> None:
    super().check(num_candidates, budget, num_classes, num_labeled)
    self.uncertainty.check(num_candidates, num_classes)

  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    self.check(pool.size, budget, pool.num_classes,
               int(pool.labeled_features.shape[0]))
    return super().select(pool, budget, rng)

  def stream_refusal(self):
    return self.uncertainty.stream_refusal()

  def select_streamed(self, host, budget: int, rng: jax.Array) -> Selection:
    self.check(host.size, budget, host.num_classes, int(host.labeled_features.shape[0]))
    return super().select_streamed(host, budget, rng)

  def streamed_score(self, host, rng: jax.Array):
    k_u, _ = jax.random.split(rng)
    if self.uncertainty.utility != "cluster_margin":
      return self.uncertainty.streamed(host, k_u, None, None)
    return self.uncertainty.streamed(host, k_u, host.mean(),
                                     self.uncertainty.blocks(host, host.num_classes))

  def score(self, pool: Pool, rng: jax.Array) -> jax.Array:
    # The first half of the key, as `uncertainty_mmd` derives it for u.
    k_u, _ = jax.random.split(rng)
    return self.uncertainty(pool, k_u)
