#!/usr/bin/env bash
# The whole test suite: set up, fetch and verify the real sample data (cached), run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m tests.realdata
python3 -m pytest -n 2 --dist loadfile -q "$@"
