"""Named random streams.

Every source of randomness draws from its own stream, derived from
(config.seed, trial, name). Changing the strategy therefore never changes the
initial labeled set or the initial weights, and adding a stream never shifts
another one.
"""

from __future__ import annotations

import zlib

import jax

STREAMS = ("init", "initial_set", "data_order", "augment", "subset", "select")


def stream(seed: int, trial: int, name: str) -> jax.Array:
  """The key of stream `name` in trial `trial` (0-based) of run `seed`."""
  if name not in STREAMS:
    raise ValueError(f"unknown random stream {name!r}; known: {STREAMS}")
  key = jax.random.fold_in(jax.random.key(seed), trial)
  return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def cycle_key(seed: int, trial: int, name: str, cycle: int) -> jax.Array:
  """The key of stream `name` in cycle `cycle` (1-based) of `trial`.

  Per-cycle draws (data order, augmentation, subset, selection, re-initial
  weights) fold the cycle into the trial's stream, so every cycle draws
  afresh and a resumed run draws exactly what the uninterrupted one did.
  """
  return jax.random.fold_in(stream(seed, trial, name), cycle)
