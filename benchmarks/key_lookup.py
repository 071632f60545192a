"""First API key verification in a cold process: the deployed functions' DynamoDB table against
the store's private area on S3 (the baseline), both on moto's server started here, in one run.

Each measurement is a fresh Python process (a Lambda's cold start) that imports the key ring and
verifies one key: for the table, ``boto3`` is imported and its DynamoDB client made on that first
verification; for the store, the record is read through obstore (the arrays and tables
functions' S3 client; the metadata function's is boto3, so it pays the import either way). The
two alternate (store, table, store, table, ...) so a host that slows down charges both. Printed:
median milliseconds of each and table / store; then the warm (cached) verification, which is the
same code for both.

    python benchmarks/key_lookup.py [--repeat 9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import moto_server  # noqa: E402

PROBE = r"""
import json, sys, time
start = time.perf_counter()
from publisher.auth.keys import KeyRing
where, key = sys.argv[1], sys.argv[2]
if where.startswith("dynamodb:"):
    from publisher.auth.key_records import DynamoKeyRecords
    ring = KeyRing(DynamoKeyRecords(where.removeprefix("dynamodb:")))
else:
    from publisher.stores import Store
    ring = KeyRing(Store(where, backend="obstore"))
ring.principal(key)
first = time.perf_counter() - start
t = time.perf_counter()
for _ in range(1000):
    ring.principal(key)
print(json.dumps({"first_ms": first * 1e3, "warm_us": (time.perf_counter() - t) * 1e3}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    import boto3

    from publisher.auth.key_records import DynamoKeyRecords
    from publisher.auth.keys import create_key
    from publisher.deploy.template import template
    from publisher.stores import Store

    with tempfile.TemporaryDirectory() as tmp, moto_server(Path(tmp)) as server:
        env = {**server.env(), "AWS_REGION": "us-east-1", "PYTHONPATH": str(ROOT)}
        import os

        os.environ.update(env)
        server.create_bucket("keys-bench")
        store_url = "s3://keys-bench/site"
        store_key, _ = create_key(Store(store_url), ["A"])
        props = template()["Resources"]["KeysTable"]["Properties"]
        boto3.client("dynamodb").create_table(TableName="keys-bench", AttributeDefinitions=props["AttributeDefinitions"],
                                              KeySchema=props["KeySchema"], BillingMode=props["BillingMode"])
        table_key, _ = create_key(DynamoKeyRecords("keys-bench"), ["A"])
        runs: dict[str, list[dict[str, float]]] = {"store (obstore, baseline)": [], "table (boto3 DynamoDB)": []}
        for _ in range(args.repeat):
            for name, where, key in (("store (obstore, baseline)", store_url, store_key), ("table (boto3 DynamoDB)", "dynamodb:keys-bench", table_key)):
                out = subprocess.run([sys.executable, "-c", PROBE, where, key], env={**os.environ, **env}, capture_output=True, text=True, check=True)
                runs[name].append(json.loads(out.stdout))
    medians = {name: statistics.median(r["first_ms"] for r in rs) for name, rs in runs.items()}
    for name, rs in runs.items():
        print(f"{name:28s} first verification {medians[name]:7.1f} ms (min {min(r['first_ms'] for r in rs):.1f}), "
              f"warm {statistics.median(r['warm_us'] for r in rs):.2f} µs")
    store, table = medians.values()
    print(f"table / store (first verification in a cold process): {table / store:.2f}x")


if __name__ == "__main__":
    main()
