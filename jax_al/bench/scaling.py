"""Scaling across devices: training images/s and selection time on 1, 2, 4 devices.

    python -m jax_al.bench scaling [--quick] [--devices 1,2,4] [--json PATH]
    python -m jax_al.bench.scaling --quick          # the same, standalone

For each device count n, the real code paths run on a mesh of n devices
(`jax_al.sharding`; n = 1 is the unsharded default path):

  train      `Trainer.run_epoch` over `--n-train` random uint8 images, all
             labeled, batch `--batch` split over the devices (data parallel,
             replicated state). images/s = images / median epoch time.
  selection  `strategy.select` on a random pool of `--pool` candidates
             (`--dim` features, `--labeled` labeled rows), placed with
             `sharding.place_pool` (sharded over the pool axis). Median
             seconds per selection; `same_indices` compares the picks with
             those on the fewest devices.

Compilation is excluded (a warm-up call first), and the device counts are
timed round-robin within each repeat, so load from other processes hits them
alike. On CPU the devices are
simulated (XLA_FLAGS=--xla_force_host_platform_device_count=N; this module
re-runs itself in a subprocess with that flag when the current process has
too few devices): they share the same cores, so the numbers show the
overhead of sharding, not a speed-up. (Training may still look faster on
more simulated devices: a smaller per-device batch runs faster per image on
a CPU, and several devices keep more cores busy.) Speed-ups need real
devices (GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from jax_al import usage

CPU_NOTE = ("CPU devices are simulated (--xla_force_host_platform_device_count) and share "
            "the same cores: these numbers show the overhead of sharding, not a speed-up. "
            "Where more devices look faster (training), it is because each simulated "
            "device runs a smaller per-device batch, which this CPU processes faster per "
            "image, and keeps more cores busy; it is not more hardware")
# (full, --quick) defaults.
DEFAULTS = {
    "model": ("resnet18", "cnn"), "width": (1.0, 0.5), "batch": (256, 128),
    "n_train": (25600, 2048), "pool": (50000, 4096), "dim": (512, 64),
    "labeled": (5000, 512), "repeats": (5, 3),
    "strategies": ("entropy,coreset,uncertainty_mmd", "entropy,coreset,uncertainty_mmd"),
}
# The folder holding the jax_al package this module belongs to (a checkout or
# site-packages): the simulated-device subprocess imports the same one.
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog=usage.argparse_prog("python -m jax_al.bench scaling"),
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="CPU sizes (small model and pool)")
  p.add_argument("--devices", default="1,2,4", help="comma-separated device counts")
  p.add_argument("--json", help="write the results here")
  p.add_argument("--model", help="cnn | resnet18 (full: resnet18, quick: cnn)")
  p.add_argument("--width", type=float, help="model width multiplier")
  p.add_argument("--batch", type=int, help="global training batch (split over devices)")
  p.add_argument("--n-train", type=int, help="training images per epoch")
  p.add_argument("--pool", type=int, help="candidates scored per selection")
  p.add_argument("--dim", type=int, help="feature dimension of the pool")
  p.add_argument("--labeled", type=int, help="labeled rows given to the strategies")
  p.add_argument("--budget", type=int, default=128, help="picks per selection")
  p.add_argument("--strategies", help="comma-separated strategies to time")
  p.add_argument("--config", help="config file[:preset] whose train and al fields the parts "
                 "start from (default: configs/cifar10.py of the source checkout)")
  p.add_argument("--repeats", type=int, help="timed repeats (median reported)")
  p.add_argument("--no-train", action="store_true", help="skip the training part")
  p.add_argument("--no-select", action="store_true", help="skip the selection part")
  p.add_argument("--in-subprocess", action="store_true", help=argparse.SUPPRESS)
  return p


def _csv(s: str) -> list[str]:
  return [x.strip() for x in s.split(",") if x.strip()]


def _resolve(args) -> None:
  q = int(bool(args.quick))
  for name, vals in DEFAULTS.items():
    if getattr(args, name) is None:
      setattr(args, name, vals[q])
  try:
    args.devices = sorted({int(d) for d in _csv(args.devices)})
  except ValueError:
    raise SystemExit(f"error: --devices {args.devices!r}: give integers, e.g. 1,2,4") from None
  args.strategies = _csv(args.strategies)
  if not args.devices or min(args.devices) < 1:
    raise SystemExit("error: --devices must be positive integers")
  for name in ("batch", "n_train", "pool", "dim", "labeled", "repeats", "budget"):
    if getattr(args, name) < 1:
      raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1")
  bad = [n for n in args.devices if args.batch % n]
  if bad:
    raise SystemExit(f"error: --batch {args.batch} does not divide by device count(s) {bad}")


def _rerun_with_simulated_devices(argv: list[str], n: int) -> dict:
  """Runs this benchmark in a fresh process that has `n` simulated CPU devices."""
  flags = os.environ.get("XLA_FLAGS", "")
  flags = " ".join(f for f in flags.split() if "xla_force_host_platform_device_count" not in f)
  env = dict(os.environ, XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count={n}".strip(),
             JAX_PLATFORMS="cpu")
  env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT)]
                                      + [p for p in [env.get("PYTHONPATH")] if p])
  out_json = None
  rest = list(argv)
  if "--json" in rest:  # the parent writes the file
    i = rest.index("--json")
    out_json = rest[i + 1]
    del rest[i:i + 2]
  rest = [a for a in rest if not a.startswith("--json=")]
  # The same working folder (relative --config paths stay valid) and the same
  # site setting: a parent started without site-packages (-S, with an explicit
  # PYTHONPATH) gets a child without them too.
  flags_ = ["-S"] if sys.flags.no_site else []
  proc = subprocess.run([sys.executable, *flags_, "-m", "jax_al.bench.scaling", *rest,
                         "--in-subprocess"], env=env, stdout=subprocess.PIPE, text=True)
  doc = None
  for line in proc.stdout.splitlines():
    if line.startswith("SCALING_JSON "):
      doc = json.loads(line[len("SCALING_JSON "):])
    else:
      print(line, flush=True)
  if proc.returncode or doc is None:
    raise SystemExit(f"error: the simulated-device subprocess failed (rc {proc.returncode})")
  if out_json:
    _write(out_json, doc)
  return doc


def _write(path: str, doc: dict) -> None:
  from jax_al import files
  from jax_al.bench import common
  common.check_json(path)
  files.write_output_json(Path(path), doc)


def _train_rows(args, counts: list[int], common) -> list[dict]:
  """Builds and warms up one Trainer per device count, then times epochs round-robin.

  Interleaving the device counts within each repeat spreads any load from
  other processes over all of them alike.
  """
  import jax
  import numpy as np
  from jax_al import compiles, sharding, train

  c = common.load_config(args.config)
  c.model.name, c.model.width = args.model, args.width
  c.train.batch_size, c.train.steps_per_call = args.batch, 0
  c.augment.flip, c.augment.crop_pad = True, 4
  shape = (32, 32, 3)
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (args.n_train, *shape), dtype=np.uint8)
  y = rng.integers(0, 10, args.n_train).astype(np.int32)
  mask = np.ones(args.n_train, bool)
  gd, params, bs = train.init_model(c, 10, shape, jax.random.key(0))
  runs = {}
  for n in counts:
    mesh = None if n == 1 else sharding.make_mesh(n)
    tr = train.Trainer(gd, train.StepConfig.from_config(c, args.n_train), args.n_train,
                       mesh=mesh)
    r = dict(tr=tr, images=sharding.place(mesh, x), labels=sharding.place(mesh, y),
             state=tr.new_state(params, bs), epoch=0, times=[])
    runs[n] = r

  def one_epoch(r):
    r["epoch"] += 1
    r["state"], loss = r["tr"].run_epoch(
        r["state"], r["images"], r["labels"], mask, args.n_train, jax.random.key(r["epoch"]),
        jax.random.key(10**6 + r["epoch"]), 0.01)
    return loss

  for n, r in runs.items():  # warm-up: compiles
    with compiles.CompileLog() as ct:
      common.timed(lambda: one_epoch(r))
    r["compile_s"] = ct.seconds
  for _ in range(args.repeats):
    for n, r in runs.items():
      r["loss"], t = common.timed(lambda: one_epoch(r))
      r["times"].append(t)
  rows = []
  for n, r in runs.items():
    sec = common.median(r["times"])
    rows.append({"part": "train", "devices": n, "model": args.model, "width": args.width,
                 "batch": args.batch, "per_device_batch": args.batch // n,
                 "images": args.n_train, "compile_s": r["compile_s"], "epoch_s": sec,
                 "epoch_s_all": r["times"], "images_per_s": args.n_train / sec,
                 "final_loss": float(r["loss"])})
  return rows


def _pool(args):
  import jax.numpy as jnp
  import numpy as np
  from jax_al import strategies
  rng = np.random.default_rng(1)
  f = lambda *s: jnp.asarray(rng.normal(size=s).astype(np.float32))
  return strategies.Pool(f(args.pool, args.dim), f(args.pool, 10), f(args.labeled, args.dim),
                         f(args.labeled, 10), 10)


def _select_rows(args, counts: list[int], pool, common) -> list[dict]:
  """Per strategy: warms up every device count, then times selections round-robin."""
  import jax
  import numpy as np
  from jax_al import compiles, sharding, strategies

  placed = {n: sharding.place_pool(None if n == 1 else sharding.make_mesh(n), pool)
            for n in counts}
  cfg = common.load_config(args.config).al
  key = jax.random.key(0)
  rows = []
  for name in args.strategies:
    s = strategies.get_strategy(name, cfg)
    info = {}
    for n in counts:
      with compiles.CompileLog() as ct:
        sel, _ = common.timed(lambda: s.select(placed[n], args.budget, key))
      info[n] = dict(compile_s=ct.seconds, idx=np.asarray(sel.indices), times=[])
    for _ in range(args.repeats):
      for n in counts:
        info[n]["times"].append(common.timed(lambda: s.select(placed[n], args.budget, key))[1])
    ref = info[counts[0]]["idx"]
    for n in counts:
      spec = getattr(placed[n].features.sharding, "spec", None)
      rows.append({"part": "selection", "devices": n, "strategy": name, "pool": args.pool,
                   "dim": args.dim, "labeled": args.labeled, "budget": args.budget,
                   "pool_sharding": "single device" if spec is None else str(spec),
                   "compile_s": info[n]["compile_s"],
                   "seconds": common.median(info[n]["times"]), "seconds_all": info[n]["times"],
                   "same_indices": bool(np.array_equal(ref, info[n]["idx"]))})
  return rows


def _print_table(rows: list[dict], common) -> None:
  tr = [r for r in rows if r["part"] == "train"]
  if tr:
    base = next((r["images_per_s"] for r in tr if r["devices"] == 1), None)
    for r in tr:
      r["relative_to_1_device"] = r["images_per_s"] / base if base else None
    print("\ntraining (data parallel)")
    print(common.table(tr, [("devices", "devices"), ("model", "model"), ("batch", "batch"),
                            ("per_device_batch", "per device"), ("compile_s", "compile s"),
                            ("epoch_s", "epoch s"), ("images_per_s", "images/s"),
                            ("relative_to_1_device", "x 1 device")]))
  sel = [r for r in rows if r["part"] == "selection"]
  if sel:
    for r in sel:
      base = next((b["seconds"] for b in sel
                   if b["devices"] == 1 and b["strategy"] == r["strategy"]), None)
      r["relative_to_1_device"] = base / r["seconds"] if base else None
    print("\nselection (pool sharded)")
    print(common.table(sel, [("strategy", "strategy"), ("devices", "devices"),
                             ("pool", "pool"), ("pool_sharding", "pool sharding"),
                             ("compile_s", "compile s"), ("seconds", "seconds"),
                             ("relative_to_1_device", "speed x 1 device"),
                             ("same_indices", "same picks")]))


def main(argv: list[str] | None = None) -> dict:
  """Runs the scaling benchmark; returns {"meta": ..., "scaling": [rows], "note": ...}."""
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parser().parse_args(argv)
  _resolve(args)
  from jax_al.bench import common
  common.check_json(args.json)  # a file jax-al did not write is refused before any work
  if not (args.no_train and args.no_select):  # their config file, before any device work
    common.config_spec(args.config)

  import jax
  want = max(args.devices)
  have = jax.device_count()
  if want > have and jax.default_backend() == "cpu" and not args.in_subprocess:
    return _rerun_with_simulated_devices(argv, want)

  from jax_al.bench import common
  doc = {"meta": common.environment(), "scaling": [], "skipped_devices": []}
  cpu = jax.default_backend() == "cpu"
  doc["note"] = CPU_NOTE if cpu else "real devices: relative numbers are speed-ups"
  counts = [n for n in args.devices if n <= have]
  doc["skipped_devices"] = [n for n in args.devices if n > have]
  print(f"jax_al.bench scaling on {doc['meta']['device_kind']} ({jax.default_backend()}, "
        f"{have} device(s)), devices {counts}"
        + (f", skipped {doc['skipped_devices']} (not visible)" if doc["skipped_devices"] else ""),
        flush=True)
  if cpu:
    print(f"NOTE: {CPU_NOTE}.", flush=True)
  rows = doc["scaling"]
  if not args.no_train:
    for r in _train_rows(args, counts, common):
      rows.append(r)
      print(f"  train {r['devices']} device(s): {r['images_per_s']:,.0f} images/s "
            f"(epoch {r['epoch_s']:.3f} s, compile {r['compile_s']:.1f} s)", flush=True)
  if not args.no_select and counts:
    for r in _select_rows(args, counts, _pool(args), common):
      rows.append(r)
      print(f"  select {r['strategy']} {r['devices']} device(s): {r['seconds']:.4f} s "
            f"(compile {r['compile_s']:.1f} s, same picks {r['same_indices']})", flush=True)
  _print_table(rows, common)
  doc["memory"] = common.memory()
  if args.in_subprocess:
    print("SCALING_JSON " + json.dumps(doc, default=float), flush=True)
  elif args.json:
    _write(args.json, doc)
    print(f"wrote {args.json}")
  return doc


if __name__ == "__main__":
  main()
