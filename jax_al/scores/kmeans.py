"""k-means on feature vectors: one set, or each minibatch of a set.

A thin layer over `ott.tools.k_means.k_means` (Lloyd's algorithm); nothing
here changes its updates. Its "random" initialisation draws k distinct
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

from typing import TYPE_CHECKING

import jax

from jax_al.scores import minibatch

if TYPE_CHECKING:  # imported lazily at run time (see `kmeans`)
  from ott.tools import k_means as ott_k_means

INITS = ("random", "k-means++")


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
