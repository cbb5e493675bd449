"""Squared Euclidean distances, computed in blocks.

Every function here is traceable (call it inside `jax.jit`); the ones taking
`block` need it static. The largest distance matrix any of them materialises
is `block x block`, so a pool of 50k points against a labeled set of 50k never
allocates the 10 GB full matrix.

Distances use the expansion |x|^2 + |y|^2 - 2 x.y, clipped at 0 because the
subtraction can round below it. Matrix products run at HIGHEST precision:
the default on recent GPUs is TF32 (10-bit mantissa), whose rounding in x.y
is large enough to reorder near neighbours and break ties differently from
one run to the next.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_HIGHEST = jax.lax.Precision.HIGHEST


def sq_norms(x: jax.Array) -> jax.Array:
  """[n, d] -> [n] squared row norms."""
  return jnp.sum(x * x, axis=-1)


def sq_dists(x: jax.Array, y: jax.Array) -> jax.Array:
  """[n, d], [m, d] -> [n, m] squared distances. Materialises all of it."""
  xy = jnp.dot(x, y.T, precision=_HIGHEST)
  return jnp.maximum(sq_norms(x)[:, None] + sq_norms(y)[None, :] - 2 * xy, 0)


def sq_dists_to(x: jax.Array, x_sq: jax.Array, c: jax.Array) -> jax.Array:
  """Squared distances from every row of x to one point.

  Args:
    x: [n, d] points.
    x_sq: [n] their squared norms (`sq_norms(x)`), passed in so that loops
      calling this once per step compute them once.
    c: [d] the point.

  Returns:
    [n] squared distances.
  """
  xc = jnp.dot(x, c, precision=_HIGHEST)
  return jnp.maximum(x_sq + jnp.dot(c, c, precision=_HIGHEST) - 2 * xc, 0)


def two_largest(x: jax.Array) -> jax.Array:
  """[..., 2] the largest and second-largest values along the last axis
  (equal when the largest occurs twice), the values of
  `jax.lax.top_k(x, 2)`.

  Two reductions instead of top_k: XLA's CPU top_k along short rows costs
  about a sort per row (80 s for [1,000,000, 100], against well under a
  second here). The last axis needs at least 2 entries.
  """
  i = jnp.argmax(x, axis=-1, keepdims=True)
  first = jnp.take_along_axis(x, i, axis=-1)
  rest = jnp.where(jnp.arange(x.shape[-1]) == i, -jnp.inf, x)
  return jnp.concatenate([first, jnp.max(rest, axis=-1, keepdims=True)], axis=-1)


def _blocks(x: jax.Array, size: int, fill: float = 0.0) -> jax.Array:
  """Pads the leading axis to a multiple of `size`, then splits it.

  [n, ...] -> [ceil(n / size), size, ...].
  """
  n = x.shape[0]
  pad = -n % size
  x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1), constant_values=fill)
  return x.reshape((n + pad) // size, size, *x.shape[1:])


def min_sq_dists(x: jax.Array, y: jax.Array, block: int,
                 count: jax.Array | None = None) -> jax.Array:
  """For each row of x, the squared distance to its nearest row of y.

  Row blocks of x run one after another (`lax.map`), and within each a scan
  over column blocks of y keeps a running minimum, so at most one
  `block x block` matrix exists at a time.

  Args:
    x: [n, d] points.
    y: [m, d] reference points; m may be 0.
    block: static block size.
    count: optional (traced) number of real rows of y; rows after it are
      padding and never nearest. None = all m.

  Returns:
    [n] minimum squared distances; +inf everywhere when y has no real row.
  """
  n, m = x.shape[0], y.shape[0]
  if m == 0 or n == 0:
    return jnp.full((n,), jnp.inf, x.dtype)
  bx, by = min(block, n), min(block, m)
  y_blocks = _blocks(y, by)
  y_sq = sq_norms(y_blocks)
  real = jnp.ones((m,), bool) if count is None else jnp.arange(m) < count
  y_valid = _blocks(real, by, fill=False)

  def row_block(xb):
    xb_sq = sq_norms(xb)

    def col_step(best, col):
      yb, yb_sq, valid = col
      xy = jnp.dot(xb, yb.T, precision=_HIGHEST)
      d = xb_sq[:, None] + yb_sq[None, :] - 2 * xy
      d = jnp.where(valid[None, :], d, jnp.inf)
      return jnp.minimum(best, jnp.min(d, axis=1)), None

    best0 = jnp.full((bx,), jnp.inf, x.dtype)
    best, _ = jax.lax.scan(col_step, best0, (y_blocks, y_sq, y_valid))
    return jnp.maximum(best, 0)

  return jax.lax.map(row_block, _blocks(x, bx)).reshape(-1)[:n]


def knn_sq_dists(x: jax.Array, k: int, block: int,
                 groups: jax.Array | None = None) -> jax.Array:
  """Squared distances from each point to its k nearest other points.

  A point is never its own neighbour, but exact duplicates of it are (at
  distance 0). With `groups`, only points of the same group count, which
  gives nearest neighbours within each cluster in one pass. Each row block
  scans the column blocks and merges them into a running top-k, so at most a
  `block x (block + k)` matrix exists at a time.

  Args:
    x: [n, d] points.
    k: static number of neighbours.
    block: static block size.
    groups: optional [n] int group ids.

  Returns:
    [n, k] ascending squared distances; +inf where a point has fewer than k
    other points (in its group).
  """
  n = x.shape[0]
  if groups is None:
    groups = jnp.zeros((n,), jnp.int32)
  b = min(block, n)
  xs = _blocks(x, b)
  x_sq = sq_norms(xs)
  ids = _blocks(jnp.arange(n), b, fill=-1)  # -1 marks padding
  gs = _blocks(groups.astype(jnp.int32), b)

  def row_block(row):
    xb, xb_sq, ib, gb = row

    def col_step(best, col):
      yb, yb_sq, jb, hb = col
      xy = jnp.dot(xb, yb.T, precision=_HIGHEST)
      d = jnp.maximum(xb_sq[:, None] + yb_sq[None, :] - 2 * xy, 0)
      ok = ((jb[None, :] >= 0) & (ib[:, None] != jb[None, :])
            & (gb[:, None] == hb[None, :]))
      d = jnp.where(ok, d, jnp.inf)
      neg, _ = jax.lax.top_k(-jnp.concatenate([best, d], axis=1), k)
      return -neg, None

    best0 = jnp.full((b, k), jnp.inf, x.dtype)
    best, _ = jax.lax.scan(col_step, best0, (xs, x_sq, ids, gs))
    return best

  out = jax.lax.map(row_block, (xs, x_sq, ids, gs))
  return out.reshape(-1, k)[:n]
