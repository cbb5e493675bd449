"""Memory estimates made before anything large is allocated.

A field set far too large (an image size of 100,000, an eval batch of 10^9)
would otherwise grow until the kernel kills the process, or end in an XLA
RESOURCE_EXHAUSTED traceback. `require` compares an estimate with the memory
that is free now and refuses with one line naming the field, the estimate,
what is available and a fix.

The estimates are upper bounds of the arrays a stage holds at once, not of
everything XLA may allocate: a refusal means the setting cannot fit, and
passing means it is not absurd. Model sizes come from tracing the model
abstractly (`jax.eval_shape`, `jax.make_jaxpr`): no weights are allocated.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import jax
import jax.numpy as jnp

from jax_al.errors import ConfigError

# Refuse above this share of the free memory: the process itself, the
# compiled programs and the allocator's slack need the rest.
USABLE = 0.9


def fmt(n: float) -> str:
  """Bytes in human units (1.5 GB)."""
  for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
    if abs(n) < 1000 or unit == "PB":
      return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
    n /= 1000
  return f"{n:.3g} PB"


def host_available() -> int:
  """Bytes of host memory free for this process now (MemAvailable on Linux)."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return 1 << 62  # unknown: never refuse on a guess


def device_available() -> tuple[int, str]:
  """(free bytes, "device" or "host") of the first local device.

  Accelerators report their allocator's limit; a CPU device's memory is the
  host's.
  """
  dev = jax.local_devices()[0]
  try:
    stats = dev.memory_stats()
  except Exception:  # pylint: disable=broad-except  # not every backend has it
    stats = None
  if dev.platform != "cpu" and stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), f"{dev.platform} device"
  return host_available(), "host"


def require(field: str, value: Any, need: float, what: str, fix: str,
            where: str = "host") -> None:
  """Raises ConfigError when `need` bytes of `what` exceed the free memory."""
  if where == "host":
    have, kind = host_available(), "host"
  else:
    have, kind = device_available()
  if need > USABLE * have:
    raise ConfigError(field, value, f"{what} needs about {fmt(need)} of {kind} memory, "
                      f"{fmt(have)} are free; {fix}")


# ------------------------------------------------------------ estimates ------


def images_bytes(n: int, height: int, width: int, channels: int) -> int:
  """uint8 [n, height, width, channels]."""
  return int(n) * int(height) * int(width) * int(channels)


@dataclasses.dataclass(frozen=True)
class ModelProfile:
  """Sizes of one model read from an abstract trace (nothing allocated).

  Attributes:
    param_bytes: float32 parameters and batch statistics.
    feature_dim: width of the penultimate features.
    train_bytes_per_image: every intermediate of a training forward pass for
      one image (what backpropagation may keep), in the compute dtype.
    eval_bytes_per_image: the largest of those intermediates, times 3 (an
      inference pass keeps only a layer's input, output and a neighbour).
  """

  param_bytes: int
  feature_dim: int
  train_bytes_per_image: int
  eval_bytes_per_image: int


def _outputs_bytes(jaxpr) -> list[int]:
  """Bytes of every equation's outputs in program order, sub-jaxprs included."""
  out = []
  for eqn in jaxpr.eqns:
    out.append(sum(math.prod(v.aval.shape) * v.aval.dtype.itemsize for v in eqn.outvars
                   if hasattr(getattr(v, "aval", None), "shape")))
    for p in eqn.params.values():
      for sub in (p if isinstance(p, (list, tuple)) else (p,)):
        inner = getattr(sub, "jaxpr", None)
        if inner is not None and hasattr(inner, "eqns"):
          out.extend(_outputs_bytes(inner))
  return out


def model_profile(config, num_classes: int, image_shape: tuple[int, int, int]) -> ModelProfile:
  """Traces the configured model abstractly; raises ConfigError for bad model fields.

  The training pass is traced at batch 1 and 2: the difference is what one
  more image costs, without the per-batch constants (weights cast to the
  compute dtype) that a single-image trace would count as per-image.
  """
  from flax import nnx

  from jax_al.models import create_model, loss_net

  with_loss = loss_net.enabled(config)

  def build():
    rngs = nnx.Rngs(0)
    model = create_model(config.model, num_classes, tuple(image_shape), config.train.dtype,
                         rngs)
    if with_loss:  # trained jointly: its weights and the stage maps it reads count
      model = loss_net.LossPredictionModel(model, jnp.dtype(config.train.dtype), rngs=rngs)
    return model

  abstract = nnx.eval_shape(build)
  graphdef, state = nnx.split(abstract)
  param_bytes = sum(math.prod(x.shape) * 4 for x in jax.tree.leaves(state)
                    if hasattr(x, "shape"))

  def forward(state, x):
    model = nnx.merge(graphdef, state)
    return model.with_loss(x, train=True) if with_loss else model(x, train=True)

  per_batch = []
  for b in (1, 2):
    x = jax.ShapeDtypeStruct((b, *image_shape), jnp.dtype(config.train.dtype))
    per_batch.append(_outputs_bytes(jax.make_jaxpr(forward)(state, x).jaxpr))
    feats = jax.eval_shape(forward, state, x)[1]
  one, two = per_batch
  per_image = [max(b - a, 0) for a, b in zip(one, two)] if len(one) == len(two) else two
  return ModelProfile(int(param_bytes), int(feats.shape[-1]), int(sum(per_image)),
                      int(3 * max(per_image, default=0)))


