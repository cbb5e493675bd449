"""Single-layer k-means features (Coates, Lee & Ng, AISTATS 2011).

A data transform: `data.features = "coates"` replaces every image of the
source by its feature vector, learned without labels from the training split
only (the active-learning pool); test images are only encoded. The recipe is
the paper's:

1. `n_patches` random `patch` x `patch` patches of the training images
   (pixels 0..255), each normalised for brightness and contrast:
   (p - mean(p)) / sqrt(var(p) + eps_norm);
2. ZCA whitening, W = V diag(1 / sqrt(eigvals + eps_zca)) V^T, fitted on
   those patches;
3. k-means on the whitened patches (ott-jax, k-means++ init, jitted);
4. every patch position (stride 1) encoded with the triangle activation
   f_k = max(0, mean_j(z_j) - z_k), z_k the distance to centroid k;
5. sum-pooling over the 4 quadrants of the position grid -> 4k features.

The paper's defaults are eps_norm = 10, eps_zca = 0.1, 400,000 patches and
50 k-means iterations. Their released code then standardises each feature
with the training mean and sqrt(var + 0.01) before the classifier; so does
this module (training split statistics only).

The result is a `Dataset` whose images are float32 [N, 4, k, 1] (quadrant,
centroid, one channel), so the existing models (the MLP flattens its input)
and the rest of the loop take it unchanged; the config then uses
data.mean = 0 and data.std = 1 (float inputs are not divided by 255).
Features are computed in blocks of `block` images (memory is
block x positions x k floats) and cached on disk with the decoded-array cache,
keyed by a digest of the source arrays and every feature parameter.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np

from jax_al.data import cache
from jax_al.data.dataset import Dataset
from jax_al.errors import ConfigError

FEATURES = ("", "coates")  # "" = pixels
# Bump when the computation changes, so that old cache entries are not reused.
VERSION = 1


@dataclasses.dataclass(frozen=True)
class Params:
  """The feature parameters (config.data.coates)."""
  k: int = 400
  patch: int = 6
  n_patches: int = 400_000
  seed: int = 0
  kmeans_iter: int = 50
  eps_norm: float = 10.0
  eps_zca: float = 0.1
  block: int = 100

  def key(self) -> dict:
    d = dataclasses.asdict(self)
    d.pop("block")  # does not change the features
    return d


def params_from_config(data_cfg) -> Params:
  """The features' parameters from config.data.coates (whose fields the
  schema checks, `config.check_data`)."""
  c = data_cfg.coates
  return Params(k=int(c.k), patch=int(c.patch), n_patches=int(c.n_patches), seed=int(c.seed),
                kmeans_iter=int(c.kmeans_iter), eps_norm=float(c.eps_norm),
                eps_zca=float(c.eps_zca), block=int(c.block))


def check_shapes(p: Params, image_shape) -> None:
  """Raises ConfigError when the images cannot give the requested features
  (the patch against the images' size: known once they are loaded)."""
  h, w = image_shape[:2]
  if p.patch > min(h, w) - 1:
    raise ConfigError("data.coates.patch", p.patch,
                      f"the images are {h}x{w}; use a patch of at most "
                      f"{min(h, w) - 1} pixels so that there are 2x2 quadrants "
                      "of positions to pool.")


# ---- the computation ---------------------------------------------------------


def _normalise(x, eps_norm):
  """Per-patch brightness and contrast normalisation over the last axis."""
  mu = jnp.mean(x, -1, keepdims=True)
  var = jnp.var(x, -1, keepdims=True, ddof=1)  # MATLAB's var, as in the paper's code
  return (x - mu) / jnp.sqrt(var + eps_norm)


def _all_patches(images, patch):
  """uint8/float [B, H, W, C] -> [B, H-p+1, W-p+1, p*p*C] float32, (dy, dx, c) order."""
  x = images.astype(jnp.float32)
  _, h, w, _ = x.shape
  ny, nx = h - patch + 1, w - patch + 1
  cols = [x[:, dy:dy + ny, dx:dx + nx, :] for dy in range(patch) for dx in range(patch)]
  out = jnp.stack(cols, axis=3)  # [B, ny, nx, p*p, C]
  return out.reshape(out.shape[:3] + (-1,))


@functools.partial(jax.jit, static_argnames=("patch", "n"))
def _sample_patches(images, key, *, patch, n):
  """`n` random patches of `images` (which image, where: uniform), flattened."""
  num, h, w, c = images.shape
  ki, ky, kx = jax.random.split(key, 3)
  idx = jax.random.randint(ki, (n,), 0, num)
  ys = jax.random.randint(ky, (n,), 0, h - patch + 1)
  xs = jax.random.randint(kx, (n,), 0, w - patch + 1)

  def one(i, y, x):
    img = jax.lax.dynamic_index_in_dim(images, i, keepdims=False)
    return jax.lax.dynamic_slice(img, (y, x, 0), (patch, patch, c)).reshape(-1)

  return jax.vmap(one)(idx, ys, xs).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("k", "iters"))
