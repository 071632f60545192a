"""API keys: ``publish keys create|list|revoke`` on a local store and on moto's S3 server, and the
handler's KeyRing (verify, refuse, cache) and credentials_from (as Tiled's server reads a request)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result

from publisher.auth.keys import KEYS_PREFIX, KeyRing, create_key, credentials_from, record_key
from publisher.auth.principal import Principal
from publisher.cli import main
from publisher.errors import BadRequest, StoreError, Unauthorized
from publisher.stores import LocalStore, Store

from .servers import S3Server, moto_server


def cli(*args: str) -> Result:
    result = CliRunner().invoke(main, ["keys", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


class CountingStore(LocalStore):
    """A local store that counts whole-object reads (what the KeyRing does per lookup)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads = 0

    def read_bytes(self, key: str) -> bytes:
        self.reads += 1
        return super().read_bytes(key)


class Clock:
    """The KeyRing's cache time, moved by hand (a loaded machine cannot stretch a window)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with moto_server(tmp_path_factory.mktemp("moto-keys")) as server:
        server.create_bucket("keys-test")
        yield server


@pytest.fixture(params=["local", "moto"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    server: S3Server = request.getfixturevalue("moto")
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://keys-test/{tmp_path.name}"


def all_bytes(store: Store) -> bytes:
    return b"".join(store.read_bytes(key) for key, _, _ in store.objects(KEYS_PREFIX))


def test_create_list_revoke_through_the_cli(store_url: str) -> None:
    made = cli("create", "--tags", "A,B", "--note", "beamline staff", "--expires", "30d", "--store", store_url)
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()  # the key alone on stdout; the rest goes to stderr
    assert key.startswith("ssk_") and len(key.splitlines()) == 1
    key_id, secret = key.split("_", 2)[1:]
    assert key_id in made.stderr and secret not in made.stderr
    other = cli("create", "--tags", "C", "--store", store_url).stdout.strip()

    ring = KeyRing(Store(store_url, backend="obstore"), ttl=0)  # as a deployed function reads S3
    assert ring.principal(key) == Principal("apikey", key_id, frozenset({"A", "B"}))
    assert ring.principal(other).tags == frozenset({"C"})

    listing = cli("list", "--store", store_url)
    assert listing.exit_code == 0
    assert key_id in listing.stdout and "beamline staff" in listing.stdout and "A,B" in listing.stdout
    assert secret not in listing.output and other.split("_", 2)[2] not in listing.output
    stored = all_bytes(Store(store_url))
    assert secret.encode() not in stored and key.encode() not in stored and key_id.encode() in stored

    revoked = cli("revoke", key_id, "--store", store_url)
    assert revoked.exit_code == 0 and f"API key {key_id} revoked" in revoked.stdout
    with pytest.raises(Unauthorized, match=f"API key {key_id} was revoked"):
        ring.principal(key)
    assert ring.principal(other).tags == frozenset({"C"})  # the other key still works
    row = next(line for line in cli("list", "--store", store_url).stdout.splitlines() if line.startswith(key_id))
    assert "revoked" in row


def test_keys_are_what_tiled_client_takes_for_one(tmp_path: Path) -> None:
    """The client reads its key back from its header with this pattern: a key it does not match
    (a ``-`` in a urlsafe secret) leaves it refusing to connect ("requires API key authentication")."""
    from tiled.client.context import API_KEY_AUTH_HEADER_PATTERN

    store = LocalStore(str(tmp_path))
    for _ in range(100):
        key, _ = create_key(store, ["A"])
        assert API_KEY_AUTH_HEADER_PATTERN.match(f"Apikey {key}"), key


def test_cli_refusals(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    missing = cli("revoke", "0123456789ab", "--store", store)
    assert missing.exit_code == 1 and "error: no API key '0123456789ab'" in missing.stderr
    assert cli("revoke", "nope", "--store", store).exit_code == 1
    past = cli("create", "--tags", "A", "--expires", "2020-01-31", "--store", store)
    assert past.exit_code == 2 and "in the past" in past.stderr
    assert "30d" in cli("create", "--tags", "A", "--expires", "soon", "--store", store).stderr
    assert "at least one tag" in cli("create", "--tags", " , ", "--store", store).stderr
    for bad in ("A,has space", "A,staff|public"):
        assert "letters, digits and ._:@-" in cli("create", "--tags", bad, "--store", store).stderr
    assert not Path(store, KEYS_PREFIX).exists() or not list(Path(store, KEYS_PREFIX).iterdir())
    nopipe = cli("list", "-c", str(tmp_path / "absent.yml"))
    assert nopipe.exit_code == 1 and nopipe.stderr.startswith("error: ")


def test_refusals_say_why_without_the_secret(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    key, record = create_key(store, ["A"])
    ring = KeyRing(store, ttl=0)
    key_id, secret = key.split("_", 2)[1:]
    wrong = f"ssk_{key_id}_{secret[::-1]}"
    unknown = f"ssk_{'0' * 12}_{secret}"
    for presented, reason in [(wrong, "unknown API key"), (unknown, "unknown API key"), ("garbage", "malformed API key"),
                              ("", "malformed API key"), (key + "x", "malformed API key"), (f"ssk_{key_id}_", "malformed API key"),
                              (key.upper(), "malformed API key")]:
        with pytest.raises(Unauthorized) as caught:
            ring.principal(presented)
        assert str(caught.value) == reason
        assert caught.value.http_status == 401 and secret not in str(caught.value)
    assert ring.principal(key).tags == {"A"}  # a wrong secret first does not spoil the right one


def test_expired_keys_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(str(tmp_path))
    past, record = create_key(store, ["A"], expires=datetime.now(timezone.utc) - timedelta(seconds=1))
    with pytest.raises(Unauthorized, match=f"API key {record['id']} has expired"):
        KeyRing(store).principal(past)
    soon, record = create_key(store, ["A"], expires=datetime.now(timezone.utc) + timedelta(hours=1))
    ring = KeyRing(store, ttl=3 * 3600)
    assert ring.principal(soon).name == record["id"]
    later = time.time() + 3601
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthorized, match="has expired"):  # expiry holds even while verified and cached
        ring.principal(soon)
    monkeypatch.undo()
    cli_made = cli("create", "--tags", "A", "--expires", "1s", "--store", str(tmp_path)).stdout.strip()
    time.sleep(1.1)
    with pytest.raises(Unauthorized, match="has expired"):
        KeyRing(store).principal(cli_made)


def test_cache_reads_and_revocation_within_ttl(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path))
    key, record = create_key(store, ["A"])
    ring = KeyRing(store, ttl=3600)
    for _ in range(50):
        assert ring.principal(key).tags == {"A"}
    assert store.reads == 1
    key_id, secret = key.split("_", 2)[1:]
    with pytest.raises(Unauthorized):
        ring.principal(f"ssk_{key_id}_{secret[::-1]}")  # a wrong secret for a known id: no read either
    assert store.reads == 1

    cli("revoke", record["id"], "--store", str(tmp_path))
    assert ring.principal(key).tags == {"A"}  # within its ttl the old record still answers...
    with pytest.raises(Unauthorized, match="was revoked"):
        KeyRing(store, ttl=0).principal(key)  # a ring without a cache sees it at once
    other, _ = create_key(store, ["B"])
    clock = Clock()
    ring = KeyRing(store, ttl=30, clock=clock)
    assert ring.principal(other).tags == {"B"}
    cli("revoke", other.split("_")[1], "--store", str(tmp_path))
    clock.now += 29.9
    assert ring.principal(other).tags == {"B"}
    clock.now += 0.1
    with pytest.raises(Unauthorized, match="was revoked"):  # ...and once it has passed the revocation holds
        ring.principal(other)


def test_unknown_ids_cost_bounded_reads(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path))
    key, _ = create_key(store, ["A"])
    ring = KeyRing(store, ttl=3600, max_unknown=50, max_misses=20)
    invented = "ssk_000000000000_" + "f" * 64
    for _ in range(100):
        with pytest.raises(Unauthorized, match="unknown API key"):
            ring.principal(invented)
    assert store.reads == 1  # the same unknown id: read once per ttl
    for i in range(1000):
        with pytest.raises(Unauthorized, match="unknown API key"):
            ring.principal(f"ssk_{i:012x}_" + "f" * 64)
    assert store.reads == 20  # distinct invented ids: at most max_misses lookups per ttl window
    assert len(ring._unknown) <= 50


def test_a_flood_delays_new_keys_by_at_most_ttl(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path))
    key, _ = create_key(store, ["A"])
    clock = Clock()
    ring = KeyRing(store, ttl=30, max_misses=5, clock=clock)
    for i in range(50):
        with pytest.raises(Unauthorized):
            ring.principal(f"ssk_{i:012x}_" + "f" * 64)
    assert store.reads == 5
    with pytest.raises(Unauthorized, match="unknown API key"):  # the budget is spent: a key never seen here waits...
        ring.principal(key)
    clock.now += 30
    assert ring.principal(key).tags == {"A"}  # ...until the window ends


def test_a_flood_does_not_lock_out_keys_already_found(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path))
    key, _ = create_key(store, ["A"])
    clock = Clock()
    ring = KeyRing(store, ttl=30, max_misses=5, clock=clock)
    assert ring.principal(key).tags == {"A"}
    for i in range(50):
        with pytest.raises(Unauthorized):
            ring.principal(f"ssk_{i:012x}_" + "e" * 64)
    clock.now += 29
    assert ring.principal(key).tags == {"A"}
    clock.now += 1  # its record is stale now: read again although the window's budget is spent
    assert ring.principal(key).tags == {"A"}
    assert store.reads == 5 + 1  # the budget counts every never-seen id looked up, the real one too


def test_threads_share_one_ring(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path))
    keys = [create_key(store, [f"T{i}"])[0] for i in range(4)]
    ring = KeyRing(store, ttl=3600)
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(200):
                key = keys[(n + i) % 4]
                assert ring.principal(key).tags == {f"T{(n + i) % 4}"}
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert 4 <= store.reads <= 4 * 8


def test_a_damaged_record_is_a_store_error(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    key, record = create_key(store, ["A"])
    store.write_bytes(record_key(record["id"]), b"{not json")
    with pytest.raises(StoreError, match="damaged"):
        KeyRing(store).principal(key)
    store.write_bytes(record_key(record["id"]), b'{"id": "x"}')
    with pytest.raises(StoreError, match="damaged"):
        KeyRing(store).principal(key)


@pytest.mark.parametrize(("headers", "query", "expected"), [
    ({}, {}, None),
    ({"Authorization": "Apikey s3cret"}, {}, ("apikey", "s3cret")),
    ({"authorization": "apikey s3cret"}, {}, ("apikey", "s3cret")),  # API Gateway lower-cases header names
    ({"Authorization": "APIKEY  s3cret "}, {}, ("apikey", "s3cret")),
    ({"Authorization": "Bearer a.b.c"}, {}, ("bearer", "a.b.c")),
    ({"Authorization": "bearer a.b.c"}, {}, ("bearer", "a.b.c")),
    ({}, {"api_key": ["s3cret"]}, ("apikey", "s3cret")),
    ({}, {"api_key": ["wrong", "s3cret"]}, ("apikey", "s3cret")),  # the last value, as Starlette reads it
    ({}, {"api_key": [""]}, None),
    ({"Authorization": "Apikey header"}, {"api_key": ["query"]}, ("apikey", "query")),  # Tiled: the query wins
    ({"Authorization": "Bearer a.b.c"}, {"api_key": ["query"]}, ("apikey", "query")),
    ({"Authorization": ""}, {}, None),  # Tiled: an empty header is no credential
    ({"Authorization": "Apikey"}, {}, None),
    ({"Authorization": "Bearer "}, {}, None),
    ({"Authorization": "Apikey s3cret extra"}, {}, ("apikey", "s3cret extra")),  # then refused as malformed
])
def test_credentials_as_tiled_reads_them(headers: dict[str, str], query: dict[str, list[str]], expected: tuple[str, str] | None) -> None:
    assert credentials_from(headers, query) == expected


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "s3cret", "Token abc"])
def test_an_unknown_scheme_is_a_400_as_in_tiled(header: str) -> None:
    for query in ({}, {"api_key": ["s3cret"]}):
        with pytest.raises(BadRequest, match="'Bearer SECRET' or 'Apikey SECRET'") as caught:
            credentials_from({"Authorization": header}, query)
        assert caught.value.http_status == 400 and "s3cret" not in str(caught.value) and "dXNl" not in str(caught.value)


class KeyGuardedServer(ThreadingHTTPServer):
    """The smallest Tiled-speaking server guarded by credentials_from + KeyRing: the root's
    metadata answers with the caller's tags, so a test sees what the real tiled client sent."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        super().__init__(("127.0.0.1", 0), _Guarded)
        self.base = f"http://127.0.0.1:{self.server_address[1]}/api/v1"


