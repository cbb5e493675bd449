"""`uncertainty_mmd`: the k-means cluster-margin + MMD method.

Per selection, over the N scored candidates (U = `pool.features`) and the
labeled set (L = `pool.labeled_features`):

  u = cluster-margin uncertainty (scores/cluster_margin.py, through
      strategies/uncertainty_term.py, which `cluster_margin` shares):
      k-means with K = `al.k` (unset: number of classes) clusters, inside
      each consecutive minibatch of `al.batch` candidates
      (`al.u_scope="batch"`, the method's default) or over all candidates
      ("global"); `al.transform`.
  t = an MMD term (scores/mmd.py), `al.term`:
      per_sample  the method's (1/R) sum_r MMD^2({x}, L_r), R = `al.repeats`
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
compilation between MMD variants), and, with the median bandwidth, two small
ones before the rest: the sampled points (per pool size) and their median
(once per feature dimension). The labeled features are zero-padded
and masked. `al.pad_labeled = "bucket"` pads to a bucket (a power of two up
to `al.block`, then a multiple of it), so the growing labeled set recompiles
only when it crosses a bucket; with the CIFAR-10 protocol's +2,500 per
cycle that is every cycle. `"run"` pads to the largest labeled set of the run
(`Pool.labeled_capacity`): one compilation for all cycles, at the cost of
kernel sums over padding rows in early cycles (exact witness/decrease;
the per-sample term only draws from real rows). Compiling costs seconds on
a GPU and the sums milliseconds, so configs/cifar10.py uses "run".
`al.lam`, `al.sign`, `al.normalize`, `al.sigma` and `al.greedy_weight` are
traced, so sweeping them does not recompile.

Stats logged per selection: raw (before normalisation and sign) u_min,
u_median, u_max, mmd_min, mmd_median, mmd_max, the sigma used, and in
greedy mode mmd2_before = MMD^2(L, U) and mmd2_after = MMD^2(L + Q, U).
`UncertaintyMMD.raw_terms` returns the raw u and t themselves, from the
same compiled program `select` runs.

Field values and the rules between fields (greedy mode needs
`al.mmd_scope="global"`, ...) are checked by `config.check_al`; `check`
here covers only what depends on the sizes: the budget, K against the
candidates and `al.batch`, the pre-filter against the candidates, and the
labeled count the MMD term needs.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_al import stream
from jax_al.errors import ConfigError
from jax_al.scores import greedy
from jax_al.scores import mmd
from jax_al.scores import normalize as norm_lib
from jax_al.strategies.base import (PADS, Pool, Refusal, Requires, Selection, Strategy, register,
                                    score_stats)
# Also exported from here: the uncertainty pieces lived in this module before
# cluster_margin and this strategy shared them.
from jax_al.strategies.uncertainty_term import (SCOPES, UTILITIES, USettings,
                                                UncertaintyTerm,
                                                softmax_utility, uncertainty)

MODES = ("topk", "greedy")
APPROX = ("exact", "rff")

__all__ = ["APPROX", "Knobs", "MODES", "PADS", "SCOPES", "Settings", "Step",
           "USettings", "UTILITIES", "UncertaintyMMD", "labeled_bucket", "median_points",
           "median_sigma", "mmd_term", "select_indices", "softmax_utility", "uncertainty"]


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


def labeled_bucket(m: int, block: int) -> int:
  """Rows the labeled features are padded to: fewer distinct shapes."""
  if m <= block:
    return min(block, 1 << max(m - 1, 1).bit_length())
  return -(-m // block) * block


def mmd_term(features: jax.Array, centre: jax.Array, l: jax.Array,
             l_count: jax.Array, sigma: jax.Array, rng: jax.Array,
             freqs: jax.Array | None, s: Settings) -> jax.Array:
  """[N] raw MMD term `s.term` under the settings' scope, of the candidates
  x = features - centre (l is centred already).

  The per-sample term centres x per minibatch, and the witness and decrease
  with random Fourier features over all candidates per block of rows: no
  centred copy of the pool. The exact witness and decrease centre it whole.
  """
  kw = dict(l_count=l_count,
            batch=s.u.batch if s.mmd_scope == "batch" else None,
            min_size=s.u.k, block=s.block, freqs=freqs)
  if s.term == "per_sample":
    return mmd.per_sample_mmd2(features, l, sigma, rng, repeats=s.repeats,
                               draw_size=s.draw_size, unbiased=s.unbiased,
                               centre=centre, **kw)
  if s.term == "witness":
    return mmd.witness(features, l, sigma, centre=centre, **kw)
  return mmd.mmd2_decrease(features, l, sigma, unbiased=s.unbiased, centre=centre, **kw)


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
                   s: Settings, budget: int
                   ) -> tuple[jax.Array, dict[str, jax.Array],
                              dict[str, jax.Array]]:
  """The selection given the uncertainty, jitted.

  Args:
    features: [N, d] candidates.
    u: [N] raw uncertainty (`uncertainty`).
    labeled: [Mb, d] labeled features, the first `l_count` real.
    l_count: int32 number of real labeled rows.
    rng: key.
    knobs: traced settings; `knobs.sigma` is the kernel bandwidth, which
      with `Settings.median_sigma` the caller sets to `median_sigma`'s.
    s: static settings (`median_sigma` is not read here).
    budget: static number of picks.

  Returns:
    ([budget] int32 distinct indices into features, dict of scalar stats,
    the raw MMD terms: {"t": [N], "sigma": scalar}, empty without the MMD).
    In greedy mode t is the decrease each candidate would give as the first
    pick (`GreedyResult.first_gain`).
  """
  # The candidates are x = features - centre throughout; x is formed whole
  # only where a term needs it whole, never just to be sliced or sampled.
  centre = jnp.mean(features, axis=0)
  l = labeled - centre
  k_sigma, k_rff, k_mmd = jax.random.split(rng, 3)
  stats = score_stats("u", u)
  if not s.use_mmd:
    return jax.lax.top_k(u, budget)[1], stats, {}

  del k_sigma  # the caller's median bandwidth (`median_sigma`) drew with it
  sigma = knobs.sigma
  freqs = (mmd.rff_frequencies(k_rff, features.shape[1], s.rff_dim, sigma)
           if s.approx == "rff" else None)
  u_norm = norm_lib.normalize_indexed(u, knobs.normalize)
  if s.mode == "greedy":
    allowed = None
    if s.prefilter:
      top = jax.lax.top_k(u, s.prefilter)[1]
      allowed = jnp.zeros(u.shape, bool).at[top].set(True)
    res = greedy.greedy_mmd(
        features - centre, l, sigma, budget, l_count=l_count, utility=u_norm,
        weight=knobs.greedy_weight, normalize=knobs.normalize,
        unbiased=s.unbiased,
        block=s.block, freqs=freqs, allowed=allowed)
    t, idx = res.first_gain, res.indices
    stats.update(mmd2_before=res.mmd2_before, mmd2_after=res.mmd2_after)
  else:
    t = mmd_term(features, centre, l, l_count, sigma, k_mmd, freqs, s)
    idx = jax.lax.top_k(_combined(u_norm, t, knobs), budget)[1]
  stats.update(score_stats("mmd", t), sigma=sigma)
  return idx, stats, {"t": t, "sigma": sigma}


def median_points(features: jax.Array, labeled: jax.Array, l_count: jax.Array,
                  rng: jax.Array) -> tuple[jax.Array, jax.Array | None, jax.Array]:
  """The rows of [x; l] the median heuristic reads (padding left out), from
  the rows it samples, not from a concatenated copy of the pool: (points,
  ids, ok) for `mmd.median_sigma_of`. x = features - their mean, l =
  labeled - that mean; `rng` is `select_indices`' sigma key."""
  centre = jnp.mean(features, axis=0)
  l = labeled - centre
  n = features.shape[0]
  ids, ok = _median_ids(n, l, l_count, rng)
  xg = features if ids is None else features[jnp.minimum(ids, n - 1)]
  return _points_of_rows(xg, ids, l, centre, n), ids, ok


