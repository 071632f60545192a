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


def test_seaweedfs_starts_again_when_another_listener_took_a_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's SeaweedFS draws its ports free, but another listener may take one before weed
    binds it: weed then exits (its own port check, or "address already in use" from a later bind)
    and the fixture starts it on new ports."""
    import socket

    from . import servers

    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    drawn = iter([{**servers._weed_ports(), "filer": held.getsockname()[1]}])
    real = servers._weed_ports
    monkeypatch.setattr(servers, "_weed_ports", lambda: next(drawn, None) or real())
    try:
        with servers.seaweedfs(tmp_path) as server:
            client = server.client()
            client.put_object(Bucket=server.create_bucket("after-retry"), Key="k", Body=b"stored")
            assert client.get_object(Bucket="after-retry", Key="k")["Body"].read() == b"stored"
    finally:
        held.close()
    assert "not available" in (tmp_path / "seaweedfs-0.log").read_text() and (tmp_path / "seaweedfs-1.log").exists()
