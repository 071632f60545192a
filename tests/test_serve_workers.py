"""``publish serve --workers``: worker processes share the port, so slow PNGs hold cores, not the
server; stopping it (Ctrl+C, SIGTERM, even SIGKILL) leaves no worker behind; the access log
says method, path, status, bytes and time from every worker, never an API key."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import ROOT, Published, run_build
from .servers import free_port, serve_process, until_healthy

IMAGE = "big/image"
#: An access log line (handlers/access_log.py).
LINE = re.compile(r'(?P<client>\S+) "(?P<method>[A-Z]+) (?P<target>\S+) HTTP/1\.1" (?P<status>\d{3}) (?P<bytes>\d+) B '
                  r'(?P<ms>\d+\.\d) ms pid (?P<pid>\d+)$')


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """A 4096 x 4096 float32 image: a PNG of it at 2048 takes ~0.5 s of one core."""
    folder = tmp_path_factory.mktemp("big")
    (folder / "src").mkdir()
    y, x = np.mgrid[0:4096, 0:4096].astype(np.float32)
    np.save(folder / "src" / "image.npy", (np.sin(x / 97) * np.cos(y / 61) * 1000).astype(np.float32))
    return run_build(folder, {"version": 1, "name": "big", "sources": [{"path": str(folder / "src" / "*.npy"), "into": "big"}]})


@pytest.fixture(scope="module")
def served(big: Published, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``publish serve --workers 2`` with its access log on: (URL, log file)."""
    folder = tmp_path_factory.mktemp("served")
    log = folder / "serve.log"
    with serve_process(big.store.url, "--workers", "2", cwd=folder, env={"SKYSHELF_ACCESS_LOG": "1"}, log=log) as (url, _):
        ready(log)
        yield url, log


def ready(log: Path) -> list[int]:
    """The worker pids ``publish serve`` names once every worker listens."""
    deadline = time.monotonic() + 60
    while not (found := re.search(r"Ready: \d+ workers \(pids ([\d, ]+)\)", log.read_text())):
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return [int(p) for p in found[1].split(", ")]


def access_lines(log: Path) -> list[re.Match[str]]:
    return [m for line in log.read_text().splitlines() if (m := LINE.search(line))]


def test_a_metadata_request_is_answered_while_slow_pngs_run(served: tuple[str, Path]) -> None:
    """Eight PNG renders at once (~4 core-seconds) and a metadata request sent after them: it is
    answered while PNGs are still being drawn, and the renders ran on both workers."""
    url, log = served

    async def run() -> tuple[httpx.Response, int, list[httpx.Response]]:
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=32)) as client:
            pngs = [asyncio.create_task(client.get(f"{url}/api/v1/array/full/{IMAGE}", params={"format": "png", "max_size": "2048", "rescale": f"-{i + 1},{i + 1}"}))
                    for i in range(8)]
            await asyncio.sleep(0.5)  # the renders are under way
            assert not any(p.done() for p in pngs), "the PNGs finished before the metadata request was sent: not slow enough to test"
            metadata = await client.get(f"{url}/api/v1/metadata/{IMAGE}")
            running = sum(not p.done() for p in pngs)
            return metadata, running, await asyncio.gather(*pngs)

    metadata, running, pngs = asyncio.run(run())
    assert metadata.status_code == 200 and metadata.json()["data"]["attributes"]["structure_family"] == "array"
    assert running > 0, "the metadata request waited for every PNG"
    assert all(p.status_code == 200 and p.content.startswith(b"\x89PNG") for p in pngs), [p.status_code for p in pngs]
    time.sleep(0.2)  # (the last lines' writes)
    renders = [m for m in access_lines(log) if "format=png" in m["target"]]
    assert len(renders) == 8
    assert len({m["pid"] for m in access_lines(log)}) == 2, "one worker answered everything"


def test_the_access_log_of_several_workers(served: tuple[str, Path]) -> None:
    """Each line: client, method, path and query, status, body bytes, milliseconds, worker; an
    ``api_key`` value never appears."""
    url, log = served
    secret = "sk-never-logged-0123456789"
    ok = httpx.get(f"{url}/api/v1/metadata/{IMAGE}", params={"api_key": secret, "x": "1"})
    missing = httpx.get(f"{url}/api/v1/metadata/big/nothing-here")
    head = httpx.head(f"{url}/api/v1/metadata/{IMAGE}")
    time.sleep(0.2)
    text = log.read_text()
    assert secret not in text
    lines = access_lines(log)
    ours = {(m["method"], m["target"]): m for m in lines}
    keyed = ours["GET", f"/api/v1/metadata/{IMAGE}?api_key=***&x=1"]
    assert int(keyed["status"]) == ok.status_code  # (401: this store has no keys)
    assert int(keyed["bytes"]) == len(ok.content) and float(keyed["ms"]) > 0
    assert ours["GET", "/api/v1/metadata/big/nothing-here"]["status"] == "404" == str(missing.status_code)
    assert ours["HEAD", f"/api/v1/metadata/{IMAGE}"]["bytes"] == "0" and head.status_code == 200
    assert all(m["client"].startswith("127.0.0.1:") for m in lines)


