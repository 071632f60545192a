#!/usr/bin/env bash
# The main job: set up (.venv, runtime packages only), generate the demo tree, build it into
# ./site, then serve it with the Lambda handlers on http://127.0.0.1:8000 until Ctrl+C (the browse
# page at http://127.0.0.1:8000/, the API at /api/v1/).
# PORT=8080 bash scripts/demo.sh picks another port; HOST=0.0.0.0 listens beyond this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
python examples/demo/make_demo.py
publish build -c pipeline.yml
publish ls -c pipeline.yml -l -r
exec publish serve -c pipeline.yml --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