def _median_ids(n: int, l: jax.Array, l_count: jax.Array, rng: jax.Array):
  """`mmd.median_rows` over the rows of [x; l] (n candidates, then l's real rows)."""
  weights = jnp.concatenate([jnp.ones(n), (jnp.arange(l.shape[0]) < l_count) * 1.0])
  return mmd.median_rows(n + l.shape[0], rng, weights=weights)


def _points_of_rows(xg, ids, l, centre, n: int) -> jax.Array:
  """The median's points from the candidate rows drawn (`xg`: x[min(ids, n -
  1)], or all of x when ids is None) and the labeled ones."""
  if ids is None:
    return jnp.concatenate([xg - centre, l])
  return jnp.where((ids < n)[:, None], xg - centre, l[jnp.clip(ids - n, 0, l.shape[0] - 1)])


# Two programs, not part of `select_indices`: the points' depends on the pool's
# size, the median's only on theirs (1,024 x d), so one compilation of it
# serves every cycle and every pool size (0.6 s of each select_indices
# compilation before).
_median_points = jax.jit(median_points)
_median_sigma_of = jax.jit(mmd.median_sigma_of)


def median_sigma(features: jax.Array, labeled: jax.Array, l_count: jax.Array,
                 rng: jax.Array) -> jax.Array:
  """The median heuristic's bandwidth over the candidates and the real
  labeled rows, as `select_indices` uses it; `rng` is the selection's key."""
  k_sigma = jax.random.split(rng, 3)[0]
  return _median_sigma_of(*_median_points(features, labeled, l_count, k_sigma))


