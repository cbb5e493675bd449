"""Normalisations of a score vector over the scored candidates.

Each maps a [n] score vector to a [n] vector and is monotone non-decreasing,
so it never changes which candidates a top-k of that one score picks; it only
changes how two scores add up. An optional boolean `where` restricts the
statistics (min, max, mean, ranks) to the selected entries, which the greedy
loop uses to renormalise over the candidates not yet picked; entries outside
`where` come back as 0.

Constant inputs (or a single selected entry) never produce NaN: min-max and
z-score give 0 and rank gives 0.5 (every entry ties for the middle rank).

All functions are traceable; `method` must be a Python string.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

METHODS = ("none", "minmax", "zscore", "rank")


def _mask(x: jax.Array, where: jax.Array | None) -> jax.Array:
  return jnp.ones(x.shape, bool) if where is None else where


def minmax(x: jax.Array, where: jax.Array | None = None) -> jax.Array:
  """(x - min) / (max - min): min 0, max 1; all 0 when x is constant."""
  w = _mask(x, where)
  lo = jnp.min(jnp.where(w, x, jnp.inf))
  hi = jnp.max(jnp.where(w, x, -jnp.inf))
  span = hi - lo
  # A zero span means every selected entry equals lo: map them all to 0.
  out = jnp.where(span > 0, (x - lo) / jnp.where(span > 0, span, 1.0), 0.0)
  return jnp.where(w, out, 0.0)


def zscore(x: jax.Array, where: jax.Array | None = None) -> jax.Array:
  """(x - mean) / std (population std): mean 0, std 1; all 0 if constant."""
  w = _mask(x, where)
  n = jnp.maximum(jnp.sum(w), 1)
  # Scores near the smallest normal float have a subnormal mean, which XLA:CPU
  # flushes to zero: bring those up to about 1 first (z-scores do not depend on
  # the scale). Any other input is multiplied by exactly 1.
  big = jnp.max(jnp.where(w, jnp.abs(x), 0.0))
  x = x * jnp.where((big > 0) & (big < 1e-30), 1.0 / jnp.where(big > 0, big, 1.0), 1.0)
  mean = jnp.sum(jnp.where(w, x, 0.0)) / n
  dev = jnp.where(w, x - mean, 0.0)
  # Deviations are scaled to at most 1 before squaring, so that neither
  # tiny (underflowing squares) nor huge (overflowing) scores break it.
  scale = jnp.max(jnp.abs(dev))
  unit = dev / jnp.where(scale > 0, scale, 1.0)
  std_unit = jnp.sqrt(jnp.sum(unit * unit) / n)
  # Test constancy on the values, not on std: the rounded mean of equal
  # values can differ from them, leaving a spurious std of one ulp.
  const = (jnp.max(jnp.where(w, x, -jnp.inf))
           <= jnp.min(jnp.where(w, x, jnp.inf)))
  ok = (scale > 0) & ~const
  return jnp.where(ok, unit / jnp.where(ok, std_unit, 1.0), 0.0)


def rank(x: jax.Array, where: jax.Array | None = None) -> jax.Array:
  """Average rank scaled to [0, 1]: the smallest 0, the largest 1.

  Ties share the mean of the ranks they span (as `scipy.stats.rankdata`
  with method="average"), so equal scores get equal values and a constant
  input maps to 0.5 everywhere.
  """
  w = _mask(x, where)
  n = jnp.sum(w)
  # Unselected entries sort after every selected one, so ranks among the
  # selected entries are their positions in the sorted prefix.
  keyed = jnp.where(w, x, jnp.inf)
  srt = jnp.sort(keyed)
  lo = jnp.searchsorted(srt, keyed, side="left")
  hi = jnp.searchsorted(srt, keyed, side="right") - 1
  avg = (lo + hi).astype(x.dtype) / 2
  out = jnp.where(n > 1, avg / jnp.maximum(n - 1, 1).astype(x.dtype), 0.5)
  return jnp.where(w, out, 0.0)


def normalize(x: jax.Array, method: str,
              where: jax.Array | None = None) -> jax.Array:
  """Applies the normalisation named `method` (one of `METHODS`).

  Args:
    x: [n] float scores; selected entries must be finite.
    method: "none" (identity), "minmax", "zscore" or "rank".
    where: optional [n] bool; statistics use only these entries and the
      others come back as 0 ("none" returns x unchanged everywhere).

  Returns:
    [n] normalised scores.
  """
  if method == "none":
    return x
  if method == "minmax":
    return minmax(x, where)
  if method == "zscore":
    return zscore(x, where)
  if method == "rank":
    return rank(x, where)
  raise ValueError(f"unknown normalisation {method!r}; choose one of {METHODS}")


def normalize_indexed(x: jax.Array, index: jax.Array,
                      where: jax.Array | None = None) -> jax.Array:
  """`normalize` with the method given as a traced index into `METHODS`.

  Only the selected branch runs (`lax.switch`); one compilation then serves
  every normalisation, so sweeping `al.normalize` does not recompile.
  """
  w = jnp.ones(x.shape, bool) if where is None else where
  branches = [lambda v, w, m=m: normalize(v, m, w) for m in METHODS]
  return jax.lax.switch(index, branches, x, w)
