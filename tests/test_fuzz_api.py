"""The whole HTTP surface fuzzed from its own OpenAPI document (schemathesis, on Hypothesis): every
route of ``publish serve`` over the demo catalog, with generated path parameters, queries and
headers, valid by the document (positive) and not (negative). No answer may be a 5xx, and each
must match the document (status, content type, body schema); a request the document calls
invalid is refused; a client's mistake is a 4xx with a JSON ``detail``. Bounded (examples per route) so
the suite stays fast; ``SKYSHELF_FUZZ_EXAMPLES`` asks for more."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES

from handlers.local import LocalServer

from .conftest import run_build
from .test_build_demo import demo_config

EXAMPLES = int(os.environ.get("SKYSHELF_FUZZ_EXAMPLES", "15"))
#: What the fuzzing saw, for the closing figures: requests sent and 5xx answers.
SEEN = {"requests": 0, "2xx": 0, "4xx": 0, "5xx": 0}


@pytest.fixture(scope="module")
def served(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    published = run_build(tmp_path_factory.mktemp("fuzz"), demo_config(demo_dir))
    server = LocalServer(published.store.url, "127.0.0.1", 0).start()
    yield server.url
    server.stop()


#: What a request the document calls invalid may answer: schemathesis's list, and 414 (a value past
#: its ``maxLength`` can take the request past API Gateway's 10,240 bytes, which is refused first).
REJECTIONS = [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "414"]


@pytest.fixture(scope="module")
def api(served: str) -> Any:
    config = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}})
    return schemathesis.openapi.from_url(f"{served}/api/v1/openapi.json", config=config)


def test_no_request_gets_a_5xx_or_an_answer_off_its_schema(api: Any, served: str) -> None:
    """Each operation of the document in turn, ``EXAMPLES`` generated requests each (schemathesis's
    pytest plugin does not run under pytest 9, so its Hypothesis strategies are driven here)."""
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 20, [o.label for o in operations]
    failures: list[str] = []
    for operation, mode in [(o, m) for o in operations for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]:

        @given(operation.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def one(case: Any) -> None:
            response = case.call(base_url=served, timeout=60)
            SEEN["requests"] += 1
            SEEN["5xx"] += response.status_code >= 500
            SEEN["2xx"] += 200 <= response.status_code < 300
            SEEN["4xx"] += 400 <= response.status_code < 500
            assert response.status_code < 500, (case.method, case.formatted_path, case.query, response.status_code, response.text[:300])
            media = response.headers.get("content-type") or [""]  # (schemathesis: each header's values)
            if 400 <= response.status_code < 500 and (media[0] if isinstance(media, list) else media).startswith("application/json"):
                assert "detail" in response.json(), response.text[:300]
            case.validate_response(response)

        try:
            one()
        except Unsatisfiable:  # nothing in the document can be made invalid (no parameters, or only free strings)
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # noqa: BLE001 (every operation's failure collected, then all reported)
            failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    print(f"fuzzed {len(operations)} operations: {SEEN['requests']} requests, {SEEN['2xx']} answered 2xx, "
          f"{SEEN['4xx']} 4xx, {SEEN['5xx']} 5xx; {len(failures)} failed")
    assert not failures, "\n\n".join(failures)


#: Requests whose answers exist (random paths mostly find no node): each answer is held to the
#: document's response schema for its route and status (the envelope, Tiled's distinct, errors).
REAL = [
    ("GET /api/v1/search/{path}", {"path": ""}, {"page[limit]": 2, "sort": "-"}, 200),
    ("GET /api/v1/search/{path}", {"path": "scans"}, {"filter[eq][condition][key]": "scan", "filter[eq][condition][value]": 1}, 200),
    ("GET /api/v1/search-deep/{path}", {"path": ""}, {"max_depth": 2, "page[limit]": 3}, 200),
    ("GET /api/v1/metadata/{path}", {"path": "scans/scan_0001/entry/data/data"}, {}, 200),
    ("GET /api/v1/metadata/{path}", {"path": "tables/temperature_log"}, {"fields": ["structure"]}, 200),
    ("GET /api/v1/distinct/{path}", {"path": ""}, {"structure_families": True, "counts": True, "specs": True}, 200),
    ("GET /api/v1/distinct/{path}", {"path": "scans"}, {"metadata": "scan", "counts": True}, 200),
    ("GET /api/v1", {}, {}, 200), ("GET /healthz", {}, {}, 200),
    ("GET /api/v1/array/full/{path}", {"path": "scans/scan_0001/entry/data/th"}, {"format": "json", "slice": "::-2"}, 200),
    ("GET /api/v1/table/full/{path}", {"path": "tables/temperature_log"}, {"format": "csv", "slice": "0:3"}, 200),
    ("GET /api/v1/array/full/{path}", {"path": "scans/scan_0001/entry/data/th"}, {"slice": "99"}, 400),
    ("GET /api/v1/search/{path}", {"path": ""}, {"filter[eq][condition][key]": "x"}, 400),
    ("GET /api/v1/metadata/{path}", {"path": "no/such/node"}, {}, 404),
    ("GET /api/v1/array/full/{path}", {"path": "scans/scan_0001/entry/data/th"}, {"format": "xlsx"}, 406),
]


@pytest.mark.parametrize(("label", "path", "query", "status"), REAL, ids=[f"{r[0]} {r[1]} {r[3]}" for r in REAL])
def test_real_answers_match_their_route_schemas(api: Any, served: str, label: str, path: dict[str, str], query: dict[str, Any],
                                                status: int) -> None:
    operation = api.find_operation_by_label(label)
    case = operation.Case(path_parameters=path or None, query=query)
    response = case.call(base_url=served, timeout=60)
    assert response.status_code == status, response.text[:300]
    case.validate_response(response)