class _Guarded(BaseHTTPRequestHandler):
    server: KeyGuardedServer

    def log_message(self, *args: object) -> None:
        pass

    def send(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        base = self.server.base
        if url.path in ("/api/v1", "/api/v1/"):
            return self.send(200, {"api_version": 0, "library_version": "0.2.20", "formats": {}, "aliases": {}, "queries": [],
                                   "authentication": {"required": True, "providers": [], "links": None},
                                   "links": {"self": base + "/"}, "meta": {"root_path": ""}})
        try:
            found = credentials_from(dict(self.headers.items()), parse_qs(url.query, keep_blank_values=True))
            if found is None or found[0] != "apikey":
                raise Unauthorized("no API key")
            principal = self.server.ring.principal(found[1])
        except (Unauthorized, BadRequest) as exc:
            return self.send(exc.http_status, {"detail": str(exc)})
        self.send(200, {"data": {"id": "", "attributes": {
            "ancestors": [], "structure_family": "container", "specs": [], "metadata": {"key": principal.name, "tags": sorted(principal.tags)},
            "structure": {"contents": None, "count": 0}, "sorting": [{"key": "", "direction": 1}], "data_sources": None},
            "links": {"self": base + "/metadata/", "search": base + "/search/"}, "meta": None}, "error": None, "links": None, "meta": {}})


def test_the_real_tiled_client_sends_keys_we_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiled.client import from_uri
    from tiled.client.utils import ClientError

    store = LocalStore(str(tmp_path))
    key, record = create_key(store, ["A", "B"])
    server = KeyGuardedServer(KeyRing(store, ttl=0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        expected = {"key": record["id"], "tags": ["A", "B"]}
        assert dict(from_uri(server.base, api_key=key).metadata) == expected  # Authorization: Apikey <key>
        assert dict(from_uri(f"{server.base}?api_key={key}").metadata) == expected  # moved to the header by the client
        monkeypatch.setenv("TILED_API_KEY", key)
        assert dict(from_uri(server.base).metadata) == expected
        monkeypatch.delenv("TILED_API_KEY")
        with pytest.raises(ClientError, match="401: unknown API key"):
            from_uri(server.base, api_key=key[:-3] + ("000" if key[-3:] != "000" else "111"))
        cli("revoke", record["id"], "--store", str(tmp_path))
        with pytest.raises(ClientError, match=f"401: API key {record['id']} was revoked"):
            from_uri(server.base, api_key=key)
    finally:
        server.shutdown()
        server.server_close()


def test_cli_edges_are_one_line_errors_not_tracebacks(tmp_path: Path) -> None:
    """A span past the year 9999 was an OverflowError traceback; a store path naming a file was a
    NotADirectoryError traceback from gc and rollback; a mistyped store took a key silently;
    ``publish releases | head`` said the store kept failing."""
    store = str(tmp_path / "store")
    for span in ("99999999d", "10000000000000000000000000d"):
        far = cli("create", "--tags", "A", "--expires", span, "--store", store)
        assert far.exit_code == 2 and "too far in the future" in far.stderr and "Traceback" not in far.output, far.output
    made = cli("create", "--tags", "A", "--store", store)
    assert made.exit_code == 0 and "is it the store you meant?" in made.stderr
    assert "is it the store you meant?" not in cli("list", "--store", store).stderr  # (its keys are there now)
    (tmp_path / "afile").write_text("not a store")
    for args in (["gc", "--store", str(tmp_path / "afile")], ["rollback", "r1", "--store", str(tmp_path / "afile")]):
        done = CliRunner().invoke(main, args)
        assert done.exit_code == 1 and done.stderr.startswith("error: cannot lock") and "Not a directory" in done.stderr, done.output
    import subprocess
    import sys

    # its reader gone before it writes (`| head` that has read enough): a quiet end, not a store's failure
    code = "import sys, time; time.sleep(0.5); from publisher.cli import main; main(['keys', 'list', '--store', sys.argv[1]])"
    listing = subprocess.Popen([sys.executable, "-c", code, store], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert listing.stdout is not None and listing.stderr is not None
    listing.stdout.close()
    said = listing.stderr.read()
    assert listing.wait(30) == 0 and said == "", said
