"""`python -m jax_al.bench <what> [--quick] [--json PATH] [options]`.

    python -m jax_al.bench train --quick                       # CPU-sized
    python -m jax_al.bench train,features --json out.json      # GPU sizes
    python -m jax_al.bench protocol --data-path cifar10-jpeg.tar.gz --config.train.dtype=bfloat16
    python -m jax_al.bench selection [its own flags]           # jax_al.bench.selection
    python -m jax_al.bench scaling [its own flags]             # jax_al.bench.scaling
    python -m jax_al.bench parallel [its own flags]            # jax_al.bench.parallel
    python -m jax_al.bench acquisitions [its own flags]        # every strategy's select cost
    python -m jax_al.bench select [its own flags]              # jax_al.select at 20k-1M rows
    python -m jax_al.bench profile --profile-dir prof/         # where an epoch's time goes
    python -m jax_al.bench all --quick --json docs/bench/cpu.json

`what` is one of train, features, profile, protocol, selection, all (= those
five), or a comma-separated list of them; `scaling`, `parallel` and `acquisitions` run
alone. `selection`, `scaling`, `parallel` and `acquisitions` given alone get the rest of
the command line verbatim.
In a list, arguments this parser does not know go to the protocol (`--config.*`)
or to the selection benchmark (anything else).
"""

from __future__ import annotations

import argparse
import sys

from jax_al import usage

PARTS = ("train", "features", "profile", "protocol", "selection")
# Sizes: (full, --quick). Full sizes are the CIFAR-10 protocol's; quick ones run
# on a 2-core CPU in a few minutes.
DEFAULTS = {
    "models": ("resnet18,cnn", "resnet18,cnn"),
    "dtypes": ("bfloat16,float32", "float32,bfloat16"),
    "variants": ("step,chunk,epoch",) * 2,
    "width": (1.0, 0.125),
    "n_train": (50000, 1024),
    "sizes": ("5000,20000", "256,512"),
    "repeats": (5, 2),
    "pool": (50000, 2000),
    "chunk": (40, 4),  # quick: 4 of the 8 rows, so chunk and epoch differ
}


def _csv(s: str) -> list[str]:
  return [p.strip() for p in s.split(",") if p.strip()]


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog=usage.argparse_prog("python -m jax_al.bench"),
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("what", help="train | features | profile | protocol | selection | all, "
                 "or a comma-separated list")
  p.add_argument("--quick", action="store_true", help="CPU sizes (tiny widths, few steps)")
  p.add_argument("--json", help="write the results here (rewritten after every measurement)")
  g = p.add_argument_group("train / features")
  g.add_argument("--models", help="comma-separated: resnet18, cnn (default both), mlp (no "
                 "convolution: the fastest to compile, for CPU dry runs); --cnn-width sets "
                 "the width of cnn and mlp")
  g.add_argument("--dtypes", help="comma-separated: float32, bfloat16")
  g.add_argument("--variants", help="comma-separated: step (steps_per_call=1, no loop), "
                 "chunk (steps_per_call=--chunk in a lax.scan), epoch (every row of the "
                 "training set in one lax.scan), epochsK (K epochs per call), each with "
                 "optional +select, +while, +bnpartial, +flat (train.* step variants)")
  g.add_argument("--width", type=float, help="ResNet-18 width multiplier (1.0; quick 0.125)")
  g.add_argument("--cnn-width", type=float, default=1.0, help="small-CNN width multiplier")
  g.add_argument("--chunk", type=int, help="steps per call of the chunk variant (40; "
                 "quick 4)")
  g.add_argument("--batch", type=int, default=128)
  g.add_argument("--n-train", type=int, help="training-set rows on the device (50,000)")
  g.add_argument("--sizes", help="labeled sizes to time an epoch at (5000,20000)")
  g.add_argument("--epochs", type=int, default=200, help="epochs per cycle for the "
                 "extrapolated cycle time")
  g.add_argument("--repeats", type=int, help="timed repeats (median reported)")
  g.add_argument("--pool", type=int, help="feature-extraction pool size (50,000)")
  g.add_argument("--eval-batch", type=int, help="predict chunk size (config: 1000)")
  g.add_argument("--profile-dir", help="profile: keep the jax.profiler trace here "
                 "(default: a temporary folder, deleted after the summary)")
  p.add_argument("--config", help="config file[:preset] every part starts from (default: "
                 "configs/cifar10.py of the source checkout; an installed package has none, "
                 "so pass it). train/features/profile take its train/data fields and set "
                 "model, width, dtype and steps themselves; selection's preset row takes its "
                 "al fields; protocol runs it (in `all`, giving it runs the protocol)")
  g = p.add_argument_group("protocol")
  g.add_argument("--data-path", help="image folder or .tar(.gz) for data.source=folder")
  g.add_argument("--workdir", help="run folder (default: a temporary one, deleted after); "
                 "one that holds a run is refused unless --overwrite")
  g.add_argument("--overwrite", action="store_true", help="replace the run in --workdir (as "
                 "run.py --overwrite: the old run comes back if the new one fails before its "
                 "first checkpoint)")
  g.add_argument("--quiet", action="store_true", help="no per-epoch log lines")
  return p


