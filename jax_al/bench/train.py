"""Training and feature-extraction throughput of the real `jax_al.train.Trainer`.

Data are random uint8 images of CIFAR shape held on the device, as the loop
holds the real ones; the training set always has `n_train` rows (50,000 for
CIFAR-10) and a labeled mask picks the first `labeled` of them, exactly as
`Trainer.fit` does in a cycle. Per (model, dtype, variant) one Trainer is
built and compiled once; every labeled size then reuses the same executable
(the bench records how many executables the jitted train function holds
afterwards: 1 means no recompilation).

Variants (`parse_variant`): `step` (steps_per_call=1: one jitted call per
batch, no loop -- what `train.steps_per_call=0` ("auto") picks on CPU),
`chunk` (steps_per_call=40: 40 steps fused in a `lax.scan`, what "auto"
picks on a GPU: the shipped default, every other row's `vs_default` is
relative to it) and `epoch` (steps_per_call = all rows of the training set:
the whole epoch in one `lax.scan`; steps without a labeled row are skipped
by a `lax.cond`); `epochsK` runs K epochs per call (train.epochs_per_call),
and `+select`, `+while`, `+bnpartial`, `+flat` switch on the other step
variants of `jax_al.train.StepVariant`. Each row records the train fields
and the process's XLA_FLAGS.

Cost: XLA's own analysis of the compiled one-step program gives FLOPs and
bytes accessed per image (`flops_per_image`, `bytes_per_image`); times
images/s that is the achieved TFLOP/s of every variant, to set against the
card's peak (H200: about 790 TFLOP/s bf16 dense, 4.8 TB/s).

Times exclude compilation (the first epoch is a warm-up: its compile time,
summed from jax's own compilation events, is reported apart); each repeat is
one epoch, waited for with `block_until_ready`, and the median is reported.
A cycle (200 epochs) is *extrapolated* from the median epoch time.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jax_al import compiles
from jax_al.bench import common
from jax_al.train import StepConfig, Trainer, init_model

VARIANTS = ("step", "chunk", "epoch")  # the bases; see `parse_variant` for the rest
# Modifiers of a base, each one train.* field (jax_al.train.StepVariant).
MODIFIERS = {"select": {"skip_padding": "select"}, "while": {"skip_padding": "while"},
             "bnpartial": {"bn_mask": "partial"}, "flat": {"flat_state": True}}
DEFAULT_VARIANT = "chunk"  # what train.steps_per_call=0 (auto) ships on a GPU
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10


def parse_variant(name: str, chunk: int, n_train: int, batch: int) -> tuple[int, dict]:
  """A variant name -> (steps per call, other train.* fields).

  `BASE[+MOD...]`: BASE is `step` (1 step per call), `chunk` (`chunk` steps
  in a lax.scan), `epoch` (every row of the training set in one lax.scan) or
  `epochsK` (chunks of `chunk` steps, K epochs per call: train.epochs_per_call
  = K); MOD is one of select, while (train.skip_padding), bnpartial
  (train.bn_mask=partial), flat (train.flat_state). Raises ValueError.
  """
  base, *mods = name.split("+")
  fields: dict = {}
  if base in ("step", "chunk", "epoch"):
    spc = {"step": 1, "chunk": chunk, "epoch": math.ceil(n_train / batch)}[base]
  elif base.startswith("epochs") and base[6:].isdigit() and int(base[6:]) >= 1:
    spc, fields["epochs_per_call"] = chunk, int(base[6:])
  else:
    raise ValueError(f"variant {name!r}: base {base!r} is not step, chunk, epoch or epochsK")
  for m in mods:
    if m not in MODIFIERS:
      raise ValueError(f"variant {name!r}: unknown modifier {m!r} (choose from "
                       f"{', '.join(MODIFIERS)})")
    fields.update(MODIFIERS[m])
  return spc, fields


def make_config(model: str, width: float, dtype: str, steps_per_call: int,
                batch: int, eval_batch: int | None = None, fields: dict | None = None,
                config: str | None = None):
  """Config file `config` (path[:preset]; None = the checkout's
  configs/cifar10.py, the CIFAR-10 protocol) with the benchmark's
  model/dtype/steps and other train.* `fields` (the step variants)."""
  c = common.load_config(config)
  c.model.name, c.model.width = model, float(width)
  c.train.dtype = dtype
  c.train.steps_per_call = int(steps_per_call)
  c.train.batch_size = int(batch)
  for k, v in (fields or {}).items():
    c.train[k] = v
  if eval_batch:
    c.train.eval_batch_size = int(eval_batch)
  return c


def fake_data(n: int, seed: int = 0):
  """Random uint8 images and labels, put on the device."""
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8)
  y = rng.integers(0, NUM_CLASSES, n).astype(np.int32)
  return jax.device_put(x), jax.device_put(y)


def build_trainer(args, model: str, dtype: str, steps_per_call: int,
                  fields: dict | None = None):
  """(config, Trainer over `args.n_train` rows, fresh state, params) for one model and dtype."""
  c = make_config(model, model_width(args, model), dtype, steps_per_call, args.batch,
                  fields=fields, config=getattr(args, "config", None))
  gd, params, bs = init_model(c, NUM_CLASSES, IMAGE_SHAPE, jax.random.key(0))
  trainer = Trainer(gd, StepConfig.from_config(c, args.n_train), args.n_train)
  return c, trainer, trainer.new_state(params, bs), params


def epoch_runner(trainer: Trainer, config, images, labels, labeled: int):
  """`run(state, i)`: one call of the Trainer from epoch i over the first
  `labeled` rows, with keys from i: one epoch, or `train.epochs_per_call` = k
  epochs (i*k .. i*k + k - 1) in one call. Returns (state, last epoch's loss);
  `run.epochs` is the number of epochs per call."""
  mask = jnp.asarray(np.arange(labels.shape[0]) < labeled)
  k = trainer.sc.variant.epochs_per_call
  if k:
    def run(state, i):
      state, losses = trainer.run_epochs(state, images, labels, mask, labeled,
                                         jax.random.key(i), jax.random.key(10**6 + i), i * k,
                                         [config.train.lr] * k)
      return state, losses[k - 1]
  else:
    run = lambda state, i: trainer.run_epoch(state, images, labels, mask, labeled,
                                             jax.random.key(i), jax.random.key(10**6 + i),
                                             config.train.lr)
  run.epochs = max(k, 1)
  return run


def _cache_size(trainer: Trainer) -> int | None:
  """Executables compiled for the Trainer's train calls (1 per program a
  variant uses; more means a recompilation)."""
  return trainer.train_executables()


def step_cost(trainer: Trainer, state, images, labels, labeled: int) -> dict:
  """XLA's cost analysis of one compiled train call, per image.

  Call it after the warm-up: lowering with the same shapes then hits the
  compilation cache (no new compile). XLA counts a loop body once, so only a
  one-step call (`steps_per_call = 1`) gives the cost of one step. Returns
  {"flops_per_image", "bytes_per_image"}, or {"cost_error": why} where the
  backend gives no analysis.
  """
  try:
    mask = jnp.asarray(np.arange(labels.shape[0]) < labeled)
    order, valid = trainer._order(jax.random.key(0), mask, trainer.sc.batch_size, trainer.rows)
    compiled = trainer._train.lower(
        state, jnp.zeros((), jnp.float32), images, labels, order, valid, jnp.int32(0),
        jax.random.key(0), jnp.float32(0.1)).compile()
    ca = compiled.cost_analysis()
    ca = ca[0] if isinstance(ca, (list, tuple)) else ca
    per = trainer.sc.batch_size * trainer.sc.steps_per_call
    return {"flops_per_image": float(ca["flops"]) / per,
            "bytes_per_image": float(ca["bytes accessed"]) / per}
  except Exception as e:  # pylint: disable=broad-except
    return {"cost_error": f"{type(e).__name__}: {e}"[:200]}


def model_width(args, model: str) -> float:
  return args.width if model == "resnet18" else args.cnn_width


TRAIN_COLUMNS = [("model", "model"), ("width", "width"), ("dtype", "dtype"),
                 ("variant", "variant"), ("steps_per_call", "spc"), ("labeled", "labeled"),
                 ("vs_default", "vs chunk"),
                 ("steps", "steps"), ("compile_s", "compile s"), ("epoch_s", "epoch s"),
                 ("images_per_s", "images/s"), ("step_ms", "ms/step"),
                 ("tflops", "TFLOP/s"), ("cycle_s_est", "cycle s (200 ep, est.)"),
                 ("peak_device_bytes", "peak dev mem")]


def bench_train(args, results: common.Results) -> list[dict]:
  """Measures every (model, dtype, variant, labeled size); returns the rows."""
  import os
  images, labels = fake_data(args.n_train, seed=0)
  rows, costs = [], {}
  xla_flags = os.environ.get("XLA_FLAGS", "")
  for model in args.models:
    for dtype in args.dtypes:
      for variant in args.variants:
        spc, fields = parse_variant(variant, args.chunk, args.n_train, args.batch)
        c, trainer, state, params = build_trainer(args, model, dtype, spc, fields)
        sc = trainer.sc
        n_params = int(sum(p.size for p in jax.tree.leaves(params)))
        compile_s = first_s = None
        epoch = 0
        for labeled in args.sizes:
          run = epoch_runner(trainer, c, images, labels, labeled)

          def one_epoch(state):
            nonlocal epoch
            epoch += 1
            return run(state, epoch)

          if compile_s is None:  # warm-up: compiles the order and train functions
            with compiles.CompileLog() as ct:
              (state, _), first_s = common.timed(lambda: one_epoch(state))
            compile_s, compile_src = ct.seconds, "jax compile events"
            if variant == "step":  # the plain one-step program: XLA's cost of one step
              costs[model, dtype] = step_cost(trainer, state, images, labels, labeled)
          times = []
          with compiles.CompileLog() as recompile:
            for _ in range(args.repeats):
              (state, loss), t = common.timed(lambda: one_epoch(state))
              times.append(t / run.epochs)  # seconds per epoch
          epoch_s = common.median(times)
          if labeled == args.sizes[0] and not ct.events:  # no events: first minus steady
            compile_s, compile_src = (max(first_s - run.epochs * epoch_s, 0.0),
                                       "first call - median")
          steps = math.ceil(labeled / args.batch)
          row = {
              "model": model, "width": model_width(args, model), "params": n_params,
              "dtype": dtype, "variant": variant, "train_fields": fields,
              "epochs_per_call": sc.variant.epochs_per_call, "xla_flags": xla_flags,
              "shipped_default": variant == DEFAULT_VARIANT and not xla_flags,
              "steps_per_call": sc.steps_per_call,
              "batch": args.batch, "n_train": args.n_train, "labeled": labeled,
              "steps": steps, "calls_per_epoch": math.ceil(steps / sc.steps_per_call),
              "scan_steps_per_epoch": math.ceil(steps / sc.steps_per_call) * sc.steps_per_call,
              "compile_s": compile_s, "compile_source": compile_src,
              "first_epoch_s": first_s, "epoch_s": epoch_s,
              "epoch_s_all": times, "repeats": args.repeats,
              "images_per_s": labeled / epoch_s, "step_ms": 1e3 * epoch_s / steps,
              "cycle_s_est": args.epochs * epoch_s,
              "cycle_note": f"extrapolated: {args.epochs} x median epoch; training only "
                            "(no evaluation, selection or compilation)",
              # Only small eager ops may compile for a new labeled size; the
              # train step itself must not (train_step_executables stays 1).
              "compiles_after_warmup_s": recompile.seconds,
              "train_step_executables": _cache_size(trainer),
              "final_loss": float(loss), **common.memory(),
              # Per-image cost from the one-step variant of this model and dtype.
              **costs.get((model, dtype), {}),
          }
          if "flops_per_image" in row:
            row["tflops"] = row["flops_per_image"] * row["images_per_s"] / 1e12
          ref = next((r for r in rows if r["variant"] == DEFAULT_VARIANT
                      and (r["model"], r["dtype"], r["labeled"]) == (model, dtype, labeled)),
                     None)
          if ref is not None:  # measured in this process, before this row
            row["vs_default"] = row["images_per_s"] / ref["images_per_s"]
          rows.append(row)
          results.add("train", row)
          print(f"  train {model} w={row['width']} {dtype} {variant} labeled={labeled}: "
                f"{row['images_per_s']:,.0f} images/s"
                + (f" (x{row['vs_default']:.2f} vs {DEFAULT_VARIANT})" if ref else "")
                + f", epoch {epoch_s:.3f} s, compile {compile_s:.1f} s", flush=True)
        del state, trainer
  # Extrapolating tiny --quick sizes and widths to the protocol would mislead.
  est = [] if args.quick else protocol_estimates(rows, args)
  if est:
    results.set("train_protocol_estimates", est)
  return rows


def protocol_estimates(rows: list[dict], args) -> list[dict]:
  """Training time of the 7-cycle protocol (5,000 + 2,500 k, k = 0..6), extrapolated.

  Epoch time is interpolated linearly in the labeled count between the two
  extreme measured sizes (it is linear in the number of steps), times
  `args.epochs` epochs per cycle. Training only.
  """
  out = []
  keys = sorted({(r["model"], r["width"], r["dtype"], r["variant"]) for r in rows},
                key=str)
  sizes = [5000 + 2500 * k for k in range(7)]
  for key in keys:
    rs = sorted((r for r in rows if (r["model"], r["width"], r["dtype"], r["variant"]) == key),
                key=lambda r: r["labeled"])
    if len(rs) < 2:
      continue
    n0, t0 = rs[0]["labeled"], rs[0]["epoch_s"]
    n1, t1 = rs[-1]["labeled"], rs[-1]["epoch_s"]
    per = lambda n: t0 + (t1 - t0) * (n - n0) / (n1 - n0)
    total = sum(args.epochs * per(n) for n in sizes)
    out.append({"model": key[0], "width": key[1], "dtype": key[2], "variant": key[3],
                "cycles_labeled": sizes, "train_s_est": total,
                "note": f"extrapolated from measured epochs at {n0} and {n1} labeled: "
                        f"{args.epochs} epochs per cycle, 7 cycles, training only"})
  return out


FEATURE_COLUMNS = [("model", "model"), ("width", "width"), ("dtype", "dtype"),
                   ("pool", "pool"), ("eval_batch", "batch"), ("compile_s", "compile s"),
                   ("seconds", "seconds"), ("images_per_s", "images/s"),
                   ("peak_device_bytes", "peak dev mem")]


def bench_features(args, results: common.Results) -> list[dict]:
  """Forward passes over a pool of `args.pool` images with `Trainer.predict`."""
  images, _ = fake_data(max(args.pool, 1), seed=1)
  idx = np.arange(args.pool)
  rows = []
  for model in args.models:
    for dtype in args.dtypes:
      c = make_config(model, model_width(args, model), dtype, 0, args.batch, args.eval_batch,
                      config=args.config)
      gd, params, bs = init_model(c, NUM_CLASSES, IMAGE_SHAPE, jax.random.key(0))
      trainer = Trainer(gd, StepConfig.from_config(c, args.pool), args.pool)
      with compiles.CompileLog() as ct:
        (_, feats), first_s = common.timed(lambda: trainer.predict(params, bs, images, idx))
      times = [common.timed(lambda: trainer.predict(params, bs, images, idx))[1]
               for _ in range(args.repeats)]
      sec = common.median(times)
      row = {"model": model, "width": model_width(args, model), "dtype": dtype,
             "pool": args.pool, "eval_batch": trainer.sc.eval_batch_size,
             "feature_dim": int(feats.shape[-1]), "compile_s": ct.seconds,
             "first_call_s": first_s, "seconds": sec, "seconds_all": times,
             "images_per_s": args.pool / sec, **common.memory()}
      rows.append(row)
      results.add("features", row)
      print(f"  features {model} {dtype}: {row['images_per_s']:,.0f} images/s "
            f"({sec:.3f} s for {args.pool}), compile {ct.seconds:.1f} s", flush=True)
  return rows


def print_train(rows: list[dict], est: list[dict] | None = None) -> None:
  print("\nTraining throughput (median of repeats, compilation excluded)")
  print(common.table(rows, TRAIN_COLUMNS))
  if rows:
    print(f"cycle s = {rows[0]['cycle_note']}")
  seen = set()
  for r in rows:
    key = (r["model"], r["width"], r["dtype"])
    if "flops_per_image" in r and key not in seen:
      seen.add(key)
      print(f"XLA cost analysis, {r['model']} w={r['width']} {r['dtype']}, one step: "
            f"{r['flops_per_image'] / 1e9:.3f} GFLOP and {r['bytes_per_image'] / 1e6:.1f} MB "
            f"accessed per image ({r['flops_per_image'] / r['bytes_per_image']:.0f} flop/byte); "
            "TFLOP/s = that x images/s")
  for e in est or []:
    print(f"protocol training estimate {e['model']} {e['dtype']} {e['variant']}: "
          f"{e['train_s_est']:,.0f} s ({e['note']})")


def print_features(rows: list[dict]) -> None:
  print("\nFeature extraction (Trainer.predict, median of repeats)")
  print(common.table(rows, FEATURE_COLUMNS))
