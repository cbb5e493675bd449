#!/bin/sh
# The feature-bed comparison of ../cifar10_features with the whole unlabeled
# pool scored each cycle (al.subset=0) instead of 10,000 random candidates.
# Run from the repository root. Rerunning the same command resumes: every
# strategy continues after its last finished cycle, finished ones are skipped.
# After each strategy the report here is rebuilt from the finished ones and
# their small result files (no checkpoints) are copied to runs/<strategy>/.
set -e
PY=${PY:-python}
W=${W:-runs/feat_wholepool}
OUT=docs/results/cifar10_features_wholepool
for s in ${STRATEGIES:-random margin entropy coreset users}; do
  $PY run.py --config configs/cifar10_features.py --config.num_trials=5 \
    --config.al.subset=0 --config.compare.strategies=$s --workdir "$W"
  mkdir -p "$OUT/runs/$s"
  for f in config.json log.txt metrics.jsonl selected.jsonl summary.json; do
    cp "$W/$s/$f" "$OUT/runs/$s/$f"
  done
  $PY -m jax_al.report "$OUT"/runs/* --out "$OUT"
done
