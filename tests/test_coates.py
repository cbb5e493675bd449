"""Tests of the single-layer k-means feature bed (jax_al/data/coates.py).

Real data only: scikit-learn's digits (shipped, no shared folder) and a
subset of the ../shared CIFAR-10 JPEG copy when it is present.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from jax_al.data import Dataset, coates, load_dataset
from jax_al.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
# One small setting for every digits test, so that k-means compiles once.
SMALL = dict(k=24, patch=3, n_patches=20_000, kmeans_iter=20, block=256)


def _data_cfg(tmp_path, **coates_fields):
  from configs import common
  c = common.base().data
  c.source = "digits"
  c.channels = 1
  c.features = "coates"
  c.cache_dir = str(tmp_path / "cache")
  c.coates.update(SMALL)
  c.coates.update(coates_fields)
  return c


@pytest.fixture(scope="module")
def digits_images():
  from jax_al.data.digits import load_digits
  from configs import common
  c = common.base().data
  ds = load_digits(c, image_size=None, channels=1)
  return ds


@pytest.mark.slow
def test_zca_whitened_patches_have_identity_covariance(digits_images):
  p = coates.Params(**SMALL)
  patches = coates._sample_patches(jnp.asarray(digits_images.train_images),
                                   coates.jax.random.key(0), patch=3, n=p.n_patches)
  # A small eps: whitening is then identity on every direction but the
  # constant one, which contrast normalisation removed (eigenvalue 0).
  white, _, _ = coates.whiten_patches(patches, 10.0, 1e-3)
  vals = np.linalg.eigvalsh(np.cov(np.asarray(white, np.float64), rowvar=False))
  assert vals[0] < 0.05, vals
  np.testing.assert_allclose(vals[1:], 1.0, atol=0.03)
  cov = np.cov(np.asarray(white, np.float64), rowvar=False)
  ones = np.ones(9) / 3.0
  np.testing.assert_allclose(cov, np.eye(9) - np.outer(ones, ones), atol=0.03)
  # With the paper's eps = 0.1 the covariance is V diag(l / (l + eps)) V^T.
  white, _, _ = coates.whiten_patches(patches, 10.0, 0.1)
  x = np.asarray(coates._normalise(patches, 10.0), np.float64)
  vals, vecs = np.linalg.eigh(np.cov(x, rowvar=False))
  want = (vecs * (vals / (vals + 0.1))) @ vecs.T
  np.testing.assert_allclose(np.cov(np.asarray(white, np.float64), rowvar=False), want,
                             atol=2e-3)


@pytest.mark.slow
def test_triangle_features_nonnegative_about_half_zero(digits_images):
  p = coates.Params(**SMALL)
  model = coates.learn(digits_images.train_images, p)
  f = np.asarray(coates.encode_positions(
      jnp.asarray(digits_images.test_images[:200]), jnp.asarray(model.mean),
      jnp.asarray(model.whiten), jnp.asarray(model.centroids), patch=3, eps_norm=10.0))
  assert f.shape == (200, 6, 6, 24)
  assert f.min() >= 0.0
  zero = np.mean(f == 0.0)
  assert 0.3 < zero < 0.7, zero
  # The fused block encoder equals quadrant sums of the direct computation.
  pooled = coates.encode(digits_images.test_images[:200], model, p)
  ref = np.stack([f[:, :3, :3].sum((1, 2)), f[:, :3, 3:].sum((1, 2)),
                  f[:, 3:, :3].sum((1, 2)), f[:, 3:, 3:].sum((1, 2))], 1)
  np.testing.assert_allclose(pooled, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_cache_round_trip_and_determinism(tmp_path):
  cfg = _data_cfg(tmp_path)
  first = load_dataset(cfg)
  assert first.train_images.dtype == np.float32
  assert first.train_images.shape == (1297, 4, 24, 1)
  assert not first.description.endswith("(cached)")
  again = load_dataset(cfg)
  assert again.description.endswith("(cached)")
  for a in ("train_images", "train_labels", "test_images", "test_labels"):
    np.testing.assert_array_equal(getattr(first, a), getattr(again, a))
  # Recomputed from scratch (another cache folder): the same seed gives the same
  # features; another seed gives other centroids.
  fresh = load_dataset(_data_cfg(tmp_path / "other"))
  np.testing.assert_array_equal(fresh.train_images, first.train_images)
  other = load_dataset(_data_cfg(tmp_path / "seed1", seed=1))
  assert not np.allclose(other.train_images, first.train_images)
  # Standardised with the training split's statistics only.
  np.testing.assert_allclose(first.train_images.mean(0), 0.0, atol=1e-4)


def test_bad_fields_name_the_field(tmp_path):
  with pytest.raises(ConfigError, match="data.coates.k"):
    load_dataset(_data_cfg(tmp_path, k=1))
  with pytest.raises(ConfigError, match="data.coates.patch"):
    load_dataset(_data_cfg(tmp_path, patch=8))
  with pytest.raises(ConfigError, match="data.coates.n_patches"):
    load_dataset(_data_cfg(tmp_path, n_patches=10))
  cfg = _data_cfg(tmp_path)
  cfg.features = "coats"
  with pytest.raises(ConfigError, match="data.features.*coates"):
    load_dataset(cfg)


@pytest.mark.slow
def test_mlp_head_on_digits_features_beats_chance(tmp_path, tiny_config):
  """The whole loop on float features: an MLP head far above 10 %."""
  from jax_al import loop
  c = tiny_config("margin")
  c.data.features = "coates"
  c.data.cache_dir = str(tmp_path / "cache")
  c.data.coates.update(SMALL)
  c.data.mean, c.data.std = (0.0,), (1.0,)
  c.al.initial, c.al.budget = 100, 100
  c.train.epochs, c.train.milestones, c.train.eval_every = 15, (12,), 15
  out = loop.run(c, tmp_path / "run", quiet=True)
  acc = out["test_acc"][0]
  assert min(acc) > 70.0, acc


@pytest.mark.skipif(not CIFAR.exists(), reason="../shared CIFAR-10 copy not present")
@pytest.mark.slow
def test_cifar_subset_features_are_informative(tmp_path, cifar_cache):
  """1,000 CIFAR training images: a linear head far above chance (10 %)."""
  from configs import common
  from sklearn.linear_model import LogisticRegression
  c = common.base().data
  c.source, c.path, c.cache_dir = "folder", str(CIFAR), str(cifar_cache)
  full = load_dataset(c)
  rng = np.random.default_rng(0)
  tr = rng.choice(len(full.train_labels), 1000, replace=False)
  te = rng.choice(len(full.test_labels), 500, replace=False)
  ds = Dataset(full.train_images[tr], full.train_labels[tr], full.test_images[te],
               full.test_labels[te], full.class_names, "cifar subset")
  p = coates.Params(k=32, patch=6, n_patches=20_000, kmeans_iter=10, block=250)
  train, test, _ = coates.compute(ds, p)
  assert train.shape == (1000, 4, 32, 1) and np.isfinite(train).all()
  clf = LogisticRegression(C=0.01, max_iter=300).fit(train.reshape(1000, -1), ds.train_labels)
  acc = clf.score(test.reshape(500, -1), ds.test_labels)
  assert acc > 0.30, acc
