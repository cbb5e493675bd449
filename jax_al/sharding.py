"""Scale-out through JAX's own SPMD machinery (`jax.sharding`), no scheduler.

One mesh axis, "data", over `config.mesh.data` devices (-1 = all, on every
host). What is sharded over it:

  * training: the gathered batch (images, labels, mask) is sharded over the
    batch axis; params, batch statistics and optimizer state are replicated.
    XLA inserts the all-reduces, so gradients and BatchNorm statistics are
    those of the global batch (see `jax_al.train`).
  * pool scoring: `place_pool` shards the features and logits over the pool
    axis; the jitted strategies run on them unchanged and jit propagates the
    sharding through k-means, distances and MMD kernel sums.

What is not: the uint8 training/test images stay replicated on every device
(each device gathers its own rows of a batch locally, with no communication);
an array whose leading size does not divide by the device count is
replicated, because a jax.Array cannot be sharded unevenly.

`preflight.check_devices(config)` is the one call a driver needs: it calls
`jax.distributed.initialize()` here when the config or the environment asks
for it, checks the config against the visible devices and builds the mesh.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
import numpy as np

DATA = "data"

# Environment variables that ask for jax.distributed.initialize(). JAX reads
# JAX_COORDINATOR_ADDRESS itself; the other two are passed on by us (JAX
# otherwise only detects them under SLURM, Open MPI, Kubernetes or Cloud TPU).
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def distributed_requested(config=None) -> bool:
  """True when `config.mesh.distributed` or the environment asks for multi-host."""
  if config is not None and bool(config.mesh.distributed):
    return True
  return bool(os.environ.get(ENV_COORDINATOR)) or env_int(ENV_NUM_PROCESSES, 1) > 1


def env_int(name: str, default: int) -> int:
  """The integer in environment variable `name`, `default` when it is unset
  or blank; ValueError otherwise (`preflight.check_devices` says so first)."""
  v = os.environ.get(name, "")
  return int(v) if v.strip() else default


def initialize_distributed(config=None) -> bool:
  """Calls `jax.distributed.initialize()` if asked and not done yet.

  Returns True when JAX runs distributed afterwards. The coordinator address,
  process count and process id come from JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES and JAX_PROCESS_ID, or from the cluster (SLURM, Open MPI,
  ...) when those are unset. `preflight.check_devices` calls it first of
  all JAX calls and turns its failure into one line.
  """
  if jax.distributed.is_initialized():
    return True
  if not distributed_requested(config):
    return False
  kwargs: dict[str, Any] = {}
  if os.environ.get(ENV_NUM_PROCESSES, "").strip():
    kwargs["num_processes"] = env_int(ENV_NUM_PROCESSES, 1)
  if os.environ.get(ENV_PROCESS_ID, "").strip():
    kwargs["process_id"] = env_int(ENV_PROCESS_ID, 0)
  jax.distributed.initialize(**kwargs)
  return True


def make_mesh(n: int) -> Mesh:
  """A 1-D mesh ("data",) over the first `n` devices, with automatic sharding
  (`preflight.check_devices` checks `n` against the visible devices)."""
  return jax.make_mesh((n,), (DATA,), axis_types=(AxisType.Auto,), devices=jax.devices()[:n])


def mesh_size(mesh: Mesh | None) -> int:
  return 1 if mesh is None else int(mesh.shape[DATA])


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def sharded(mesh: Mesh) -> NamedSharding:
  """Leading axis over "data", the other axes replicated."""
  return NamedSharding(mesh, P(DATA))


def divisible(mesh: Mesh | None, n: int) -> bool:
  return n % mesh_size(mesh) == 0


def place(mesh: Mesh | None, x, spec: P = P()) -> jax.Array:
  """Puts one array on the mesh with `spec` (default: replicated).

  NumPy input goes through `make_array_from_callback`, which also works with
  several processes (each one must hold the same full array). Without a mesh
  this is `jax.device_put(x)`.
  """
  if mesh is None:
    return jax.device_put(x)
  sharding = NamedSharding(mesh, spec)
  if isinstance(x, jax.Array):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      data = place(mesh, jax.random.key_data(x), spec)
      return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    if jax.process_count() == 1 or not x.is_fully_addressable:
      return jax.device_put(x, sharding)
    # A process-local array (e.g. freshly initialised weights) cannot be
    # device_put onto devices of other processes: go through the host.
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])


def replicate(mesh: Mesh | None, tree):
  """Places every leaf of a pytree (params, optimizer state, keys) replicated."""
  if mesh is None:
    return tree
  return jax.tree.map(lambda x: place(mesh, x), tree)


def shard_rows(mesh: Mesh | None, x) -> jax.Array:
  """Shards the leading axis over "data" when it divides, else replicates."""
  if mesh is None:
    return x
  spec = P(DATA) if divisible(mesh, x.shape[0]) else P()
  return place(mesh, x, spec)


def place_pool(mesh: Mesh | None, pool):
  """The strategies' `Pool` with its arrays sharded over the pool axis.

  Candidates (features, logits) and the labeled set (labeled_features,
  labeled_logits) are each sharded over their rows when the count divides by
  the device count, else replicated. The jitted strategies then run SPMD.
  """
  if mesh is None:
    return pool
  return dataclasses.replace(
      pool, features=shard_rows(mesh, pool.features), logits=shard_rows(mesh, pool.logits),
      labeled_features=shard_rows(mesh, pool.labeled_features),
      labeled_logits=shard_rows(mesh, pool.labeled_logits))


def is_main_process() -> bool:
  """Only process 0 writes logs, results and the workdir."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits for every process (a no-op with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def describe(mesh: Mesh | None) -> str:
  """One log line about the devices in use."""
  if mesh is None:
    d = jax.devices()[0]
    return f"1 device ({d.platform})"
  d = mesh.devices.flat[0]
  hosts = jax.process_count()
  return (f"{mesh_size(mesh)} {d.platform} devices on the data axis"
          + (f", {hosts} processes" if hosts > 1 else ""))
