"""Selection from a pool held on the host, sent to the device a block at a time.

A pool the device cannot hold (20 million 768-dimensional float32 features
fill an 80 GB GPU) stays in host memory, or on disk as a memory-mapped
`.npy`, and the strategies whose scores are per candidate read it one block
of candidate rows at a time:

  score strategies whose score is a function of the candidate's own rows
    (`ScoreStrategy.rowwise`: margin, entropy, least_confidence, bald,
    variation_ratio, the ensemble_* scores, learning_loss);
  cluster_margin and uncertainty_mmd in per-batch scopes (`al.u_scope` and,
    with the MMD term, `al.mmd_scope` "batch", top-k mode): every quantity
    is one of the candidate's minibatch of `al.batch`, given the pool's
    mean, the kernel bandwidth and the labeled set.

What the device holds: one block, the labeled set and the gathered rows of
the bandwidth's median (at most 1,024). The [N] scores come back to the host
block by block (80 MB at N = 20 M) and go to the device once for the global
steps (normalisation, top-k). A strategy that reads every candidate at
every step (coreset, BADGE, TypiClust, the greedy MMD, the global scopes)
refuses, naming the setting (`Strategy.stream_refusal`).

A block of minibatches holds whole minibatches, gets the keys the whole
pool's minibatches get, and runs the whole pool's vmapped step of the same
width, so each minibatch's values are the resident selection's given the
same mean. The mean itself is summed block by block, which can round
differently from the whole array's mean in the last bits: on real-valued
features a streamed selection can then differ from the resident one where
two candidates' scores tie to a few ulps (integer-valued features, such as
pixels, give the same mean and the same picks). The same inputs, settings,
seed and block size give the same picks.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jax_al.scores import minibatch
from jax_al.strategies.base import Pool

# Host bytes of candidate rows one block sends to the device, when the
# caller does not give a block size: large against a step's loop overhead,
# small against any device.
BLOCK_BYTES = 1 << 28


@dataclasses.dataclass(frozen=True)
class HostPool:
  """The candidates as host arrays (NumPy, memory-mapped or not), the
  labeled set on the device.

  Attributes:
    features: [N0, d] float32 features of the pool's rows ([N0, 0] when the
      strategy reads none).
    logits: [N0, C] float32, or None.
    sample_logits: [S, N0, C] float32, or None.
    predicted_loss: [N0] float32, or None.
    rows: [N] int64 increasing row numbers of the candidates in those arrays.
    labeled_features: [M, d] device array.
    labeled_logits: [M, C] device array.
    num_classes: C.
    block_rows: candidates sent to the device at a time (a minibatch
      strategy rounds it to whole minibatches).
  """

  features: np.ndarray
  logits: np.ndarray | None
  sample_logits: np.ndarray | None
  predicted_loss: np.ndarray | None
  rows: np.ndarray
  labeled_features: jax.Array
  labeled_logits: jax.Array
  num_classes: int
  block_rows: int

  @property
  def size(self) -> int:
    return int(len(self.rows))

  def blocks(self) -> list[tuple[int, int]]:
    """[start, stop) candidate positions of consecutive blocks."""
    n, b = self.size, max(1, self.block_rows)
    return [(a, min(a + b, n)) for a in range(0, n, b)]

  def pool(self, start: int, stop: int,
           arrays: tuple[str, ...] = ("features", "logits", "sample_logits",
                                      "predicted_loss")) -> Pool:
    """Candidates [start, stop) as a device `Pool` with the labeled set; of
    the candidates' arrays only those named in `arrays` go to the device
    (the others are empty)."""
    from jax_al.selection import to_device  # lazy: selection imports this module lazily

    take = self.rows[start:stop]
    f, lg = self.features, self.logits
    sl, pl = self.sample_logits, self.predicted_loss
    empty = jnp.zeros((len(take), 0), jnp.float32)
    return Pool(
        features=to_device(f, take) if f.shape[1] and "features" in arrays else empty,
        logits=to_device(lg, take) if lg is not None and "logits" in arrays else empty,
        labeled_features=self.labeled_features, labeled_logits=self.labeled_logits,
        num_classes=self.num_classes,
        sample_logits=(to_device(sl, take, axis=1)
                       if sl is not None and "sample_logits" in arrays else None),
        predicted_loss=(to_device(pl, take)
                        if pl is not None and "predicted_loss" in arrays else None))

  def features_of(self, positions: np.ndarray) -> jax.Array:
    """[len(positions), d] features of the candidates at these positions."""
    from jax_al.selection import to_device

    return to_device(self.features, self.rows[np.asarray(positions, np.int64)])

  def mean(self) -> jax.Array:
    """[d] mean of the candidates' features, summed block by block (only
    the features go to the device)."""
    acc = jnp.zeros((self.features.shape[1],), jnp.float32)
    for a, b in self.blocks():
      acc = _add_rows(acc, self.pool(a, b, arrays=("features",)).features)
    return acc / self.size


@jax.jit
def _add_rows(acc: jax.Array, x: jax.Array) -> jax.Array:
  return acc + jnp.sum(x, axis=0)


def _gather(n: int, parts) -> tuple[np.ndarray, ...]:
  """[n] float32 host arrays from (start, stop, tuple of [stop - start]
  device values) parts, one array per value.

  Two blocks are in flight at a time: the next block's transfer and scoring
  are dispatched (asynchronously) before the one before it is fetched, so
  they overlap, and the device never holds more than two blocks.
  """
  outs, pending = None, []

  def fetch(a, b, vals):
    nonlocal outs
    outs = outs or tuple(np.empty((n,), np.float32) for _ in vals)
    for o, v in zip(outs, vals):
      o[a:b] = np.asarray(v)

  for part in parts:
    pending.append(part)
    if len(pending) > 1:
      fetch(*pending.pop(0))
  for part in pending:
    fetch(*part)
  return outs


def rowwise(host: HostPool, fn: Callable[[Pool], jax.Array]) -> np.ndarray:
  """[N] float32 host array of fn(block pool), block by block."""
  return _gather(host.size, ((a, b, (fn(host.pool(a, b)),)) for a, b in host.blocks()))[0]


@dataclasses.dataclass(frozen=True)
class Block:
  """Candidates [start, stop) as whole minibatches, with the positions of
  their keys among the whole pool's (`keys[first:first + count]`)."""

  start: int
  stop: int
  first: int
  count: int


