"""What the browse page (issue 14) asks of the HTTP API beyond Tiled's: PNG previews on a log
scale that say which range they used, facets counted over a whole subtree (as deep search finds
it, private nodes left out), and bounded first-rows and strided reads for table and plot previews.
Every answer is compared with numpy on the same data read from the store with zarr or pyarrow."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr
from PIL import Image

from .conftest import Published, run_build
from .test_build_demo import demo_config

FRAME = "scans/scan_0001/entry/data/data"  # 12 x 256 x 256 uint16, Poisson counts, a dead row of 65535
FIELD = "probe/probe/field"  # float32 with negatives, zeros, NaN and a _FillValue


def _probe_file(folder: Path) -> Path:
    """A float field the log scale must cope with: negatives, zeros, NaN and a CF fill."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:40, 0:60]
    field = (10.0 ** (xx / 59 * 4) * (1 + yy / 100)).astype("f4")  # 1 .. ~1.4e4, four decades left to right
    field[:, :3] = 0.0
    field[:, 3:6] = -5.0
    field[0] = np.nan
    field[-1] = -999.0
    with h5py.File(folder / "probe.h5", "w") as f:
        f.create_dataset("field", data=field).attrs["_FillValue"] = np.float32(-999.0)
    # a table with a string column whose longest value is in its last partition
    rows = [f"{'x' * (1 + i % 7)},{i}" for i in range(249)] + ["the longest label of all,249"]
    (folder / "labels.csv").write_text("label,number\n" + "\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder = tmp_path_factory.mktemp("browse-api")
    config = demo_config(demo_dir)
    probe = _probe_file(folder / "probe")
    config["sources"] += [{"path": str(probe / "probe.h5"), "into": "probe"}, {"path": str(probe / "labels.csv"), "into": "probe"}]
    config["output"] = {"store": str(folder / "site"), "table_partition_rows": 100}  # temperature_log: 100 + 100 + 40 rows
    return run_build(folder, config)


@pytest.fixture(scope="module")
def api(demo: Published) -> Iterator[str]:
    from handlers.local import LocalServer

    srv = LocalServer(demo.store.url, "127.0.0.1", 0).start()
    yield f"{srv.url}/api/v1"
    srv.stop()


def _stored(demo: Published, path: str) -> zarr.Array:
    return zarr.open_array(demo.url(path), mode="r")


def _image(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def _range(response: httpx.Response) -> tuple[float, float]:
    lo, hi = (float(v) for v in response.headers["x-skyshelf-rescale"].split(","))
    return lo, hi


def _reference(values: np.ndarray, lo: float, hi: float, log: bool) -> np.ndarray:
    """What the PNG's gray levels should be: numpy's own mapping of the values (<= 0 on a log
    scale is below the range: black)."""
    v = values.astype("f8")
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), -np.inf)
        lo, hi = np.log10(lo), np.log10(hi)
    with np.errstate(invalid="ignore"):
        index = np.clip((v - lo) / (hi - lo) * 255, 0, 255)
    return np.where(np.isfinite(v), index, 0).round().astype("u1")


def _refused(response: httpx.Response, *words: str) -> str:
    assert response.status_code == 400, response.headers
    detail = response.json()["detail"]
    assert all(w in detail for w in words), detail
    return detail


# 1. PNG scale and the range used -------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["linear", "log"])
def test_png_of_a_detector_frame_is_numpy_on_the_stored_values(api: str, demo: Published, scale: str) -> None:
    frame = _stored(demo, FRAME)[3, 40:200, 10:250]
    response = httpx.get(f"{api}/array/full/{FRAME}?slice=3,40:200,10:250&format=png&scale={scale}")
    lo, hi = _range(response)
    shown = frame[frame > 0] if scale == "log" else frame.ravel()
    assert (lo, hi) == tuple(float(v) for v in np.percentile(shown, (0.5, 99.5), method="inverted_cdf"))
    np.testing.assert_array_equal(_image(response), _reference(frame, lo, hi, scale == "log"))
    if scale == "log":  # a log scale spreads the background: more gray levels below the peak's half-height
        linear = _image(httpx.get(f"{api}/array/full/{FRAME}?slice=3,40:200,10:250&format=png"))
        assert len(np.unique(_image(response)[frame < 2000])) > 2 * len(np.unique(linear[frame < 2000]))


