"""Search at scale: a catalog of 1,000,000 scans with realistic nested metadata (sample,
temperature, motors, timestamps, free text), searched through ``publish serve`` (the Lambda
handlers over a local store) and, side by side in the same run, through ``tiled serve catalog``
(Tiled's SQL catalog on SQLite) holding the first 100,000 of the same scans.

For each query type: p50 and p99 of warm requests, and the cold one (the first request after
the server starts: imports, catalog and the columns the query needs); then the Skyshelf
server's peak memory (VmHWM). Ratios are Tiled's time over Skyshelf's, with Tiled holding a
tenth of the nodes.

    python benchmarks/search.py                 # 1,000,000 nodes vs Tiled at 100,000
    python benchmarks/search.py --nodes 100000 --tiled-nodes 10000 --repeat 20

The generated catalogs are kept under ``--cache`` (about 3 GB at 1M nodes; ~3 min to make).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serve import free_port, tiled_executable, wait_up

GENERATOR = 2  # bump when the generated metadata changes
ELEMENTS = ["Ni", "Fe", "Cu", "Co", "Mn", "Ti", "Zn", "Cr", "Ag", "Au", "Pt", "Pd", "NaCl", "KCl", "LaB6", "CeO2", "Si", "Ge", "GaAs", "ZnO"]
PLANS = ["count", "scan", "rel_scan", "grid_scan", "list_scan", "fly_scan", "tweak"]
OPERATORS = ["alice", "bob", "carol", "dan", "erin", "frank", "grace", "heidi"]
TECHNIQUES = ["XRD", "XAS", "SAXS", "WAXS", "PDF", "XRF", "tomography", "ptychography"]
FORMS = ["powder", "single crystal", "thin film", "foil", "pellet", "solution", "nanoparticles", "wire"]
COMMENTS = ["good statistics", "beam refill during scan", "sample drifted", "detector saturated near the main peak",
            "calibration run", "repeat of the previous scan", "new batch from the furnace", "cryostream unstable",
            "alignment check", "in situ heating ramp", "reference measurement", "short exposure test"]


def scans(n: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, metadata) of ``n`` scans, the same for any ``n`` up to the first ``n``."""
    streams = iter(np.random.default_rng([2026, field]) for field in range(20))  # one per field: a prefix of n is the same scans
    element = next(streams).integers(0, len(ELEMENTS), n)
    batch = next(streams).integers(0, 400, n)
    temperature = np.round(next(streams).choice([4.0, 10.0, 77.0, 100.0, 150.0, 200.0, 250.0, 295.0, 300.0, 350.0, 500.0, 800.0], n)
                           + next(streams).normal(0, 0.3, n), 2)
    motors = np.round(next(streams).uniform(-45, 45, (n, 5)), 3)
    start = 1_700_000_000 + np.cumsum(next(streams).integers(30, 900, n))
    plan, operator, technique, form, comment = (next(streams).integers(0, len(x), n) for x in (PLANS, OPERATORS, TECHNIQUES, FORMS, COMMENTS))
    mass = np.round(next(streams).uniform(0.1, 50, n), 3)
    exposure = next(streams).choice([0.1, 0.5, 1.0, 2.0, 5.0], n)
    for i in range(n):
        el = ELEMENTS[element[i]]
        t = float(temperature[i])
        md: dict[str, Any] = {
            "scan_id": i + 1,
            "plan_name": PLANS[plan[i]],
            "operator": OPERATORS[operator[i]],
            "sample": {"name": f"{el}-{batch[i]:03d}", "element": el, "form": FORMS[form[i]], "mass_mg": float(mass[i])},
            "temperature": t,
            "motors": dict(zip(("theta", "chi", "phi", "x", "y"), motors[i].tolist())),
            "time": datetime.fromtimestamp(int(start[i]), UTC).isoformat(),
            "timestamp": float(start[i]),
            "exposure_time": float(exposure[i]),
            "technique": TECHNIQUES[technique[i]],
            "description": f"{TECHNIQUES[technique[i]]} of {el} {FORMS[form[i]]} (batch {batch[i]}) at {t:.0f} K, {COMMENTS[comment[i]]}, scan {i + 1}",
        }
        if i % 10 == 3:
            md["proposal"] = {"id": 300000 + i % 97, "title": f"Phase transitions in {el} under pressure"}
        yield f"scan_{i + 1:07d}", md


