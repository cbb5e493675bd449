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


def _available(where: str) -> tuple[int, str]:
  return (host_available(), "host") if where == "host" else device_available()


def require(field: str, value: Any, need: float, what: str, fix: str,
            where: str = "host", need_of=None, low: int = 1, step: int = 1,
            alt: str = "") -> None:
  """Raises ConfigError when `need` bytes of `what` exceed the free memory.

  With `need_of(v)` (the bytes as a function of the field's value, growing
  with it), the fix names the largest round value of `field` that fits
  (a multiple of `step`, at least `low`), never one that fails too; `fix`
  is then what to do when even `low` does not fit, and `alt` another way out.
  """
  have, kind = _available(where)
  if need <= USABLE * have:
    return
  if need_of is not None and isinstance(value, int):
    best = largest_fitting(need_of, low, value - 1, USABLE * have, step)
    fix = (f"use a smaller {field}, e.g. {best}{', or ' + alt if alt else ''}"
           if best is not None else f"even {field}={low} does not fit; {fix}")
  raise ConfigError(field, value, f"{what} needs about {fmt(need)} of {kind} memory, "
                    f"{fmt(have)} are free; {fix}")


def largest_fitting(need_of, low: int, high: int, limit: float, step: int = 1) -> int | None:
  """The largest round v in [low, high] (1, 2 or 5 times a power of ten, a
  multiple of `step`) with need_of(v) <= limit, or None."""
  if high < low or need_of(low) > limit:
    return None
  lo, hi = low, high  # need_of(lo) fits; binary search for the largest that does
  while lo < hi:
    mid = (lo + hi + 1) // 2
    if need_of(mid) <= limit:
      lo = mid
    else:
      hi = mid - 1
  for e in range(len(str(lo)), -1, -1):
    for m in (5, 2, 1):
      v = m * 10**e
      v -= v % step
      if low <= v <= lo:
        return v
  return low


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

  def trace(b, shape):
    x = jax.ShapeDtypeStruct((b, *shape), jnp.dtype(config.train.dtype))
    return jax.make_jaxpr(forward)(state, x).jaxpr

  if _empty_maps(trace(1, image_shape)):
    _refuse_small(config, image_shape, trace)
  per_batch = []
  for b in (1, 2):
    x = jax.ShapeDtypeStruct((b, *image_shape), jnp.dtype(config.train.dtype))
    per_batch.append(_outputs_bytes(trace(b, image_shape)))
    feats = jax.eval_shape(forward, state, x)[1]
  one, two = per_batch
  per_image = [max(b - a, 0) for a, b in zip(one, two)] if len(one) == len(two) else two
  return ModelProfile(int(param_bytes), int(feats.shape[-1]), int(sum(per_image)),
                      int(3 * max(per_image, default=0)))


def _empty_maps(jaxpr) -> bool:
  """Whether an image-shaped intermediate ([N, H, W, C]) has no pixels left."""
  for eqn in jaxpr.eqns:
    for v in eqn.outvars:
      shape = getattr(getattr(v, "aval", None), "shape", ())
      if len(shape) == 4 and 0 in shape[1:3]:
        return True
    for p in eqn.params.values():
      for sub in (p if isinstance(p, (list, tuple)) else (p,)):
        inner = getattr(sub, "jaxpr", None)
        if inner is not None and hasattr(inner, "eqns") and _empty_maps(inner):
          return True
  return False


def _refuse_small(config, image_shape, trace) -> None:
  """Raises ConfigError naming the smallest square image the model can take:
  its pooling or strides leave a 0x0 map at `image_shape`, and the mean over
  no pixels is NaN (the loss would then diverge in cycle 1)."""
  h, w, c = image_shape
  side = max(h, w, 1)
  while side <= 4096 and _empty_maps(trace(1, (side, side, c))):
    side *= 2
  lo = max(h, w)  # fails; `side` works: the smallest that works lies in (lo, side]
  while side - lo > 1:
    mid = (lo + side) // 2
    if _empty_maps(trace(1, (mid, mid, c))):
      lo = mid
    else:
      side = mid
  raise ConfigError("data.image_size", f"{h}x{w}",
                    f"model.name={config.model.name} pools or strides a {h}x{w} image down to "
                    f"a 0x0 map (its loss would be NaN); use images of at least {side}x{side} "
                    f"(data.image_size={side}) or model.name=mlp")


