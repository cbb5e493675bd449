#!/usr/bin/env bash
# All GPU benchmarks in one call, sized for one H200 within the 10-minute
# per-call limit (hard deadline: GPU_DEADLINE_S, default 570 s from start).
#
# Once per checkout (see ../shared/GPU.md):
#     echo /.device/ >> .git/info/exclude
#     mkdir -p .device && cp ../shared/wheels/*.whl ../shared/data/cifar10-jpeg.tar.gz .device/
# Then through the device tool, from the repo root:
#     run(command="bash benchmarks/gpu.sh", carry=[".device"], timeout_s=600)
#
# Order and caps (seconds; every part writes its JSON as it goes, so a part
# cut by its cap still returns what it measured):
#   1. features+train, ResNet-18 width 1, batch 128, bf16: step (1) /
#      chunk (40, the GPU default) / epoch (391) steps per call, at 5,000
#      and 20,000 labeled; features over 50,000 first; each train row has
#      XLA's cost analysis (GFLOP/image, TFLOP/s)               (cap 140)
#   2. profile: one bf16 epoch at 20,000 labeled under jax.profiler; GPU busy
#      fraction and top kernels (profile.json), the Perfetto trace
#      (profile_trace.json.gz) if under 30 MB                   (cap 45)
#   3. the full 7-cycle protocol on the CIFAR-10 JPEG copy, bf16, 'users'
#      strategy, cold (no on-disk compilation cache: every program compiles,
#      as on a fresh machine): all the time left but 55 s (at least ~320 s);
#      cut at that point, its per-cycle log (protocol/metrics.jsonl) still
#      returns, with compile s per cycle
#   4. selection benchmark (jax_al.bench.selection)             (cap 40)
#   5. features+train fp32, chunk variant only, if > 60 s left  (cap 45)
#   6. PyTorch reference, bf16 eager channels_last, if > 60 s left (cap 45)
# then a summary table (benchmarks/summarize.py) printed last.
#
# Dry run on a CPU (checks the wiring, not the numbers): GPU_SH_QUICK=1 adds
# --quick to every part (tiny widths and sizes), e.g. from a copy of the tree
# with .device/ filled:  OUT=/tmp/gpu-dry GPU_SH_QUICK=1 bash benchmarks/gpu.sh
#
# Everything lands in $OUT: *.json, *.log, protocol/ (log.txt, metrics.jsonl,
# summary.json of the run), nvidia-smi.txt, summary.txt.
set -u
T0=$(date +%s)
DEADLINE=$((T0 + ${GPU_DEADLINE_S:-570}))
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
left() { echo $((DEADLINE - $(date +%s))); }
cap() {  # cap N: min(N, time left - reserve), at least 1
  local l=$(( $(left) - ${2:-15} )); local c=$1
  (( l < c )) && c=$l; (( c < 1 )) && c=1; echo "$c"; }
part() {  # part NAME CAP_S CMD...: runs CMD with a timeout, logs to $OUT/NAME.log
  local name=$1 t; t=$(cap "$2"); shift 2
  echo "== $name (cap ${t}s, $(left)s left) =="
  local s; s=$(date +%s)
  timeout -k 5 "$t" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "   rc=$rc in $(( $(date +%s) - s ))s$( ((rc == 124 || rc == 137)) && echo ' (cut by cap)')"
  tail -n 25 "$OUT/$name.log" | grep -v -i warning
  return 0
}

# ---- the recipe of ../shared/GPU.md: wheels from .device, no downloads ----
for f in .device/cifar10-jpeg.tar.gz; do
  [ -e "$f" ] || { echo "missing $f: copy the wheels and data into .device/ (see header) and pass carry=['.device']"; exit 1; }
done
ls .device/*.whl > /dev/null 2>&1 || { echo "missing .device/*.whl (see header)"; exit 1; }
S=$(mktemp -d) && python3 -m pip install -q --no-index --no-deps --target "$S" .device/*.whl \
  && export PYTHONPATH="$S:$PWD" PYTHONUNBUFFERED=1 || exit 1
export TF_CPP_MIN_LOG_LEVEL=2
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tee "$OUT/env.txt"

if [ -n "${GPU_SH_QUICK:-}" ]; then  # CPU dry run
  Q=(--quick); SIZES=(); PSIZE=(); TORCH=(--device cpu --width 0.125 --labeled 512 --epochs 2)
else
  Q=(); SIZES=(--sizes 5000,20000 --repeats 3); PSIZE=(--sizes 20000 --repeats 1)
  TORCH=(--labeled 20000 --epochs 3)
fi

# ---- 1-2: training and feature-extraction throughput, then a profile ----
# The two share an on-disk compilation cache, so the profile loads the chunk
# step the benchmark compiled (the protocol below runs without it: cold).
XC=(env JAX_COMPILATION_CACHE_DIR="$S/xla" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0)
part train_bf16 140 "${XC[@]}" python3 -m jax_al.bench train,features --models resnet18 \
  --dtypes bfloat16 --variants step,chunk,epoch ${Q[@]+"${Q[@]}"} ${SIZES[@]+"${SIZES[@]}"} \
  --json "$OUT/train_bf16.json"
part profile 45 "${XC[@]}" python3 -m jax_al.bench profile --models resnet18 --dtypes bfloat16 \
  ${Q[@]+"${Q[@]}"} ${PSIZE[@]+"${PSIZE[@]}"} --profile-dir "$S/profile" --json "$OUT/profile.json"
# Keep the Perfetto trace (ui.perfetto.dev) if it is small enough to come back.
T=$(find "$S/profile" -name perfetto_trace.json.gz 2>/dev/null | head -1)
[ -n "$T" ] && [ "$(stat -c %s "$T")" -lt 30000000 ] && cp "$T" "$OUT/profile_trace.json.gz"

# ---- 3: the full protocol (7 cycles, 200 epochs each, 'users' strategy) ----
rm -rf /tmp/jax_al_protocol
part protocol $(( $(left) - 55 )) python3 -m jax_al.bench protocol ${Q[@]+"${Q[@]}"} --quiet --workdir /tmp/jax_al_protocol \
  --config.data.source=folder --config.data.path=.device/cifar10-jpeg.tar.gz \
  --config.train.dtype=bfloat16 --config.compile_cache_dir=off --json "$OUT/protocol.json"
mkdir -p "$OUT/protocol"
for f in log.txt metrics.jsonl summary.json config.json selected.jsonl; do
  [ -e "/tmp/jax_al_protocol/$f" ] && cp "/tmp/jax_al_protocol/$f" "$OUT/protocol/"
done

# ---- 4: selection ----
part selection 40 python3 -m jax_al.bench selection ${Q[@]+"${Q[@]}"} --json "$OUT/selection.json"

# ---- 5: fp32 training, then the PyTorch reference, if time is left ----
if (( $(left) > 60 )); then
  part train_fp32 45 python3 -m jax_al.bench train,features --models resnet18 \
    --dtypes float32 --variants chunk ${Q[@]+"${Q[@]}"} ${SIZES[@]+"${SIZES[@]}"} \
    --json "$OUT/train_fp32.json"
fi
if (( $(left) > 60 )); then
  part torch_bf16 45 python3 benchmarks/torch_reference.py --dtype bfloat16 --channels-last \
    --warmup 1 "${TORCH[@]}" --json "$OUT/torch_bf16.json"
fi

python3 benchmarks/summarize.py "$OUT" 2>&1 | tee "$OUT/summary.txt"
echo "total $(( $(date +%s) - T0 ))s"
