#!/usr/bin/env bash
# The main job: set up, generate the demo tree, build it into ./site, print a summary and the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 examples/demo/make_demo.py
publish build -c pipeline.yml
publish ls -c pipeline.yml -l -r
