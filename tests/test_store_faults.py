"""Storage faults lose nothing: a fault-injecting proxy (tests/faultproxy.py) in front of moto's
server throttles (503 SlowDown), fails (500), drops connections, cuts bodies short, slows answers
and flips bytes, while every S3 client Skyshelf uses writes and reads, builds publish and
``publish serve`` answers. Retries outlast passing faults with identical bytes; faults that do not
pass end in a clear error (a 503 with Retry-After from a server) and never in a changed release.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from publisher.build import build
from publisher.config import load_pipeline
from publisher.errors import StoreError, StoreUnavailable
from publisher.store_lock import LOCK_KEY
from publisher.stores import Store

from .conftest import write_pipeline
from .faultproxy import KINDS, QUICK_CLI, FaultPlan, FaultProxy, fault_proxy, quick_backoff
from .servers import S3Server, moto_server
from .test_build_demo import demo_config
from .test_s3 import environ

BACKENDS = ["", "obstore", "boto3"]  # "": s3fs, the build's and publish serve's default


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with moto_server(tmp_path_factory.mktemp("moto-faults")) as server:
        for bucket in ("faults", "clean", "faulty", "failing", "switched", "throttled", "skipping"):
            server.create_bucket(bucket)
        yield server


@pytest.fixture(scope="module", autouse=True)
def _quick_backoff() -> Iterator[None]:
    """The clients' waits between retries cut short (:func:`.faultproxy.quick_backoff`): as many retries."""
    with quick_backoff():
        yield


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    with fault_proxy(s3.endpoint) as p:
        yield p


def through(proxy: FaultProxy, s3: S3Server, **extra: str) -> dict[str, str]:
    return {**s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint, **extra}


@pytest.mark.parametrize("backend", BACKENDS)
def test_passing_faults_are_retried_and_no_byte_changes(s3: S3Server, proxy: FaultProxy, backend: str) -> None:
    data = {f"k{i:02d}": os.urandom(40_000 + 97 * i) for i in range(30)}
    prefix = backend or "s3fs"
    with environ(through(proxy, s3)):
        store = Store(f"s3://faults/{prefix}", backend=backend)
        proxy.set_plan(FaultPlan(rate=0.3, seed=11, slow_seconds=0.05))
        for key, value in data.items():
            store.write_bytes(key, value)
        for key, value in data.items():
            assert store.read_bytes(key) == value
            assert store.read_range(key, 1000, 30_000) == value[1000:30_000]
        injected = dict(proxy.injected)
        proxy.set_plan(FaultPlan())
    stored = s3.client()  # what the store holds, not through the proxy
    for key, value in data.items():
        assert stored.get_object(Bucket="faults", Key=f"{prefix}/{key}")["Body"].read() == value, key
    assert set(injected) == set(KINDS), injected  # every kind of fault met, and outlasted


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["slowdown", "corrupt"])
def test_faults_that_do_not_pass_end_in_a_clear_error_not_bad_bytes(s3: S3Server, proxy: FaultProxy, backend: str, kind: str) -> None:
    """Every request throttled: once the client's retries are spent, StoreUnavailable (HTTP 503,
    try again later). Every body altered on the way: a StoreError (502) saying the checksum failed
    each time. Never the altered bytes."""
    with environ(through(proxy, s3, AWS_MAX_ATTEMPTS="2")):
        store = Store(f"s3://faults/{backend or 's3fs'}-all", backend=backend)
        store.write_bytes("a", b"0123456789" * 1000)
        proxy.set_plan(FaultPlan(rate=1.0, kinds=(kind,)))
        expected = (StoreUnavailable, "kept failing after retries") if kind == "slowdown" else (StoreError, "failed their checksum every time")
        with pytest.raises(expected[0], match=rf"cannot read 'a' in s3://faults/.*{expected[1]}") as caught:
            store.read_bytes("a")
        with pytest.raises(expected[0], match=rf"cannot write 'b'.*{expected[1]}"):  # (obstore too: its retries' waits cut short)
            store.write_bytes("b", b"x" * 5000)
        proxy.set_plan(FaultPlan())
    assert caught.value.http_status == (503 if kind == "slowdown" else 502) and proxy.injected[kind] >= 2


