#!/usr/bin/env bash
# The main job: set up, generate the demo tree, build it into ./site, then serve it with the
# Lambda handlers on http://127.0.0.1:8000 (PORT=... to change) until Ctrl+C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 examples/demo/make_demo.py
publish build -c pipeline.yml
publish ls -c pipeline.yml -l -r
exec publish serve -c pipeline.yml --port "${PORT:-8000}"
