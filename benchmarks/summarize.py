"""Prints one short table from the JSON files a benchmark run left in a folder.

    python benchmarks/summarize.py OUT_DIR

Reads *.json written by `python -m jax_al.bench` and
benchmarks/torch_reference.py, and OUT_DIR/protocol/metrics.jsonl when the
protocol run was cut before it wrote its JSON. Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOAL_IMAGES_PER_S = 60_000   # ResNet-18, batch 128, bf16
GOAL_PROTOCOL_S = 300        # the full 7-cycle protocol


def _load(p: Path):
  try:
    return json.loads(p.read_text())
  except (OSError, ValueError) as e:
    print(f"  (unreadable {p.name}: {e})")
    return None


def main(folder: str) -> None:
  out = Path(folder)
  docs = {p.stem: d for p in sorted(out.glob("*.json")) if (d := _load(p)) is not None}
  meta = next((d["meta"] for d in docs.values() if isinstance(d, dict) and "meta" in d), {})
  print(f"\n===== summary: {meta.get('device_kind', '?')}, jax {meta.get('jax', '?')}, "
        f"{meta.get('date', '?')} =====")
  print(f"{'what':48s} {'images/s':>10s} {'epoch s':>8s} {'compile s':>9s} {'TFLOP/s':>8s}")
  costs = {}
  for name, d in docs.items():
    for r in d.get("train", []) if isinstance(d, dict) else []:
      what = f"train {r['model']} {r['dtype']} {r['variant']} L={r['labeled']}"
      tf = f"{r['tflops']:8.3g}" if "tflops" in r else f"{'':>8s}"
      print(f"{what:48s} {r['images_per_s']:10,.0f} {r['epoch_s']:8.3f} {r['compile_s']:9.1f} {tf}")
      if "flops_per_image" in r:
        costs[r["model"], r.get("width"), r["dtype"]] = r
    for r in d.get("features", []) if isinstance(d, dict) else []:
      what = f"features {r['model']} {r['dtype']} pool={r['pool']}"
      print(f"{what:48s} {r['images_per_s']:10,.0f} {r['seconds']:8.3f} {r['compile_s']:9.1f}")
    if isinstance(d, dict) and d.get("stack") == "pytorch":
      what = f"torch {d['dtype']} cl={d['channels_last']} compile={d['compile']} L={d['labeled']}"
      print(f"{what:48s} {d['images_per_s']:10,.0f} {d['epoch_s']:8.3f} {'':>9s}")
  for (model, width, dtype), r in costs.items():
    print(f"XLA cost of one step, {model} w={width} {dtype}: {r['flops_per_image'] / 1e9:.2f} "
          f"GFLOP, {r['bytes_per_image'] / 1e6:.1f} MB accessed per image")
  best = max((r["images_per_s"] for d in docs.values() if isinstance(d, dict)
              for r in d.get("train", []) if r["model"] == "resnet18"
              and r["dtype"] == "bfloat16" and r.get("width") == 1.0), default=None)
  if best is not None:
    print(f"goal >= {GOAL_IMAGES_PER_S:,} images/s (ResNet-18 bf16 batch 128): best "
          f"{best:,.0f} -> {'MET' if best >= GOAL_IMAGES_PER_S else 'not met'}")
  for d in docs.values():
    if isinstance(d, dict) and d.get("train_protocol_estimates"):
      for e in d["train_protocol_estimates"]:
        print(f"protocol training estimate {e['model']} {e['dtype']} {e['variant']}: "
              f"{e['train_s_est']:,.0f} s (200 epochs x 7 cycles, extrapolated)")

  prof = docs.get("profile", {}).get("profile") if isinstance(docs.get("profile"), dict) else None
  if isinstance(prof, dict) and prof.get("devices"):
    print(f"\nprofile ({prof['model']} {prof['dtype']}, {prof['labeled']} labeled, "
          f"{prof['steps_per_call']} steps/call):")
    for d in prof["devices"]:
      print(f"  {d['device']}: busy {100 * d['busy_frac']:.0f} % of {prof['window_s']:.2f} s")
      for op in d["top_ops"][:6]:
        print(f"    {100 * op['frac']:5.1f} %  x{op['count']:<6d} {op['name'][:70]}")
      for op in d.get("top_hlo_ops", [])[:6]:
        print(f"    HLO {100 * op['frac']:5.1f} %  x{op['count']:<6d} {op['name'][:66]}")

  if not isinstance(docs.get("protocol"), dict):
    docs["protocol"] = {}
  proto = docs["protocol"].get("protocol", {})
  cycles = proto.get("cycles")
  if not cycles and (out / "protocol" / "metrics.jsonl").exists():
    cycles = [json.loads(l) for l in (out / "protocol" / "metrics.jsonl").read_text().splitlines()
              if l.strip()]
    cycles = [c for c in cycles if c.get("kind") == "cycle"]
  if cycles:
    print(f"\nprotocol ({proto.get('status', 'cut before the end')}):")
    print(f"{'cycle':>5s} {'labeled':>8s} {'acc %':>6s} {'train s':>8s} {'select s':>8s} "
          f"{'compile s':>9s} {'total s':>8s}")
    for c in cycles:
      print(f"{c['cycle']:5d} {c['labeled']:8d} {c['test_acc']:6.2f} {c['train_s']:8.1f} "
            f"{c.get('select_s') or 0:8.1f} {c.get('compile_s') or 0:9.1f} {c['total_s']:8.1f}")
    full = (not docs["protocol"].get("meta", {}).get("quick")
            and proto.get("config_values", {}).get("al", {}).get("cycles") == 7)
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
      print(f"cut after {len(cycles)} of 7 cycles; cycles so far "
            f"{sum(c['total_s'] for c in cycles):.1f} s")
  sel = docs.get("selection")
  rows = sel.get("selection", []) if isinstance(sel, dict) else []
  if rows:
    print(f"\nselection (largest N measured per variant):")
    last = {}
    for r in rows:
      if isinstance(r, dict) and "variant" in r:
        last[r["variant"]] = r
    for v, r in last.items():
      print(f"  {v:18s} N={r.get('n', '?'):>7} jax {r.get('jax_ms', float('nan')):10.1f} ms"
            f"  reference {r.get('ref_ms') or float('nan'):10.1f} ms")


if __name__ == "__main__":
  if len(sys.argv) != 2:
    raise SystemExit("usage: python benchmarks/summarize.py OUT_DIR")
  main(sys.argv[1])
