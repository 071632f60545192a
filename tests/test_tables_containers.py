"""Table columns, container export and bounded table/container answers, through the real tiled
client against ``publish serve`` of the demo (issue 11)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import httpx
import numpy as np
import pandas as pd
import pytest

from .conftest import Published, run_build
from .test_build_demo import demo_config


@pytest.fixture(scope="module")
def demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return run_build(tmp_path_factory.mktemp("tables-containers-build"), demo_config(demo_dir))


@pytest.fixture(scope="module")
def server(demo: Published) -> Iterator[str]:
    from handlers.local import LocalServer

    srv = LocalServer(demo.store.url, "127.0.0.1", 0).start()
    yield srv.url
    srv.stop()


@pytest.fixture(scope="module")
def client(server: str):  # noqa: ANN201
    from tiled.client import from_uri

    return from_uri(f"{server}/api/v1")


@pytest.fixture
def limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Set SKYSHELF_MAX_ANSWER_BYTES for one test (the local server runs in this process)."""
    yield lambda n: monkeypatch.setenv("SKYSHELF_MAX_ANSWER_BYTES", str(n))


def test_table_columns_are_array_children(client, demo_dir: Path) -> None:  # noqa: ANN001
    """``table[column]`` as the tiled client asks for it (metadata/<table>/<column>, then the
    array's links): numbers and strings equal to the pandas column; a missing one is a KeyError."""
    table = client["tables/temperature_log"]
    frame = table.read()  # the table as the tiled client reads it (dtypes from the Arrow schema)
    source = pd.read_csv(demo_dir / "tables" / "temperature_log.csv", comment="#")
    assert list(frame.columns) == list(source.columns)
    kinds = set()
    for name in frame.columns:
        got = table[name].read()
        expected = frame[name].to_numpy()
        assert got.shape == expected.shape == (len(source),), name
        kinds.add(got.dtype.kind)
        if got.dtype.kind == "U":
            assert got.tolist() == [str(v) for v in expected], name
        else:
            np.testing.assert_array_equal(got, expected.astype(got.dtype))
    assert "f" in kinds
    np.testing.assert_allclose(table["sample_temperature"].read(), source["sample_temperature"])
    setpoint = table["setpoint"]
    np.testing.assert_array_equal(setpoint[3:9], frame["setpoint"].to_numpy()[3:9])
    with pytest.raises(KeyError):
        table["no_such_column"]


