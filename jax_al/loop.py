"""The active-learning loop: trials x cycles of train -> test -> score -> select.

`run(config, workdir)` is the library's entry point; `run.py` only parses
flags. Each cycle ends with a checkpoint, so rerunning the same command on
the same workdir continues after the last finished cycle and reproduces the
uninterrupted run exactly (every random key is derived by name from
(seed, trial, cycle)).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jax_al import checkpoint, io, rng
from jax_al import config as config_lib
from jax_al import strategies
from jax_al.data import load_dataset
from jax_al.errors import ConfigError, DataError, TrainingError
from jax_al.train import StepConfig, Trainer, init_model

# Files this tool writes into a workdir; `overwrite` removes only these.
OUTPUTS = ("config.json", "log.txt", "metrics.jsonl", "selected.jsonl", "summary.json",
           "checkpoints")


def prepare_workdir(workdir: Path, config, overwrite: bool) -> bool:
  """Creates or checks the workdir. Returns True when a previous run is resumed."""
  workdir = Path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / ".write_test"
    probe.write_text("")
    probe.unlink()
  except OSError as e:
    raise ConfigError("--workdir", str(workdir),
                      f"cannot write there ({e.strerror}); choose a writable folder") from None
  existing = [n for n in OUTPUTS if (workdir / n).exists()]
  if existing and overwrite:
    for n in existing:
      p = workdir / n
      shutil.rmtree(p) if p.is_dir() else p.unlink()
    return False
  if not existing:
    return False
  if not config.resume:
    raise ConfigError("resume", False,
                      f"{workdir} already holds a run ({', '.join(existing)}); pass --overwrite "
                      "to replace it, --config.resume=true to continue it, or another --workdir")
  saved = json.loads((workdir / "config.json").read_text()) if (workdir / "config.json").exists() else None
  if saved is not None and _comparable(saved) != _comparable(config.to_dict()):
    raise ConfigError("--workdir", str(workdir),
                      "it holds a run with a different config; pass --overwrite to replace it "
                      "or choose another --workdir")
  return True


def _comparable(d: dict) -> str:
  d = dict(d)
  d.pop("resume", None)
  return json.dumps(d, sort_keys=True, default=str)


def _summary(config, records: list[dict], seconds: float) -> dict:
  cyc = [r for r in records if r["kind"] == "cycle"]
  trials = sorted({r["trial"] for r in cyc})
  acc = [[r["test_acc"] for r in cyc if r["trial"] == t] for t in trials]
  sizes = [r["labeled"] for r in cyc if r["trial"] == trials[0]] if trials else []
  full = [a for a in acc if len(a) == len(sizes)]
  arr = np.asarray(full, float) if full else np.zeros((0, len(sizes)))
  return {
      "strategy": config.al.strategy, "seed": config.seed, "labeled": sizes,
      "test_acc": acc, "mean": arr.mean(0).tolist() if len(arr) else [],
      "std": arr.std(0).tolist() if len(arr) else [], "trials": len(acc),
      "seconds": seconds,
  }


class _Progress:
  """A tqdm bar over epochs when attached to a terminal, else nothing."""

  def __init__(self, total: int, desc: str):
    self.bar = None
    if io.is_terminal():
      from tqdm import tqdm
      self.bar = tqdm(total=total, desc=desc, leave=False)

  def __call__(self, epoch: int) -> None:
    if self.bar is not None:
      self.bar.update(1)

  def close(self):
    if self.bar is not None:
      self.bar.close()


def run(config, workdir, *, overwrite: bool = False, quiet: bool = False) -> dict:
  """Runs `config.num_trials` trials of `config.al.cycles` cycles; returns the summary."""
  t_start = time.perf_counter()
  config_lib.check_config(config)
  workdir = Path(workdir)
  resuming = prepare_workdir(workdir, config, overwrite)
  ds = load_dataset(config.data)
  config_lib.check_sizes(config, len(ds.train_labels), ds.num_classes)
  strategy = strategies.get_strategy(config.al.strategy, config.al)
  n_train = len(ds.train_labels)
  n_cand = min(config.al.subset or n_train, n_train - config.al.initial)
  strategy.check(n_cand, config.al.budget, ds.num_classes)

  io.write_json(workdir / "config.json", config.to_dict())
  log = io.TextLog(workdir / "log.txt", quiet=quiet)
  log(f"{'Resuming' if resuming else 'Starting'} {config.al.strategy} on {ds.description}, "
      f"{ds.num_classes} classes; workdir {workdir}")

  images = jax.device_put(ds.train_images)
  labels = jax.device_put(ds.train_labels.astype(np.int32))
  test_images = jax.device_put(ds.test_images)
  test_labels = jax.device_put(ds.test_labels.astype(np.int32))
  image_shape = tuple(ds.train_images.shape[1:])
  graphdef, _, _ = init_model(config, ds.num_classes, image_shape, rng.stream(config.seed, 0, "init"))
  trainer = Trainer(graphdef, StepConfig.from_config(config, n_train), n_train)

  metrics = io.JsonlLog(workdir / "metrics.jsonl")
  selected = io.JsonlLog(workdir / "selected.jsonl")
  ctx = dict(config=config, ds=ds, trainer=trainer, strategy=strategy, images=images,
             labels=labels, test_images=test_images, test_labels=test_labels, log=log,
             metrics=metrics, selected=selected, workdir=workdir, image_shape=image_shape)
  for trial in range(config.num_trials):
    try:
      _run_trial(trial, ctx)
    except TrainingError as e:
      metrics.append({"kind": "error", "trial": trial, "error": str(e)})
      log(f"ERROR: {e}")
      raise
  summary = _summary(config, metrics.records, time.perf_counter() - t_start)
  io.write_json(workdir / "summary.json", summary)
  return summary


def _run_trial(trial: int, ctx: dict) -> None:
  config, ds, trainer = ctx["config"], ctx["ds"], ctx["trainer"]
  al, log, metrics, selected = config.al, ctx["log"], ctx["metrics"], ctx["selected"]
  key = lambda name: rng.stream(config.seed, trial, name)
  n_train = len(ds.train_labels)
  _, params, bs = init_model(config, ds.num_classes, ctx["image_shape"], key("init"))
  state = trainer.new_state(params, bs)
  labeled = np.asarray(jax.random.permutation(key("initial_set"), n_train)[:al.initial],
                       np.int64)
  first = 1
  last_done = checkpoint.latest(ctx["workdir"], trial)
  if last_done is not None:
    state, meta = checkpoint.restore(ctx["workdir"], trial, last_done, state)
    labeled = np.asarray(meta["labeled"], np.int64)
    for r in meta["metrics"]:
      metrics.append(r)
    for r in meta["selected"]:
      selected.append(r)
    first = last_done + 1
    if first <= al.cycles:
      log(f"Trial {trial + 1}: resuming after cycle {last_done}")
  else:
    selected.append({"trial": trial, "cycle": 0, "indices": labeled.tolist()})
  test_idx = np.arange(len(ds.test_labels))

  for cycle in range(first, al.cycles + 1):
    t0 = time.perf_counter()
    if config.train.reinit_each_cycle and cycle > 1:
      _, params, bs = init_model(config, ds.num_classes, ctx["image_shape"],
                                 jax.random.fold_in(key("init"), cycle))
      state = trainer.new_state(params, bs)
    else:  # the optimizer and its schedule are re-created every cycle
      state = trainer.new_state(state.params, state.batch_stats)

    def on_eval(rec, cycle=cycle):
      log(f"Cycle: {cycle} Epoch: {rec['epoch']} --- Val Acc: {rec['test_acc']:.3f} \t"
          f"Best Acc: {rec['best_acc']:.3f}")
      metrics.append({"kind": "eval", "trial": trial, "cycle": cycle, **rec})

    bar = _Progress(config.train.epochs, f"trial {trial + 1} cycle {cycle}")
    try:
      state, hist = trainer.fit(
          state, ctx["images"], ctx["labels"], labeled, test_idx, ctx["test_images"],
          ctx["test_labels"], config.train, jax.random.fold_in(key("data_order"), cycle),
          jax.random.fold_in(key("augment"), cycle), on_eval=on_eval, progress=bar)
    finally:
      bar.close()
    t_train = time.perf_counter() - t0
    acc = hist[-1]["test_acc"]
    log(f"Trial {trial + 1}/{config.num_trials} || Cycle {cycle}/{al.cycles} || "
        f"Label set size {len(labeled)}: Test acc {acc:.2f}")

    rec = {"kind": "cycle", "trial": trial, "cycle": cycle, "labeled": len(labeled),
           "test_acc": acc, "train_s": t_train}
    if cycle < al.cycles:
      picks, stats, t_sel = _select(trial, cycle, labeled, state, ctx)
      if picks is None:
        log("The unlabeled pool is empty: nothing left to select, stopping the trial.")
        rec.update(select_s=0.0, total_s=time.perf_counter() - t0)
        metrics.append(rec)
        break
      labeled = np.concatenate([labeled, picks])
      selected.append({"trial": trial, "cycle": cycle, "indices": picks.tolist()})
      rec.update(select_s=t_sel, **stats)
    else:
      rec.update(select_s=0.0)
    rec["total_s"] = time.perf_counter() - t0
    metrics.append(rec)
    trial_records = lambda log_: [r for r in log_.records if r.get("trial") == trial]
    checkpoint.save(ctx["workdir"], trial, cycle, state, {
        "trial": trial, "cycle": cycle, "labeled": labeled.tolist(),
        "metrics": trial_records(metrics), "selected": trial_records(selected)})


def _select(trial: int, cycle: int, labeled: np.ndarray, state, ctx: dict):
  """Scores a random subset of the unlabeled pool; returns (dataset indices, stats, seconds)."""
  config, trainer, ds = ctx["config"], ctx["trainer"], ctx["ds"]
  al = config.al
  t0 = time.perf_counter()
  unlabeled = np.setdiff1d(np.arange(len(ds.train_labels)), labeled)
  if len(unlabeled) == 0:
    return None, {}, 0.0
  key = lambda name: jax.random.fold_in(rng.stream(config.seed, trial, name), cycle)
  n_sub = min(al.subset or len(unlabeled), len(unlabeled))
  order = np.asarray(jax.random.permutation(key("subset"), len(unlabeled)))
  subset = unlabeled[order[:n_sub]]  # random order: per-batch scopes see batches in it
  budget = min(al.budget, n_sub)
  logits, feats = trainer.predict(state.params, state.batch_stats, ctx["images"], subset)
  l_logits, l_feats = trainer.predict(state.params, state.batch_stats, ctx["images"], labeled)
  if not bool(jnp.all(jnp.isfinite(feats))) or not bool(jnp.all(jnp.isfinite(l_feats))):
    raise TrainingError(f"cycle {cycle}: the model produced non-finite features; the "
                        "network diverged. Lower train.lr or use train.dtype=float32")
  pool = strategies.Pool(feats, logits, l_feats, l_logits, ds.num_classes)
  t_feat = time.perf_counter() - t0
  t1 = time.perf_counter()
  sel = ctx["strategy"].select(pool, budget, key("select"))
  idx = np.asarray(sel.indices)
  t_sel = time.perf_counter() - t1
  if len(idx) != budget or len(np.unique(idx)) != budget or idx.min() < 0 or idx.max() >= n_sub:
    raise RuntimeError(f"strategy {al.strategy} returned invalid indices {idx[:10]}...")
  stats = {"features_s": t_feat, "strategy_s": t_sel, "scored": int(n_sub),
           **{k: float(v) for k, v in sel.stats.items()}}
  return subset[idx], stats, time.perf_counter() - t0
