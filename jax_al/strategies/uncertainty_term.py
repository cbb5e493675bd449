"""The uncertainty u shared by `cluster_margin` and `uncertainty_mmd`.

Both strategies hold an `UncertaintyTerm` (composition, not inheritance):
`cluster_margin` ranks u alone, `uncertainty_mmd` adds an MMD term to it.

u is, per `al.utility`:
  cluster_margin    the k-means cluster margin (scores/cluster_margin.py):
                    k-means with K = `al.k` (unset: the number of classes)
                    clusters, inside each consecutive minibatch of
                    `al.batch` candidates (`al.u_scope="batch"`, the
                    per-batch scope of the k-means cluster-margin + MMD
                    method) or over all candidates ("global"), turned into
                    a score by `al.transform`; reads `al.kmeans.*`.
  margin            p2 - p1 of softmax(logits) (the negated top-two gap).
  entropy           the softmax entropy.
  least_confidence  1 - p1.
Larger u = more uncertain.

This module registers no strategy.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_al import memory
from jax_al.errors import ConfigError
from jax_al.scores import cluster_margin
from jax_al.scores import minibatch
from jax_al.strategies.base import Pool, Refusal, Requires

if TYPE_CHECKING:
  from jax_al.stream import Block, HostPool

UTILITIES = ("cluster_margin", "margin", "entropy", "least_confidence")
SCOPES = ("batch", "global")  # al.u_scope (and al.mmd_scope)


class USettings(NamedTuple):
  """The static part of `config.al` the uncertainty compiles for."""

  batch: int
  k: int
  transform: str
  scope: str
  init: str
  n_init: int
  max_iter: int
  tol: float


@functools.partial(jax.jit, static_argnames=("s",))
def uncertainty(features: jax.Array, rng: jax.Array, centre: jax.Array | None = None,
                *, s: USettings) -> jax.Array:
  """[N] raw cluster-margin uncertainty under the settings' scope.

  Jitted on its own, not inside the MMD selection: the k-means (vmapped over
  minibatches) is the slowest part to compile, and this way every MMD
  variant with the same uncertainty settings reuses one compilation.

  `centre` None: the candidates' mean. A block of whole minibatches of a
  pool held on the host (`jax_al.stream`) passes the pool's mean and, as
  `rng`, the keys of its minibatches (per-batch scope only).
  """
  if centre is None:
    centre = jnp.mean(features, axis=0)
  kw = dict(k=s.k, transform=s.transform, init=s.init, n_init=s.n_init,
            max_iter=s.max_iter, tol=s.tol)
  if s.scope == "global":  # ott-jax's k-means of all points needs them centred at once
    return cluster_margin.kmeans_margin(features - centre, rng, **kw)
  # Centred inside each minibatch, `kmeans_chunk` minibatches at a time: no
  # centred copy of the pool, and k-means state for one chunk, not for all.
  return cluster_margin.minibatch_kmeans_margin(
      features, rng, batch=s.batch, centre=centre,
      chunk=memory.kmeans_chunk(s.batch, features.shape[1], s.n_init), **kw)


@functools.partial(jax.jit, static_argnames=("kind",))
def softmax_utility(logits: jax.Array, *, kind: str) -> jax.Array:
  """[N] uncertainty from softmax(logits): larger = more uncertain."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  p = jnp.exp(logp)
  if kind == "margin":
    top2 = jax.lax.top_k(p, 2)[0]
    return top2[:, 1] - top2[:, 0]
  if kind == "least_confidence":
    return 1.0 - jnp.max(p, axis=-1)
  return -jnp.sum(p * logp, axis=-1)  # entropy


