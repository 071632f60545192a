"""Cold start of each Lambda handler, this checkout against a named earlier one, in one run.

What a cold function pays before its first answer: a fresh Python process imports the handler
module (``handlers.<module>``), builds what it builds at import, then answers one request that
reads the store on S3 (moto's server, started here) — the catalog, the node index and, for
arrays and tables, data. Each measurement is a new subprocess; the two checkouts alternate
(before, after, before, after, ...) so a host that slows down charges both. Printed: the median
import and first-request milliseconds per handler and checkout, and after / before.

The "before" checkout is a ``git worktree`` of ``--before`` (default: the commit issue 12's
reshape started from). Each checkout builds its own copy of a small tree (an array, a table)
into the same bucket, under its own prefix, with its own code. Each function reads S3 with the
client its deployed template sets (``SKYSHELF_S3_BACKEND``): boto3 for every function before
(``--before-backend``), this checkout's table (``publisher.functions``) after.

    python benchmarks/cold_start.py [--before REV] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from publisher.functions import BY_NAME  # noqa: E402
from tests.servers import moto_server  # noqa: E402

#: The commit issue 12 (one spine from build to handler) started from.
BASELINE = "bd03f82"

#: One request per handler module, each reading the store: (module, path, query).
REQUESTS = [
    ("metadata", "/api/v1/metadata/frames/stack", ""),
    ("arrays", "/api/v1/array/full/frames/stack", "slice=0&format=application/octet-stream"),
    ("tables", "/api/v1/table/full/log", "format=text/csv"),
]

#: Runs in the measured process: import, then one request, both timed; prints JSON.
PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import importlib
module = importlib.import_module("handlers." + sys.argv[1])
t1 = time.perf_counter()
event = json.loads(sys.argv[2])

class Context:
    function_name = "cold-start"; function_version = "$LATEST"; memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cold-start"
    aws_request_id = "cold-start-1"; log_group_name = "/aws/lambda/cold-start"; log_stream_name = "x"
    def get_remaining_time_in_millis(self): return 30000

answer = module.lambda_handler(event, Context())
t2 = time.perf_counter()
status = answer.get("statusCode") if isinstance(answer, dict) else answer
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "first_ms": (t2 - t1) * 1e3, "status": status}))
"""


def event(path: str, query: str) -> dict[str, object]:
    """An API Gateway HTTP API (payload 2.0) event for a GET, as the deployed stack sends it."""
    from urllib.parse import parse_qs

    params = parse_qs(query, keep_blank_values=True)
    return {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
            "headers": {"host": "example.execute-api.us-east-1.amazonaws.com", "x-forwarded-proto": "https",
                        "accept-encoding": "gzip"},
            "queryStringParameters": {k: ",".join(v) for k, v in params.items()} or None,
            "requestContext": {"http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                                        "userAgent": "cold-start"}, "stage": "$default", "requestId": "cold-start-1",
                               "domainName": "example.execute-api.us-east-1.amazonaws.com", "timeEpoch": int(time.time() * 1000)},
            "body": None, "isBase64Encoded": False}


def build(checkout: Path, sources: Path, store: str, env: dict[str, str]) -> None:
    """Publish the small tree with ``checkout``'s own code."""
    pipeline = sources.parent / f"pipeline-{checkout.name}.yml"
    pipeline.write_text(json.dumps({"sources": [{"path": str(sources), "into": ""}], "output": {"store": store}}))
    code = "import sys; from publisher.cli import main; sys.argv = ['publish', 'build', '-c', sys.argv[1], '--json-report']; main()"
    done = subprocess.run([sys.executable, "-c", code, str(pipeline)], cwd=checkout, env={**env, "PYTHONPATH": str(checkout)},
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"build with {checkout} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


#: Processes that answered and then failed on exit (e.g. a native thread pool torn down badly).
EXIT_FAILURES: list[str] = []


def measure(checkout: Path, module: str, request: dict[str, object], env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", PROBE, module, json.dumps(request)], cwd=checkout,
                          env={**env, "PYTHONPATH": str(checkout)}, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise SystemExit(f"{module} in {checkout} failed:\n{done.stderr[-3000:]}")
    found = json.loads(lines[-1])
    if done.returncode != 0:  # answered, then failed on the way out: counted and shown, not hidden
        EXIT_FAILURES.append(f"{module} in {checkout.name}: exit {done.returncode}: {done.stderr.strip()[-200:]}")
    if found["status"] != 200:
        raise SystemExit(f"{module} in {checkout} answered {found['status']}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=BASELINE, help=f"the earlier commit (default {BASELINE})")
    parser.add_argument("--before-backend", default="boto3", help="the S3 client the earlier template set (default boto3)")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skyshelf-cold-") as tmp_name:
        tmp = Path(tmp_name)
        before = tmp / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(before), args.before], cwd=ROOT, check=True)
        try:
            sources = tmp / "sources"
            (sources / "frames").mkdir(parents=True)
            np.save(sources / "frames" / "stack.npy", np.arange(8 * 256 * 256, dtype="uint16").reshape(8, 256, 256))
            (sources / "log.csv").write_text("time,value\n" + "".join(f"{i},{i * 0.5}\n" for i in range(2000)))
            with moto_server(tmp) as s3:
                bucket = s3.create_bucket("cold")
                base_env = {k: v for k, v in os.environ.items() if not k.startswith("SKYSHELF_")}
                env = {**base_env, **s3.env()}
                checkouts = {"before": before, "after": ROOT}
                stores = {}
                for name, checkout in checkouts.items():
                    stores[name] = f"s3://{bucket}/{name}"
                    build(checkout, sources, stores[name], env)
                results: dict[tuple[str, str], list[dict[str, float]]] = {}
                for _ in range(args.repeat):
                    for module, path, query in REQUESTS:
                        for name, checkout in checkouts.items():
                            backend = args.before_backend if name == "before" else BY_NAME[module].s3_backend
                            run_env = {**env, "SKYSHELF_STORE": stores[name], "SKYSHELF_S3_BACKEND": backend}
                            results.setdefault((module, name), []).append(measure(checkout, module, event(path, query), run_env))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
    print(f"cold start per handler: import + first request reading S3 (moto), median of {args.repeat}, ms")
    print("S3 clients: before " + args.before_backend + ", after " + ", ".join(f"{m} {BY_NAME[m].s3_backend}" for m, _, _ in REQUESTS))
    print(f"{'handler':10} {'before import':>14} {'first':>8} {'total':>8} | {'after import':>13} {'first':>8} {'total':>8} | after/before")
    for module, _, _ in REQUESTS:
        row = []
        for name in ("before", "after"):
            runs = results[(module, name)]
            imp = statistics.median(r["import_ms"] for r in runs)
            first = statistics.median(r["first_ms"] for r in runs)
            total = statistics.median(r["import_ms"] + r["first_ms"] for r in runs)
            row.append((imp, first, total))
        (bi, bf, bt), (ai, af, at) = row
        print(f"{module:10} {bi:14.0f} {bf:8.0f} {bt:8.0f} | {ai:13.0f} {af:8.0f} {at:8.0f} | {at / bt:.2f}")

    for failure in EXIT_FAILURES:
        print("after answering, a process failed on exit:", failure)


if __name__ == "__main__":
    main()
