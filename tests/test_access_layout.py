"""A catalog with private nodes publishes what anyone may read, and only that, where anyone can
read it: the public catalog, node index and data hold no private node (not its data, metadata or
name, not a count that includes it); the full view and private data live under ``private/``,
one prefix per access class, so read access can be granted by prefix."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
import zarr

from publisher.auth.principal import ANONYMOUS, Principal
from publisher.catalog import Catalog
from publisher.formats import PRIVATE_CATALOG_KEY
from publisher.releases import gc, list_releases, rollback
from publisher.stores import Store

from .conftest import Published, run_build

#: Words that only private nodes carry (names, metadata values): none may appear outside private/.
SECRETS = ("embargoed_scan", "EMBARGOED-VALUE", "classified_group", "CLASSIFIED-VALUE", "untagged_notes", "UNTAGGED-VALUE")

RULES = [
    {"match": "open", "access_tags": ["public"]},
    {"match": "proposals", "access_tags": ["public"]},
    {"match": "proposals/p1", "access_tags": ["p1"]},
    {"match": "shared", "access_tags": ["public"]},
    {"match": "shared/mixed/entry/classified_group", "access_tags": ["staff"]},
]


def make_sources(folder: Path, value: float = 1.0) -> None:
    (folder / "open").mkdir()
    np.save(folder / "open" / "frame.npy", np.arange(24.0).reshape(4, 6) * value)
    (folder / "proposals" / "p1").mkdir(parents=True)
    np.save(folder / "proposals" / "p1" / "embargoed_scan.npy", np.ones((3, 3)) * value)
    (folder / "proposals" / "p1" / "embargoed_scan.npy.json").write_text(json.dumps({"sample": "EMBARGOED-VALUE"}))
    (folder / "shared").mkdir()
    with h5py.File(folder / "shared" / "mixed.h5", "w") as f:
        entry = f.create_group("entry")
        entry.attrs["title"] = "a public title"
        entry.create_dataset("counts", data=np.arange(10) * value)
        secret = entry.create_group("classified_group")
        secret.attrs["note"] = "CLASSIFIED-VALUE"
        secret.create_dataset("signal", data=np.arange(5.0) * value)
    (folder / "misc").mkdir()
    (folder / "misc" / "untagged_notes.csv").write_text("a,b\n1,UNTAGGED-VALUE\n")


def config() -> dict:
    return {"name": "mixed access", "sources": [{"path": "open"}, {"path": "proposals"}, {"path": "shared"}, {"path": "misc"}],
            "rules": RULES, "access": {"groups": {"grp-p1": ["p1"]}}}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder = tmp_path_factory.mktemp("access-layout")
    make_sources(folder)
    return run_build(folder, config())


def _public_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.relative_to(root).as_posix().startswith("private/")]


def test_public_objects_hold_no_private_node(built: Published) -> None:
    root = Path(built.store.url)
    public = _public_files(root)
    assert public and any(p.name == "nodes.parquet" for p in public)
    for path in public:
        raw = path.read_bytes()
        for word in SECRETS:
            assert word.encode() not in raw, f"{word!r} in public object {path.relative_to(root)}"
    document = json.loads((root / "catalog.json").read_text())
    assert "access" not in document and document["manifest"] is None and document["report"] is None


def test_the_public_index_lists_public_nodes_and_counts_only_them(built: Published) -> None:
    public = Catalog.open(built.store)
    import pyarrow.parquet as pq

    paths = set(pq.read_table(built.store.path(public.info.index_key), columns=["path"]).column("path").to_pylist())
    assert len(paths) < len(built.entries())  # built.entries(): the full view's rows
    assert {"open/frame", "shared/mixed/entry/counts", "proposals"} <= paths
    assert not any(word in p for p in paths for word in ("embargoed", "classified", "misc"))
    assert public.entry("proposals").structure.count == 0
    assert [e.key for e in public.entries("shared/mixed/entry")] == ["counts"]
    assert public.entry("").structure.count == 3  # open, proposals, shared: not misc


def test_the_full_view_is_private_and_tags_every_node(built: Published) -> None:
    full = Catalog.open_full(built.store)
    assert full.document is not Catalog.open(built.store).document
    assert full.info.access is not None and full.info.access["default"] == "private"
    assert full.info.access["groups"] == {"grp-p1": ["p1"]}
    assert full.entry("proposals/p1/embargoed_scan").access_tags == ["p1"]
    assert full.entry("proposals/p1/embargoed_scan").metadata["sample"] == "EMBARGOED-VALUE"
    assert full.entry("shared/mixed/entry/classified_group/signal").access_tags == ["staff"]
    assert full.entry("misc/untagged_notes").access_tags == []
    assert full.entry("open/frame").access_tags == ["public"] and full.entry("proposals").structure.count == 1
    assert built.store.exists(PRIVATE_CATALOG_KEY) and full.info.manifest.startswith("private/releases/")


def test_private_data_lives_under_one_prefix_per_access_class(built: Published) -> None:
    full = Catalog.open_full(built.store)
    scan = full.entry("proposals/p1/embargoed_scan").data_url
    signal = full.entry("shared/mixed/entry/classified_group/signal").data_url
    notes = full.entry("misc/untagged_notes").data_url
    assert scan.startswith("private/") and signal.startswith("private/") and notes.startswith("private/")
    assert len({u.split("/")[1] for u in (scan, signal, notes)}) == 3  # three access classes
    assert full.entry("open/frame").data_url.startswith("releases/")
    root = Path(built.store.url)
    np.testing.assert_array_equal(zarr.open_array(str(root / scan), mode="r")[...], np.ones((3, 3)))
    # the public file's hierarchy opens directly, and its consolidated metadata knows nothing private
    public_file = full.entry("shared/mixed").data_url
    assert public_file.startswith("releases/")
    group = zarr.open_group(str(root / public_file), mode="r")
    assert sorted(group["entry"].keys()) == ["counts"]
    np.testing.assert_array_equal(xr.open_zarr(str(root / public_file), group="entry")["counts"].values, np.arange(10))


def test_who_may_read_what_follows_the_tags_along_the_path(built: Published) -> None:
    full = Catalog.open_full(built.store)
    p1, staff = Principal("apikey", "k1", frozenset({"p1"})), Principal("apikey", "k2", frozenset({"staff"}))

    def chain(path: str) -> list[list[str] | None]:
        parts = path.split("/")
        return [full.entry("/".join(parts[:i])).access_tags for i in range(1, len(parts) + 1)]

    for path, who in [("open/frame", {ANONYMOUS, p1, staff}), ("proposals/p1/embargoed_scan", {p1}),
                      ("shared/mixed/entry/classified_group/signal", {staff}), ("misc/untagged_notes", set()),
                      ("shared/mixed/entry/counts", {ANONYMOUS, p1, staff})]:
        assert {p for p in (ANONYMOUS, p1, staff) if p.can_read_chain(chain(path))} == who, path


def test_releases_rollback_and_gc_keep_both_views(built: Published, tmp_path: Path) -> None:
    make_sources(tmp_path)
    first = run_build(tmp_path, config())
    first_scan = Catalog.open_full(first.store).entry("proposals/p1/embargoed_scan").data_url
    assert first_scan.startswith("private/") and first.report.release in first_scan
    (tmp_path / "proposals" / "p1" / "embargoed_scan.npy").unlink()
    np.save(tmp_path / "proposals" / "p1" / "embargoed_scan.npy", np.zeros((3, 3)))
    second = run_build(tmp_path, config())
    store = Store(str(tmp_path / "site"))
    releases = list_releases(store)
    assert [r.id for r in releases] == [first.report.release, second.report.release]
    assert all(r.catalog is not None and r.catalog.manifest for r in releases)
    rollback(store, first.report.release)
    assert Catalog.open(store).release == Catalog.open_full(store).release == first.report.release
    rollback(store, second.report.release)
    old_private = Catalog.open_full(store).entry("proposals/p1/embargoed_scan").data_url
    assert second.report.release in old_private
    result = gc(store, keep=1)
    assert not result["problems"], result
    left = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("*") if p.is_file()}
    assert not any(key.startswith(f"private/releases/{first.report.release}/") for key in left)  # its full index
    assert not any(key.startswith(first_scan) for key in left)  # its private data no kept release uses
    signal = Catalog.open_full(store).entry("shared/mixed/entry/classified_group/signal").data_url
    assert first.report.release in signal and any(key.startswith(signal) for key in left)  # reused: kept
    full = Catalog.open_full(store)
    np.testing.assert_array_equal(zarr.open_array(store.path(full.entry("proposals/p1/embargoed_scan").data_url), mode="r")[...],
                                  np.zeros((3, 3)))


def test_a_catalog_without_private_nodes_has_no_private_prefix(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir()
    np.save(tmp_path / "open" / "a.npy", np.arange(3))
    published = run_build(tmp_path, {"sources": [{"path": "open"}], "rules": [{"match": "**", "access_tags": ["public"]}]})
    assert not (Path(published.store.url) / "private").exists()
    assert published.node("open/a")["access_tags"] == ["public"]
    plain = run_build(tmp_path, {"sources": [{"path": "open"}]})
    assert plain.node("open/a")["access_tags"] is None and not (Path(plain.store.url) / "private").exists()