def test_the_access_log_in_one_process(big: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process server (tests, ``--workers 1``) writes the same lines; a streamed ``/files/``
    answer counts the bytes it sent."""
    from handlers.access_log import LOGGER
    from handlers.local import LocalServer

    monkeypatch.setenv("SKYSHELF_ACCESS_LOG", "1")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger(LOGGER).addHandler(handler)
    server = LocalServer(big.store.url, "127.0.0.1", 0).start()
    try:
        part = httpx.get(f"{server.url}/files/catalog.json", headers={"Range": "bytes=0-99"})
        whole = httpx.get(f"{server.url}/files/catalog.json")
        time.sleep(0.1)
    finally:
        server.stop()
        logging.getLogger(LOGGER).removeHandler(handler)
    lines = [m for r in records if (m := LINE.search(r))]
    assert [(m["status"], int(m["bytes"])) for m in lines if m["target"] == "/files/catalog.json"] == [("206", 100), ("200", len(whole.content))]
    assert part.status_code == 206 and {m["pid"] for m in lines} == {str(os.getpid())}


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_stopping_publish_serve_stops_every_worker(big: Published, tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl+C and SIGTERM stop the workers, then the server (exit 0); a SIGKILL leaves the
    supervisor no time, and the workers stop by themselves within a second or two."""
    with serve_process(big.store.url, "--workers", "2", cwd=tmp_path, log=tmp_path / "serve.log") as (url, process):
        workers = ready(tmp_path / "serve.log")
        assert len(workers) == 2 and set(workers) <= children(process.pid)
        assert httpx.get(f"{url}/healthz").status_code == 200
        process.send_signal(sig)
        assert process.wait(20) == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in workers):
            assert time.monotonic() < deadline, f"workers left running after {sig.name}: {[p for p in workers if alive(p)]}"
            time.sleep(0.1)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/healthz", timeout=2)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_another_server_holds_is_refused(served: tuple[str, Path], big: Published, tmp_path: Path, workers: str) -> None:
    """A second ``publish serve`` on a port in use says so and exits 1. (Workers bind with
    SO_REUSEPORT, which would let a second server of the same user share the port: checked.)"""
    import subprocess
    import sys

    port = served[0].rsplit(":", 1)[1]
    second = subprocess.run([sys.executable, "-m", "publisher.cli", "serve", "--store", big.store.url, "--port", port, "--workers", workers],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"cannot serve on 127.0.0.1:{port}" in second.stderr and "--port" in second.stderr and "Traceback" not in second.stderr


@pytest.mark.parametrize("when", ["serving", "starting"])
def test_ctrl_c_in_a_terminal_stops_the_workers_without_a_traceback(big: Published, when: str) -> None:
    """A terminal's Ctrl+C goes to the whole process group: each worker took it beside the
    supervisor's SIGTERM and, whenever uvicorn raised the SIGINT again first, printed a
    KeyboardInterrupt traceback (2 stops in 5 of the README's demo); while the workers were
    still starting, each printed one from its imports (always)."""
    for _ in range(3):
        port = free_port()
        process = subprocess.Popen([sys.executable, "-m", "publisher.cli", "serve", "--store", big.store.url, "--port", str(port),
                                    "--workers", "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        try:
            if when == "serving":
                until_healthy(f"http://127.0.0.1:{port}", process)
                time.sleep(0.5)  # (both workers up)
            else:  # the supervisor has started its workers, which import for a second or more
                assert process.stdout is not None
                while "Press Ctrl+C to stop." not in (line := process.stdout.readline()):
                    assert line, "publish serve ended before it started its workers"
                time.sleep(0.3)  # (its handler set, the workers spawned and still importing: ~1 s)
            os.killpg(process.pid, signal.SIGINT)  # as a terminal sends it
            output, _ = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        assert process.returncode == 0 and "Traceback" not in output, output[-2000:]


def test_signed_links_to_private_files_hold_on_every_worker(tmp_path: Path) -> None:
    """A private node's Zarr route redirects to a link signed by the worker that answered; the
    link is followed on a new connection, which another worker may answer: each must take it
    (each worker had its own secret: three links in four refused on four workers)."""
    from publisher.auth.keys import create_key

    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "secret.npy", np.arange(12.0))
    site = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "src"), "into": "data"}],
                                "rules": [{"match": "data", "access_tags": ["lab"]}]})
    key, _ = create_key(site.store, ["lab"])
    log = tmp_path / "serve.log"
    with serve_process(site.store.url, "--workers", "2", cwd=tmp_path, env={"SKYSHELF_ACCESS_LOG": "1"}, log=log) as (url, _):
        pids = ready(log)
        for _ in range(40):  # each on new connections: the kernel spreads them over both workers
            with httpx.Client(headers={"Authorization": f"Apikey {key}"}, timeout=30) as client:
                r = client.get(f"{url}/api/v1/zarr/v3/data/secret/zarr.json")
            assert r.status_code == 307 and "/files/private/" in r.headers["location"], r.text
            with httpx.Client(timeout=30) as anyone:
                followed = anyone.get(r.headers["location"])
            assert followed.status_code == 200 and followed.json()["shape"] == [12], followed.text
        answered = {int(m["pid"]) for m in access_lines(log) if m["target"].startswith("/files/private/")}
        assert answered == set(pids)  # both workers took links (of both)
