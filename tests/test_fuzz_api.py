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
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from handlers.local import LocalServer

from .conftest import run_build
from .test_build_demo import demo_config

EXAMPLES = int(os.environ.get("SKYSHELF_FUZZ_EXAMPLES", "15"))
#: What the fuzzing saw, for the closing figures: requests sent and 5xx answers.
SEEN = {"requests": 0, "5xx": 0}


@pytest.fixture(scope="module")
def served(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    published = run_build(tmp_path_factory.mktemp("fuzz"), demo_config(demo_dir))
    server = LocalServer(published.store.url, "127.0.0.1", 0).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def api(served: str) -> Any:
    return schemathesis.openapi.from_url(f"{served}/api/v1/openapi.json")


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
    print(f"fuzzed {len(operations)} operations: {SEEN['requests']} requests, {SEEN['5xx']} answered 5xx")
    assert not failures, "\n\n".join(failures)
