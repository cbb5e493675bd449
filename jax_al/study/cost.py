"""The cost of a study: seconds per job, per phase and in total, and what they assume.

`estimate(st)` prices every job of a `grid.Study` from the images it trains,
runs forward and scores (`job_images`, from the dataset's sizes as its
source counts them, `jax_al.data.sizes`) and per-image rates, in this order
of preference: measured by finished jobs under `--out` (`measured_rates`),
given with `--study.train_images_per_s`, or measured on this machine by
timing jitted training steps of the model (`throughput.train_images_per_s`,
cached). A plan for another device than this machine's has no measurement:
its throughput is unknown and so are its seconds, and the plan says so.
The per-job overhead, the cost of a forward pass and the gain of vmapped
trials are assumptions below, stated in the plan. `plan.plan_text` prints
the result; nothing of it enters the study's results files.
"""

from __future__ import annotations

import json
from pathlib import Path

from jax_al.study import throughput
from jax_al.study.grid import Study

OVERHEAD_S = {"cpu": 4.0, "gpu": 40.0}  # start, data, compilation (from the disk cache after one)
INFER_FRACTION = 1 / 3                  # a forward pass costs about a third of a training step
# Total training throughput of a job's vmapped trials over that of one trial
# trained alone, where nothing measured it (an assumption the plan states).
VMAP_GAIN = {"cpu": 0.4, "gpu": 1.0}
VMAP_GAIN_WHY = {"cpu": "on a CPU, XLA runs the batched convolutions 2-3x slower than "
                        "sequential trials (docs/scale_out.md, "
                        "`python -m jax_al.bench parallel --quick`)",
                 "gpu": "no gain from vmapping assumed, as no GPU measured one"}


# Calibrated on a measured study, by (model, device): (factor on the job
# seconds of the probed rate and OVERHEAD_S, seconds per selection of the
# analysis' replays, the probed images/s the factor was derived at). The
# committed digits study (docs/study/digits/findings.json, 2026-12-02, 2-core
# CPU): its 102 jobs took 312.8 s where the probe's 105,000 images/s (this
# project's 2-core CPU, 2026-12-04) and 4 s per job give 521.9 s (factor 0.5993),
# its analysis 18.0 s, of which 3.5 s are start-up and replayed training at
# those rates: 14.6 s for 471 replayed selections, 0.0309 s each.
# tests/test_limits.py re-derives both from that file at that rate.
CALIBRATED = {("mlp", "cpu"): (0.5993, 0.0309, 105_000.0)}
CALIBRATED_FROM = "docs/study/digits (102 jobs in 312.8 s, analysis 18.0 s, 2-core CPU)"
SELECT_S = 2.0  # a replayed selection's seconds where nothing measured or calibrated it


# Test images where the source cannot tell before loading (an assumption the plan states).
TEST_ASSUMED = 10_000


def dataset_sizes(config) -> tuple[int, int] | None:
  """(training images, test images) of the config's dataset, counted by its
  source without loading it (`jax_al.data.sizes`); None where unknown."""
  from jax_al import data

  return data.sizes(config.data)


_UNSET = object()


def job_images(config, sizes=_UNSET) -> dict:
  """Images one job trains on, runs forward (test, features) and scores, from
  its sizes and the dataset's `sizes` ((train, test), None where unknown;
  default: `dataset_sizes(config)`). An unknown pool caps nothing and counts
  al.subset scored candidates; an unknown test split counts TEST_ASSUMED."""
  al, tr = config.al, config.train
  if sizes is _UNSET:
    sizes = dataset_sizes(config)
  n_train, n_test = sizes if sizes is not None else (None, TEST_ASSUMED)
  train = infer = scored = 0
  for c in range(1, al.cycles + 1):
    m = al.initial + (c - 1) * al.budget
    if n_train is not None:
      m = min(m, n_train)
    train += tr.epochs * m
    evals = len(range(tr.eval_every, tr.epochs + 1, tr.eval_every)) + (
        tr.epochs % tr.eval_every != 0)
    infer += evals * n_test
    if c < al.cycles:
      unl = None if n_train is None else max(n_train - m, 0)
      s = al.subset if al.subset else (unl if unl is not None else 0)
      if unl is not None:
        s = min(s, unl)
      scored += s
      infer += s + m
  # An ensemble trains and runs forward its members (`al.ensemble_size`).
  from jax_al.strategies import base as strategy_base
  req = strategy_base.requires_of(al.strategy)
  ensemble = req is not None and req.samples is strategy_base.Samples.ENSEMBLE
  k = int(al.ensemble_size) if ensemble else 1
  return {"train": k * train, "infer": k * infer, "scored": scored,
          "pool_known": n_train is not None}


