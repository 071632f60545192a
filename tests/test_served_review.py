"""Answers a review helper found wrong, against real Tiled's for the same data and the tiled
client: one element of a text array (a 500), one value of a table's text column (at its own
width, not the column's: the client could not read it), a boolean column with nulls (advertised
as kind "T", which the client refuses), the HTML view of an empty selection of a 3-D array (a
500), and ``Accept: image/*`` (a 406, where Tiled answers PNG)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest

from .conftest import run_build
from .servers import local_server


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("served-review")
    (folder / "src").mkdir()
    np.save(folder / "src" / "strs.npy", np.array(["a", "h\u00e9llo", "\u65e5\u672c"]))
    np.save(folder / "src" / "cube.npy", np.arange(24, dtype="i4").reshape(2, 3, 4))
    pd.DataFrame({"name": ["a", None, "hello"], "flag": [True, None, False]}).to_parquet(folder / "src" / "t.parquet")
    published = run_build(folder, {"sources": [{"path": "src", "into": ""}]})
    with local_server(published.store.url) as url:
        yield f"{url}/api/v1"


@pytest.mark.parametrize("route", ["array/full/strs?slice=1", "array/block/strs?block=0&slice=1"])
def test_one_element_of_a_text_array(api: str, route: str) -> None:
    answer = httpx.get(f"{api}/{route}&format=json")
    assert answer.status_code == 200 and answer.json() == "h\u00e9llo"
    raw = httpx.get(f"{api}/{route}")
    assert raw.status_code == 200 and np.frombuffer(raw.content, "<U5").tolist() == ["h\u00e9llo"]  # (the array's width: 5 characters)


def test_one_value_of_a_text_column_has_the_columns_width(api: str) -> None:
    kind = httpx.get(f"{api}/column/metadata/t/name").json()["data"]["attributes"]["structure"]["data_type"]
    assert (kind["kind"], kind["itemsize"]) == ("U", 20)
    for row, value in enumerate(["a", "", "hello"]):
        raw = httpx.get(f"{api}/column/full/t/name?slice={row}")
        assert raw.status_code == 200 and len(raw.content) == 20 and np.frombuffer(raw.content, "<U5").tolist() == [value]


def test_a_boolean_column_with_nulls_is_text(api: str) -> None:
    kind = httpx.get(f"{api}/column/metadata/t/flag").json()["data"]["attributes"]["structure"]["data_type"]
    assert kind["kind"] == "U"
    raw = httpx.get(f"{api}/column/full/t/flag")
    assert raw.status_code == 200 and np.frombuffer(raw.content, f"<U{kind['itemsize'] // 4}").tolist() == ["True", "", "False"]
    assert np.load(io.BytesIO(httpx.get(f"{api}/column/full/t/flag?format=npy").content)).tolist() == ["True", "", "False"]


@pytest.mark.parametrize("selection", ["0:0", "5:", "0:2,0:0"])
def test_the_html_view_of_an_empty_selection(api: str, selection: str) -> None:
    answer = httpx.get(f"{api}/array/full/cube?slice={selection}&format=html")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")


def test_an_image_wildcard_is_png(api: str) -> None:
    answer = httpx.get(f"{api}/array/full/cube?slice=0", headers={"Accept": "image/*"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"


def test_the_tiled_client_reads_them(api: str) -> None:
    from tiled.client import from_uri

    client = from_uri(api)
    assert str(client["strs"][0]) == "a"
    assert client["t"]["name"][1].tolist() == "" and client["t"]["flag"].read().tolist() == ["True", "", "False"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A table of two partitions whose columns differ between them (nulls only in the first, a
    long category only in the first), and a NetCDF text variable of fixed width (<U3)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import xarray as xr

    folder = tmp_path_factory.mktemp("served-parts")
    (folder / "src").mkdir()
    pq.write_table(pa.table({
        "i": pa.array([None if k in (0, 3) else k for k in range(20)], pa.int64()),
        "b": pa.array([None if k == 2 else bool(k % 2) for k in range(20)]),
        "cat": pa.array(["long-category" if k < 10 else "a" for k in range(20)]).dictionary_encode(),
    }), folder / "src" / "t.parquet")
    xr.Dataset({"s": ("n", np.array(["a", "bb", "ccc"]))}).to_netcdf(folder / "src" / "names.nc")
    published = run_build(folder, {"sources": [{"path": "src", "into": ""}], "output": {"store": str(folder / "site"), "table_partition_rows": 10}})
    with local_server(published.store.url) as url:
        yield f"{url}/api/v1"


@pytest.mark.parametrize("column", ["i", "b", "cat"])
def test_a_columns_slices_and_blocks_have_its_dtype(parts: str, column: str) -> None:
    """A column's metadata advertises the whole column's dtype; a slice or a block (partition)
    converted alone had its own (int64 bytes read as float64: numbers like 1.5e-323; booleans or
    short categories: the client could not read them)."""
    from tiled.client import from_uri

    node = from_uri(parts)["t"][column]
    whole = node.read()
    block = node.read_block((1,))
    assert block.dtype == whole.dtype and np.array_equal(block, whole[10:], equal_nan=whole.dtype.kind == "f")
    for piece in (slice(12, 16), slice(0, 2), slice(2, 3)):
        got = node[piece]
        assert got.dtype == whole.dtype and np.array_equal(got, whole[piece], equal_nan=whole.dtype.kind == "f"), (piece, got)


def test_one_element_of_a_fixed_width_text_array(parts: str) -> None:
    """A numpy str scalar's astype kept its own width: 4 bytes for 'a' of a <U3 array."""
    from tiled.client import from_uri

    node = from_uri(parts)["names"]["s"]
    assert node.dtype == np.dtype("<U3") and [str(node[i]) for i in range(3)] == ["a", "bb", "ccc"]


