"""The browse page's table preview (issue 14) in a real chromium: the first rows as the published
Parquet holds them, under headers naming each column's type as pyarrow does (decoded in the page
from ``structure.arrow_schema`` by arrow.js), and a chosen column drawn as a line plot whose
points are that column's values, restored by a deep link."""

from __future__ import annotations

import base64
import math
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .browser import (Served, assert_no_errors, browser, open_view, page_for, screenshot,  # noqa: F401
                      served_demo)
from .conftest import ROOT, run_build
from .servers import publish_serve

LOG = "tables/temperature_log"  # 240 rows: time (timestamp[us]), setpoint, sample_temperature, heater_output
COUNTERS = "scans/scan_0001/entry/counters"  # 12 rows, units in the metadata

#: Every Arrow type family the decoder knows, as pyarrow spells them.
SCHEMA = pa.schema([
    ("i8", pa.int8()), ("u16", pa.uint16()), ("i64", pa.int64()), ("u64", pa.uint64()), ("f16", pa.float16()),
    ("f32", pa.float32()), ("f64", pa.float64()), ("s", pa.string()), ("ls", pa.large_string()), ("b", pa.bool_()),
    ("bin", pa.binary()), ("lbin", pa.large_binary()), ("fsb", pa.binary(4)), ("n", pa.null()),
    ("ts_s", pa.timestamp("s")), ("ts_us", pa.timestamp("us")), ("ts_tz", pa.timestamp("ns", tz="UTC")),
    ("d32", pa.date32()), ("d64", pa.date64()), ("t32", pa.time32("ms")), ("t64", pa.time64("ns")),
    ("dur", pa.duration("s")), ("dec", pa.decimal128(10, 2)), ("dec256", pa.decimal256(40, 3)),
    ("lst", pa.list_(pa.int64())), ("llst", pa.large_list(pa.float32())), ("fsl", pa.list_(pa.int16(), 3)),
    ("st", pa.struct([("a", pa.int32()), ("b", pa.string())])), ("mp", pa.map_(pa.string(), pa.int64())),
    ("dict", pa.dictionary(pa.int8(), pa.string())), ("dictu", pa.dictionary(pa.uint32(), pa.string(), ordered=True)),
    ("iv", pa.month_day_nano_interval()), ("sv", pa.string_view()), ("lv", pa.list_view(pa.int8())),
    pa.field("required", pa.int32(), nullable=False),
])


def published_table(served: Served, path: str) -> pa.Table:
    return pq.read_table(served.published.url(path))


def hash_params(page: Any) -> dict[str, str]:
    fragment = urllib.parse.urlparse(page.url).fragment
    return {k: v[0] for k, v in urllib.parse.parse_qs(fragment.partition("?")[2]).items()}


def test_arrow_schema_decoded_as_pyarrow_names_it(browser: Any, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url)
    open_view(page, "")
    encoded = "data:application/vnd.apache.arrow.file;base64," + base64.b64encode(SCHEMA.serialize().to_pybytes()).decode()
    got = page.evaluate("async (s) => (await import('/ui/arrow.js')).arrowSchema(s)", encoded)
    assert got == [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in SCHEMA]
    assert_no_errors(page)


