"""The whole active-learning protocol, end to end, through `jax_al.loop.run`.

Default config: configs/cifar10.py of the source checkout (the CIFAR-10
protocol: ResNet-18, 5,000 + 2,500 x 6 labels, 200 epochs per cycle; an
installed package has none: pass `--config PATH`). `--data-path P` points it at an
image folder or archive (sets data.source=folder); any `--config.a.b=v`
override is applied as with run.py. `--quick` first shrinks the run to CPU
size (the overrides below); explicit `--config.*` overrides still win.

While the run goes on, each finished cycle is copied into the JSON (status
"running"), so a run cut by a time limit keeps its cycles. Reports the wall
time of each cycle (train / features / strategy / total, as
the loop's metrics record them; cycle 1 includes compiling the steps), the
compilation inside each cycle (seconds and programs, from JAX's compile
events: after cycle 1 it should be small change only) and the total,
including data loading.

`--workdir W` follows the workdir rules of `run.py`, except that the bench
never resumes (it times a run from its first cycle): a folder that already
holds a run is refused unless `--overwrite` is given, and then the run is
replaced as `run.py --overwrite` replaces it (the old one comes back if the
new one fails before its first checkpoint). Files that are not a jax-al
run's are refused either way.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

from jax_al import compiles
from jax_al.bench import common

# CPU-sized protocol: tiny ResNet, 2 epochs per cycle, 2 cycles, small budgets.
QUICK_OVERRIDES = {
    "model.width": "0.125", "train.epochs": "2", "train.eval_every": "2",
    "al.initial": "512", "al.budget": "256", "al.cycles": "2", "al.subset": "1024",
}

CYCLE_COLUMNS = [("cycle", "cycle"), ("labeled", "labeled"), ("test_acc", "test acc %"),
                 ("train_s", "train s"), ("features_s", "features s"),
                 ("strategy_s", "strategy s"), ("compile_s", "compile s"),
                 ("compiles", "programs compiled"), ("compile_cache_hits", "from disk cache"),
                 ("total_s", "cycle s")]


def load_config(config_path: str | None, overrides: list[str]):
  """Parses `--config.x=y` overrides onto the config file, as run.py does
  (None: the checkout's configs/cifar10.py)."""
  return common.load_config(config_path, overrides, what="protocol")


CYCLE_FIELDS = ("trial", "cycle", "labeled", "test_acc", "train_s", "features_s", "strategy_s",
                "select_s", "compile_s", "compiles", "compile_cache_hits", "total_s")


def _cycles(metrics: Path) -> list[dict]:
  """The finished cycles' records in the loop's metrics.jsonl (none if absent)."""
  try:
    lines = metrics.read_text().splitlines()
  except OSError:
    return []
  out = []
  for line in lines:
    try:
      r = json.loads(line)
    except ValueError:  # a line being written
      continue
    if r.get("kind") == "cycle":
      out.append({k: r.get(k) for k in CYCLE_FIELDS})
  return out


def cycle1_acc(cycles: list[dict]) -> float | None:
  """Test accuracy after the first cycle (trial 0), None before it finishes."""
  first = [c for c in cycles if c.get("cycle") == 1 and c.get("trial", 0) == 0]
  return first[0]["test_acc"] if first else None


class _CycleWatcher:
  """Copies each finished cycle from metrics.jsonl into the bench JSON while
  the run goes on (a thread polling the file), so that a run killed by a time
  limit still leaves its cycles in the JSON."""

  def __init__(self, metrics: Path, rec: dict, results: common.Results, t0: float,
               every_s: float = 2.0):
    self.metrics, self.rec, self.results, self.t0 = metrics, rec, results, t0
    self._stop = threading.Event()
    self._seen = 0
    self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
    self._thread.start()

  def _run(self, every_s: float) -> None:
    while not self._stop.wait(every_s):
      self.poll()

  def poll(self) -> None:
    cycles = _cycles(self.metrics)
    if len(cycles) != self._seen and not self._stop.is_set():
      self._seen = len(cycles)
      snap = dict(self.rec, cycles=cycles, cycle1_acc=cycle1_acc(cycles),
                  elapsed_s=time.perf_counter() - self.t0)
      self.results.set("protocol", snap)

  def stop(self) -> None:
    self._stop.set()
    self._thread.join()


def check_workdir(workdir: str | None, overwrite: bool) -> None:
  """SystemExit with one line unless the protocol may run in `workdir` (None:
  a fresh temporary folder): empty or new, or holding a jax-al run and
  `overwrite`. Writes nothing."""
  if not workdir:
    return
  from jax_al import workdir as workdir_lib
  from jax_al.errors import JaxALError

  wd = Path(workdir)
  try:
    workdir_lib.refuse_foreign(wd)
  except JaxALError as e:
    raise SystemExit(f"error: {e}") from None
  # Top-level names (a folder with a slash): the run's files inside them are many.
  existing = list(dict.fromkeys(
      p.relative_to(wd).parts[0] + ("/" if len(p.relative_to(wd).parts) > 1 else "")
      for p in workdir_lib.owned(wd)))
  if existing and not overwrite:
    raise SystemExit(
        f"error: --workdir {wd}: it already holds a run ({', '.join(existing)}) and the "
        "protocol bench times a run from its first cycle, so it neither resumes nor replaces "
        "it. Fix: pass --overwrite to replace it (the old run comes back if the new one fails "
        "before its first checkpoint), or another --workdir")


def bench_protocol(args, overrides: list[str], results: common.Results) -> dict:
  from jax_al import loop
  from jax_al.errors import JaxALError

  pre = []
  if args.quick:
    pre += [f"--config.{k}={v}" for k, v in QUICK_OVERRIDES.items()]
  if args.data_path:
    pre += ["--config.data.source=folder", f"--config.data.path={args.data_path}"]
  spec = common.config_spec(args.config)
  config = load_config(spec, pre + list(overrides))
  if config.data.source == "tfds" and not args.data_path:
    print("note: protocol uses TFDS (config default); pass --data-path to read an image folder")
  check_workdir(args.workdir, args.overwrite)
  workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="jax_al_bench_"))
  rec = {"config": spec, "overrides": pre + list(overrides),
         "workdir": str(workdir), "status": "running",
         "config_values": json.loads(json.dumps(config.to_dict(), default=str))}
  results.set("protocol", rec)
  t0 = time.perf_counter()
  watcher = _CycleWatcher(workdir / "metrics.jsonl", rec, results, t0)
  try:
    with compiles.CompileLog() as clog:
      # A temporary folder is new; a given one was checked by check_workdir.
      summary = loop.run(config, workdir, overwrite=bool(args.workdir and args.overwrite),
                         quiet=args.quiet)
  except JaxALError as e:
    watcher.stop()
    rec.update(status="error", error=str(e), total_s=time.perf_counter() - t0)
    results.set("protocol", rec)
    raise SystemExit(f"error: protocol: {e}") from None
  watcher.stop()
  total = time.perf_counter() - t0
  cycles = _cycles(workdir / "metrics.jsonl")
  cycle_sum = sum(c["total_s"] for c in cycles)
  rec.update(status="done", cycles=cycles, total_s=total, cycles_s=cycle_sum,
             setup_s=total - cycle_sum, summary_seconds=summary.get("seconds"),
             compile_s=clog.seconds, compiles=clog.count, compile_cache_hits=clog.cache_hits,
             setup_compile_s=clog.seconds - sum(c.get("compile_s", 0.0) for c in cycles),
             compile_by_function=dict(list(clog.by_function().items())[:12]),
             test_acc=summary.get("mean"), cycle1_acc=cycle1_acc(cycles), **common.memory(),
             note="cycle 1 includes compiling the train/eval steps; setup_s is data "
                  "loading, model init and checkpoint writing outside the cycles")
  results.set("protocol", rec)
  if not args.workdir:
    shutil.rmtree(workdir, ignore_errors=True)
  return rec


def print_protocol(rec: dict) -> None:
  print("\nActive-learning protocol (jax_al.loop.run), wall time per cycle")
  print(common.table(rec.get("cycles", []), CYCLE_COLUMNS))
  print(f"compilation {rec['compile_s']:.1f} s in all ({rec['compiles']} programs, "
        f"{rec['compile_cache_hits']} of them loaded from the on-disk cache; "
        f"{rec['setup_compile_s']:.1f} s of it in setup). Largest: " + ", ".join(
            f"{k} {v:.1f} s" for k, v in list(rec["compile_by_function"].items())[:5]))
  if rec.get("cycle1_acc") is not None:
    print(f"cycle 1 test accuracy {rec['cycle1_acc']:.2f} %")
  print(f"total {rec['total_s']:.1f} s = cycles {rec['cycles_s']:.1f} s + setup "
        f"{rec['setup_s']:.1f} s (data loading, init, checkpoints); "
        f"peak host RSS {common.fmt_bytes(rec['peak_rss_bytes'])}, "
        f"peak device {common.fmt_bytes(rec['peak_device_bytes'])}")
