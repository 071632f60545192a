"""Serve benchmark: `publish serve` against `tiled serve` on the same files, in one run.

Sources (generated into a temporary folder): ``sample.h5`` with ``data``, a uint16 stack
(8, 2048, 2048) chunked (1, 512, 512), and ``table.csv`` (50,000 rows, 4 columns). Tiled
serves the folder (``tiled serve directory --public``); Skyshelf builds it and serves the store.
The same requests go over loopback HTTP (one keep-alive connection, sequential) and p50 / p99 are
printed per request with the ratio. The heavy requests' bare conversion work is timed in this
process as their floor, one floor run after each Skyshelf request so both see the same host:
that 512x512 plane scaled to 8 bits with numpy and saved by Pillow as PNG (the same zlib settings),
and that table written by ``pyarrow.csv.write_csv`` in one call.

Needs Tiled's server: ``pip install "tiled[server]"`` (or ``--tiled PATH`` to its ``tiled``).
Usage: python benchmarks/serve.py [--n 200] [--tiled tiled]

``--auth`` measures instead what access control costs a warm request: 300 small scans published
twice, as a public catalog without tags and as the same catalog tagged (every node readable by one
tag, so both callers see the same nodes), then the same requests (one node's metadata, a search
page of 100) on the public one anonymously and on the tagged one with an API key and with an OIDC
token (verified once, then from the verifier's cache; needs ``node`` for the test provider),
interleaved, in-process through the Lambda handler and over loopback HTTP to ``publish serve``.
p50 / p95, the ratio to the public request and the difference in ms (issue 13: at most 1 ms at p50).
Usage: python benchmarks/serve.py --auth [--n 2000]
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

REQUESTS = [  # (name, path and query, Accept, repetitions factor)
    ("about", "/api/v1/", "application/json", 1.0),
    ("metadata", "/api/v1/metadata/sample/data", "application/json", 1.0),
    ("search page", "/api/v1/search/?page[offset]=0&page[limit]=100", "application/json", 1.0),
    ("array block", "/api/v1/array/block/sample/data?block=0,0,0", "application/octet-stream", 1.0),
    ("512x512 PNG", "/api/v1/array/full/sample/data?slice=0,0:512,0:512&format=png", "image/png", 0.5),
    ("table partition (Arrow)", "/api/v1/table/partition/table?partition=0", "application/vnd.apache.arrow.file", 0.25),
    ("table CSV", "/api/v1/table/full/table?format=csv", "text/csv", 0.25),
]


def make_sources(folder: Path) -> None:
    import h5py
    import pandas as pd

    rng = np.random.default_rng(0)
    with h5py.File(folder / "sample.h5", "w") as f:
        d = f.create_dataset("data", shape=(8, 2048, 2048), dtype="u2", chunks=(1, 512, 512), compression="gzip")
        for i in range(8):
            d[i] = rng.poisson(1000, (2048, 2048)).astype("u2")
        d.attrs["units"] = "counts"
    n = 50_000  # its CSV (~3 MB) fits a Lambda response: no redirect
    pd.DataFrame({"t": np.arange(n) * 0.1, "x": rng.normal(size=n), "y": rng.normal(size=n), "label": rng.choice(["a", "b", "c"], n)}).to_csv(
        folder / "table.csv", index=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiled_executable() -> str:
    """``tiled`` beside this interpreter (the project's .venv, activated or not), else on PATH."""
    beside = Path(sys.executable).with_name("tiled")
    return str(beside) if beside.exists() else shutil.which("tiled") or "tiled"


def wait_up(url: str, timeout: float = 60.0, ok: int | None = None) -> None:
    """Until ``url`` answers (``ok``: with that status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = httpx.get(url, timeout=2).status_code
            if status == ok if ok is not None else status < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def timings(base: str, n: int, floors: dict[str, Callable[[], object]] | None = None) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Sequential requests on one keep-alive connection (``http.client``: the lightest standard
    client, so the servers' own time dominates), sending what the tiled client sends
    (``Accept-Encoding: gzip, zstd``); bodies are read, not decoded; redirects are followed."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def get(path: str, accept: str) -> tuple[int, bytes]:
        conn.request("GET", path, headers={"Accept": accept, "Accept-Encoding": "gzip, zstd"})
        response = conn.getresponse()
        body = response.read()
        if response.status in (301, 302, 307, 308):
            return get(urlsplit(response.getheader("Location")).path, accept)
        return response.status, body

    out: dict[str, list[float]] = {}
    floor_out: dict[str, list[float]] = {}
    for name, path, accept, factor in REQUESTS:
        status, body = get(path, accept)
        assert status == 200, (base, path, status, body[:200])
        floor = (floors or {}).get(name)
        samples, floor_samples = [], []
        for _ in range(max(5, int(n * factor))):
            start = time.perf_counter()
            get(path, accept)
            samples.append(time.perf_counter() - start)
            if floor is not None:  # interleaved: request and floor see the same host
                start = time.perf_counter()
                floor()
                floor_samples.append(time.perf_counter() - start)
        out[name] = samples
        if floor is not None:
            floor_out[name] = floor_samples
    conn.close()
    return out, floor_out


def floors(folder: Path) -> dict[str, Callable[[], object]]:
    """The heavy requests' bare conversion work, with the libraries the handlers use and none of
    Skyshelf's code: scale the plane to 8 bits and save it with Pillow; write the CSV in one call."""
    import h5py
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from PIL import Image

    with h5py.File(folder / "sample.h5") as f:
        plane = f["data"][0, :512, :512]
    table = pacsv.read_csv(folder / "table.csv")

    def png() -> bytes:
        lo, hi = float(plane.min()), float(plane.max())
        scaled = ((plane - lo) * (255.0 / (hi - lo or 1.0))).astype("u1")
        buf = io.BytesIO()
        Image.fromarray(scaled, mode="L").save(buf, format="PNG", compress_level=1, compress_type=3)  # the handler's zlib settings
        return buf.getvalue()

    def csv() -> bytes:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink)
        return sink.getvalue().to_pybytes()

    png(), csv()  # first use (imports, allocations) outside the samples
    return {"512x512 PNG": png, "table CSV": csv}


