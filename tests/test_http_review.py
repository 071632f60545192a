"""HTTP as clients and caches read it (a review helper's repros against ``publish serve``): a
stored chunk past Lambda's limit is spilled whatever its coding; a spilled answer is not evicted
under a redirect just given, nor cut while sent; a store the server cannot write still answers;
a slow identity provider holds up no other request; Ctrl+C ends a server with a stalled download;
RFC 9110's conditional requests, codings, ranges and 304s; CORS on every refusal."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from handlers.local import LocalServer
from publisher import spills

from .conftest import ROOT, Published, run_build
from .servers import free_port, until_healthy

ARRAY = "arr/big"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """A 2 MiB float64 array in 1 MiB chunks (noise: its zstd chunks stay big) and a small table."""
    folder = tmp_path_factory.mktemp("http-review")
    (folder / "arr").mkdir()
    np.save(folder / "arr" / "big.npy", np.random.default_rng(1).random((512, 512)))
    (folder / "arr" / "t.csv").write_text("a,b\n1,2\n3,4\n")
    return run_build(folder, {"sources": [{"path": "arr"}], "rules": [{"match": ARRAY, "chunks": [256, 512]}]})


@pytest.fixture(scope="module")
def server(published: Published) -> Iterator[str]:
    srv = LocalServer(published.store.url, "127.0.0.1", 0).start()
    yield srv.url
    srv.stop()


def test_a_stored_chunk_past_the_body_limit_is_spilled_in_any_coding(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A block asked with Accept-Encoding: zstd went out as the stored zstd chunk, past the body
    limit (deployed: Lambda's 6 MB, a 5xx); with gzip it was spilled. Both are 307s now."""
    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "100000")
    url = f"{server}/api/v1/array/block/{ARRAY}?block=1,0"
    want = np.random.default_rng(1).random((512, 512))[256:]
    for coding in ("zstd", "gzip", "identity"):
        answer = httpx.get(url, headers={"Accept-Encoding": coding})
        assert answer.status_code == 307, (coding, answer.status_code, len(answer.content))
        followed = httpx.get(answer.headers["location"])
        assert np.array_equal(np.frombuffer(followed.content, "<f8").reshape(256, 512), want)


def test_a_spilled_answer_outlives_the_bound_while_its_redirect_is_fresh(server: str, published: Published,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With the folder's bound below two answers, the second spill deleted the first one at once:
    the 307 just given for it was a 404 when followed."""
    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("SKYSHELF_SPILL_MAX_BYTES", str(3 * 2**20))  # one 2 MiB answer fits, two do not
    first = httpx.get(f"{server}/api/v1/array/full/{ARRAY}?format=application/octet-stream&filename=one.bin")
    second = httpx.get(f"{server}/api/v1/array/full/{ARRAY}?format=npy")
    assert first.status_code == second.status_code == 307
    for answer in (first, second):
        assert httpx.get(answer.headers["location"]).status_code == 200


def test_a_local_file_deleted_while_sent_is_sent_whole(published: Published, server: str) -> None:
    """``/files/`` read a big object piece by piece, opening it again for each: deleted meanwhile
    (a spilled answer collected), the answer stopped short of its Content-Length."""
    root = Path(published.store.url)
    body = os.urandom(12 * 2**20)
    (root / "gone.bin").write_bytes(body)
    with httpx.stream("GET", f"{server}/files/gone.bin") as answer:
        pieces = answer.iter_raw()
        received = [next(pieces)]
        (root / "gone.bin").unlink()
        received += list(pieces)
    assert b"".join(received) == body


def test_a_store_the_server_cannot_write_still_answers(published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big answer on a store the server cannot write (read-only, or read-only credentials) was a
    502 naming the server's folder: publish serve, with no payload limit, sends it whole."""
    import shutil

    copy = tmp_path / "site"
    shutil.copytree(published.store.url, copy, symlinks=True)
    shutil.rmtree(copy / spills.PREFIX, ignore_errors=True)
    (copy / spills.PREFIX).write_text("a file where the spill folder would go: nothing can be written under it")
    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "1000")
    srv = LocalServer(str(copy), "127.0.0.1", 0).start()
    try:
        answer = httpx.get(f"{srv.url}/api/v1/array/full/{ARRAY}?format=npy")
        assert answer.status_code == 200 and len(answer.content) > 2**21, (answer.status_code, answer.text[:300])
    finally:
        srv.stop()