def test_png_log_scale_of_floats_with_zeros_negatives_and_fills(api: str, demo: Published) -> None:
    field = _stored(demo, FIELD)[...]
    response = httpx.get(f"{api}/array/full/{FIELD}?format=png&scale=log&colormap=gray")
    image = _image(response)
    gray, alpha = image[..., 0], image[..., 1]
    assert (alpha[0] == 0).all() and (alpha[-1] == 0).all() and (alpha[1:-1] == 255).all()  # NaN, fill: transparent
    assert (gray[1:-1, :6] == 0).all()  # zeros and negatives: below the range, the lowest colour (not transparent)
    inner = field[1:-1]
    lo, hi = np.percentile(inner[inner > 0], (0.5, 99.5), method="inverted_cdf")  # the positive values only
    # float32 data's bounds as float32's shortest text (2.8320613, not 2.832061290740967), integral ones as integers
    assert response.headers["x-skyshelf-rescale"] == f"{str(np.float32(lo))},{int(hi)}" and hi == int(hi)
    np.testing.assert_array_equal(gray[1:-1], _reference(inner, lo, hi, True))
    # an explicit range is used as given (data units) and echoed
    given = httpx.get(f"{api}/array/full/{FIELD}?format=png&scale=log&rescale=10,1000")
    assert given.headers["x-skyshelf-rescale"] == "10,1000"
    np.testing.assert_array_equal(_image(given)[1:-1, :, 0], _reference(inner, 10, 1000, True))
    # linear, downsampled: the range of the block means is reported too
    small = httpx.get(f"{api}/array/full/{FIELD}?format=png&max_size=20")
    assert _image(small).shape[:2] == (13, 20) and len(_range(small)) == 2


def test_png_range_header_is_readable_across_origins(api: str) -> None:
    response = httpx.get(f"{api}/array/full/{FRAME}?slice=0&format=png", headers={"Origin": "https://elsewhere.example"})
    assert "x-skyshelf-rescale" in response.headers["access-control-expose-headers"].lower()
    block = httpx.get(f"{api}/array/block/{FRAME}?block=0,0,0&format=png&scale=log")
    assert block.status_code == 200 and len(_range(block)) == 2


@pytest.mark.parametrize(("query", "words"), [
    ("scale=logarithmic", ("scale", "'linear'", "'log'")),
    ("colormap=rainbow", ("colormap", "viridis")),
    ("rescale=1", ("rescale", "min,max")),
    ("rescale=a,b", ("rescale",)),
    ("rescale=1,2,3", ("rescale",)),
    ("rescale=nan,1", ("rescale", "finite")),
    ("rescale=5,1", ("rescale", "min <= max")),
    ("rescale=0,100&scale=log", ("rescale", "above 0", "scale=log")),
    ("max_size=0", ("max_size",)),
    ("max_size=big", ("max_size", "integer")),
    ("max_size=100000", ("max_size",)),
])
@pytest.mark.parametrize("route", [f"array/full/{FRAME}?slice=0&format=png", f"array/block/{FRAME}?block=0,0,0&format=png"])
def test_bad_image_parameters_are_400_naming_them(api: str, route: str, query: str, words: tuple[str, ...]) -> None:
    _refused(httpx.get(f"{api}/{route}&{query}"), *words)


