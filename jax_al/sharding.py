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

`setup(config)` is the one call a driver needs: it calls
`jax.distributed.initialize()` when the config or the environment asks for
it, builds the mesh and checks the config against the visible devices.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from jax_al.errors import ConfigError

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
  return bool(os.environ.get(ENV_COORDINATOR)) or _env_int(ENV_NUM_PROCESSES, 1) > 1


def _env_int(name: str, default: int) -> int:
  v = os.environ.get(name, "")
  if not v.strip():
    return default
  try:
    return int(v)
  except ValueError:
    raise ConfigError("mesh.distributed", f"${name}={v}",
                      f"{name} must be an integer; fix or unset it") from None


def initialize_distributed(config=None) -> bool:
  """Calls `jax.distributed.initialize()` if asked and not done yet.

  Returns True when JAX runs distributed afterwards. The coordinator address,
  process count and process id come from JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES and JAX_PROCESS_ID, or from the cluster (SLURM, Open MPI,
  ...) when those are unset.
  """
  if jax.distributed.is_initialized():
    return True
  if not distributed_requested(config):
    return False
  kwargs: dict[str, Any] = {}
  if os.environ.get(ENV_NUM_PROCESSES, "").strip():
    kwargs["num_processes"] = _env_int(ENV_NUM_PROCESSES, 1)
  if os.environ.get(ENV_PROCESS_ID, "").strip():
    kwargs["process_id"] = _env_int(ENV_PROCESS_ID, 0)
  try:
    jax.distributed.initialize(**kwargs)
  except RuntimeError as e:
    raise ConfigError(
        "mesh.distributed", True,
        f"jax.distributed.initialize() failed ({e}). It must run before any JAX "
        "computation (call jax_al.sharding.setup(config) first), and needs "
        f"{ENV_COORDINATOR}=host:port, {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} set on "
        "every host unless SLURM/Open MPI provide them") from None
  return True


def num_devices(config) -> int:
  """The device count `config.mesh.data` asks for (-1 = all, on all hosts)."""
  n = config.mesh.data
  total = jax.device_count()
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n == 0 or n < -1:
    raise ConfigError("mesh.data", n, "use a device count >= 1, or -1 for all devices")
  if n == -1:
    return total
  if n > total:
    plat = jax.devices()[0].platform
    hint = (" On CPU, simulate devices with XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{n} set before Python starts." if plat == "cpu" else "")
    raise ConfigError("mesh.data", n,
                      f"only {total} {plat} device(s) are visible; use at most {total}, "
                      f"or -1 for all.{hint}")
  if jax.process_count() > 1 and n != total:
    raise ConfigError("mesh.data", n,
                      f"with {jax.process_count()} processes the mesh must span all "
                      f"{total} devices; use -1")
  return int(n)


def make_mesh(n: int) -> Mesh:
  """A 1-D mesh ("data",) over the first `n` devices, with automatic sharding."""
  devices = jax.devices()
  if not 1 <= n <= len(devices):
    raise ConfigError("mesh.data", n, f"use 1..{len(devices)} (the visible devices)")
  return jax.make_mesh((n,), (DATA,), axis_types=(AxisType.Auto,), devices=devices[:n])


def mesh_size(mesh: Mesh | None) -> int:
  return 1 if mesh is None else int(mesh.shape[DATA])


def check_batch(config, n: int) -> None:
  """The training batch is split evenly over the data axis."""
  b = config.train.batch_size
  if n > 1 and b % n:
    lo, hi = (b // n) * n, -(-b // n) * n
    fix = f"use a multiple of {n}, e.g. {hi}" + (f" or {lo}" if lo else "")
    raise ConfigError("train.batch_size", b,
                      f"the batch is split over {n} devices (mesh.data); {fix}")


def setup(config) -> Mesh | None:
  """Initialises multi-host JAX when asked, builds and checks the mesh.

  Returns None for a single device in a single process, so that the
  unsharded code path runs exactly as before. Call it before any other JAX
  computation (jax.distributed.initialize() must come first).
  """
  initialize_distributed(config)
  n = num_devices(config)
  if n == 1 and jax.process_count() == 1:
    return None
  check_batch(config, n)
  return make_mesh(n)


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
