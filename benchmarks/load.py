"""Load benchmark: a mixed workload against real ``publish serve`` processes, 1 worker against N.

The demo store (``examples/demo`` generated and built with the repo's pipeline.yml, or
``--store``) is served twice on loopback, by ``publish serve --workers 1`` and ``--workers N``
(default: the usable cores, as ``publish serve`` defaults). Each client is one keep-alive
connection (asyncio + httpx) sending, in turn, the mixed workload's requests: a node's metadata, a
search with a filter, an array block, a PNG of an array plane and a table as CSV (each client
starts at another point of the mix). At each concurrency (1, 4, 16, 64 clients) a round is bounded
in time (``--seconds``) and in requests (``--max-requests``); rounds alternate between the two
servers, in alternating order (the host is shared and noisy: pairs see the same moments), ``--rounds``
times each. Printed: requests/s, errors and the CPU the server and the client used (cores) per
server and concurrency, p50 / p99 ms per route, and N workers' throughput over 1 worker's (pooled,
and the median of the paired rounds'). Every answer must be a 200: anything else, or a transport
error, counts as an error, and what it was is printed.

The client runs on the same host and takes a core's share too: on a small machine it bounds what
N workers can show.

Usage: python benchmarks/load.py [--levels 1,4,16,64] [--seconds 4] [--max-requests 4000] [--rounds 2]
                                 [--workers N] [--store DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ARRAY = "scans/scan_0001/entry/data/data"  # (12, 256, 256) uint16, a chunk per frame
TABLE = "tables/temperature_log"
#: The mixed workload: route name -> the request's path and query for the client's i-th request.
ROUTES: dict[str, Callable[[int], str]] = {
    "metadata": lambda i: f"/api/v1/metadata/{ARRAY}",
    "search": lambda i: "/api/v1/search/scans?filter[eq][condition][key]=beamline&filter[eq][condition][value]=%2228-ID-1%22",
    "block": lambda i: f"/api/v1/array/block/{ARRAY}?block={i % 12},0,0",
    "png": lambda i: f"/api/v1/array/full/{ARRAY}?slice={i % 12}&format=png",
    "csv": lambda i: f"/api/v1/table/full/{TABLE}?format=csv",
}


@dataclass
class Tally:
    """One server at one concurrency, over its rounds."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in ROUTES})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROUTES, 0))
    failures: list[str] = field(default_factory=list)  # what each error was
    requests: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0  # this process's CPU seconds in the rounds (the client's share of the host)
    server_cpu: float = 0.0  # the server's processes' CPU seconds in the rounds (Linux: /proc)
    rates: list[float] = field(default_factory=list)  # each round's requests/s

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def quantile(self, name: str, q: float) -> float:
        values = sorted(self.latencies[name])
        return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")