def publish_catalog(folder: Path, n: int) -> Path:
    """A Skyshelf store whose ``scans`` container holds ``n`` scans (index written by the build's
    own :func:`write_index`), kept in ``folder`` between runs."""
    from publisher.formats import CATALOG_KEY, CatalogDocument
    from publisher.formats import Entry
    from publisher.index.write import write_index
    from publisher.stores import Store

    site = folder / f"skyshelf-{n}-g{GENERATOR}"
    if (site / CATALOG_KEY).exists():
        return site
    shutil.rmtree(site, ignore_errors=True)
    started = time.perf_counter()
    store = Store(site)
    release = "bench"
    entries = [Entry("", "", "container", [], {}, {"contents": None, "count": 1}, None, None, None),
               Entry("scans", "scans", "container", [], {"beamline": "28-ID-1"}, {"contents": None, "count": n}, None, None, None)]
    entries += [Entry(f"scans/{key}", key, "container", ["BlueskyRun"], md, {"contents": None, "count": 0}, None, None, None)
                for key, md in scans(n)]
    index = write_index(store, f"releases/{release}/index", entries)
    document = CatalogDocument(release, index, datetime.now(UTC).isoformat(), "search-benchmark", zarr_format=3).to_json()
    store.write_bytes(f"releases/{release}/{CATALOG_KEY}", json.dumps(document).encode())
    store.write_bytes(CATALOG_KEY, json.dumps(document).encode(), atomic=True)
    print(f"published {n:,} scans in {time.perf_counter() - started:.0f} s", flush=True)
    return site


def tiled_catalog(folder: Path, n: int, tiled: str) -> Path:
    """Tiled's SQL catalog holding the first ``n`` scans, written straight into its tables (its own
    triggers fill the closure table and the FTS5 index, as for nodes it writes itself)."""
    db = folder / f"tiled-{n}-g{GENERATOR}.db"
    if db.exists():
        return db
    partial = db.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    subprocess.run([tiled, "catalog", "init", f"sqlite:///{partial}"], check=True, capture_output=True)
    con = sqlite3.connect(partial)
    cur = con.execute("INSERT INTO nodes(key, parent, structure_family, metadata, specs) VALUES ('scans', 0, 'container', ?, '[]')",
                      (json.dumps({"beamline": "28-ID-1"}),))
    parent = cur.lastrowid
    specs = json.dumps([{"name": "BlueskyRun", "version": None}])
    con.executemany("INSERT INTO nodes(key, parent, structure_family, metadata, specs) VALUES (?, ?, 'container', ?, ?)",
                    ((key, parent, json.dumps(md), specs) for key, md in scans(n)))
    con.commit()
    con.close()
    partial.rename(db)
    return db


def queries() -> dict[str, dict[str, list[str]]]:
    """The query parameters each query type sends (as the tiled client encodes them)."""
    from tiled.queries import Comparison, Eq, FullText, In, Regex

    from publisher.index.client import params_for

    page = {"page[offset]": ["0"], "page[limit]": ["100"]}
    return {
        "eq": {**params_for(Eq("sample.element", "Ni")), **page},
        "comparison": {**params_for(Comparison("lt", "temperature", 90)), **page},
        "time range": {**params_for(Comparison("ge", "time", "2023-12-01"), Comparison("lt", "time", "2024-01-01")), **page},
        "in": {**params_for(In("operator", ["alice", "dan"])), **page},
        "fulltext": {**params_for(FullText("detector saturated")), **page},
        "regex (names)": {**params_for(Regex("sample.name", "^Ni-0[0-4]")), **page},
        "regex (free text)": {**params_for(Regex("description", "foil .* [1-3]\\d K")), **page},
        "sort + page": {"sort": ["-time"], "page[offset]": ["5000"], "page[limit]": ["100"]},
        "filter + sort + page": {**params_for(Eq("sample.element", "Ni")), "sort": ["timestamp"], "page[offset]": ["200"], "page[limit]": ["100"]},
        "count": {**params_for(Eq("sample.form", "foil"), Comparison("gt", "temperature", 200)), "page[offset]": ["0"], "page[limit]": ["0"]},
    }


