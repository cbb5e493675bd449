"""Gaussian-kernel MMD between point sets, and per-candidate MMD scores.

Definitions:

  k(a, b) = exp(-||a - b||^2 / (2 sigma^2)), so k(a, a) = 1.
  MMD^2(P, Q) = mean k(P, P) + mean k(Q, Q) - 2 mean k(P, Q)    (biased)
  The unbiased estimator leaves the diagonals out of the two within-set
  means: sum_{i != j} k(p_i, p_j) / (|P| (|P| - 1)), and the same for Q.

The candidates being scored are the reference set U (the unlabeled pool as
far as this selection sees it); L is the labeled set. Three per-candidate
quantities, each [N]:

  per_sample  m(x) = (1/R) sum_r MMD^2({x}, L_r): the score of the k-means
              cluster-margin + MMD method. L_r are
              R random draws of `draw_size` labeled points. For {x} the
              within-set term is k(x, x) = 1 under both estimators (the
              unbiased one is undefined for one point; a point mass has
              E k(X, X') = k(x, x) = 1 exactly). Large = far from L.
  witness     h(x) = mean_u k(x, u) - mean_l k(x, l): large where the pool
              is dense and L is thin.
  decrease    MMD^2(L, U) - MMD^2(L + {x}, U): positive when adding x makes
              L closer to U. Closed forms (no cancellation between two large
              sums), with kll = mean k(L, L), kll' = its off-diagonal mean,
              klu = mean k(L, U), m = |L|:
                biased:   ((2m+1) kll - 2m mean_l k(x,l) - 1) / (m+1)^2
                          + 2 (mean_u k(x,u) - klu) / (m+1)
                unbiased: 2 (kll' - mean_l k(x,l)) / (m+1)
                          + 2 (mean_u k(x,u) - klu) / (m+1)

Scope. With `batch=None` U is every candidate. With `batch=b` U for a
candidate is its own consecutive minibatch of b candidates (see
`minibatch.layout`), as in that method's per-batch loop; L is always the whole
labeled set. For `per_sample` the scope decides only how the draws are
shared: one set of R draws for all candidates, or fresh draws per minibatch
(the method's loop draws inside each minibatch).

Block-wise evaluation. Every sum over a kernel matrix goes through
`kernel_matvec` (or `kernel_sum` for a set against itself, which computes
only the blocks on or above the diagonal), never holding more than one
`block x block` kernel block; row blocks run one after another (`lax.map`)
and each scans its column blocks.

Random Fourier features (`freqs` given, from `rff_frequencies`). z(x) =
sqrt(2/D) [cos(x W), sin(x W)] with W ~ N(0, I / sigma^2) of shape
[d, D/2], so z(a).z(b) is an unbiased estimate of k(a, b) and
z(a).z(a) = 1 like the exact kernel. Kernel sums against a set S become
z(x) . sum_s z(s): O((N + M) d D) instead of O(N (N + M) d). Sums over a
candidate's own minibatch (only `batch` columns) are always exact. The
candidates' features are computed block by block (`rff_features`,
`rff_dots`, rows per block from `memory.rff_rows`), each row bit for bit as
over the whole array; where their sum over all candidates is needed the
[N, D] features are held whole, since that sum is one reduction whose
order a blocked sum would change (the last bits of every score), up to
`memory.RFF_HOLD_BYTES` of features; above it they are streamed
(`streams_rff`: summed in one pass, dotted in a second, never held).

Labeled padding. `l` may carry padding rows after the first `l_count` real
ones (so that shapes, and compilations, do not follow the labeled-set size);
padding rows get weight 0 in every sum and are never drawn.

All functions are traceable; arguments documented as static must be Python
values under `jax.jit`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jax_al.scores import distances
from jax_al.scores import minibatch

TERMS = ("per_sample", "witness", "decrease")
ESTIMATORS = ("biased", "unbiased")

# Points sampled for the median heuristic: 1024 points give ~520k pairwise
# distances, plenty for a median, at a cost independent of N and M.
MEDIAN_POINTS = 1024


# ---------------------------------------------------------------- kernels


def gaussian_kernel(x: jax.Array, y: jax.Array, sigma: jax.Array) -> jax.Array:
  """Dense [n, m] Gaussian kernel matrix. For small sets only."""
  return jnp.exp(-distances.sq_dists(x, y) / (2.0 * sigma**2))


def _split(x: jax.Array, size: int) -> jax.Array:
  """[n, ...] -> [ceil(n / size), size, ...], zero-padding the tail."""
  pad = -x.shape[0] % size
  x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
  return x.reshape(-1, size, *x.shape[1:])


def kernel_matvec(x: jax.Array, y: jax.Array, w: jax.Array, sigma: jax.Array,
                  *, block: int) -> jax.Array:
  """sum_j k(x_i, y_j) w_j, block-wise.

  Args:
    x: [n, d] rows.
    y: [m, d] columns.
    w: [m] or [m, c] column weights (0 for padding rows).
    sigma: kernel bandwidth (scalar).
    block: static; the largest kernel block is min(block, n) x
      min(block, m).

  Returns:
    [n] or [n, c] weighted kernel sums.
  """
  vec = w.ndim == 1
  w = w[:, None] if vec else w
  n, m = x.shape[0], y.shape[0]
  bx, by = min(block, n), min(block, m)
  # Padding rows of y get weight 0 from the zero-padded w.
  ys, ws = _split(y, by), _split(w.astype(x.dtype), by)
  gamma = 1.0 / (2.0 * sigma**2)

  def row_block(xb):
    def col_step(acc, col):
      yb, wb = col
      kb = jnp.exp(-gamma * distances.sq_dists(xb, yb))
      return acc + jnp.dot(kb, wb, precision=jax.lax.Precision.HIGHEST), None

    acc0 = jnp.zeros((bx, w.shape[1]), x.dtype)
    # Unrolled: XLA:CPU runs the exp/dot blocks ~1.3x slower inside a while
    # loop (measured 0.61 s vs 0.46 s for a 5k x 20k mat-vec at block 1024).
    return jax.lax.scan(col_step, acc0, (ys, ws), unroll=_unroll(ys.shape[0]))[0]

  out = jax.lax.map(row_block, _split(x, bx)).reshape(-1, w.shape[1])[:n]
  return out[:, 0] if vec else out


# Column blocks unrolled at most per loop step. Whole unrolling made the
# program grow with m / block: al.block=1 compiled for minutes. Every run
# with up to this many column blocks (block 1024 up to 65k points) runs the
# same program as before.
MAX_UNROLL = 64


def _unroll(steps: int):
  return True if steps <= MAX_UNROLL else MAX_UNROLL


# Up to this many blocks per side, kernel_sum unrolls its triangle of block
# pairs (nb (nb + 1) / 2 of them) instead of looping.
STATIC_TRIANGLE_BLOCKS = 24


def kernel_sum(x: jax.Array, w: jax.Array, sigma: jax.Array, *,
               block: int) -> jax.Array:
  """sum_{i,j} w_i w_j k(x_i, x_j), block-wise, using the symmetry.

  Only blocks on or above the diagonal are computed (off-diagonal ones
  count twice): half the work of `w . kernel_matvec(x, x, w)`. That matters
  for sum k(L, L), which for a large labeled set costs more than all the
  per-candidate sums together.

  Args:
    x: [n, d] points.
    w: [n] weights (0 for padding rows).
    sigma: bandwidth.
    block: static block size.

  Returns:
    Scalar sum.
  """
  b = min(block, x.shape[0])
  xs, ws = _split(x, b), _split(w.astype(x.dtype), b)
  nb = xs.shape[0]
  gamma = 1.0 / (2.0 * sigma**2)
  hi = jax.lax.Precision.HIGHEST

  def pair(i, j):
    kb = jnp.exp(-gamma * distances.sq_dists(xs[i], xs[j]))
    return jnp.dot(jnp.dot(ws[i], kb, precision=hi), ws[j], precision=hi)

  if nb <= STATIC_TRIANGLE_BLOCKS:
    # The upper triangle as straight-line code: no loop, no cond; XLA:CPU
    # runs these blocks faster outside a while loop.
    return sum(pair(i, j) * (1.0 if i == j else 2.0)
               for i in range(nb) for j in range(i, nb))

  def row(i):
    def col(acc, j):
      def block_sum(_):
        s = pair(i, j)
        return jnp.where(i == j, s, 2.0 * s)

      # Skipped for real under lax.map/scan (no vmap here), not masked.
      return acc + jax.lax.cond(j >= i, block_sum, lambda _: jnp.zeros(
          (), x.dtype), None), None

    return jax.lax.scan(col, jnp.zeros((), x.dtype), jnp.arange(nb), unroll=_unroll(nb))[0]

  return jnp.sum(jax.lax.map(row, jnp.arange(nb)))


def median_sigma(x: jax.Array, rng: jax.Array, *,
                 weights: jax.Array | None = None,
                 max_points: int = MEDIAN_POINTS) -> jax.Array:
  """Median heuristic: sigma = median pairwise Euclidean distance.

  Up to `max_points` rows (static), the median runs over all pairs i < j of
  rows with nonzero weight. Above that, `max_points` rows are drawn with
  replacement (uniformly among rows of nonzero weight) and the median runs
  over pairs of distinct draws; the estimate's error is O(1/max_points) in
  quantile, negligible for a bandwidth.

  If more than half of the pairs coincide the median is 0; the mean pairwise
  distance is used then, and 1.0 if every point coincides (the kernel is
  then 1 for every pair whatever sigma is).

  Args:
    x: [n, d] points.
    rng: key for the subsample (unused when n <= max_points).
    weights: optional [n]; rows with weight 0 (padding) are left out.
    max_points: static subsample size.

  Returns:
    Scalar sigma > 0.
  """
  ids, ok = median_rows(x.shape[0], rng, weights=weights, max_points=max_points)
  return median_sigma_of(x if ids is None else x[ids], ids, ok)


def median_rows(n: int, rng: jax.Array, *, weights: jax.Array | None = None,
                max_points: int = MEDIAN_POINTS):
  """The rows `median_sigma` reads: (None, [n] valid) when n <= max_points
  (all rows), else ([max_points] rows drawn, all valid). A caller holding its
  points in pieces gathers these rows itself (no concatenated copy of them
  all) and passes them to `median_sigma_of`."""
  valid = jnp.ones((n,), bool) if weights is None else weights > 0
  if n <= max_points:
    return None, valid
  p = valid.astype(jnp.float32)
  ids = jax.random.choice(rng, n, (max_points,), replace=True, p=p / p.sum())
  return ids, jnp.ones((max_points,), bool)


def median_sigma_of(pts: jax.Array, ids: jax.Array | None, ok: jax.Array) -> jax.Array:
  """`median_sigma` of the rows `median_rows` chose: pts = x, or x[ids]."""
  if ids is None:
    ids = jnp.arange(pts.shape[0])
  s = pts.shape[0]
  d = jnp.sqrt(distances.sq_dists(pts, pts))
  # The pairs i < j as a mask built in the program: gathering them with
  # np.triu_indices baked two [s (s - 1) / 2] index arrays (4 MB at s = 1024)
  # into every program that estimates sigma, slowing its lowering and
  # compilation. The median depends only on the multiset of masked values.
  row = jax.lax.broadcasted_iota(jnp.int32, (s, s), 0)
  col = jax.lax.broadcasted_iota(jnp.int32, (s, s), 1)
  pair_ok = (row < col) & ok[:, None] & ok[None, :] & (ids[:, None] != ids[None, :])
  d, pair_ok = d.ravel(), pair_ok.ravel()
  med = masked_median(d, pair_ok)
  mean = jnp.sum(jnp.where(pair_ok, d, 0.0)) / jnp.maximum(pair_ok.sum(), 1)
  return jnp.where(med > 0, med, jnp.where(mean > 0, mean, 1.0))


def masked_median(v: jax.Array, ok: jax.Array, iters: int = 64) -> jax.Array:
  """Median of v[ok] (the mean of the two middle values for an even count).

  By bisection on the value instead of sorting: XLA's CPU sort of the
  ~520k pairwise distances takes ~0.25 s, `iters` counting passes take a
  few ms. The invariant count(v <= lo) < r <= count(v <= hi) brackets the
  r-th smallest value, which is then read off exactly as the smallest value
  above `lo`; 64 halvings shrink any float32 bracket to adjacent floats.

  Args:
    v: [n] values, finite where ok.
    ok: [n] bool, which values count (at least one).
    iters: static number of bisection steps.

  Returns:
    Scalar median.
  """
  count = jnp.sum(ok)
  ranks = jnp.stack([(count + 1) // 2, count // 2 + 1])  # 1-based middle ranks
  big = jnp.max(jnp.where(ok, v, -jnp.inf))
  lo0 = jnp.min(jnp.where(ok, v, jnp.inf)) - 1.0
  lo = jnp.stack([lo0, lo0])
  hi = jnp.stack([big, big])

  def step(_, bounds):
    lo, hi = bounds
    mid = lo + (hi - lo) / 2
    below = jnp.sum(ok[None, :] & (v[None, :] <= mid[:, None]), axis=1)
    up = below >= ranks
    return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

  lo, _ = jax.lax.fori_loop(0, iters, step, (lo, hi))
  vals = jnp.min(jnp.where(ok[None, :] & (v[None, :] > lo[:, None]),
                           v[None, :], jnp.inf), axis=1)
  return jnp.mean(vals)


# ------------------------------------------------- random Fourier features


def rff_frequencies(rng: jax.Array, dim: int, rff_dim: int,
                    sigma: jax.Array) -> jax.Array:
  """[dim, rff_dim // 2] frequencies W ~ N(0, I / sigma^2); rff_dim even."""
  if rff_dim < 2 or rff_dim % 2:
    raise ValueError(f"rff_dim must be even and >= 2, got {rff_dim}")
  return jax.random.normal(rng, (dim, rff_dim // 2)) / sigma


# Taylor coefficients of cos and sin on [-pi, pi]; degree 14 / 15 keeps the
# error below 5e-6, far under the Monte Carlo error of the features
# (~ 1 / sqrt(D)).
_COS = [(-1.0)**i / math.factorial(2 * i) for i in range(8)]
_SIN = [(-1.0)**i / math.factorial(2 * i + 1) for i in range(8)]


def _cos_sin(theta: jax.Array) -> tuple[jax.Array, jax.Array]:
  """cos and sin by range reduction to [-pi, pi] and a polynomial.

  XLA's CPU cos/sin are generic and about 3x slower than this fused
  polynomial, and on CPU they, not the matrix product, dominate the cost of
  the features. Accurate to ~5e-6 for |theta| < 1e3.
  """
  turns = theta * (0.5 / math.pi)
  z = (turns - jnp.round(turns)) * (2.0 * math.pi)
  z2 = z * z
  c = jnp.full_like(z2, _COS[-1])
  s = jnp.full_like(z2, _SIN[-1])
  for a, b in zip(_COS[-2::-1], _SIN[-2::-1]):
    c = c * z2 + a
    s = s * z2 + b
  return c, s * z


def rff_map(x: jax.Array, freqs: jax.Array) -> jax.Array:
  """[n, d] -> [n, D] random Fourier features z(x), D = 2 freqs.shape[1]."""
  c, s = _cos_sin(jnp.dot(x, freqs, precision=jax.lax.Precision.HIGHEST))
  return jnp.concatenate([c, s], axis=-1) * math.sqrt(1.0 / freqs.shape[1])


def rff_sum(x: jax.Array, w: jax.Array, freqs: jax.Array, *,
            block: int) -> jax.Array:
  """sum_i w_i z(x_i) -> [D], `block` rows of features at a time."""
  b = min(block, x.shape[0])

  def step(acc, xw):
    xb, wb = xw
    return acc + jnp.dot(wb, rff_map(xb, freqs),
                         precision=jax.lax.Precision.HIGHEST), None

  acc0 = jnp.zeros((2 * freqs.shape[1],), x.dtype)
  return jax.lax.scan(step, acc0, (_split(x, b), _split(w.astype(x.dtype), b)))[0]


def _row_block(x: jax.Array, start, rows: int, centre: jax.Array | None):
  xb = jax.lax.dynamic_slice_in_dim(x, start, rows)
  return xb if centre is None else xb - centre


# Blocked passes over rows start their blocks at multiples of this many rows:
# a row's products in XLA:CPU's matrix kernels depend on its place in their
# row tiles (and on whether it is in the last, partial tile), so blocks of a
# multiple of the tile starting at multiples of it, and a last block ending
# where the array ends, give each row the values the whole array gives it.
ROW_ALIGN = 64


def _row_blocks(n: int, rows: int) -> tuple[int, int, int]:
  """(block rows b, full blocks, first row of the last block) of a pass.

  Full blocks cover [i b, (i + 1) b); the last block runs from a multiple of
  ROW_ALIGN to the end and is at least b rows long (a short one would go to
  another of XLA:CPU's matrix kernels, whose sums differ in the last bits),
  so it overlaps the full blocks before it, whose rows it gives the same
  values again. None when the full blocks end at n.
  """
  b = n if n <= rows else max(ROW_ALIGN, rows // ROW_ALIGN * ROW_ALIGN)
  full = n // b
  last = None if n == full * b else (n - b) // ROW_ALIGN * ROW_ALIGN
  return b, full, last


def blocked_rows(fn, x: jax.Array, rows: int, out0):
  """out0 (a tuple of [N, ...] zeros) with rows [s, s + b) set to fn(s, b)
  (a tuple of [b, ...]) for every block of `_row_blocks`."""
  n = x.shape[0]
  b, full, last = _row_blocks(n, rows)
  if full == 1 and last is None:
    return fn(0, n)
  put = lambda outs, vals, start: tuple(
      jax.lax.dynamic_update_slice_in_dim(o, v, start, axis=0)
      for o, v in zip(outs, vals))
  outs = jax.lax.fori_loop(0, full, lambda i, o: put(o, fn(i * b, b), i * b), out0)
  return outs if last is None else put(outs, fn(last, n - last), last)


def rff_features(x: jax.Array, freqs: jax.Array, *, rows: int,
                 centre: jax.Array | None = None) -> jax.Array:
  """[N, D] z(x_i - centre), built about `rows` rows at a time into one array.

  The features themselves are the only [N, D] array: no centred copy of x,
  and the projections x W, their cosines and sines exist for one block of
  rows at a time (`rff_map` of all rows held all four, and XLA a copy of
  the concatenation). Each row is bit for bit `rff_map`'s (`ROW_ALIGN`).
  """
  def block(start, b):
    return (rff_map(_row_block(x, start, b, centre), freqs),)

  return blocked_rows(block, x, rows,
                       (jnp.zeros((x.shape[0], 2 * freqs.shape[1]), x.dtype),))[0]


def rff_dots(x: jax.Array, freqs: jax.Array, vecs: tuple[jax.Array, ...], *,
             rows: int, centre: jax.Array | None = None) -> tuple[jax.Array, ...]:
  """(z(x_i - centre) . v for every row i) for each [D] v of `vecs`: a tuple
  of [N], about `rows` rows of features at a time (each row's products are
  those of the whole [N, D] features, bit for bit: `ROW_ALIGN`)."""
  hi = jax.lax.Precision.HIGHEST

  def block(start, b):
    zb = rff_map(_row_block(x, start, b, centre), freqs)
    return tuple(jnp.dot(zb, v, precision=hi) for v in vecs)

  return blocked_rows(block, x, rows, tuple(jnp.zeros((x.shape[0],), x.dtype) for _ in vecs))


# ------------------------------------------------------------- set MMD


def mmd2_from_sums(s_pp: jax.Array, s_qq: jax.Array, s_pq: jax.Array,
                   n_p: jax.Array, n_q: jax.Array,
                   unbiased: bool = False) -> jax.Array:
  """MMD^2 from full kernel sums (diagonals included, k(a, a) = 1).

  Args:
    s_pp, s_qq, s_pq: sum_{i,j} k(p_i, p_j), the same for Q, and
      sum_{i,j} k(p_i, q_j).
    n_p, n_q: set sizes (>= 2 each for the unbiased estimator).
    unbiased: static; leave the within-set diagonals out.
  """
  n_p, n_q = _count(n_p), _count(n_q)
  if unbiased:
    return ((s_pp - n_p) / (n_p * (n_p - 1)) + (s_qq - n_q) / (n_q * (n_q - 1))
            - 2.0 * s_pq / (n_p * n_q))
  return s_pp / n_p**2 + s_qq / n_q**2 - 2.0 * s_pq / (n_p * n_q)


def _count(n):
  """A set size as a float: a Python int's n**2 passes 2**31 from n = 46,341,
  which a jitted call cannot take as an int32. Exact for every n < 2**53."""
  return float(n) if isinstance(n, (int, np.integer)) else n


def mmd2(p: jax.Array, q: jax.Array, sigma: jax.Array, *,
         unbiased: bool = False, block: int = 1024) -> jax.Array:
  """MMD^2(P, Q) of two point sets, block-wise. Scalar."""
  s_pp = kernel_sum(p, jnp.ones(p.shape[0]), sigma, block=block)
  s_qq = kernel_sum(q, jnp.ones(q.shape[0]), sigma, block=block)
  s_pq = jnp.sum(kernel_matvec(p, q, jnp.ones(q.shape[0]), sigma, block=block))
  return mmd2_from_sums(s_pp, s_qq, s_pq, p.shape[0], q.shape[0], unbiased)


# ------------------------------------------------------ shared kernel sums


def _l_weights(l: jax.Array, l_count) -> tuple[jax.Array, jax.Array]:
  """0/1 weights of the real labeled rows, and their number as a float."""
  rows = l.shape[0]
  if l_count is None:
    return jnp.ones((rows,), l.dtype), jnp.asarray(rows, l.dtype)
  w = (jnp.arange(rows) < l_count).astype(l.dtype)
  return w, jnp.asarray(l_count, l.dtype)


def rff_rows(x: jax.Array, freqs: jax.Array) -> int:
  """Rows of features a blocked RFF pass computes at once
  (`memory.rff_rows`)."""
  from jax_al import memory  # pylint: disable=import-outside-toplevel
  return memory.rff_rows(x.shape[1], 2 * freqs.shape[1])


def sums_to_l(x: jax.Array, l: jax.Array, sigma: jax.Array, *,
              l_count=None, block: int = 1024, freqs: jax.Array | None = None,
              need_ll: bool = False, centre: jax.Array | None = None,
              z: jax.Array | None = None):
  """Kernel sums against the labeled set; the candidates are x - centre
  (`centre` None: x), l is as given. With RFF, `z` may hold the candidates'
  features (`rff_features`), computed once for this and `sums_to_self`.

  Returns:
    (s_l, sum_ll, m): s_l [N] = sum_l k(x, l); sum_ll = sum_{l,l'} k(l, l')
    (None unless need_ll); m = number of real labeled rows (float).
  """
  w, m = _l_weights(l, l_count)
  if freqs is None:
    x = x if centre is None else x - centre
    s_l = kernel_matvec(x, l, w, sigma, block=block)
    sum_ll = kernel_sum(l, w, sigma, block=block) if need_ll else None
  else:
    z_l = rff_sum(l, w, freqs, block=block)
    if z is None:
      s_l, = rff_dots(x, freqs, (z_l,), rows=rff_rows(x, freqs), centre=centre)
    else:
      s_l = jnp.dot(z, z_l, precision=jax.lax.Precision.HIGHEST)
    sum_ll = jnp.dot(z_l, z_l) if need_ll else None
  return s_l, sum_ll, m


def sums_to_self(x: jax.Array, sigma: jax.Array, *, block: int = 1024,
                 freqs: jax.Array | None = None,
                 centre: jax.Array | None = None,
                 z: jax.Array | None = None) -> jax.Array:
  """[N] sum_u k(x, u) over all candidates u (x included); the candidates
  are x - centre (`centre` None: x); `z` as in `sums_to_l`.

  With RFF the [N, D] features are held whole up to `memory.RFF_HOLD_BYTES`:
  their sum over all rows is then one reduction, whose order of additions
  (XLA's, and so the last bits of every score, and the picks at near-ties) a
  blocked sum would not keep. Above it they are never held (`streams_rff`):
  one pass sums them block by block (`rff_column_sum`), a second takes the
  dots (`rff_dots`).
  """
  if freqs is None:
    x = x if centre is None else x - centre
    return kernel_matvec(x, x, jnp.ones(x.shape[0], x.dtype), sigma,
                         block=block)
  if z is None and streams_rff(x, freqs):
    return _streamed_dots(x, freqs, centre)[0]
  if z is None:
    z = rff_features(x, freqs, rows=rff_rows(x, freqs), centre=centre)
  return jnp.dot(z, jnp.sum(z, axis=0), precision=jax.lax.Precision.HIGHEST)


def streams_rff(x: jax.Array, freqs: jax.Array) -> bool:
  """Whether the RFF sums over all candidates stream their [N, D] features
  (two passes, none held) instead of holding them: above
  `memory.RFF_HOLD_BYTES` of features (1,000,000 x 2,048: 8 GB). A rule of
  the shapes alone, so a pool's scores do not depend on the machine."""
  from jax_al import memory  # pylint: disable=import-outside-toplevel
  return x.shape[0] * 2 * freqs.shape[1] * x.dtype.itemsize > memory.RFF_HOLD_BYTES


def rff_column_sum(x: jax.Array, freqs: jax.Array, *, rows: int,
                   centre: jax.Array | None = None) -> jax.Array:
  """[D] sum_i z(x_i - centre): the features of `rows` rows at a time summed
  into one accumulator, the rows left after the full blocks last (a fixed
  order of additions for given N and rows; not the whole-array reduction's)."""
  n = x.shape[0]
  b = min(rows, n)
  full, rest = n // b, n % b

  def body(i, acc):
    return acc + jnp.sum(rff_map(_row_block(x, i * b, b, centre), freqs), axis=0)

  acc = jax.lax.fori_loop(0, full, body, jnp.zeros((2 * freqs.shape[1],), x.dtype))
  if rest:
    acc = acc + jnp.sum(rff_map(_row_block(x, full * b, rest, centre), freqs), axis=0)
  return acc


def _streamed_dots(x, freqs, centre, vecs=()):
  """(s_u, *(z(x).v for v in vecs)), s_u [N] = sum_u z(x).z(u) over all
  candidates, with their features streamed (`streams_rff`): one pass sums
  them, a second takes every dot."""
  rows = rff_rows(x, freqs)
  total = rff_column_sum(x, freqs, rows=rows, centre=centre)
  return rff_dots(x, freqs, (total, *vecs), rows=rows, centre=centre)


def _rff_sums_streamed(x, l, freqs, l_count, block, centre):
  """(s_u, s_l, z_l, m) over all candidates with their features streamed:
  s_u as in `_streamed_dots`, s_l [N] = sum_l w_l z(x).z(l), z_l [D] the
  labeled set's weighted feature sum, m its real rows."""
  w, m = _l_weights(l, l_count)
  z_l = rff_sum(l, w, freqs, block=block)
  s_u, s_l = _streamed_dots(x, freqs, centre, (z_l,))
  return s_u, s_l, z_l, m


def decrease_from_means(mean_l: jax.Array, mean_u: jax.Array,
                        kll: jax.Array, klu: jax.Array, m: jax.Array,
                        unbiased: bool = False) -> jax.Array:
  """MMD^2(L, U) - MMD^2(L + {x}, U) from kernel means.

  Args:
    mean_l: [N] mean_l k(x, l).
    mean_u: [N] mean_u k(x, u) (U contains x).
    kll: mean k(L, L), diagonal included (biased) or excluded (unbiased).
    klu: mean k(L, U) (scalar, or [N] when U differs per candidate).
    m: |L|.
    unbiased: static.

  Returns:
    [N] decreases; positive = x brings L closer to U. See the module
    docstring for the closed forms.
  """
  cross = 2.0 * (mean_u - klu) / (m + 1)
  if unbiased:
    return 2.0 * (kll - mean_l) / (m + 1) + cross
  return ((2 * m + 1) * kll - 2 * m * mean_l - 1.0) / (m + 1)**2 + cross


def within_mean(sum_pp: jax.Array, n_p: jax.Array,
                unbiased: bool = False) -> jax.Array:
  """mean k(P, P) from the full sum: diagonal in (biased) or out (unbiased)."""
  n_p = _count(n_p)
  return (sum_pp - n_p) / (n_p * (n_p - 1)) if unbiased else sum_pp / n_p**2


# ------------------------------------------------- per-candidate terms


def _self_features(x, freqs, batch, centre):
  """The candidates' RFF features, once for both sums, where the sum over
  all candidates needs them (RFF, batch None); else None."""
  if freqs is None or batch is not None:
    return None
  return rff_features(x, freqs, rows=rff_rows(x, freqs), centre=centre)


def witness(x: jax.Array, l: jax.Array, sigma: jax.Array, *, l_count=None,
            batch: int | None = None, min_size: int = 1, block: int = 1024,
            freqs: jax.Array | None = None,
            centre: jax.Array | None = None) -> jax.Array:
  """[N] witness h(x) = mean_u k(x, u) - mean_l k(x, l).

  Args:
    x: [N, d] candidates (= U, or split into minibatches of U).
    l: [M, d] labeled points (first `l_count` real).
    sigma: bandwidth.
    l_count: number of real labeled rows; None = all.
    batch: static; None = U is all candidates, else each candidate's own
      minibatch (`minibatch.layout(N, batch, min_size)`).
    min_size: static; see `minibatch.layout`.
    block: static block size.
    freqs: RFF frequencies, or None for exact kernels.
    centre: optional [d]: the candidates are x - centre (l is as given).
      With RFF over all candidates they are centred block by block as their
      features are built, with no centred copy of x.
  """
  if centre is not None and (freqs is None or batch is not None):
    x, centre = x - centre, None
  if freqs is not None and batch is None and streams_rff(x, freqs):
    s_u, s_l, _, m = _rff_sums_streamed(x, l, freqs, l_count, block, centre)
    return s_u / x.shape[0] - s_l / m
  z = _self_features(x, freqs, batch, centre)
  s_l, _, m = sums_to_l(x, l, sigma, l_count=l_count, block=block, freqs=freqs,
                        centre=centre, z=z)
  if batch is None:
    return sums_to_self(x, sigma, block=block, freqs=freqs,
                        centre=centre, z=z) / x.shape[0] - s_l / m

  def one(_, xb):
    s_u = kernel_matvec(xb, xb, jnp.ones(xb.shape[0], xb.dtype), sigma,
                        block=block)
    return s_u / xb.shape[0], None

  mean_u, _ = minibatch.map_batches(one, (x,), jax.random.key(0), batch,
                                    min_size)
  return mean_u - s_l / m


def mmd2_decrease(x: jax.Array, l: jax.Array, sigma: jax.Array, *,
                  l_count=None, unbiased: bool = False,
                  batch: int | None = None, min_size: int = 1,
                  block: int = 1024,
                  freqs: jax.Array | None = None,
                  centre: jax.Array | None = None) -> jax.Array:
  """[N] MMD^2(L, U) - MMD^2(L + {x}, U); positive = L moves closer to U.

  Arguments as in `witness`; `unbiased` (static) picks the estimator. The
  unbiased one needs at least 2 labeled points.
  """
  if centre is not None and (freqs is None or batch is not None):
    x, centre = x - centre, None
  if freqs is not None and batch is None and streams_rff(x, freqs):
    s_u, s_l, z_l, m = _rff_sums_streamed(x, l, freqs, l_count, block, centre)
    kll, n = within_mean(jnp.dot(z_l, z_l), m, unbiased), x.shape[0]
    return decrease_from_means(s_l / m, s_u / n, kll, jnp.sum(s_l) / (m * n), m, unbiased)
  z = _self_features(x, freqs, batch, centre)
  s_l, sum_ll, m = sums_to_l(x, l, sigma, l_count=l_count, block=block,
                             freqs=freqs, need_ll=True, centre=centre, z=z)
  kll = within_mean(sum_ll, m, unbiased)
  if batch is None:
    n = x.shape[0]
    mean_u = sums_to_self(x, sigma, block=block, freqs=freqs, centre=centre, z=z) / n
    klu = jnp.sum(s_l) / (m * n)
    return decrease_from_means(s_l / m, mean_u, kll, klu, m, unbiased)

  def one(_, xb, s_lb):
    nb = xb.shape[0]
    mean_u = kernel_matvec(xb, xb, jnp.ones(nb, xb.dtype), sigma,
                           block=block) / nb
    klu = jnp.sum(s_lb) / (m * nb)
    return decrease_from_means(s_lb / m, mean_u, kll, klu, m, unbiased), None

  out, _ = minibatch.map_batches(one, (x, s_l), jax.random.key(0), batch,
                                 min_size)
  return out


def per_sample_from_draws(x: jax.Array, draws: jax.Array, sigma: jax.Array, *,
                          unbiased: bool = False,
                          block: int = 1024) -> jax.Array:
  """[N] (1/R) sum_r MMD^2({x}, draws[r]) for given draws [R, s, d]."""
  r, s, d = draws.shape
  flat = draws.reshape(r * s, d)
  # Column j of the block-diagonal weights averages over draw j.
  w = jnp.repeat(jnp.eye(r, dtype=x.dtype), s, axis=0) / s  # [R*s, R]
  mean_x = kernel_matvec(x, flat, w, sigma, block=block)  # [N, R]
  self_sums = jax.vmap(lambda p: jnp.sum(kernel_matvec(
      p, p, jnp.ones(s, p.dtype), sigma, block=block)))(draws)  # [R]
  return 1.0 + jnp.mean(within_mean(self_sums, s, unbiased)) - 2.0 * jnp.mean(
      mean_x, axis=1)


def _per_sample_rff(z_x: jax.Array, z_draws: jax.Array,
                    unbiased: bool) -> jax.Array:
  """per_sample_from_draws with features: z_x [N, D], z_draws [R, s, D]."""
  s = z_draws.shape[1]
  tot = jnp.sum(z_draws, axis=1)  # [R, D]
  self_sums = jnp.sum(tot * tot, axis=1)
  mean_x = jnp.dot(z_x, tot.T, precision=jax.lax.Precision.HIGHEST) / s
  return 1.0 + jnp.mean(within_mean(self_sums, s, unbiased)) - 2.0 * jnp.mean(
      mean_x, axis=1)


def per_sample_mmd2(x: jax.Array, l: jax.Array, sigma: jax.Array,
                    rng: jax.Array, *, repeats: int, draw_size: int,
                    l_count=None, unbiased: bool = False,
                    batch: int | None = None, min_size: int = 1,
                    block: int = 1024, freqs: jax.Array | None = None,
                    chunk: int = 16, centre: jax.Array | None = None) -> jax.Array:
  """[N] per-sample term m(x) = (1/R) sum_r MMD^2({x}, L_r) of the k-means
  cluster-margin + MMD method.

  Each draw L_r is `draw_size` labeled rows drawn uniformly WITH
  replacement from the first `l_count`: i.i.d. draws from the labeled
  distribution, for which the unbiased estimator is exactly unbiased; it
  also costs O(draw_size) per draw whatever M is and allows draw_size > M.

  Args:
    x, l, sigma, l_count, block, freqs: as in `witness`.
    rng: key for the draws.
    repeats: static R >= 1.
    draw_size: static size of each draw (>= 2 for the unbiased estimator).
    unbiased: static estimator choice for mean k(L_r, L_r).
    batch: static; None = the same R draws for every candidate, else fresh
      draws for each minibatch (minibatch i draws with key
      `jax.random.split(rng, num_batches)[i]`).
    min_size: static; see `minibatch.layout`.
    chunk: static; minibatches processed at once in batch scope (bounds the
      memory of the gathered draws).
    centre: optional [d]; the candidates are x - centre (l is as given). In
      batch scope it is subtracted per minibatch: no centred copy of x.
  """
  count = l.shape[0] if l_count is None else l_count
  # Features of every labeled row once, gathered per draw: cheaper than
  # featurising R * draw_size rows per minibatch.
  z_l = None if freqs is None else rff_map(l, freqs)

  def scores(key, xb):
    idx = jax.random.randint(key, (repeats, draw_size), 0, count)
    if freqs is None:
      return per_sample_from_draws(xb, l[idx], sigma, unbiased=unbiased,
                                   block=block)
    return _per_sample_rff(rff_map(xb, freqs), z_l[idx], unbiased)

  shift = (lambda xb: xb) if centre is None else (lambda xb: xb - centre)
  if batch is None:
    return scores(rng, shift(x))
  out, _ = minibatch.map_batches(lambda k, xb: (scores(k, shift(xb)), None), (x,),
                                 rng, batch, min_size, chunk=chunk)
  return out
