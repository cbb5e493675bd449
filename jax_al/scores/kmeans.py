"""k-means on feature vectors: one set, each minibatch of a set, or a set
too large for ott-jax's copies (`blocked_kmeans`).

`kmeans` and `minibatch_kmeans` are a thin layer over
`ott.tools.k_means.k_means` (Lloyd's algorithm); nothing here changes its
updates. `blocked_kmeans` is the same algorithm with k-means++ seeding,
written out so that its assignment step runs in row blocks (TypiClust
clusters a whole pool with it). Its "random" initialisation draws k distinct
points of the set as the initial centres, the initialisation of the k-means
cluster-margin + MMD method; it stops after `max_iter` Lloyd iterations,
when no assignment changes, or when the squared Frobenius norm of the
centre shift falls to `tol` (an absolute tolerance, unlike scikit-learn's,
which is relative to the data variance).

Empty clusters (ott-jax 0.6, `_update_centroids`): after each assignment
the k points farthest from their assigned centres are ranked, farthest
first, and an empty cluster j (0-based id) is re-seeded at the (j+1)-th of
them, that point's weight being moved out of its old cluster. Points of
weight 0 are ranked too, so a padded point could be picked: minibatch.py
never pads for that reason. The rank
follows the cluster id, not the order of the empty clusters: if only
cluster 3 is empty it gets the 4th farthest point. scikit-learn instead
gives its e empty clusters the e farthest points, the first empty cluster
the farthest one.

ott-jax needs `k`, `n_init`, `init` and the iteration cap as Python values,
so every function here takes them as keyword arguments and callers jit with
them static. Un-jitted ott k-means calls are known to use too much memory:
call these inside `jax.jit`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from jax_al.scores import minibatch, mmd

if TYPE_CHECKING:  # imported lazily at run time (see `kmeans`)
  from ott.tools import k_means as ott_k_means

INITS = ("random", "k-means++")
_HIGHEST = jax.lax.Precision.HIGHEST


def kmeans(x: jax.Array, rng: jax.Array, *, k: int, init: str = "random",
           n_init: int = 1, max_iter: int = 100,
           tol: float = 1e-4) -> ott_k_means.KMeansOutput:
  """k-means of one point set.

  Args:
    x: [n, d] points, n >= k.
    rng: key for the initial centres.
    k: number of clusters (static).
    init: "random" (k distinct points of x) or "k-means++" (static).
    n_init: restarts; the run with the lowest inertia is kept (static).
    max_iter: cap on Lloyd iterations (static).
    tol: absolute tolerance on the squared centre shift.

  Returns:
    ott's KMeansOutput: centroids [k, d], assignment [n], error (inertia,
    the sum of squared distances to the assigned centre), iteration,
    converged.
  """
  if x.shape[0] < k:
    raise ValueError(f"cannot cluster {x.shape[0]} points into {k} clusters")
  if init not in INITS:
    raise ValueError(f"unknown k-means init {init!r}; choose one of {INITS}")
  # Imported here: importing ott costs ~2 s at every CLI start otherwise.
  from ott.tools import k_means as ott_k_means
  return ott_k_means.k_means(
      x, k, init=init, n_init=n_init, max_iterations=max_iter, tol=tol,
      rng=rng)


def minibatch_kmeans(x: jax.Array, rng: jax.Array, *, batch: int, k: int,
                     init: str = "random", n_init: int = 1,
                     max_iter: int = 100,
                     tol: float = 1e-4) -> ott_k_means.KMeansOutput:
  """k-means of every consecutive minibatch of x, vmapped over minibatches.

  Minibatches follow `minibatch.layout(n, batch, min_size=k)` (a tail of
  fewer than k points joins the minibatch before it); minibatch i uses key
  `jax.random.split(rng, num_batches)[i]`.

  Args:
    x: [n, d] points, n >= k.
    rng: key.
    batch, k, init, n_init, max_iter, tol: static; see `kmeans`.

  Returns:
    KMeansOutput with a leading minibatch axis on every field except
    `assignment`, which is per point ([n], cluster ids within the point's
    own minibatch); `centroids` is [num_batches, k, d].
  """

  def one(key, xb):
    out = kmeans(xb, key, k=k, init=init, n_init=n_init, max_iter=max_iter,
                 tol=tol)
    return out.assignment, out._replace(assignment=None, inner_errors=None)

  assignment, per_batch = minibatch.map_batches(one, (x,), rng, batch,
                                                min_size=k)
  return per_batch._replace(assignment=assignment)


# ---- k-means++ and Lloyd over row blocks ------------------------------------


class BlockedKMeans(NamedTuple):
  """`blocked_kmeans`'s result: the best restart's clustering.

  Attributes:
    assignment: [n] int32 cluster ids of the points.
    centroids: [k, d] centres.
    error: the lowest inertia its iterations recorded (what picks the
      restart).
  """
  assignment: jax.Array
  centroids: jax.Array
  error: jax.Array


def assign_rows(k: int, dim: int) -> int:
  """Rows of one block of the assignment step: each holds a [rows, k] cost
  matrix and the temporaries of its product and arg-min (about three such
  float32 arrays), within `memory.PASS_BYTES`."""
  from jax_al import memory  # lazy: memory imports the strategies' modules
  return max(8, memory.PASS_BYTES // (4 * (3 * max(k, 1) + dim)))


def blocked_kmeans(x: jax.Array, rng: jax.Array, *, k: int, n_init: int = 1,
                   max_iter: int = 100, tol: float = 1e-4,
                   rows: int) -> BlockedKMeans:
  """k-means++ seeding and Lloyd's algorithm with the assignment step in
  blocks of `rows` points.

  The algorithm is ott-jax 0.6's `k_means` with `init="k-means++"` and unit
  weights, step for step and draw for draw:

  - seeding: a uniform first centre, then k - 1 rounds of 2 + floor(ln k)
    candidates drawn in proportion to the squared distance to the nearest
    centre, keeping the candidate that lowers the sum of those distances
    the most;
  - Lloyd: each point to its nearest centre, each centre to its points'
    mean; an empty cluster j (0-based) is re-seeded at the (j+1)-th point
    farthest from its centre, that point being moved out of its old
    cluster; it stops after `max_iter` iterations, when no assignment
    changes or when the squared Frobenius norm of the centre shift is at
    most `tol`, and a run stopped by the last two is assigned once more;
  - `n_init` restarts from `jax.random.split(rng, n_init)`, the one of the
    lowest recorded inertia kept (the first on ties).

  What differs is memory: ott keeps a weighted copy of the points ([n,
  d + 1]) and forms the [n, k] cost matrix of every assignment (with the
  concatenated labeled + candidates at 1,000,000 x 768 and k = 500: 14 GB
  in all); here only [n]-sized vectors and one [rows, k] block are held
  beside the points, and the restarts run one after the other. The
  arithmetic is ott's, operation for operation and in the same shapes
  where the order of additions depends on them: the seeding's [t, n]
  products (XLA's CPU products round a row differently when its length
  changes, so the points are one array, not parts), and the centre sums,
  one scatter-add carried through the blocks in point order. The
  assignment's blocks are `mmd.blocked_rows`', which give each row the
  whole array's products, so on this CPU the clusters are ott's to the
  bit.

  Call it inside `jax.jit` with k, n_init, max_iter, tol and rows static.

  Args:
    x: [n, d] float32 points.
    rng: key.
    k: number of clusters, 1 <= k <= n.
    n_init, max_iter, tol: restarts, the iteration cap and the absolute
      tolerance on the squared centre shift.
    rows: rows per block of the assignment step (`assign_rows`).

  Returns:
    BlockedKMeans of the best restart.
  """
  n = int(x.shape[0])
  if n < k:
    raise ValueError(f"cannot cluster {n} points into {k} clusters")
  x_sq = jnp.sum(x ** 2, axis=-1)

  def one(key):
    centroids = _kmeans_plus_plus(x, x_sq, k, key)
    return _lloyd(x, x_sq, centroids, k, max_iter, tol, min(rows, n))

  runs = jax.lax.map(one, jax.random.split(rng, n_init))
  best = jnp.argmin(runs.error)
  return jax.tree_util.tree_map(lambda a: a[best], runs)


def _costs(a: jax.Array, a_sq: jax.Array, y: jax.Array, y_sq: jax.Array) -> jax.Array:
  """[t, m] squared distances of the rows of a to those of y, given their
  squared norms, in the arithmetic of ott's squared-Euclidean cost:
  (|a|^2 + |y|^2) - 2 a.y, not clipped at 0 (unlike `distances.sq_dists`)."""
  return (a_sq[:, None] + y_sq[None, :]) + (-2.0 * jnp.dot(a, y.T, precision=_HIGHEST))


def _kmeans_plus_plus(x: jax.Array, x_sq: jax.Array, k: int, rng: jax.Array) -> jax.Array:
  """[k, d] k-means++ centres, ott-jax's greedy seeding (see `blocked_kmeans`)."""
  n, trials = x.shape[0], 2 + int(math.log(k))
  every = jnp.arange(n)
  rng, next_rng = jax.random.split(rng, 2)
  first = x[jnp.atleast_1d(jax.random.choice(rng, every, shape=()))]
  centroids = jnp.full((k, x.shape[1]), jnp.inf).at[0].set(first[0])

  def body(i, state):
    key, centroids, dists = state
    key, next_key = jax.random.split(key, 2)
    cand = x[jax.random.choice(key, every, shape=(trials,), p=dists, replace=True)]
    cand_dists = jnp.minimum(_costs(cand, jnp.sum(cand ** 2, axis=-1), x, x_sq), dists)
    best = jnp.argmin(cand_dists.sum(1))
    return next_key, centroids.at[i + 1].set(cand[best]), cand_dists[best]

  state = (next_rng, centroids, _costs(first, jnp.sum(first ** 2, axis=-1), x, x_sq)[0])
  return jax.lax.fori_loop(0, k - 1, body, state)[1]