AUTH_REQUESTS = [("metadata", "/api/v1/metadata/runs/run0042"), ("search page", "/api/v1/search/runs?page[offset]=0&page[limit]=100")]


def make_runs(folder: Path, n: int = 300) -> None:
    import json

    (folder / "runs").mkdir(parents=True)
    for i in range(n):
        np.save(folder / "runs" / f"run{i:04d}.npy", np.full((4, 4), i, dtype="f4"))
        (folder / "runs" / f"run{i:04d}.npy.json").write_text(json.dumps({"element": ["Ni", "Fe", "Cu"][i % 3], "temperature": 280 + i}))


def _build(work: Path, name: str, extra: dict) -> Path:
    import yaml

    from publisher.build import build
    from publisher.config import load_pipeline

    config = {"name": name, "sources": [{"path": str(work / "data"), "into": ""}], "output": {"store": str(work / name)}, **extra}
    (work / f"{name}.yml").write_text(yaml.safe_dump(config))
    build(load_pipeline(work / f"{name}.yml"), workers=2)
    return work / name


def auth_overhead(n: int) -> None:
    """Public anonymous vs tagged with an API key (and a cached OIDC token): the same requests,
    interleaved (each round in a rotated order), in-process and over HTTP."""
    import contextlib
    import dataclasses
    import http.client

    from handlers import metadata, settings
    from handlers.local import event_for, invoke
    from publisher.auth.keys import create_key
    from publisher.stores import Store

    sys.path.insert(0, str(ROOT))
    from tests.oidc_server import oidc_provider

    work = Path(tempfile.mkdtemp(prefix="skyshelf-auth-bench-"))
    procs: list[subprocess.Popen] = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        make_runs(work / "data")
        access: dict = {"groups": {"grp-a": ["tag-a"]}}
        try:
            provider = stack.enter_context(oidc_provider(work / "oidc", {"alice": ["grp-a"]}))
            access["oidc"] = {"issuer": provider.issuer, "audience": provider.audience, "client_id": provider.client_id}
        except BaseException as exc:  # pytest's Skipped without node: keys only
            if not type(exc).__name__ == "Skipped":
                raise
            provider = None
        public = _build(work, "public", {})
        tagged = _build(work, "tagged", {"rules": [{"match": "runs", "access_tags": ["tag-a"]}], "access": access})
        key, _ = create_key(Store(str(tagged)), ["tag-a"])
        variants = {"public, anonymous": (public, {}), "tagged, API key": (tagged, {"authorization": f"Apikey {key}"})}
        if provider is not None:
            variants["tagged, JWT (cached)"] = (tagged, {"authorization": f"Bearer {provider.token('alice')}"})

        base = settings.environment()
        configs = {name: dataclasses.replace(base, store=str(store)) for name, (store, _) in variants.items()}

        def in_process(name: str, target: str) -> tuple[int, bytes]:
            path, _, query = target.partition("?")
            headers = {"host": "bench", "accept-encoding": "gzip, zstd", **variants[name][1]}
            status, _, body = invoke(metadata.lambda_handler, event_for("GET", path, query, headers, "127.0.0.1"), configs[name])
            return status, body

        ports = {}
        for store in (public, tagged):
            ports[store] = free_port()
            procs.append(subprocess.Popen([sys.executable, "-m", "publisher.cli", "serve", "--store", str(store), "--port", str(ports[store])],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT))
        stack.callback(lambda: [(p.terminate(), p.wait(timeout=10)) for p in procs])
        for port in ports.values():
            wait_up(f"http://127.0.0.1:{port}/api/v1/")
        conns = {name: http.client.HTTPConnection("127.0.0.1", ports[store], timeout=60) for name, (store, _) in variants.items()}

        def over_http(name: str, target: str) -> tuple[int, bytes]:
            conns[name].request("GET", target, headers={"Accept": "application/json", "Accept-Encoding": "gzip, zstd", **variants[name][1]})
            response = conns[name].getresponse()
            return response.status, response.read()

        results: dict[tuple[str, str, str], list[float]] = {}
        names = list(variants)
        for how, call in (("handler, in-process", in_process), ("HTTP, publish serve", over_http)):
            for request, target in AUTH_REQUESTS:
                for name in names:  # warm: catalogs, key ring, token cache, connections; and the same answer for all
                    for _ in range(20):
                        status, body = call(name, target)
                    assert status == 200, (how, name, target, status, body[:200])
                for i in range(n):
                    for name in names[i % len(names):] + names[: i % len(names)]:
                        start = time.perf_counter()
                        call(name, target)
                        results.setdefault((how, request, name), []).append(time.perf_counter() - start)

    def q(samples: list[float], p: float) -> float:
        return float(np.percentile(samples, p)) * 1000

    print(f"\n{'':<22}{'request':<14}{'caller':<24}{'p50':>8}{'p95':>8}{'/ public p50':>14}{'+ ms p50':>10}{'+ ms p95':>10}")
    for how, request, name in results:
        ref = results[(how, request, names[0])]
        samples = results[(how, request, name)]
        print(f"{how:<22}{request:<14}{name:<24}{q(samples, 50):8.3f}{q(samples, 95):8.3f}{q(samples, 50) / q(ref, 50):14.2f}"
              f"{q(samples, 50) - q(ref, 50):10.3f}{q(samples, 95) - q(ref, 95):10.3f}")
    print(f"\nmilliseconds, {n} rounds, each round every caller once in a rotated order; the target is at most +1 ms at p50.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="requests per light endpoint (heavy ones fewer)")
    parser.add_argument("--tiled", default=tiled_executable(), help="the tiled executable (with tiled[server])")
    parser.add_argument("--auth", action="store_true", help="measure access control's cost per warm request instead")
    args = parser.parse_args()
    if not args.auth and not shutil.which(args.tiled):
        parser.error(f"no tiled executable {args.tiled!r}: install tiled[server] (scripts/setup.sh dev) or give --tiled PATH")
    if args.auth:
        auth_overhead(args.n)
        return
    work = Path(tempfile.mkdtemp(prefix="skyshelf-serve-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        data = work / "data"
        data.mkdir()
        make_sources(data)
        (work / "pipeline.yml").write_text(f"sources:\n  - path: {data}\n    into: ''\noutput:\n  store: {work / 'site'}\n")
        subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(work / "pipeline.yml")], check=True, capture_output=True)
        tiled_port, sky_port = free_port(), free_port()
        procs.append(subprocess.Popen([args.tiled, "serve", "directory", str(data), "--public", "--host", "127.0.0.1", "--port", str(tiled_port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work))
        procs.append(subprocess.Popen([sys.executable, "-m", "publisher.cli", "serve", "--store", str(work / "site"), "--port", str(sky_port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT))
        tiled_base, sky_base = f"http://127.0.0.1:{tiled_port}", f"http://127.0.0.1:{sky_port}"
        wait_up(f"{tiled_base}/api/v1/")
        for node in ("sample/data", "table"):  # (tiled serve directory registers its files in the background: a 404 at first)
            wait_up(f"{tiled_base}/api/v1/metadata/{node}", ok=200)
        wait_up(f"{sky_base}/api/v1/")
        tiled, _ = timings(tiled_base, args.n)
        sky, floor = timings(sky_base, args.n, floors(data))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    def q(samples: list[float], p: float) -> float:
        return float(np.percentile(samples, p)) * 1000

    print(f"\n{'request':<26}{'tiled p50':>10}{'p99':>8}{'skyshelf p50':>14}{'p99':>8}{'tiled/sky p50':>15}{'floor p50':>11}{'sky - floor':>13}")
    for name, *_ in REQUESTS:
        t50, t99, s50, s99 = q(tiled[name], 50), q(tiled[name], 99), q(sky[name], 50), q(sky[name], 99)
        f = q(floor[name], 50) if name in floor else None
        extra = f"{f:11.2f}{s50 - f:13.2f}" if f is not None else ""
        print(f"{name:<26}{t50:10.2f}{t99:8.2f}{s50:14.2f}{s99:8.2f}{t50 / s50:15.1f}{extra}")
    print("\nmilliseconds over loopback HTTP, one keep-alive connection (http.client), sequential; floor: the bare conversion,"
          " in-process, one run after each Skyshelf request.")


if __name__ == "__main__":
    main()
