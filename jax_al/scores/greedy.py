"""Greedy set-level batch selection by MMD^2(L + Q, U).

The distribution-matching objective (Chattopadhyay et al. 2012, Wang & Ye
2013): choose the query batch Q so that the labeled set plus Q looks like the
pool U (the scored candidates). One pick at a time, each time the candidate
with the largest decrease

  g_t(x) = MMD^2(L + Q_t, U) - MMD^2(L + Q_t + {x}, U),

optionally traded against a per-candidate utility (normalised uncertainty):

  pick_t = argmax over unpicked x of  norm_t(g_t)(x) + weight * utility(x),

where norm_t normalises over the candidates not yet picked (`normalize`),
so the trade-off does not drift as the gains shrink. All normalisations are
monotone, so with weight 0 the picks do not depend on `normalize`.

Running sums make each pick O(N d): after the initial kernel sums
(s_u(x) = sum_u k(x, u), s_l(x) = sum_l k(x, l), O(N (N + M) d), or
O((N + M) d D) with random Fourier features), adding q to L only needs
the kernel row k(., q) over the candidates, computed on the fly:

  s_l += k(., q);  sum_ll += 2 s_l(q) + 1;  sum_lu += s_u(q);  m += 1.

With random Fourier features only the initial sums are approximate; the
per-pick rows are exact (N d work, cheaper than N D).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jax_al.scores import distances
from jax_al.scores import mmd
from jax_al.scores import normalize as norm_lib


class GreedyResult(NamedTuple):
  """Output of `greedy_mmd`.

  Attributes:
    indices: [budget] int32 distinct positions into the candidates, in pick
      order.
    first_gain: [N] g_0, the decrease each candidate would give as the
      first pick (the `decrease` term).
    mmd2_before: MMD^2(L, U).
    mmd2_after: MMD^2(L + Q, U).
  """

  indices: jax.Array
  first_gain: jax.Array
  mmd2_before: jax.Array
  mmd2_after: jax.Array


def greedy_mmd(x: jax.Array, l: jax.Array, sigma: jax.Array, budget: int, *,
               l_count=None, utility: jax.Array | None = None,
               weight: float = 0.0, normalize: str | jax.Array = "none",
               unbiased: bool = False, block: int = 1024,
               freqs: jax.Array | None = None,
               allowed: jax.Array | None = None) -> GreedyResult:
  """Greedily picks `budget` candidates minimising MMD^2(L + Q, U).

  Args:
    x: [N, d] candidates; U is all of them.
    l: [M, d] labeled points, the first `l_count` real (see mmd.py).
    sigma: kernel bandwidth.
    budget: static number of picks, <= N.
    l_count: real labeled rows; None = all.
    utility: optional [N] per-candidate utility, already normalised.
    weight: weight of `utility` per pick (traced or Python float).
    normalize: per-step normalisation of the gains: a static name from
      `normalize.METHODS`, or a traced index into it.
    unbiased: static MMD estimator choice.
    block: static kernel block size for the initial sums.
    freqs: RFF frequencies for the initial sums, or None for exact.
    allowed: optional [N] bool, the candidates that may be picked (at least
      `budget` of them); U is still all N. This is the pre-filter of
      Citovsky et al. 2021: keep the most uncertain, then diversify.

  Returns:
    GreedyResult. No candidate is picked twice.
  """
  n = x.shape[0]
  if budget > n:
    raise ValueError(f"budget {budget} exceeds the {n} candidates")
  s_l, sum_ll, m = mmd.sums_to_l(x, l, sigma, l_count=l_count, block=block,
                                 freqs=freqs, need_ll=True)
  s_u = mmd.sums_to_self(x, sigma, block=block, freqs=freqs)
  sum_uu, sum_lu = jnp.sum(s_u), jnp.sum(s_l)
  x_sq = distances.sq_norms(x)
  gamma = 1.0 / (2.0 * sigma**2)
  bonus = 0.0 if utility is None else weight * utility

  def gain(s_l, sum_ll, sum_lu, m):
    kll = mmd.within_mean(sum_ll, m, unbiased)
    return mmd.decrease_from_means(s_l / m, s_u / n, kll, sum_lu / (m * n), m,
                                   unbiased)

  def step(t, state):
    picked, s_l, sum_ll, sum_lu, m, idx = state
    free = ~picked
    g = gain(s_l, sum_ll, sum_lu, m)
    if isinstance(normalize, str):
      g = norm_lib.normalize(g, normalize, where=free)
    else:
      g = norm_lib.normalize_indexed(g, normalize, where=free)
    obj = g + bonus
    i = jnp.argmax(jnp.where(free, obj, -jnp.inf))
    row = jnp.exp(-gamma * distances.sq_dists_to(x, x_sq, x[i]))
    return (picked.at[i].set(True), s_l + row, sum_ll + 2.0 * s_l[i] + 1.0,
            sum_lu + s_u[i], m + 1.0, idx.at[t].set(i.astype(jnp.int32)))

  # Candidates outside `allowed` start as "picked": never chosen, and left
  # out of the per-step normalisation, but still part of U.
  start = jnp.zeros((n,), bool) if allowed is None else ~allowed
  init = (start, s_l, sum_ll, sum_lu, m,
          jnp.zeros((budget,), jnp.int32))
  _, _, sum_ll_q, sum_lu_q, m_q, idx = jax.lax.fori_loop(0, budget, step, init)
  return GreedyResult(
      indices=idx,
      first_gain=gain(s_l, sum_ll, sum_lu, m),
      mmd2_before=mmd.mmd2_from_sums(sum_ll, sum_uu, sum_lu, m, n, unbiased),
      mmd2_after=mmd.mmd2_from_sums(sum_ll_q, sum_uu, sum_lu_q, m_q, n,
                                    unbiased))