class Step(NamedTuple):
  """Everything one selection step computes (`UncertaintyMMD.step`).

  Attributes:
    indices: [budget] int64 NumPy positions into `pool.features`.
    stats: the floats `select` logs.
    u: [N] raw uncertainty (device array).
    t: [N] raw MMD term before normalisation and sign, or None without the
      MMD (`al.use_mmd=False`).
    sigma: the kernel bandwidth used (scalar device array), or None.
  """

  indices: np.ndarray
  stats: dict[str, float]
  u: jax.Array
  t: jax.Array | None
  sigma: jax.Array | None


@register("uncertainty_mmd")
class UncertaintyMMD(Strategy):
  """Cluster-margin uncertainty plus an MMD term; see the module docstring.

  A pick's score (`Selection.scores`) is its combined score
  u_norm + lam * sign * t_norm in top-k mode, and its normalised
  uncertainty u_norm in greedy mode (its MMD gain depends on the picks
  before it); without the MMD term it is the raw uncertainty u.
  """

  requires = Requires(features=True, logits=True, labeled=True)

  def __init__(self, cfg: Any):
    super().__init__(cfg)
    self.uncertainty = UncertaintyTerm(cfg)
    # The MMD terms are over features; u reads features or logits.
    self.requires = Requires(features=True, logits=self.uncertainty.requires().logits,
                             labeled=bool(cfg.use_mmd))

  def labeled_needed(self, s: Settings) -> int:
    """The fewest labeled points the MMD term is defined for (0 without it):
    the unbiased within-L mean of witness, decrease and greedy needs 2."""
    if not s.use_mmd:
      return 0
    return 2 if s.unbiased and s.term != "per_sample" else 1

  def check(self, num_candidates: int, budget: int, num_classes: int,
            num_labeled: int | None = None) -> None:
    super().check(num_candidates, budget, num_classes, num_labeled)
    self.uncertainty.check(num_candidates, num_classes)
    prefilter = self.cfg.prefilter
    if prefilter and not budget <= prefilter <= num_candidates:
      raise ConfigError("al.prefilter", prefilter,
                        f"keep between al.budget = {budget} and the "
                        f"{num_candidates} scored candidates, or 0 for all")
    if num_labeled is not None:
      need = self.labeled_needed(self.settings(num_classes))
      if num_labeled < need:
        raise ConfigError("al.initial", num_labeled, f"the MMD term needs at "
                          f"least {need} labeled points; raise al.initial")

  def settings(self, num_classes: int) -> Settings:
    """The static settings for `config.al` (a valid one: `config.check_al`).

    Fields a configuration does not use are set to fixed values, so that
    configurations differing only in unused fields share one compilation.
    """
    c = self.cfg
    use_mmd = bool(c.use_mmd)
    s = Settings(
        u=self.uncertainty.settings(num_classes), mmd_scope=c.mmd_scope,
        term=c.term, mode=c.mode, use_mmd=use_mmd,
        repeats=int(c.repeats), draw_size=int(c.draw_size),
        median_sigma=float(c.sigma) <= 0.0,
        unbiased=c.estimator == "unbiased", block=int(c.block),
        approx=c.approx, rff_dim=int(c.rff_dim),
        prefilter=int(c.prefilter) if c.mode == "greedy" else 0)
    if not use_mmd:
      s = s._replace(mmd_scope="", term="", mode="topk", repeats=0,
                     draw_size=0, median_sigma=False, unbiased=False,
                     block=0, approx="", rff_dim=0, prefilter=0)
    elif s.mode == "greedy":
      s = s._replace(term="", repeats=0, draw_size=0)
    if s.approx != "rff":
      s = s._replace(rff_dim=0)
    return s

  def knobs(self) -> Knobs:
    """The traced settings for `config.al`."""
    c = self.cfg
    return Knobs(
        lam=jnp.float32(c.lam), sign=jnp.float32(c.sign),
        normalize=jnp.int32(norm_lib.METHODS.index(c.normalize)),
        sigma=jnp.float32(c.sigma), greedy_weight=jnp.float32(c.greedy_weight))

  def padded_labeled(self, pool: Pool, s: Settings) -> jax.Array:
    """The labeled features zero-padded to the rows `al.pad_labeled` asks for.

    Rows past `pool.labeled_features.shape[0]` are padding (masked by the
    count). Without an MMD term the labeled set is unused: a fixed [1, d]
    dummy keeps the compiled shape independent of its size.
    """
    if not s.use_mmd:
      return jnp.zeros((1, pool.labeled_features.shape[1]), pool.features.dtype)
    return pool.padded_labeled(labeled_bucket(pool.labeled_rows(self.cfg.pad_labeled), s.block))

  def step(self, pool: Pool, budget: int, rng: jax.Array) -> Step:
    """One selection step with all it computes; `select` and `raw_terms`
    both read it, so the terms and the picks cannot drift apart."""
    m = int(pool.labeled_features.shape[0])
    self.check(pool.size, budget, pool.num_classes, m)
    s = self.settings(pool.num_classes)
    labeled = self.padded_labeled(pool, s)
    k_u, k_rest = jax.random.split(rng)
    u = self.uncertainty(pool, k_u)
    knobs = self.knobs()
    if s.use_mmd and s.median_sigma:
      knobs = knobs._replace(sigma=median_sigma(pool.features, labeled, jnp.int32(m), k_rest))
    idx, stats, terms = select_indices(pool.features, u, labeled, jnp.int32(m),
                                       k_rest, knobs, s=s._replace(median_sigma=False),
                                       budget=int(budget))
    return Step(np.asarray(idx, dtype=np.int64),
                {k: float(v) for k, v in stats.items()}, u,
                terms.get("t"), terms.get("sigma"))

  def raw_terms(self, pool: Pool, rng: jax.Array, budget: int = 1
                ) -> dict[str, np.ndarray | float | None]:
    """The raw terms of the selection step `select(pool, budget, rng)`.

    Args:
      pool: the step's pool.
      rng: the step's key (the one `select` got).
      budget: the terms do not depend on it (top-k mode computes them before
        any pick; in greedy mode t is the first pick's gain), so the default
        1 gives the same terms; pass the step's budget to run the very
        program `select` compiled and ran (bit-identical, no new compile).

    Returns:
      {"u": [N] float32 raw uncertainty, "t": [N] float32 raw MMD term
      before normalisation and sign (None with `al.use_mmd=False`),
      "sigma": the kernel bandwidth as a float (None without the MMD)}.
      min/median/max of u and t are the u_* and mmd_* stats `select` logs.
    """
    st = self.step(pool, budget, rng)
    return {"u": np.asarray(st.u),
            "t": None if st.t is None else np.asarray(st.t),
            "sigma": None if st.sigma is None else float(st.sigma)}

  def stream_refusal(self) -> Refusal | None:
    refusal = self.uncertainty.stream_refusal()
    if refusal is not None or not self.cfg.use_mmd:
      return refusal
    if self.cfg.mode == "greedy":
      return Refusal("al.mode", "greedy", "the greedy picks read every candidate at each pick")
    if self.cfg.mmd_scope != "batch":
      return Refusal("al.mmd_scope", self.cfg.mmd_scope,
                     "the global MMD term sums over every candidate")
    return None

  def select_streamed(self, host, budget: int, rng: jax.Array) -> Selection:
    """`select` on a pool held on the host: the same program per block of
    minibatches (`jax_al.stream`), the mean summed block by block."""
    if self.stream_refusal() is not None:
      return super().select_streamed(host, budget, rng)
    m = int(host.labeled_features.shape[0])
    self.check(host.size, budget, host.num_classes, m)
    s = self.settings(host.num_classes)
    d = host.features.shape[1]
    labeled = self.padded_labeled(
        Pool(jnp.zeros((0, d)), jnp.zeros((0, 0)), host.labeled_features,
             host.labeled_logits, host.num_classes), s)
    k_u, k_rest = jax.random.split(rng)
    knobs, t, sigma = self.knobs(), None, None
    per_batch = s.use_mmd or self.uncertainty.utility == "cluster_margin"
    centre = host.mean() if per_batch else None
    blocks = self.uncertainty.blocks(host, host.num_classes) if per_batch else None
    if not s.use_mmd:
      u = self.uncertainty.streamed(host, k_u, centre, blocks)
    else:
      k_sigma, k_rff, k_mmd = jax.random.split(k_rest, 3)
      l, l_count = labeled - centre, jnp.int32(m)
      sigma = (_streamed_sigma(host, centre, l, l_count, k_sigma) if s.median_sigma
               else knobs.sigma)
      freqs = (mmd.rff_frequencies(k_rff, d, s.rff_dim, sigma)
               if s.approx == "rff" else None)
      keys_u, keys_t = (self.uncertainty.batch_keys(k, host.size, host.num_classes)
                        for k in (k_u, k_mmd))

      def both(p, ku, kt):  # u and t from one transfer of the block
        return (self.uncertainty.of_block(p, ku, centre),
                _block_term(p.features, centre, l, l_count, sigma, kt, freqs, s=s))

      u, t = stream.per_batch(host, blocks, (keys_u, keys_t), both)
      t = jnp.asarray(t)
    u = jnp.asarray(u)
    idx, stats = _streamed_top(u, t, knobs, budget=int(budget), use_mmd=s.use_mmd)
    stats = {k: float(v) for k, v in stats.items()}
    if sigma is not None:
      stats["sigma"] = float(sigma)
    scores = _pick_scores(u, t, knobs, idx, topk=s.use_mmd and s.mode == "topk",
                          normalized=s.use_mmd)
    return Selection(np.asarray(idx, np.int64), stats, np.asarray(scores))

  def select(self, pool: Pool, budget: int, rng: jax.Array) -> Selection:
    st = self.step(pool, budget, rng)
    s = self.settings(pool.num_classes)
    scores = _pick_scores(st.u, st.t, self.knobs(), jnp.asarray(st.indices),
                          topk=s.use_mmd and s.mode == "topk", normalized=s.use_mmd)
    return Selection(st.indices, st.stats, np.asarray(scores))


