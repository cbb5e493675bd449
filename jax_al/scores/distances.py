"""Squared Euclidean distances, computed in blocks.

Every function here but `group_layout` (host side, NumPy) is traceable
(call it inside `jax.jit`); the ones taking `block` need it static. The
largest distance matrix any of them materialises is `block x block`
(`knn_dist_sums`: at most 8 x block^2 entries), so a pool of 50k points
against a labeled set of 50k never allocates the 10 GB full matrix.

Distances use the expansion |x|^2 + |y|^2 - 2 x.y, clipped at 0 because the
subtraction can round below it. Matrix products run at HIGHEST precision:
the default on recent GPUs is TF32 (10-bit mantissa), whose rounding in x.y
is large enough to reorder near neighbours and break ties differently from
one run to the next.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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


class GroupLayout(NamedTuple):
  """Where each block of a pool sorted by group finds its group mates.

  order: [n] positions that sort the pool by group (stable).
  rows: rows per block (at most n).
  starts: [ceil(n / rows)] first sorted position of each block's columns.
  width: columns every block reads from its start (at most n): the widest
    span, from the first member of a block's first group to the last member
    of its last group, rounded up to a multiple of 128.

  Block b holds the sorted rows from min(b * rows, n - rows): the last block
  overlaps the one before rather than being padded.
  """
  order: np.ndarray
  rows: int
  starts: np.ndarray
  width: int


def group_layout(groups: np.ndarray, block: int) -> GroupLayout:
  """Sorts by group and sizes the blocks of `knn_dist_sums` (host side).

  A block's columns hold its rows' group mates only, so the work is about
  the sum over groups of size^2 rather than n^2. Blocks shrink (halving,
  down to 8 rows) until `rows x width` is at most 8 x block^2 entries, which
  bounds the distance matrix a block materialises; a group of most of the
  pool still costs n^2 in all, but never an n x n matrix.
  """
  groups = np.asarray(groups)
  n = groups.shape[0]
  order = np.argsort(groups, kind="stable")
  g = groups[order]
  first = np.searchsorted(g, g, side="left")
  last = np.searchsorted(g, g, side="right")
  rows = max(1, min(block, n))
  while True:
    top = np.minimum(np.arange(0, n, rows), n - rows)
    lo = first[top]
    span = int((last[top + rows - 1] - lo).max(initial=1))
    width = min(-(-max(span, 1) // 128) * 128, n)
    if rows * width <= 8 * block * block or rows <= 8:
      # A window of `width` from lo may pass the end: start it earlier.
      starts = np.minimum(lo, n - width).astype(np.int32)
      return GroupLayout(order, rows, starts, width)
    rows = max(8, rows // 2)


def knn_dist_sums(x: jax.Array, groups: jax.Array, layout_order: jax.Array,
                  starts: jax.Array, k: int, rows: int, width: int
                  ) -> tuple[jax.Array, jax.Array]:
  """Per point, the number of its k nearest group mates and the sum of their
  Euclidean distances, block by block in group order (`group_layout`).

  A point is never its own neighbour, but exact duplicates of it are (at
  distance 0). Each block of `rows` points gathers the `width` points from
  its start in group order, which hold all its points' group mates, and
  compares them as one `rows x width` matrix; no sorted copy of the pool is
  made. The k-th smallest squared distance of each row is found by
  bisection on its float32 bit pattern (non-negative floats order as their
  bits): 31 passes of a compare and a count, where XLA's CPU `top_k` costs
  about a sort per row (it was the whole cost at 20,000 points). The k
  nearest are then the entries below that value plus as many copies of it as
  are missing, so ties count as a sort would count them.

  Args:
    x: [n, d] points, in any order.
    groups: [n] int group ids of x.
    layout_order, starts: `GroupLayout.order` and `.starts` of `groups`.
    k: static number of neighbours.
    rows, width: static `GroupLayout.rows` and `.width`.

  Returns:
    In group order (position i is point layout_order[i]): ([n] int32
    neighbour count, min(k, group size - 1); [n] sum of the distances to
    those neighbours).
  """
  n = x.shape[0]
  x = x.astype(jnp.float32)
  x_sq = sq_norms(x)
  sorted_groups = jnp.take(groups.astype(jnp.int32), layout_order)
  inf_bits = jnp.int32(0x7F800000)

  def gather(lo, size):
    """Points lo .. lo + size in group order: rows, norms, groups, positions."""
    ids = jax.lax.dynamic_slice_in_dim(layout_order, lo, size)
    return (jnp.take(x, ids, axis=0), jnp.take(x_sq, ids),
            jax.lax.dynamic_slice_in_dim(sorted_groups, lo, size), lo + jnp.arange(size))

  def one_block(b, out):
    top = jnp.minimum(b * rows, n - rows)
    xb, xb_sq, gb, ib = gather(top, rows)
    yb, yb_sq, hb, jb = gather(starts[b], width)
    xy = jnp.dot(xb, yb.T, precision=_HIGHEST)
    dist = jnp.maximum(xb_sq[:, None] + yb_sq[None, :] - 2 * xy, 0)
    ok = (hb[None, :] == gb[:, None]) & (jb[None, :] != ib[:, None])
    dist = jnp.where(ok, dist, jnp.inf)
    bits = jax.lax.bitcast_convert_type(dist, jnp.int32)

    def bisect(_, bounds):
      low, high = bounds
      mid = low + (high - low) // 2
      enough = jnp.sum(bits <= mid[:, None], axis=1) >= k
      return jnp.where(enough, low, mid + 1), jnp.where(enough, mid, high)

    bounds = (jnp.zeros((rows,), jnp.int32), jnp.full((rows,), inf_bits))
    _, kth_bits = jax.lax.fori_loop(0, 31, bisect, bounds)
    kth = jax.lax.bitcast_convert_type(kth_bits, jnp.float32)
    below = dist < kth[:, None]
    n_below = jnp.sum(below, axis=1).astype(jnp.int32)
    total = jnp.sum(jnp.where(below, jnp.sqrt(dist), 0.0), axis=1)
    full = jnp.isfinite(kth)  # else fewer than k group mates: all are below
    count = jnp.where(full, k, n_below)
    total = total + jnp.where(full, (k - n_below) * jnp.sqrt(kth), 0.0)
    counts, totals = out
    return (jax.lax.dynamic_update_slice_in_dim(counts, count, top, 0),
            jax.lax.dynamic_update_slice_in_dim(totals, total, top, 0))

  out = (jnp.zeros((n,), jnp.int32), jnp.zeros((n,), jnp.float32))
  return jax.lax.fori_loop(0, starts.shape[0], one_block, out)
