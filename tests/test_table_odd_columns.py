"""Tables whose columns are of the less common Arrow types, served by ``publish serve`` in every
table format and as array children (``column/...``): no answer is a 500, and each is valid in
its format."""

from __future__ import annotations

import datetime
import decimal
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import run_build

#: Columns as array children: (the column, its values as the array child's text).
CHILDREN = {
    "t_ns": (pa.array([1, 2], pa.time64("ns")), ["00:00:00.000000001", "00:00:00.000000002"]),
    "t_us": (pa.array([datetime.time(1, 2, 3), None], pa.time64("us")), ["01:02:03.000000", ""]),
    "dec": (pa.array([decimal.Decimal("1.25"), None], pa.decimal128(5, 2)), ["1.25", ""]),
    "bin": (pa.array([b"\x00\x01", b"ok"], pa.binary()), ["\x00\x01", "ok"]),
    "fsl": (pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float64(), 2)), ["[1.0,2.0]", "[3.0,4.0]"]),
    "st": (pa.array([{"a": 1}, None], pa.struct([("a", pa.int64())])), ['{"a":1}', ""]),
    "nul": (pa.nulls(2), ["", ""]),
    "u": (pa.array([uuid.UUID(int=1).bytes, None], pa.uuid()), ["00000000-0000-0000-0000-000000000001", ""]),
}


def _sources(folder: Path) -> None:
    """One Parquet file per case, each a table the API serves."""
    piece = lambda values: pa.table({"kind": pa.array(values).dictionary_encode()})
    # two row groups, each with its own dictionary (as pa.concat_tables or a polars Categorical writes them)
    pq.write_table(pa.concat_tables([piece(["alpha", "beta"] * 5), piece(["gamma"] * 10)]), folder / "cats.parquet", row_group_size=10)
    inf = float("inf")
    pq.write_table(pa.table({"f": [1.0, inf, -inf, float("nan")], "l": [[float("nan"), inf], [1.0], None, []],
                             "s": [{"x": -inf}, {"x": 1.0}, None, {"x": float("nan")}]}), folder / "floats.parquet")
    tensor = pa.fixed_shape_tensor(pa.float32(), (2, 2))
    pq.write_table(pa.table({"u": pa.array([uuid.UUID(int=1).bytes, None], pa.uuid()), "j": pa.array(['{"a":1}', None], pa.json_()),
                             "tens": pa.ExtensionArray.from_storage(tensor, pa.array([[1, 2, 3, 4], None], pa.list_(pa.float32(), 4))),
                             "sv": pa.array(["a", None], pa.string_view()), "i": [1, 2]}), folder / "ext.parquet")
    pq.write_table(pa.table({name: column for name, (column, _) in CHILDREN.items()}), folder / "cols.parquet")
    pq.write_table(pa.table({"b8": pa.ExtensionArray.from_storage(pa.bool8(), pa.array([1, 0, 1], pa.int8())),
                             "f16": pa.array(np.array([1.5, 2, 3], "f2"))}), folder / "numeric.parquet")
    pq.write_table(pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4]), pa.array([5, 6]), pa.array([7, 8])], names=["a/b", "", "c", "a"]),
                   folder / "names.parquet")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from handlers.local import LocalServer

    folder = tmp_path_factory.mktemp("odd-columns")
    (folder / "data").mkdir()
    _sources(folder / "data")
    site = run_build(folder, {"sources": [{"path": "data", "into": ""}]}).store.url
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SKYSHELF_STORE", site)
        srv = LocalServer(site, "127.0.0.1", 0).start()
        try:
            yield f"{srv.url}/api/v1"
        finally:
            srv.stop()


@pytest.mark.parametrize("route", ["table/full/cats", "table/partition/cats?partition=0", "table/full/cats?column=kind&format=arrow"])
def test_dictionaries_that_differ_between_row_groups_as_arrow(server: str, route: str) -> None:
    """An Arrow IPC file holds one dictionary a column: the row groups' are unified into it."""
    answer = httpx.get(f"{server}/{route}")
    assert answer.status_code == 200, answer.text
    table = pa.ipc.open_file(answer.content).read_all()
    assert pa.types.is_dictionary(table.schema.field("kind").type)
    assert table.column("kind").to_pylist() == ["alpha", "beta"] * 5 + ["gamma"] * 10


def _strict(text: str) -> object:
    """JSON as a strict parser reads it (Python's takes NaN and Infinity; JSON has neither)."""
    def refuse(word: str) -> None:
        raise ValueError(f"not JSON: {word}")

    return json.loads(text, parse_constant=refuse)


def test_json_answers_have_no_nan_or_infinity(server: str) -> None:
    """Not-a-number and infinities are null in JSON answers, at the top level and inside lists and structs."""
    whole = httpx.get(f"{server}/table/full/floats?format=json")
    assert whole.status_code == 200, whole.text
    assert _strict(whole.text) == {"f": [1.0, None, None, None], "l": [[None, None], [1.0], None, []],
                                   "s": [{"x": None}, {"x": 1.0}, None, {"x": None}]}
    seq = httpx.get(f"{server}/table/full/floats?format=json-seq")
    assert [_strict(r)["f"] for r in seq.text.split("\x1e") if r.strip()] == [1.0, None, None, None]
    column = httpx.get(f"{server}/column/full/floats/f?format=json")
    assert column.status_code == 200 and _strict(column.text) == [1.0, None, None, None]
    assert np.isinf(np.frombuffer(httpx.get(f"{server}/column/full/floats/f").content, "<f8")[1])  # (raw bytes keep them)


