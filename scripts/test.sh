#!/usr/bin/env bash
# The whole test suite: set up .venv with the test tooling (from uv.lock), fetch and verify the
# real sample data (cached), run pytest in the project's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
source .venv/bin/activate
# Python keeps its bytecode cache (an environment may set PYTHONDONTWRITEBYTECODE, as this one
# does): the suite starts hundreds of interpreters (CLI runs, servers, Dask and build workers),
# and each would compile its imports from source again (the build's 2.8 s -> 1.1 s, tiled's
# server 9.6 s -> 4.3 s). Lambda packages compile their own (publisher/deploy/package.py).
unset PYTHONDONTWRITEBYTECODE
python -m tests.realdata
python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -q "$@"