def test_column_blocks_are_partitions(tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table in several partitions: the column's chunks are its partitions, each a block."""
    from handlers.local import LocalServer
    from tiled.client import from_uri

    data = tmp_path / "data"
    data.mkdir()
    frame = pd.DataFrame({"x": np.arange(25, dtype="int64"), "name": [f"n{i}" * (i % 4 + 1) for i in range(25)]})
    frame.to_csv(data / "t.csv", index=False)
    site = run_build(tmp_path, {"sources": [{"path": "data", "into": ""}],
                                "output": {"store": str(tmp_path / "site"), "table_partition_rows": 10}}).store.url
    monkeypatch.setenv("SKYSHELF_STORE", site)  # LocalServer sets it for the process: put the module's server's back after
    srv = LocalServer(site, "127.0.0.1", 0).start()
    try:
        table = from_uri(f"{srv.url}/api/v1")["t"]
        assert table.structure().npartitions == 3
        x = table["x"]
        assert x.chunks == ((10, 10, 5),)
        np.testing.assert_array_equal(x.read_block((1,)), frame["x"].to_numpy()[10:20])
        np.testing.assert_array_equal(x.read(), frame["x"].to_numpy())
        assert table["name"].read_block((2,)).tolist() == frame["name"].tolist()[20:]
        assert table["name"].read().tolist() == frame["name"].tolist()
        bad = httpx.get(f"{srv.url}/api/v1/column/full/t/x?block=3")
        assert bad.status_code == 400 and "partitions" in bad.json()["detail"]
    finally:
        srv.stop()


def _published_arrays(demo: Published, path: str) -> dict[str, np.ndarray]:
    from publisher.access.arrays import published_array

    out = {}
    for entry in demo.entries():
        if entry["family"] == "array" and entry["path"].startswith(path + "/"):
            out[entry["path"][len(path) + 1:]] = published_array(demo.store, entry["data_url"]).read()
    return out


def test_container_export_as_hdf5(client, demo: Published, tmp_path: Path) -> None:  # noqa: ANN001
    """``container.export("x.h5")``: every array below it, equal to the published one, metadata
    as attributes; a table as a group of column datasets."""
    scan = client["scans/scan_0001"]
    scan.export(tmp_path / "scan.h5")
    arrays = _published_arrays(demo, "scans/scan_0001")
    assert arrays
    with h5py.File(tmp_path / "scan.h5") as f:
        for key, values in arrays.items():
            dataset = f[key]
            got = dataset.asstr()[()] if h5py.check_string_dtype(dataset.dtype) else dataset[()]
            np.testing.assert_array_equal(got, values)
        entry = demo.node("scans/scan_0001/entry")
        for key, value in entry["metadata"].items():
            stored = f["entry"].attrs[key]
            assert (json.loads(stored) if isinstance(value, (dict, type(None))) else stored) == value or np.array_equal(stored, value)
    client["tables"].export(tmp_path / "tables.h5")
    with h5py.File(tmp_path / "tables.h5") as f:
        expected = client["tables/temperature_log"].read()
        group = f["temperature_log"]
        assert sorted(group) == sorted(expected.columns)
        np.testing.assert_array_equal(group["setpoint"][()], expected["setpoint"].to_numpy())
    client["scans"].export(tmp_path / "one.h5", fields=["scan_0002"])
    with h5py.File(tmp_path / "one.h5") as f:
        assert list(f) == ["scan_0002"]


def test_container_export_as_json_is_tiled_outline(client, tmp_path: Path) -> None:  # noqa: ANN001
    client["tables"].export(tmp_path / "t.json")
    outline = json.loads((tmp_path / "t.json").read_text())
    columns = client["tables/temperature_log"].columns
    assert outline["contents"]["temperature_log"]["contents"] == {c: {"contents": {}, "metadata": {}} for c in columns}


def test_container_past_the_limit_is_a_4xx_with_advice(client, server: str, limit) -> None:  # noqa: ANN001
    limit(1000)
    response = httpx.get(f"{server}/api/v1/container/full/scans?format=h5")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "SKYSHELF_MAX_ANSWER_BYTES" in detail and "array/block" in detail
    with pytest.raises(Exception, match="400"):
        client["scans"].export("/dev/null", format="h5")
    assert httpx.get(f"{server}/api/v1/container/full/scans?format=json").status_code == 200  # an outline has no data


def test_table_answers_past_the_limit_are_refused_before_reading(server: str, demo: Published, limit,  # noqa: ANN001
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Estimated from the structure: refused with advice and without a data read (the partition
    read is made to fail); the same request within the limit or in a lean format is answered."""
    from publisher.access.tables import PublishedTable

    url = f"{server}/api/v1/table/full/tables/temperature_log"
    assert httpx.get(url, params={"format": "json"}).status_code == 200
    structure = demo.catalog.entry("tables/temperature_log").structure
    nbytes = PublishedTable(demo.store, "", structure).nbytes()
    limit(nbytes * 10)

    def no_read(*_: object, **__: object) -> None:
        raise AssertionError("data read for a refused answer")

    monkeypatch.setattr(PublishedTable, "partition", no_read)
    for path, query in (("table/full", {"format": "json"}), ("table/partition", {"format": "json", "partition": "0"})):
        response = httpx.get(f"{server}/api/v1/{path}/tables/temperature_log", params=query)
        assert response.status_code == 400, response.text
        detail = response.json()["detail"]
        assert "SKYSHELF_MAX_ANSWER_BYTES" in detail and "format=arrow" in detail and "column=" in detail
    monkeypatch.undo()
    limit(nbytes * 10)
    assert httpx.get(url, params={"format": "arrow"}).status_code == 200  # 2x the data: within 10x
    assert httpx.get(url, params={"format": "json", "column": "setpoint"}).status_code == 200  # one column of several