def _resolve(args) -> None:
  q = int(bool(args.quick))
  for name, vals in DEFAULTS.items():
    if getattr(args, name) is None:
      setattr(args, name, vals[q])
  args.models, args.dtypes, args.variants = (_csv(args.models), _csv(args.dtypes),
                                             _csv(args.variants))
  try:
    args.sizes = sorted(int(s) for s in _csv(args.sizes))
  except ValueError:
    raise SystemExit(f"error: --sizes={args.sizes!r}: expected comma-separated integers. "
                     "Fix: e.g. --sizes=5000,20000") from None
  for flag, value, example in (("--batch", args.batch, 128), ("--chunk", args.chunk, 40),
                               ("--epochs", args.epochs, 200), ("--n-train", args.n_train, 50000),
                               ("--eval-batch", args.eval_batch, 1000),
                               ("--width", args.width, 1.0), ("--cnn-width", args.cnn_width, 1.0)):
    if value is not None and not value > 0:  # `not >`: NaN is refused too
      raise SystemExit(f"error: {flag}={value}: must be positive. Fix: e.g. {flag}={example}")
  from jax_al.bench.train import MODIFIERS, VARIANTS, parse_variant

  def bad_variant(v):
    try:
      parse_variant(v, 1, 1, 1)
    except ValueError:
      return True
    return False

  bad = ([m for m in args.models if m not in ("resnet18", "cnn", "mlp")]
         + [d for d in args.dtypes if d not in ("float32", "bfloat16")]
         + [v for v in args.variants if bad_variant(v)])
  if bad:
    raise SystemExit(f"error: unknown value(s) {bad}: models are resnet18/cnn/mlp, dtypes "
                     f"float32/bfloat16, variants {'/'.join(VARIANTS)} or epochsK, each "
                     f"with optional +{'/+'.join(MODIFIERS)}")
  if args.repeats < 1 or args.pool < 1 or not args.sizes or min(args.sizes) < 1:
    raise SystemExit("error: --repeats, --pool and --sizes must be positive")
  if max(args.sizes) > args.n_train:
    raise SystemExit(f"error: --sizes {args.sizes} exceed --n-train {args.n_train}")


# Benchmarks that live in their own modules, each with `main(argv) -> dict`.
# `python -m jax_al.bench NAME ...` hands them the rest of the command line verbatim.
DELEGATES = {"selection": "jax_al.bench.selection", "scaling": "jax_al.bench.scaling",
             "parallel": "jax_al.bench.parallel", "acquisitions": "jax_al.bench.acquisitions",
             "select": "jax_al.bench.scale"}