@functools.partial(jax.jit, static_argnames=("topk", "normalized"))
def _pick_scores(u, t, knobs: Knobs, idx, *, topk: bool, normalized: bool):
  """[budget] the picks' scores (see `UncertaintyMMD`), recomputed from the
  step's raw terms outside `select_indices`, so that its program, and so
  its picks, stay as they were."""
  if not normalized:
    return u[idx]
  u_norm = norm_lib.normalize_indexed(u, knobs.normalize)
  if not topk:
    return u_norm[idx]
  return _combined(u_norm, t, knobs)[idx]


def _combined(u_norm: jax.Array, t: jax.Array, knobs: Knobs) -> jax.Array:
  """The top-k mode's score norm(u) + lam * sign * norm(t)."""
  return u_norm + knobs.lam * knobs.sign * norm_lib.normalize_indexed(t, knobs.normalize)


# ---------------------------------------------- a pool held on the host

@functools.partial(jax.jit, static_argnames=("s",))
def _block_term(features, centre, l, l_count, sigma, keys, freqs, *, s: Settings):
  """The raw MMD term of a block of whole minibatches (`jax_al.stream`)."""
  return mmd_term(features, centre, l, l_count, sigma, keys, freqs, s)


@functools.partial(jax.jit, static_argnames=("budget", "use_mmd"))
def _streamed_top(u, t, knobs: Knobs, *, budget: int, use_mmd: bool):
  """`select_indices`' picks from the streamed raw terms, with its stats."""
  stats = score_stats("u", u)
  if not use_mmd:
    return jax.lax.top_k(u, budget)[1], stats
  stats.update(score_stats("mmd", t))
  u_norm = norm_lib.normalize_indexed(u, knobs.normalize)
  return jax.lax.top_k(_combined(u_norm, t, knobs), budget)[1], stats


_streamed_ids = jax.jit(_median_ids, static_argnums=0)
_streamed_points = jax.jit(_points_of_rows, static_argnums=4)


def _streamed_sigma(host, centre, l, l_count, key) -> jax.Array:
  """`median_sigma` with the drawn candidate rows gathered on the host."""
  n = host.size
  ids, ok = _streamed_ids(n, l, l_count, key)
  # All rows (a small pool) or the drawn ones; a labeled id reads row n - 1, unused.
  rows = np.arange(n) if ids is None else np.minimum(np.asarray(ids), n - 1)
  return _median_sigma_of(_streamed_points(host.features_of(rows), ids, l, centre, n), ids, ok)
