"""Consecutive minibatches of the scored candidates: the per-batch scope of
the k-means cluster-margin + MMD method.

That method scores the candidates in DataLoader order, 128 at a time, and
computes some statistics (k-means, MMD references) inside each minibatch.
Here the full minibatches share one shape and run under one `vmap`; the last,
partial minibatch (the "tail") has its own shape and runs as one more call.
There is no padding, so no padded point can ever influence a real one or be
selected (ott-jax's k-means can re-seed an empty cluster at a point of
weight 0, see kmeans.py).

A tail smaller than `min_size` (for k-means: fewer points than clusters) is
merged into the minibatch before it, which is then up to
`batch + min_size - 1` points long. The method's original per-batch loop
would have failed there (k-means of fewer points than clusters).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def layout(n: int, batch: int, min_size: int = 1) -> tuple[int, int]:
  """How n points split into minibatches.

  Args:
    n: number of points (> 0).
    batch: minibatch size (> 0).
    min_size: smallest allowed tail; a smaller tail joins the minibatch
      before it.

  Returns:
    (num_full, tail): `num_full` minibatches of `batch` points cover
    [0, num_full * batch); the remaining `tail` points (0 or >= min_size,
    possibly more than `batch` after a merge) form one more minibatch.
  """
  if n <= 0 or batch <= 0:
    raise ValueError(f"need n > 0 and batch > 0, got n={n}, batch={batch}")
  num_full, tail = divmod(n, batch)
  if 0 < tail < min_size and num_full > 0:
    num_full, tail = num_full - 1, tail + batch
  return num_full, tail


def batch_ids(n: int, batch: int, min_size: int = 1) -> np.ndarray:
  """[n] int32 minibatch id of every point, in the order of `layout`."""
  num_full, tail = layout(n, batch, min_size)
  ids = np.repeat(np.arange(num_full, dtype=np.int32), batch)
  return np.concatenate([ids, np.full((tail,), num_full, np.int32)])


def num_batches(n: int, batch: int, min_size: int = 1) -> int:
  num_full, tail = layout(n, batch, min_size)
  return num_full + (tail > 0)


def map_batches(fn: Callable[..., tuple[Any, Any]],
                arrays: tuple[jax.Array, ...], rng: jax.Array, batch: int,
                min_size: int = 1, chunk: int | None = None) -> tuple[Any, Any]:
  """Applies `fn(key, *minibatch_arrays)` to every minibatch, in order.

  Args:
    fn: maps (key, [b, ...] slices of each array) to a pair
      (per_point, per_batch) of pytrees (either may be None): per_point
      leaves have a leading axis of b, per_batch leaves are one value per
      minibatch.
    arrays: arrays sharing the leading axis n, split along it.
    rng: key; minibatch i gets `jax.random.split(rng, num_batches)[i]`, so a
      Python loop over the minibatches with those keys gives the same
      result (tested). Or those keys themselves, a [num_batches] key array:
      a block of whole minibatches cut out of a larger pool then gets the
      keys the whole pool's minibatches get (`jax_al.stream`).
    batch: minibatch size (static).
    min_size: see `layout` (static).
    chunk: if set, full minibatches run `chunk` at a time (a loop of
      `vmap`s over slices of the arrays) instead of all at once, to bound
      memory: nothing of the size of the arrays is made.

  Returns:
    (per_point, per_batch): the per-point outputs concatenated back to
    leading axis n, and the per-minibatch outputs stacked along a new
    leading axis of `num_batches(n, batch, min_size)`.
  """
  n = arrays[0].shape[0]
  num_full, tail = layout(n, batch, min_size)
  count = num_full + (tail > 0)
  if rng.ndim == 0:
    keys = jax.random.split(rng, count)
  elif rng.shape == (count,):
    keys = rng
  else:
    raise ValueError(f"{count} minibatches but {rng.shape[0]} keys")
  points, batches = [], []
  if num_full:
    if chunk is None:
      full = tuple(a[:num_full * batch].reshape(num_full, batch, *a.shape[1:])
                   for a in arrays)
      p, b = jax.vmap(fn)(keys[:num_full], *full)
      p = jax.tree.map(lambda o: o.reshape(num_full * batch, *o.shape[2:]), p)
    else:
      p, b = _chunked(fn, arrays, keys[:num_full], batch, num_full, chunk)
    points.append(p)
    batches.append(b)
  if tail:
    p, b = fn(keys[num_full], *(a[num_full * batch:] for a in arrays))
    points.append(p)
    batches.append(jax.tree.map(lambda o: o[None], b))
  cat = lambda *o: jnp.concatenate(o, axis=0)
  return jax.tree.map(cat, *points), jax.tree.map(cat, *batches)


def _chunked(fn, arrays, keys, batch: int, num_full: int, chunk: int):
  """The full minibatches, `chunk` at a time under one `vmap` each.

  Each step slices its rows out of the arrays as they are (no reshaped or
  sliced copy of them is made first: for a pool of a million rows that copy
  was as large as the pool) and writes its outputs in place. The last step
  starts `chunk` minibatches before the end, so every step has one shape
  (one compiled body); the minibatches it shares with the step before are
  computed again, to the same values, and written again.
  """
  c = min(chunk, num_full)
  steps = -(-num_full // c)

  def run(start):
    parts = tuple(jax.lax.dynamic_slice_in_dim(a, start * batch, c * batch).reshape(
        c, batch, *a.shape[1:]) for a in arrays)
    p, b = jax.vmap(fn)(jax.lax.dynamic_slice_in_dim(keys, start, c), *parts)
    return jax.tree.map(lambda o: o.reshape(c * batch, *o.shape[2:]), p), b

  if steps == 1:
    return run(0)
  shapes = jax.eval_shape(run, 0)
  p0 = jax.tree.map(lambda o: jnp.zeros((num_full * batch, *o.shape[1:]), o.dtype),
                    shapes[0])
  b0 = jax.tree.map(lambda o: jnp.zeros((num_full, *o.shape[1:]), o.dtype), shapes[1])

  def body(i, acc):
    start = jnp.minimum(i * c, num_full - c)
    p, b = run(start)
    put = lambda at: lambda o, v: jax.lax.dynamic_update_slice_in_dim(o, v, at, axis=0)
    return (jax.tree.map(put(start * batch), acc[0], p),
            jax.tree.map(put(start), acc[1], b))

  return jax.lax.fori_loop(0, steps, body, (p0, b0))
