"""scores/bayes.py against NumPy references, and the properties BALD rests on."""

from __future__ import annotations

import numpy as np
import pytest

from jax_al.scores import bayes


def _softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _h(p):
  return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), -1)


@pytest.fixture
def logits():
  return np.random.default_rng(0).normal(size=(7, 50, 5)).astype(np.float32) * 3


def test_against_numpy(logits):
  p = _softmax(logits.astype(np.float64))
  pbar = p.mean(0)
  np.testing.assert_allclose(bayes.predictive_entropy(logits), _h(pbar), atol=2e-5)
  np.testing.assert_allclose(bayes.mutual_information(logits), _h(pbar) - _h(p).mean(0),
                             atol=2e-5)
  votes = np.stack([np.bincount(a, minlength=5) for a in logits.argmax(-1).T])
  np.testing.assert_allclose(bayes.variation_ratio(logits), 1 - votes.max(1) / 7, atol=1e-7)


def test_agreeing_samples_carry_no_information(logits):
  same = np.repeat(logits[:1], 7, axis=0)
  assert float(np.max(bayes.mutual_information(same))) < 1e-5
  assert float(np.max(bayes.variation_ratio(same))) == 0.0
  # Disagreement raises BALD: mix in ever more of the other samples.
  mis = [float(np.mean(bayes.mutual_information(same * (1 - a) + logits * a)))
         for a in (0.0, 0.3, 0.6, 1.0)]
  assert mis == sorted(mis) and mis[-1] > 0.1


def test_extreme_logits_stay_finite():
  z = np.array([[[1e4, -1e4, 0.0]], [[-1e4, 1e4, 0.0]]], np.float32)
  for f in (bayes.predictive_entropy, bayes.mutual_information, bayes.variation_ratio):
    assert np.all(np.isfinite(f(z)))
  assert float(bayes.mutual_information(z)[0]) == pytest.approx(np.log(2), abs=1e-5)
