"""The published formats (:mod:`publisher.formats`) read back as what the build wrote, and the
catalog's typed reads (:meth:`Catalog.entry`, :meth:`Catalog.entries`)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from publisher.catalog import Catalog
from publisher.cli import main
from publisher.cli.store_cmd import _xarray_hint
from publisher.formats import BuildReport, CatalogDocument, Entry, Manifest
from publisher.structures import ArrayStructure, ContainerStructure, TableStructure

from .conftest import Published, run_build
from .test_build_demo import demo_config


@pytest.fixture(scope="module")
def published(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return run_build(tmp_path_factory.mktemp("formats"), demo_config(demo_dir))


def test_release_documents_round_trip(published: Published) -> None:
    """catalog.json, the manifest and the build report parse into their classes and write back
    the same JSON: the next build reads its predecessor's manifest as it was written."""
    store = published.store
    raw = json.loads(store.read_bytes("catalog.json"))
    catalog = CatalogDocument.from_json(raw)
    assert catalog.to_json() == raw and list(catalog.to_json()) == list(raw)
    assert catalog.release == published.report.release and catalog.node_count == sum(published.report.nodes.values())
    manifest_raw = json.loads(store.read_bytes(catalog.manifest))  # type: ignore[arg-type]
    manifest = Manifest.from_json(manifest_raw)
    assert manifest.to_json() == manifest_raw and manifest.release == catalog.release
    assert manifest.nodes == Counter(entry["family"] for item in manifest.items for entry in item.entries)
    assert "climate/sst" in {item.node_path for item in manifest.items}
    report_raw = json.loads(store.read_bytes(catalog.report))  # type: ignore[arg-type]
    assert BuildReport.from_json(report_raw).to_json() == report_raw


def test_catalog_entries_are_typed(published: Published) -> None:
    """Each family's entry carries the structure class the build wrote, equal to the dict read."""
    catalog = Catalog.open(published.store)
    rows = {row["path"]: row for row in published.entries()}
    for path, kind in (("", ContainerStructure), ("climate/sst", ContainerStructure), ("climate/sst/sst", ArrayStructure),
                       ("tables/temperature_log", TableStructure)):
        entry = catalog.entry(path)
        assert isinstance(entry, Entry) and isinstance(entry.structure, kind), path
        assert entry.to_json() == rows[path]  # parsed, it writes back the row the index holds
    sst = catalog.entry("climate/sst/sst")
    assert sst.structure.shape == [6, 18, 36] and sst.structure.data_type.to_numpy_str() == "<f8"  # type: ignore[union-attr]
    children = list(catalog.entries("climate"))
    assert [e.to_json() for e in children] == [row for row in rows.values() if row["parent"] == "climate"]
    assert [e.path for e in catalog.entries("climate", 0, 1)] == [children[0].path]


def test_ls_and_the_serve_hint_read_typed_entries(published: Published) -> None:
    """``publish ls -l -r`` describes each family from its structure; ``publish serve`` points
    xarray at the first array with named dimensions."""
    listing = CliRunner().invoke(main, ["ls", "--store", published.store.url, "-l", "-r", "climate"])
    assert listing.exit_code == 0, listing.output
    assert "sst/" in listing.output and "f8 [6, 18, 36]" in listing.output
    tables = CliRunner().invoke(main, ["ls", "--store", published.store.url, "-l", "tables"])
    assert "rows × " in tables.output
    hint = _xarray_hint(Catalog.open(published.store))
    assert hint is not None and hint[0].endswith(".zarr")


def test_releases_and_gc_commands(published: Published) -> None:
    """``publish releases`` lists the release from its typed catalog document; ``publish gc``
    with one release keeps it."""
    store = ["--store", published.store.url]
    listing = CliRunner().invoke(main, ["releases", *store])
    assert listing.exit_code == 0, listing.output
    assert f"* {published.report.release}  {sum(published.report.nodes.values())} nodes, created" in listing.output
    collected = CliRunner().invoke(main, ["gc", *store, "--keep", "1"])
    assert collected.exit_code == 0, collected.output
    assert "kept 1 releases; deleted 0 prefixes" in collected.output
