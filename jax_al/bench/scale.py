"""Selection on arrays at scale: `python -m jax_al.bench select`.

    python -m jax_al.bench select [--quick] [--sizes 20000,100000,1000000] [--dim 768]
        [--classes 10,100] [--strategies margin,coreset,...] [--impls jax,numpy,skactiveml]
        [--timeout 900] [--json PATH]

Times `jax_al.select` (any model's features and logits, the API a user of
another framework calls) on synthetic pools of N rows with d features and C
classes: a Gaussian mixture of C clusters, written once as `.npy` files
under `--data-dir` and memory-mapped, with logits from a linear read-out of
the cluster means. The labeled set is the first `--labeled-frac` of the
rows (at least 10) and the budget `--budget-frac` of N (1 %).

Beside it, in the same run, the same selection by what a user would pick
instead: a plain NumPy reference (the scores and top-k for the uncertainty
strategies, k-center greedy with one BLAS matrix-vector product per pick
for coreset) and scikit-activeml where it is installed (`UncertaintySampling`,
`k_greedy_center`, `Badge`, `TypiClust`, given the same probabilities
through a classifier that returns them).

Every cell (strategy, implementation, N, C) runs in its own process, so
its peak RSS (VmHWM) is its own, and a cell that runs out of memory,
crashes or passes `--timeout` is recorded as such without stopping the
others. Times are after compilation: a cell calls the selection twice and
times the second call; where the first call took longer than
`--second-call-limit` seconds the first call's time is reported instead,
marked `includes_compile`. `beyond_inputs_bytes` is the peak RSS less the
process's RSS after its imports, less the bytes of the input arrays (the
memory-mapped inputs count once touched).

For the distance-bound strategies whose work has a closed form (coreset:
2 U d (L + B) for U unlabeled, L labeled, B picks; BADGE: 2 U (C + d) B)
the cell reports the FLOPs and the achieved rate, as a fraction of this
machine's float32 matrix-multiply rate, measured by jax at the start of
the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from jax_al import usage

DEFAULTS = {"sizes": ("20000,100000,1000000", "2000,5000"), "dim": (768, 64),
            "classes": ("10,100", "10")}
STRATEGIES = ("random", "margin", "margin_streamed", "entropy", "least_confidence", "coreset",
              "coreset_lazy", "badge", "typiclust", "users", "users_streamed", "witness",
              "witness_rff")
# Bench rows that are another strategy's selection under settings: (the
# strategy or preset jax_al.select runs, its settings). The others' rows of
# that strategy are their reference.
VARIANTS = {"coreset_lazy": ("coreset", {"coreset_search": "lazy"}),
            # The whole-pool witness with random Fourier features (exact: N^2 kernels).
            "witness_rff": ("witness", {"approx": "rff"}),
            # The pool streamed from the host in blocks (jax_al.stream), as on a
            # device that cannot hold it; on a CPU the overhead of the blocks.
            "margin_streamed": ("margin", {"stream": True}),
            "users_streamed": ("users", {"stream": True})}
# Which implementations exist beside jax_al.select, per strategy.
OTHERS = {"numpy": ("random", "margin", "entropy", "least_confidence", "coreset"),
          "skactiveml": ("margin", "entropy", "least_confidence", "coreset", "badge",
                         "typiclust")}
# Strategies whose picks do not depend on C: run at the first --classes only.
C_FREE = ("random", "coreset", "coreset_lazy", "typiclust")
_SKAL_METHOD = {"margin": "margin_sampling", "entropy": "entropy",
                "least_confidence": "least_confident"}


def _csv(s: str) -> list[str]:
  return [p.strip() for p in s.split(",") if p.strip()]


def _args(argv):
  p = argparse.ArgumentParser(prog=usage.argparse_prog("python -m jax_al.bench select"),
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="CPU-test sizes (2,000 and 5,000 x 64)")
  p.add_argument("--sizes", help="pool sizes N (20000,100000,1000000; quick 2000,5000)")
  p.add_argument("--dim", type=int, help="feature dimension d (768; quick 64)")
  p.add_argument("--classes", help="class counts C (10,100; quick 10)")
  p.add_argument("--strategies", default=",".join(STRATEGIES),
                 help=f"comma-separated ({','.join(STRATEGIES)})")
  p.add_argument("--impls", default="jax,numpy,skactiveml",
                 help="comma-separated: jax (jax_al.select), numpy, skactiveml")
  p.add_argument("--budget-frac", type=float, default=0.01, help="budget as a fraction of N")
  p.add_argument("--labeled-frac", type=float, default=0.01,
                 help="labeled rows as a fraction of N (at least 10)")
  p.add_argument("--timeout", type=float, default=900.0, help="seconds per cell")
  p.add_argument("--second-call-limit", type=float, default=60.0,
                 help="time a second call only when the first took less (seconds)")
  p.add_argument("--mem-limit-gb", type=float, default=20.0,
                 help="address-space cap of the numpy and scikit-activeml cells (GB), so "
                 "that one running out of memory fails alone")
  p.add_argument("--data-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                     "jax_al_bench_select"),
                 help="where the synthetic pools are written once and reused")
  p.add_argument("--json", help="write the results here (rewritten after every cell)")
  p.add_argument("--markdown", nargs="+", metavar="JSON",
                 help="print the results of these bench JSON files as Markdown tables "
                 "(and run nothing)")
  p.add_argument("--cell", help=argparse.SUPPRESS)  # internal: one cell, in a child process
  args = p.parse_args(argv)
  if args.cell or args.markdown:
    return args
  q = 1 if args.quick else 0
  for k, v in DEFAULTS.items():
    if getattr(args, k) is None:
      setattr(args, k, v[q])
  try:
    args.sizes = [int(s) for s in _csv(args.sizes)]
    args.classes = [int(s) for s in _csv(args.classes)]
  except ValueError:
    raise SystemExit("error: --sizes and --classes take comma-separated integers. Fix: e.g. "
                     "--sizes=20000,100000 --classes=10,100") from None
  args.strategies, args.impls = _csv(args.strategies), _csv(args.impls)
  bad = [s for s in args.strategies if s not in STRATEGIES]
  bad += [i for i in args.impls if i not in ("jax", "numpy", "skactiveml")]
  if bad:
    raise SystemExit(f"error: unknown value(s) {bad}. Fix: strategies from "
                     f"{','.join(STRATEGIES)}; impls from jax,numpy,skactiveml")
  for flag, v in (("--dim", args.dim), ("--timeout", args.timeout),
                  ("--budget-frac", args.budget_frac), ("--labeled-frac", args.labeled_frac)):
    if not v > 0:
      raise SystemExit(f"error: {flag}={v}: must be positive")
  if min(args.sizes + args.classes) < 2 or not args.budget_frac < 1:
    raise SystemExit("error: --sizes and --classes must be >= 2 and --budget-frac < 1")
  if not args.budget_frac + args.labeled_frac < 1:  # the picks come from the unlabeled rest
    raise SystemExit(f"error: --labeled-frac={args.labeled_frac} with --budget-frac="
                     f"{args.budget_frac} leaves no pool to pick from. Fix: keep their sum "
                     "below 1 (defaults 0.01 each)")
  if not args.mem_limit_gb > 0:
    raise SystemExit(f"error: --mem-limit-gb={args.mem_limit_gb}: must be positive. Fix: "
                     "e.g. --mem-limit-gb=20 (the default)")
  if Path(args.data_dir).exists() and not Path(args.data_dir).is_dir():
    raise SystemExit(f"error: --data-dir {args.data_dir}: is a file, not a folder. Fix: pass "
                     "a folder (it is created if missing), e.g. --data-dir=/tmp/jax_al_pools")
  return args


def sizes_of(n: int, budget_frac: float, labeled_frac: float) -> tuple[int, int]:
  """(budget, labeled rows) of a pool of n rows."""
  return max(1, int(round(n * budget_frac))), max(10, int(round(n * labeled_frac)))


# ---------------------------------------------------------------------------
# Data: written once per (N, d, C), in blocks, so a 1M x 768 pool never sits
# in the writer's memory.

def make_pool(data_dir: str | Path, n: int, d: int, c: int, seed: int = 0,
              block: int = 50_000) -> dict:
  """Paths of features [n, d] and logits [n, c] (float32 .npy), written once."""
  folder = Path(data_dir) / f"n{n}_d{d}_c{c}_s{seed}"
  paths = {"features": folder / "features.npy", "logits": folder / "logits.npy"}
  done = folder / "done"
  if done.exists():
    return {k: str(v) for k, v in paths.items()}
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(c, d)).astype(np.float32)
  readout = (means / np.linalg.norm(means, axis=1, keepdims=True)).T * 4.0  # [d, c]
  x = np.lib.format.open_memmap(paths["features"], "w+", np.float32, (n, d))
  lg = np.lib.format.open_memmap(paths["logits"], "w+", np.float32, (n, c))
  for s in range(0, n, block):
    e = min(n, s + block)
    y = rng.integers(0, c, e - s)
    xb = means[y] + rng.normal(scale=1.5, size=(e - s, d)).astype(np.float32)
    x[s:e] = xb
    lg[s:e] = (xb / np.sqrt(d)) @ readout
  x.flush(), lg.flush()
  del x, lg
  done.write_text("ok\n")
  return {k: str(v) for k, v in paths.items()}


def softmax(lg: np.ndarray) -> np.ndarray:
  z = lg - lg.max(axis=1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# The NumPy references: what a user without jax-al would write.

def numpy_scores(name: str, p: np.ndarray) -> np.ndarray:
  """Higher is more informative."""
  if name == "margin":
    top2 = np.partition(p, -2, axis=1)[:, -2:]
    return -(top2[:, 1] - top2[:, 0])
  if name == "entropy":
    return -(p * np.log(np.maximum(p, 1e-12))).sum(axis=1)
  if name == "least_confidence":
    return -p.max(axis=1)
  raise ValueError(name)


def numpy_top(scores: np.ndarray, budget: int) -> np.ndarray:
  top = np.argpartition(-scores, budget - 1)[:budget]
  return top[np.argsort(-scores[top], kind="stable")]


def numpy_k_center(x: np.ndarray, labeled: np.ndarray, budget: int,
                   block: int = 4096) -> np.ndarray:
  """k-center greedy: the candidate farthest from its nearest labeled or
  picked point, `budget` times; squared distances by the expansion
  |x|^2 - 2 x.c + |c|^2 (one BLAS product per pick)."""
  x_sq = np.einsum("ij,ij->i", x, x)
  min_d = np.full(len(x), np.inf, np.float32)
  for s in range(0, len(labeled), block):
    lb = labeled[s:s + block]
    d = x_sq[:, None] - 2 * x @ lb.T + np.einsum("ij,ij->i", lb, lb)[None]
    np.minimum(min_d, d.min(axis=1), out=min_d)
  picks = np.empty(budget, np.int64)
  for t in range(budget):
    i = int(np.argmax(min_d))
    picks[t] = i
    np.minimum(min_d, x_sq - 2 * (x @ x[i]) + x_sq[i], out=min_d)
    min_d[i] = -1.0
  return picks


# ---------------------------------------------------------------------------
# One cell, in a child process.

def _peak_rss() -> int:
  """This process's peak RSS since its exec (VmHWM; ru_maxrss would carry the
  forking parent's peak over the exec)."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) * 1024
  raise RuntimeError("no VmHWM in /proc/self/status")