class Client:
    """One keep-alive connection (``http.client``), as in benchmarks/serve.py."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=300)
        self.headers = {"Accept": "application/json", "Accept-Encoding": "gzip, zstd", **headers}

    def get(self, path: str) -> tuple[int, bytes, float]:
        start = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        return response.status, body, time.perf_counter() - start

    def close(self) -> None:
        self.conn.close()


def url(params: dict[str, list[str]]) -> str:
    return "/api/v1/search/scans?" + urlencode([(k, v) for k, values in params.items() for v in values])


class Server:
    def __init__(self, command: list[str], headers: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(self.port)], cwd=cwd,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_up(f"{self.base}/api/v1/", timeout=180)  # the about document: no catalog or search work
        self.client = Client(self.base, headers)

    def peak_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def measure(command: list[str], headers: dict[str, str], cwd: Path, repeat: int, budget: float) -> tuple[dict[str, Any], float]:
    """Per query: cold (first request in a fresh server), then ``repeat`` warm samples in one
    server (at least 5, fewer than ``repeat`` when they take longer than ``budget`` seconds)."""
    out: dict[str, Any] = {}
    chosen = queries()
    for name, params in chosen.items():
        server = Server(command, headers, cwd)
        try:
            status, body, cold = server.client.get(url(params))
        finally:
            server.stop()
        out[name] = {"status": status, "cold": cold, "body": body}
    server = Server(command, headers, cwd)
    try:
        for name, params in chosen.items():
            if out[name]["status"] != 200:
                continue
            path = url(params)
            server.client.get(path)
            samples: list[float] = []
            deadline = time.monotonic() + budget
            while len(samples) < repeat and (len(samples) < 5 or time.monotonic() < deadline):
                samples.append(server.client.get(path)[2])
            out[name]["warm"] = samples
        peak = server.peak_mib()
    finally:
        server.stop()
    return out, peak


def decoded(body: bytes) -> Any:
    """A JSON answer, whatever its content coding (zstd, gzip or none)."""
    import gzip

    import zstandard

    if body[:4] == b"\x28\xb5\x2f\xfd":
        body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    elif body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return json.loads(body)


def count_of(body: bytes) -> int:
    return decoded(body)["meta"]["count"]


def agreement(site: Path, tiled: dict[str, Any], tiled_nodes: int) -> dict[str, bool]:
    """Per query, whether Skyshelf restricted to Tiled's scans (``scan_id <= tiled_nodes``) gives
    Tiled's count and Tiled's first page (the same keys in the same order)."""
    from tiled.queries import Comparison

    from publisher.index.client import params_for

    server = Server([sys.executable, "-m", "publisher.cli", "serve", "--store", str(site)], {}, ROOT)
    out = {}
    try:
        for name, params in queries().items():
            if name not in tiled or tiled[name]["status"] != 200:
                continue
            restricted = {k: list(v) for k, v in params.items()}
            for k, v in params_for(Comparison("le", "scan_id", tiled_nodes)).items():
                restricted.setdefault(k, []).extend(v)
            status, body, _ = server.client.get(url(restricted))
            ours, theirs = decoded(body), decoded(tiled[name]["body"])
            out[name] = status == 200 and ours["meta"]["count"] == theirs["meta"]["count"] and \
                [d["id"] for d in ours["data"]] == [d["id"] for d in theirs["data"]]
    finally:
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--tiled-nodes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30, help="warm requests per query")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of warm requests per query, past 5 (Tiled's fulltext takes ~17 s each)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("SKYSHELF_BENCH_CACHE", "/tmp/skyshelf-search-bench")))
    parser.add_argument("--tiled", default=tiled_executable(), help="the tiled executable (with tiled[server])")
    parser.add_argument("--no-tiled", action="store_true")
    args = parser.parse_args()
    if not args.no_tiled and not shutil.which(args.tiled):
        parser.error(f"no tiled executable {args.tiled!r}: install tiled[server] (scripts/setup.sh dev), give --tiled PATH or --no-tiled")
    args.cache.mkdir(parents=True, exist_ok=True)

    site = publish_catalog(args.cache, args.nodes)
    sky, sky_peak = measure([sys.executable, "-m", "publisher.cli", "serve", "--store", str(site)], {}, ROOT, args.repeat, args.budget)
    tiled: dict[str, Any] = {}
    agrees: dict[str, bool] = {}
    tiled_peak = float("nan")
    if not args.no_tiled:
        db = tiled_catalog(args.cache, args.tiled_nodes, args.tiled)
        tiled, tiled_peak = measure([args.tiled, "serve", "catalog", str(db), "--api-key", "secret"], {"Authorization": "Apikey secret"},
                                    args.cache, args.repeat, args.budget)
        agrees = agreement(site, tiled, args.tiled_nodes)

    def ms(x: float) -> str:
        return f"{x * 1000:8.1f}"

    print(f"\nSkyshelf: {args.nodes:,} scans in one container;  Tiled (SQL catalog, SQLite): {args.tiled_nodes:,}.  milliseconds;"
          f" up to {args.repeat} warm requests each")
    print(f"{'query':<22}{'matches':>9}{'p50':>8}{'p99':>8}{'cold':>8} |{'tiled matches':>14}{'p50':>8}{'p99':>8}{'cold':>8} |{'tiled/sky p50':>14}")
    for name, r in sky.items():
        assert r["status"] == 200, (name, r["status"], r["body"][:300])
        s50, s99 = np.percentile(r["warm"], 50), np.percentile(r["warm"], 99)
        line = f"{name:<22}{count_of(r['body']):>9,}{ms(s50)}{ms(s99)}{ms(r['cold'])} |"
        t = tiled.get(name)
        if t and t["status"] == 200:
            t50, t99 = np.percentile(t["warm"], 50), np.percentile(t["warm"], 99)
            line += f"{count_of(t['body']):>14,}{ms(t50)}{ms(t99)}{ms(t['cold'])} |{t50 / s50:14.1f}"
            line += "   same answers" if agrees.get(name) else "   ANSWERS DIFFER"
        elif t:
            line += f"{'HTTP ' + str(t['status']):>14}{'':>24} |{'':>14}"
        print(line)
    print("same answers: Skyshelf, restricted to Tiled's scans (scan_id <= N), gives Tiled's count and first page, key for key")
    print(f"\npeak memory (VmHWM) of the server over every warm query: Skyshelf {sky_peak:.0f} MiB; Tiled {tiled_peak:.0f} MiB")


if __name__ == "__main__":
    main()