class UncertaintyTerm:
  """u for `config.al` (`cfg`); see the module docstring."""

  def __init__(self, cfg: Any):
    self.cfg = cfg

  @property
  def utility(self) -> str:
    return self.cfg.utility

  def requires(self) -> Requires:
    """The cluster margin reads the candidates' features, a softmax utility their logits."""
    if self.utility == "cluster_margin":
      return Requires(features=True)
    return Requires(logits=True)

  def k(self, num_classes: int) -> int:
    """K: `al.k`, or the number of classes when it is unset."""
    k = self.cfg.k
    return num_classes if k is None else k

  def check(self, num_candidates: int, num_classes: int) -> None:
    """The checks of u that depend on the sizes (the fields themselves are
    checked by `config.check_al`)."""
    if self.utility != "cluster_margin":
      return  # the k-means fields are unused
    c, k = self.cfg, self.k(num_classes)
    if k < 2:  # al.k itself is >= 2: unset, with fewer than 2 classes
      raise ConfigError("al.k", k, "the cluster margin needs two nearest "
                        "centres: use an integer >= 2, or leave al.k unset "
                        "for the number of classes")
    if k > num_candidates:
      raise ConfigError("al.k", k, f"only {num_candidates} candidates are "
                        "scored; lower al.k or raise al.subset")
    if c.u_scope == "batch" and k > c.batch:
      raise ConfigError("al.k", k, f"per-batch k-means clusters minibatches "
                        f"of al.batch={c.batch} points; lower al.k, raise "
                        "al.batch or set al.u_scope='global'")

  def settings(self, num_classes: int) -> USettings:
    """The static settings of the cluster margin."""
    c = self.cfg
    return USettings(
        batch=int(c.batch), k=int(self.k(num_classes)), transform=c.transform,
        scope=c.u_scope, init=c.kmeans.init, n_init=int(c.kmeans.n_init),
        max_iter=int(c.kmeans.max_iter), tol=float(c.kmeans.tol))

  def __call__(self, pool: Pool, rng: jax.Array) -> jax.Array:
    """[N] raw u of the pool's candidates; `rng` seeds the k-means."""
    if self.utility == "cluster_margin":
      return uncertainty(pool.features, rng, s=self.settings(pool.num_classes))
    return softmax_utility(pool.logits, kind=self.utility)

  # ------------------------------------------------ a pool held on the host

  def stream_refusal(self) -> Refusal | None:
    """None when u can be computed a block of candidates at a time."""
    if self.utility == "cluster_margin" and self.cfg.u_scope != "batch":
      return Refusal("al.u_scope", self.cfg.u_scope,
                     "the global k-means reads every candidate at each iteration")
    return None

  def blocks(self, host: HostPool, num_classes: int) -> list[Block]:
    """The per-batch blocks of `host` (`stream.minibatch_blocks`), each
    vmapping as many minibatches at once as the resident pass does."""
    from jax_al import stream  # lazy: stream imports the strategies
    s = self.settings(num_classes)
    # The k-means' and the per-sample term's vmapped steps.
    width = max(memory.kmeans_chunk(s.batch, host.features.shape[1], s.n_init),
                memory.DRAW_CHUNK)
    return stream.minibatch_blocks(host.size, s.batch, s.k, host.block_rows, width)

  def batch_keys(self, rng: jax.Array, n: int, num_classes: int) -> jax.Array:
    """The keys of the n candidates' minibatches, as `uncertainty` splits `rng`."""
    s = self.settings(num_classes)
    return jax.random.split(rng, minibatch.num_batches(n, s.batch, s.k))

  def of_block(self, block: Pool, keys: jax.Array, centre: jax.Array | None) -> jax.Array:
    """[b] raw u of a block of whole minibatches with their keys (a softmax
    utility reads only its rows' logits)."""
    if self.utility != "cluster_margin":
      return softmax_utility(block.logits, kind=self.utility)
    return uncertainty(block.features, keys, centre, s=self.settings(block.num_classes))

  def streamed(self, host: HostPool, rng: jax.Array, centre: jax.Array | None,
               blocks: list[Block] | None) -> np.ndarray:
    """[N] raw u of a pool held on the host (`__call__`'s values, given
    `centre`, the candidates' mean, and `blocks`, from `blocks`)."""
    from jax_al import stream
    if self.utility != "cluster_margin":
      return stream.rowwise(host, lambda p: self.of_block(p, None, None))
    keys = self.batch_keys(rng, host.size, host.num_classes)
    return stream.per_batch(host, blocks, (keys,),
                            lambda p, k: (self.of_block(p, k, centre),))[0]