def _kmeans(points, key, *, k, iters):
  from ott.tools import k_means  # lazy: ott takes seconds to import
  out = k_means.k_means(points, k, init="k-means++", n_init=1,
                        max_iterations=iters, rng=key)
  return out.centroids, out.error


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
  """What was learned from the training patches."""
  mean: np.ndarray       # [D] mean of the normalised patches
  whiten: np.ndarray     # [D, D] ZCA matrix
  centroids: np.ndarray  # [k, D] in whitened space
  kmeans_error: float


def whiten_patches(patches: jax.Array, eps_norm: float, eps_zca: float):
  """Normalised, ZCA-whitened patches and (mean, W) they were whitened with."""
  x = _normalise(patches, eps_norm)
  mean = jnp.mean(x, 0)
  xc = x - mean
  cov = xc.T @ xc / (x.shape[0] - 1)
  vals, vecs = jnp.linalg.eigh(cov)
  w = (vecs * (1.0 / jnp.sqrt(vals + eps_zca))) @ vecs.T
  return xc @ w, mean, w


def learn(train_images: np.ndarray, p: Params) -> Model:
  """Samples patches of `train_images`, whitens them and runs k-means."""
  key = jax.random.key(p.seed)
  k_patch, k_km = jax.random.split(key)
  patches = _sample_patches(jnp.asarray(train_images), k_patch, patch=p.patch,
                            n=p.n_patches)
  white, mean, w = jax.jit(whiten_patches, static_argnums=(1, 2))(
      patches, p.eps_norm, p.eps_zca)
  centroids, err = _kmeans(white, k_km, k=p.k, iters=p.kmeans_iter)
  return Model(mean=np.asarray(mean), whiten=np.asarray(w),
               centroids=np.asarray(centroids), kmeans_error=float(err))


def triangle(x: jax.Array, centroids: jax.Array) -> jax.Array:
  """max(0, mean_j z_j - z_k) for rows x [..., D] and centroids [k, D]."""
  xx = jnp.sum(x * x, -1, keepdims=True)
  cc = jnp.sum(centroids * centroids, -1)
  z = jnp.sqrt(jnp.maximum(xx + cc - 2.0 * (x @ centroids.T), 0.0))
  return jnp.maximum(jnp.mean(z, -1, keepdims=True) - z, 0.0)


@functools.partial(jax.jit, static_argnames=("patch", "eps_norm"))
def _encode_block(images, mean, w, centroids, *, patch, eps_norm):
  """[B, H, W, C] images -> [B, 4, k] quadrant sums of triangle activations.

  One matrix product per block: with the normalised patch x, the whitened
  patch is (x - mean) W and its products with the centroids are
  (x - mean) W C^T, so x [W, W C^T] gives both (2x faster on a CPU than
  whitening first and multiplying by C^T after).
  """
  x = _normalise(_all_patches(images, patch), eps_norm)   # [B, ny, nx, D]
  d = x.shape[-1]
  wc = w @ centroids.T                                     # [D, k]
  y = x @ jnp.concatenate([w, wc], 1)
  xw = y[..., :d] - mean @ w                               # whitened patches
  xc = y[..., d:] - mean @ wc                              # their products with C
  xx = jnp.sum(xw * xw, -1, keepdims=True)
  cc = jnp.sum(centroids * centroids, -1)
  z = jnp.sqrt(jnp.maximum(xx + cc - 2.0 * xc, 0.0))
  f = jnp.maximum(jnp.mean(z, -1, keepdims=True) - z, 0.0)  # [B, ny, nx, k]
  ny, nx = f.shape[1:3]
  # MATLAB's round(n / 2) (the paper's code): halves round away from zero.
  hy, hx = (ny + 1) // 2, (nx + 1) // 2
  quads = [f[:, :hy, :hx], f[:, :hy, hx:], f[:, hy:, :hx], f[:, hy:, hx:]]
  return jnp.stack([q.sum((1, 2)) for q in quads], axis=1)


