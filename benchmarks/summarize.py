"""Prints one short table from the JSON files a benchmark run left in a folder.

    python benchmarks/summarize.py OUT_DIR

Reads *.json written by `python -m jax_al.bench` (train, features, parallel,
selection, profile, protocol) and benchmarks/torch_reference.py, and
OUT_DIR/protocol/metrics.jsonl when the protocol JSON holds no cycles yet,
and OUT_DIR/study/, the small files of a `python -m jax_al.study` run (its
jobs' metrics.jsonl, its findings.json when written).
Files of a part still running or cut by a time limit are read as far as
they go. Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOAL_IMAGES_PER_S = 60_000      # ResNet-18, batch 128, bf16
GOAL_TRIALS_IMAGES_PER_S = 120_000  # 3 vmapped trials, batch 128 each, in total
GOAL_PROTOCOL_S = 300           # the full 7-cycle protocol
GOAL_SELECTION_MS = 50          # whole-pool scoring, 45,000 x 512
CYCLE1_RANGE = (74.0, 77.0)     # plain JAX on the JPEG copy, 3 seeds (GPU.md): 74.3-77.0 %


def _load(p: Path):
  try:
    return json.loads(p.read_text())
  except (OSError, ValueError) as e:
    print(f"  (unreadable {p.name}: {e})")
    return None


def _f(v, spec: str, width: int) -> str:
  """`v` formatted, or blanks when absent."""
  return format(v, spec) if isinstance(v, (int, float)) else " " * width


def _train(docs: dict) -> None:
  rows = [(name, r) for name, d in docs.items() for r in d.get("train", [])]
  if not rows:
    return
  print("\ntraining (median epoch after compilation; vs = images/s over the shipped "
        "default 'chunk' of the same file):")
  print(f"{'file':16s} {'model dtype variant':44s} {'L':>6s} {'images/s':>9s} {'vs':>5s} "
        f"{'epoch s':>8s} {'compile s':>9s}")
  for name, r in rows:
    what = f"{r['model']} {r['dtype']} {r['variant']}"
    print(f"{name[:16]:16s} {what[:44]:44s} {r['labeled']:6d} {r['images_per_s']:9,.0f} "
          f"{_f(r.get('vs_default'), '5.2f', 5)} {r['epoch_s']:8.3f} {r['compile_s']:9.1f}")
  flags = {r.get("xla_flags") for _, r in rows if r.get("xla_flags")}
  for f in flags:
    print(f"  XLA_FLAGS of {', '.join(sorted({n for n, r in rows if r.get('xla_flags') == f}))}:"
          f" {f}")
  for name, r in rows:
    if "flops_per_image" in r:
      print(f"XLA cost of one step, {r['model']} w={r.get('width')} {r['dtype']}: "
            f"{r['flops_per_image'] / 1e9:.2f} GFLOP, {r['bytes_per_image'] / 1e6:.1f} MB "
            "accessed per image")
      break
  best = max(((r["images_per_s"], f"{n}: {r['variant']}") for n, r in rows
              if r["model"] == "resnet18" and r["dtype"] == "bfloat16"
              and r.get("width") == 1.0), default=None)
  if best is not None:
    print(f"goal >= {GOAL_IMAGES_PER_S:,} images/s (ResNet-18 bf16 batch 128): best "
          f"{best[0]:,.0f} ({best[1]}) -> {'MET' if best[0] >= GOAL_IMAGES_PER_S else 'not met'}")


def _parallel(docs: dict) -> None:
  rows = [(n, r) for n, d in docs.items() if isinstance(d.get("parallel"), dict)
          for r in d["parallel"].get("rows", [])]
  if not rows:
    return
  print("\nvmapped trials (total images/s over all trials):")
  for n, r in rows:
    print(f"  {n[:16]:16s} {r.get('variant', ''):28s} {r['mode']:10s} x{r['trials']} "
          f"L={r['labeled']:<6d} {r['images_per_s']:10,.0f} images/s  compile "
          f"{r['compile_s']:.1f} s")
  best = max((r["images_per_s"] for _, r in rows if r["mode"] == "vmap" and r["trials"] == 3
              and r["model"] == "resnet18" and r.get("width") == 1.0), default=None)
  if best is not None:
    print(f"goal >= {GOAL_TRIALS_IMAGES_PER_S:,} images/s for 3 vmapped trials: best "
          f"{best:,.0f} -> {'MET' if best >= GOAL_TRIALS_IMAGES_PER_S else 'not met'}")


def _ensemble(docs: dict) -> None:
  rows = [r for d in docs.values() if isinstance(d.get("parallel"), dict)
          for r in d["parallel"].get("rows", []) if r.get("vs_one_member") is not None]
  for r in rows:
    x = r["vs_one_member"]
    print(f"ensemble of {r['trials']} ({r['model']} w={r.get('width')} {r['dtype']}, "
          f"L={r['labeled']}): {x:.2f}x one member's epoch (sequential: {r['trials']}x) -> "
          f"goal < 2x {'MET' if x < 2 else 'not met'}")


def _acquisitions(docs: dict) -> None:
  for d in docs.values():
    rows = d.get("acquisitions") or []
    if rows and isinstance(rows, list):
      print(f"\nacquisition cost per selection ({rows[0]['n']:,} x {rows[0]['dim']}):")
      for r in rows:
        print(f"  {r['strategy']:26s} samples {r['samples']:3d}  {r['select_ms']:9.1f} ms")


def _select_scale(docs: dict) -> None:
  rows = [r for d in docs.values() if isinstance(d.get("select"), list) for r in d["select"]]
  if not rows:
    return
  print(f"\nselect at scale (jax_al.select; * = first call, compilation included):")
  for r in rows:
    t, dev = r.get("time_s"), r.get("peak_device_bytes")
    t = f"{t:8.3f} s{'*' if r.get('includes_compile') else ' '}" if t is not None else "       -  "
    dev = f"device peak {dev / 2**30:6.2f} GiB" if dev is not None else ""
    print(f"  {r['strategy']:17s} {r['n']:>9,} x {r['dim']} C={r['classes']:<3} "
          f"{r.get('status', '?'):>9s} {t} {dev}")


def _features(docs: dict) -> None:
  for d in docs.values():
    for r in d.get("features", []):
      print(f"features {r['model']} {r['dtype']} pool={r['pool']}: {r['images_per_s']:,.0f} "
            f"images/s ({r['seconds']:.3f} s), compile {r['compile_s']:.1f} s")


def _torch(docs: dict) -> None:
  for d in docs.values():
    if d.get("stack") == "pytorch":
      print(f"torch {d['dtype']} cl={d['channels_last']} compile={d['compile']} "
            f"L={d['labeled']}: {d['images_per_s']:,.0f} images/s")


def _profile(docs: dict) -> None:
  prof = docs.get("profile", {}).get("profile")
  if not isinstance(prof, dict):
    return
  print(f"\nprofile ({prof.get('model')} {prof.get('dtype')}, {prof.get('labeled')} labeled, "
        f"{prof.get('steps_per_call')} steps/call; status {prof.get('status', 'done')}):")
  if "images_per_s_untraced" in prof:
    print(f"  untraced epoch {prof['untraced_epoch_s']:.3f} s, "
          f"{prof['images_per_s_untraced']:,.0f} images/s")
  for d in prof.get("devices", []):
    print(f"  {d['device']}: busy {100 * d['busy_frac']:.0f} % of {prof['window_s']:.2f} s")
    for op in d["top_ops"][:6]:
      print(f"    {100 * op['frac']:5.1f} %  x{op['count']:<6d} {op['name'][:70]}")
    for op in d.get("top_hlo_ops", [])[:6]:
      print(f"    HLO {100 * op['frac']:5.1f} %  x{op['count']:<6d} {op['name'][:66]}")


def _protocol(docs: dict, out: Path) -> None:
  doc = docs.get("protocol", {})
  proto = doc.get("protocol", {}) if isinstance(doc.get("protocol"), dict) else {}
  cycles = proto.get("cycles")
  metrics = out / "protocol" / "metrics.jsonl"
  if not cycles and metrics.exists():
    cycles = []
    for line in metrics.read_text().splitlines():
      try:
        r = json.loads(line)
      except ValueError:  # a line cut by a kill
        continue
      if r.get("kind") == "cycle":
        cycles.append(r)
  if not cycles:
    if proto:
      print(f"\nprotocol: status {proto.get('status')}, no cycle finished")
    return
  print(f"\nprotocol ({proto.get('status', 'cut before the end')}):")
  print(f"{'cycle':>5s} {'labeled':>8s} {'acc %':>6s} {'train s':>8s} {'select s':>8s} "
        f"{'compile s':>9s} {'total s':>8s}")
  for c in cycles:
    print(f"{c['cycle']:5d} {c['labeled']:8d} {c['test_acc']:6.2f} {c['train_s']:8.1f} "
          f"{c.get('select_s') or 0:8.1f} {c.get('compile_s') or 0:9.1f} {c['total_s']:8.1f}")
  full = (not doc.get("meta", {}).get("quick")
          and proto.get("config_values", {}).get("al", {}).get("cycles") == 7
          and proto.get("config_values", {}).get("model", {}).get("width") == 1.0)
  first = next((c for c in cycles if c["cycle"] == 1 and c.get("trial", 0) == 0), None)
  if first is not None:
    lo, hi = CYCLE1_RANGE
    check = ((f"-> {'within' if lo <= first['test_acc'] <= hi else 'OUTSIDE'} "
              f"{lo:.0f}-{hi:.0f} %") if full else "(not the full protocol: no check)")
    print(f"cycle 1 accuracy {first['test_acc']:.2f} % {check}")
  if proto.get("status") == "done":
    goal = (f"goal <= {GOAL_PROTOCOL_S} s -> "
            f"{'MET' if proto['total_s'] <= GOAL_PROTOCOL_S else 'not met'}" if full
            else "not the full protocol: no goal check")
    print(f"total {proto['total_s']:.1f} s ({goal}); setup {proto['setup_s']:.1f} s")
    if "compile_s" in proto:
      print(f"compilation {proto['compile_s']:.1f} s in all, {proto['setup_compile_s']:.1f} s "
            "of it in setup; largest: " + ", ".join(
                f"{k} {v:.1f} s" for k, v in sorted(proto["compile_by_function"].items(),
                                                    key=lambda kv: -kv[1])[:4]))
  else:
    n = proto.get("config_values", {}).get("al", {}).get("cycles", "?")
    print(f"cut after {len(cycles)} of {n} cycles; cycles so far "
          f"{sum(c['total_s'] for c in cycles):.1f} s")


def _selection(docs: dict) -> None:
  for name in sorted(n for n in docs if n.startswith("selection")):
    rows = docs[name].get("selection", [])
    rows = [r for r in rows if isinstance(r, dict) and "variant" in r]
    if not rows:
      continue
    print(f"\n{name} (every variant at its largest N measured):")
    last = {}
    for r in rows:
      if r["variant"] not in last or r["n"] >= last[r["variant"]]["n"]:
        last[r["variant"]] = r
    for v, r in last.items():
      goal = ""
      if r["n"] >= 45000 and r.get("dim") == 512:
        goal = f"  < {GOAL_SELECTION_MS} ms: {'yes' if r['jax_ms'] < GOAL_SELECTION_MS else 'no'}"
      ref = r.get("ref_ms")
      print(f"  {v:18s} N={r['n']:>7} jax {r['jax_ms']:10.1f} ms  compile "
            f"{r.get('compile_s') or 0:5.1f} s  reference "
            f"{'-' if ref is None else f'{ref:.1f} ms':>10s}{goal}")


def _auc(points: list) -> float:
  """Mean accuracy over the labeled-size axis (trapezoids), as `jax_al.report.auc`."""
  xs, ys = zip(*sorted(points))
  if len(xs) < 2:
    return ys[0]
  area = sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))
  return area / (xs[-1] - xs[0])


def _records(path: Path) -> list:
  out = []
  for line in path.read_text().splitlines() if path.exists() else []:
    try:
      r = json.loads(line)
    except ValueError:  # a line cut by a kill
      continue
    if isinstance(r, dict):
      out.append(r)
  return out


def _study_jobs(root: Path) -> list:
  """(run, job, config, {trial: [(labeled, acc)]}, cycle records) of every job folder."""
  jobs = []
  for cfg_path in sorted(root.glob("runs/*/*/config.json")):
    try:
      cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError):
      continue
    recs = [r for r in _records(cfg_path.parent / "metrics.jsonl") if r.get("kind") == "cycle"]
    trials = {}
    for r in recs:
      trials.setdefault(r["trial"], []).append((r["labeled"], r["test_acc"]))
    jobs.append((cfg_path.parent.parent.name, cfg_path.parent.name, cfg, trials, recs))
  return jobs


def _study(out: Path) -> None:
  root = out / "study"
  if not root.is_dir():
    return
  jobs = _study_jobs(root)
  f = _load(root / "findings.json") if (root / "findings.json").exists() else None
  choice = _load(root / "choice.json") if (root / "choice.json").exists() else None
  print(f"\nstudy ({'findings written' if f else 'NOT finished: no findings yet'}; "
        f"{len(jobs)} job folders):")
  print(f"{'run':22s} {'job':14s} {'trials':>6s} {'done':>4s} {'AUC':>6s} {'final':>6s} "
        f"{'job s':>7s}")
  for run, job, cfg, trials, _ in jobs:
    cycles, n = cfg["al"]["cycles"], cfg.get("num_trials", 1)
    done = [t for t, pts in trials.items() if len(pts) >= cycles]
    aucs = [_auc(trials[t]) for t in done]
    finals = [sorted(trials[t])[-1][1] for t in done]
    timing = root / "timing" / f"{run}__{job}.json"
    secs = _load(timing).get("seconds") if timing.exists() else None
    print(f"{run[:22]:22s} {job[:14]:14s} {n:6d} {len(done):4d} "
          f"{_f(sum(aucs) / len(aucs) if aucs else None, '6.2f', 6)} "
          f"{_f(sum(finals) / len(finals) if finals else None, '6.2f', 6)} "
          f"{_f(secs, '7.1f', 7)}")
  # Training throughput: a vmapped job's cycle records share the group's train_s.
  t_all = n_all = 0.0
  for _, _, cfg, _, recs in jobs:
    vmapped = cfg.get("num_trials", 1) > 1 and cfg.get("compare", {}).get("parallel") == "vmap"
    by_c = {}
    for r in recs:
      if r.get("cycle", 1) > 1:
        t, n = by_c.get(r["cycle"], (0.0, 0))
        by_c[r["cycle"]] = ((max(t, r["train_s"]) if vmapped else t + r["train_s"]),
                            n + r["labeled"] * cfg["train"]["epochs"])
    if vmapped:
      for t, n in by_c.values():
        t_all, n_all = t_all + t, n_all + n
  if t_all:
    print(f"vmapped trials: {n_all / t_all:,.0f} training images/s in all (cycles after the "
          "first, test passes included): --study.vmap_images_per_s for the next plan")
  if choice:
    print(f"best variant on the selection replicates: {choice.get('best')}")
  if f:
    q4 = f.get("q4", {})
    print(f"question 4 on the report replicates ({q4.get('best')} minus each run, AUC, 95 % CI):")
    for name, p in q4.get("best_vs", {}).items():
      lo, hi = p.get("lo"), p.get("hi")
      ci = f"[{lo:+.2f}, {hi:+.2f}]" if isinstance(lo, float) and lo == lo else ""
      print(f"  {name:22s} {_f(p.get('diff'), '+7.2f', 7)} {ci:18s} {p.get('verdict', '')}")


def main(folder: str) -> None:
  out = Path(folder)
  docs = {p.stem: d for p in sorted(out.glob("*.json"))
          if isinstance(d := _load(p), dict)}
  meta = next((d["meta"] for d in docs.values() if "meta" in d), {})
  env = out / "env.txt"  # gpu.sh's `jax <version> [devices]`: a study call writes no bench JSON
  if not meta and env.is_file():
    print(f"\n===== summary: {env.read_text().strip().splitlines()[-1][:160]} =====")
  else:
    print(f"\n===== summary: {meta.get('device_kind', '?')}, jax {meta.get('jax', '?')}, "
          f"{meta.get('date', '?')} =====")
  for name, d in docs.items():  # what each file is, and whether it finished
    m = d.get("meta", {})
    if "parts" in m or "argv" in m:
      print(f"  {name}: {' '.join(str(a) for a in m.get('argv', []))[:100]}")
  _train(docs)
  _parallel(docs)
  _ensemble(docs)
  _features(docs)
  _torch(docs)
  _selection(docs)
  _acquisitions(docs)
  _select_scale(docs)
  _profile(docs)
  _protocol(docs, out)
  _study(out)
  for d in docs.values():
    for e in d.get("train_protocol_estimates", []) or []:
      print(f"protocol training estimate {e['model']} {e['dtype']} {e['variant']}: "
            f"{e['train_s_est']:,.0f} s (200 epochs x 7 cycles, extrapolated)")


if __name__ == "__main__":
  if len(sys.argv) != 2:
    raise SystemExit("usage: python benchmarks/summarize.py OUT_DIR")
  main(sys.argv[1])
