"""Ragged data as Tiled's ``awkward`` family (issue 15): HDF5 variable-length datasets, NeXus
``NXevent_data`` groups, groups under the rule ``ragged: true``; stored as Parquet by
``ak.to_parquet`` and served on Tiled's ``awkward/buffers`` and ``awkward/full`` routes, read
back by the real tiled client.

No registry package ships an ``NXevent_data`` file (tests/realdata.py): the event group here is
generated following the NeXus definition (event_index, event_time_zero, event_time_offset, event_id).
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import awkward as ak
import h5py
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from publisher.access.awkward import from_parquet_bytes

from publisher.build import build
from publisher.config import load_pipeline

from .conftest import ROOT, Published, _published, run_build, write_pipeline
from .servers import local_server, publish_serve

EVENTS = {"event_index": np.array([0, 2, 2, 5], dtype=np.int64), "event_time_zero": np.array([10, 20, 30, 40], dtype=np.int64),
          "event_time_offset": np.array([1.5, 2.5, 3.5, 4.5, 5.5, 6.5], dtype=np.float32),
          "event_id": np.array([7, 8, 9, 10, 11, 12], dtype=np.int32)}


def _vlen(f: h5py.File, name: str, base: str, rows: list[list[float]], shape: tuple[int, ...]) -> None:
    ds = f.create_dataset(name, shape, dtype=h5py.vlen_dtype(np.dtype(base)))
    for i, row in enumerate(rows):
        ds[np.unravel_index(i, shape)] = np.array(row, dtype=base)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder: Path = tmp_path_factory.mktemp("awkward")
    with h5py.File(folder / "rag.h5", "w") as f:
        _vlen(f, "ints_be", ">i4", [[1, 2], [], [3, 4, 5]], (3,))
        _vlen(f, "grid", "<f8", [[1.5], [np.nan, -0.0], [], [7, 8, 9]], (2, 2))
        ds = f.create_dataset("words", (2,), dtype=h5py.vlen_dtype(np.dtype("S2")))
        ds[0], ds[1] = np.array([b"ab", b"c"], dtype="S2"), np.array([b"xy"], dtype="S2")
        pair = np.dtype([("a", "<i4"), ("b", ">f8")])
        pairs = f.create_dataset("pairs", (2,), dtype=h5py.vlen_dtype(pair))
        pairs[0], pairs[1] = np.array([(1, 2.5), (3, 4.5)], dtype=pair), np.array([], dtype=pair)
        events = f.create_group("entry/events")
        events.attrs["NX_class"] = "NXevent_data"
        for name, values in EVENTS.items():
            events[name] = values
        columns = f.create_group("columns")
        columns["a"] = np.arange(5, dtype=np.int16)
        columns["b"] = np.array([0.5, 1.5])
    return run_build(folder, {"sources": [{"path": str(folder / "rag.h5"), "into": ""}],
                              "rules": [{"match": "rag/columns", "ragged": True}]})


def _source(published: Published) -> dict[str, list]:
    """What each awkward node holds, read from the source with h5py (lists)."""
    return {
        "rag/ints_be": [[1, 2], [], [3, 4, 5]],
        "rag/grid": [[[1.5], [np.nan, -0.0]], [[], [7.0, 8.0, 9.0]]],
        "rag/words": [["ab", "c"], ["xy"]],
        "rag/pairs": [[{"a": 1, "b": 2.5}, {"a": 3, "b": 4.5}], []],
        "rag/entry/events/events_by_pulse": [
            {"event_time_zero": int(t0), "events": [{"event_time_offset": float(o), "event_id": int(i)}
                                                     for o, i in zip(EVENTS["event_time_offset"][a:b], EVENTS["event_id"][a:b])]}
            for t0, a, b in zip(EVENTS["event_time_zero"], EVENTS["event_index"], [*EVENTS["event_index"][1:], 6])],
        "rag/columns": [{"a": list(range(5)), "b": [0.5, 1.5]}],
    }


def _same(got: ak.Array, want: list) -> None:
    assert json.dumps(ak.to_list(got), sort_keys=True) == json.dumps(want, sort_keys=True)


def test_sources_become_awkward_nodes_stored_as_parquet(built: Published) -> None:
    """Each source kind is one awkward node whose stored Parquet file ak.from_parquet and
    pyarrow read directly; the published form is the one awkward reads back from that file."""
    for path, want in _source(built).items():
        node = built.node(path)
        assert node["family"] == "awkward", path
        assert node["data_url"].endswith(".parquet")
        stored = ak.from_parquet(built.url(path))
        _same(stored, want)
        assert ak.to_buffers(from_parquet_bytes(Path(built.url(path)).read_bytes()))[0].to_dict() == node["structure"]["form"]
        assert node["structure"]["length"] == len(want)
        table = pq.read_table(built.url(path))
        assert table.num_rows == len(want)
    assert pq.read_table(built.url("rag/ints_be")).column(0).to_pylist() == [[1, 2], [], [3, 4, 5]]
    assert pq.read_table(built.url("rag/entry/events/events_by_pulse")).column("event_time_zero").to_pylist() == [10, 20, 30, 40]
    # the NXevent_data group keeps its datasets as arrays beside the per-pulse view
    assert {built.node(f"rag/entry/events/{k}")["family"] for k in EVENTS} == {"array"}


def test_the_tiled_client_reads_each_kind_and_field_projections(built: Published) -> None:
    from tiled.client import from_uri

    with local_server(built.store.url) as url:
        client = from_uri(f"{url}/api/v1")
        for path, want in _source(built).items():
            _same(client[path].read(), want)
        pulses = client["rag/entry/events/events_by_pulse"]
        _same(pulses["events", "event_id"], [[7, 8], [], [9, 10, 11], [12]])  # only these buffers travel
        _same(pulses[1:3]["event_time_zero"], [20, 30])
        _same(client["rag/columns"]["b"], [[0.5, 1.5]])


def test_buffers_route_as_tiled_serves_it(built: Published) -> None:
    """POST a JSON list of form keys, or GET ?form_key=: a stored zip of ``{key}-{attribute}``
    members with the raw buffers; unknown keys and other media types are 4xx with a detail."""
    form = built.node("rag/ints_be")["structure"]["form"]
    offsets_key, data_key = form["form_key"], form["content"]["form_key"]
    with local_server(built.store.url) as url:
        base = f"{url}/api/v1/awkward/buffers/rag/ints_be"
        posted = httpx.post(base, json=[offsets_key], headers={"Accept": "application/zip"})
        got = httpx.get(base, params={"form_key": offsets_key})
        for answer in (posted, got):
            assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
            archive = zipfile.ZipFile(io.BytesIO(answer.content))
            assert [i.compress_type for i in archive.infolist()] == [zipfile.ZIP_STORED]
            assert np.frombuffer(archive.read(f"{offsets_key}-offsets"), "<i8").tolist() == [0, 2, 2, 5]
        whole = zipfile.ZipFile(io.BytesIO(httpx.post(base, json=[offsets_key, data_key]).content))
        assert np.frombuffer(whole.read(f"{data_key}-data"), "<i4").tolist() == [1, 2, 3, 4, 5]
        for bad, status, words in ((httpx.post(base, json=["node99"]), 400, "node99"),
                                   (httpx.post(base, content=b"{not json"), 400, "JSON list"),
                                   (httpx.post(base, json={"a": 1}), 400, "JSON list"),
                                   (httpx.post(base, content=b"[" * 100_000), 400, "JSON list"),  # (nested too deep for json: a 500)
                                   (httpx.post(base, json=[offsets_key], headers={"Accept": "application/json"}), 406, "application/zip"),
                                   (httpx.post(f"{url}/api/v1/awkward/buffers/rag/entry/events/event_id", json=[]), 400, "not an awkward"),
                                   (httpx.post(f"{url}/api/v1/awkward/buffers/rag/nope", json=[]), 404, "no node")):
            assert bad.status_code == status and words in bad.json()["detail"], (bad.status_code, bad.text)


def test_full_exports_json_arrow_parquet_zip(built: Published, tmp_path: Path) -> None:
    from tiled.client import from_uri

    want = _source(built)["rag/entry/events/events_by_pulse"]
    with local_server(built.store.url) as url:
        base = f"{url}/api/v1/awkward/full/rag/entry/events/events_by_pulse"
        assert httpx.get(base, params={"format": "json"}).json() == json.loads(json.dumps(want))
        arrow = httpx.get(base, params={"format": "arrow"})
        _same(ak.from_arrow(pa.ipc.open_file(pa.py_buffer(arrow.content)).read_all()), want)
        parquet = httpx.get(base, params={"format": "parquet"})
        (tmp_path / "p.parquet").write_bytes(parquet.content)
        _same(ak.from_parquet(tmp_path / "p.parquet"), want)
        form = built.node("rag/entry/events/events_by_pulse")["structure"]
        zipped = zipfile.ZipFile(io.BytesIO(httpx.get(base, params={"format": "zip"}).content))
        _same(ak.from_buffers(form["form"], form["length"], {n: zipped.read(n) for n in zipped.namelist()}), want)
        refused = httpx.get(base, params={"format": "csv"})
        assert refused.status_code == 406 and "application/x-parquet" in refused.json()["detail"]
        nan = httpx.get(f"{url}/api/v1/awkward/full/rag/grid", params={"format": "json"})
        assert nan.status_code == 200 and nan.json()[0][1][0] == "NaN"
        client = from_uri(f"{url}/api/v1")
        client["rag/ints_be"].export(str(tmp_path / "ints.parquet"))
        _same(ak.from_parquet(tmp_path / "ints.parquet"), [[1, 2], [], [3, 4, 5]])
        links = httpx.get(f"{url}/api/v1/metadata/rag/ints_be").json()["data"]["links"]
        assert links["buffers"].endswith("/api/v1/awkward/buffers/rag/ints_be") and links["full"].endswith("/api/v1/awkward/full/rag/ints_be")


def test_full_slice_selects_top_level_entries(built: Published) -> None:
    """``slice=start:stop:step`` on awkward/full (ours, as on table/full): the browse page's first entries."""
    want = _source(built)["rag/entry/events/events_by_pulse"]
    with local_server(built.store.url) as url:
        base = f"{url}/api/v1/awkward/full/rag/entry/events/events_by_pulse"
        for text, rows in (("1:3", want[1:3]), ("::2", want[::2]), ("-1:", want[-1:]), ("10:20", [])):
            got = httpx.get(base, params={"format": "json", "slice": text})
            assert got.status_code == 200 and got.json() == json.loads(json.dumps(rows)), text
        for bad in ("0:2,1", "3", "a:b", "::0"):
            refused = httpx.get(base, params={"format": "json", "slice": bad})
            assert refused.status_code == 400 and "slice" in refused.json()["detail"], bad