def _digests(url: str) -> dict[str, str]:
    """Every object of a store, by key with its release id taken out; the index by its rows."""
    store = Store(url)
    release = json.loads(store.read_bytes("catalog.json"))["release"]
    root = store.root.split("://", 1)[1]
    paths = store.fs.find(root)
    blobs = store.fs.cat(paths)  # all at once (s3fs asks for them together)
    out = {}
    for path in paths:
        key = path[len(root) + 1:]
        data = blobs[path]
        if key.endswith(".parquet") and "/index/" in key:  # the index names the release in its rows
            rows = pq.read_table(io.BytesIO(data)).to_pylist()
            data = json.dumps(rows, sort_keys=True, default=str).replace(release, "R").encode()
        elif key in ("catalog.json", f"releases/{release}/catalog.json", f"releases/{release}/build-report.json"):
            continue  # when the build ran, and how long it took
        out[key.replace(release, "R")] = hashlib.md5(data.replace(release.encode(), b"R")).hexdigest()
    return out


@pytest.fixture(scope="module")
def clean_demo(s3: S3Server, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """The demo built with no faults into ``s3://clean/<backend>``, once per backend for the module
    (its URL): the output a build under faults must equal, and what is served under faults (serving
    only reads it)."""
    built: dict[str, str] = {}

    def clean(backend: str) -> str:
        if backend not in built:
            url = f"s3://clean/{backend or 's3fs'}"
            pipeline = write_pipeline(tmp_path_factory.mktemp("clean"), {**demo_config(demo_dir), "output": {"store": url}})
            with environ({**s3.env(), "SKYSHELF_S3_BACKEND": backend}):
                report = build(load_pipeline(pipeline), workers=2)
            assert report.published and not report.failures, report.failures
            built[backend] = url
        return built[backend]

    return clean


@pytest.mark.parametrize("backend", ["", "obstore"])
def test_a_build_under_faults_publishes_identical_output(s3: S3Server, proxy: FaultProxy, clean_demo: Callable[[str], str],
                                                          demo_dir: Path, tmp_path: Path, backend: str) -> None:
    clean = clean_demo(backend)
    url = f"s3://faulty/{backend or 's3fs'}"
    pipeline = load_pipeline(write_pipeline(tmp_path, {**demo_config(demo_dir), "output": {"store": url}}))
    proxy.set_plan(FaultPlan(rate=0.12, seed=5, slow_seconds=0.05))
    with environ(through(proxy, s3, SKYSHELF_S3_BACKEND=backend)):
        report = build(pipeline, workers=2)
    assert report.published and not report.failures, report.failures
    proxy.set_plan(FaultPlan())
    with environ(s3.env()):  # what each store holds, not through the proxy
        results = {"clean": _digests(clean), "faulty": _digests(url)}
    assert proxy.faults >= 10, dict(proxy.injected)
    assert len(results["clean"]) > 100 and results["faulty"] == results["clean"]


def test_a_build_the_store_keeps_failing_publishes_nothing_and_says_so(s3: S3Server, proxy: FaultProxy, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for i in range(6):
        (tmp_path / "src" / f"t{i}.csv").write_text("a,b\n" + "".join(f"{j},{j * i}\n" for j in range(50)))
    pipeline = write_pipeline(tmp_path, {"sources": [{"path": "src", "into": ""}], "output": {"store": "s3://failing/x"}})
    env = {**os.environ, **through(proxy, s3, AWS_MAX_ATTEMPTS="2")}
    command = [*QUICK_CLI, "build", "-c", str(pipeline)]  # publish build (its clients' backoff cut short)
    with environ(through(proxy, s3, AWS_MAX_ATTEMPTS="2")):  # the release it must leave alone (made here: no start-up)
        assert build(load_pipeline(pipeline)).published
        before = Store("s3://failing/x").read_bytes("catalog.json")
    (tmp_path / "src" / "t0.csv").write_text("a,b\n1,2\n")
    proxy.set_plan(FaultPlan(rate=1.0, kinds=("error500", "slowdown"), skip=proxy.requests + 30))  # partway through
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in out, out
    assert re.search(r"error: .*the store kept failing after retries \(.*(internal|service unavailable|slowdown|reduce)", out, re.I), out
    proxy.set_plan(FaultPlan())
    with environ(through(proxy, s3, AWS_MAX_ATTEMPTS="2")):
        assert Store("s3://failing/x").read_bytes("catalog.json") == before  # the published release, untouched
        again = build(load_pipeline(pipeline))  # once the store is back (here: no start-up), the next build publishes
        assert again.published and json.loads(Store("s3://failing/x").read_bytes("catalog.json"))["release"] == again.release
    assert again.release != json.loads(before)["release"]


def test_a_store_failing_right_after_the_switch_leaves_the_build_published(s3: S3Server, proxy: FaultProxy, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Once catalog.json names the release it is published: the store failing for every request
    after that PUT but the lock's (the switch's note, the journal, the marker not deleted) is said as a warning,
    not the build's failure (it exited 1, "try again later", with the release switched). The next
    build removes the note without calling the switch cut short."""
    (tmp_path / "src").mkdir()
    for i in range(3):
        (tmp_path / "src" / f"t{i}.csv").write_text(f"a,b\n{i},2\n")
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src", "into": ""}], "output": {"store": "s3://switched/x"},
                                                       "build": {"processes": 0}}))
    switched = {"done": False}

    def after_the_switch(method: str, path: str) -> bool:
        if switched["done"]:
            return ".build.lock" not in path  # (the lock let go: a lock left held would keep this process's next build waiting)
        switched["done"] = method == "PUT" and path.endswith("/switched/x/catalog.json")  # (this one passes)
        return False

    with environ(through(proxy, s3, AWS_MAX_ATTEMPTS="2")):
        first = build(pipeline)
        (tmp_path / "src" / "t3.csv").write_text("a,b\n3,4\n")
        proxy.set_plan(FaultPlan(rate=1.0, kinds=("error500",), where=after_the_switch))
        with caplog.at_level("WARNING", logger="skyshelf.build"):
            second = build(pipeline)
        proxy.set_plan(FaultPlan())
        store = Store("s3://switched/x")
        assert switched["done"] and second.published and second.release != first.release
        assert json.loads(store.read_bytes("catalog.json"))["release"] == second.release
        assert f"release {second.release} is published" in caplog.text and store.exists("private/catalog.json")
        caplog.clear()
        with caplog.at_level("WARNING", logger="skyshelf.build"):
            third = build(pipeline)
        assert third.unchanged and third.release == second.release and "cut short" not in caplog.text
        assert not store.exists("private/catalog.json")


@pytest.mark.parametrize("passing", [0, 2], ids=["at-connect", "at-first-task"])
def test_a_store_throttling_a_cluster_worker_is_said_as_the_stores_moment(s3: S3Server, proxy: FaultProxy, tmp_path: Path, passing: int) -> None:
    """The store throttling what a Dask worker asks of it (its check when the build connects, or at
    its first task) is the store's passing fault, said as such ("try again later"), not a worker
    set up wrong ("each worker needs ... the store with its credentials"), and with no traceback of
    Dask's (a task that raised it was logged as a failed computation)."""
    (tmp_path / "src").mkdir()
    for i in range(3):
        (tmp_path / "src" / f"t{i}.csv").write_text(f"a,b\n{i},2\n")
    pipeline = write_pipeline(tmp_path, {"sources": [{"path": "src", "into": ""}], "output": {"store": "s3://throttled/x"}})
    asked = [0]

    def lock_lookups(method: str, path: str) -> bool:  # the workers' (the client takes the lock by a conditional PUT)
        if method == "HEAD" and path.endswith("/.build.lock"):
            asked[0] += 1
            return asked[0] > passing
        return False

    proxy.set_plan(FaultPlan(rate=1.0, kinds=("slowdown",), where=lock_lookups))
    done = subprocess.run([*QUICK_CLI, "build", "-c", str(pipeline), "--scheduler", "local:2"], env={**os.environ, **through(proxy, s3, AWS_MAX_ATTEMPTS="2")},
                          capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 1 and asked[0] > passing, out
    assert re.search(r"error: .*the store kept failing after retries .*try again later", out) and "each worker needs" not in out, out
    assert "Traceback" not in out, out


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_store_that_cannot_be_reached_is_said_so_by_every_operation(s3: S3Server, backend: str) -> None:
    """botocore's EndpointConnectionError is no OSError: writes, checks, listings and deletes let it
    out raw (a build took it for the item's own failure)."""
    from .servers import free_port

    with environ({**s3.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "2"}):
        store = Store("s3://faults/gone", backend=backend)

        def stream() -> None:
            with store.open_write("f.parquet") as f:
                f.write(b"x")

        for name, operation in [("write", lambda: store.write_bytes("k", b"x")), ("read", lambda: store.read_bytes("k")),
                                ("exists", lambda: store.exists("k")), ("stat", lambda: store.stat("k")),
                                ("objects", lambda: store.objects("d")), ("listdir", lambda: store.listdir("d")),
                                ("stream", stream), ("delete", lambda: store.delete_prefix("d")), ("read_tagged", lambda: store.read_tagged("k")),
                                ("put_if", lambda: store.put_if("k", b"x", None)), ("delete_if", lambda: store.delete_if("k", '"e"'))]:
            with pytest.raises(StoreUnavailable, match="cannot reach the store" if backend != "obstore" else "") as caught:
                operation()  # (obstore says only that it could not send the request, after its retries)
            assert "s3://faults/gone" in str(caught.value), (name, caught.value)


@pytest.mark.parametrize(("kind", "said"), [("error500", "the store kept failing after retries"), ("unreachable", "cannot reach the store")])
def test_a_store_failing_an_items_writes_is_the_builds_failure_not_the_items(s3: S3Server, proxy: FaultProxy, tmp_path: Path,
                                                                            kind: str, said: str) -> None:
    """A store that keeps failing the writes of one item's data, or is gone from the network while
    they are written, is the build's failure, even with on_error: skip: the item was taken for a
    bad file and left out, and the release published without a node the last one had (its file
    good and unchanged but for a touch); with on_error: fail its journal was deleted, so nothing
    resumed. (botocore's EndpointConnectionError is no OSError: it escaped as the item's own.)"""
    (tmp_path / "src").mkdir()
    for i in range(3):
        (tmp_path / "src" / f"t{i}.csv").write_text(f"a,b\n{i},2\n")
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src", "into": ""}], "output": {"store": f"s3://skipping/{kind}"},
                                                       "on_error": "skip", "build": {"processes": 0}}))
    with environ(through(proxy, s3, AWS_MAX_ATTEMPTS="2")):
        first = build(pipeline)
        (tmp_path / "src" / "t1.csv").write_text("a,b\n1,3\n")  # changed: converted again
        proxy.set_plan(FaultPlan(rate=1.0, kinds=(kind,), where=lambda method, path: method == "PUT" and "/t1" in path))
        with pytest.raises(StoreUnavailable, match=said):
            build(pipeline)
    with environ(s3.env()):  # (not through the proxy, which stays gone after "unreachable")
        store = Store(f"s3://skipping/{kind}")
        assert json.loads(store.read_bytes("catalog.json"))["release"] == first.release
        if kind == "unreachable":  # the failed build could not let go of its lock: this process still runs, so it stays theirs
            store.delete_prefix(LOCK_KEY)
        again = build(pipeline)  # the store mended: t1 published as it is now
    assert again.published and not again.failures and again.converted == 1


