"""`uncertainty_mmd`: the users' cluster-margin uncertainty + MMD method.

Per selection, over the N scored candidates (U = `pool.features`) and the
labeled set (L = `pool.labeled_features`):

  u = cluster-margin uncertainty (scores/cluster_margin.py): k-means with
      K = `al.k` (unset: number of classes) clusters, inside each
      consecutive minibatch of `al.batch` candidates (`al.u_scope="batch"`,
      the users') or over all candidates ("global"); `al.transform`.
  t = an MMD term (scores/mmd.py), `al.term`:
      per_sample  the users' (1/R) sum_r MMD^2({x}, L_r), R = `al.repeats`
                  draws of `al.draw_size` labeled points;
      witness     mean_u k(x, u) - mean_l k(x, l);
      decrease    MMD^2(L, U) - MMD^2(L + {x}, U) (> 0: x brings L closer
                  to U).
      `al.mmd_scope="batch"` takes U to be the candidate's own minibatch
      (witness, decrease) or draws fresh L_r per minibatch (per_sample);
      "global" uses all candidates / one set of draws. The kernel bandwidth
      is shared by all minibatches (`al.sigma`, or the median heuristic over
      U and L once per selection), so scores of different minibatches are
      comparable in the global top-k.

  mode "topk":   score = norm(u) + lam * sign * norm(t), the `budget`
                 largest are picked (`al.normalize`, `al.lam`, `al.sign`).
  mode "greedy": picks one at a time, maximising the normalised decrease of
                 MMD^2(L + Q, U) over all candidates plus `al.greedy_weight`
                 * norm(u) (scores/greedy.py). `al.term`, `al.lam` and
                 `al.sign` do not apply; `al.mmd_scope` must be "global".
  `al.use_mmd=False`: score = u.
  `al.utility` replaces the cluster margin by a softmax score of the model's
  logits (margin: p1 - p2, negated; entropy; least_confidence: 1 - p1), and
  `al.prefilter = P > 0` restricts the greedy picks to the P candidates of
  largest u (the pre-filter of Citovsky et al., NeurIPS 2021: keep the most
  uncertain, then diversify); U stays all candidates.

Candidates and labeled points are centred on the candidates' mean first:
every quantity here is translation invariant, and smaller norms mean less
cancellation in |a|^2 + |b|^2 - 2 a.b.

Compilation. The selection is two jitted functions, the uncertainty and the
rest, each compiled once per shape and settings (sharing the k-means
compilation between MMD variants). The labeled features are zero-padded
and masked. `al.pad_labeled = "bucket"` pads to a bucket (a power of two up
to `al.block`, then a multiple of it), so the growing labeled set recompiles
only when it crosses a bucket; with the users' +2,500 per cycle that is
every cycle. `"run"` pads to the largest labeled set of the run
(`Pool.labeled_capacity`): one compilation for all cycles, at the cost of
kernel sums over padding rows in early cycles (exact witness/decrease;
the per-sample term only draws from real rows). Compiling costs seconds on
a GPU and the sums milliseconds, so configs/cifar10.py uses "run".
`al.lam`, `al.sign`, `al.normalize`, `al.sigma` and `al.greedy_weight` are
traced, so sweeping them does not recompile.

Stats logged per selection: raw (before normalisation and sign) u_min,
u_median, u_max, mmd_min, mmd_median, mmd_max, the sigma used, and in
greedy mode mmd2_before = MMD^2(L, U) and mmd2_after = MMD^2(L + Q, U).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_al.errors import ConfigError, suggest
from jax_al.scores import cluster_margin
from jax_al.scores import greedy
from jax_al.scores import kmeans
from jax_al.scores import mmd
from jax_al.scores import normalize as norm_lib
from jax_al.strategies.base import Pool, Selection, Strategy, register

SCOPES = ("batch", "global")
PADS = ("bucket", "run")
MODES = ("topk", "greedy")
APPROX = ("exact", "rff")
UTILITIES = ("cluster_margin", "margin", "entropy", "least_confidence")


class USettings(NamedTuple):
  """The static part of `config.al` the uncertainty compiles for."""

  batch: int
  k: int
  transform: str
  scope: str
  init: str
  n_init: int
  max_iter: int
  tol: float


class Settings(NamedTuple):
  """The static (hashable) part of `config.al` a selection compiles for."""

  u: USettings
  mmd_scope: str
  term: str
  mode: str
  use_mmd: bool
  repeats: int
  draw_size: int
  median_sigma: bool
  unbiased: bool
  block: int
  approx: str
  rff_dim: int
  prefilter: int = 0


def _choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ConfigError(field, value, suggest(str(value), choices))


def _int_at_least(field: str, value: Any, low: int) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
      or value < low:
    raise ConfigError(field, value, f"use an integer >= {low}")


def _float_at_least(field: str, value: Any, low: float, what: str) -> None:
  ok = (isinstance(value, (int, float, np.number))
        and not isinstance(value, bool) and math.isfinite(value)
        and value >= low)
  if not ok:
    raise ConfigError(field, value, f"use a finite number >= {low} ({what})")


def labeled_bucket(m: int, block: int) -> int:
  """Rows the labeled features are padded to: fewer distinct shapes."""
  if m <= block:
    return min(block, 1 << max(m - 1, 1).bit_length())
  return -(-m // block) * block


@functools.partial(jax.jit, static_argnames=("s",))
def uncertainty(features: jax.Array, rng: jax.Array, *,
                s: USettings) -> jax.Array:
  """[N] raw cluster-margin uncertainty under the settings' scope.

  Jitted on its own, not inside `select_indices`: the k-means (vmapped over
  minibatches) is the slowest part to compile, and this way every MMD
  variant with the same uncertainty settings reuses one compilation.
  """
  x = features - jnp.mean(features, axis=0)
  kw = dict(k=s.k, transform=s.transform, init=s.init, n_init=s.n_init,
            max_iter=s.max_iter, tol=s.tol)
  if s.scope == "global":
    return cluster_margin.kmeans_margin(x, rng, **kw)
  return cluster_margin.minibatch_kmeans_margin(x, rng, batch=s.batch, **kw)


@functools.partial(jax.jit, static_argnames=("kind",))
def softmax_utility(logits: jax.Array, *, kind: str) -> jax.Array:
  """[N] uncertainty from softmax(logits): larger = more uncertain."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  p = jnp.exp(logp)
  if kind == "margin":
    top2 = jax.lax.top_k(p, 2)[0]
    return top2[:, 1] - top2[:, 0]
  if kind == "least_confidence":
    return 1.0 - jnp.max(p, axis=-1)
  return -jnp.sum(p * logp, axis=-1)  # entropy