def test_answers_past_the_limit_are_4xx(built: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers import settings

    from publisher.access.cache import DECODED

    monkeypatch.setenv("SKYSHELF_MAX_ANSWER_BYTES", "16")
    settings.reset()
    capacity = DECODED.capacity
    DECODED.resize(0)  # forget earlier tests' reads
    DECODED.resize(capacity)
    try:
        with local_server(built.store.url) as url:
            big = httpx.post(f"{url}/api/v1/awkward/buffers/rag/grid", json=[built.node("rag/grid")["structure"]["form"]["content"]["content"]["form_key"]])
            assert big.status_code in (400, 413) and "fewer fields" in big.json()["detail"]
            full = httpx.get(f"{url}/api/v1/awkward/full/rag/grid?format=json")
            assert full.status_code in (400, 413) and "awkward array 'rag/grid'" in full.json()["detail"]
            assert DECODED.get((built.store.url, built.node("rag/grid")["data_url"])) is None  # refused before it was decoded
    finally:
        monkeypatch.delenv("SKYSHELF_MAX_ANSWER_BYTES")
        settings.reset()


def test_post_as_lambda_and_publish_serve_receive_it(built: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """API Gateway passes the POST body base64-encoded; the tables function answers it. The real
    ``publish serve`` process takes the tiled client's POST too."""
    import handlers.tables
    from handlers.local import event_for
    from tiled.client import from_uri

    monkeypatch.setenv("SKYSHELF_STORE", built.store.url)
    form = built.node("rag/ints_be")["structure"]["form"]
    event = event_for("POST", "/api/v1/awkward/buffers/rag/ints_be", "", {"host": "example.org", "content-type": "application/json"},
                      "1.2.3.4", json.dumps([form["form_key"]]).encode())
    assert event["isBase64Encoded"] is True
    result = handlers.tables.lambda_handler(event, None)
    assert result["statusCode"] == 200, result
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(result["body"])))
    assert archive.namelist() == [f"{form['form_key']}-offsets"]
    with publish_serve(built.store.url, cwd=ROOT) as url:
        _same(from_uri(f"{url}/api/v1")["rag/words"].read(), [["ab", "c"], ["xy"]])


