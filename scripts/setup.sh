#!/usr/bin/env bash
# Install Skyshelf into the project's own virtual environment (.venv) from the lock file
# (uv.lock), never into the machine's Python. `setup.sh` gives what running needs (build and
# serve); `setup.sh dev` adds the test and deploy tooling. Rerunning with nothing changed does
# no network work: uv checks the installed set against the lock and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
if ! command -v uv >/dev/null || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    if [ ! -x .tools/bin/uv ] || [ "$(.tools/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then  # (an older one kept after a bump)
        # uv itself, in a folder of its own (nothing in the machine's Python changes)
        python3 -m venv .tools >/dev/null
        .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    fi
    export PATH="$PWD/.tools/bin:$PATH"
fi
if [ "${1:-}" = dev ]; then
    uv sync --locked --extra dev --quiet
    # GNU strip for arm64 Lambda packages (publish deploy strips debug symbols); optional
    if ! command -v aarch64-linux-gnu-strip >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        (apt-get install -y -qq binutils-aarch64-linux-gnu >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq binutils-aarch64-linux-gnu >/dev/null 2>&1; }) || true
    fi
    # Debian's chromium for the browse page's browser tests (playwright drives it by path, so no
    # `playwright install`); never fatal: without it those tests skip, and fail under CI
    if [ ! -x /usr/lib/chromium/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        packages="chromium fonts-liberation"
        (apt-get install -y -qq --no-install-recommends $packages >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends $packages >/dev/null 2>&1; }) \
            || echo "setup.sh: chromium not installed: the browser tests skip (and fail under CI)" >&2
    fi
else
    # --inexact: a test set-up already in .venv is left as it is
    uv sync --locked --inexact --extra readers --extra serve --quiet
fi