def test_wide_datasets_and_column_selections_are_read_by_post(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The tiled client POSTs the names (a JSON list) where repeating them in the URL would pass
    its length limit: a dataset of 80 variables (``read()``), 60 of a table's columns
    (``read(columns=...)``). Both were a 405."""
    import xarray as xr
    from tiled.client import from_uri

    folder = tmp_path_factory.mktemp("served-wide")
    (folder / "src").mkdir()
    names = [f"variable_with_a_long_descriptive_name_{i:03d}" for i in range(80)]
    xr.Dataset({n: ("x", np.arange(10.0) + i) for i, n in enumerate(names)}).to_netcdf(folder / "src" / "wide.nc")
    pd.DataFrame({n: np.arange(10) + i for i, n in enumerate(names)}).to_parquet(folder / "src" / "t.parquet")
    published = run_build(folder, {"sources": [{"path": "src", "into": ""}]})
    with local_server(published.store.url) as url:
        client = from_uri(f"{url}/api/v1")
        read = client["wide"].read()
        assert sorted(read.data_vars) == names and read[names[79]].values.tolist() == (np.arange(10.0) + 79).tolist()
        frame = client["t"].read(columns=names[:60])
        assert list(frame.columns) == names[:60] and frame[names[59]].tolist() == (np.arange(10) + 59).tolist()


def test_a_colour_image_is_a_colour_png(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An array whose last dimension is 3 or 4 channels is drawn as a colour PNG (a 400 before:
    "an image needs a 2-D selection"; Tiled draws it): 8-bit as it is, others by one range."""
    from PIL import Image
    from tiled.client import from_uri

    folder = tmp_path_factory.mktemp("served-colour")
    (folder / "src").mkdir()
    rgb = (np.arange(16 * 20 * 3) % 256).astype("u1").reshape(16, 20, 3)
    Image.fromarray(rgb).save(folder / "src" / "photo.png")
    np.save(folder / "src" / "rgba16.npy", (np.arange(8 * 6 * 4) * 100).astype("u2").reshape(8, 6, 4))
    published = run_build(folder, {"sources": [{"path": "src", "into": ""}]})
    with local_server(published.store.url) as url:
        answer = httpx.get(f"{url}/api/v1/array/full/photo?format=png")
        assert answer.status_code == 200 and np.array_equal(np.asarray(Image.open(io.BytesIO(answer.content))), rgb)
        wide = Image.open(io.BytesIO(httpx.get(f"{url}/api/v1/array/full/rgba16?format=png").content))
        assert wide.mode == "RGBA" and wide.size == (6, 8)
        refused = httpx.get(f"{url}/api/v1/array/full/photo?format=png&colormap=viridis")
        assert refused.status_code == 400 and "has its own colours" in refused.json()["detail"]
        from_uri(f"{url}/api/v1")["photo"].export(str(folder / "out.png"))
        assert np.array_equal(np.asarray(Image.open(folder / "out.png")), rgb)


@pytest.mark.parametrize("media_type", ["text/plain", "text/x-comma-separated-values", "application/vnd.ms-excel"])
def test_tileds_csv_synonyms_answer_csv(api: str, media_type: str) -> None:
    """Tiled answers CSV for these (the client's ``export("x.txt")`` asks for text/plain): a 406 here."""
    for url, params in ((f"{api}/array/full/cube", {"slice": "0"}), (f"{api}/table/full/t", {})):
        by_format = httpx.get(url, params={**params, "format": media_type})
        by_accept = httpx.get(url, params=params, headers={"Accept": media_type})
        assert by_format.status_code == by_accept.status_code == 200 and by_format.text == by_accept.text
        assert by_format.text == httpx.get(url, params={**params, "format": "csv"}).text


def test_a_partitioned_tables_data_sources_are_its_files(parts: str) -> None:
    """A partitioned table's one asset was its folder, which HTTPS cannot list (publish serve's
    /files/, a bucket's website): pandas, pyarrow and polars read nothing from it. Now one asset a
    partition (``data_uris``), as Tiled's Parquet adapter takes them, each readable as it is."""
    from tiled.client import from_uri

    client = from_uri(parts, include_data_sources=True)
    (source,) = client["t"].data_sources()
    assert [(a.parameter, a.num, a.is_directory) for a in source.assets] == [("data_uris", 0, False), ("data_uris", 1, False)]
    read = pd.concat([pd.read_parquet(a.data_uri) for a in source.assets], ignore_index=True)
    served = client["t"].read().reset_index(drop=True)
    assert len(read) == len(served) == 20 and list(read.columns) == list(served.columns)
    assert np.array_equal(read["i"].to_numpy("f8", na_value=np.nan), served["i"].to_numpy("f8", na_value=np.nan), equal_nan=True)
    assert read["cat"].astype(str).tolist() == served["cat"].astype(str).tolist()
