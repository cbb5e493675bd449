"""`cluster_margin`: the users' k-means margin uncertainty alone.

`uncertainty_mmd` without the MMD term: picks the `budget` candidates with
the largest cluster-margin uncertainty. Reads only `al.batch`, `al.k`,
`al.transform`, `al.u_scope` and `al.kmeans.*`; the MMD fields are neither
read nor checked. With `al.u_scope="global"` this is the users' earlier
whole-pool variant (94.3 % at 20,000 CIFAR-10 labels).
"""

from __future__ import annotations

from jax_al.strategies.base import register
from jax_al.strategies.uncertainty_mmd import UncertaintyMMD


@register("cluster_margin")
class ClusterMargin(UncertaintyMMD):
  """Cluster-margin uncertainty only; see the module docstring."""

  use_mmd_field = False
