"""`coreset`: k-center greedy over features (Sener & Savarese, 2018).

Each pick is the candidate farthest from everything labeled or already picked,
which greedily shrinks the covering radius (the largest distance from a
candidate to its nearest labeled-or-picked point) within a factor 2 of the
optimum.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jax_al.scores import distances
from jax_al.strategies.base import Pool, Requires, Selection, Strategy, register


@functools.partial(jax.jit, static_argnames=("budget", "block"))
def k_center_greedy(features: jax.Array, labeled: jax.Array, budget: int,
                    block: int, rng: jax.Array, labeled_count: jax.Array | None = None
                    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Greedy k-center selection.

  Args:
    features: [N, d] candidates.
    labeled: [M, d] labeled points; M may be 0.
    budget: static number of picks, <= N.
    block: static block size for the initial candidate-to-labeled distances.
    rng: used only when M == 0, to draw the first centre (there is nothing
      to be far from yet).
    labeled_count: optional number (>= 1) of real rows of `labeled`; the rest
      is padding that keeps the compiled shape fixed over a run.

  Returns:
    ([budget] picked positions in order, [budget] each pick's distance to
    its nearest labeled-or-picked point when picked, covering radius
    before, covering radius after), radii as Euclidean distances over the
    candidates.
  """
  n = features.shape[0]
  x = features.astype(jnp.float32)
  x_sq = distances.sq_norms(x)

  def add_centre(t, i, min_d, picks, radii):
    radii = radii.at[t].set(jnp.sqrt(jnp.maximum(min_d[i], 0.0)))
    min_d = jnp.minimum(min_d, distances.sq_dists_to(x, x_sq, x[i]))
    # -1 (not the computed ~0) so that rounding can never make a picked
    # point the argmax again, e.g. when all features are equal.
    return min_d.at[i].set(-1.0), picks.at[t].set(i), radii

  def pick(t, carry):
    min_d, picks, radii = carry
    return add_centre(t, jnp.argmax(min_d), min_d, picks, radii)

  picks = jnp.zeros((budget,), jnp.int32)
  radii = jnp.zeros((budget,), jnp.float32)
  if labeled.shape[0] > 0:
    min_d = distances.min_sq_dists(x, labeled.astype(jnp.float32), block, labeled_count)
    radius_before = jnp.sqrt(jnp.max(min_d))
    start = 0
  else:
    # With nothing labeled every distance is +inf and argmax would start at
    # position 0 every time; draw the first centre at random instead.
    radius_before = jnp.array(jnp.inf, jnp.float32)
    first = jax.random.randint(rng, (), 0, n)
    min_d, picks, radii = add_centre(0, first, jnp.full((n,), jnp.inf), picks, radii)
    start = 1
  min_d, picks, radii = jax.lax.fori_loop(start, budget, pick, (min_d, picks, radii))
  radius_after = jnp.sqrt(jnp.maximum(jnp.max(min_d), 0.0))
  return picks, radii, radius_before, radius_after


@register("coreset")
class Coreset(Strategy):
  """Reads `cfg.block` (the largest distance block materialised) and
  `cfg.pad_labeled` ("run": the labeled rows are zero-padded to
  `pool.labeled_capacity`, so one compilation serves every cycle).

  A pick's score is its distance to the nearest labeled-or-picked point
  when it was picked (the covering radius at that step; +inf for a random
  first pick with nothing labeled)."""

  requires = Requires(features=True, labeled=True)

  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    labeled, m, count = pool.labeled_features, pool.labeled_features.shape[0], None
    if m > 0:  # with nothing labeled the first centre is random: no padding
      labeled = pool.padded_labeled(pool.labeled_rows(self.cfg.pad_labeled))
      count = jnp.int32(m)  # traced: the same program for every labeled size
    picks, radii, before, after = k_center_greedy(
        pool.features, labeled, budget, int(self.cfg.block), rng, count)
    stats = {"radius_after": float(after)}
    if pool.labeled_features.shape[0] > 0:  # else +inf, which JSON lacks
      stats["radius_before"] = float(before)
    return Selection(np.asarray(picks, dtype=np.int64), stats, np.asarray(radii))
