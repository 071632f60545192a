"""What a deployed function leaves per request (handlers/observe.py): the request's structured log
line and its CloudWatch EMF documents, read from stdout as Lambda hands them to CloudWatch Logs,
for recorded API Gateway events given to the real ``lambda_handler`` with a Lambda context: the
fields and numbers of a 200, a 4xx and a 5xx, cache hits, a spilled answer, nothing secret; the
tracer only when switched on; and a handler's cold import still loads no metrics or tracing code."""

from __future__ import annotations

import base64
import importlib
import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from handlers import settings
from publisher.functions import route_for

from .conftest import Published
from .test_lambda_events import EVENTS, Context, demo  # noqa: F401 - the built demo store (a module fixture)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk_live_do-not-log-me"


@pytest.fixture
def invoke(demo: Published, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:  # noqa: F811
    """``invoke(event name, query=None, **headers)``: (result, the request's log line, its EMF
    documents: the function's and the route's), read from what the function printed."""
    monkeypatch.setenv("SKYSHELF_STORE", demo.store.url)

    def call(name: str, query: str | None = None, path: str | None = None, method: str | None = None,
             **headers: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], str]:
        event = json.loads((EVENTS / f"{name}.json").read_text())
        event["headers"].update(headers)
        if method is not None:
            event["requestContext"]["http"]["method"] = method
        if query is not None:
            event["rawQueryString"] = query
        if path is not None:
            event["rawPath"] = event["requestContext"]["http"]["path"] = path
        route = route_for(event["requestContext"]["http"]["method"], event["rawPath"])
        module = route.module if route else "metadata"  # API Gateway's $default route
        handler = importlib.import_module(f"handlers.{module}").lambda_handler
        log = importlib.import_module("handlers.common").log
        stream = io.StringIO()
        to_stream = logging.StreamHandler(stream)  # the logger's lines as it formats them for Lambda's stdout
        to_stream.setFormatter(log.registered_formatter)
        log.addHandler(to_stream)
        capsys.readouterr()
        try:
            result = handler(event, Context(f"sky-{module}"))
        finally:
            log.removeHandler(to_stream)
        printed = capsys.readouterr().out  # Metrics prints its EMF documents
        out = printed + stream.getvalue()
        (request,) = [line for line in map(json.loads, stream.getvalue().splitlines()) if line.get("message") == "request"]
        emf = [line for line in map(json.loads, (p for p in printed.splitlines() if p.startswith("{"))) if "_aws" in line]
        return result, request, emf, out

    return call


def _function_doc(emf: list[dict[str, Any]]) -> dict[str, Any]:
    (doc,) = [d for d in emf if d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]]
    return doc


