"""Where the time of a training epoch goes: a `jax.profiler` trace, summarised.

The ResNet-18 (first of `--models`, `--width`) trains with the step the loop
would use (`train.steps_per_call = 0`, auto: 40-step chunks on a GPU, single
steps on CPU) at the largest `--sizes` labeled count, in the first of
`--dtypes`. After one warm-up epoch (compilation), `--repeats` epochs run
under `jax.profiler.trace(create_perfetto_trace=True)`. The Perfetto trace is
then read back and summarised per device (GPU streams, or the XLA:CPU
threads on a CPU):

- `busy_s`: the union of the device's op intervals, so overlapping streams
  are not double counted; `busy_frac` = busy_s / traced window. Well under 1
  on a GPU means the device waits on the host (launches, syncs, Python).
- `top_ops`: total self time per op or kernel name (nested events' time
  counted once, in the innermost), largest first, with its share of the
  summed op time (convolution kernels vs BatchNorm fusions vs the rest).
  On a GPU only the "Stream #n" rows (kernels) count for both; the "XLA
  Ops" row, when the trace has one, is summarised apart as `top_hlo_ops`.

The trace file (`perfetto_trace.json.gz`, viewable at ui.perfetto.dev) is
kept under `--profile-dir` when given. The record is written at every stage
(compiled, one untraced epoch timed, traced, summarised; `status` says
which), so a run cut by a time limit keeps what it measured.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import math
import os
import shutil
import tempfile
import time

import jax

from jax_al.bench import common
from jax_al.bench.train import build_trainer, epoch_runner, fake_data, model_width

# Host-side trace rows that are not device work (the Python thread, PjRt's
# bookkeeping); on a CPU the remaining threads of the host process are XLA's.
_HOST_THREADS = ("python", "pjrt", "tfrt", "profiler")


def _intervals_union(spans: list[tuple[float, float]]) -> float:
  """Total length covered by [start, end) intervals (overlaps counted once)."""
  total, end = 0.0, -math.inf
  for s, e in sorted(spans):
    if e <= end:
      continue
    total += e - max(s, end)
    end = e
  return total


def _self_times(events: list[dict]) -> list[float]:
  """Each event's duration minus its direct children's (events of one thread,
  properly nested), so wrappers such as XLA:CPU's ThunkExecutor::Execute do
  not count their ops twice."""
  order = sorted(range(len(events)), key=lambda i: (events[i]["ts"], -events[i]["dur"]))
  own = [float(e["dur"]) for e in events]
  stack: list[tuple[float, int]] = []  # (end, index) of open events
  for i in order:
    e = events[i]
    while stack and stack[-1][0] <= e["ts"]:
      stack.pop()
    if stack:
      own[stack[-1][1]] -= e["dur"]
    stack.append((e["ts"] + e["dur"], i))
  return [max(t, 0.0) for t in own]


def summarize_trace(trace: dict, top: int = 12) -> dict:
  """Per-device busy time and top ops of a Chrome/Perfetto trace (microseconds).

  Devices are processes named "/device:..." (GPU/TPU). Without any, the
  host's XLA threads stand in (XLA:CPU runs the ops there).
  """
  events = trace.get("traceEvents", []) if isinstance(trace, dict) else list(trace)
  procs, threads = {}, {}
  for e in events:
    if e.get("ph") == "M" and e.get("name") == "process_name":
      procs[e["pid"]] = str(e.get("args", {}).get("name", ""))
    if e.get("ph") == "M" and e.get("name") == "thread_name":
      threads[e["pid"], e.get("tid")] = str(e.get("args", {}).get("name", ""))
  spans = [e for e in events if e.get("ph") == "X" and e.get("dur") is not None]
  if not spans:
    return {"window_s": 0.0, "devices": []}
  t0 = min(e["ts"] for e in spans)
  t1 = max(e["ts"] + e["dur"] for e in spans)
  device_pids = [p for p, n in procs.items() if n.startswith("/device:")]

  def on_device(e) -> str | None:
    if device_pids:
      return procs[e["pid"]] if e["pid"] in device_pids else None
    name = threads.get((e["pid"], e.get("tid")), "").lower()
    if not name or any(h in name for h in _HOST_THREADS):
      return None
    return f"{procs.get(e['pid'], 'host')} (XLA threads)"

  thread_of = lambda e: threads.get((e["pid"], e.get("tid")), "").lower()
  by_device = collections.defaultdict(list)
  for e in spans:
    d = on_device(e)
    if d is not None:
      by_device[d].append(e)
  window = (t1 - t0) * 1e-6
  devices = []
  for name, evs in sorted(by_device.items()):
    # A GPU's kernels run on its "Stream #n" rows; rows such as "XLA Modules"
    # span whole programs, gaps included, and would hide idle time.
    kernels = [e for e in evs if thread_of(e).startswith("stream")] or evs
    busy = _intervals_union([(e["ts"], e["ts"] + e["dur"]) for e in kernels]) * 1e-6
    rec = {"device": name, "events": len(kernels), "busy_s": busy,
           "busy_frac": busy / window if window > 0 else 0.0,
           "top_ops": _top_ops(kernels, top)}
    hlo = [e for e in evs if thread_of(e) == "xla ops"]
    if hlo:  # the HLO ops the kernels belong to: fusion names, convolutions
      rec["top_hlo_ops"] = _top_ops(hlo, top)
    devices.append(rec)
  return {"window_s": window, "devices": devices}


def _top_ops(events: list[dict], top: int) -> list[dict]:
  """Self time per name over `events` (grouped by thread), largest first."""
  per_op = collections.defaultdict(lambda: [0.0, 0])
  per_thread = collections.defaultdict(list)
  for e in events:
    per_thread[e["pid"], e.get("tid")].append(e)
  for thread_events in per_thread.values():
    for e, own in zip(thread_events, _self_times(thread_events)):
      per_op[e["name"]][0] += own
      per_op[e["name"]][1] += 1
  summed = sum(v[0] for v in per_op.values()) or 1.0
  ops = sorted(per_op.items(), key=lambda kv: -kv[1][0])[:top]
  return [{"name": n[:120], "total_ms": v[0] * 1e-3, "count": v[1], "frac": v[0] / summed}
          for n, v in ops]


def _find_trace(folder: str) -> str | None:
  found = sorted(glob.glob(os.path.join(folder, "**", "perfetto_trace.json.gz"), recursive=True))
  return found[-1] if found else None


def bench_profile(args, results: common.Results) -> dict:
  model, dtype = args.models[0], args.dtypes[0]
  labeled = max(args.sizes)
  c, trainer, state, _ = build_trainer(args, model, dtype, 0)  # 0: auto steps/call
  sc = trainer.sc
  images, labels = fake_data(args.n_train, seed=0)
  epoch = epoch_runner(trainer, c, images, labels, labeled)
  rec = {"model": model, "width": model_width(args, model), "dtype": dtype,
         "labeled": labeled, "steps_per_call": sc.steps_per_call, "epochs": args.repeats,
         "status": "compiling"}
  results.set("profile", rec)  # written at every stage: a cut keeps the stages done
  t = time.perf_counter()
  state, _ = jax.block_until_ready(epoch(state, 0))  # compiles
  rec.update(status="untraced epoch", first_epoch_s=time.perf_counter() - t)
  results.set("profile", rec)
  (state, _), untraced_s = common.timed(lambda: epoch(state, 1))
  rec.update(status="tracing", untraced_epoch_s=untraced_s,
             images_per_s_untraced=labeled / untraced_s)
  results.set("profile", rec)
  if args.profile_dir:  # checked by check_output_dir before the bench began
    from jax_al import files
    folder = str(files.claim_output_dir(args.profile_dir))
  else:
    folder = tempfile.mkdtemp(prefix="jax_al_profile_")
  t = time.perf_counter()
  with jax.profiler.trace(folder, create_perfetto_trace=True):
    for i in range(args.repeats):
      state, loss = epoch(state, i + 2)
    jax.block_until_ready((state, loss))
  traced_s = time.perf_counter() - t
  path = _find_trace(folder)
  rec.update(status="summarising", wall_s=traced_s,
             images_per_s_traced=labeled * args.repeats / traced_s,
             trace_file=path if args.profile_dir else None,
             trace_bytes=os.path.getsize(path) if path else None)
  results.set("profile", rec)
  if path is None:
    rec["error"] = f"jax.profiler wrote no perfetto_trace.json.gz under {folder}"
  else:
    with gzip.open(path, "rt") as f:
      rec.update(summarize_trace(json.load(f)))
  if not args.profile_dir:
    shutil.rmtree(folder, ignore_errors=True)
  rec["status"] = "done"
  results.set("profile", rec)
  return rec


def print_profile(rec: dict) -> None:
  print(f"\nProfile: {rec['model']} w={rec['width']} {rec['dtype']}, {rec['labeled']} labeled, "
        f"{rec['steps_per_call']} steps/call, {rec['epochs']} epochs traced in "
        f"{rec['wall_s']:.2f} s ({rec['images_per_s_traced']:,.0f} images/s under the profiler)")
  if "error" in rec:
    print(f"  {rec['error']}")
    return
  for d in rec["devices"]:
    print(f"  {d['device']}: busy {d['busy_s']:.3f} s of {rec['window_s']:.3f} s "
          f"({100 * d['busy_frac']:.0f} %), {d['events']} ops")
    for op in d["top_ops"]:
      print(f"    {100 * op['frac']:5.1f} %  {op['total_ms']:10.2f} ms  x{op['count']:<6d} "
            f"{op['name']}")
    if d.get("top_hlo_ops"):
      print("    HLO ops:")
      for op in d["top_hlo_ops"]:
        print(f"    {100 * op['frac']:5.1f} %  {op['total_ms']:10.2f} ms  x{op['count']:<6d} "
              f"{op['name']}")
  if rec.get("trace_file"):
    print(f"  trace: {rec['trace_file']} (ui.perfetto.dev)")
