"""A small run of the load benchmark (benchmarks/load.py): the mixed workload (metadata, a filtered
search, array blocks, PNG, CSV) against real ``publish serve`` processes of 1 and 2 workers, at 1
and 8 clients; no request fails and every route is answered."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import Published, run_build
from .test_build_demo import demo_config

ROOT = Path(__file__).resolve().parents[1]
ARRAY = "scans/scan_0001/entry/data/data"


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("skyshelf_load_benchmark", ROOT / "benchmarks" / "load.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return run_build(tmp_path_factory.mktemp("load-build"), demo_config(demo_dir))


def test_a_small_load_run_has_no_errors_and_answers_every_route(demo: Published, tmp_path: Path) -> None:
    load = load_benchmark()
    levels = [1, 8]
    tallies = load.measure(demo.store.url, levels, seconds=0.75, max_requests=300, rounds=1, workers=2, folder=tmp_path)
    assert set(tallies) == {(level, w) for level in levels for w in (1, 2)}
    for key, tally in tallies.items():
        assert tally.errors == dict.fromkeys(load.ROUTES, 0), (key, tally.errors)
        assert all(tally.latencies[name] for name in load.ROUTES), (key, {n: len(v) for n, v in tally.latencies.items()})
        assert tally.requests == sum(len(v) for v in tally.latencies.values()) and tally.rate > 0
    table = load.report(tallies, levels, 2)
    assert "| 8 | 2 |" in table and "2 workers / 1" in table


def test_requests_answered_side_by_side_in_one_process_each_get_their_own_answer(demo: Published) -> None:
    """``publish serve`` runs the Lambda handlers in threads, side by side; Powertools keeps the
    request being resolved in shared places (handlers/resolver_state.py). Blocks of two arrays and
    the metadata of others, asked at once: every answer is the one asked for."""
    import asyncio

    import httpx

    from handlers.local import LocalServer

    frames = "frames/KCl_300K_00007"
    requests = [f"/api/v1/array/block/{ARRAY}?block={i},0,0" for i in range(12)] + \
               [f"/api/v1/array/block/{frames}?block={i},0,0" for i in range(4)] + \
               ["/api/v1/metadata/scans", f"/api/v1/metadata/{frames}", "/api/v1/search/tables", "/api/v1/array/full/tables/temperature_log/setpoint"]
    server = LocalServer(demo.store.url, "127.0.0.1", 0).start()
    try:
        expected = {path: httpx.get(server.url + path, follow_redirects=True).content for path in requests}

        async def run() -> list[str]:
            wrong: list[str] = []
            async with httpx.AsyncClient(base_url=server.url, follow_redirects=True, limits=httpx.Limits(max_connections=32)) as http:
                async def client(k: int) -> None:
                    for i in range(30):
                        path = requests[(k + i) % len(requests)]
                        answer = await http.get(path)
                        if answer.content != expected[path]:
                            wrong.append(f"{path}: {answer.status_code} {answer.text[:100]}")

                await asyncio.gather(*(client(k) for k in range(32)))
            return wrong

        wrong = asyncio.run(run())
    finally:
        server.stop()
    assert not wrong, wrong[:5]
