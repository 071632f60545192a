#!/usr/bin/env bash
# Install Skyshelf with everything the demo and the tests need (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev]"