def test_rule_ragged_needs_1d_datasets(tmp_path: Path) -> None:
    from publisher.errors import BuildFailed

    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["g/a"] = np.zeros((2, 2))
    with pytest.raises((AssertionError, BuildFailed), match="ragged: true.*not 1-D datasets: a"):
        run_build(tmp_path, {"sources": [{"path": str(tmp_path / "r.h5"), "into": ""}], "rules": [{"match": "r/g", "ragged": True}]})


def test_a_large_buffers_answer_is_a_303_the_client_follows(built: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past Lambda's body limit an answer is stored and redirected to: for the POST, a 303 (the
    client GETs the stored zip; a 307 would repeat the POST at the store)."""
    from handlers import settings
    from tiled.client import from_uri

    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "64")
    settings.reset()
    try:
        with local_server(built.store.url) as url:
            form = built.node("rag/grid")["structure"]["form"]
            keys = [form["content"]["form_key"], form["content"]["content"]["form_key"]]
            answer = httpx.post(f"{url}/api/v1/awkward/buffers/rag/grid", json=keys)
            assert answer.status_code == 303 and "/files/" in answer.headers["location"]
            got = httpx.get(answer.headers["location"])
            assert got.status_code == 200 and zipfile.ZipFile(io.BytesIO(got.content)).namelist()
            _same(from_uri(f"{url}/api/v1")["rag/grid"].read(), _source(built)["rag/grid"])
    finally:
        monkeypatch.delenv("SKYSHELF_MAX_BODY_BYTES")
        settings.reset()


def test_publish_serve_refuses_an_oversized_post_and_preflights_post(built: Published) -> None:
    from handlers.local import MAX_REQUEST_BODY

    with local_server(built.store.url) as url:
        big = httpx.post(f"{url}/api/v1/awkward/buffers/rag/grid", content=b"[" + b'"x",' * (MAX_REQUEST_BODY // 4) + b'"x"]')
        assert big.status_code == 413 and "request body larger" in big.json()["detail"]
        preflight = httpx.options(f"{url}/api/v1/awkward/buffers/rag/grid",
                                  headers={"Origin": "https://example.org", "Access-Control-Request-Method": "POST"})
        assert "POST" in preflight.headers.get("access-control-allow-methods", "")


def test_event_data_with_a_bad_event_index_stays_a_folder_with_a_warning(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "e.h5", "w") as f:
        events = f.create_group("events")
        events.attrs["NX_class"] = "NXevent_data"
        events["event_index"] = np.array([0, 3], dtype=np.int64)  # past the two events
        events["event_time_offset"] = np.arange(2.0)
    published = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "e.h5"), "into": ""}]})
    assert {e["path"] for e in published.entries()} >= {"e/events", "e/events/event_index", "e/events/event_time_offset"}
    assert not any(e["path"].endswith("events_by_pulse") for e in published.entries())
    assert any("event_index is not a non-decreasing" in w.reason for w in published.report.warnings)


def test_event_data_whose_per_event_fields_disagree_stays_a_folder_with_a_warning(tmp_path: Path) -> None:
    """``event_id`` of 3 values beside 5 event times and 3 pulses was published as a value a pulse."""
    with h5py.File(tmp_path / "e.h5", "w") as f:
        events = f.create_group("events")
        events.attrs["NX_class"] = "NXevent_data"
        events["event_index"] = np.array([0, 2, 4], dtype=np.int64)
        events["event_time_offset"] = np.arange(5.0)
        events["event_id"] = np.arange(3, dtype=np.int32)
    published = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "e.h5"), "into": ""}]})
    assert not any(e["path"].endswith("events_by_pulse") for e in published.entries())
    assert any("event_id has shape [3], event_time_offset 5 events" in w.reason for w in published.report.warnings)


def test_a_field_projection_reads_only_its_columns_and_answers_the_same_buffers(built: Published) -> None:
    """node['field'] of a record: only that field's Parquet columns are read, and the buffers
    answered under the published form's keys are those of the whole array."""
    from publisher.access.awkward import PublishedAwkward, form_keys
    from publisher.access.cache import DECODED
    from publisher.structures import AwkwardStructure

    for path in ("rag/entry/events/events_by_pulse", "rag/columns"):
        node = built.node(path)
        structure = AwkwardStructure.from_json(node["structure"])
        published = PublishedAwkward(built.store, node["data_url"], structure)
        whole = published.buffers(None)
        for field, content in zip(structure.form["fields"], structure.form["contents"]):
            keys = list(form_keys(content))
            got = published.buffers(keys)
            assert got and {k: bytes(memoryview(v)) for k, v in got.items()} == \
                {k: bytes(memoryview(v)) for k, v in whole.items() if k.split("-")[0] in keys}, (path, field)
            assert DECODED.get((built.store.url, f"{node['data_url']}?{field}")) is not None  # the one column was read