def mmd_term(x: jax.Array, l: jax.Array, l_count: jax.Array,
             sigma: jax.Array, rng: jax.Array, freqs: jax.Array | None,
             s: Settings) -> jax.Array:
  """[N] raw MMD term `s.term` under the settings' scope."""
  kw = dict(l_count=l_count,
            batch=s.u.batch if s.mmd_scope == "batch" else None,
            min_size=s.u.k, block=s.block, freqs=freqs)
  if s.term == "per_sample":
    return mmd.per_sample_mmd2(x, l, sigma, rng, repeats=s.repeats,
                               draw_size=s.draw_size, unbiased=s.unbiased,
                               **kw)
  if s.term == "witness":
    return mmd.witness(x, l, sigma, **kw)
  return mmd.mmd2_decrease(x, l, sigma, unbiased=s.unbiased, **kw)


def _summary(prefix: str, v: jax.Array) -> dict[str, jax.Array]:
  return {f"{prefix}_min": jnp.min(v), f"{prefix}_median": jnp.median(v),
          f"{prefix}_max": jnp.max(v)}


class Knobs(NamedTuple):
  """The traced part of `config.al`: changing these does not recompile."""

  lam: jax.Array
  sign: jax.Array
  normalize: jax.Array  # int32 index into normalize.METHODS
  sigma: jax.Array  # ignored when Settings.median_sigma
  greedy_weight: jax.Array


