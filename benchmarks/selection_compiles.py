"""What bucketed vs run-sized labeled padding costs at the CIFAR protocol's shapes.

    PYTHONPATH=. python benchmarks/selection_compiles.py [--json PATH] [--presets users,witness]

Random features stand in for a cycle's: 10,000 candidates x 512 and the
labeled set of each selecting cycle of configs/cifar10.py (5,000 ... 17,500).
For each preset and `al.pad_labeled` mode, the selections run in cycle order
in one process, as a run would (caches cleared between modes), and each reports the compilation it
triggered (jax's compile events) and its wall time. A second call with the
same shapes gives the time without compilation.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs import cifar10
from jax_al import compiles, strategies
from jax_al import cycle as cycle_lib
from jax_al.strategies.base import Pool


def measure(preset: str, pad: str, n: int, d: int, seed: int = 0) -> list[dict]:
  jax.clear_caches()  # each mode starts cold, as in a fresh process
  c = cifar10.get_config(preset)
  c.al.pad_labeled = pad
  strategy = strategies.get_strategy(c.al.strategy, c.al)
  capacity = cycle_lib.labeled_capacity(c, 50_000)
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(n, d)).astype(np.float32))
  rows = []
  for cycle in range(1, c.al.cycles):
    m = c.al.initial + c.al.budget * (cycle - 1)
    l = jnp.asarray(rng.normal(size=(m, d)).astype(np.float32))
    pool = Pool(x, jnp.zeros((n, 10)), l, jnp.zeros((m, 10)), 10, capacity)
    with compiles.CompileLog() as log:
      t0 = time.perf_counter()
      strategy.select(pool, c.al.budget, jax.random.key(cycle))
      first = time.perf_counter() - t0
    t0 = time.perf_counter()
    strategy.select(pool, c.al.budget, jax.random.key(100 + cycle))
    again = time.perf_counter() - t0
    rows.append({"preset": preset, "pad_labeled": pad, "cycle": cycle, "labeled": m,
                 "compile_s": log.seconds, "programs": log.count, "first_s": first,
                 "run_s": again})
    print(f"{preset:18s} {pad:6s} cycle {cycle} labeled {m:6,d}: compile {log.seconds:5.2f} s "
          f"({log.count} programs), first call {first:5.2f} s, again {again:5.2f} s", flush=True)
  return rows


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--presets", default="users,witness")
  ap.add_argument("--n", type=int, default=10_000)
  ap.add_argument("--dim", type=int, default=512)
  ap.add_argument("--json", default="")
  args = ap.parse_args()
  rows = []
  for preset in args.presets.split(","):
    for pad in ("bucket", "run"):
      rows += measure(preset, pad, args.n, args.dim)
  print(f"\n{'preset':18s} {'pad':6s} {'compile s':>9s} {'selection s':>11s} {'total s':>8s}")
  for preset in args.presets.split(","):
    for pad in ("bucket", "run"):
      rs = [r for r in rows if r["preset"] == preset and r["pad_labeled"] == pad]
      comp, run = sum(r["compile_s"] for r in rs), sum(r["run_s"] for r in rs)
      print(f"{preset:18s} {pad:6s} {comp:9.1f} {run:11.1f} {sum(r['first_s'] for r in rs):8.1f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
                 "jax": jax.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
