"""Scores over stochastic predictions: MC-dropout passes or ensemble members.

Every function takes `sample_logits` [S, N, C]: S stochastic forward passes
(or S ensemble members) for N candidates over C classes, and returns [N].

- `predictive_entropy`: H[p_bar], the entropy of the mean softmax p_bar.
- `mutual_information` (BALD; Houlsby et al. 2011, Gal et al. 2017):
  H[p_bar] - mean_s H[p_s], the expected information gain about the model
  parameters from the label. It is 0 when every sample agrees.
- `variation_ratio` (Freeman 1965, used by Gal et al. 2017): 1 - f_mode / S,
  the share of samples whose argmax is not the most frequent one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _entropy(logp: jax.Array) -> jax.Array:
  # 0 * log 0 is taken as 0 (exp(-inf) * -inf would be NaN).
  return -jnp.sum(jnp.where(jnp.isfinite(logp), jnp.exp(logp) * logp, 0.0), axis=-1)


def mean_log_probs(sample_logits: jax.Array) -> jax.Array:
  """[N, C] log of the mean softmax over the S samples (log-sum-exp, stable)."""
  logp = jax.nn.log_softmax(sample_logits.astype(jnp.float32), axis=-1)
  return jax.nn.logsumexp(logp, axis=0) - jnp.log(jnp.float32(logp.shape[0]))


@jax.jit
def predictive_entropy(sample_logits: jax.Array) -> jax.Array:
  """[N] entropy (nats) of the mean softmax over the samples."""
  return _entropy(mean_log_probs(sample_logits))


@jax.jit
def mutual_information(sample_logits: jax.Array) -> jax.Array:
  """[N] BALD: entropy of the mean softmax minus the mean entropy (nats, >= 0)."""
  logp = jax.nn.log_softmax(sample_logits.astype(jnp.float32), axis=-1)
  mi = _entropy(mean_log_probs(sample_logits)) - jnp.mean(_entropy(logp), axis=0)
  return jnp.maximum(mi, 0.0)  # rounding can give -1e-7 for agreeing samples


@jax.jit
def variation_ratio(sample_logits: jax.Array) -> jax.Array:
  """[N] 1 - (votes of the most voted class) / S over the samples' argmax."""
  s, _, c = sample_logits.shape
  votes = jnp.sum(jax.nn.one_hot(jnp.argmax(sample_logits, axis=-1), c), axis=0)
  return (s - jnp.max(votes, axis=-1)) / s  # exactly 0 when every sample agrees