def _delegate_main(name: str):
  import importlib
  module = DELEGATES[name]
  try:
    mod = importlib.import_module(module)
  except ModuleNotFoundError as e:
    if e.name != module:
      raise
    raise SystemExit(f"error: the {name} benchmark ({module.replace('.', '/')}.py) is not in "
                     "this checkout; run the other parts (train, features, protocol)") from None
  return mod.main


def _selection_main():
  return _delegate_main("selection")


def main(argv: list[str] | None = None) -> dict:
  argv = list(sys.argv[1:] if argv is None else argv)
  if argv and argv[0] in DELEGATES:  # their own flags, verbatim
    return _delegate_main(argv[0])(argv[1:])
  args, unknown = parser().parse_known_args(argv)
  what = PARTS if args.what == "all" else tuple(_csv(args.what))
  bad = [w for w in what if w not in PARTS]
  if bad or not what:
    raise SystemExit(f"error: unknown benchmark {bad or args.what!r}; choose from "
                     f"{', '.join(PARTS)}, all")
  config_args = [a for a in unknown if a.startswith("--config.")]
  other_args = [a for a in unknown if not a.startswith("--config.")]
  if config_args and "protocol" not in what:
    raise SystemExit(f"error: {config_args} only apply to the protocol benchmark")
  if other_args and "selection" not in what:
    raise SystemExit(f"error: unrecognized arguments: {' '.join(other_args)}")
  _resolve(args)

  from jax_al.bench import common, train
  if set(what) & {"train", "features", "profile"}:  # the config file they start from
    common.config_spec(args.config)
  # Every output path is checked before anything is written or measured.
  common.check_json(args.json)
  if "protocol" in what:
    from jax_al.bench import protocol
    protocol.check_workdir(args.workdir, args.overwrite)
  if "profile" in what and args.profile_dir:
    from jax_al import files
    try:
      files.check_output_dir(args.profile_dir, "--profile-dir")
    except files.OutputError as e:
      raise SystemExit(f"error: {e}") from None
  results = common.Results(args.json)
  results.doc["meta"].update(quick=bool(args.quick), parts=list(what))
  m = results.doc["meta"]
  print(f"jax_al.bench {','.join(what)} on {m['device_kind']} ({m['backend']}, "
        f"{m['device_count']} device(s)), jax {m['jax']}, {m['date']}", flush=True)
  out = {}
  if "features" in what:  # first: one cheap compile, so a time cap rarely loses it
    out["features"] = train.bench_features(args, results)
    train.print_features(out["features"])
  if "train" in what:
    out["train"] = train.bench_train(args, results)
    train.print_train(out["train"], results.doc.get("train_protocol_estimates"))
  if "profile" in what:
    from jax_al.bench import profile
    out["profile"] = profile.bench_profile(args, results)
    profile.print_profile(out["profile"])
  if "selection" in what:
    try:
      sel_main = _selection_main()
    except SystemExit as e:
      if args.what != "all":
        raise
      print(f"\nselection: skipped ({e})")
      results.set("selection", {"status": "skipped", "reason": str(e)})
    else:
      sel = sel_main((["--quick"] if args.quick else [])
                     + (["--config", args.config] if args.config else []) + other_args)
      results.set("selection", sel)
      out["selection"] = sel
  if "protocol" in what:
    from jax_al.bench import protocol
    if args.data_path is None and args.config is None and not config_args and args.what == "all":
      print("\nprotocol: skipped (give --data-path to an image folder or archive, or "
            "--config/--config.* overrides)")
      results.set("protocol", {"status": "skipped", "reason": "no --data-path given"})
    else:
      out["protocol"] = protocol.bench_protocol(args, config_args, results)
      protocol.print_protocol(out["protocol"])
  mem = common.memory()
  print(f"\npeak device memory {common.fmt_bytes(mem['peak_device_bytes'])}, "
        f"peak host RSS {common.fmt_bytes(mem['peak_rss_bytes'])}")
  results.save()
  if args.json:
    print(f"wrote {args.json}")
  return results.doc


if __name__ == "__main__":
  main()