def _rss_now() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _skal_classifier(probs_unlabeled: np.ndarray, classes: int):
  """A fitted scikit-activeml classifier that returns the given probabilities
  for the unlabeled rows (scikit-activeml asks for them, in pool order)."""
  from skactiveml.base import SkactivemlClassifier

  class Fixed(SkactivemlClassifier):
    def __init__(self, classes=None, missing_label=np.nan):
      super().__init__(classes=classes, missing_label=missing_label)

    def fit(self, X, y, sample_weight=None):
      self._validate_data(X, y)
      return self

    def predict_proba(self, X):
      if len(X) != len(probs_unlabeled):
        raise ValueError(f"asked for {len(X)} rows, holds {len(probs_unlabeled)}")
      return probs_unlabeled

  clf = Fixed(classes=np.arange(classes))
  clf.classes_ = np.arange(classes)
  clf._le = None
  return clf


def run_cell(cell: dict) -> dict:
  """Loads the pool memory-mapped, runs one selection (twice where cheap)."""
  name, impl, n, c = cell["strategy"], cell["impl"], cell["n"], cell["classes"]
  budget, n_lab = cell["budget"], cell["labeled"]
  if impl != "jax" and cell.get("mem_limit_gb"):  # XLA reserves address space it never uses
    cap = int(cell["mem_limit_gb"] * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
  if impl == "jax":
    import jax  # noqa: F401  (its RSS belongs to the baseline)
    import jax_al
  elif impl == "skactiveml":
    import skactiveml  # noqa: F401
    import sklearn  # noqa: F401
  x = np.load(cell["features"], mmap_mode="r")
  lg = np.load(cell["logits"], mmap_mode="r")
  inputs = x.nbytes + lg.nbytes
  base = _rss_now()
  mask = np.zeros(n, bool)
  mask[:n_lab] = True

  if impl == "jax":
    strategy, settings = VARIANTS.get(name, (name, {}))

    def call():
      return jax_al.select(strategy, features=x, logits=lg, labeled=mask, budget=budget,
                           seed=0, **settings).indices
  elif impl == "numpy":
    def call():
      if name == "random":
        return np.random.default_rng(0).choice(np.arange(n_lab, n), budget, replace=False)
      if name == "coreset":
        return n_lab + numpy_k_center(np.asarray(x[n_lab:]), np.asarray(x[:n_lab]), budget)
      return n_lab + numpy_top(numpy_scores(name, softmax(np.asarray(lg[n_lab:]))), budget)
  else:
    from skactiveml import pool as skal
    y = np.full(n, np.nan)
    y[:n_lab] = np.argmax(np.asarray(lg[:n_lab]), axis=1)

    def call():
      xa = np.asarray(x)
      if name == "coreset":
        idx, _ = skal.k_greedy_center(xa, y, batch_size=budget, random_state=0)
        return idx
      if name == "typiclust":
        return skal.TypiClust(random_state=0).query(xa, y, batch_size=budget)
      clf = _skal_classifier(softmax(np.asarray(lg[n_lab:])), c)
      if name == "badge":
        return skal.Badge(random_state=0).query(xa, y, clf, fit_clf=False, batch_size=budget)
      qs = skal.UncertaintySampling(method=_SKAL_METHOD[name], random_state=0)
      return qs.query(xa, y, clf, fit_clf=False, batch_size=budget)

  t0 = time.perf_counter()
  picks = np.asarray(call())
  first = time.perf_counter() - t0
  out = {"first_call_s": first}
  if first < cell["second_call_limit"]:
    t0 = time.perf_counter()
    again = np.asarray(call())
    out["time_s"] = time.perf_counter() - t0
    out["includes_compile"] = False
    out["deterministic"] = bool(np.array_equal(picks, again))
  else:
    out["time_s"], out["includes_compile"] = first, True
  peak = _peak_rss()
  if impl == "jax":  # what the device held at most (None where the backend does not say)
    from jax_al.bench import common
    out["peak_device_bytes"] = common.memory()["peak_device_bytes"]
  picks = picks.astype(np.int64).reshape(-1)
  import hashlib
  out.update(status="ok", picks=len(picks),
             picks_sha256=hashlib.sha256(picks.tobytes()).hexdigest(),
             picks_set_sha256=hashlib.sha256(np.sort(picks).tobytes()).hexdigest(), unique=int(len(np.unique(picks))),
             labeled_picked=int((picks < n_lab).sum()), peak_rss_bytes=int(peak),
             baseline_rss_bytes=int(base), inputs_bytes=int(inputs),
             beyond_inputs_bytes=int(peak - base - inputs))
  return out


def _child(cell: dict, timeout: float, mem_limit_gb: float) -> dict:
  cell = {**cell, "mem_limit_gb": mem_limit_gb}
  cmd = [sys.executable, "-m", "jax_al.bench.scale", "--cell", json.dumps(cell)]
  t0 = time.perf_counter()
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    return {"status": "timeout", "timeout_s": timeout,
            "error": f"still running after {timeout:.0f} s (killed)"}
  wall = time.perf_counter() - t0
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode == 0 and lines:
    return {**json.loads(lines[-1]), "cell_wall_s": wall}
  err = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
  if proc.returncode < 0:
    status = "killed"
    err = f"killed by signal {-proc.returncode} (the kernel's out-of-memory killer?); {err}"
  elif "MemoryError" in proc.stderr or "Unable to allocate" in proc.stderr \
      or "RESOURCE_EXHAUSTED" in proc.stderr:
    status = "out_of_memory"
  else:
    status = "error"
  return {"status": status, "error": err[:400], "cell_wall_s": wall}


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
  """This machine's float32 matrix-multiply rate (FLOP/s), measured by jax."""
  import jax
  import jax.numpy as jnp
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  f = jax.jit(lambda a, b: a @ b)
  f(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    f(a, b).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2 * n ** 3 / best


def flops(name: str, n: int, d: int, c: int, budget: int, labeled: int) -> float | None:
  """The selection's FLOPs where they have a closed form, else None."""
  u = n - labeled
  if name == "coreset":
    return 2.0 * u * d * (labeled + budget)
  if name == "badge":
    return 2.0 * u * (c + d) * budget
  return None


def print_row(r: dict) -> None:
  t = r.get("time_s")
  t = "" if t is None else f"{t:9.3f}{'*' if r.get('includes_compile') else ' '}"
  rss = r.get("peak_rss_bytes")
  rss = "" if rss is None else f"{rss / 2**30:6.2f}"
  frac = r.get("fraction_of_matmul")
  frac = "" if frac is None else f"{100 * frac:5.1f}%"
  print(f"{r['strategy']:17s} {r['impl']:10s} {r['n']:>9,} {r['classes']:>4} "
        f"{r['status']:>13s} {t:>10s} {rss:>7s} {frac:>6s} {r.get('error', '')[:70]}",
        flush=True)


def main(argv: list[str] | None = None) -> dict:
  args = _args(argv)
  if args.cell:
    print(json.dumps(run_cell(json.loads(args.cell))), flush=True)
    return {}
  if args.markdown:
    docs = []
    for f in args.markdown:
      try:
        docs.append(json.loads(Path(f).read_text()))
      except (OSError, ValueError) as e:
        raise SystemExit(f"error: --markdown {f}: cannot be read as a bench JSON ({e}). Fix: "
                         "pass files written by jax-al bench select --json") from None
    print(markdown(docs))
    return {}
  from jax_al.bench import common
  results = common.Results(args.json)
  try:
    import skactiveml
    skal_version = skactiveml.__version__
  except ImportError:
    skal_version = None
  rate = matmul_rate()
  results.doc["meta"].update(
      bench="select", dim=args.dim, sizes=args.sizes, classes=args.classes,
      budget_frac=args.budget_frac, labeled_frac=args.labeled_frac, timeout_s=args.timeout,
      skactiveml=skal_version, matmul_f32_flops=rate)
  m = results.doc["meta"]
  print(f"jax_al.bench select on {m['device_kind']} ({m['backend']}, {os.cpu_count()} CPUs), "
        f"jax {m['jax']}, scikit-activeml {skal_version or 'not installed'}; float32 "
        f"matmul {rate / 1e9:.1f} GFLOP/s; d = {args.dim}", flush=True)
  if "skactiveml" in args.impls and skal_version is None:
    print("scikit-activeml is not installed (pip install scikit-activeml): its cells are "
          "recorded as not_installed", flush=True)
  print("(* = the only call, compilation included; times in s, peak RSS in GiB)")
  print(f"{'strategy':17s} {'impl':10s} {'N':>9s} {'C':>4s} {'status':>13s} {'time':>10s} "
        f"{'RSS':>7s} {'%mm':>6s}")
  rows = []
  for n in args.sizes:
    budget, n_lab = sizes_of(n, args.budget_frac, args.labeled_frac)
    for ci, c in enumerate(args.classes):
      paths = make_pool(args.data_dir, n, args.dim, c)
      for name in args.strategies:
        if name in C_FREE and ci > 0:
          continue
        for impl in args.impls:
          if impl != "jax" and (name not in OTHERS[impl] or name in VARIANTS):
            continue
          row = {"strategy": name, "impl": impl, "n": n, "dim": args.dim, "classes": c,
                 "budget": budget, "labeled": n_lab}
          if impl == "skactiveml" and skal_version is None:
            row.update(status="not_installed", error="pip install scikit-activeml")
          else:
            cell = {**row, **paths, "second_call_limit": args.second_call_limit}
            row.update(_child(cell, args.timeout, args.mem_limit_gb))
          f = flops(name, n, args.dim, c, budget, n_lab)
          if f is not None and row.get("status") == "ok":
            row["flops"] = f
            row["flops_per_s"] = f / row["time_s"]
            row["fraction_of_matmul"] = f / row["time_s"] / rate
          row["loadavg_1m"] = os.getloadavg()[0]  # other processes on the machine
          rows.append(row)
          results.add("select", row)
          print_row(row)
  results.set("ratios", ratios(rows))
  for line in ratio_lines(results.doc["ratios"]):
    print(line)
  return results.doc


def ratios(rows: list[dict]) -> list[dict]:
  """Each other implementation's time over jax_al.select's, cell by cell."""
  out = []
  for j in rows:
    if j["impl"] != "jax" or j.get("status") != "ok":
      continue
    base = VARIANTS.get(j["strategy"], (j["strategy"],))[0]
    for r in rows:
      if r["impl"] == "jax" or (r["strategy"], r["n"], r["classes"]) != (base, j["n"],
                                                                         j["classes"]):
        continue
      out.append(_ratio(j, r))
  return out


def _ratio(j: dict, r: dict) -> dict:
  """Row `r` of another implementation against jax_al.select's row `j`."""
  rec = {"strategy": j["strategy"], "n": r["n"], "classes": r["classes"], "vs": r["impl"],
         "status": r.get("status")}
  if r.get("status") == "ok":
    # The same rows (in any order) as jax_al.select: the two compute one selection.
    a, b = r.get("picks_set_sha256"), j.get("picks_set_sha256")
    rec["same_picks"] = None if a is None or b is None else a == b
    rec["speedup"] = r["time_s"] / j["time_s"]
    rec["rss_ratio"] = r["peak_rss_bytes"] / j["peak_rss_bytes"]
  elif r.get("status") == "timeout" and r.get("timeout_s"):  # a lower bound: it ran that long
    rec["speedup_at_least"] = r["timeout_s"] / j["time_s"]
  return rec


def markdown(docs: list[dict]) -> str:
  """The cells of bench JSON documents as one Markdown table per document,
  with each other implementation's time relative to jax_al.select."""
  out = []
  for doc in docs:
    m = doc["meta"]
    out.append(f"{m['date'][:10]}, {m.get('cpu_count')} CPUs, jax {m['jax']}, scikit-activeml "
               f"{m.get('skactiveml') or 'not installed'}, float32 matmul "
               f"{m['matmul_f32_flops'] / 1e9:.1f} GFLOP/s, d = {m['dim']}, budget and labeled "
               f"set {100 * m['budget_frac']:g} % / {100 * m['labeled_frac']:g} % of N, "
               f"timeout {m['timeout_s']:.0f} s per cell:\n")
    out.append("| strategy | N | C | impl | status | time (s) | peak RSS (GiB) | beyond inputs "
               "(GiB) | % of matmul | time / jax_al.select's |")
    out.append("| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    rel = ratios(doc.get("select", []))
    for r in doc.get("select", []):
      t = r.get("time_s")
      t = "" if t is None else f"{t:.3g}" + (" (1st call)" if r.get("includes_compile") else "")
      # Negative: the cell did not read all of its (memory-mapped) inputs.
      gib = lambda k: ("" if r.get(k) is None else "n/a" if r[k] < 0
                       else f"{r[k] / 2**30:.2f}")
      frac = r.get("fraction_of_matmul")
      x = []
      if r["impl"] != "jax":
        for q in rel:
          if (q["n"], q["classes"], q["vs"]) != (r["n"], r["classes"], r["impl"]) or \
              VARIANTS.get(q["strategy"], (q["strategy"],))[0] != r["strategy"]:
            continue
          if "speedup" in q:
            x.append(f"{q['strategy']}: {q['speedup']:.1f}x"
                     + {True: "", False: " (other picks)", None: ""}[q["same_picks"]])
          elif "speedup_at_least" in q:
            x.append(f"{q['strategy']}: > {q['speedup_at_least']:.1f}x")
      x = "; ".join(x)
      status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('error', '')[:60]}"
      out.append(f"| {r['strategy']} | {r['n']:,} | {r['classes']} | {r['impl']} | {status} | "
                 f"{t} | {gib('peak_rss_bytes')} | {gib('beyond_inputs_bytes')} | "
                 f"{'' if frac is None else f'{100 * frac:.0f}'} | {x} |")
    out.append("")
  return "\n".join(out)


def ratio_lines(ratios: list[dict]) -> list[str]:
  lines = ["", "jax_al.select vs the others (time ratio > 1: jax-al is faster)"]
  for r in ratios:
    if "speedup" in r:
      what = (f"{r['speedup']:7.1f}x time, {r['rss_ratio']:5.2f}x RSS, "
              f"{ {True: 'same', False: 'other', None: 'unrecorded'}[r['same_picks']]} picks")
    elif "speedup_at_least" in r:
      what = f"> {r['speedup_at_least']:5.1f}x time (the other timed out)"
    else:
      what = f"the other: {r['status']}"
    lines.append(f"  {r['strategy']:17s} N={r['n']:>9,} C={r['classes']:>3} vs "
                 f"{r['vs']:10s} {what}")
  return lines


if __name__ == "__main__":
  main()