def check_data(n_images: int, image_size: int | None, channels: int, where: str) -> None:
  """Before decoding or resizing: the uint8 dataset must fit in host memory."""
  if image_size is None:
    return
  require("data.image_size", image_size,
          images_bytes(n_images, image_size, image_size, channels),
          f"the decoded dataset ({n_images:,} images of {image_size}x{image_size}x{channels} "
          f"from {where})", "use a smaller data.image_size (e.g. 32)")


def check_run(config, n_train: int, n_test: int, num_classes: int,
              image_shape: tuple[int, int, int], n_candidates: int,
              labeled_capacity: int, prof: ModelProfile, itemsize: int = 1,
              members: int = 1) -> None:
  """Every stage of a run against the free memory, largest consumers named.

  Device stages: the dataset copy, the training state and batch (times the
  trials when they train vmapped), the eval chunk, the scored features and
  the strategy's working arrays (kernel blocks, random Fourier features,
  k-means distances).
  """
  t, al = config.train, config.al
  h, w, c = image_shape
  data = images_bytes(n_train + n_test, h, w, c) * itemsize  # uint8 pixels, or float features
  require("data", config.data.source, data, "the dataset on the device",
          "use a smaller data.image_size or fewer images", "device")
  trials = config.num_trials if config.compare.parallel == "vmap" else 1
  # `members`: models trained per cycle as one stacked program (an ensemble)
  state = 3 * prof.param_bytes  # params, momentum, gradients
  train = t.batch_size * prof.train_bytes_per_image
  field, value, fix = "train.batch_size", t.batch_size, "lower train.batch_size"
  if members > 1 and members * (state + train) > state + train + data:
    field, value, fix = ("al.ensemble_size", members, "lower al.ensemble_size")
  elif trials > 1 and trials * (state + train) > state + train + data:
    field, value, fix = ("num_trials", config.num_trials,
                         "lower num_trials or use --config.compare.parallel=none")
  elif state > train:
    field, value, fix = "model.width", config.model.width, "use a smaller model.width"
  trials = max(trials, members)
  require(field, value, data + trials * (state + train),
          f"training ({trials} x [{fmt(state)} of weights and optimizer, "
          f"{fmt(train)} for a batch of {t.batch_size}] plus the data)", fix, "device")
  chunk = min(t.eval_batch_size, max(n_train, n_test))
  require("train.eval_batch_size", t.eval_batch_size,
          data + state + t.eval_batch_size * (prof.eval_bytes_per_image + 4) +
          chunk * 4 * (prof.feature_dim + num_classes),
          f"an eval chunk of {t.eval_batch_size:,} images", "use a smaller "
          "train.eval_batch_size (e.g. 500)", "device")
  feats = (n_candidates + labeled_capacity) * 4 * (prof.feature_dim + num_classes)
  if al.strategy == "uncertainty_mmd":
    block = min(al.block, max(n_candidates, labeled_capacity, 1))
    require("al.block", al.block, data + feats + 4 * 4 * block * block,
            f"MMD kernel blocks of {block:,} x {block:,}", "use al.block=1024", "device")
    if al.approx == "rff":
      require("al.rff_dim", al.rff_dim,
              data + feats + 4 * al.rff_dim * (n_candidates + labeled_capacity + prof.feature_dim),
              f"random Fourier features of dimension {al.rff_dim:,}",
              "use al.rff_dim=2048", "device")
    k = al.k if al.k is not None else num_classes
    rows = (n_candidates if al.u_scope == "global"
            else math.ceil(n_candidates / al.batch) * al.batch)
    require("al.kmeans.n_init", al.kmeans.n_init,
            data + feats + 3 * 4 * al.kmeans.n_init * rows * k,
            f"k-means with {al.kmeans.n_init} restarts of {rows:,} points x {k} centres",
            "lower al.kmeans.n_init or al.k", "device")