def test_container_exports_hold_awkward_children(built: Published) -> None:
    """container/full of a folder with awkward children: HDF5 writes each as AnnData writes an
    awkward array (buffers, form, length), which ak.from_buffers reads back; JSON outlines it."""
    with local_server(built.store.url) as url:
        outline = httpx.get(f"{url}/api/v1/container/full/rag", params={"format": "json"})
        assert outline.status_code == 200 and "events_by_pulse" in outline.json()["contents"]["entry"]["contents"]["events"]["contents"]
        exported = httpx.get(f"{url}/api/v1/container/full/rag", params={"format": "h5"})
        assert exported.status_code == 200, exported.text
    with h5py.File(io.BytesIO(exported.content), "r") as f:
        for path, want in _source(built).items():
            group = f[path.removeprefix("rag/")]
            assert group.attrs["encoding-type"] == "awkward-array"
            _same(ak.from_buffers(group.attrs["form"], int(group.attrs["length"]), {k: v[()] for k, v in group.items()}), want)


def test_events_and_vlen_rows_are_written_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NeXus events are read and stored a run of pulses at a time, vlen datasets some rows at a
    time (one Parquet row group each), and read back whole, through the client too, as the source."""
    from tiled.client import from_uri

    from publisher.readers import hdf5_ragged

    monkeypatch.setattr(hdf5_ragged, "EVENTS_PER_PIECE", 2)
    monkeypatch.setattr(hdf5_ragged, "ROWS_PER_PIECE", 2)
    with h5py.File(tmp_path / "ev.h5", "w") as f:
        _vlen(f, "grid", "<f8", [[1.5], [np.nan, -0.0], [], [7, 8, 9], [], [1]], (3, 2))
        events = f.create_group("events")
        events.attrs["NX_class"] = "NXevent_data"
        for name, values in EVENTS.items():
            events[name] = values
    published = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "ev.h5"), "into": ""}]})
    path = "ev/events/events_by_pulse"
    assert pq.ParquetFile(published.url(path)).num_row_groups == 3  # pulses [0, 1], [2] (3 events: one pulse alone), [3]
    want = [{"event_time_zero": int(t0), "events": [{"event_time_offset": float(o), "event_id": int(i)}
                                                    for o, i in zip(EVENTS["event_time_offset"][a:b], EVENTS["event_id"][a:b])]}
            for t0, a, b in zip(EVENTS["event_time_zero"], EVENTS["event_index"], [*EVENTS["event_index"][1:], 6])]
    _same(ak.from_parquet(published.url(path)), want)
    grid = [[[1.5], [np.nan, -0.0]], [[], [7.0, 8.0, 9.0]], [[], [1.0]]]
    assert pq.ParquetFile(published.url("ev/grid")).num_row_groups == 2  # rows [0, 1], [2]
    with local_server(published.store.url) as url:
        _same(from_uri(f"{url}/api/v1")[path].read(), want)
        _same(from_uri(f"{url}/api/v1")["ev/grid"].read(), grid)


def test_many_pulses_with_few_events_are_cut_by_pulses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces were cut by events alone, with ``event_index`` read whole: 200 MiB of pulses with a
    thousand events were one piece (a build grew by 664 MB; 800 MiB: 1.8 GB). A piece holds at
    most ``PIECE_BYTES`` of per-pulse values; the published rows are the source's."""
    from publisher.readers import hdf5_ragged

    monkeypatch.setattr(hdf5_ragged, "PIECE_BYTES", 24 * 1000)  # 1,000 pulses of 24 bytes a piece
    monkeypatch.setattr(hdf5_ragged, "INDEX_BLOCK", 999)  # the order check crosses blocks
    pulses, index = 5500, np.zeros(5500, dtype="i8")
    index[-10:] = np.arange(10)  # every event in the last ten pulses
    with h5py.File(tmp_path / "ev.h5", "w") as f:
        events = f.create_group("events")
        events.attrs["NX_class"] = "NXevent_data"
        events["event_index"] = index
        events["event_time_zero"] = np.arange(pulses, dtype="f8")
        events["event_time_offset"] = np.arange(10, dtype="f4") / 2
        events["event_id"] = np.arange(10, dtype="i4")
    published = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "ev.h5"), "into": ""}]})
    path = "ev/events/events_by_pulse"
    assert pq.ParquetFile(published.url(path)).num_row_groups == 6  # 5,500 pulses, 1,000 a piece
    got = ak.from_parquet(published.url(path))
    assert len(got) == pulses and ak.to_list(got.event_time_zero[:3]) == [0.0, 1.0, 2.0]
    assert ak.to_list(ak.num(got.events)) == [0] * 5490 + [1] * 9 + [1]
    assert ak.to_list(got.events.event_id[-10:]) == [[i] for i in range(10)]


