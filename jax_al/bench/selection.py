"""Selection benchmark: JAX score kernels vs NumPy / scikit-learn, same math.

    python -m jax_al.bench selection --sizes 1000,5000,45000 --dim 512 \
        --labeled 20000 --json out.json
    python -m jax_al.bench selection --quick

For every pool size N (candidates; d = --dim features from a Gaussian
mixture, M = --labeled labeled points drawn with different cluster
proportions, so the MMD terms carry signal) it times, after compilation and
with `block_until_ready`, the median of --repeats runs (one run when a run
takes longer than --slow seconds) of:

  kmeans_global      whole-pool k-means + cluster margin   vs sklearn KMeans
  kmeans_batch       per-minibatch (128) k-means + margin  vs sklearn per batch
  witness_exact      mean_u k(x,u) - mean_l k(x,l)         vs NumPy (BLAS)
  witness_rff        the same with random Fourier features vs NumPy exact
  per_sample_exact   (1/R) sum_r MMD^2({x}, L_r)           vs NumPy
  per_sample_rff
  decrease_exact     MMD^2(L,U) - MMD^2(L+{x},U)           vs NumPy
  decrease_rff
  greedy_exact       greedy MMD^2(L+Q,U) batch of --budget vs NumPy loop
  greedy_rff
  preset             the whole `uncertainty_mmd` default preset
                     (strategy.select) on a --preset-n subset vs sklearn +
                     NumPy doing the same steps

per_sample is the per-sample term of the k-means cluster-margin + MMD method
(`uncertainty_mmd`): R = 5 random draws L_r of 128 labeled points. The
preset row takes the `al` fields of --config (default: configs/cifar10.py of
the source checkout) with al.strategy = uncertainty_mmd.

The NumPy references use the same sigma, the same draws and the same blocked
float32 arithmetic through BLAS. k-means references use sklearn's Lloyd
with random init, one init and the same iteration cap; iteration counts to
convergence can differ, so those ratios are indicative. Quadratic exact
variants (decrease, greedy) and their references run only up to
--exact-max-n; witness_exact always runs, since it is what the RFF variants
are measured against. RFF rows report the Spearman rank correlation with the
exact scores and the overlap of their top --budget sets (greedy: of the
picked sets).
"""

from __future__ import annotations

import argparse
import functools
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from jax_al import usage
from jax_al.bench import common
from jax_al.scores import cluster_margin, greedy, mmd

DEFAULTS = {  # (full, --quick)
    "sizes": ("1000,5000,45000", "500,2000"),  # ~5 min on a 2-core CPU
    "labeled": (20000, 2000),
    "preset_n": (10000, 2000),
}
VARIANTS = ("kmeans_global", "kmeans_batch", "witness_exact", "witness_rff",
            "per_sample_exact", "per_sample_rff", "decrease_exact",
            "decrease_rff", "greedy_exact", "greedy_rff", "preset")


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog=usage.argparse_prog("python -m jax_al.bench selection"),
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--sizes", help="comma-separated pool sizes N, measured in this order "
                 f"(default {DEFAULTS['sizes'][0]}; quick {DEFAULTS['sizes'][1]})")
  p.add_argument("--dim", type=int, default=512, help="feature dimension")
  p.add_argument("--labeled", type=int, help="labeled points M (20000; quick 2000)")
  p.add_argument("--budget", type=int, default=2500,
                 help="picks (top-k overlap, greedy); capped at N // 4")
  p.add_argument("--k", type=int, default=10, help="k-means clusters")
  p.add_argument("--batch", type=int, default=128, help="per-batch minibatch size")
  p.add_argument("--max-iter", type=int, default=100, help="Lloyd iteration cap")
  p.add_argument("--repeats", type=int, default=3, help="timed runs (median)")
  p.add_argument("--slow", type=float, default=5.0,
                 help="time a variant once when one run takes longer (seconds)")
  p.add_argument("--rff-dim", type=int, default=2048, help="random features D")
  p.add_argument("--block", type=int, default=1024, help="kernel block size (config al.block)")
  p.add_argument("--exact-max-n", type=int, default=5000,
                 help="largest N for decrease/greedy exact and their references")
  p.add_argument("--preset-n", type=int, help="candidates of the preset row "
                 "(10000; quick 2000)")
  p.add_argument("--variants", default=",".join(VARIANTS),
                 help="comma-separated subset of " + ", ".join(VARIANTS))
  p.add_argument("--no-reference", action="store_true",
                 help="skip the NumPy / scikit-learn timings")
  p.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
  p.add_argument("--config", help="config file[:preset] whose al fields the preset row "
                 "uses (default: configs/cifar10.py of the source checkout)")
  p.add_argument("--json", help="write the results here (after every row)")
  p.add_argument("--seed", type=int, default=0)
  return p


