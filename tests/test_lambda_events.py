"""The Lambda functions called as AWS calls them: API Gateway HTTP API (payload 2.0) events under
``tests/events/``, rebuilt from a recorded one (tests/events/README.md names it and what changed),
each checked against Powertools' own model of the event and against the routes the template
makes, then given to the ``lambda_handler`` the function table names, with a Lambda context
object, against a built demo store."""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd
import pytest

from publisher.functions import route_for

from .conftest import Published, run_build
from .test_build_demo import demo_config

EVENTS = Path(__file__).parent / "events"
LINKS = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/api/v1"


@dataclass
class Context:
    """What Lambda passes as ``context`` (the attributes Powertools reads)."""

    function_name: str
    aws_request_id: str = "5f1c7c3e-8a51-4e7e-9b0b-2f6f3f0d9a11"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:skyshelf-metadata"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


@pytest.fixture(scope="module")
def demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return run_build(tmp_path_factory.mktemp("events-build"), demo_config(demo_dir))


@pytest.fixture
def call(demo: Published, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``call(name, **header overrides)``: (status, headers, body) of that event's answer, the
    body decoded as a client does (base64, then its Content-Encoding)."""
    import importlib

    monkeypatch.setenv("SKYSHELF_STORE", demo.store.url)  # as the template sets it on each function

    def answer(name: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        event = json.loads((EVENTS / f"{name}.json").read_text())
        event["headers"].update(headers)
        route = route_for(event["requestContext"]["http"]["method"], event["rawPath"])
        assert route is not None, event["rawPath"]
        handler = importlib.import_module(f"handlers.{route.module}").lambda_handler
        result = handler(event, Context(f"skyshelf-{route.module}"))
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        out = result.get("headers") or {}
        return result["statusCode"], out, gzip.decompress(data) if out.get("Content-Encoding") == "gzip" else data

    return answer


NAMES = sorted(p.stem for p in EVENTS.glob("*.json"))


def _route_keys() -> list[str]:
    """The route keys of the API the template deploys (``$default`` last: API Gateway's fallback)."""
    from publisher.deploy.template import template

    keys = [r["Properties"]["RouteKey"] for r in template()["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Route"]
    return sorted(keys, key=lambda k: k == "$default")


def _gateway_route(method: str, path: str) -> tuple[str, dict[str, str] | None]:
    """The route key API Gateway picks for a request and the path parameters it passes: an exact
    route first, then the greedy ``{path+}`` (one segment or more), then ``$default``."""
    keys = _route_keys()
    if f"{method} {path}" in keys:
        return f"{method} {path}", None
    for key in keys:
        verb, _, template = key.partition(" ")
        match = re.fullmatch(re.escape(template).replace(r"\{path\+\}", "(?P<path>.+)"), path) if verb == method else None
        if match:
            return key, match.groupdict() or None
    return "$default", None


def _query_parameters(raw: str) -> dict[str, str] | None:
    """``queryStringParameters`` as API Gateway builds them from the raw query: decoded, ``+`` a
    space, blank values kept, a repeated key's values joined by commas; absent without a query."""
    joined: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw)):
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined or None


@pytest.mark.parametrize("name", NAMES)
def test_every_event_is_one_api_gateway_sends(name: str) -> None:
    """Powertools' pydantic model of the payload 2.0 event accepts it (and it carries no field
    that model lacks); its route key, path parameters and query parameters are the ones API
    Gateway derives from its raw path and query for the routes the template deploys."""
    from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model
    from aws_lambda_powertools.utilities.parser.models.apigwv2 import RequestContextV2, RequestContextV2Http

    event = json.loads((EVENTS / f"{name}.json").read_text())
    model = APIGatewayProxyEventV2Model.model_validate(event)
    for fields, given in ((APIGatewayProxyEventV2Model, event), (RequestContextV2, event["requestContext"]),
                          (RequestContextV2Http, event["requestContext"]["http"])):
        assert set(given) <= set(fields.model_fields), (name, set(given) - set(fields.model_fields))
    context = model.requestContext
    assert event["version"] == "2.0" and context.stage == "$default" and model.isBase64Encoded is False and model.body is None
    assert context.http.method == "GET" and context.http.path == model.rawPath and "?" not in model.rawPath
    assert datetime.strptime(context.time, "%d/%b/%Y:%H:%M:%S %z") == context.timeEpoch.replace(microsecond=0)
    assert all(k == k.lower() for k in model.headers) and model.headers["host"] == context.domainName
    key, parameters = _gateway_route(context.http.method, model.rawPath)
    assert model.routeKey == context.routeKey == key and model.pathParameters == parameters, name
    assert model.queryStringParameters == _query_parameters(model.rawQueryString), name
    assert route_for(context.http.method, model.rawPath) is not None, name


def test_the_events_cover_every_route_family() -> None:
    """Each function, a greedy route and its bare prefix, ``$default``, a decoded path segment,
    a repeated query key."""
    events = [json.loads((EVENTS / f"{n}.json").read_text()) for n in NAMES]
    keys = {e["routeKey"] for e in events}
    assert {route_for("GET", e["rawPath"]).module for e in events} == {"metadata", "arrays", "tables"}  # type: ignore[union-attr]
    assert "$default" in keys and "GET /api/v1/metadata" in keys and "GET /api/v1/metadata/{path+}" in keys
    assert any(" " in e["rawPath"] for e in events)
    assert any(len(parse_qsl(e["rawQueryString"], keep_blank_values=True)) > len(e.get("queryStringParameters") or {}) for e in events)


def test_a_malformed_event_fails_the_checks() -> None:
    """The checks above can fail: Powertools' model refuses an event without its request context,
    and a query parameter API Gateway would not have built is seen."""
    from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model
    from pydantic import ValidationError

    event = json.loads((EVENTS / "search_repeated_keys.json").read_text())
    with pytest.raises(ValidationError, match="requestContext"):
        APIGatewayProxyEventV2Model.model_validate({k: v for k, v in event.items() if k != "requestContext"})
    assert _query_parameters(event["rawQueryString"])["filter[eq][condition][key]"] == "beamline,proposal"  # type: ignore[index]
    assert _query_parameters("a=1&a=2") != {"a": "2"} and _query_parameters("") is None
    assert _gateway_route("GET", "/api/v1/") == ("$default", None)


def test_about_and_health(call: Any, demo: Published) -> None:
    status, headers, body = call("about")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["links"]["self"] == LINKS  # the Host API Gateway passed on, https
    status, _, body = call("healthz")
    assert status == 200 and json.loads(body) == {"status": "ok", "release": demo.catalog.release}


def test_metadata_with_etag_and_304(call: Any) -> None:
    status, headers, body = call("metadata_node")
    resource = json.loads(body)["data"]
    assert status == 200 and resource["id"] == "scan_0001" and resource["attributes"]["structure_family"] == "container"
    assert resource["links"]["self"] == f"{LINKS}/metadata/scans/scan_0001"
    assert headers["Cache-Control"] == "public, max-age=30, must-revalidate" and "Accept-Encoding" in headers["Vary"]
    status, again, body = call("metadata_node", **{"if-none-match": headers["ETag"]})
    assert status == 304 and body == b"" and again["ETag"] == headers["ETag"]


def test_head_is_answered_as_get_without_the_body(demo: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """API Gateway routes HEAD on its own (the template gives every GET route a HEAD twin): the
    function answers it as it answers GET, headers and status, with no body."""
    import importlib

    monkeypatch.setenv("SKYSHELF_STORE", demo.store.url)
    answers = {}
    for method in ("GET", "HEAD"):
        event = json.loads((EVENTS / "metadata_node.json").read_text())
        event["requestContext"]["http"]["method"] = method
        answers[method] = importlib.import_module("handlers.metadata").lambda_handler(event, Context("skyshelf-metadata"))
    get, head = answers["GET"], answers["HEAD"]
    assert head["statusCode"] == get["statusCode"] == 200 and get["body"] and head["body"] == ""
    assert head["headers"]["ETag"] == get["headers"]["ETag"] and head["headers"]["Content-Type"] == get["headers"]["Content-Type"]


def test_client_mistakes_are_4xx_with_a_detail(call: Any) -> None:
    status, headers, body = call("metadata_missing")
    assert status == 404 and headers["Cache-Control"] == "no-store" and "scans/nope" in json.loads(body)["detail"]
    status, _, body = call("array_block_bad")
    assert status == 400 and "block must be comma-separated integers" in json.loads(body)["detail"]


def test_search_with_a_filter(call: Any) -> None:
    status, _, body = call("search_filter")
    answer = json.loads(body)
    assert status == 200 and [d["id"] for d in answer["data"]] == ["scan_0001", "scan_0002"] and answer["meta"]["count"] == 2


def test_array_slice_as_bytes(call: Any, demo: Published) -> None:
    import zarr

    status, headers, body = call("array_full_slice")
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    source = zarr.open_array(demo.url("frames/KCl_300K_00007"), mode="r")
    np.testing.assert_array_equal(np.frombuffer(body, dtype=source.dtype).reshape(source.shape[1:]), source[1])


def test_table_as_gzipped_csv(call: Any, demo_dir: Path) -> None:
    status, headers, body = call("table_full_csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv") and headers["Content-Encoding"] == "gzip"
    assert headers["Content-Disposition"] == 'attachment; filename="temperature_log.csv"'
    got = pd.read_csv(io.BytesIO(body))
    expected = pd.read_csv(demo_dir / "tables" / "temperature_log.csv", comment="#")
    np.testing.assert_allclose(got["sample_temperature"], expected["sample_temperature"])


def test_a_decoded_path_segment(call: Any) -> None:
    """HTTP APIs pass the path decoded (``scan%200001`` arrives as ``scan 0001``): the answer names it once decoded."""
    status, _, body = call("metadata_encoded")
    assert status == 404 and "scans/scan 0001" in json.loads(body)["detail"]
    status, _, body = call("metadata_root")
    assert status == 200 and json.loads(body)["data"]["attributes"]["structure_family"] == "container"


def test_search_with_repeated_keys(call: Any) -> None:
    """Two ``eq`` filters repeat their keys; API Gateway joins them by commas in
    ``queryStringParameters``, so the handlers read ``rawQueryString``."""
    status, _, body = call("search_repeated_keys")
    assert status == 200 and [d["id"] for d in json.loads(body)["data"]] == ["scan_0001"]


def test_container_outline(call: Any) -> None:
    status, _, body = call("container_full_json")
    outline = json.loads(body)
    assert status == 200 and "entry" in outline["contents"]


def _log_lines(call: Any, name: str) -> tuple[int, bytes, list[dict[str, Any]]]:
    """Status, body and the JSON log lines of one event's call (Powertools' Logger, its formatter
    on a stream of the test's: its own handler writes to the stdout it found at import)."""
    import logging

    from handlers.common import log

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log.registered_formatter)
    log.addHandler(handler)
    try:
        status, _, body = call(name)
    finally:
        log.removeHandler(handler)
    return status, body, [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_server_error_is_a_json_log_line_with_the_request_id(call: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault the handlers did not foresee (a catalog read that raises; no real store input is
    left that does: a damaged one is a 502, below): the client gets a 500 without a traceback;
    the log gets one structured line naming the request and the function."""
    from publisher.catalog import Catalog

    def fault(self: Catalog, path: str) -> Any:
        raise RuntimeError("a fault nobody foresaw")

    monkeypatch.setattr(Catalog, "entry", fault)
    status, body, lines = _log_lines(call, "metadata_node")
    assert status == 500 and "Traceback" not in body.decode() and json.loads(body)["detail"].startswith("internal error")
    (record, request) = [r for r in lines if r.get("request_id") == "Qx3bYhd5joEEJ9C="]  # the error, then the request's line
    assert request["message"] == "request" and request["status"] == 500
    assert record["level"] == "ERROR" and record["function_name"] == "skyshelf-metadata" and "Traceback" in record["exception"]


def test_a_damaged_store_is_a_502_naming_it(call: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "catalog.json").write_text(json.dumps({"format": "skyshelf-catalog", "version": 1, "release": "r"}))
    monkeypatch.setenv("SKYSHELF_STORE", str(tmp_path))
    status, body, lines = _log_lines(call, "metadata_node")
    assert status == 502 and "catalog.json is damaged" in json.loads(body)["detail"]
    assert [r["level"] for r in lines if r.get("request_id") == "Qx3bYhd5joEEJ9C="] == ["ERROR", "INFO"]  # the error, the request's line


def _posted(body: str, encoded: bool, **headers: str) -> dict[str, Any]:
    """A POST of column names to a demo table's partition, as API Gateway passes it."""
    event = json.loads((EVENTS / "table_full_csv.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/v1/table/partition/tables/temperature_log"
    event["rawQueryString"], event["queryStringParameters"] = "partition=0", {"partition": "0"}
    event["requestContext"]["http"]["method"] = "POST"
    event["headers"].update(headers)
    event["body"], event["isBase64Encoded"] = body, encoded
    return event


def test_a_posted_body_that_is_not_utf8_json_is_a_400(demo: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """API Gateway base64-encodes a body it takes for binary: bytes that are not UTF-8, gzip'd
    JSON or base64 that is not were a 500 (Powertools' decoded_body), logged as an error and
    counted as one; Tiled answers 400. A body that is valid base64 of a JSON list works."""
    from handlers import tables

    monkeypatch.setenv("SKYSHELF_STORE", demo.store.url)
    for body, encoded, headers in ((base64.b64encode(b"\xff\xfe[").decode(), True, {}),
                                   (base64.b64encode(gzip.compress(b'["setpoint"]')).decode(), True, {"content-encoding": "gzip"}),
                                   ("!!!", True, {})):
        result = tables.lambda_handler(_posted(body, encoded, **headers), Context("skyshelf-tables"))
        assert result["statusCode"] == 400 and json.loads(result["body"])["detail"].startswith("the body of"), result
    good = tables.lambda_handler(_posted(base64.b64encode(b'["setpoint"]').decode(), True, accept="text/csv"), Context("skyshelf-tables"))
    data = base64.b64decode(good["body"])
    data = gzip.decompress(data) if good["headers"].get("Content-Encoding") == "gzip" else data
    assert good["statusCode"] == 200 and data.decode().splitlines()[0].strip('"') == "setpoint", good


def test_an_event_of_another_payload_format_is_a_json_500_saying_so(demo: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """A payload 1.0 integration (or an empty event) raised a KeyError out of the handler: API
    Gateway's bare 500, and the log blamed the browse page's route."""
    from handlers import metadata

    monkeypatch.setenv("SKYSHELF_STORE", demo.store.url)
    v1 = {"version": "1.0", "resource": "/{proxy+}", "path": "/api/v1/", "httpMethod": "GET", "headers": {}, "requestContext": {"requestId": "x"}}
    for event in (v1, {}):
        result = metadata.lambda_handler(event, Context("skyshelf-metadata"))
        assert result["statusCode"] == 500 and "payload format 2.0" in json.loads(result["body"])["detail"], result
