#!/usr/bin/env bash
# Install Skyshelf with everything the demo and the tests need (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# GNU strip for arm64 Lambda packages (publish deploy strips debug symbols); optional
if ! command -v aarch64-linux-gnu-strip >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get install -y -qq binutils-aarch64-linux-gnu >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq binutils-aarch64-linux-gnu >/dev/null 2>&1; }) || true
fi
