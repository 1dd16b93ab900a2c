#!/usr/bin/env bash
# The main job: SmolLM2-135M-Instruct, weightedmean pooling, texts in its chat template (as
# sentence-transformers embeds this model), NLI triplets (SNLI dev+test + SICK train),
# MultipleNegativesRankingLoss, best checkpoint on STS-B dev, STS-B test before and after.
# Runs `bash setup.sh` first (installs on first use, a no-op after). Takes about 30 minutes on 2
# quiet CPU cores, plus the set-up on a first run.
#   SICK=0 bash examples/nli_smollm2.sh      # SNLI dev+test only (11,852 triplets): the reference's data
#   FORMAT=--no-chat-template bash examples/nli_smollm2.sh   # raw text, as SGPT embeds
# Extra arguments go to `sgpt train nli` (e.g. --max-steps 2 --no-eval-before --output runs/try).
set -euo pipefail
cd "$(dirname "$0")/.."
bash setup.sh  # first use: installs .venv and models/; then one line
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/nli-smollm2}
mkdir -p "$(dirname "$OUT")"  # sgpt creates --output itself, never its parents
FORMAT=${FORMAT:---chat-template}
TRAIN=(--train-data "$DATA/snli-senteval")
if [ "${SICK:-1}" != 0 ]; then TRAIN+=(--train-data "$DATA/sick"); fi
.venv/bin/python -m sgpt train nli --model models/smollm2-135m --pooling weightedmean "$FORMAT" \
    "${TRAIN[@]}" --dev-data "$DATA/stsb" --output "$OUT" \
    --max-steps 150 --batch-size 32 --lr 2e-5 --max-seq-length 75 --seed 0 \
    --eval-steps 50 --eval-before "$@"