def test_array_json_of_objects_has_no_nan_or_infinity() -> None:
    from publisher.serializers.array import to_json

    assert _strict(to_json(np.array([1.0, float("inf"), None, "a", [float("nan")]], dtype=object)).decode()) == [1.0, None, None, "a", [None]]


@pytest.mark.parametrize("form", ["csv", "xlsx"])
def test_extension_and_view_columns_as_csv_and_excel(server: str, form: str) -> None:
    """UUIDs, JSON, tensors and string views are text in CSV and Excel, as in the JSON answer
    (pyarrow's CSV writer and openpyxl refused them: a 500)."""
    answer = httpx.get(f"{server}/table/full/ext?format={form}")
    assert answer.status_code == 200, answer.text
    if form == "csv":
        import pyarrow.csv as pacsv

        rows = pacsv.read_csv(io.BytesIO(answer.content), convert_options=pacsv.ConvertOptions(strings_can_be_null=True)).to_pylist()
    else:
        import openpyxl

        sheet = openpyxl.load_workbook(io.BytesIO(answer.content)).active
        head, *body = [list(r) for r in sheet.iter_rows(values_only=True)]
        rows = [dict(zip(head, r)) for r in body]
    assert rows == [{"u": "00000000-0000-0000-0000-000000000001", "j": '{"a":1}', "tens": "[1.0,2.0,3.0,4.0]", "sv": "a", "i": 1},
                    {"u": None, "j": None, "tens": None, "sv": None, "i": 2}]


@pytest.mark.parametrize("name", list(CHILDREN))
def test_columns_numpy_has_no_dtype_for_are_text_children(server: str, name: str) -> None:
    """Decimal, time, binary, nested, null and extension columns as array children: fixed-width
    text (Tiled's kind 'U', as it serves pandas' object columns), in every format and block
    (they were advertised as kind 'T', which the tiled client refuses, and were 500s as JSON,
    time64[ns] in any form)."""
    expected = CHILDREN[name][1]
    width = max(1, *map(len, expected))
    meta = httpx.get(f"{server}/column/metadata/cols/{name}")
    assert meta.status_code == 200, meta.text
    assert meta.json()["data"]["attributes"]["structure"]["data_type"] == {"kind": "U", "itemsize": 4 * width, "endianness": "little", "dt_units": None}
    as_json = httpx.get(f"{server}/column/full/cols/{name}?format=json")
    assert as_json.status_code == 200 and _strict(as_json.text) == expected, as_json.text
    raw = httpx.get(f"{server}/column/full/cols/{name}?slice=1:2")
    assert np.frombuffer(raw.content, f"<U{width}").tolist() == expected[1:]


@pytest.mark.parametrize(("name", "kind", "values"), [("b8", "i", [1, 0, 1]), ("f16", "f", [1.5, 2.0, 3.0])])
def test_extension_and_narrow_number_columns_stay_numbers(server: str, name: str, kind: str, values: list[float]) -> None:
    """An extension type stored as numbers (bool8: int8) was served as its numbers and stays so
    (taken for text once other extension types were)."""
    meta = httpx.get(f"{server}/column/metadata/numeric/{name}")
    assert meta.status_code == 200, meta.text
    assert meta.json()["data"]["attributes"]["structure"]["data_type"]["kind"] == kind
    assert httpx.get(f"{server}/column/full/numeric/{name}?format=json").json() == values


def test_text_children_read_by_the_tiled_client(server: str) -> None:
    from tiled.client import from_uri

    table = from_uri(server)["cols"]
    assert table["dec"].read().tolist() == ["1.25", ""]
    assert table["st"].read().tolist() == ['{"a":1}', ""]


def test_a_column_whose_name_holds_a_slash_is_a_child(server: str) -> None:
    """'a/b' is addressed quoted (a%2Fb) or as the tiled client sends it (a/b), beside a column 'a'."""
    from tiled.client import from_uri

    for path in ("names/a%2Fb", "names/a/b"):
        meta = httpx.get(f"{server}/column/metadata/{path}")
        assert meta.status_code == 200, (path, meta.text)
        assert meta.json()["data"]["links"]["full"].endswith("/column/full/names/a%2Fb")
        assert httpx.get(f"{server}/column/full/{path}?format=json").json() == [1, 2]
    assert httpx.get(f"{server}/column/full/names/a?format=json").json() == [7, 8]
    assert httpx.get(f"{server}/column/metadata/names/a/c").status_code == 404
    table = from_uri(server)["names"]
    assert table["a/b"].read().tolist() == [1, 2]


def test_a_column_named_empty_is_selected(server: str) -> None:
    answer = httpx.get(f"{server}/table/full/names", params={"column": "", "format": "parquet"})
    assert answer.status_code == 200, answer.text
    assert pq.read_table(io.BytesIO(answer.content)).to_pydict() == {"": [3, 4]}
    assert pq.read_table(io.BytesIO(httpx.get(f"{server}/table/full/cats?column=&format=parquet").content)).column_names == ["kind"]  # (no such column: all)
