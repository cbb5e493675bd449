"""`badge`: k-means++ seeding on last-layer gradient embeddings (Ash et al.,
2020).

For cross-entropy with the predicted class yhat as the label, the gradient of
the loss with respect to the last linear layer's weights is the outer product

    g = (p - onehot(yhat)) ⊗ h,    p = softmax(logits), yhat = argmax p,

with h the penultimate features. Its norm is large where the model is unsure
(p far from one-hot) and the features are large; k-means++ seeding over g
trades that magnitude off against diversity.

The [N, C * d] embedding is never built: for outer products
<a_i ⊗ h_i, a_j ⊗ h_j> = (a_i . a_j)(h_i . h_j), so every distance the seeding
needs costs O(C + d) per point.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jax_al.strategies.base import Pool, Requires, Selection, Strategy, register

_HIGHEST = jax.lax.Precision.HIGHEST

# Squared distances below this fraction of |g_i|^2 + |g_c|^2 are rounding
# noise of the expansion, not distance: treated as 0 so that duplicates of a
# picked point are never sampled for their round-off.
_REL_TOL = 1e-5


def gradient_factors(logits: jax.Array, features: jax.Array
                     ) -> tuple[jax.Array, jax.Array]:
  """The two factors of the embedding g = a ⊗ h.

  Args:
    logits: [N, C].
    features: [N, d].

  Returns:
    (a = p - onehot(argmax p) as [N, C], h as [N, d]), both float32.
  """
  p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  onehot = jax.nn.one_hot(jnp.argmax(p, axis=-1), p.shape[-1], dtype=p.dtype)
  return p - onehot, features.astype(jnp.float32)


def gradient_embedding(logits: jax.Array, features: jax.Array) -> jax.Array:
  """[N, C * d] gradient embeddings, class-major. For inspection and tests."""
  a, h = gradient_factors(logits, features)
  return (a[:, :, None] * h[:, None, :]).reshape(a.shape[0], -1)


def sq_dists_to_point(a: jax.Array, h: jax.Array, g_sq: jax.Array,
                      i: jax.Array) -> jax.Array:
  """Squared distances |g_j - g_i|^2 from every embedding to embedding i.

  Args:
    a: [N, C] and h: [N, d]: the factors of g.
    g_sq: [N] squared norms |g_j|^2 = |a_j|^2 |h_j|^2.
    i: scalar position.

  Returns:
    [N] squared distances, with rounding noise clipped to 0.
  """
  dot = (jnp.dot(a, a[i], precision=_HIGHEST)
         * jnp.dot(h, h[i], precision=_HIGHEST))
  scale = g_sq + g_sq[i]
  d = g_sq + g_sq[i] - 2 * dot
  return jnp.where(d > _REL_TOL * scale, d, 0.0)


@functools.partial(jax.jit, static_argnames=("budget",))
def badge_select(logits: jax.Array, features: jax.Array, budget: int,
                 rng: jax.Array) -> tuple[jax.Array, jax.Array]:
  """k-means++ seeding (D^2 sampling) over gradient embeddings.

  The first centre is the largest embedding, as in the BADGE code; each next
  one is drawn with probability proportional to its squared distance to the
  nearest centre so far. Picked points are masked out of every later draw,
  and when all remaining distances are 0 (collapsed or duplicated embeddings)
  the draw is uniform over the points not yet picked, so no point is ever
  picked twice.

  Args:
    logits: [N, C].
    features: [N, d].
    budget: static number of picks, <= N.
    rng: key for the D^2 draws.

  Returns:
    ([budget] picked positions in order, [N] embedding norms |g|).
  """
  a, h = gradient_factors(logits, features)
  g_sq = jnp.sum(a * a, -1) * jnp.sum(h * h, -1)
  n = g_sq.shape[0]

  def add_centre(t, i, carry):
    d2, picked, picks = carry
    d2 = jnp.minimum(d2, sq_dists_to_point(a, h, g_sq, i))
    return d2, picked.at[i].set(True), picks.at[t].set(i)

  def pick(t, carry):
    d2, picked, _ = carry
    w = jnp.where(picked, 0.0, d2)
    # Fall back to uniform over the unpicked points when nothing is left
    # at positive distance.
    w = jnp.where(jnp.sum(w) > 0, w, jnp.where(picked, 0.0, 1.0))
    i = jax.random.categorical(jax.random.fold_in(rng, t), jnp.log(w))
    return add_centre(t, i, carry)

  carry = (jnp.full((n,), jnp.inf), jnp.zeros((n,), bool),
           jnp.zeros((budget,), jnp.int32))
  carry = add_centre(0, jnp.argmax(g_sq), carry)
  _, _, picks = jax.lax.fori_loop(1, budget, pick, carry)
  return picks, jnp.sqrt(g_sq)


@register("badge")
class Badge(Strategy):
  """A pick's score is the norm of its gradient embedding."""

  requires = Requires(features=True, logits=True)

  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    picks, norms = badge_select(pool.logits, pool.features, budget, rng)
    picks = np.asarray(picks, dtype=np.int64)
    norms = np.asarray(norms)
    return Selection(picks, {"gnorm_pool_mean": float(norms.mean()),
                             "gnorm_picked_mean": float(norms[picks].mean()),
                             "gnorm_max": float(norms.max())},
                     norms[picks].astype(np.float32))
