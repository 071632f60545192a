"""A store's catalog documents damaged or lost (a review helper's cases): gc deleted data the
current release reuses when that release's own copy of its catalog was gone; rollback switched to
a damaged copy (catalog.json left unreadable); a damaged catalog.json or manifest gave raw
tracebacks. Now gc refuses what it cannot be sure of, rollback checks the copy first, and each
names the damaged object; the releases can still be listed, to roll back to one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from publisher.build import build
from publisher.config import load_pipeline
from publisher.errors import StoreError
from publisher.releases import gc, list_releases, rollback
from publisher.stores import Store

from .conftest import write_pipeline


def _built(tmp_path: Path) -> tuple[Store, list[str], Path]:
    """Releases A (a, b, c), B (a changed), then, rolled back to A, C (c changed: a and b reused from A)."""
    (tmp_path / "tables").mkdir()
    for name in "abc":
        (tmp_path / "tables" / f"{name}.csv").write_text("t,v\n1,2\n3,4\n")
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "tables/*.csv", "into": "tables"}], "output": {"store": str(tmp_path / "site")}}))
    store = Store(str(tmp_path / "site"))
    ids = [build(pipeline, workers=1).release]
    (tmp_path / "tables" / "a.csv").write_text("t,v\n9,9\n")
    ids.append(build(pipeline, workers=1).release)
    rollback(store, ids[0])
    (tmp_path / "tables" / "a.csv").write_text("t,v\n1,2\n3,4\n")
    os.utime(tmp_path / "tables" / "a.csv", (1577836800, 1577836800))
    (tmp_path / "tables" / "c.csv").write_text("t,v\n7,7\n")
    ids.append(build(pipeline, workers=1).release)
    return store, ids, tmp_path / "site"


def _data_urls(site: Path) -> list[str]:
    import pyarrow.parquet as pq

    catalog = json.loads((site / "catalog.json").read_text())
    return [url for url in pq.read_table(site / catalog["index"]).column("data_url").to_pylist() if url]


@pytest.mark.parametrize("damage", ["gone", "{}"])
def test_gc_refuses_when_the_current_releases_copy_is_damaged(tmp_path: Path, damage: str) -> None:
    store, (a, _, c), site = _built(tmp_path)
    copy = site / "releases" / c / "catalog.json"
    copy.unlink() if damage == "gone" else copy.write_text(damage)
    with pytest.raises(StoreError, match=f"the current release {c} has no readable catalog copy or manifest"):
        gc(store, keep=1)
    assert all((site / url).exists() for url in _data_urls(site)), "gc deleted data the current release serves"
    assert any(a in url for url in _data_urls(site))  # (some of it A's)


@pytest.mark.parametrize("damage", ["{}", "[1]", '{"release": "x"}'])
def test_rollback_to_a_damaged_copy_leaves_the_catalog_as_it_was(tmp_path: Path, damage: str) -> None:
    store, (a, _, _), site = _built(tmp_path)
    (site / "releases" / a / "catalog.json").write_text(damage)
    before = (site / "catalog.json").read_bytes()
    with pytest.raises(StoreError, match=f"releases/{a}/catalog.json is not release {a}'s catalog"):
        rollback(store, a)
    assert (site / "catalog.json").read_bytes() == before


@pytest.mark.parametrize("damage", ["{bad", "", "[]"])
def test_a_damaged_catalog_is_named_and_a_rollback_mends_it(tmp_path: Path, damage: str) -> None:
    store, (a, b, c), site = _built(tmp_path)
    (site / "catalog.json").write_text(damage)
    with pytest.raises(StoreError, match=r"catalog\.json is not a Skyshelf catalog"):
        gc(store, keep=1)
    with pytest.raises(StoreError, match=r"catalog\.json is not a Skyshelf catalog"):
        list_releases(store)
    assert [r.id for r in list_releases(store, damaged=True)] == [a, b, c]
    rollback(store, c)
    assert json.loads((site / "catalog.json").read_text())["release"] == c


def test_a_damaged_manifest_stops_gc(tmp_path: Path) -> None:
    store, (_, _, c), site = _built(tmp_path)
    (site / "releases" / c / "manifest.json").write_text("{}")  # (it was a raw KeyError: 'items')
    with pytest.raises(StoreError, match=f"release {c} has no manifest; refusing"):
        gc(store, keep=1)
    assert all((site / url).exists() for url in _data_urls(site))


def test_a_store_with_no_releases_is_said_to_have_none(tmp_path: Path) -> None:
    """A mistyped store looked like an empty one: nothing printed, or "kept 0 releases", exit 0."""
    from click.testing import CliRunner

    from publisher.cli import main

    for command in (["releases"], ["gc"]):
        result = CliRunner().invoke(main, [*command, "--store", str(tmp_path / "no-such-store")])
        assert result.exit_code == 0 and "warning: no releases in " in result.stderr and "is it the store you meant?" in result.stderr