def device_of(fields) -> str:
  if fields.device != "auto":
    return fields.device
  return throughput.backend()


def _is_vmapped(cfg: dict) -> bool:
  """Whether a saved config.json trained its trials as one vmapped program
  (completed by the schema: a config saved before a field existed has it)."""
  from jax_al import schema

  cfg = schema.completed(cfg)
  return int(cfg["num_trials"]) > 1 and cfg["compare"]["parallel"] == "vmap"


def _steady(items: list, cycle) -> list:
  """The items of cycles after the first (the first also compiles), or all when none is later."""
  return [x for x in items if cycle(x) > 1] or list(items)


def _group_cycles(records: list) -> list[tuple[int, float, int]]:
  """(cycle, shared train_s, labeled images summed over the trials) per cycle of a
  vmapped job: its trials' cycle records all carry the group's training time."""
  by_c = {}
  for r in records:
    t, n = by_c.get(r.get("cycle", 1), (0.0, 0))
    by_c[r.get("cycle", 1)] = (max(t, float(r.get("train_s", 0.0))),
                               n + int(r.get("labeled", 0)))
  return [(c, t, n) for c, (t, n) in by_c.items()]


def measured_rates(out: Path) -> dict | None:
  """Per-image training seconds, per-candidate selection seconds and per-job
  overhead measured by the finished cycles under `out` (None if none).

  The rates come from cycles after the first (the first also compiles).
  Jobs of one-by-one trials give `train_s_per_image` (one trial's image);
  jobs of vmapped trials give `vmap_s_per_image`, seconds per image of all
  the job's trials together (a cycle's shared `train_s` over the images of
  every trial). Either is None when no such job finished a cycle. The
  overhead is the median over finished jobs of their wall time minus what
  the rates predict for their cycles (start-up, data, compilation).
  """
  out = Path(out)
  runs = out / "runs"
  if not runs.is_dir():
    return None
  jobs = []
  for m in sorted(runs.glob("*/seed*/metrics.jsonl")):
    try:
      cfg = json.loads((m.parent / "config.json").read_text())
      epochs = int(cfg["train"]["epochs"])
      recs = [json.loads(x) for x in m.read_text().splitlines() if x.strip()]
      vmapped = _is_vmapped(cfg)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
      continue
    cyc = [r for r in recs if isinstance(r, dict) and r.get("kind") == "cycle"]
    if cyc:
      jobs.append((m.parent, epochs, cyc, vmapped))
  one = _steady([(e, r) for _, e, cs, v in jobs if not v for r in cs],
                lambda x: x[1].get("cycle", 1))
  grouped = _steady([(e, g) for _, e, cs, v in jobs if v for g in _group_cycles(cs)],
                    lambda x: x[1][0])
  grouped_recs = _steady([r for _, _, cs, v in jobs if v for r in cs],
                         lambda r: r.get("cycle", 1))
  if not one and not grouped:
    return None
  t_train = sum(float(r.get("train_s", 0.0)) for _, r in one)
  n_train = sum(e * int(r.get("labeled", 0)) for e, r in one)
  t_vmap = sum(g[1] for _, g in grouped)
  n_vmap = sum(e * g[2] for e, g in grouped)
  sel = [r for _, r in one if r.get("scored")] + [r for r in grouped_recs if r.get("scored")]
  t_sel = sum(float(r.get("select_s", 0.0)) for r in sel)
  n_sel = sum(int(r["scored"]) for r in sel)
  if not n_train and not n_vmap:
    return None
  train_rate = t_train / n_train if n_train else None
  vmap_rate = t_vmap / n_vmap if n_vmap else None
  sel_rate = t_sel / n_sel if n_sel else 0.0
  over = []
  for wd, e, cs, v in jobs:
    t = out / "timing" / f"{wd.parent.name}__{wd.name}.json"
    try:
      seconds = float(json.loads(t.read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
      continue
    scored = sum(int(r.get("scored", 0)) for r in cs) * sel_rate
    if v:
      pred = sum(e * n * vmap_rate for _, _, n in _group_cycles(cs)) + scored
    else:
      pred = sum(e * int(r.get("labeled", 0)) * train_rate for r in cs) + scored
    over.append(max(seconds - pred, 0.0))
  return {"train_s_per_image": train_rate, "select_s_per_candidate": sel_rate,
          "vmap_s_per_image": vmap_rate,
          "overhead_s": (sorted(over)[len(over) // 2] if over else None),
          "cycles": len(one) + len(grouped_recs),
          "vmap_cycles": len(grouped), "jobs": len(over)}


def job_seconds(config, train_s: float | None, vmap_s: float | None, infer_s: float | None,
                sel_s: float, over: float, sizes=_UNSET) -> float | None:
  """Seconds of one job of `config`: its `num_trials` trials one by one
  (`train_s` per image of one trial), or vmapped (`vmap_s` per image of all
  trials together); tests, features and selection run per trial. `sizes`:
  as in `job_images`. None where the rate it needs is unknown (None)."""
  img = job_images(config, sizes)
  n = int(config.num_trials)
  vmapped = n > 1 and config.compare.parallel == "vmap"
  if (vmap_s if vmapped else train_s) is None or infer_s is None:
    return None  # the training throughput is unknown
  return (over + n * img["train"] * (vmap_s if vmapped else train_s)
          + n * img["infer"] * infer_s + n * img["scored"] * sel_s)


def estimate(st: Study) -> dict:
  """Seconds per job of each run and in total, with what the numbers assume."""
  dev = device_of(st.fields)
  sizes = dataset_sizes(st.base)
  meas = measured_rates(st.out) if st.out is not None else None
  model, width = st.base.model.name, st.base.model.width
  gain = VMAP_GAIN[dev]
  vsrc = None
  replay_select_s = SELECT_S
  if meas:
    train_s, vmap_s = meas["train_s_per_image"], meas["vmap_s_per_image"]
    sel_s = meas["select_s_per_candidate"]
    infer_s = 0.0  # measured train_s includes the test passes; select_s the features pass
    over = meas["overhead_s"] if meas["overhead_s"] is not None else OVERHEAD_S[dev]
    if train_s is None:  # only vmapped jobs finished cycles
      train_s, tsrc = vmap_s * gain, f" (derived from the vmapped rate / {gain:g}, VMAP_GAIN)"
    else:
      tsrc = ""
    basis = (f"measured under {st.out}: {meas['cycles']} finished cycles (after the first) give "
             f"{1 / train_s:,.0f} training images/s{tsrc} (test passes included) and "
             f"{sel_s * 1e6:,.1f} us per scored candidate (features pass included); "
             f"{over:.1f} s per job for start-up and compilation"
             + (f" (median of {meas['jobs']} finished jobs)" if meas["overhead_s"] is not None else
                " (assumed)"))
    if vmap_s is not None:
      vsrc = f"measured over {meas['vmap_cycles']} vmapped cycles (after the first)"
  else:
    given = st.fields.train_images_per_s
    if given is not None:
      rate, src = float(given), "given by --study.train_images_per_s"
    else:
      rate, src = throughput.train_images_per_s(st.base, dev)
    over = st.fields.job_overhead_s if st.fields.job_overhead_s is not None else OVERHEAD_S[dev]
    cal = CALIBRATED.get((model, dev)) if given is None and rate is not None else None
    if cal is not None:  # the probed rate scaled to a measured study's seconds
      rate /= cal[0]
      both = ", with the start-up," if st.fields.job_overhead_s is None else ""
      src += (f"; scaled{both} to {cal[0]:.2f} x the job seconds as calibrated on "
              f"{CALIBRATED_FROM} at {cal[2]:,.0f} probed images/s")
      if st.fields.job_overhead_s is None:
        over *= cal[0]
    train_s = 1.0 / rate if rate is not None else None
    vmap_s = None
    infer_s = train_s * INFER_FRACTION if train_s is not None else None
    sel_s = 0.0
    replay_select_s = cal[1] if cal is not None else SELECT_S
    where = f"under {st.out} yet" if st.out is not None else "(no --out given)"
    speed = (f"{rate:,.0f} training images/s ({src})" if rate is not None else
             f"training images/s unknown ({src})")
    basis = (f"nothing measured {where}; {model} (width {width:g}) on {dev}: {speed}; a "
             f"forward pass costs {INFER_FRACTION:.2f} of a training step; "
             "selection itself not counted; "
             + (f"{over:g} s per job for start-up and compilation (given by "
                "--study.job_overhead_s)" if st.fields.job_overhead_s is not None else
                f"{over:.1f} s per job for start-up and compilation (calibrated)"
                if cal is not None else
                f"{over:.0f} s per job for start-up and compilation (assumed)"))
  if vmap_s is None:
    if st.fields.vmap_images_per_s is not None:
      vmap_s, vsrc = 1.0 / st.fields.vmap_images_per_s, "given by --study.vmap_images_per_s"
    else:
      vmap_s = train_s / gain if train_s is not None else None
      vsrc = (f"assumed, NOT measured: {gain:g} x the one-trial rate ({VMAP_GAIN_WHY[dev]}); "
              "set --study.vmap_images_per_s to a measured total, e.g. gpu.sh speed's "
              "parallel rows")
  if st.k > 1:
    total = f"{1 / vmap_s:,.0f}" if vmap_s is not None else "unknown"
    basis += (f"; {st.k} vmapped trials of a job together: {total} training images/s "
              f"in all ({vsrc})")
  per_run = {}
  names = list(st.phase2_runs(None)) + [n for n, r in st.runs.items() if r.phase == "select"]
  for n in dict.fromkeys(names):
    per_run[n] = job_seconds(st.run_config(n, st.select_seeds[0]), train_s, vmap_s, infer_s,
                             sel_s, over, sizes)
  n1 = [n for n, r in st.runs.items() if r.phase == "select"]
  p1 = _times(_sum(per_run[n] for n in n1), len(st.select_seeds))
  # Phase 2: the best variant is not known before phase 1; costed as the dearest candidate.
  cands = [per_run[n] for n in st.candidates()]
  best_cost = None if None in cands else max(cands)
  fixed2 = [n for n in st.phase2_runs(None)]
  p2 = _times(_sum([per_run[n] for n in fixed2] + [best_cost]), len(st.report_seeds))
  # Replay: the probe steps retrain every cycle whose checkpoint was not kept
  # (the last two are), one trial at a time.
  cycles = st.base.al.cycles
  uimg = job_images(st.run_config("u_batch", st.select_seeds[0]), sizes)
  per_cycle = ((uimg["train"] * train_s + uimg["infer"] * infer_s) / cycles
               if train_s is not None else None)
  kept = {cycles - 1, cycles}
  retrain = 0
  for c in st.probe_cycles:
    if c in kept:
      continue
    retrain += 1 if st.base.train.reinit_each_cycle else c
  probes = len(st.probe_cycles) * st.fields.probe_trials
  # Each probe step selects once per variant and normalisation, plus the pictures.
  selects = probes * (len(n1) + len(st.fields.norms) + 2) + len(n1) + 2
  per_select = (sel_s * (uimg["scored"] / max(cycles - 1, 1)) if sel_s else replay_select_s)
  replays = (0.0 if not retrain else
             None if per_cycle is None else retrain * st.fields.probe_trials * per_cycle)
  analysis = _sum([over, replays, selects * per_select])
  return {"device": dev, "basis": basis, "per_job_s": per_run, "phase1_s": p1,
          "phase2_s": p2, "analysis_s": analysis, "total_s": _sum([p1, p2, analysis]),
          "images": job_images(st.base, sizes), "measured": bool(meas),
          "vmap_images_per_s": 1.0 / vmap_s if vmap_s is not None else None}


def _sum(xs) -> float | None:
  """The sum, or None (unknown) when a term is unknown."""
  xs = list(xs)
  return None if any(x is None for x in xs) else sum(xs)


def _times(x: float | None, n: int) -> float | None:
  return None if x is None else x * n
