#!/usr/bin/env bash
# The main job: SmolLM2-135M, weightedmean pooling, NLI triplets (SNLI dev+test + SICK train),
# MultipleNegativesRankingLoss, best checkpoint on STS-B dev, STS-B test before and after.
# Needs `bash setup.sh` first. Takes about 25 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/nli-smollm2}
.venv/bin/python -m sgpt train nli --model models/smollm2-135m --pooling weightedmean \
    --train-data "$DATA/snli-senteval" --train-data "$DATA/sick" \
    --dev-data "$DATA/stsb" --output "$OUT" \
    --max-steps 150 --batch-size 32 --lr 2e-5 --max-seq-length 75 --seed 0 \
    --eval-steps 50 --eval-before "$@"
