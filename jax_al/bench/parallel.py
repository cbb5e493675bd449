"""Trials in parallel on one device (`compare.parallel = "vmap"`): total images/s.

    python -m jax_al.bench.parallel [--quick] [--trials 3] [--json PATH]

Times one training epoch of the sequential path (`Trainer.run_epoch`, one
trial) and of T trials stacked into one vmapped program
(`vmap_trials.StackedTrainer.run_epoch`), on `--labeled` of `--n-train` random
uint8 images of CIFAR shape, each trial with its own labeled set, order and
augmentation keys, as in the loop. Total images/s = trials x labeled / epoch
seconds; `speedup` is relative to the sequential path, so T sequential
trials take T / speedup times longer than T vmapped ones.

Compilation is excluded (a warm-up epoch first, its compile time reported
apart) and the variants are timed round-robin within each repeat, so load
from other processes hits them alike. `check` compares the results: one step
of every trial from the same start, vmapped vs one by one, beside the step's
own sensitivity to a 1e-7 nudge of the weights.

`--ensemble`: the stacked models share trial 0's labeled set, as the members
of a deep ensemble do (`ensemble_*` strategies train K members this way);
the rows' mode is "ensemble" and `vs_one_member` = epoch s of the K members
/ epoch s of one, the cost of the ensemble in units of one model (K trained
one after another cost K).

On CPU, stacking does not pay: one trial's convolutions already keep the
cores busy, and XLA:CPU runs the batched (grouped) convolutions of vmapped
weights slower than T separate ones. The gain is meant for a GPU, where one
small model leaves most of the device idle.
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np

from jax_al import compiles, vmap_trials
from jax_al.bench import common
from jax_al.bench.train import IMAGE_SHAPE, NUM_CLASSES, fake_data, make_config, parse_variant
from jax_al.train import StepConfig, Trainer, init_model

# (full, --quick) defaults.
DEFAULTS = {"width": (1.0, 0.125), "dtype": ("bfloat16", "float32"), "n_train": (50000, 1024),
            "labeled": (5000, 256), "repeats": (5, 2)}
COLUMNS = [("variant", "variant"), ("mode", "mode"), ("trials", "trials"),
           ("labeled", "labeled/trial"),
           ("compile_s", "compile s"), ("epoch_s", "epoch s"),
           ("images_per_s", "total images/s"), ("speedup", "speedup"),
           ("peak_device_bytes", "peak dev mem")]


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m jax_al.bench.parallel", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="CPU sizes (tiny width, few images)")
  p.add_argument("--trials", default="3", help="comma-separated trial counts to stack (3)")
  p.add_argument("--model", default="resnet18", help="resnet18 | cnn | mlp")
  p.add_argument("--width", type=float, help="width multiplier (1.0; quick 0.125)")
  p.add_argument("--dtype", help="float32 | bfloat16 (bfloat16; quick float32)")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--steps-per-call", type=int, default=0, help="0 = auto (1 on CPU, else 40)")
  p.add_argument("--variant", default="", help="a train-bench step variant instead, e.g. "
                 "chunk or epochs5+bnpartial+flat (jax_al.bench.train.parse_variant; chunk = "
                 "--steps-per-call, 40 if 0)")
  p.add_argument("--n-train", type=int, help="training-set rows on the device (50,000)")
  p.add_argument("--labeled", type=int, help="labeled examples per trial (5,000)")
  p.add_argument("--repeats", type=int, help="timed epochs per variant (median reported)")
  p.add_argument("--ensemble", action="store_true", help="the stacked models share one "
                 "labeled set (ensemble members): mode 'ensemble', with vs_one_member")
  p.add_argument("--vmap-only", action="store_true", help="time the vmapped trials only: no "
                 "sequential row, no vmapped-vs-sequential check (each compiles its own program)")
  p.add_argument("--config", help="config file[:preset] whose train.* fields the trials "
                 "start from (default: configs/cifar10.py of the source checkout)")
  p.add_argument("--json", help="write the results here")
  return p


def _args(argv) -> argparse.Namespace:
  args = parser().parse_args(argv)
  q = int(bool(args.quick))
  for name, vals in DEFAULTS.items():
    if getattr(args, name) is None:
      setattr(args, name, vals[q])
  try:
    args.trials = sorted({int(t) for t in args.trials.split(",") if t.strip()})
  except ValueError:
    raise SystemExit(f"error: --trials {args.trials!r}: give integers, e.g. 3") from None
  if (not args.trials or min(args.trials) < 1 or args.repeats < 1 or args.labeled < 1
      or args.labeled > args.n_train):
    raise SystemExit("error: --trials and --repeats must be >= 1 and 1 <= --labeled <= "
                     "--n-train")
  if args.model not in ("resnet18", "cnn", "mlp") or args.dtype not in ("float32", "bfloat16"):
    raise SystemExit("error: --model is resnet18, cnn or mlp, --dtype float32 or bfloat16")
  common.config_spec(args.config)  # the config file, before any device work
  return args


def _columns(args) -> list:
  return COLUMNS + [("vs_one_member", "x one member")] if args.ensemble else COLUMNS


def _rows(args, trainer, times, compile_s) -> list[dict]:
  """One row per (mode, trials) with at least one timed epoch."""
  import os
  seq = times.get(("sequential", 1))
  base = args.labeled / common.median(seq) if seq else None
  one = common.median(seq) if seq else None
  rows = []
  for (mode, n), ts in times.items():
    if not ts:
      continue
    epoch_s = common.median(ts)
    rows.append({"model": args.model, "width": args.width, "dtype": args.dtype, "mode": mode,
                 "variant": args.variant or f"spc={trainer.sc.steps_per_call}",
                 "xla_flags": os.environ.get("XLA_FLAGS", ""),
                 "trials": n, "labeled": args.labeled, "n_train": args.n_train,
                 "batch": args.batch, "steps_per_call": trainer.sc.steps_per_call,
                 "epochs_per_call": trainer.sc.variant.epochs_per_call,
                 "steps": math.ceil(args.labeled / args.batch), "compile_s": compile_s[(mode, n)],
                 "epoch_s": epoch_s, "epoch_s_all": ts, "repeats": len(ts),
                 "images_per_s": n * args.labeled / epoch_s,
                 "speedup": None if base is None else n * args.labeled / epoch_s / base,
                 **({"vs_one_member": None if one is None or mode != "ensemble"
                     else epoch_s / one} if args.ensemble else {}),
                 **common.memory()})
  return rows


def main(argv: list[str] | None = None) -> dict:
  args = _args(argv)
  results = common.Results(args.json)
  m = results.doc["meta"]
  print(f"jax_al.bench.parallel on {m['device_kind']} ({m['backend']}), jax {m['jax']}: "
        f"{args.model} w={args.width} {args.dtype}, {args.labeled} of {args.n_train} images "
        f"labeled per trial, batch {args.batch}", flush=True)
  images, labels = fake_data(args.n_train, seed=0)
  spc, fields = args.steps_per_call, {}
  if args.variant:
    try:
      spc, fields = parse_variant(args.variant, args.steps_per_call or 40, args.n_train,
                                  args.batch)
    except ValueError as e:
      raise SystemExit(f"error: --variant: {e}") from None
  c = make_config(args.model, args.width, args.dtype, spc, args.batch, fields=fields,
                  config=args.config)
  trainer = Trainer(*init_model(c, NUM_CLASSES, IMAGE_SHAPE, jax.random.key(0))[:1],
                    StepConfig.from_config(c, args.n_train), args.n_train)
  stacked_trainer = vmap_trials.StackedTrainer(trainer)
  t_max = max(args.trials)
  inits = [init_model(c, NUM_CLASSES, IMAGE_SHAPE, jax.random.key(t))[1:] for t in range(t_max)]
  rng = np.random.default_rng(0)
  masks = np.zeros((t_max, args.n_train), bool)
  for t in range(t_max):
    masks[t, rng.choice(args.n_train, args.labeled, replace=False)] = True
  if args.ensemble:  # members: one labeled set, their own weights, orders and views
    masks[:] = masks[0]
  masks = jnp.asarray(masks)
  stacked = "ensemble" if args.ensemble else "vmap"
  keys = lambda name, epoch, n: jnp.stack(
      [jax.random.fold_in(jax.random.key(1000 * (name == "aug") + t), epoch) for t in range(n)])
  lr = c.train.lr
  k = trainer.sc.variant.epochs_per_call  # > 0: k epochs per call (run_epochs), timed per epoch
  base_keys = lambda name, n: jnp.stack([jax.random.key(1000 * (name == "aug") + t)
                                         for t in range(n)])

  # (mode, trials): (a fresh state, one call from a state at a call number)
  if k:
    variants = {("sequential", 1): (
        lambda: trainer.new_state(*inits[0]),
        lambda s, e: trainer.run_epochs(s, images, labels, masks[0], args.labeled,
                                        base_keys("order", 1)[0], base_keys("aug", 1)[0],
                                        e * k, [lr] * k))}
    for n in args.trials:
      variants[(stacked, n)] = (
          lambda n=n: vmap_trials.stack([trainer.new_state(*inits[t]) for t in range(n)]),
          lambda s, e, n=n: stacked_trainer.run_epochs(
              s, images, labels, masks[:n], args.labeled, base_keys("order", n),
              base_keys("aug", n), e * k, [lr] * k))
  else:
    variants = {("sequential", 1): (
        lambda: trainer.new_state(*inits[0]),
        lambda s, e: trainer.run_epoch(s, images, labels, masks[0], args.labeled,
                                       keys("order", e, 1)[0], keys("aug", e, 1)[0], lr))}
    for n in args.trials:
      variants[(stacked, n)] = (
          lambda n=n: vmap_trials.stack([trainer.new_state(*inits[t]) for t in range(n)]),
          lambda s, e, n=n: stacked_trainer.run_epoch(s, images, labels, masks[:n],
                                                      args.labeled, keys("order", e, n),
                                                      keys("aug", e, n), lr))

  if args.vmap_only:  # the sequential row is the train bench's; saves its compilation
    del variants[("sequential", 1)]
  states, times, compile_s = {}, {v: [] for v in variants}, {}
  for v, (fresh, epoch) in variants.items():  # warm-up: compiles
    with compiles.CompileLog() as ct:
      (states[v], _), first = common.timed(lambda: epoch(fresh(), 0))
    compile_s[v] = ct.seconds if ct.events else first
  for r in range(args.repeats):
    for v, (_, epoch) in variants.items():  # round-robin
      (states[v], _), t = common.timed(lambda: epoch(states[v], r + 1))
      times[v].append(t / max(k, 1))  # seconds per epoch
    # Rows so far, written after every repeat (a cut keeps them).
    results.set("parallel", {"rows": _rows(args, trainer, times, compile_s),
                             "status": f"{r + 1} of {args.repeats} repeats"})

  if args.vmap_only:
    out = {"rows": _rows(args, trainer, times, compile_s), "status": "done",
           "check": "skipped (--vmap-only); tests/test_parallel.py pins vmapped = sequential"}
    results.set("parallel", out)
    print(common.table(out["rows"], _columns(args)))
    return results.doc

  # Correctness: one step of every trial from the same start, vmapped vs alone,
  # beside the step's own sensitivity: the sequential step from weights nudged
  # by about one float32 ulp (1e-7 relative). A ResNet at initialisation on
  # random labels is so sensitive that over a few steps any difference grows
  # chaotically, hence a single step.
  one = np.zeros((t_max, args.n_train), bool)
  n_one = min(args.batch, args.n_train)
  for t in range(t_max):
    one[t, rng.choice(args.n_train, n_one, replace=False)] = True
  one = jnp.asarray(one)
  k_order, k_aug = keys("order", 0, t_max), keys("aug", 0, t_max)
  got, _ = stacked_trainer.run_epoch(variants[(stacked, t_max)][0](), images, labels, one,
                                     n_one, k_order, k_aug, lr)
  nudge = lambda p: jax.tree.map(
      lambda x: x * (1 + 1e-7 * jax.random.normal(jax.random.key(7), x.shape, x.dtype)), p)
  diff = floor = update = 0.0
  for t in range(t_max):
    step = lambda params: trainer.run_epoch(trainer.new_state(params, inits[t][1]), images,
                                            labels, one[t], n_one, k_order[t], k_aug[t], lr)[0]
    alone, nudged = step(inits[t][0]), step(nudge(inits[t][0]))
    for p0, a, b, c in zip(*(jax.tree.leaves(x) for x in (inits[t][0], alone.params,
                                                            got.params, nudged.params))):
      p0, a, b, c = (np.asarray(x, np.float32) for x in (p0, a, b[t], c))
      diff = max(diff, float(np.abs(a - b).max()))
      floor = max(floor, float(np.abs(a - c).max()))
      update = max(update, float(np.abs(a - p0).max()))
  del states, got

  rows = _rows(args, trainer, times, compile_s)
  check = {"trials": t_max, "max_param_diff": diff, "nudged_param_diff": floor,
           "max_update": update,
           "note": "one training step of every trial from the same start: max |param "
                   "difference| vmapped vs one by one; nudged_param_diff: the same for the "
                   "sequential step from weights nudged by 1e-7 (relative), the step's own "
                   "sensitivity to float rounding; max_update: the largest parameter change"}
  out = {"rows": rows, "check": check}
  if jax.default_backend() == "cpu":
    out["note"] = ("CPU: no GPU-like speed-up here; one trial's convolutions already use "
                   "every core, and XLA:CPU runs vmapped (grouped) convolutions slower")
  results.set("parallel", out)
  print(common.table(rows, _columns(args)))
  print(f"one step, vmapped vs sequential: max |param diff| {diff:.3g}; from weights nudged "
        f"by 1e-7: {floor:.3g}; largest update {update:.3g}")
  if "note" in out:
    print(out["note"])
  results.save()
  return results.doc


if __name__ == "__main__":
  main()