def minibatch_blocks(n: int, batch: int, min_size: int, block_rows: int,
                     width: int) -> list[Block]:
  """The blocks of a per-batch pass over n candidates (`minibatch.layout`).

  Full minibatches go `g` at a time, g = block_rows // batch but at least
  `width` (the whole pool's vmapped step: a block of fewer would vmap
  fewer minibatches at once than the resident pass) and at most all of
  them; the last group starts g before the end, overlapping the one before
  it, so every group has one shape (one compilation) and its overlap gets
  the same values again. The tail (a last minibatch of another size) is
  a block of its own.
  """
  num_full, tail = minibatch.layout(n, batch, min_size)
  out = []
  if num_full:
    g = min(num_full, max(width, block_rows // batch, 1))
    starts = list(range(0, num_full - g + 1, g))
    if starts[-1] + g < num_full:
      starts.append(num_full - g)
    out = [Block(s * batch, (s + g) * batch, s, g) for s in starts]
  if tail:
    out.append(Block(num_full * batch, n, num_full, 1))
  return out


def per_batch(host: HostPool, blocks: list[Block], keys: tuple[jax.Array, ...],
              fn: Callable[..., tuple[jax.Array, ...]]) -> tuple[np.ndarray, ...]:
  """[N] float32 host arrays of fn(block pool, *block keys) (a tuple of [b]
  values, each block sent to the device once for all of them), block by
  block; `keys` are [num_batches] key arrays, each sliced to the block's
  minibatches. An overlapping block writes its rows again, with the same
  values."""
  return _gather(host.size, (
      (blk.start, blk.stop,
       fn(host.pool(blk.start, blk.stop), *(k[blk.first:blk.first + blk.count] for k in keys)))
      for blk in blocks))
