"""A damaged published index (a truncated upload, a hand edit, a half-copied folder) is the
store's fault: the server answers 502 with a detail naming the object and what is wrong with
it, never a 500 ``internal error``, and the healthy parts of the catalog keep answering."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from handlers.local import LocalServer

from .conftest import Published, run_build


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder = tmp_path_factory.mktemp("damaged")
    (folder / "runs").mkdir()
    for i in range(3):
        np.save(folder / "runs" / f"r{i}.npy", np.arange(12.0).reshape(3, 4) + i)
    return run_build(folder, {"sources": [{"path": "runs"}]})


def _one(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern))
    assert found, pattern
    return found[0]


def _catalog(root: Path) -> dict:
    return json.loads((root / "catalog.json").read_text())


def _drop_index(root: Path) -> str:
    document = _catalog(root)
    del document["index"], document["index_json"]
    (root / "catalog.json").write_text(json.dumps(document))
    return "catalog.json is damaged: it has no 'index"


def _drop_page_size(root: Path) -> str:
    document = _catalog(root)
    del document["index_json"]["page_size"]
    (root / "catalog.json").write_text(json.dumps(document))
    return "catalog.json is damaged: it has no 'page_size'"


def _truncate_catalog(root: Path) -> str:
    raw = (root / "catalog.json").read_bytes()
    (root / "catalog.json").write_bytes(raw[: len(raw) // 2])
    return "catalog.json is damaged: not JSON"


def _truncate_shards(root: Path) -> str:
    for shard in root.glob("releases/*/index/nodes/*.json"):
        shard.write_bytes(shard.read_bytes()[:10])
    return "is damaged: not JSON"


def _list_pages(root: Path) -> str:
    for page in root.glob("releases/*/index/children/**/*.json"):
        page.write_text("[]")
    return "is damaged: a JSON list, not an object"


def _rows_without_keys(root: Path) -> str:
    for page in root.glob("releases/*/index/children/**/*.json"):
        body = json.loads(page.read_text())
        body["entries"] = [{"path": e["path"]} for e in body["entries"]]
        page.write_text(json.dumps(body))
    return "is damaged: it has no 'key'"


@pytest.mark.parametrize("damage", [_drop_index, _drop_page_size, _truncate_catalog, _truncate_shards, _list_pages, _rows_without_keys])
def test_a_damaged_index_is_a_502_naming_the_object(built: Published, tmp_path: Path, damage: Callable[[Path], str]) -> None:
    root = tmp_path / "site"
    shutil.copytree(built.store.url, root, symlinks=True)
    assert _one(root, "releases/*/index/nodes/*.json") and _one(root, "releases/*/index/children/**/*.json")
    expected = damage(root)
    server = LocalServer(str(root), "127.0.0.1", 0).start()
    try:
        answers = [httpx.get(f"{server.url}/api/v1/{route}") for route in ("metadata/runs", "search/runs", "search/", "metadata/runs/r1")]
    finally:
        server.stop()
    damaged = [a for a in answers if a.status_code != 200]
    assert damaged, "the damage must show in some answer"
    for answer in damaged:
        assert answer.status_code == 502, (answer.request.url, answer.status_code, answer.text)
        detail = answer.json()["detail"]
        assert expected in detail and "Traceback" not in detail, detail