@contextlib.contextmanager
def _silent_provider() -> Iterator[str]:
    """An issuer that takes connections and never answers (an offline laptop's, a stuck one)."""
    black = socket.socket()
    black.bind(("127.0.0.1", 0))
    black.listen(16)
    held: list[object] = []
    threading.Thread(target=lambda: [held.append(black.accept()) for _ in iter(int, 1)], daemon=True).start()
    try:
        yield f"http://127.0.0.1:{black.getsockname()[1]}"
    finally:
        black.close()


def test_a_silent_identity_provider_holds_up_no_other_request(tmp_path: Path) -> None:
    """The about document's discovery and a bearer token's key fetch ran on the event loop: each
    waited out the provider's 5 s timeout, and /healthz from anyone else waited with them."""
    with _silent_provider() as issuer:
        (tmp_path / "pub").mkdir()
        (tmp_path / "pub" / "t.csv").write_text("a\n1\n")
        published = run_build(tmp_path, {"sources": [{"path": "pub"}], "rules": [{"match": "pub", "access_tags": ["public"]}],
                                         "access": {"oidc": {"issuer": issuer, "audience": "x", "client_id": "x"}}})
        srv = LocalServer(published.store.url, "127.0.0.1", 0).start()
        try:
            for slow, headers in (("/api/v1/", {}), ("/api/v1/metadata/pub", {"Authorization": "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6Im5ldyJ9.e30.x"})):
                waiting = threading.Thread(target=lambda slow=slow, headers=headers: httpx.get(srv.url + slow, headers=headers, timeout=30))
                waiting.start()
                time.sleep(0.3)
                start = time.monotonic()
                assert httpx.get(f"{srv.url}/healthz", timeout=30).status_code == 200
                assert time.monotonic() - start < 2.5, slow  # (the provider's fetch takes 5 s)
                waiting.join(30)
        finally:
            srv.stop()