def test_a_request_logs_one_line_and_its_metrics(invoke: Any) -> None:
    result, line, emf, _ = invoke("metadata_node")
    body = base64.b64decode(result["body"]) if result.get("isBase64Encoded") else result["body"].encode()
    assert result["statusCode"] == 200
    assert line["request_id"] == "Qx3bYhd5joEEJ9C=" and line["function_request_id"] == Context("x").aws_request_id
    assert line["route"] == "GET /api/v1/metadata/{path+}" and line["method"] == "GET" and line["status"] == 200
    assert line["bytes"] == len(body) > 0 and 0 < line["latency_ms"] < 10_000 and line["path"].startswith("/api/v1/metadata/")
    assert line["level"] == "INFO" and line["function_name"] == "sky-metadata"

    doc = _function_doc(emf)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Skyshelf" and doc["service"] == line["service"]
    units = {m["Name"]: m["Unit"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"Requests": "Count", "Latency": "Milliseconds", "ResponseBytes": "Bytes", "4xx": "Count", "5xx": "Count",
                     "CacheHits": "Count", "Spills": "Count"}
    assert doc["Requests"] == [1.0] and doc["4xx"] == [0.0] and doc["5xx"] == [0.0] and doc["ResponseBytes"] == [float(len(body))]
    assert doc["Latency"] == [line["latency_ms"]]
    (route,) = [d for d in emf if d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "route"]]]
    assert route["route"] == line["route"] and route["Latency"] == [line["latency_ms"]]
    assert [m["Name"] for m in route["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == ["Latency"]


def test_a_head_is_logged_and_measured_as_the_head_it_is(invoke: Any) -> None:
    """A HEAD is answered as its GET, without the body: it was logged as a GET, with the GET's
    bytes, which the client never got."""
    result, line, emf, _ = invoke("metadata_node", method="HEAD")
    assert result["statusCode"] == 200 and result["body"] == ""
    assert line["method"] == "HEAD" and line["route"] == "HEAD /api/v1/metadata/{path+}" and line["bytes"] == 0
    assert _function_doc(emf)["ResponseBytes"] == [0.0]


def test_a_4xx_is_counted_and_no_secret_is_logged(invoke: Any) -> None:
    result, line, emf, out = invoke("metadata_node", query=f"api_key={SECRET}", authorization=f"Bearer {SECRET}x", cookie=SECRET)
    assert result["statusCode"] == 401 and line["status"] == 401
    doc = _function_doc(emf)
    assert doc["4xx"] == [1.0] and doc["5xx"] == [0.0] and doc["Requests"] == [1.0]
    assert SECRET not in out and "authorization" not in out.lower() and "api_key" not in out


def test_a_5xx_is_counted(invoke: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from publisher.catalog import Catalog

    def fault(self: Catalog, path: str) -> Any:
        raise RuntimeError("a fault nobody foresaw")

    monkeypatch.setattr(Catalog, "entry", fault)
    result, line, emf, _ = invoke("metadata_node")
    assert result["statusCode"] == 500 and line["status"] == 500
    doc = _function_doc(emf)
    assert doc["5xx"] == [1.0] and doc["4xx"] == [0.0]


def test_unknown_paths_are_one_route(invoke: Any) -> None:
    """A path no route has is logged and measured as ``$default`` (one metric, whatever the URL)."""
    result, line, emf, _ = invoke("metadata_node", path="/api/v1/nowhere/" + "x" * 500)
    assert result["statusCode"] == 404 and line["route"] == "$default" and len(line["path"]) == 200
    (route,) = [d for d in emf if "route" in d]
    assert route["route"] == "$default" and _function_doc(emf)["4xx"] == [1.0]
    _, health, _, _ = invoke("healthz")
    assert health["route"] == "GET /healthz" and health["status"] == 200


def test_cache_hits_and_spills_are_counted(invoke: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from publisher.access.cache import DECODED

    DECODED.resize(0)
    DECODED.resize(64 * 2**20)  # emptied: the first read decodes, the second is a hit
    _, first, emf_first, _ = invoke("array_full_slice")
    _, again, emf_again, _ = invoke("array_full_slice")
    assert first["status"] == again["status"] == 200
    assert first["cache_hits"] == _function_doc(emf_first)["CacheHits"][0] == 0
    assert again["cache_hits"] == _function_doc(emf_again)["CacheHits"][0] >= 1

    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "100")  # every answer past 100 bytes goes to the store behind a 307
    settings.reset()
    result, line, emf, _ = invoke("array_full_slice", query="slice=0")
    assert result["statusCode"] == 307 and line["spills"] == 1 and _function_doc(emf)["Spills"] == [1.0]
    result, line, emf, _ = invoke("array_full_slice", query="slice=0")  # already spilled: redirected again
    assert result["statusCode"] == 307 and _function_doc(emf)["Spills"] == [1.0]


def test_tracing_only_when_switched_on(invoke: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Off by default (no Tracer made); with ``SKYSHELF_TRACING`` the answer goes through
    Powertools' Tracer (disabled outside Lambda here by ``POWERTOOLS_TRACE_DISABLED``)."""
    from handlers import observe

    fresh = observe.Observed(lambda event, context: {"statusCode": 204, "body": ""}, importlib.import_module("handlers.common").log)
    assert fresh._call() is fresh.answer and fresh.tracer is None  # off: the answer itself
    monkeypatch.setenv("SKYSHELF_TRACING", "true")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    settings.reset()
    traced = observe.Observed(lambda event, context: {"statusCode": 204, "body": ""}, importlib.import_module("handlers.common").log)
    assert traced._call() is not traced.answer and type(traced.tracer).__name__ == "Tracer"
    assert traced(json.loads((EVENTS / "healthz.json").read_text()), Context("sky-metadata"))["statusCode"] == 204


@pytest.mark.parametrize("module", ["handlers.metadata", "handlers.arrays", "handlers.tables"])
def test_cold_import_loads_no_tracing_sdk(module: str) -> None:
    """aws_xray_sdk is imported only by a traced function's first request (Powertools' package
    loads its own metrics and tracing modules with the Logger anyway)."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith(('aws_xray_sdk', 'wrapt'))))"
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stdout


def test_concurrent_requests_log_their_own_request_ids(demo: Published, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """``publish serve`` answers requests on several threads of one process: a line logged while
    another request has started carries its own request's id, not the other's."""
    import threading

    common = importlib.import_module("handlers.common")
    handler = importlib.import_module("handlers.metadata").lambda_handler
    monkeypatch.setenv("SKYSHELF_STORE", demo.store.url)
    second_started = threading.Event()
    real = common.PINNED

    class Probe:  # where each request has set its keys: the first waits there for the second to set its own
        def set(self, value: Any) -> Any:
            token = real.set(value)
            if threading.current_thread().name == "first":
                assert second_started.wait(30)
            else:
                second_started.set()
            common.log.info(f"probe {threading.current_thread().name}")
            return token

        def get(self, *args: Any) -> Any:
            return real.get(*args)

        def reset(self, token: Any) -> None:
            real.reset(token)

    monkeypatch.setattr(common, "PINNED", Probe())

    def ask(request_id: str) -> None:
        event = json.loads((EVENTS / "metadata_node.json").read_text())
        event["requestContext"]["requestId"] = request_id
        handler(event, None)  # as publish serve calls it

    stream = io.StringIO()
    to_stream = logging.StreamHandler(stream)
    to_stream.setFormatter(common.log.registered_formatter)
    common.log.addHandler(to_stream)
    try:
        first = threading.Thread(target=ask, args=("first-request",), name="first")
        first.start()
        time.sleep(0.2)  # the first has set its keys and waits
        second = threading.Thread(target=ask, args=("second-request",), name="second")
        second.start()
        first.join(30)
        second.join(30)
    finally:
        common.log.removeHandler(to_stream)
    probes = {line["message"]: line.get("request_id") for line in map(json.loads, stream.getvalue().splitlines()) if line["message"].startswith("probe")}
    assert probes == {"probe first": "first-request", "probe second": "second-request"}