async def one_round(url: str, clients: int, seconds: float, max_requests: int, tally: Tally, pids: Sequence[int] = ()) -> None:
    """``clients`` connections sending the mix until ``seconds`` pass or ``max_requests`` are sent
    (``pids``: the server's processes, whose CPU time is counted)."""
    names = list(ROUTES)
    sent = 0
    # Made before the clock starts: an httpx client takes ~50 ms to make (its TLS context), which
    # would hold up the other clients' requests on this event loop.
    https = [httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=1)) for _ in range(clients)]

    async def client(k: int, http: httpx.AsyncClient) -> None:
        nonlocal sent
        async with http:
            i = k
            while time.monotonic() < deadline and sent < max_requests:
                sent += 1
                name = names[i % len(names)]
                start = time.perf_counter()
                try:
                    answer = await http.get(ROUTES[name](i // len(names)))
                    failure = None if answer.status_code == 200 else f"{answer.status_code} {answer.url.raw_path.decode()} {answer.text[:200]}"
                except httpx.HTTPError as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                if failure is None:
                    tally.latencies[name].append(time.perf_counter() - start)
                else:
                    tally.errors[name] += 1
                    tally.failures.append(f"{name}: {failure}")
                i += 1

    deadline = time.monotonic() + seconds
    start, cpu, server = time.perf_counter(), time.process_time(), cpu_seconds(pids)
    await asyncio.gather(*(client(k, http) for k, http in enumerate(https)))
    elapsed = time.perf_counter() - start
    tally.client_cpu += time.process_time() - cpu
    tally.server_cpu += cpu_seconds(pids) - server
    tally.requests += sent
    tally.seconds += elapsed
    tally.rates.append(sent / elapsed)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU seconds these processes have used (all their threads; 0 without /proc)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(store: str, workers: int, log: Path) -> Iterator[tuple[str, list[int]]]:
    """``publish serve --store STORE --workers N`` on a free loopback port, once every worker
    listens: (URL, the pids answering)."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "publisher.cli", "serve", "--store", store, "--port", str(port),
                                    "--workers", str(workers)], stdout=out, stderr=out, cwd=log.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not (workers == 1 or re.search(r"^Ready: ", log.read_text(), re.MULTILINE)) or not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"publish serve --workers {workers} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        ready = re.search(r"^Ready: \d+ workers \(pids ([\d, ]+)\)", log.read_text(), re.MULTILINE)
        yield url, [int(p) for p in ready[1].split(", ")] if ready else [process.pid]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def build_demo(folder: Path) -> str:
    """The demo tree generated into ``folder`` and published there with the repo's pipeline.yml; the store's path."""
    import yaml

    sys.path.insert(0, str(ROOT / "examples" / "demo"))
    from make_demo import make_demo

    demo = make_demo(folder / "demo", force=True)
    config = yaml.safe_load((ROOT / "pipeline.yml").read_text())
    for source in config["sources"]:
        source["path"] = source["path"].replace("examples/demo", str(demo))
    config["output"]["store"] = str(folder / "site")
    (folder / "pipeline.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    built = subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(folder / "pipeline.yml")],
                           capture_output=True, text=True, cwd=folder, check=False)
    if built.returncode:
        raise RuntimeError(f"publish build failed: {built.stdout[-2000:]}{built.stderr[-2000:]}")
    return str(folder / "site")


def measure(store: str, levels: list[int], seconds: float, max_requests: int, rounds: int, workers: int,
            folder: Path) -> dict[tuple[int, int], Tally]:
    """(concurrency, workers) -> tally, for 1 worker and ``workers``, rounds interleaved."""
    tallies = {(level, w): Tally() for level in levels for w in (1, workers)}
    with serving(store, 1, folder / "serve-1.log") as one, serving(store, workers, folder / f"serve-{workers}.log") as many:
        servers = {1: one, workers: many}
        for url, _ in servers.values():  # each worker's first requests import pyarrow, Pillow ...: not measured
            asyncio.run(one_round(url, 4 * workers, 2.0, 40 * workers, Tally()))
        for level in levels:
            for r in range(rounds):
                for w in ((1, workers) if r % 2 == 0 else (workers, 1)):
                    url, pids = servers[w]
                    asyncio.run(one_round(url, level, seconds, max_requests, tallies[level, w], pids))
    return tallies


def report(tallies: dict[tuple[int, int], Tally], levels: list[int], workers: int) -> str:
    """A markdown table: per concurrency and server, requests/s, errors, p50 / p99 ms per route; then the ratios."""
    head = "| clients | workers | req/s | errors | server / client cores | " + " | ".join(f"{name} p50 / p99 ms" for name in ROUTES) + " |"
    lines = [head, "|" + "---|" * (5 + len(ROUTES))]
    for level in levels:
        for w in (1, workers):
            t = tallies[level, w]
            cells = " | ".join(f"{t.quantile(name, 0.5):.1f} / {t.quantile(name, 0.99):.1f}" for name in ROUTES)
            lines.append(f"| {level} | {w} | {t.rate:.0f} | {sum(t.errors.values())} | {t.server_cpu / t.seconds:.2f} / {t.client_cpu / t.seconds:.2f} | {cells} |")
    lines += ["", f"| clients | {workers} workers / 1, req/s (pooled) | paired rounds' median |", "|---|---|---|"]
    for level in levels:
        one, many = tallies[level, 1], tallies[level, workers]
        paired = statistics.median(m / o for m, o in zip(many.rates, one.rates, strict=True))
        lines.append(f"| {level} | {many.rate / one.rate:.2f} | {paired:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,4,16,64", help="concurrent clients, comma-separated")
    parser.add_argument("--seconds", type=float, default=4.0, help="each round's duration")
    parser.add_argument("--max-requests", type=int, default=4000, help="each round's request budget")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per server and concurrency")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    parser.add_argument("--store", default=None, help="a published store (default: the demo, built into a temporary folder)")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="skyshelf-load-") as tmp:
        folder = Path(tmp)
        store = args.store or build_demo(folder)
        started = time.time()
        tallies = measure(store, levels, args.seconds, args.max_requests, args.rounds, args.workers, folder)
    print(f"{time.strftime('%Y-%m-%d', time.gmtime(started))}, {len(os.sched_getaffinity(0))} usable cores, "
          f"{args.rounds} rounds of {args.seconds:g} s (at most {args.max_requests} requests) per server and concurrency, "
          f"in {time.time() - started:.0f} s: {sum(t.requests for t in tallies.values())} requests\n")
    print(report(tallies, levels, args.workers))
    if any(sum(t.errors.values()) for t in tallies.values()):
        sys.exit("errors: " + "; ".join(f"{level} clients x {w} workers: {t.failures[:5]}" for (level, w), t in tallies.items() if t.failures))


if __name__ == "__main__":
    main()