def _buffers_group(f: h5py.File, name: str, array: ak.Array) -> None:
    """An AnnData ``awkward-array`` group (anndata writes ``ak.to_buffers(ak.to_packed(array))``;
    other writers may not pack)."""
    form, length, buffers = ak.to_buffers(array)
    group = f.create_group(name)
    group.attrs["encoding-type"], group.attrs["encoding-version"] = "awkward-array", "0.1.0"
    group.attrs["form"], group.attrs["length"] = form.to_json(), length
    for key, values in buffers.items():
        group[key] = np.asarray(values)


def test_anndata_awkward_groups_are_read_a_range_of_rows_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An AnnData awkward group was read whole (``ak.from_buffers`` takes whole buffers). Its
    pieces now read each buffer for their rows only, through lists (32- and 64-bit offsets),
    options, masks, regular dimensions, records, tuples and strings; a form with a union is
    read whole. Joined, the pieces are the array; published, its rows."""
    from publisher.readers import hdf5_ragged
    from publisher.readers.hdf5 import HDF5Options, HDF5Reader

    monkeypatch.setattr(hdf5_ragged, "FIRST_PIECE_ROWS", 2)
    monkeypatch.setattr(hdf5_ragged, "ROWS_PER_PIECE", 4)
    rng = np.random.default_rng(5)
    rows = [{"cells": [{"id": f"c{i}-{j}", "count": None if (i + j) % 3 == 0 else int(i * j), "xy": [float(i), float(j)]}
                       for j in range(int(rng.integers(0, 4)))],
             "pair": (i, f"p{i}" * (i % 3)), "flag": None if i % 4 == 0 else bool(i % 2)} for i in range(23)]
    array = ak.Array(rows)
    masked = ak.Array(ak.contents.ByteMaskedArray(ak.index.Index8(np.arange(23) % 2), ak.contents.NumpyArray(np.arange(23.0)), valid_when=True))
    short = ak.Array(ak.contents.ListOffsetArray(ak.index.Index32(np.array([0, 2, 2, 5], np.int32)), ak.contents.NumpyArray(np.arange(5, dtype="u2"))))
    union = ak.Array([1, "a", 2.5, [1]])
    # unpacked, a NumpyArray's buffer keeps its inner shape (2-D in the file)
    inner = ak.Array(ak.contents.IndexedArray(ak.index.Index64(np.array([1, 0, 2, 2, 1])), ak.contents.NumpyArray(np.arange(6).reshape(3, 2))))
    arrays = {"cells": array, "masked": masked, "short": short, "union": union, "inner": inner}
    with h5py.File(tmp_path / "a.h5ad", "w") as f:
        for name, value in arrays.items():
            _buffers_group(f, name, value)
        assert f["inner"]["node1-data"].ndim == 2
    with HDF5Reader().open(tmp_path / "a.h5ad", "a", HDF5Options()) as root:
        nodes = {c.key: c for c in root.children}
        for name, value in arrays.items():
            parts = list(nodes[name].pieces())
            joined = ak.concatenate(parts) if len(parts) > 1 else parts[0]
            assert ak.to_list(joined) == ak.to_list(value), name
            assert all(p.layout.form.type == value.layout.form.type for p in parts), name
            assert (len(parts) > 1) == (name != "union") and (name == "union" or sum(map(len, parts)) == len(value)), name


def test_a_piece_of_missing_regular_rows_is_published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A piece whose rows are all missing holds an empty content; for ``?[2 * float64]`` the
    Parquet writer had no placeholder and the build failed ("Null count exceeds array length")."""
    from publisher.readers import hdf5_ragged

    monkeypatch.setattr(hdf5_ragged, "FIRST_PIECE_ROWS", 8)
    value = ak.Array(ak.contents.IndexedOptionArray(ak.index.Index64(np.r_[[-1] * 12, np.arange(10)]),
                                                    ak.contents.RegularArray(ak.contents.NumpyArray(np.arange(20.0)), 2)))
    with h5py.File(tmp_path / "reg.h5", "w") as f:
        _buffers_group(f, "reg", ak.to_packed(value))
    published = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "reg.h5"), "into": ""}]})
    assert ak.to_list(ak.from_parquet(published.url("reg/reg"))) == ak.to_list(value)


