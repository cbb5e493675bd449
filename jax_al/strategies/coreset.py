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


SEARCHES = ("dense", "lazy")


@functools.partial(jax.jit, static_argnames=("budget", "block", "chunk"))
def k_center_greedy_lazy(features: jax.Array, labeled: jax.Array, budget: int,
                         block: int, rng: jax.Array, labeled_count: jax.Array | None = None,
                         chunk: int = 32
                         ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """`k_center_greedy` with the distance updates deferred, block by block.

  The candidates are cut into blocks of `block` rows. Each block keeps the
  nearest-centre distances of its rows as of the centres it has seen, and
  their maximum, an upper bound of the block's true maximum (a new centre
  can only lower distances). A pick brings only the block of the largest
  bound up to date, with the centres it has not seen, `chunk` at a time as
  one matrix product, until the block of the largest bound is up to date:
  its largest distance is then the true maximum over all candidates, and
  the lowest block and row among equal maxima win, as in the dense search.
  A far centre changes no bound, so most picks refresh one or two blocks
  (`block` x d work) where the dense search touches all N x d.

  The picks are those of `k_center_greedy`, up to float rounding between a
  matrix-vector and a matrix-matrix product on near-equal distances.
  Arguments and results as `k_center_greedy`; `chunk` (static) is the
  number of centres one refresh step handles.
  """
  n, d = features.shape
  x = features.astype(jnp.float32)
  x_sq = distances.sq_norms(x)
  b = min(block, n)
  m = -(-n // b)
  pad = m * b - n
  xs = jnp.pad(x, ((0, pad), (0, 0))).reshape(m, b, d)
  sqs = jnp.pad(x_sq, (0, pad)).reshape(m, b)
  real = (jnp.arange(m * b) < n).reshape(m, b)
  if labeled.shape[0] > 0:
    min_d = distances.min_sq_dists(x, labeled.astype(jnp.float32), block, labeled_count)
    radius_before = jnp.sqrt(jnp.max(min_d))
  else:
    min_d = jnp.full((n,), jnp.inf)
    radius_before = jnp.array(jnp.inf, jnp.float32)
  # Padding rows sit below the -1 of picked rows: never a maximum.
  dist = jnp.where(real, jnp.pad(min_d, (0, pad)).reshape(m, b), -jnp.inf)
  state = dict(dist=dist, bound=jnp.max(dist, axis=1), seen=jnp.zeros((m,), jnp.int32),
               centres=jnp.zeros((budget + chunk, d), jnp.float32),
               c_sq=jnp.zeros((budget + chunk,), jnp.float32),
               picks=jnp.zeros((budget,), jnp.int32), radii=jnp.zeros((budget,), jnp.float32))

  def refresh(t, st):
    k = jnp.argmax(st["bound"])
    start = st["seen"][k]
    c = jax.lax.dynamic_slice_in_dim(st["centres"], start, chunk)
    c_sq = jax.lax.dynamic_slice_in_dim(st["c_sq"], start, chunk)
    xc = jnp.dot(xs[k], c.T, precision=distances._HIGHEST)
    dd = jnp.maximum(sqs[k][:, None] + c_sq[None, :] - 2 * xc, 0)
    dd = jnp.where(start + jnp.arange(chunk) < t, dd, jnp.inf)
    row = jnp.minimum(st["dist"][k], jnp.min(dd, axis=1))
    return {**st, "dist": st["dist"].at[k].set(row), "bound": st["bound"].at[k].set(row.max()),
            "seen": st["seen"].at[k].set(jnp.minimum(start + chunk, t))}

  def settle(t, st):
    """Refreshes until the block of the largest bound has seen all t centres."""
    return jax.lax.while_loop(lambda st: st["seen"][jnp.argmax(st["bound"])] < t,
                              functools.partial(refresh, t), st)

  def add_centre(t, k, j, st):
    i = k * b + j
    c = xs[k, j]
    row = st["dist"][k].at[j].set(-1.0)  # as in the dense search: never the argmax again
    return {**st, "dist": st["dist"].at[k].set(row), "bound": st["bound"].at[k].set(row.max()),
            "centres": st["centres"].at[t].set(c),
            "c_sq": st["c_sq"].at[t].set(jnp.dot(c, c, precision=distances._HIGHEST)),
            "picks": st["picks"].at[t].set(i),
            "radii": st["radii"].at[t].set(jnp.sqrt(jnp.maximum(st["dist"][k, j], 0.0)))}

  def pick(t, st):
    st = settle(t, st)
    k = jnp.argmax(st["bound"])
    return add_centre(t, k, jnp.argmax(st["dist"][k]), st)

  start = 0
  if labeled.shape[0] == 0:  # nothing to be far from: a random first centre, as there
    first = jax.random.randint(rng, (), 0, n)
    state = add_centre(0, first // b, first % b, state)
    start = 1
  state = jax.lax.fori_loop(start, budget, pick, state)
  state = settle(budget, state)
  radius_after = jnp.sqrt(jnp.maximum(jnp.max(state["bound"]), 0.0))
  return state["picks"], state["radii"], radius_before, radius_after


@register("coreset")
class Coreset(Strategy):
  """Reads `cfg.block` (the largest distance block materialised; the lazy
  search's rows per block), `cfg.coreset_search` ("dense": every pick
  updates all distances; "lazy": `k_center_greedy_lazy`, the same picks up
  to rounding, far less work on large pools) and `cfg.pad_labeled` ("run":
  the labeled rows are zero-padded to
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
    search = k_center_greedy_lazy if self.cfg.coreset_search == "lazy" else k_center_greedy
    picks, radii, before, after = search(
        pool.features, labeled, budget, int(self.cfg.block), rng, count)
    stats = {"radius_after": float(after)}
    if pool.labeled_features.shape[0] > 0:  # else +inf, which JSON lacks
      stats["radius_before"] = float(before)
    return Selection(np.asarray(picks, dtype=np.int64), stats, np.asarray(radii))
