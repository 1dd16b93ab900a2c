#!/usr/bin/env bash
# Asymmetric search with SmolLM2-135M as in SGPT's msmarco models: weightedmean pooling, specb
# brackets ([query], {document}), BM25 hard negatives for SciFact's train queries, MNRL; nDCG@10 on
# SciFact test before and after (add the other sets with MORE_EVAL="--eval-data $DATA/msmarco/dl19-subset
# --eval-data $DATA/beir/dbpedia-entity-subset": about 20 more minutes per evaluation here).
# Runs `bash setup.sh` first (a no-op once set up). Sized for 2 CPU cores (about an hour): texts are cut to 128
# tokens and 40 steps of 16 queries are trained in bf16 autocast; on a GPU use --max-seq-length 300
# --batch-size 64 --precision auto and --epochs N instead of --max-steps.
set -euo pipefail
cd "$(dirname "$0")/.."
bash setup.sh  # first use: installs .venv and models/; then one line
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/scifact}
mkdir -p "$OUT"
[ -f "$OUT/bm25_negatives.jsonl" ] || .venv/bin/python -m sgpt mine-negatives --data "$DATA/beir/scifact" \
    --split train --method bm25 --k 30 --output "$OUT/bm25_negatives.jsonl"
.venv/bin/python -m sgpt train retrieval --model models/smollm2-135m --pooling weightedmean --special-tokens specb \
    --train-data "$DATA/beir/scifact" --negatives "$OUT/bm25_negatives.jsonl" \
    --eval-data "$DATA/beir/scifact" ${MORE_EVAL:-} --eval-before \
    --output "$OUT/smollm2" --batch-size 16 --max-steps 40 --lr 2e-5 --max-seq-length ${MAXLEN:-128} --precision bf16 \
    --eval-precision bfloat16 --seed 0 "$@"
