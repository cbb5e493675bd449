"""The training throughput of a study's model on this machine: measured, cached.

`--plan` prices the training of jobs nothing has measured yet at the rate
`train_images_per_s(config)` measures: it builds the configured model,
compiles one training step (`jax_al.train.train_step`) at `train.batch_size`
on inputs of the dataset's shape (`jax_al.data.input_shape`), waits for the
compiled step once, then times `STEPS` more steps (each waited for with
`block_until_ready`) on random inputs, at least `MIN_S` seconds of them;
the rate is the batch over the median step time. The rate is cached per (model name,
width, input shape, batch size, dtype, device kind, jax version) in
`throughput.json` of the jax-al cache folder (`data.cache_dir`, or
~/.cache/jax_al), so a second plan measures nothing.

The rate is a timing of this machine: the study's results files never hold
it (`cost.estimate` feeds only the plan's text).
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
import time
from pathlib import Path

CACHE_FILE = "throughput.json"
FORMAT = 1
STEPS = 5           # timed steps after the compiled one, at least ...
MIN_S = 0.25        # ... and for at least this long (tiny models take microseconds a step)
MAX_STEPS = 2000
NUM_CLASSES = 10    # the output layer's width barely moves a step's time


ENV = "JAX_AL_THROUGHPUT_CACHE"  # a file path in place of the default (the tests set it)


def cache_path(config) -> Path:
  """`throughput.json` of the jax-al cache folder (`data.cache_dir` or
  ~/.cache/jax_al), or the file $JAX_AL_THROUGHPUT_CACHE names."""
  from jax_al.data import cache

  if os.environ.get(ENV):
    return Path(os.environ[ENV])
  return cache.cache_dir(config.data.cache_dir) / CACHE_FILE


def key_of(config, image_shape) -> str:
  """The cache key of a measurement: what sets the speed of a training step."""
  import jax

  return json.dumps({"format": FORMAT, "model": config.model.name,
                     "width": float(config.model.width), "shape": list(image_shape),
                     "batch": int(config.train.batch_size), "dtype": config.train.dtype,
                     "device": jax.devices()[0].device_kind, "jax": jax.__version__},
                    sort_keys=True)


def _read(path: Path) -> dict:
  try:
    d = json.loads(path.read_text())
  except (OSError, ValueError):
    return {}
  return d if isinstance(d, dict) else {}


def _write(path: Path, entries: dict) -> None:
  """Replaces the cache file at once (a cache that cannot be written is skipped)."""
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".throughput-", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
      json.dump(entries, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
  except OSError:
    pass


def measure(config, image_shape) -> float:
  """Training images/s of `config`'s model at its batch size and dtype on
  inputs of `image_shape` (H, W, C), on this process's default device."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from jax_al import train

  batch = int(config.train.batch_size)
  gd, params, bs = train.init_model(config, NUM_CLASSES, tuple(image_shape), jax.random.key(0))
  sc = train.StepConfig.from_config(config, batch)
  tx = train.make_optimizer(sc)
  state = train.TrainState(params, bs, tx.init(params))
  step = jax.jit(functools.partial(train.train_step, gd, tx, sc))
  rng = np.random.default_rng(0)
  features = config.data.features == "coates" or config.data.source == "embeddings"
  images = (rng.standard_normal((batch, *image_shape)).astype(np.float32) if features
            else rng.integers(0, 256, (batch, *image_shape), dtype=np.uint8))
  images = jnp.asarray(images)
  labels = jnp.asarray(rng.integers(0, NUM_CLASSES, batch).astype(np.int32))
  idx, mask = jnp.arange(batch), jnp.ones(batch, bool)
  lr, key = jnp.float32(config.train.lr), jax.random.key(1)
  state, loss = step(state, images, labels, idx, mask, key, lr)  # compiles
  jax.block_until_ready((state, loss))
  times: list[float] = []
  start = time.perf_counter()
  while len(times) < MAX_STEPS and (len(times) < STEPS
                                    or time.perf_counter() - start < MIN_S):
    t0 = time.perf_counter()
    state, loss = step(state, images, labels, idx, mask, jax.random.fold_in(key, len(times)),
                       lr)
    jax.block_until_ready((state, loss))
    times.append(time.perf_counter() - t0)
  return batch / max(float(np.median(times)), 1e-9)  # the median step: robust to a busy core


def backend() -> str:
  """This machine's kind of device for the cost model: "cpu" or "gpu"."""
  import jax

  return "cpu" if jax.default_backend() == "cpu" else "gpu"


def train_images_per_s(config, dev: str) -> tuple[float | None, str]:
  """(training images/s of one trial of `config` on device `dev`, where it
  comes from). Measured (or read from the cache) where `dev` is this
  machine's backend and the input shape is known without loading the data;
  else (None, why)."""
  import jax

  from jax_al import data

  here = backend()
  if dev != here:
    return None, (f"NOT measured: this machine's backend is {here}, not {dev}; give "
                  "--study.train_images_per_s")
  shape = data.input_shape(config.data)
  if shape is None:
    return None, (f"NOT measured: the input shape of data.source={config.data.source} is "
                  "unknown before loading it; set data.image_size or give "
                  "--study.train_images_per_s")
  path, key = cache_path(config), key_of(config, shape)
  entries = _read(path)
  hit = entries.get(key)
  where = f"{jax.devices()[0].device_kind}, batch {config.train.batch_size}, input " \
          f"{'x'.join(map(str, shape))}, {config.train.dtype}"
  if isinstance(hit, (int, float)) and math.isfinite(hit) and hit > 0:
    return float(hit), f"measured on this machine ({where}; cached in {path})"
  rate = measure(config, shape)
  entries[key] = rate
  _write(path, entries)
  return rate, f"measured on this machine ({where}; the median of jitted steps after " \
               "compilation)"