def test_a_buffers_request_naming_no_keys_leaves_the_whole_array_intact(built: Published) -> None:
    """A POST of ``[]`` (or a GET without form_key) answers an empty zip, and the warm process's
    later reads of the record array are still all of it (the empty projection was cached under
    the whole table's key: every later read answered records without fields)."""
    from publisher.access.awkward import PublishedAwkward
    from publisher.structures import AwkwardStructure

    path = "rag/entry/events/events_by_pulse"
    want = _source(built)[path]
    node = built.node(path)
    published = PublishedAwkward(built.store, node["data_url"], AwkwardStructure.from_json(node["structure"]))
    assert published.buffers([]) == {}
    _same(published.read(), want)
    with local_server(built.store.url) as url:
        base = f"{url}/api/v1/awkward/buffers/{path}"
        for empty in (httpx.post(base, json=[]), httpx.get(base)):
            assert empty.status_code == 200 and zipfile.ZipFile(io.BytesIO(empty.content)).namelist() == []
            full = httpx.get(f"{url}/api/v1/awkward/full/{path}")
            assert full.status_code == 200 and json.loads(full.text) == json.loads(json.dumps(want)), full.text[:300]


def test_a_piece_whose_optional_records_are_all_missing_is_published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A field ``?{z: var * int64}`` missing in every row of a piece: its placeholder was an index
    over one record, which a mask cannot hold, and the whole array failed to publish
    ("ByteMaskedArray cannot contain ... IndexedArray")."""
    from publisher.readers import hdf5_ragged

    monkeypatch.setattr(hdf5_ragged, "FIRST_PIECE_ROWS", 8)
    value = ak.Array([{"id": i, "y": None if i < 12 else {"z": list(range(i % 3))}} for i in range(20)])
    with h5py.File(tmp_path / "opt.h5", "w") as f:
        _buffers_group(f, "opt", ak.to_packed(value))
    published = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "opt.h5"), "into": ""}]})
    assert ak.to_list(ak.from_parquet(published.url("opt/opt"))) == ak.to_list(value)
    with local_server(published.store.url) as url:
        answer = httpx.get(f"{url}/api/v1/awkward/full/opt/opt")
        assert answer.status_code == 200 and answer.json() == ak.to_list(value)


def test_a_top_level_optional_record_parquet_would_change_is_refused(tmp_path: Path) -> None:
    """``[{"x": 1}, None, {"x": None}]``: awkward's Parquet copy reads its last row back as a missing
    row (the table's columns do not keep the rows' own mask); published, it served other values.
    The node fails, naming the row; one without such a row publishes as it is."""
    changed = ak.Array([{"x": {"y": 1}}, None, {"x": None}])
    kept = ak.Array([{"x": {"y": 1}}, None, {"x": {"y": None}}])
    with h5py.File(tmp_path / "top.h5", "w") as f:
        _buffers_group(f, "changed", ak.to_packed(changed))
        _buffers_group(f, "kept", ak.to_packed(kept))
    config = {"output": {"store": str(tmp_path / "site")}, "on_error": "skip", "sources": [{"path": str(tmp_path / "top.h5"), "into": ""}]}
    report = build(load_pipeline(write_pipeline(tmp_path, config)), workers=2)
    assert [(p.path, "row 2 is a record whose fields are all missing" in p.reason) for p in report.failures] == [("top/changed", True)], report.failures
    published = _published(report, config["output"]["store"], tmp_path)
    assert ak.to_list(ak.from_parquet(published.url("top/kept"))) == ak.to_list(kept)


def test_byte_strings_answer_json_as_text(tmp_path: Path) -> None:
    """``awkward/full`` in JSON (its default, the browse page's) of byte strings: text, UTF-8 with
    replacement as the array and table answers give them, where awkward's JSON raised (a 500)."""
    value = ak.Array([b"\x00ab", b"", b"\xff"])
    with h5py.File(tmp_path / "b.h5", "w") as f:
        _buffers_group(f, "raw", ak.to_packed(value))
    published = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "b.h5"), "into": ""}]})
    with local_server(published.store.url) as url:
        answer = httpx.get(f"{url}/api/v1/awkward/full/b/raw")
        assert answer.status_code == 200 and answer.json() == ["\x00ab", "", "\ufffd"], answer.text