_ROUTES = ["/api/v1/metadata/scans/scan_0001", "/api/v1/search/frames?page[limit]=5", "/api/v1/array/full/frames/KCl_300K_00007?format=json",
           "/api/v1/array/block/scans/scan_0001/entry/data/data?block=4,0,0", "/api/v1/table/full/tables/temperature_log?format=csv",
           "/api/v1/array/full/frames/KCl_300K_00007?format=png&slice=0,:,:", "/files/catalog.json"]


@pytest.mark.parametrize("backend", ["", "obstore"])
def test_serving_under_faults_answers_the_same_bytes_or_503(s3: S3Server, proxy: FaultProxy, clean_demo: Callable[[str], str],
                                                            backend: str) -> None:
    """A fresh server per pass, and no decoded data kept between them (the process-wide cache
    off: which objects an earlier pass had read whole decided which routes could still answer
    with every request failing): under faults each answer is the clean one, byte for byte, or a
    503 with Retry-After; never a 500, never other bytes."""
    from handlers import settings
    from handlers.local import LocalServer

    url = clean_demo(backend)  # published with no faults
    with environ(through(proxy, s3, SKYSHELF_S3_BACKEND=backend, AWS_MAX_ATTEMPTS="3", SKYSHELF_DECODED_CACHE_BYTES="0")):
        settings.reset()
        answers: dict[str, list[tuple[int, bytes]]] = {}
        for rate in (0.0, 0.25, 0.25, 1.0):
            proxy.set_plan(FaultPlan(rate=rate, seed=int(rate * 100) + len(answers), slow_seconds=0.05,
                                     kinds=("slowdown", "error500") if rate == 1 else ("slowdown", "error500", "truncate", "corrupt", "slow")))
            server = LocalServer(url, "127.0.0.1", 0).start()
            try:
                for route in _ROUTES if rate < 1 else _ROUTES[3:]:  # every request failing: the data routes
                    got = httpx.get(server.url + route, timeout=120)
                    assert got.status_code in (200, 503), (rate, route, got.status_code, got.text[:300])
                    if got.status_code == 503:
                        assert got.headers["retry-after"] and "kept failing" in got.json()["detail"], got.text
                    answers.setdefault(route, []).append((got.status_code, got.content.replace(server.url.encode(), b"BASE")))
            finally:
                server.stop()
                proxy.set_plan(FaultPlan())
    settings.reset()
    assert proxy.faults >= 10
    for route, seen in answers.items():
        clean = seen[0]
        assert clean[0] == 200, route
        assert all(body == clean[1] for status, body in seen[1:] if status == 200), route  # the same bytes, or none
    # every request failing: a 503 on each data route (its data is read from the store each time)
    assert sum(len(seen) == 4 and seen[-1][0] == 503 for seen in answers.values()) == 4, {r: [a for a, _ in seen] for r, seen in answers.items()}


