#!/usr/bin/env bash
# The test command (README, .ci/run): sets up on first use (bash setup.sh: one line and no work
# when everything is installed), then runs the lint checks, then the tests. Arguments go to pytest
# (bash test.sh tests/model -x). About 3.5 minutes of CPU once set up (5.5 min on a busy machine).
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh

# ---- lint checks: one command a line, each stops the run on failure (tools from the `lint` extra) ----
.venv/bin/ruff check src tests benchmarks examples
.venv/bin/ruff format --check --quiet src tests benchmarks examples
.venv/bin/mypy src/sgpt
.venv/bin/lint-imports --no-cache
# ---- end of lint checks ----

exec .venv/bin/python -m pytest -q "$@"
