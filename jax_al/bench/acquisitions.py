"""Cost of every acquisition per selection step: `python -m jax_al.bench acquisitions`.

    python -m jax_al.bench acquisitions [--quick] [--n 45000] [--dim 512] [--json PATH]

Times `strategy.select(pool, budget, key)` for each registered strategy
(or `--strategies`) on one random pool of `--n` candidates with `--dim`
features, 10 classes, `--labeled` labeled points and, for the sample-based
strategies, `--samples` MC-dropout passes (bald, variation_ratio) or
`--members` ensemble members (ensemble_*) as `Pool.sample_logits`. The
strategies' fields come from `--config` (default: the checkout's
configs/cifar10.py). The first call (compilation included) is reported
apart; `select_ms` is the median of `--repeats` calls after it, each
waiting for its indices on the host. The strategies are timed round-robin
within each repeat, so load from other processes hits them alike.

What this does not time: the features pass that fills the pool
(`python -m jax_al.bench features`), and for MC dropout the extra head
passes (`Trainer.predict_mc` runs the network body once, then only the
head per pass), nor learning loss's module (one small head on the features
pass), nor the training of an ensemble's members, which is the
vmapped stack of `python -m jax_al.bench parallel` (an ensemble of K
members trains exactly as K vmapped trials do).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jax_al import strategies, usage
from jax_al.bench import common

DEFAULTS = {"n": (45000, 3000), "dim": (512, 64), "labeled": (5000, 300), "budget": (2500, 100),
            "repeats": (3, 2)}


def _args(argv):
  p = argparse.ArgumentParser(prog=usage.argparse_prog("python -m jax_al.bench acquisitions"),
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="CPU sizes (3,000 x 64)")
  p.add_argument("--n", type=int, help="candidates (45,000; quick 3,000)")
  p.add_argument("--dim", type=int, help="feature dimension (512; quick 64)")
  p.add_argument("--labeled", type=int, help="labeled points (5,000; quick 300)")
  p.add_argument("--budget", type=int, help="picks per selection (2,500; quick 100)")
  p.add_argument("--samples", type=int, default=20, help="MC-dropout passes (20)")
  p.add_argument("--members", type=int, default=5, help="ensemble members (5)")
  p.add_argument("--repeats", type=int, help="timed calls per strategy (3; quick 2)")
  p.add_argument("--strategies", help="comma-separated (default: every registered one)")
  p.add_argument("--config", help="config file[:preset] for the strategies' al fields")
  p.add_argument("--json", help="write the results here (rewritten after every row)")
  args = p.parse_args(argv)
  q = 1 if args.quick else 0
  for k, v in DEFAULTS.items():
    if getattr(args, k) is None:
      setattr(args, k, v[q])
  for k in ("n", "dim", "labeled", "budget", "samples", "members", "repeats"):
    if getattr(args, k) < 1:
      p.error(f"--{k} {getattr(args, k)}: use a positive integer")
  if args.budget > args.n:
    p.error(f"--budget {args.budget}: at most --n ({args.n})")
  names = strategies.names()
  chosen = [s.strip() for s in (args.strategies or ",".join(names)).split(",") if s.strip()]
  bad = [s for s in chosen if s not in names]
  if bad:
    p.error(f"--strategies: unknown {bad[0]!r}; known: {', '.join(names)}")
  args.strategies = chosen
  return args


def pool(n: int, dim: int, labeled: int, samples: int, seed: int = 0) -> strategies.Pool:
  """A random pool: clustered features, logits tied to them, perturbed sample
  logits, and random predicted losses (learning_loss)."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(10, dim)).astype(np.float32) * 3
  lab = lambda m: rng.integers(0, 10, m)
  x = centres[lab(n)] + rng.normal(size=(n, dim)).astype(np.float32)
  l = centres[lab(labeled)] + rng.normal(size=(labeled, dim)).astype(np.float32)
  w = rng.normal(size=(dim, 10)).astype(np.float32) / np.sqrt(dim)
  logits, l_logits = x @ w, l @ w
  s = logits[None] + rng.normal(size=(samples, n, 10)).astype(np.float32)
  put = jnp.asarray
  return strategies.Pool(put(x), put(logits), put(l), put(l_logits), 10, labeled, put(s),
                         put(rng.exponential(size=n).astype(np.float32)))


def main(argv: list[str] | None = None) -> dict:
  args = _args(argv)
  al = common.load_config(args.config).al
  al.mc_samples, al.ensemble_size = args.samples, args.members
  results = common.Results(args.json)
  m = results.doc["meta"]
  print(f"jax_al.bench acquisitions on {m['device_kind']} ({m['backend']}), jax {m['jax']}: "
        f"{args.n:,} candidates x {args.dim}, {args.labeled:,} labeled, budget {args.budget:,}",
        flush=True)
  built = {name: strategies.get_strategy(name, al) for name in args.strategies}
  pools = {k: pool(args.n, args.dim, args.labeled, k) for k in {args.samples, args.members}}
  ensemble = strategies.base.Samples.ENSEMBLE
  pool_of = lambda s: pools[args.members if s.requires.samples is ensemble else args.samples]
  key = jax.random.key(0)
  first, times = {}, {name: [] for name in built}
  for name, s in built.items():
    t0 = time.perf_counter()
    s.select(pool_of(s), args.budget, key)  # indices come back to the host: synchronised
    first[name] = time.perf_counter() - t0
  for _ in range(args.repeats):
    for name, s in built.items():  # round-robin
      t0 = time.perf_counter()
      s.select(pool_of(s), args.budget, key)
      times[name].append(time.perf_counter() - t0)
  rows = []
  print(f"{'strategy':26s} {'samples':>7s} {'first call s':>12s} {'select ms':>10s}")
  for name, s in built.items():
    k = {strategies.base.Samples.ENSEMBLE: args.members,
         strategies.base.Samples.MC_DROPOUT: args.samples}.get(s.requires.samples, 0)
    row = {"strategy": name, "n": args.n, "dim": args.dim, "labeled": args.labeled,
           "budget": args.budget, "samples": k, "first_call_s": first[name],
           "select_ms": 1e3 * statistics.median(times[name]), "repeats": args.repeats}
    rows.append(row)
    results.add("acquisitions", row)
    print(f"{name:26s} {k:7d} {first[name]:12.2f} {row['select_ms']:10.1f}", flush=True)
  return {"acquisitions": rows}


if __name__ == "__main__":
  main()
