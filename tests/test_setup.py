"""The README's set-up: the project's own virtual environment, installed from the lock file,
and a rerun that needs no network when nothing changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_tests_run_in_the_project_venv() -> None:
    """The suite runs in ``.venv`` (scripts/test.sh), not in the machine's Python."""
    assert Path(sys.prefix).resolve() == (ROOT / ".venv").resolve(), sys.prefix


def test_lock_matches_pyproject() -> None:
    """``uv.lock`` is up to date with pyproject.toml (checked without the network)."""
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    done = subprocess.run([uv, "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("mode", ["", "dev"])
def test_rerun_needs_no_network(mode: str) -> None:
    """With everything installed, both set-ups finish in a network namespace with no interfaces
    up (``unshare -n``): nothing is downloaded or even looked up."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and util-linux unshare to cut the network")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    done = subprocess.run(["unshare", "-n", "bash", "scripts/setup.sh", *([mode] if mode else [])], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