def check_data(n_images: int, image_size: int | None, channels: int, where: str) -> None:
  """Before decoding or resizing: the uint8 dataset must fit in host memory."""
  if image_size is None:
    return
  require("data.image_size", image_size,
          images_bytes(n_images, image_size, image_size, channels),
          f"the decoded dataset ({n_images:,} images of {image_size}x{image_size}x{channels} "
          f"from {where})", "use fewer images",
          need_of=lambda s: images_bytes(n_images, s, s, channels))


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
  # `fix`: what to do when even the smallest value of the field fails.
  smaller = "use a smaller model.width or data.image_size"
  field, value, fix, alt = "train.batch_size", t.batch_size, smaller, ""
  if members > 1 and members * (state + train) > state + train + data:
    field, value, fix = ("al.ensemble_size", members, smaller)
  elif trials > 1 and trials * (state + train) > state + train + data:
    alt = "use --config.compare.parallel=none (trials one after another)"
    field, value, fix = "num_trials", config.num_trials, alt
  elif state > train:
    field, value, fix = "model.width", config.model.width, "use a smaller model.width"
  trials = max(trials, members)
  per_image = prof.train_bytes_per_image
  need_of = {"train.batch_size": lambda b: data + trials * (state + b * per_image),
             "al.ensemble_size": lambda m: data + m * (state + train),
             "num_trials": lambda n: data + n * (state + train)}.get(field)
  require(field, value, data + trials * (state + train),
          f"training ({trials} x [{fmt(state)} of weights and optimizer, "
          f"{fmt(train)} for a batch of {t.batch_size}] plus the data)", fix, "device",
          need_of=need_of, low=2 if field == "al.ensemble_size" else 1, alt=alt)

  def eval_need(b):
    return (data + state + b * (prof.eval_bytes_per_image + 4) +
            min(b, max(n_train, n_test)) * 4 * (prof.feature_dim + num_classes))

  require("train.eval_batch_size", t.eval_batch_size, eval_need(t.eval_batch_size),
          f"an eval chunk of {t.eval_batch_size:,} images", "use a smaller model or "
          "data.image_size", "device", need_of=eval_need)
  feats = (n_candidates + labeled_capacity) * 4 * (prof.feature_dim + num_classes)
  check_selection(config, n_candidates, labeled_capacity, prof.feature_dim, num_classes,
                  held=data + feats)


def check_selection(config, n_candidates: int, labeled_capacity: int, feature_dim: int,
                    num_classes: int, held: int = 0, skip: tuple[str, ...] = ()) -> None:
  """Every sizing field of the strategy's selection (`selection_needs`, the
  fields in `skip` left out) on top of `held` bytes already on the device;
  raises ConfigError naming the field, the bytes and a value that fits."""
  for field, value, need_of, what, fix, low, step in selection_needs(
      config, n_candidates, labeled_capacity, feature_dim, num_classes):
    if field in skip:
      continue
    require(field, value, held + need_of(value), what, fix, "device",
            need_of=lambda v, f=need_of: held + f(v), low=low, step=step)


# Strategies that run k-means on features (`al.kmeans.*`) or compute kernel or
# distance blocks of `al.block` rows.
KMEANS = ("uncertainty_mmd", "cluster_margin", "typiclust")
BLOCKS = ("uncertainty_mmd", "coreset", "typiclust")
# Minibatches of the per-sample MMD term gathered at once (mmd.per_sample_mmd2's chunk).
DRAW_CHUNK = 16
# Bytes one step of a pass over the candidates in blocks (the per-batch
# k-means, the RFF features) may hold: small against any pool, large enough
# that a step's arithmetic dwarfs its loop overhead.
PASS_BYTES = 64 << 20


# Above this many bytes of [N, D] random Fourier features, the sums over all
# candidates stream them instead of holding them (`mmd.streams_rff`): held,
# 1,000,000 x 2,048 features are 8 GB, more than the whole 3 GB pool; streamed
# they cost one more pass of feature arithmetic. At or below it (100,000 x
# 2,048: 0.8 GB) the held features keep the scores of the whole-array sum.
RFF_HOLD_BYTES = 1 << 30


