#!/usr/bin/env bash
# The GPU benchmarks as calls, each sized for one H200 and cut by its own
# deadline (GPU_DEADLINE_S; default 330 s for speed, 420 s for protocol, so
# that both calls and the machine's start fit one session's 15 minutes of
# device time; 480 s for study, a call of its own; the per-call ceiling is
# 8.5 minutes).
#
#   bash benchmarks/gpu.sh speed     # training variants, 3 vmapped trials, features,
#                                    # selection at 45,000 x 512, a profile at 5,000
#   bash benchmarks/gpu.sh protocol  # the full 7-cycle protocol, bf16, compiled cold
#   bash benchmarks/gpu.sh study     # python -m jax_al.study on configs/cifar10_short.py,
#                                    # grouped jobs of 3 vmapped trials
#
# Once per checkout (see ../shared/GPU.md):
#     echo /.device/ >> .git/info/exclude
#     mkdir -p .device && cp ../shared/wheels/*.whl ../shared/data/cifar10-jpeg.tar.gz .device/
# Then through the device tool, from the repo root, one call each:
#     run(command="bash benchmarks/gpu.sh speed", carry=[".device"], timeout_s=390)
#     run(command="bash benchmarks/gpu.sh protocol", carry=[".device"], timeout_s=480)
#     run(command="bash benchmarks/gpu.sh study", carry=[".device"], timeout_s=510)
#
# What comes back (a GPU call returns at most 8 files of <= 16 MiB, names of
# letters, digits, '.', '_', '-'): $OUT/results.tar.gz, every log and JSON
# of the call, re-packed after each part (and every 20 s while one runs, with
# the rows written so far) so a kill leaves at least the last finished part; $OUT/summary.txt, the
# table of benchmarks/summarize.py, rewritten with the archive and printed
# last; $OUT/profile_trace.json.gz (speed only) when under 15 MiB. Each part
# writes its JSON row by row, so a part cut by its cap keeps its rows.
#
# speed, in priority order (caps in seconds; a part never runs past the
# deadline minus a reserve for packing):
#   1. train_variants: ResNet-18 x1, batch 128, bf16, 20,000 of 50,000 labeled,
#      3 repeats: the shipped default (chunk) first, then the step variants
#      (docs/bench/README.md), images/s side by side, compile s apart  (cap 150)
#   2. train_xla_flags: the default and the combined variant again, under
#      XLA flags for CUDA graphs (command buffers incl. loops and conds)  (cap 40)
#   3. parallel_chunk / parallel_fast: 3 vmapped trials x 20,000 labeled, total
#      images/s (goal >= 120,000), default and combined variant     (cap 40 each)
#   4. features: Trainer.predict over 50,000                          (cap 15)
#   5. selection: 45,000 x 512, JAX only                              (cap 30)
#   6. profile: one epoch at 5,000 labeled under jax.profiler         (cap 25)
#   7. ensemble: 5 members at 5,000 labeled as one vmapped program vs one member
#      (goal < 2x one member's epoch)                                 (cap 40)
#   8. acquisitions: every strategy's select at 45,000 x 512          (cap 25)
#   9. select_scale: jax_al.select at 1,000,000 x 768 (C = 10, 1 % labeled and
#      picked): margin, entropy, the users' method and the RFF witness with the
#      pool on the device, and margin and the users' method streamed from the
#      host in blocks (jax_al.stream); time and peak device memory    (cap 90)
#  10. selection_ref: the NumPy / scikit-learn references at 45,000, if time is left
# protocol: jax_al.bench protocol on .device/cifar10-jpeg.tar.gz, bf16, cold
# (--config.compile_cache_dir=off), with all the time left but a reserve; its
# per-cycle records land in protocol.json and protocol/metrics.jsonl as each
# cycle finishes.
# study: first the study's --plan (its cost at the assumed or given
# throughput, printed before anything trains), then `python -m jax_al.study`
# on configs/cifar10_short.py and the CIFAR copy with all the time left but a
# reserve: --study.trials_per_job=$GPU_SH_TRIALS_PER_JOB (3) vmapped trials
# per job, one job seed per phase (--study.trials = --study.report_trials = that
# k), the baselines of GPU_SH_BASELINES (default below, cheapest and most
# asked-for first, the ensemble last), and GPU_SH_STUDY_ARGS passed through last
# (any --study.* / --config.* flag, e.g. "--config.train.epochs=10
# --study.vmap_images_per_s=90000"). The study runs phase 1 (questions 1-3, in
# the grid's order: u_batch and users first), chooses the best variant, replays
# the probe steps (from phase 1's checkpoints), runs phase 2 (the best, users,
# then the baselines in the order given) and writes the findings. The archive's study/ holds what the study
# wrote except checkpoints: findings.md/json, plots, choice.json, study.json,
# analysis/analysis.json, timing/, and each job's config.json, metrics.jsonl,
# selected.jsonl, summary.json, log.txt. At the deadline the study is killed:
# study/ then holds every finished job and the cycles the running job had
# finished (its metrics.jsonl), but no findings unless they were written;
# summary.txt's study table gives the finished replicates and their AUC per run
# and the measured training throughput. A second call can carry the unpacked
# study/ as .device/study and continue it (GPU_SH_STUDY_OUT=.device/study):
# finished jobs are skipped (they need no checkpoint), unfinished ones restart.
#
# GPU_SH_PARTS=a,b runs only the parts named (e.g. a second call for the
# parts a first one could not reach).
#
# CPU dry run (checks the wiring, not the numbers): GPU_SH_QUICK=1 shrinks
# every part (the digits MLP at width 0.25, or GPU_SH_MODEL=cnn; few images). Without .device/*.whl it uses the
# current python3's packages; GPU_SH_DATA=digits runs the protocol on
# scikit-learn's digits instead of the CIFAR copy, e.g.
#     OUT=/tmp/dry GPU_SH_QUICK=1 GPU_SH_DATA=digits bash benchmarks/gpu.sh protocol
set -u
MODE=${1:-}
case "$MODE" in
  speed|protocol|study) ;;
  *) echo "usage: bash benchmarks/gpu.sh speed|protocol|study"; exit 2 ;;
