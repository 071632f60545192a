"""Answers split over the cores give exactly the one-piece result: CSV by row ranges, zstd by
frames; and the PNG lookup-table path for small integers maps values as the float path does."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from publisher.parallel import cores, map_parts, spans
from publisher.serializers.png import _small_ints_to_u1, _to_u1
from publisher.serializers.table import CSV_PARALLEL_ROWS, to_csv


@given(st.integers(0, 10_000), st.integers(1, 9))
def test_spans_cover_in_order(total: int, parts: int) -> None:
    got = spans(total, parts)
    assert got[0][0] == 0 and got[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(got, got[1:]))
    sizes = [b - a for a, b in got]
    assert max(sizes) - min(sizes) <= 1


def test_map_parts_keeps_order() -> None:
    assert list(map_parts(lambda x: x * x, list(range(50)))) == [x * x for x in range(50)]


@pytest.mark.parametrize("rows", [0, 5, CSV_PARALLEL_ROWS - 1, CSV_PARALLEL_ROWS, 50_001])
def test_csv_by_row_ranges_equals_one_piece(rows: int) -> None:
    rng = np.random.default_rng(rows)
    awkward = np.array(['plain', 'with,comma', 'with "quotes"', 'multi\nline', 'ünï', ''], dtype=object)
    table = pa.table({
        "x": rng.normal(size=rows),
        "n": pa.array(rng.integers(-5, 5, rows), mask=rng.random(rows) < 0.1),
        "s": pa.array(awkward[rng.integers(0, len(awkward), rows)], mask=rng.random(rows) < 0.1),
        "t": pa.array(np.arange(rows).astype("datetime64[s]")),
    })
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    assert to_csv(table) == sink.getvalue().to_pybytes()


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "identity"])
def test_pieces_are_compressed_into_one_stream_that_clients_decode(encoding: str) -> None:
    """CSV pieces made side by side and compressed as they arrive form one zstd frame or gzip
    member: the tiled client's zstd decoder reads a single frame only."""
    import httpx._decoders
    import tiled.client.decoders  # noqa: F401  (registers tiled's own zstd decoder with httpx)
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    from handlers.http import _encode_parts
    from handlers.local import event_for
    from publisher.serializers.table import csv_parts

    rows = 3 * CSV_PARALLEL_ROWS
    table = pa.table({"x": np.random.default_rng(0).normal(size=rows), "i": np.arange(rows)})
    pieces = list(csv_parts(table))
    assert (len(pieces) > 2) == (cores() > 1)
    app = APIGatewayHttpResolver()
    app.current_event = app._to_proxy_event(event_for("GET", "/", "", {"accept-encoding": encoding}, "127.0.0.1"))
    raw, total, packed, used = _encode_parts(iter(pieces), app, "text/csv")
    body = b"".join(raw)
    assert body == to_csv(table) and total == len(body) and used == (None if encoding == "identity" else encoding)
    if used is not None:
        decoder = httpx._decoders.SUPPORTED_DECODERS[used]()
        assert decoder.decode(packed) + decoder.flush() == body


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(st.sampled_from(["u1", "i1", "u2", "i2", "?"]), hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=20)),
    st.none() | st.tuples(st.floats(-1e5, 1e5), st.floats(-1e5, 1e5)),
    st.booleans(),
)
def test_png_lookup_table_maps_as_the_float_path(plane: np.ndarray, rescale: tuple[float, float] | None, log: bool) -> None:
    assume(not log or rescale is None or 0 < rescale[0] <= rescale[1])  # what png_check lets through on a log scale
    index, bounds = _small_ints_to_u1(plane, rescale, log=log)
    if plane.size:
        expected, expected_bounds = _to_u1(plane.astype("f8"), rescale, log)
        assert bounds == expected_bounds
    else:
        expected = np.zeros(plane.shape, dtype="u1")
    np.testing.assert_array_equal(index, expected)


def test_an_xlsx_answer_is_the_same_bytes_whenever_it_is_made() -> None:
    """openpyxl dates the workbook and its zip parts with the time of saving: two requests two
    seconds apart had one ETag and two bodies (caches and If-None-Match kept either). Read back by
    pandas as the table."""
    import io
    import time
    import zipfile

    import pandas as pd
    import pyarrow as pa

    from publisher.serializers.table import to_xlsx

    table = pa.table({"a": [1, 2, 3], "b": ["x", "y\x01", None], "c": [0.5, float("nan"), 2.0]})
    first = to_xlsx(table)
    time.sleep(2.1)  # (a zip's times are to two seconds)
    assert to_xlsx(table) == first
    assert {i.date_time for i in zipfile.ZipFile(io.BytesIO(first)).infolist()} == {(1980, 1, 1, 0, 0, 0)}
    back = pd.read_excel(io.BytesIO(first), sheet_name="data")
    assert list(back.columns) == ["a", "b", "c"] and back["a"].tolist() == [1, 2, 3] and back["b"].tolist()[:2] == ["x", "y\ufffd"]