def test_a_deploy_upload_under_faults_lands_every_byte(s3: S3Server, proxy: FaultProxy, tmp_path: Path) -> None:
    """``publish deploy``'s upload through faults (bytes flipped on the way included): every object
    in the bucket is its file, checked by ETag before the entry point is uploaded."""
    import boto3
    from botocore.config import Config

    from publisher.deploy.upload import upload_store

    (tmp_path / "src").mkdir()
    for i in range(12):
        (tmp_path / "src" / f"t{i}.csv").write_text("a,b\n" + "".join(f"{j},{j * i}\n" for j in range(200 + i)))
    assert build(load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src", "into": ""}], "output": {"store": "site"}}))).published
    client = boto3.client("s3", endpoint_url=proxy.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1", config=Config(retries={"mode": "standard", "max_attempts": 5}))
    s3.create_bucket("deployed")
    proxy.set_plan(FaultPlan(rate=0.25, seed=3, slow_seconds=0.05, kinds=("slowdown", "error500", "reset", "corrupt", "slow")))
    report = upload_store(client, tmp_path / "site", "deployed", "demo", workers=4)
    proxy.set_plan(FaultPlan())
    files = {p.relative_to(tmp_path / "site").as_posix(): p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file()}
    stored = s3.client()
    assert report.uploaded == len(files) and proxy.injected["corrupt"] >= 1, dict(proxy.injected)
    for key, data in files.items():
        assert stored.get_object(Bucket="deployed", Key=f"demo/{key}")["Body"].read() == data, key


def test_a_large_streamed_write_is_checked_part_by_part(s3: S3Server, proxy: FaultProxy) -> None:
    """What the build streams (a Parquet table, the index) past one part goes up as a multipart
    upload whose parts are each checked against the MD5 S3 answers and sent again alone."""
    from publisher.stores.s3_upload import PART_BYTES

    data = os.urandom(2 * PART_BYTES + 12_345)
    with environ(through(proxy, s3)):
        store = Store("s3://faults/streamed")
        proxy.set_plan(FaultPlan(rate=0.4, seed=2, kinds=("corrupt", "error500", "reset")))
        with store.open_write("big.bin") as sink:
            for start in range(0, len(data), 1 << 20):
                sink.write(data[start:start + (1 << 20)])
        injected = dict(proxy.injected)
        proxy.set_plan(FaultPlan())
        assert str(store.fs.info(store.path("big.bin"))["ETag"]).strip('"').endswith("-3")  # three parts
        with pytest.raises(RuntimeError), store.open_write("never.bin") as sink:  # a writer that fails uploads nothing
            sink.write(b"partial")
            raise RuntimeError("the writer failed")
        assert not store.exists("never.bin")
    assert s3.client().get_object(Bucket="faults", Key="streamed/big.bin")["Body"].read() == data
    assert injected.get("corrupt", 0) >= 1, injected


class _KmsProxy(FaultProxy):
    """S3 with SSE-KMS: an ETag is 32 hex digits but not the MD5 of the bytes, and answers say
    ``x-amz-server-side-encryption: aws:kms`` (moto does neither, so this proxy does)."""

    def answer_headers(self, headers: dict[str, str]) -> dict[str, str]:
        if "ETag" in headers:
            opaque = hashlib.md5(b"kms" + headers["ETag"].encode(), usedforsecurity=False).hexdigest()
            headers = {**headers, "ETag": f'"{opaque}"', "x-amz-server-side-encryption": "aws:kms"}
        return headers


@pytest.mark.parametrize("backend", BACKENDS)
def test_kms_etags_that_are_no_md5_are_not_taken_for_damage(s3: S3Server, backend: str) -> None:
    kms = _KmsProxy(s3.endpoint).start()
    try:
        with environ(through(kms, s3)):
            store = Store(f"s3://faults/kms-{backend or 's3fs'}", backend=backend)
            for size in (10, 6 * 2**20):  # obstore would have gone multipart past 5 MiB
                data = os.urandom(size)
                store.write_bytes(f"k{size}", data)
                assert store.read_bytes(f"k{size}") == data
            with store.open_write("streamed") as sink:
                sink.write(b"abc" * 1000)
            assert store.read_bytes("streamed") == b"abc" * 1000
    finally:
        kms.stop()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["forbidden", "notimplemented"])
def test_errors_no_retry_mends_are_not_a_503(s3: S3Server, proxy: FaultProxy, backend: str, kind: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Access denied (403) or not implemented (501) is the store's answer, not a passing fault:
    a StoreError (502) at once, never StoreUnavailable's "try again later"."""
    from publisher.stores import s3_obstore

    # obstore's own rule retries every 5xx, 501 too: its 12 s of retries cut to 1 s here (the outcome is the same)
    monkeypatch.setitem(s3_obstore._RETRY, "retry_timeout", timedelta(seconds=1))
    with environ(through(proxy, s3)):
        store = Store(f"s3://faults/{backend or 's3fs'}-permanent", backend=backend)
        store.write_bytes("a", b"x" * 100)
        proxy.set_plan(FaultPlan(rate=1.0, kinds=(kind,)))
        before = proxy.requests
        for attempt in (lambda: store.read_bytes("a"), lambda: store.write_bytes("b", b"y")):
            with pytest.raises(StoreError) as caught:
                attempt()
            assert not isinstance(caught.value, StoreUnavailable) and caught.value.http_status == 502, caught.value
        proxy.set_plan(FaultPlan())
    if not (backend == "obstore" and kind == "notimplemented"):  # obstore's own rule retries every 5xx, 501 too
        assert proxy.requests - before <= 4  # asked once each (a HEAD at most besides), not retried


def test_a_deploy_of_a_release_without_private_nodes_removes_the_bucket_full_view(s3: S3Server, tmp_path: Path) -> None:
    """The handlers read ``private/catalog.json`` first: a release whose nodes all ended public has
    none, and the bucket kept the earlier release's, so the deployed handlers served that one."""
    from publisher.deploy.upload import upload_store

    (tmp_path / "src" / "staff").mkdir(parents=True)
    for name in ("a.csv", "staff/b.csv"):
        (tmp_path / "src" / name).write_text("x,y\n1,2\n")
    rules = {"access": {"default": "public"}, "rules": [{"match": "src/staff", "access_tags": ["staff"]}]}
    config = {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}}
    build(load_pipeline(write_pipeline(tmp_path, {**config, **rules})))
    client = s3.client()
    s3.create_bucket("switched")
    upload_store(client, tmp_path / "site", "switched", "demo", workers=2)
    assert client.get_object(Bucket="switched", Key="demo/private/catalog.json")
    report = build(load_pipeline(write_pipeline(tmp_path, config)))  # no access rules: one view
    upload_store(client, tmp_path / "site", "switched", "demo", workers=2)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="switched", Prefix="demo/")["Contents"]}
    assert "demo/private/catalog.json" not in keys
    assert json.loads(client.get_object(Bucket="switched", Key="demo/catalog.json")["Body"].read())["release"] == report.release