def test_first_rows_under_typed_headers(browser: Any, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    open_view(page, LOG)
    table = published_table(served_demo, LOG)
    headers = page.eval_on_selector_all("table.rows thead th[data-column]", "ths => ths.map(t => [t.dataset.column,"
                                        " t.querySelector('.type').textContent])")
    assert headers == [[f.name, str(f.type)] for f in table.schema]
    assert "timestamp[us]" in dict(headers).values()
    cells = page.eval_on_selector_all("table.rows tbody tr", "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => c.textContent))")
    assert len(cells) == 100 < table.num_rows
    assert page.inner_text(".rows-note") == f"The first 100 of {table.num_rows} rows."
    assert page.evaluate("document.querySelector('.rows-note').nextSibling.className") == "table-scroll"  # nothing between
    for i in (0, 1, 57, 99):
        row = cells[i]
        for j, name in enumerate(table.column_names):
            value = table.column(name)[i].as_py()
            if isinstance(value, float):
                assert math.isclose(float(row[j]), value), (i, name)
            else:
                assert row[j] == value.isoformat(), (i, name)
    rows_asked = [u for u in requests if "/table/full/" in u]
    assert len(rows_asked) == 1 and urllib.parse.parse_qs(urllib.parse.urlparse(rows_asked[0]).query)["slice"] == ["0:100"]
    screenshot(page, "table-preview")
    assert_no_errors(page)


def test_units_from_metadata_and_all_rows_when_few(browser: Any, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url)
    open_view(page, COUNTERS)
    assert page.inner_text(".rows-note") == "All 12 rows."
    units = page.eval_on_selector_all("table.rows thead th[data-column]", "ths => ths.map(t => t.querySelector('.units')?.textContent)")
    assert units == ["counts", "counts", "s", "deg"]
    assert page.locator("table.rows tbody tr").count() == 12
    assert_no_errors(page)


def plotted_points(page: Any) -> list[tuple[float, float]]:
    """The polyline points of the column plot, in SVG coordinates, gaps joined."""
    lines = page.eval_on_selector_all(".column-plot svg .series > *", "els => els.map(e => e.getAttribute('points')"
                                      " || `${e.getAttribute('cx')},${e.getAttribute('cy')}`)")
    points = [tuple(map(float, p.split(","))) for line in lines for p in line.split() if "," in p]
    return points  # type: ignore[return-value]


def test_column_plot_is_the_column(browser: Any, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url)
    open_view(page, LOG)
    with page.expect_response(lambda r: "/table/full/tables/temperature_log?" in r.url and "column=heater_output" in r.url) as answer:
        page.select_option("#table-column", "heater_output")
    page.wait_for_selector(".column-plot svg")
    asked = urllib.parse.parse_qs(urllib.parse.urlparse(answer.value.url).query)
    assert asked["slice"] == ["0:240:1"]
    values = published_table(served_demo, LOG).column("heater_output").to_pylist()
    assert answer.value.json() == {"heater_output": values}
    assert hash_params(page)["column"] == "heater_output"
    assert page.get_attribute(".column-plot svg", "aria-label")  # the plot names itself to a screen reader
    points = plotted_points(page)
    finite = [v for v in values if v is not None and math.isfinite(v)]
    assert len(points) == len(finite) == int(page.get_attribute(".column-plot svg", "data-points"))
    # higher value, higher on screen (SVG y grows downwards): the drawn order is the values' order
    hi, lo = max(range(len(finite)), key=finite.__getitem__), min(range(len(finite)), key=finite.__getitem__)
    assert points[hi][1] < points[lo][1]
    assert page.inner_text(".plot-note") == "All 240 rows."

    # a deep link restores the plotted column (and its x column)
    page2 = page_for(browser, served_demo.url)
    open_view(page2, LOG, params={"column": "sample_temperature", "x": "setpoint"})
    page2.wait_for_selector(".column-plot svg")
    assert page2.input_value("#table-column") == "sample_temperature" and page2.input_value("#table-x") == "setpoint"
    assert "setpoint" in page2.text_content(".column-plot svg")
    # none: the plot goes and the address forgets the column
    page2.select_option("#table-column", "")
    assert page2.locator(".column-plot svg").count() == 0 and "column" not in hash_params(page2)
    for p in (page, page2):
        assert_no_errors(p)


def test_column_against_time(browser: Any, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url)
    open_view(page, LOG, params={"column": "setpoint", "x": "time"})
    page.wait_for_selector(".column-plot svg")
    assert page.input_value("#table-x") == "time"
    times = published_table(served_demo, LOG).column("time").to_pylist()
    labels = page.eval_on_selector_all(".column-plot svg text", "ts => ts.map(t => t.textContent)")
    # the x axis is labelled with dates of the column's span, not row numbers
    assert any(label.startswith(times[0].strftime("%Y-%m-%d")) or label.startswith(times[0].strftime("%H:")) for label in labels), labels
    assert "row" not in labels
    assert_no_errors(page)


@pytest.fixture(scope="module")
def long_table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A 5000-row CSV table: ``i`` (int), ``v`` (float), ``label`` (text)."""
    folder = tmp_path_factory.mktemp("browse-table-long")
    lines = ["i,v,label"] + [f"{i},{math.sin(i / 50):.6f},row{i}" for i in range(5000)]
    (folder / "long.csv").write_text("\n".join(lines) + "\n")
    published = run_build(folder, {"sources": [{"path": str(folder / "long.csv"), "into": "long"}]})
    (path,) = [e["path"] for e in published.entries() if e["family"] == "table"]
    with publish_serve(published.store.url, cwd=ROOT) as url:
        yield url, path


def test_long_table_first_rows_and_strided_plot(browser: Any, long_table: tuple[str, str]) -> None:
    url, path = long_table
    page = page_for(browser, url)
    open_view(page, path)
    assert page.inner_text(".rows-note") == "The first 100 of 5,000 rows."
    assert page.locator("table.rows tbody tr").count() == 100
    options = page.eval_on_selector_all("#table-column option", "os => os.map(o => o.value)")
    assert options == ["", "i", "v"]  # text is not plotted
    with page.expect_response(lambda r: f"/table/full/{path}?" in r.url and "column=v" in r.url) as answer:
        page.select_option("#table-column", "v")
    page.wait_for_selector(".column-plot svg")
    assert urllib.parse.parse_qs(urllib.parse.urlparse(answer.value.url).query)["slice"] == ["0:5000:3"]
    assert page.get_attribute(".column-plot svg", "data-points") == "1667"
    assert page.inner_text(".plot-note") == "One row in 3: 1,667 of 5,000 rows drawn."
    assert_no_errors(page)


def test_rows_refused_by_the_server_say_why(browser: Any, served_demo: Served,  # noqa: F811
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYSHELF_MAX_ANSWER_BYTES", "1000")  # 100 rows × 4 float columns is 3200 bytes
    with publish_serve(served_demo.store.url, cwd=ROOT) as url:
        page = page_for(browser, url)
        open_view(page, LOG)
        alert = page.inner_text("[role=alert]")
        assert alert.startswith("Could not load the first rows:") and "would take" in alert
        # the typed headers and the plot controls stay; a refused column says so in place of the plot
        assert page.locator("table.rows thead th[data-column]").count() == 4
        page.select_option("#table-column", "setpoint")
        page.wait_for_selector(".column-plot .error")
        assert "Could not load column setpoint" in page.inner_text(".column-plot .error")
        assert_no_errors(page, allow=[r"Failed to load resource: .* 400"])


def test_phone_width(browser: Any, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url, viewport={"width": 390, "height": 844})
    open_view(page, LOG, params={"column": "setpoint"})
    page.wait_for_selector(".column-plot svg")
    # the rows scroll inside their box; the page itself does not scroll sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_no_errors(page)