def _assign(x, x_sq, centroids: jax.Array, rows: int):
  """([n] nearest centre, [n] its squared distance), about `rows` points at a
  time; each row's values are the whole array's (`mmd.blocked_rows`)."""
  c_sq = jnp.sum(centroids ** 2, axis=-1)

  def block(start, b):
    cost = _costs(jax.lax.dynamic_slice_in_dim(x, start, b),
                  jax.lax.dynamic_slice_in_dim(x_sq, start, b), centroids, c_sq)
    a = jnp.argmin(cost, axis=1).astype(jnp.int32)
    return a, jnp.take_along_axis(cost, a[:, None], axis=1)[:, 0]

  n = x.shape[0]
  return mmd.blocked_rows(block, x, rows,
                          (jnp.zeros((n,), jnp.int32), jnp.zeros((n,), x.dtype)))


def _centre_sums(x, assignment: jax.Array, k: int, rows: int):
  """([k, d] sums of each cluster's points, [k] counts): one scatter-add
  carried through blocks of `rows` points, so its additions run in the order
  of a single `segment_sum` over all the points."""
  n = x.shape[0]

  def block(i, acc):
    start = jnp.minimum(i * rows, n - rows)  # the last block overlaps the one before
    xb = jax.lax.dynamic_slice_in_dim(x, start, rows)
    ib = jax.lax.dynamic_slice_in_dim(assignment, start, rows)
    # rows an overlapping last block already summed go to no cluster
    ib = jnp.where(start + jnp.arange(rows) >= i * rows, ib, k)
    return (acc[0].at[ib].add(xb, mode="drop"),
            acc[1].at[ib].add(jnp.ones((rows,), x.dtype), mode="drop"))

  init = (jnp.zeros((k, x.shape[1]), x.dtype), jnp.zeros((k,), x.dtype))
  steps = -(-n // rows)
  return block(0, init) if steps == 1 else jax.lax.fori_loop(0, steps, block, init)


def _lloyd(x, x_sq, centroids: jax.Array, k: int, max_iter: int, tol: float,
           rows: int) -> BlockedKMeans:
  """Lloyd's iterations from `centroids` (see `blocked_kmeans`)."""
  n = x.shape[0]

  def update(centroids):
    assignment, dist = _assign(x, x_sq, centroids, rows)
    sums, ws = _centre_sums(x, assignment, k, rows)
    ws = ws[:, None]
    # Empty cluster j takes the (j+1)-th farthest point (ott's reallocation).
    far = jnp.argsort(dist)[-k:][::-1]
    empty, far_x = ws <= 0.0, x[far]
    new = (1 - empty) * sums + empty * far_x
    moved = jax.ops.segment_sum(jnp.concatenate([empty * far_x, empty * 1.0], axis=1),
                                assignment[far], num_segments=k)
    ws = ws - moved[:, -1:]
    new = (new - moved[:, :-1]) * jnp.where(ws > 0.0, 1.0 / ws, 1.0)
    return assignment, dist, new

  def cond(state):
    it, _, prev, assignment, shift, _ = state
    return (it < max_iter) & jnp.any(prev != assignment) & (shift > tol)

  def body(state):
    it, centroids, _, old, _, errors = state
    assignment, dist, new = update(centroids)
    shift = jnp.linalg.norm(centroids - new, ord="fro") ** 2
    return (it + 1, new, old, assignment, shift, errors.at[it].set(jnp.sum(dist)))

  state = (jnp.int32(0), centroids, jnp.full((n,), -2, jnp.int32),
           jnp.full((n,), -1, jnp.int32), jnp.float32(jnp.inf),
           jnp.full((max_iter,), -1.0, jnp.float32))
  _, centroids, prev, assignment, _, errors = jax.lax.while_loop(cond, body, state)

  def finalize(errors):
    # Stopped by the tolerance or the cap: one more assignment to the centres.
    assignment, dist = _assign(x, x_sq, centroids, rows)
    return assignment, errors.at[jnp.sum(errors != -1) - 1].set(jnp.sum(dist))

  assignment, errors = jax.lax.cond(jnp.all(prev == assignment),
                                    lambda e: (assignment, e), finalize, errors)
  error = jnp.nanmin(jnp.where(errors == -1, jnp.nan, errors))
  return BlockedKMeans(assignment, centroids, error)