# 2. facets over a whole subtree ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """proj/{a,b}/run*.npy with an ``element`` each, nested two levels below the root; proj/b/run6
    and run7 readable only with the ``team`` key, one of them the only ``Secretium``."""
    from handlers.local import LocalServer
    from publisher.auth.keys import create_key

    folder = tmp_path_factory.mktemp("browse-facets")
    elements = {"a": ["Ni", "Fe", "Ni"], "b": ["Fe", "Ni", "Cu", "Secretium"]}
    number = 0
    for group, values in elements.items():
        (folder / "proj" / group).mkdir(parents=True)
        for value in values:
            np.save(folder / "proj" / group / f"run{number}.npy", np.arange(3) + number)
            (folder / "proj" / group / f"run{number}.npy.json").write_text(json.dumps({"element": value, "run": number}))
            number += 1
    rules = [{"match": "proj", "access_tags": ["public"]}, {"match": "proj/b/run5", "access_tags": ["team"]},
             {"match": "proj/b/run6", "access_tags": ["team"]}]
    published = run_build(folder, {"sources": [{"path": "proj"}], "rules": rules})
    key, _ = create_key(published.store, ["team"])
    server = LocalServer(published.store.url, "127.0.0.1", 0).start()
    yield {"url": f"{server.url}/api/v1", "key": key}
    server.stop()


def _get(mixed: dict, route: str, key: bool = False, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Apikey {mixed['key']}"} if key else {}
    return httpx.get(f"{mixed['url']}/{route}", params=params, headers=headers)


def _deep_counts(mixed: dict, key: bool, **params: str) -> dict:
    """What search-deep lists (every page), counted by element: what the facets must say."""
    found, offset = [], 0
    while True:
        page = _get(mixed, "search-deep/", key, **params, **{"page[offset]": str(offset), "page[limit]": "3"}).json()
        found += [d["attributes"]["metadata"].get("element") for d in page["data"]]
        offset += 3
        if offset >= page["meta"]["count"]:
            return {value: found.count(value) for value in set(found)}


def _facets(answer: httpx.Response) -> dict:
    assert answer.status_code == 200, answer.text
    return {v["value"]: v["count"] for v in answer.json()["metadata"]["element"]}


@pytest.mark.parametrize("key", [False, True], ids=["anonymous", "team"])
def test_deep_distinct_counts_what_deep_search_lists(mixed: dict, key: bool) -> None:
    facets = _facets(_get(mixed, "distinct/", key, metadata="element", counts="true", max_depth="64"))
    assert facets == _deep_counts(mixed, key)
    private = {"Cu": 1, "Secretium": 1} if key else {}  # run5 and run6: the team's only
    assert facets == {None: 3, "Ni": 3, "Fe": 2, **private}  # proj, proj/a and proj/b have no element
    # with a filter: the same nodes a filtered deep search lists
    eq = {"filter[eq][condition][key]": "element", "filter[eq][condition][value]": '"Ni"'}
    assert _facets(_get(mixed, "distinct/", key, metadata="element", counts="true", max_depth="64", **eq)) == {"Ni": 3}
    run = {"filter[comparison][condition][operator]": "ge", "filter[comparison][condition][key]": "run",
           "filter[comparison][condition][value]": "4"}
    assert _facets(_get(mixed, "distinct/", key, metadata="element", counts="true", max_depth="64", **run)) == _deep_counts(mixed, key, **run)


def test_deep_distinct_hides_private_values_and_depth_bounds_it(mixed: dict) -> None:
    anonymous = _get(mixed, "distinct/proj", metadata="element", counts="true", max_depth="2", structure_families="true")
    assert "Secretium" not in anonymous.text and "Cu" not in anonymous.text
    assert {v["value"]: v["count"] for v in anonymous.json()["structure_families"]} == {"array": 5, "container": 2}
    assert _facets(_get(mixed, "distinct/", metadata="element", counts="true", max_depth="2")) == {None: 3}  # runs are 3 down
    # max_depth=1 is Tiled's distinct (children only); without it nothing changes
    for depth in ({"max_depth": "1"}, {}):
        assert _facets(_get(mixed, "distinct/proj/b", metadata="element", counts="true", **depth)) == {"Fe": 1, "Ni": 1}
    assert _facets(_get(mixed, "distinct/", metadata="element", counts="true")) == {None: 1}
    for bad in ("0", "65", "deep"):
        _refused(_get(mixed, "distinct/", metadata="element", max_depth=bad), "max_depth")


# 3. table and plot previews ---------------------------------------------------------------------------
TABLE = "tables/temperature_log"  # 240 rows in three partitions (100, 100, 40)
LABELS = "probe/labels"  # 250 rows (100, 100, 50): a string column and an integer one


def _arrow(response: httpx.Response) -> pa.Table:
    assert response.status_code == 200, response.text
    return pa.ipc.open_file(pa.py_buffer(response.content)).read_all()


@pytest.fixture(scope="module")
def stored_table(demo: Published) -> pa.Table:
    """The table as stored: its Parquet partitions read with pyarrow."""
    files = sorted(Path(demo.url(TABLE)).glob("part-*.parquet"))
    assert len(files) == 3
    return pa.concat_tables([pq.read_table(f) for f in files])


@pytest.mark.parametrize("rows", ["0:100", "90:110", "::7", "::-3", "230:", "-5:", "150:20:-9", "500:600", "5:5"])
def test_table_rows_by_slice_are_the_stored_rows(api: str, stored_table: pa.Table, rows: str) -> None:
    start, stop, step = ([int(b) if b else None for b in rows.split(":")] + [None])[:3]
    expected = stored_table.take(pa.array(range(stored_table.num_rows)[start:stop:step], type=pa.int64()))
    got = _arrow(httpx.get(f"{api}/table/full/{TABLE}?slice={rows}&format=arrow"))
    assert got.equals(expected.replace_schema_metadata(got.schema.metadata))
    picked = _arrow(httpx.get(f"{api}/table/full/{TABLE}?slice={rows}&column=heater_output&column=time&format=arrow"))
    assert picked.column_names == ["heater_output", "time"] and picked.column("time").equals(expected.column("time"))


def test_a_first_rows_preview_is_one_bounded_request(api: str, stored_table: pa.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    head = httpx.get(f"{api}/table/full/{TABLE}?slice=0:100&format=application/json").json()
    assert list(head) == stored_table.column_names and all(len(v) == 100 for v in head.values())
    assert head["setpoint"] == stored_table.column("setpoint").to_pylist()[:100]
    assert head["sample_temperature"][17] is None  # a missing value stays null
    # a partition's rows, in its own numbering; one file read
    part = httpx.get(f"{api}/table/partition/{TABLE}?partition=1&slice=0:10&format=json").json()
    assert part["setpoint"] == stored_table.column("setpoint").to_pylist()[100:110]
    assert "filename" in httpx.get(f"{api}/table/full/{TABLE}?slice=0:100&format=csv").headers["content-disposition"]
    # bounded: the whole table as JSON is refused past a small limit, its first rows are not
    monkeypatch.setenv("SKYSHELF_MAX_ANSWER_BYTES", "20000")
    assert "slice=start:stop" in _refused(httpx.get(f"{api}/table/full/{TABLE}?format=json"), "SKYSHELF_MAX_ANSWER_BYTES")
    assert httpx.get(f"{api}/table/full/{TABLE}?slice=0:20&format=json").status_code == 200
    assert httpx.get(f"{api}/table/full/{TABLE}?slice=::20&format=json").status_code == 200


@pytest.mark.parametrize("bad", ["1", "0:10,0:2", "a:b", "::0"])
def test_bad_table_slices_are_400(api: str, bad: str) -> None:
    _refused(httpx.get(f"{api}/table/full/{TABLE}?slice={bad}&format=json"), "slice")
    _refused(httpx.get(f"{api}/table/partition/{TABLE}?partition=0&slice={bad}&format=json"), "slice")


@pytest.mark.parametrize("path", ["climate/sst/lat", "climate/sst/time", "scans/scan_0001/entry/data/th"])
@pytest.mark.parametrize("rows", ["::2", "::5", "1::3", "::-4", ":"])
def test_one_d_arrays_stride_as_json_for_line_plots(api: str, demo: Published, path: str, rows: str) -> None:
    start, stop, step = ([int(b) if b else None for b in rows.split(":")] + [None])[:3]
    stored = _stored(demo, path)[...]
    assert stored.ndim == 1
    got = httpx.get(f"{api}/array/full/{path}?slice={rows}&format=application/json")
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    np.testing.assert_array_equal(np.asarray(got.json(), dtype=stored.dtype), stored[start:stop:step])


def test_a_column_slice_converts_only_its_rows(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = httpx.get(f"{api}/column/full/{LABELS}/label?format=npy")
    values = np.load(io.BytesIO(whole.content))
    assert values.dtype == np.dtype("<U24") and values[-1] == "the longest label of all"
    for rows in ("0:10", "95:105", "::50", "::-60"):
        start, stop, step = ([int(b) if b else None for b in rows.split(":")] + [None])[:3]
        sliced = np.load(io.BytesIO(httpx.get(f"{api}/column/full/{LABELS}/label?slice={rows}&format=npy").content))
        assert sliced.dtype == values.dtype  # the width the metadata advertises: the whole column's
        np.testing.assert_array_equal(sliced, values[start:stop:step])
    # bounded by the rows asked for: a few rows of a column too large to answer whole
    monkeypatch.setenv("SKYSHELF_MAX_ANSWER_BYTES", "40000")
    _refused(httpx.get(f"{api}/column/full/{LABELS}/label?format=json"), "SKYSHELF_MAX_ANSWER_BYTES")
    assert httpx.get(f"{api}/column/full/{LABELS}/label?slice=0:10&format=json").json() == values[:10].tolist()