def test_ctrl_c_ends_a_server_with_a_stalled_download(published: Published) -> None:
    """A client that stopped reading a big /files/ object kept a one-process server up past Ctrl+C
    (a second Ctrl+C printed a traceback)."""
    (Path(published.store.url) / "stalled.bin").write_bytes(os.urandom(64 * 2**20))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "publisher.cli", "serve", "--store", published.store.url, "--port", str(port),
                                "--workers", "1"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until_healthy(f"http://127.0.0.1:{port}", process)
        client = socket.create_connection(("127.0.0.1", port))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.sendall(b"GET /files/stalled.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        client.recv(1000)  # then reads nothing more
        time.sleep(1)
        start = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(30)
        assert time.monotonic() - start < 20
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_if_none_match_star_matches_only_a_200(server: str) -> None:
    """``If-None-Match: *`` answered 304 to a request whose answer is a 400 (RFC 9110 13.1.2: only
    a current representation matches)."""
    bad = f"{server}/api/v1/array/full/{ARRAY}?expected_shape=1,2,3"
    assert httpx.get(bad).status_code == 400
    assert httpx.get(bad, headers={"If-None-Match": "*"}).status_code == 400
    good = f"{server}/api/v1/array/full/{ARRAY}?slice=0:2,0:2&format=json"
    assert httpx.get(good, headers={"If-None-Match": "*"}).status_code == 304


def test_etags_differ_by_coding_and_304s_carry_no_length(server: str) -> None:
    """One strong ETag was given to the identity, gzip and zstd bodies of one answer (RFC 9110
    8.8.3); a 304 carried Content-Length: 0, and the docs assets' 304 another Cache-Control than their 200."""
    url = f"{server}/api/v1/openapi.json"  # (big enough to be compressed)
    tags = {coding: httpx.get(url, headers={"Accept-Encoding": coding}).headers["etag"] for coding in ("identity", "gzip", "zstd")}
    assert len(set(tags.values())) == 3, tags
    for coding, tag in tags.items():
        again = httpx.get(url, headers={"Accept-Encoding": coding, "If-None-Match": tag})
        assert again.status_code == 304 and again.headers["etag"] == tag and "content-length" not in again.headers, (coding, again.headers)
    asset = f"{server}/api/v1/docs/assets/swagger-ui.css"
    first = httpx.get(asset)
    if first.status_code == 200:  # (the docs assets ship with the metadata function)
        cached = httpx.get(asset, headers={"If-None-Match": first.headers["etag"]})
        assert cached.status_code == 304 and cached.headers["cache-control"] == first.headers["cache-control"]


def test_accept_encoding_weights_are_read_as_rfc_9110_says(server: str) -> None:
    """``gzip;Q=0`` still got gzip (parameter names are case-insensitive); ``gzip;q=1, zstd;q=0.1``
    got zstd (the client's preference was ignored)."""
    url = f"{server}/api/v1/openapi.json"
    assert httpx.get(url, headers={"Accept-Encoding": "gzip;Q=0"}).headers.get("content-encoding") is None
    assert httpx.get(url, headers={"Accept-Encoding": "gzip;q=1, zstd;q=0.1"}).headers["content-encoding"] == "gzip"
    assert httpx.get(url, headers={"Accept-Encoding": "gzip, zstd"}).headers["content-encoding"] == "zstd"


def test_refusals_before_any_route_carry_cors_headers(server: str) -> None:
    """A 414 (and 431, 413) had no CORS headers: a page on another origin saw a CORS failure, not its detail."""
    answer = httpx.get(f"{server}/api/v1/metadata/{'x' * 12000}", headers={"Origin": "https://viewer.example"})
    assert answer.status_code == 414 and answer.headers["access-control-allow-origin"] == "*" and answer.json()["detail"]


def test_files_ranges_read_the_unit_in_any_case_and_refuse_in_json(server: str) -> None:
    """``Range: Bytes=0-3`` was ignored (units are case-insensitive, RFC 9110 14.1); a 416 was the
    one refusal without a JSON detail."""
    part = httpx.get(f"{server}/files/catalog.json", headers={"Range": "Bytes=0-3"})
    assert part.status_code == 206 and part.content == b'{"fo'[:4] or len(part.content) == 4
    refused = httpx.get(f"{server}/files/catalog.json", headers={"Range": "bytes=999999999-"})
    assert refused.status_code == 416 and refused.headers["content-range"].startswith("bytes */") and refused.json()["detail"]


def test_a_connection_that_never_sends_a_whole_request_is_closed(published: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's keep-alive timer starts after a response: a connection that sent nothing, or half
    its headers, was held for good (a few hundred of them took the server's file handles)."""
    from handlers import local

    monkeypatch.setattr(local, "HEADER_SECONDS", 1.0)
    srv = LocalServer(published.store.url, "127.0.0.1", 0).start()
    try:
        silent, half = (socket.create_connection(("127.0.0.1", srv.port)) for _ in range(2))
        half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # (no blank line: the headers never end)
        for sock in (silent, half):
            sock.settimeout(10)
            start = time.monotonic()
            assert sock.recv(100) == b"" and time.monotonic() - start < 5  # closed by the server
            sock.close()
        keep = httpx.Client()  # a whole request, then idle: kept alive as before
        assert keep.get(f"{srv.url}/healthz").status_code == 200
        time.sleep(1.5)
        assert keep.get(f"{srv.url}/healthz").status_code == 200
        keep.close()
    finally:
        srv.stop()


def _read_bytes() -> int:
    """Bytes this process has read from files so far (the in-process server's reads among them)."""
    return next(int(line.split()[1]) for line in Path("/proc/self/io").read_text().splitlines() if line.startswith("rchar:"))


def test_a_client_gone_after_the_headers_has_nothing_more_read(published: Published, server: str) -> None:
    """uvicorn's send to a closed connection returns as if sent: a download whose client hung up
    right after the headers was read whole all the same (36 MB from S3 or disk for nobody)."""
    (Path(published.store.url) / "abandoned.bin").write_bytes(os.urandom(96 * 2**20))
    port = int(server.rpartition(":")[2])
    before = _read_bytes()
    for _ in range(3):
        client = socket.create_connection(("127.0.0.1", port))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.sendall(b"GET /files/abandoned.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(1000).startswith(b"HTTP/1.1 200")
        client.close()
    time.sleep(1.5)  # (the server's reads for them, had it gone on: 1 GB/s and more here)
    assert _read_bytes() - before < 96 * 2**20  # each read a piece or two, not 96 MB


def test_a_client_that_stops_reading_is_dropped(published: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that stopped reading a download held its connection, its file handle and ~4 MiB
    for good (100 of them: 200 handles, 400 MB); one that pauses for less than the limit reads on."""
    from handlers import local

    size = 48 * 2**20
    (Path(published.store.url) / "stalled.bin").write_bytes(os.urandom(size))
    monkeypatch.setattr(local, "SEND_SECONDS", 1.5)
    srv = LocalServer(published.store.url, "127.0.0.1", 0).start()

    def download(pause: float) -> int:
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2**18)  # (no growing window: what is buffered is known)
        sock.settimeout(10)
        sock.sendall(b"GET /files/stalled.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        head = sock.recv(1000)
        body = len(head.partition(b"\r\n\r\n")[2])
        time.sleep(pause)
        with contextlib.suppress(ConnectionResetError):
            while body < size and (piece := sock.recv(2**20)):
                body += len(piece)
        sock.close()
        return body

    try:
        assert download(4.0) < size  # dropped: the rest never came (what the kernels had buffered did)
        assert download(0.5) == size
    finally:
        srv.stop()