@functools.partial(jax.jit, static_argnames=("patch", "eps_norm"))
def encode_positions(images, mean, w, centroids, *, patch, eps_norm):
  """Triangle activations [B, ny, nx, k] at every position, the direct way
  (patches materialised); the reference `_encode_block` is tested against."""
  x = _normalise(_all_patches(images, patch), eps_norm)
  return triangle((x - mean) @ w, centroids)


def encode(images: np.ndarray, model: Model, p: Params) -> np.ndarray:
  """float32 [N, 4, k] features of `images`, computed `p.block` images at a time.

  The last block is padded to the block size, so one program is compiled.
  """
  n = len(images)
  out = np.empty((n, 4, len(model.centroids)), np.float32)
  args = (jnp.asarray(model.mean), jnp.asarray(model.whiten),
          jnp.asarray(model.centroids))
  t0, said = time.perf_counter(), 0.0
  for start in range(0, n, p.block):
    now = time.perf_counter() - t0
    if now - said > 30:  # minutes on a CPU: say how far it is
      said = now
      logging.info("Coates features: %d / %d images in %.0f s", start, n, now)
    chunk = images[start:start + p.block]
    m = len(chunk)
    if m < p.block:
      chunk = np.concatenate([chunk, np.zeros((p.block - m,) + chunk.shape[1:], chunk.dtype)])
    feats = _encode_block(jnp.asarray(chunk), *args, patch=p.patch, eps_norm=p.eps_norm)
    out[start:start + m] = np.asarray(feats)[:m]
  return out


def standardise(train: np.ndarray, test: np.ndarray):
  """Both splits scaled with the training split's mean and sqrt(var + 0.01)."""
  mu = train.mean(0, dtype=np.float64)
  sd = np.sqrt(train.var(0, dtype=np.float64) + 0.01)
  f = lambda x: ((x - mu) / sd).astype(np.float32)
  return f(train), f(test)


def compute(ds: Dataset, p: Params) -> tuple[np.ndarray, np.ndarray, dict]:
  """(train, test) standardised float32 [N, 4, k, 1] features and timings."""
  t0 = time.perf_counter()
  model = learn(ds.train_images, p)
  t1 = time.perf_counter()
  logging.info("Coates features: whitening and k-means (k=%d, %d patches) in %.1f s",
               p.k, p.n_patches, t1 - t0)
  train = encode(ds.train_images, model, p)
  test = encode(ds.test_images, model, p)
  t2 = time.perf_counter()
  train, test = standardise(train, test)
  info = {"learn_s": t1 - t0, "encode_s": t2 - t1, "kmeans_error": model.kmeans_error}
  return train[..., None], test[..., None], info


def _digest(ds: Dataset) -> str:
  """sha256 of the source arrays: the cache key follows the pixels themselves."""
  h = hashlib.sha256()
  for a in (ds.train_images, ds.train_labels, ds.test_images, ds.test_labels):
    h.update(str(a.shape).encode())
    h.update(np.ascontiguousarray(a).data)
  return h.hexdigest()


def apply(ds: Dataset, data_cfg) -> Dataset:
  """Returns `ds` with images replaced by its Coates features (cached)."""
  p = params_from_config(data_cfg)
  check_shapes(p, ds.train_images.shape[1:])
  key = {"source": "coates", "version": VERSION, "data": _digest(ds), **p.key()}
  entry, key_text = cache.entry_path(cache.cache_dir(data_cfg.cache_dir), "coates", key)
  source = ds.description.removesuffix(" (cached)")
  what = f"coates(k={p.k}, patch={p.patch}) of {source}"
  hit = cache.load(entry, key_text)
  if hit is not None:
    return Dataset(train_images=hit["train_images"], train_labels=hit["train_labels"],
                   test_images=hit["test_images"], test_labels=hit["test_labels"],
                   class_names=tuple(str(c) for c in hit["class_names"]),
                   description=what + " (cached)")
  train, test, info = compute(ds, p)
  logging.info("Coates features %s: learned in %.1f s, encoded in %.1f s", what,
               info["learn_s"], info["encode_s"])
  cache.save(entry, key_text, {
      "train_images": train, "train_labels": ds.train_labels, "test_images": test,
      "test_labels": ds.test_labels, "class_names": np.array(ds.class_names, dtype=str)})
  return Dataset(train_images=train, train_labels=ds.train_labels, test_images=test,
                 test_labels=ds.test_labels, class_names=ds.class_names, description=what)