esac
T0=$(date +%s)
case "$MODE" in speed) DEFAULT_DEADLINE=330 ;; protocol) DEFAULT_DEADLINE=420 ;;
  *) DEFAULT_DEADLINE=480 ;; esac
DEADLINE=$((T0 + ${GPU_DEADLINE_S:-$DEFAULT_DEADLINE}))
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
W=$(mktemp -d)/$MODE   # staging folder: everything lands here, packed into $OUT
mkdir -p "$W"
QUICK=${GPU_SH_QUICK:-}
SCALE=1; [ -n "$QUICK" ] && SCALE=3
left() { echo $((DEADLINE - $(date +%s))); }
cap() {  # cap N [RESERVE]: min(N, time left - reserve), at least 1
  local l=$(( $(left) - ${2:-20} )); local c=$1
  (( l < c )) && c=$l; (( c < 1 )) && c=1; echo "$c"; }

pack() {  # under a lock (the protocol also packs from a background loop)
  if command -v flock > /dev/null; then ( flock 9; pack_now ) 9> "$(dirname "$W")/pack.lock"
  else pack_now; fi; }
pack_now() {  # summary.txt and results.tar.gz from $W, each written beside and renamed
  python3 benchmarks/summarize.py "$W" > "$W/summary.txt" 2>&1
  local f ex=()
  for f in "$W"/*.log; do  # keep the archive well under 16 MiB: a big log's last 2 MB only
    if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 2000000 ]; then
      tail -c 2000000 "$f" > "$f.tail"; ex+=("--exclude=$MODE/$(basename "$f")")
    fi
  done
  cp "$W/summary.txt" "$OUT/summary.txt.part" && mv "$OUT/summary.txt.part" "$OUT/summary.txt"
  tar -czf "$OUT/results.tar.gz.part" ${ex[@]+"${ex[@]}"} -C "$(dirname "$W")" "$MODE" \
    && mv "$OUT/results.tar.gz.part" "$OUT/results.tar.gz"
}

part() {  # part NAME CAP_S CMD...: CMD with a timeout, output to $W/NAME.log, then pack
  # quick (a CPU, often shared): caps x3, the deadline still bounds the call
  local name=$1 t; t=$(cap $(( $2 * SCALE ))); shift 2
  if [ -n "${GPU_SH_PARTS:-}" ] && [[ ",$GPU_SH_PARTS," != *",$name,"* ]]; then
    echo "== $name: skipped (not in GPU_SH_PARTS)"; return 0; fi
  if (( $(left) < 30 )); then echo "== $name: skipped ($(left)s left)"; echo "skipped: deadline" > "$W/$name.log"; return 0; fi
  echo "== $name (cap ${t}s, $(left)s left) =="
  local s; s=$(date +%s)
  timeout -k 5 "$t" "$@" > "$W/$name.log" 2>&1
  local rc=$?
  echo "   rc=$rc in $(( $(date +%s) - s ))s$( ((rc == 124 || rc == 137)) && echo ' (cut by cap)')"
  [ "$name" = plan ] || tail -n 12 "$W/$name.log" | grep -v -i warning
  pack
  return 0
}

# ---- the recipe of ../shared/GPU.md: wheels from .device/, no downloads ----
S=$(mktemp -d)
if ls .device/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target "$S" .device/*.whl \
    && export PYTHONPATH="$S:$PWD" PYTHONUNBUFFERED=1 || exit 1
elif [ -n "$QUICK" ]; then
  echo "quick: no .device/*.whl; using this python3's own packages"
  export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
else
  echo "missing .device/*.whl: copy the wheels and data into .device/ (see header) and pass carry=['.device']"
  exit 1
fi
export TF_CPP_MIN_LOG_LEVEL=2
DATA=${GPU_SH_DATA:-.device/cifar10-jpeg.tar.gz}
if [ "$MODE" != speed ] && [ "$DATA" != digits ] && [ ! -e "$DATA" ]; then
  echo "missing $DATA: copy the data into .device/ (see header) and pass carry=['.device']"
  exit 1
fi
{ nvidia-smi 2>&1 || true; } > "$W/nvidia-smi.txt"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" > "$W/env.txt" 2>&1
cat "$W/env.txt"
echo "mode $MODE, quick=${QUICK:-0}, deadline $(left)s" | tee -a "$W/env.txt"
B=(python3 -m jax_al.bench)
RUN=$S/protocol_run
STUDY=${GPU_SH_STUDY_OUT:-$S/study}
snap() {  # the run's small files (no checkpoints) into $W
  [ "$MODE" = study ] && { snap_study; return 0; }
  [ "$MODE" = protocol ] || return 0
  mkdir -p "$W/protocol"
  for f in log.txt metrics.jsonl summary.json config.json selected.jsonl; do
    [ -e "$RUN/$f" ] && cp "$RUN/$f" "$W/protocol/$f.part" && mv "$W/protocol/$f.part" "$W/protocol/$f"
  done
  return 0
}
snap_study() {  # the study's outputs but never its checkpoints, into $W/study
  [ -d "$STUDY" ] || return 0
  local f d rel
  ( cd "$STUDY" && find . -maxdepth 1 -type f \( -name '*.md' -o -name '*.json' -o -name '*.png' \
      -o -name '*.txt' \) ; find timing analysis -maxdepth 1 -type f -name '*.json' 2> /dev/null
    find runs -mindepth 3 -maxdepth 3 -type f \( -name config.json -o -name metrics.jsonl \
      -o -name selected.jsonl -o -name summary.json -o -name log.txt \) 2> /dev/null ) |
  while read -r rel; do
    d="$W/study/$(dirname "$rel")"; f="$d/$(basename "$rel")"
    mkdir -p "$d" && cp "$STUDY/$rel" "$f.part" 2> /dev/null && mv "$f.part" "$f"
  done
  return 0
}
pack
# Also re-pack every 20 s while a part runs: a kill of the whole call keeps
# the rows written so far (each part's JSON is rewritten after every row).
( while sleep 20; do snap; pack; done ) &
BG=$!

if [ "$MODE" = speed ]; then
  # The combined variant: several epochs per call, full-batch chunks without
  # mask or branch, the last chunk's padding dropped by a select.
  FAST=epochs5+bnpartial+select
  # Priority order: default first, then the combined guess, then one change at a time.
  VARIANTS=chunk,$FAST,chunk+select,chunk+bnpartial,epochs1,chunk+flat,chunk+while
  FLAGS="--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUDNN,CUSTOM_CALL,CONDITIONAL,WHILE --xla_gpu_graph_min_graph_size=1"
  if [ -n "$QUICK" ]; then
    FAST=epochs2+bnpartial+select
    VARIANTS=chunk,$FAST,chunk+select,chunk+bnpartial,chunk+flat,chunk+while
    # the MLP: no convolution, so every program compiles in seconds on a CPU
    M=(--models "${GPU_SH_MODEL:-mlp}" --cnn-width 0.25 --dtypes bfloat16 --batch 32
       --n-train 256 --chunk 2)
    TRAIN=("${M[@]}" --sizes 200 --repeats 1)
    PAR=(--model "${GPU_SH_MODEL:-mlp}" --width 0.25 --dtype bfloat16 --batch 32 --n-train 256 --labeled 128
         --repeats 1 --trials 3 --steps-per-call 2)
    FEAT=("${M[@]}" --sizes 128 --pool 512 --eval-batch 256 --repeats 1)
    SEL=(--sizes 600 --dim 32 --labeled 300 --budget 50 --preset-n 600 --repeats 1
         --variants kmeans_global,witness_exact,witness_rff,per_sample_exact)
    PROF=("${M[@]}" --sizes 128 --repeats 1)
    ENS=(--model "${GPU_SH_MODEL:-mlp}" --width 0.25 --dtype bfloat16 --batch 32 --n-train 256
         --labeled 128 --repeats 1 --trials 5 --steps-per-call 2)
    ACQ=(--quick --repeats 1)
    SEL_SCALE=(--sizes 2000 --dim 32 --classes 10 --strategies margin,margin_streamed)
  else
    M=(--models resnet18 --dtypes bfloat16)
    TRAIN=("${M[@]}" --sizes 20000 --repeats 3)
    PAR=(--model resnet18 --dtype bfloat16 --labeled 20000 --repeats 3 --trials 3)
    FEAT=("${M[@]}" --pool 50000 --repeats 3)
    SEL=(--sizes 45000 --dim 512 --labeled 20000)
    PROF=("${M[@]}" --sizes 5000 --repeats 1)
    ENS=(--model resnet18 --dtype bfloat16 --labeled 5000 --repeats 3 --trials 5)
    ACQ=(--repeats 3)
    SEL_SCALE=(--sizes 1000000 --dim 768 --classes 10
           --strategies margin,margin_streamed,entropy,users,users_streamed,witness_rff)
  fi
  # Parts 1, 3, 4, 6 share an on-disk compilation cache: the profile loads the
  # default step that part 1 compiled (each row's compile s is still cold:
  # part 1 compiles every program first).
  XC=(env JAX_COMPILATION_CACHE_DIR="$S/xla" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0)
  part train_variants 150 "${XC[@]}" "${B[@]}" train "${TRAIN[@]}" --variants "$VARIANTS" \
    --json "$W/train_variants.json"
  part train_xla_flags 40 env XLA_FLAGS="$FLAGS" "${B[@]}" train "${TRAIN[@]}" \
    --variants "chunk,$FAST" --json "$W/train_xla_flags.json"
  part parallel_chunk 40 "${XC[@]}" "${B[@]}" parallel "${PAR[@]}" --vmap-only --variant chunk \
    --json "$W/parallel_chunk.json"
  part parallel_fast 40 "${XC[@]}" "${B[@]}" parallel "${PAR[@]}" --vmap-only --variant "$FAST" \
    --json "$W/parallel_fast.json"
  part features 15 "${XC[@]}" "${B[@]}" features "${FEAT[@]}" --json "$W/features.json"
  part selection 30 "${B[@]}" selection "${SEL[@]}" --no-reference --json "$W/selection.json"
  part profile 25 "${XC[@]}" "${B[@]}" profile "${PROF[@]}" --profile-dir "$S/profile" \
    --json "$W/profile.json"
  # 5 ensemble members as one vmapped program vs one member (goal < 2x), and
  # every strategy's selection cost at 45,000 x 512.
  part ensemble 40 "${XC[@]}" "${B[@]}" parallel "${ENS[@]}" --ensemble --json "$W/ensemble.json"
  part acquisitions 25 "${B[@]}" acquisitions "${ACQ[@]}" --json "$W/acquisitions.json"
  # One process per cell; the synthetic pool is written to the machine's disk first.
  part select_scale 90 "${B[@]}" select "${SEL_SCALE[@]}" --impls jax --timeout 120 \
    --data-dir "$S/select_pools" --json "$W/select_scale.json"
  # The Perfetto trace (ui.perfetto.dev) comes back as its own file if small enough.
  TR=$(find "$S/profile" -name perfetto_trace.json.gz 2>/dev/null | head -1)
  if [ -n "$TR" ] && [ "$(stat -c %s "$TR")" -lt 15000000 ]; then
    cp "$TR" "$OUT/profile_trace.json.gz"
  elif [ -n "$TR" ]; then
    echo "profile trace $(stat -c %s "$TR") bytes: over 15 MB, not returned" | tee -a "$W/env.txt"
  fi
  if (( $(left) > 60 )); then
    part selection_ref $(( $(left) - 25 )) "${B[@]}" selection "${SEL[@]}" \
      --json "$W/selection_ref.json"
  fi
elif [ "$MODE" = study ]; then
  K=${GPU_SH_TRIALS_PER_JOB:-$([ -n "$QUICK" ] && echo 2 || echo 3)}
  BASE=${GPU_SH_BASELINES:-random,margin,coreset,badge,greedy_margin,global_uncertainty,learning_loss,ensemble_bald}
  if [ "$DATA" = digits ]; then  # CPU check of the wiring without the CIFAR copy
    P=(--config configs/digits.py)
  else
    P=(--config configs/cifar10_short.py --config.data.source=folder "--config.data.path=$DATA")
  fi
  [ -n "$QUICK" ] && { P+=(--mode ci); BASE=${GPU_SH_BASELINES:-random,ensemble_bald}; }
  P+=(--out "$STUDY" "--study.trials_per_job=$K" "--study.trials=$K" "--study.report_trials=$K"
      "--study.baselines=$BASE")
  read -r -a EXTRA <<< "${GPU_SH_STUDY_ARGS:-}"
  ST=(python3 -m jax_al.study "${P[@]}" ${EXTRA[@]+"${EXTRA[@]}"})
  echo "${ST[*]}" > "$W/study_command.txt"
  # The plan first: the log shows the planned cost before anything trains.
  part plan 60 "${ST[@]}" --plan
  cat "$W/plan.log"
  part study "$(left)" "${ST[@]}"
else
  if [ "$DATA" = digits ]; then  # CPU check of the wiring without the CIFAR copy
    # entropy: the users' selection alone compiles for ~50 s on a 2-core CPU
    P=(--config configs/digits.py --config.al.cycles=2 --config.train.epochs=2
       --config.train.eval_every=1 --config.al.strategy=entropy)
  else
    P=(--config.data.source=folder "--config.data.path=$DATA" --config.train.dtype=bfloat16)
    [ -n "$QUICK" ] && P=(--quick "${P[@]}")
  fi
  # GPU_SH_PROTOCOL_ARGS: extra overrides, e.g. the step variant the speed call found best
  # (GPU_SH_PROTOCOL_ARGS="--config.train.epochs_per_call=5 --config.train.bn_mask=partial").
  read -r -a EXTRA <<< "${GPU_SH_PROTOCOL_ARGS:-}"
  part protocol "$(left)" "${B[@]}" protocol --quiet --workdir "$RUN" "${P[@]}" \
    --config.compile_cache_dir=off ${EXTRA[@]+"${EXTRA[@]}"} --json "$W/protocol.json"
fi

kill "$BG" 2> /dev/null; wait "$BG" 2> /dev/null
snap
pack
echo "total $(( $(date +%s) - T0 ))s; files in $OUT:"
ls -l "$OUT"
cat "$OUT/summary.txt"