@functools.partial(jax.jit, static_argnames=("s", "budget"))
def select_indices(features: jax.Array, u: jax.Array, labeled: jax.Array,
                   l_count: jax.Array, rng: jax.Array, knobs: Knobs, *,
                   s: Settings,
                   budget: int) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The selection given the uncertainty, jitted.

  Args:
    features: [N, d] candidates.
    u: [N] raw uncertainty (`uncertainty`).
    labeled: [Mb, d] labeled features, the first `l_count` real.
    l_count: int32 number of real labeled rows.
    rng: key.
    knobs: traced settings.
    s: static settings.
    budget: static number of picks.

  Returns:
    ([budget] int32 distinct indices into features, dict of scalar stats).
  """
  centre = jnp.mean(features, axis=0)
  x, l = features - centre, labeled - centre
  k_sigma, k_rff, k_mmd = jax.random.split(rng, 3)
  stats = _summary("u", u)
  if not s.use_mmd:
    return jax.lax.top_k(u, budget)[1], stats

  sigma = knobs.sigma
  if s.median_sigma:
    weights = jnp.concatenate(
        [jnp.ones(x.shape[0]), (jnp.arange(l.shape[0]) < l_count) * 1.0])
    sigma = mmd.median_sigma(jnp.concatenate([x, l]), k_sigma, weights=weights)
  freqs = (mmd.rff_frequencies(k_rff, x.shape[1], s.rff_dim, sigma)
           if s.approx == "rff" else None)
  u_norm = norm_lib.normalize_indexed(u, knobs.normalize)
  if s.mode == "greedy":
    allowed = None
    if s.prefilter:
      top = jax.lax.top_k(u, s.prefilter)[1]
      allowed = jnp.zeros(u.shape, bool).at[top].set(True)
    res = greedy.greedy_mmd(
        x, l, sigma, budget, l_count=l_count, utility=u_norm,
        weight=knobs.greedy_weight, normalize=knobs.normalize,
        unbiased=s.unbiased,
        block=s.block, freqs=freqs, allowed=allowed)
    t, idx = res.first_gain, res.indices
    stats.update(mmd2_before=res.mmd2_before, mmd2_after=res.mmd2_after)
  else:
    t = mmd_term(x, l, l_count, sigma, k_mmd, freqs, s)
    score = u_norm + knobs.lam * knobs.sign * norm_lib.normalize_indexed(
        t, knobs.normalize)
    idx = jax.lax.top_k(score, budget)[1]
  stats.update(_summary("mmd", t), sigma=sigma)
  return idx, stats


@register("uncertainty_mmd")
class UncertaintyMMD(Strategy):
  """Cluster-margin uncertainty plus an MMD term; see the module docstring."""

  use_mmd_field = True  # False in subclasses that score uncertainty only.

  def _k(self, num_classes: int) -> int:
    k = self.cfg.k
    return num_classes if k is None else k

  def _utility(self) -> str:
    return self.cfg.get("utility", "cluster_margin")

  def _check_uncertainty(self, num_candidates: int, num_classes: int) -> None:
    c = self.cfg
    _choice("al.utility", self._utility(), UTILITIES)
    if self._utility() != "cluster_margin":
      return  # the k-means fields are unused
    _int_at_least("al.batch", c.batch, 1)
    _choice("al.transform", c.transform, cluster_margin.TRANSFORMS)
    _choice("al.u_scope", c.u_scope, SCOPES)
    _choice("al.kmeans.init", c.kmeans.init, kmeans.INITS)
    _int_at_least("al.kmeans.n_init", c.kmeans.n_init, 1)
    _int_at_least("al.kmeans.max_iter", c.kmeans.max_iter, 1)
    _float_at_least("al.kmeans.tol", c.kmeans.tol, 0.0, "0 = run to max_iter")
    k = self._k(num_classes)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
      raise ConfigError("al.k", k, "the cluster margin needs two nearest "
                        "centres: use an integer >= 2, or leave al.k unset "
                        "for the number of classes")
    if k > num_candidates:
      raise ConfigError("al.k", k, f"only {num_candidates} candidates are "
                        "scored; lower al.k or raise al.subset")
    if c.u_scope == "batch" and k > c.batch:
      raise ConfigError("al.k", k, f"per-batch k-means clusters minibatches "
                        f"of al.batch={c.batch} points; lower al.k, raise "
                        "al.batch or set al.u_scope='global'")

  def _check_mmd(self) -> None:
    c = self.cfg
    _choice("al.mmd_scope", c.mmd_scope, SCOPES)
    _choice("al.term", c.term, mmd.TERMS)
    if c.sign not in (1, -1) or isinstance(c.sign, bool):
      raise ConfigError("al.sign", c.sign, "use 1 (pick large MMD terms) or "
                        "-1 (pick small ones)")
    _float_at_least("al.lam", c.lam, 0.0, "flip the direction with al.sign")
    _choice("al.normalize", c.normalize, norm_lib.METHODS)
    _choice("al.mode", c.mode, MODES)
    if not isinstance(c.use_mmd, bool):
      raise ConfigError("al.use_mmd", c.use_mmd, "use True or False")
    _int_at_least("al.repeats", c.repeats, 1)
    _choice("al.estimator", c.estimator, mmd.ESTIMATORS)
    low = 2 if c.estimator == "unbiased" else 1
    _int_at_least("al.draw_size", c.draw_size, low)
    _float_at_least("al.sigma", c.sigma, 0.0, "0 = median heuristic")
    _int_at_least("al.block", c.block, 1)
    _choice("al.pad_labeled", c.pad_labeled, PADS)
    _choice("al.approx", c.approx, APPROX)
    if isinstance(c.rff_dim, bool) or not isinstance(
        c.rff_dim, (int, np.integer)) or c.rff_dim < 2 or c.rff_dim % 2:
      raise ConfigError("al.rff_dim", c.rff_dim, "use an even integer >= 2 "
                        "(cos and sin features come in pairs)")
    _float_at_least("al.greedy_weight", c.greedy_weight, 0.0,
                    "0 = pure distribution matching")
    prefilter = c.get("prefilter", 0)
    _int_at_least("al.prefilter", prefilter, 0)
    if prefilter and c.mode != "greedy":
      raise ConfigError("al.prefilter", prefilter, "the pre-filter restricts "
                        "greedy picks; set al.mode='greedy' or al.prefilter=0")
    if c.mode == "greedy":
      if not c.use_mmd:
        raise ConfigError("al.mode", c.mode, "greedy mode minimises an MMD; "
                          "set al.use_mmd=True or al.mode='topk'")
      if c.mmd_scope != "global":
        raise ConfigError("al.mmd_scope", c.mmd_scope, "greedy mode matches "
                          "L + Q to all candidates; set al.mmd_scope='global'")
      if c.normalize == "none" and c.greedy_weight > 0:
        raise ConfigError("al.normalize", c.normalize, "greedy mode adds "
                          "al.greedy_weight * uncertainty to MMD^2 decreases "
                          "~1e4 times smaller; choose minmax, zscore or rank, "
                          "or set al.greedy_weight=0")

  def check(self, num_candidates: int, budget: int, num_classes: int) -> None:
    super().check(num_candidates, budget, num_classes)
    self._check_uncertainty(num_candidates, num_classes)
    if self.use_mmd_field:
      self._check_mmd()
      prefilter = self.cfg.get("prefilter", 0)
      if prefilter and not budget <= prefilter <= num_candidates:
        raise ConfigError("al.prefilter", prefilter,
                          f"keep between al.budget = {budget} and the "
                          f"{num_candidates} scored candidates, or 0 for all")

  def settings(self, num_classes: int) -> Settings:
    """The static settings for `config.al` (call `check` first).

    Fields a configuration does not use are set to fixed values, so that
    configurations differing only in unused fields share one compilation.
    """
    c = self.cfg
    use_mmd = bool(c.use_mmd) and self.use_mmd_field
    u = USettings(
        batch=int(c.batch), k=int(self._k(num_classes)), transform=c.transform,
        scope=c.u_scope, init=c.kmeans.init, n_init=int(c.kmeans.n_init),
        max_iter=int(c.kmeans.max_iter), tol=float(c.kmeans.tol))
    s = Settings(
        u=u, mmd_scope=c.mmd_scope, term=c.term, mode=c.mode, use_mmd=use_mmd,
        repeats=int(c.repeats), draw_size=int(c.draw_size),
        median_sigma=float(c.sigma) <= 0.0,
        unbiased=c.estimator == "unbiased", block=int(c.block),
        approx=c.approx, rff_dim=int(c.rff_dim),
        prefilter=int(c.get("prefilter", 0)) if c.mode == "greedy" else 0)
    if not use_mmd:
      s = s._replace(mmd_scope="", term="", mode="topk", repeats=0,
                     draw_size=0, median_sigma=False, unbiased=False,
                     block=0, approx="", rff_dim=0, prefilter=0)
    elif s.mode == "greedy":
      s = s._replace(term="", repeats=0, draw_size=0)
    if s.approx != "rff":
      s = s._replace(rff_dim=0)
    return s

  def padded_labeled(self, pool: Pool, s: Settings) -> jax.Array:
    """The labeled features zero-padded to the rows `al.pad_labeled` asks for.

    Rows past `pool.labeled_features.shape[0]` are padding (masked by the
    count). Without an MMD term the labeled set is unused: a fixed [1, d]
    dummy keeps the compiled shape independent of its size.
    """
    if not s.use_mmd:
      return jnp.zeros((1, pool.labeled_features.shape[1]), pool.features.dtype)
    return pool.padded_labeled(labeled_bucket(pool.labeled_rows(self.cfg.pad_labeled), s.block))

  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    self.check(pool.size, budget, pool.num_classes)
    s = self.settings(pool.num_classes)
    m = pool.labeled_features.shape[0]
    if s.use_mmd:
      need = 2 if s.unbiased and s.term != "per_sample" else 1
      if m < need:
        raise ConfigError("al.initial", m, f"the MMD term needs at least "
                          f"{need} labeled points; raise al.initial")
    labeled = self.padded_labeled(pool, s)
    c = self.cfg
    knobs = Knobs(
        lam=jnp.float32(c.lam), sign=jnp.float32(c.sign),
        normalize=jnp.int32(norm_lib.METHODS.index(c.normalize)
                            if self.use_mmd_field else 0),
        sigma=jnp.float32(c.sigma), greedy_weight=jnp.float32(c.greedy_weight))
    k_u, k_rest = jax.random.split(rng)
    if self._utility() == "cluster_margin":
      u = uncertainty(pool.features, k_u, s=s.u)
    else:
      u = softmax_utility(pool.logits, kind=self._utility())
    idx, stats = select_indices(pool.features, u, labeled, jnp.int32(m),
                                k_rest, knobs, s=s, budget=int(budget))
    return Selection(np.asarray(idx, dtype=np.int64),
                     {k: float(v) for k, v in stats.items()})