def test_a_tuple_array_stays_a_tuple(tmp_path: Path) -> None:
    """``(int64, var * int64)``: ak.from_parquet of the stored file kept the tuple, but the server's
    read (pyarrow's table, then ak.from_arrow) made it a record of fields "0" and "1": published
    so, and answered so to the tiled client and as JSON objects. awkward's schema metadata is now
    applied first, as ak.from_parquet applies it."""
    from tiled.client import from_uri

    value = ak.Array([(1, [1]), (2, []), (3, [4, 5])])
    with h5py.File(tmp_path / "t.h5", "w") as f:
        _buffers_group(f, "pairs", ak.to_packed(value))
    published = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "t.h5"), "into": ""}]})
    form = published.node("t/pairs")["structure"]["form"]
    assert form["class"] == "RecordArray" and form["fields"] is None, form
    with local_server(published.store.url) as url:
        got = from_uri(f"{url}/api/v1")["t/pairs"].read()  # (tiled 0.2.20's project_form makes any tuple a record: its own)
        assert [tuple(r.values()) for r in got.to_list()] == value.to_list()
        assert str(from_parquet_bytes(httpx.get(f"{url}/api/v1/awkward/full/t/pairs?format=parquet").content).type) == str(value.type)
        assert httpx.get(f"{url}/api/v1/awkward/full/t/pairs").text == ak.to_json(value)  # (awkward's JSON of a tuple: objects "0", "1")