def rff_rows(dim: int, rff_dim: int) -> int:
  """Rows of random Fourier features a blocked pass computes at once
  (`mmd.rff_features`, `mmd.rff_dots`): each row holds its centred features,
  the projections x W, their cosines and sines and the features z, about
  dim + 2.5 rff_dim float32 values."""
  return max(1, PASS_BYTES // (4 * (dim + 5 * max(rff_dim, 2) // 2)))


def kmeans_chunk(batch: int, dim: int, n_init: int = 1) -> int:
  """Minibatches the per-batch k-means clusters at once
  (`cluster_margin.minibatch_kmeans_margin`'s chunk): each holds its centred
  points, ott-jax's weighted copy of them ([batch, dim + 1]) and the loop's
  copies, about 4 [batch, dim + 1] float32 arrays per restart."""
  return max(1, PASS_BYTES // (4 * 4 * max(batch, 1) * (dim + 1) * max(n_init, 1)))


def _kmeans_shape(al, n_candidates: int, labeled_capacity: int, num_classes: int):
  """(rows, k, restarts vmapped at once) of the strategy's k-means."""
  if al.strategy == "typiclust":  # labeled + candidates, labeled + budget clusters, capped
    from jax_al.strategies import typiclust  # lazy: the strategies import this module
    rows = n_candidates + labeled_capacity
    return rows, typiclust.num_clusters(labeled_capacity, n_candidates, al.budget), 1
  k = al.k if al.k is not None else num_classes
  # Per-batch scope: every full minibatch (no padding, minibatch.layout); the
  # error histories of all of them are outputs, the rest is held `kmeans_chunk` at a time.
  batches = 1 if al.u_scope == "global" else max(1, n_candidates // max(al.batch, 1))
  return n_candidates, k, batches


def selection_needs(config, n_candidates: int, labeled_capacity: int, feature_dim: int,
                    num_classes: int) -> list:
  """The selection's memory as functions of the fields that size it.

  Each entry: (field, value, need_of(value) -> bytes, what, fix when even the
  smallest value fails, smallest value, step). Every sizing field of the
  run's strategy is here, so a combination (n_init x max_iter, repeats x
  draw_size) is estimated as a whole.
  """
  al, out = config.al, []
  name = al.strategy
  d, f32 = feature_dim, 4
  if name in BLOCKS:
    cap = max(n_candidates, labeled_capacity, 1)
    out.append(("al.block", al.block, lambda b: 4 * f32 * min(b, cap)**2,
                f"kernel blocks of {min(al.block, cap):,} x {min(al.block, cap):,}",
                "free device memory", 1, 1))
  if name == "uncertainty_mmd" and al.use_mmd and al.approx == "rff":
    out.append(("al.rff_dim", al.rff_dim,
                # the candidates' [N, r] features are held up to RFF_HOLD_BYTES
                lambda r: f32 * r * (labeled_capacity + d) + min(
                    f32 * r * n_candidates, RFF_HOLD_BYTES),
                f"random Fourier features of dimension {al.rff_dim:,}",
                "use al.approx='exact'", 2, 2))
  if name == "uncertainty_mmd" and al.use_mmd and al.term == "per_sample":
    at_once = 1 if al.mmd_scope == "global" else min(
        DRAW_CHUNK, max(1, n_candidates // max(al.batch, 1)))
    width = 2 * al.rff_dim if al.approx == "rff" else d
    block = al.block

    def draws(r, s):
      # gathered draws [R, s, width], the block-diagonal weights [R s, R] and
      # the R self-sum kernel blocks, per minibatch gathered at once
      return at_once * f32 * (r * s * width + r * s * r + r * min(block, s)**2)

    out.append(("al.repeats", al.repeats, lambda r: draws(r, al.draw_size),
                f"{al.repeats:,} labeled draws of {al.draw_size:,} points",
                "lower al.draw_size", 1, 1))
    out.append(("al.draw_size", al.draw_size, lambda s: draws(al.repeats, s),
                f"{al.repeats:,} labeled draws of {al.draw_size:,} points",
                "lower al.repeats", 2 if al.estimator == "unbiased" else 1, 1))
  if name in ("bald", "variation_ratio"):  # [T, N, C] MC-dropout logits, kept twice
    eb = config.train.eval_batch_size  # and each chunk's T dropout heads over its features
    out.append(("al.mc_samples", al.mc_samples,
                lambda t: f32 * t * (2 * n_candidates * num_classes + eb * (d + num_classes)),
                f"{al.mc_samples:,} MC-dropout passes over {n_candidates:,} candidates",
                "lower train.eval_batch_size or al.subset", 1, 1))
  if name in KMEANS and (name != "uncertainty_mmd" or al.utility == "cluster_margin"):
    km = al.kmeans
    rows, k, batches = _kmeans_shape(al, n_candidates, labeled_capacity, num_classes)

    if name == "typiclust":  # kmeans.blocked_kmeans: restarts one after the other
      from jax_al.scores import kmeans as kmeans_lib  # lazy, as above
      block = min(kmeans_lib.assign_rows(k, d), rows)
      trials = 2 + int(math.log(k))

      def kmeans(n_init, max_iter):
        # the concatenated labeled + candidates; each restart's assignment and
        # error history (the restarts' outputs); the running one's [N] vectors
        # (norms, two assignments, distances, the seeding's trial distances,
        # twice) and one assignment block
        return f32 * (rows * d + n_init * (rows + max_iter) + (6 + 2 * trials) * rows
                      + 3 * block * k)
    else:
      def kmeans(n_init, max_iter):
        # distances and assignments of every restart, and ott-jax's per-iteration
        # error history ([max_iter] per restart and minibatch, kept in the loop state)
        return 3 * f32 * n_init * (rows * k + batches * max_iter)

    what = (f"k-means with {km.n_init:,} restarts of {rows:,} points x {k} centres and "
            f"{km.max_iter:,} iterations at most")
    out.append(("al.kmeans.n_init", km.n_init, lambda n: kmeans(n, km.max_iter), what,
                "lower al.kmeans.max_iter or al.k", 1, 1))
    out.append(("al.kmeans.max_iter", km.max_iter, lambda m: kmeans(km.n_init, m), what,
                "lower al.kmeans.n_init or al.k", 1, 1))
  return out


# ---------------------------------------------------------------- work ------

# Fields that size a selection's work; a setting making it more than
# SLOW_FACTOR times the work at their defaults gets a warning before the run.
WORK_FIELDS = ("block", "repeats", "draw_size", "kmeans.n_init", "kmeans.max_iter",
               "kmeans.tol", "rff_dim", "mc_samples")
SLOW_FACTOR = 100
# A loop step (one kernel block pair) costs about this many flops of work on
# top of its arithmetic: launch and loop overhead, measured ~10 us on CPU.
STEP_FLOPS = 1e5
# Lloyd iterations counted when tol > 0 (runs converge well before the
# default cap); with tol = 0 every run may go to max_iter.
TYPICAL_ITERS = 100


def _get(al, dotted: str):
  node = al
  for part in dotted.split("."):
    node = node[part]
  return node


def selection_work(al, n_candidates: int, n_labeled: int, feature_dim: int,
                   num_classes: int) -> float:
  """About the flops of one selection (arithmetic + STEP_FLOPS per loop step)."""
  cdiv = lambda a, b: -(-int(a) // max(int(b), 1))
  n, m, d = max(n_candidates, 1), max(n_labeled, 1), feature_dim
  name, work = al.strategy, 0.0

  def pairs(rows, cols, block):  # a blocked kernel or distance pass
    return rows * cols * d + STEP_FLOPS * cdiv(rows, block) * cdiv(cols, block)

  if name in KMEANS and (name != "uncertainty_mmd" or al.utility == "cluster_margin"):
    km = al.kmeans
    rows, k, _ = _kmeans_shape(al, n, m, num_classes)
    iters = km.max_iter if km.tol == 0 else min(km.max_iter, TYPICAL_ITERS)
    work += km.n_init * iters * (rows * k * d + STEP_FLOPS)
  if name == "uncertainty_mmd" and al.use_mmd:
    b = n if al.mmd_scope == "global" else min(al.batch, n)
    nb = cdiv(n, b)
    if al.approx == "rff":
      work += (n + m) * d * al.rff_dim * 2 + al.repeats * al.draw_size * al.rff_dim * nb
    elif al.term == "per_sample":
      r, s = al.repeats, al.draw_size
      work += nb * (pairs(b, r * s, al.block) + r * pairs(s, s, al.block))
    else:  # witness, decrease: candidates against L and against their own minibatch
      work += pairs(n, m, al.block) + nb * pairs(b, b, al.block)
  if name in ("coreset", "typiclust"):
    work += pairs(n, n + m, al.block)
  if name in ("bald", "variation_ratio"):
    work += al.mc_samples * n * d * num_classes
  return work


def slow_settings(config, n_candidates: int, n_labeled: int, feature_dim: int,
                  num_classes: int) -> str | None:
  """A warning when the work fields make a selection SLOW_FACTOR times
  slower than at their defaults (combinations counted together), else None."""
  from jax_al import schema

  al, base = config.al, config.al.copy_and_resolve_references()
  ref = schema.defaults("al")
  changed = [f for f in WORK_FIELDS if _get(al, f) != _get(ref, f)]
  if not changed:
    return None
  with base.unlocked():
    for f in changed:
      *path, last = f.split(".")
      node = base
      for part in path:
        node = node[part]
      node[last] = _get(ref, f)
  args = (n_candidates, n_labeled, feature_dim, num_classes)
  now, then = selection_work(al, *args), selection_work(base, *args)
  if not then or now <= SLOW_FACTOR * then:
    return None
  shown = ", ".join(f"al.{f}={_get(al, f)!r} (default {_get(ref, f)!r})" for f in changed)
  return (f"{shown}: each selection is about {now / then:,.0f}x the work it is at the "
          "defaults, so the run will be that much slower (set them back to stop this warning)")