# ------------------------------------------------------------------- data


def mixture(n: int, m: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Candidates [n, dim] and labeled points [m, dim] from a 10-component mixture.

  The labeled set over-represents the first components (as a labeled set
  grown by an uncertainty strategy would), so witness/decrease vary.
  """
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(10, dim)).astype(np.float32) * 2.0
  pu = np.full(10, 0.1)
  pl = np.linspace(2.0, 0.2, 10)
  pl /= pl.sum()

  def draw(size, p):
    comp = rng.choice(10, size=size, p=p)
    return centres[comp] + rng.normal(size=(size, dim)).astype(np.float32)

  return draw(n, pu).astype(np.float32), draw(m, pl).astype(np.float32)


# -------------------------------------------------------- NumPy references


def np_kernel_matvec(x, y, w, sigma, block):
  """sum_j k(x_i, y_j) w_j in float32 blocks through BLAS."""
  g = np.float32(1.0 / (2.0 * sigma**2))
  y_sq = (y * y).sum(1)
  out = np.zeros((x.shape[0],) + w.shape[1:], np.float32)
  for a in range(0, x.shape[0], block):
    xb = x[a:a + block]
    xb_sq = (xb * xb).sum(1)[:, None]
    for b in range(0, y.shape[0], block):
      d2 = xb @ y[b:b + block].T
      d2 *= -2.0
      d2 += xb_sq
      d2 += y_sq[None, b:b + block]
      np.maximum(d2, 0.0, out=d2)
      d2 *= -g
      np.exp(d2, out=d2)
      out[a:a + block] += d2 @ w[b:b + block]
  return out


def np_kernel_sum(x, sigma, block):
  """sum_{i,j} k(x_i, x_j) over blocks on or above the diagonal, as the JAX one."""
  g = np.float32(1.0 / (2.0 * sigma**2))
  sq = (x * x).sum(1)
  total = 0.0
  for a in range(0, len(x), block):
    for b in range(a, len(x), block):
      d2 = x[a:a + block] @ x[b:b + block].T
      d2 *= -2.0
      d2 += sq[a:a + block, None]
      d2 += sq[None, b:b + block]
      np.maximum(d2, 0.0, out=d2)
      d2 *= -g
      np.exp(d2, out=d2)
      total += float(d2.sum()) * (1 if a == b else 2)
  return total


def np_witness(x, l, sigma, block):
  s_u = np_kernel_matvec(x, x, np.ones(len(x), np.float32), sigma, block)
  s_l = np_kernel_matvec(x, l, np.ones(len(l), np.float32), sigma, block)
  return s_u / len(x) - s_l / len(l)


def np_decrease(x, l, sigma, block):
  n, m = len(x), len(l)
  s_u = np_kernel_matvec(x, x, np.ones(n, np.float32), sigma, block)
  s_l = np_kernel_matvec(x, l, np.ones(m, np.float32), sigma, block)
  sum_ll = np_kernel_sum(l, sigma, block)
  kll, klu = sum_ll / m**2, s_l.sum() / (m * n)
  return (((2 * m + 1) * kll - 2 * s_l - 1) / (m + 1)**2
          + 2 * (s_u / n - klu) / (m + 1))


def np_per_sample(x, draws, sigma, block):
  r, s, d = draws.shape
  w = np.repeat(np.eye(r, dtype=np.float32), s, axis=0) / s
  mean_x = np_kernel_matvec(x, draws.reshape(r * s, d), w, sigma, block)
  kll = np.mean([np_kernel_matvec(p, p, np.ones(s, np.float32), sigma,
                                  block).sum() / s**2 for p in draws])
  return 1.0 + kll - 2.0 * mean_x.mean(1)


def np_greedy(x, l, sigma, budget, block):
  n, m = len(x), len(l)
  g = np.float32(1.0 / (2.0 * sigma**2))
  s_u = np_kernel_matvec(x, x, np.ones(n, np.float32), sigma, block)
  s_l = np_kernel_matvec(x, l, np.ones(m, np.float32), sigma, block)
  sum_ll = np_kernel_sum(l, sigma, block)
  sum_lu = s_l.sum()
  x_sq = (x * x).sum(1)
  picked = np.zeros(n, bool)
  out = []
  for _ in range(budget):
    kll, klu = sum_ll / m**2, sum_lu / (m * n)
    gain = (((2 * m + 1) * kll - 2 * s_l - 1) / (m + 1)**2
            + 2 * (s_u / n - klu) / (m + 1))
    gain[picked] = -np.inf
    i = int(np.argmax(gain))
    row = np.exp(-g * np.maximum(x_sq + x_sq[i] - 2 * (x @ x[i]), 0))
    sum_ll += 2 * s_l[i] + 1
    sum_lu += s_u[i]
    m += 1
    s_l += row
    picked[i] = True
    out.append(i)
  return np.array(out)


def np_margin(x, centres, transform="inverse"):
  d = np.sqrt(np.maximum(((x[:, None, :] - centres[None]) ** 2).sum(-1), 0))
  d.sort(axis=1)
  gap = d[:, 1] - d[:, 0]
  return 10.0 / (np.abs(gap) + cluster_margin.EPS) if transform == "inverse" else -gap


def sk_kmeans_margin(x, k, max_iter, seed):
  from sklearn.cluster import KMeans
  km = KMeans(n_clusters=k, init="random", n_init=1, max_iter=max_iter,
              algorithm="lloyd", random_state=seed).fit(x)
  return np_margin(x, km.cluster_centers_), km.n_iter_


def sk_batch_margin(x, k, batch, max_iter, seed):
  out = []
  for a in range(0, len(x), batch):
    xb = x[a:a + batch]
    if len(xb) < k:  # merged into the previous batch, as the JAX layout does
      xb = x[a - batch:]
      u, _ = sk_kmeans_margin(xb, k, max_iter, seed)
      out[-1] = u[:batch]
      out.append(u[batch:])
      continue
    out.append(sk_kmeans_margin(xb, k, max_iter, seed)[0])
  return np.concatenate(out)


# ------------------------------------------------------------------ timing


def time_fn(fn: Callable[[], Any], repeats: int, slow: float) -> tuple[Any, float]:
  """Median seconds of `repeats` runs of fn (one run if it is slow)."""
  out, t = common.timed(fn)
  times = [t]
  if t < slow:
    for _ in range(repeats - 1):
      out, t = common.timed(fn)
      times.append(t)
  return out, common.median(times)


def compiled(fn: Callable, *args) -> tuple[Callable, float]:
  """AOT-compiles jit(fn) for args; returns (runner, compile seconds)."""
  t0 = time.perf_counter()
  exe = jax.jit(fn).lower(*args).compile()
  return functools.partial(exe, *args), time.perf_counter() - t0


def overlap(a: np.ndarray, b: np.ndarray, budget: int) -> float:
  top_a = set(np.argsort(-a, kind="stable")[:budget].tolist())
  top_b = set(np.argsort(-b, kind="stable")[:budget].tolist())
  return len(top_a & top_b) / budget


# ------------------------------------------------------------------- main


def bench_size(n: int, args, results: common.Results, variants) -> list[dict]:
  x_np, l_np = mixture(n, args.labeled, args.dim, args.seed)
  centre = x_np.mean(0)  # as the strategy does; kernels are shift invariant
  x_np, l_np = x_np - centre, l_np - centre
  x, l = jnp.asarray(x_np), jnp.asarray(l_np)
  key = jax.random.key(args.seed)
  sigma = float(jax.jit(mmd.median_sigma)(jnp.concatenate([x, l]), key))
  budget = max(1, min(args.budget, n // 4))
  freqs = mmd.rff_frequencies(jax.random.key(1), args.dim, args.rff_dim, sigma)
  blk, rows, exact = args.block, [], {}
  draws_idx = np.asarray(jax.random.randint(key, (5, 128), 0, len(l_np)))

  def record(variant, jax_s, ref_s, compile_s, **extra):
    row = dict(variant=variant, n=n, m=len(l_np), dim=args.dim,
               jax_ms=jax_s * 1e3, ref_ms=None if ref_s is None else ref_s * 1e3,
               ratio=None if ref_s is None else ref_s / jax_s,
               compile_s=compile_s, sigma=sigma, budget=budget, **extra)
    rows.append(row)
    results.add("selection", row)
    print_row(row)

  def ref(fn):
    if args.no_reference:
      return None, None
    return time_fn(fn, args.repeats, args.slow)

  km = dict(k=args.k, n_init=1, max_iter=args.max_iter, init="random")
  if "kmeans_global" in variants:
    run, c = compiled(lambda x, r: cluster_margin.kmeans_margin(x, r, **km), x, key)
    out, t = time_fn(run, args.repeats, args.slow)
    ref_out, rt = ref(lambda: sk_kmeans_margin(x_np, args.k, args.max_iter, 0))
    record("kmeans_global", t, rt, c,
           sk_iterations=None if ref_out is None else int(ref_out[1]))
  if "kmeans_batch" in variants:
    run, c = compiled(lambda x, r: cluster_margin.minibatch_kmeans_margin(
        x, r, batch=args.batch, **km), x, key)
    _, t = time_fn(run, args.repeats, args.slow)
    _, rt = ref(lambda: sk_batch_margin(x_np, args.k, args.batch, args.max_iter, 0))
    record("kmeans_batch", t, rt, c)

  def mmd_pair(name, fn, np_fn, run_exact=True, ref_set=l):
    """Times fn exact and with RFF; the RFF row is compared with exact.

    The reference set goes in as an argument, not a closure constant, which
    XLA would constant-fold at compile time.
    """
    if f"{name}_exact" in variants and run_exact:
      run, c = compiled(lambda x, l: fn(x, l, None), x, ref_set)
      out, t = time_fn(run, args.repeats, args.slow)
      exact[name] = np.asarray(out)
      ref_out, rt = ref(np_fn) if np_fn is not None else (None, None)
      check = {}
      if ref_out is not None and name == "greedy":
        check["ref_set_overlap"] = len(
            set(np.asarray(ref_out).tolist()) & set(exact[name].tolist())) / budget
      elif ref_out is not None:
        check["max_abs_diff_vs_ref"] = float(
            np.max(np.abs(np.asarray(ref_out) - exact[name])))
      record(f"{name}_exact", t, rt, c, **check)
    if f"{name}_rff" in variants:
      run, c = compiled(lambda x, l, f: fn(x, l, f), x, ref_set, freqs)
      out, t = time_fn(run, args.repeats, args.slow)
      extra = dict(rff_dim=args.rff_dim)
      if name in exact:
        e, a = exact[name], np.asarray(out)
        if name == "greedy":
          extra["set_overlap"] = len(set(e.tolist()) & set(a.tolist())) / budget
        else:
          extra["spearman"] = float(scipy.stats.spearmanr(e, a).statistic)
          extra["top_overlap"] = overlap(e, a, budget)
        extra["speedup_vs_jax_exact"] = next(
            r["jax_ms"] for r in rows if r["variant"] == f"{name}_exact") / (t * 1e3)
      # The reference is the exact NumPy computation of the same quantity.
      ref_row = next((r for r in rows if r["variant"] == f"{name}_exact"), None)
      rt = None if ref_row is None or ref_row["ref_ms"] is None else ref_row["ref_ms"] / 1e3
      record(f"{name}_rff", t, rt, c, **extra)

  small = n <= args.exact_max_n
  mmd_pair("witness",
           lambda x, l, f: mmd.witness(x, l, sigma, block=blk, freqs=f),
           lambda: np_witness(x_np, l_np, sigma, blk))
  mmd_pair("per_sample",
           lambda x, d, f: (mmd.per_sample_from_draws(x, d, sigma, block=blk)
                            if f is None else mmd._per_sample_rff(  # pylint: disable=protected-access
                                mmd.rff_map(x, f), mmd.rff_map(d, f), False)),
           lambda: np_per_sample(x_np, l_np[draws_idx], sigma, blk),
           ref_set=jnp.asarray(l_np[draws_idx]))
  mmd_pair("decrease",
           lambda x, l, f: mmd.mmd2_decrease(x, l, sigma, block=blk, freqs=f),
           (lambda: np_decrease(x_np, l_np, sigma, blk)) if small else None,
           run_exact=small)
  mmd_pair("greedy",
           lambda x, l, f: greedy.greedy_mmd(x, l, sigma, budget, block=blk,
                                             freqs=f).indices,
           (lambda: np_greedy(x_np, l_np, sigma, budget, blk)) if small else None,
           run_exact=small)
  return rows


def bench_preset(n: int, args, results: common.Results) -> dict:
  """strategy.select of the k-means cluster-margin + MMD method
  (`uncertainty_mmd`, the al fields of --config) vs sklearn + NumPy."""
  from jax_al.strategies import Pool, get_strategy
  x_np, l_np = mixture(n, args.labeled, args.dim, args.seed)
  cfg = common.load_config(args.config).al
  budget = max(1, min(args.budget, n // 4))
  strategy = get_strategy("uncertainty_mmd", cfg)
  pool = Pool(jnp.asarray(x_np), jnp.zeros((n, 10)), jnp.asarray(l_np),
              jnp.zeros((len(l_np), 10)), 10)
  strategy.check(n, budget, 10)
  t0 = time.perf_counter()
  strategy.select(pool, budget, jax.random.key(0))
  first = time.perf_counter() - t0
  sel, t = time_fn(lambda: strategy.select(pool, budget, jax.random.key(0)),
                   args.repeats, args.slow)

  def reference():
    # The same steps: per-batch sklearn k-means margins, then the per-sample
    # MMD with 5 fresh draws of 128 per minibatch, median-heuristic sigma.
    xc = x_np - x_np.mean(0)
    lc = l_np - x_np.mean(0)
    u = sk_batch_margin(xc, 10, cfg.batch, cfg.kmeans.max_iter, 0)
    rng = np.random.default_rng(0)
    sub = np.concatenate([xc, lc])[rng.integers(0, n + len(lc), 1024)]
    sq = (sub * sub).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * sub @ sub.T, 0))
    sigma = float(np.median(d[np.triu_indices(1024, 1)]))
    t = np.concatenate([
        np_per_sample(xc[a:a + cfg.batch],
                      lc[rng.integers(0, len(lc), (5, 128))], sigma, 4096)
        for a in range(0, n, cfg.batch)])
    return np.argsort(-(u + t))[:budget]

  _, rt = (None, None) if args.no_reference else time_fn(reference, 1, 0)
  row = dict(variant="preset", n=n, m=len(l_np), dim=args.dim, jax_ms=t * 1e3,
             ref_ms=None if rt is None else rt * 1e3,
             ratio=None if rt is None else rt / t,
             compile_s=first - t, budget=budget,
             sigma=sel.stats.get("sigma"))
  results.add("selection", row)
  print_row(row)
  return row


COLUMNS = [("variant", "variant"), ("n", "N"), ("m", "M"), ("jax_ms", "jax ms"),
           ("ref_ms", "reference ms"), ("ratio", "ref/jax"),
           ("compile_s", "compile s"), ("spearman", "rff spearman"),
           ("top_overlap", "rff top overlap"), ("set_overlap", "greedy overlap"),
           ("speedup_vs_jax_exact", "rff speedup")]


def print_row(row: dict) -> None:
  """One progress line per measurement; the aligned table comes at the end."""
  keys = [k for k, _ in COLUMNS[1:] if row.get(k) is not None]
  print(f"  {row['variant']:<17}" + "  ".join(
      f"{h}={common.fmt(row[k])}" for k, h in COLUMNS[1:] if k in keys),
        flush=True)


def main(argv: list[str] | None = None) -> dict:
  args = parser().parse_args(argv)
  q = int(args.quick)
  for name, vals in DEFAULTS.items():
    if getattr(args, name) is None:
      setattr(args, name, vals[q])
  # In the order given: a time-capped run measures the first sizes first.
  sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
  variants = [v.strip() for v in args.variants.split(",") if v.strip()]
  bad = [v for v in variants if v not in VARIANTS]
  if bad or not sizes or min(sizes) < 4 * args.k or args.labeled < 2:
    raise SystemExit(f"error: unknown variants {bad} (choose from "
                     f"{', '.join(VARIANTS)}), or sizes {sizes} below 4 * k, or "
                     f"--labeled {args.labeled} < 2")
  if "preset" in variants:  # its config file, before anything is measured
    common.config_spec(args.config)
  results = common.Results(args.json)
  results.doc["meta"].update(quick=args.quick, args=vars(args))
  m = results.doc["meta"]
  print(f"selection benchmark on {m['device_kind']} ({m['backend']}), jax "
        f"{m['jax']}; d={args.dim}, M={args.labeled}", flush=True)

  t0 = time.perf_counter()
  rows = []
  for n in sizes:
    rows += bench_size(n, args, results, variants)
  if "preset" in variants:
    rows.append(bench_preset(args.preset_n, args, results))
  print()
  print(common.table(rows, COLUMNS))
  results.set("total_seconds", time.perf_counter() - t0)
  results.save()
  if args.json:
    print(f"wrote {args.json}")
  return results.doc
