"""S3 backend benchmark: what a cold function pays before its first S3 byte, per candidate library.

Each sample is a fresh ``python -I`` process that times, from before its first import to the
bytes in hand: importing the library, building its client from the standard AWS environment,
and one ranged GET (64 KiB of a 1 MiB object) on moto's server, which this script starts on a
loopback port. Candidates run interleaved in a shuffled order per round, so each sees the same
host; the median and p90 per candidate are printed with the ratio against boto3 (the named
baseline: what the deployed functions used before). ``store:<backend>`` rows time the same read
through Skyshelf's own ``open_store(url, backend=<backend>)``, as the handlers pass their ``SKYSHELF_S3_BACKEND`` (the wrapper's cost).

Usage: python benchmarks/s3_backend.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import moto_server  # noqa: E402

BUCKET, KEY, SPAN = "bench", "data/object.bin", 64 * 2**10

_TIMED = """
import time
t0 = time.perf_counter()
{body}
assert len(data) == {span}, len(data)
print((time.perf_counter() - t0) * 1000)
"""

CANDIDATES = {
    "boto3": """
import boto3
client = boto3.client("s3")
data = client.get_object(Bucket="{bucket}", Key="{key}", Range="bytes=0-{last}")["Body"].read()
""",
    "s3fs": """
import s3fs
fs = s3fs.S3FileSystem()
data = fs.cat_file("{bucket}/{key}", start=0, end={span})
""",
    "obstore": """
import obstore
from obstore.store import S3Store
store = S3Store("{bucket}")
data = bytes(obstore.get_range(store, "{key}", start=0, end={span}))
""",
}
STORE = """
from publisher.stores import open_store
data = open_store("s3://{bucket}", backend="{backend}").read_range("{key}", 0, {span})
"""


def available(name: str) -> bool:
    code = f"import {name.split(':')[-1]}" + ("; from publisher.stores import open_store" if name.startswith("store:") else "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT).returncode == 0


def sample(name: str, env: dict[str, str]) -> float:
    fields = {"bucket": BUCKET, "key": KEY, "span": SPAN, "last": SPAN - 1, "backend": name.partition(":")[2]}
    body = STORE if name.startswith("store:") else CANDIDATES[name]
    code = _TIMED.format(body=body.format(**fields), span=SPAN)
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**env, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    names = [n for n in [*CANDIDATES, "store:boto3", "store:obstore", "store:s3fs"] if available(n)]
    missing = sorted(set(CANDIDATES) - set(names))
    with tempfile.TemporaryDirectory() as tmp, moto_server(Path(tmp)) as server:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **server.env(), "AWS_ALLOW_HTTP": "true"}
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key=KEY, Body=os.urandom(2**20))
        times: dict[str, list[float]] = {n: [] for n in names}
        for n in names:  # warm the OS's file cache for every library once, untimed
            sample(n, env)
        for _ in range(args.rounds):
            for n in random.sample(names, len(names)):
                times[n].append(sample(n, env))
    base = statistics.median(times["boto3"])
    print(f"cold import + client + first 64 KiB ranged GET on moto's server, {args.rounds} fresh processes each "
          f"(Python {sys.version.split()[0]})")
    print(f"{'candidate':<16}{'median ms':>10}{'p90 ms':>9}{'min ms':>9}{'vs boto3':>10}")
    for n in names:
        ts = sorted(times[n])
        p90 = ts[min(len(ts) - 1, int(0.9 * len(ts)))]
        print(f"{n:<16}{statistics.median(ts):>10.1f}{p90:>9.1f}{ts[0]:>9.1f}{statistics.median(ts) / base:>9.2f}x")
    if missing:
        print(f"not installed, not measured: {', '.join(missing)}")


if __name__ == "__main__":
    main()
