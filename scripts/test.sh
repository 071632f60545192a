#!/usr/bin/env bash
# The whole test suite: set up .venv with the test tooling (from uv.lock), fetch and verify the
# real sample data (cached), run pytest in the project's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
source .venv/bin/activate
python -m tests.realdata
python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -q "$@"
