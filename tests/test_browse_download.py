"""The browse page's Download and Code tabs (issue 14) in a real chromium: what the page saves is
what the published store holds (an array slice as CSV, a 2-D slice as PNG, two chosen table
columns as CSV, NPY), under the handler's own file name, with its size estimated before the
download; the Code tab's snippets run as they are (tiled, zarr, xarray, pandas, polars, DuckDB,
curl), quote any node name correctly and never hold a credential; a signed-in download carries
the key; it all fits a phone."""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas
import pyarrow.parquet as pq
import pytest
import zarr
from PIL import Image

from . import auth_world
from .browser import (Served, assert_no_errors, browser, open_view, page_for, run_python, screenshot, snippet,  # noqa: F401
                      served_demo, served_private)
from .conftest import ROOT
from .servers import publish_serve

DATA = "scans/scan_0001/entry/data/data"  # 12 × 256 × 256 uint16
DATASET = "scans/scan_0001/entry/data"  # an NXdata / xarray_dataset group
TABLE = "scans/scan_0001/entry/counters"  # 12 rows: I0, It, seconds, th


def published_array(served: Served, path: str) -> Any:
    """The array as the build wrote it (read from the store, not through the API)."""
    return zarr.open_array(served.published.url(path), mode="r")


def download(page: Any, tmp_path: Path) -> Path:
    """Click Download and save what the browser receives under the name it suggests."""
    with page.expect_download() as d:
        page.get_by_role("button", name="Download", exact=True).click()
    target = tmp_path / d.value.suggested_filename
    d.value.save_as(target)
    return target


def url_field(page: Any) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(page.input_value(".download input.url")).query)


def test_a_slice_as_csv_holds_the_published_numbers(
        browser: Any, served_demo: Served, tmp_path: Path,  # noqa: F811
) -> None:
    page = page_for(browser, served_demo.url)
    open_view(page, DATA, "download", {"slice": "3,0:10,0:5"})
    assert page.input_value("#dl-slice") == "3,0:10,0:5"
    assert page.is_checked("input[name=dl-what][value=slice]")
    page.select_option("#dl-format", label="CSV")
    assert page.input_value("#dl-name") == "data_3_0-10_0-5.csv"
    assert url_field(page)["slice"] == ["3,0:10,0:5"] and url_field(page)["format"] == ["csv"]
    bound = int(page.locator("#dl-size").get_attribute("data-bytes"))
    saved = download(page, tmp_path)
    assert saved.name == "data_3_0-10_0-5.csv"
    assert saved.stat().st_size <= bound  # as text the estimate is a bound
    values = np.loadtxt(saved, delimiter=",")
    np.testing.assert_array_equal(values, published_array(served_demo, DATA)[3, 0:10, 0:5])
    screenshot(page, "download")
    assert_no_errors(page)
    page.context.close()


def test_a_2d_slice_as_png_has_the_slice_shape_and_a_3d_one_is_refused(
        browser: Any, served_demo: Served, tmp_path: Path,  # noqa: F811
) -> None:
    page = page_for(browser, served_demo.url)
    open_view(page, DATA, "download")
    page.select_option("#dl-format", label="PNG image")
    assert page.is_disabled("#dl-go")  # the whole 12 × 256 × 256 array is no image
    assert "2-D" in page.inner_text(".download .problem")
    page.fill("#dl-slice", "7,10:74,0:128")
    assert page.is_enabled("#dl-go")
    assert page.input_value("#dl-name") == "data_7_10-74_0-128.png"
    assert "slice=7%2C10%3A74%2C0%3A128" in page.url  # the slice is kept in the address
    saved = download(page, tmp_path)
    assert saved.name == "data_7_10-74_0-128.png"
    assert Image.open(saved).size == (128, 64)  # width × height of the 64 × 128 slice
    page.fill("#dl-slice", "40,0:10")
    assert "outside dimension 0" in page.inner_text(".download .problem") and page.is_disabled("#dl-go")
    assert_no_errors(page)
    page.context.close()


def test_two_chosen_columns_as_csv_equal_the_published_parquet(
        browser: Any, served_demo: Served, tmp_path: Path,  # noqa: F811
) -> None:
    page = page_for(browser, served_demo.url)
    open_view(page, TABLE, "download")
    assert page.input_value("#dl-format") == "application/x-parquet"  # the first offered
    page.get_by_role("button", name="None").click()
    assert page.is_disabled("#dl-go")
    page.get_by_label("I0", exact=True).check()
    page.get_by_label("th", exact=True).check()
    page.select_option("#dl-format", label="CSV")
    assert url_field(page)["column"] == ["I0", "th"]
    assert "columns=I0&columns=th" in page.url  # (repeated: a name may hold a comma)
    size = page.locator("#dl-size")
    assert int(size.get_attribute("data-bytes")) == 12 * 2 * 8 * 3 and "estimate" in size.inner_text()
    saved = download(page, tmp_path)
    assert saved.name == "counters.csv"
    got = pandas.read_csv(saved)
    expected = pq.read_table(served_demo.published.url(TABLE), columns=["I0", "th"]).to_pandas()
    assert list(got.columns) == ["I0", "th"]
    pandas.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)
    assert_no_errors(page)
    page.context.close()


def test_the_npy_size_is_shape_times_itemsize_before_the_download(
        browser: Any, served_demo: Served, tmp_path: Path,  # noqa: F811
) -> None:
    page = page_for(browser, served_demo.url)
    open_view(page, DATA, "download")
    size = page.locator("#dl-size")
    assert page.input_value("#dl-format") == "application/x-npy"
    assert int(size.get_attribute("data-bytes")) == 12 * 256 * 256 * 2
    assert "≈ 1.6 MB" in size.inner_text() and "estimate" in size.inner_text()
    page.check("input[name=dl-what][value=slice]")
    page.fill("#dl-slice", "0:2,::2,:")
    assert int(size.get_attribute("data-bytes")) == 2 * 128 * 256 * 2
    saved = download(page, tmp_path)
    assert saved.name == "data_0-2_--2.npy"
    data = np.load(saved)
    np.testing.assert_array_equal(data, published_array(served_demo, DATA)[0:2, ::2, :])
    assert data.nbytes == 2 * 128 * 256 * 2 and saved.stat().st_size == data.nbytes + 128  # NPY's header
    page.check("input[name=dl-what][value=whole]")
    assert page.input_value("#dl-name") == "data.npy" and "slice" not in url_field(page)
    assert_no_errors(page)
    page.context.close()


def py_strings(code: str) -> list[str]:
    """The string literals of a Python snippet (it must parse)."""
    nodes = ast.walk(ast.parse(code))
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_the_code_snippets_run_as_they_are(
        browser: Any, served_demo: Served, tmp_path: Path,  # noqa: F811
) -> None:
    page = page_for(browser, served_demo.url)
    open_view(page, DATA, "code", {"slice": "3,0:10,0:5"})
    expected = published_array(served_demo, DATA)[3, 0:10, 0:5]
    tiled = snippet(page, "Tiled client")
    assert f'"{DATA}"' in tiled
    np.testing.assert_array_equal(run_python(tiled)["data"], expected)
    zarr_code = snippet(page, "zarr")
    direct = f"{served_demo.url}/files/{served_demo.published.node(DATA)['data_url']}"
    assert direct in py_strings(zarr_code)  # the node's data source: its published Zarr array
    np.testing.assert_array_equal(run_python(zarr_code)["data"], expected)
    da = run_python(snippet(page, "xarray"))["da"]
    np.testing.assert_array_equal(da.values, published_array(served_demo, DATA)[...])
    curl = snippet(page, "curl")
    if shutil.which("curl"):
        subprocess.run(["bash", "-c", curl], cwd=tmp_path, check=True, capture_output=True)
        np.testing.assert_array_equal(np.load(tmp_path / "data_3_0-10_0-5.npy"), expected)
    # DuckDB reads the index over HTTP with its httpfs extension (fetched from the internet): here
    # the same query runs on a local copy of the file the snippet names.
    duck = snippet(page, "DuckDB on the node index")
    index_url = re.search(r'"(http://[^"]+\.parquet)"', duck).group(1)
    local = tmp_path / "nodes.parquet"
    local.write_bytes(urllib.request.urlopen(index_url).read())
    rows = run_python(duck.replace(index_url, str(local)))["rows"]
    assert rows["path"].tolist() == [DATA] and rows["family"].tolist() == ["array"]
    screenshot(page, "code")
    assert_no_errors(page)

    open_view(page, TABLE, "code")
    published = pq.read_table(served_demo.published.url(TABLE)).to_pandas()
    for name in ("pandas", "polars"):
        code = snippet(page, name)
        assert TABLE in code
        df = run_python(code)["df"]
        pandas.testing.assert_frame_equal(df if name == "pandas" else df.to_pandas(), published)
    assert len(run_python(snippet(page, "Tiled client"))["df"]) == 12

    open_view(page, DATASET, "code")
    ds = run_python(snippet(page, "xarray"))["ds"]
    assert "data" in ds.data_vars
    duck = snippet(page, "DuckDB on the node index")
    rows = run_python(duck.replace(index_url, str(local)))["rows"]
    assert sorted(rows["path"]) == [DATA, f"{DATASET}/th"]

    open_view(page, "frames", "code")  # a folder: no Zarr snippet that would 404
    assert not page.get_by_role("heading", name="zarr", exact=True).count()
    assert "A folder of the catalog" in page.inner_text("#view")
    assert_no_errors(page)
    page.context.close()


ODD = "odd/it's \"q\" & $HOME"


@pytest.mark.parametrize("family", ["array", "table", "container"])
def test_a_node_name_with_quotes_is_quoted_in_every_snippet(
        browser: Any, served_demo: Served, family: str,  # noqa: F811
) -> None:
    """Snippets are built from the node's path: Python sees it as one string, the shell as one word."""
    page = page_for(browser, served_demo.url)
    open_view(page, DATA, "code")
    codes = page.evaluate("""async ([path, family]) => {
        const { snippets } = await import('/ui/code.js');
        const { Api } = await import('/ui/api.js');
        const ctx = { path, params: new URLSearchParams(), api: new Api(),
                      node: { attributes: { structure_family: family, specs: [{ name: 'xarray_dataset' }] } },
        };
        const index = location.origin + "/files/x/nodes.parquet";
        return snippets(ctx, { origin: location.origin, source: null, index })
          .filter((s) => s.querySelector('code'))
          .map((s) => [s.querySelector('h2').textContent, s.querySelector('code').textContent]);
    }""", [ODD, family])
    assert len(codes) >= 4
    for title, code in codes:
        if title == "curl":
            words = shlex.split(code)
            url = urllib.parse.urlsplit(words[-1])
            assert urllib.parse.unquote(url.path).endswith("/" + ODD)
            assert words[words.index("-o") + 1].startswith("it's \"q\" & $HOME.")
            continue
        strings = py_strings(code)
        paths = [urllib.parse.unquote(urllib.parse.urlsplit(s).path) for s in strings]
        wanted = "/odd" if title == "xarray" and family == "array" else "/" + ODD  # xarray: the parent group
        assert ODD in strings or any(p.endswith(wanted) for p in paths), (title, code)
    assert_no_errors(page)
    page.context.close()


def test_signed_in_the_download_carries_the_key_and_the_snippets_do_not(
        browser: Any, served_private: Served, tmp_path: Path,  # noqa: F811
) -> None:
    key = served_private.keys["a"]
    page = page_for(browser, served_private.url)
    open_view(page)
    page.fill("#apikey-input", key)
    page.press("#apikey-input", "Enter")  # the key form's submit (labelled "Sign in" or "Use key")
    page.wait_for_selector("#auth .who")
    path = auth_world.NODES["array"]["a"]
    open_view(page, path, "download")
    page.select_option("#dl-format", label="CSV")
    with page.expect_request(lambda r: "/array/full/" in r.url and "format=csv" in r.url) as asked:
        saved = download(page, tmp_path)
    assert asked.value.headers.get("authorization") == f"Apikey {key}"
    assert key not in page.input_value(".download input.url")
    np.testing.assert_array_equal(np.loadtxt(saved, delimiter=","), auth_world.IMAGE)
    open_view(page, path, "code")
    text = page.inner_text("#view")
    assert key not in text and "<your API key>" in text
    assert "-H 'Authorization: Apikey <your API key>'" in snippet(page, "curl")
    zarr_code = snippet(page, "zarr")  # a private object is not readable at its address: the API's route
    assert f'zarr.open_array("{served_private.url}/api/v1/zarr/v3/{path}"' in zarr_code
    assert 'storage_options={"headers": headers}' in zarr_code and "Apikey <your API key>" in zarr_code
    assert_no_errors(page)
    page.context.close()


def test_download_and_code_fit_a_phone(browser: Any, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url, viewport={"width": 390, "height": 844})
    for path, view in ((DATA, "download"), (TABLE, "download"), (DATA, "code")):
        open_view(page, path, view)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, (path, view)
        page.keyboard.press("Tab")  # everything is reachable by keyboard: focus moves through real controls
    open_view(page, TABLE, "download")
    page.focus("#dl-format")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.type") == "checkbox"
    screenshot(page, "download-phone")
    assert_no_errors(page)
    page.context.close()


def test_a_chosen_file_name_keeps_its_stem_when_the_format_changes(
        browser: Any, served_demo: Served,  # noqa: F811
) -> None:
    page = page_for(browser, served_demo.url)
    open_view(page, DATA, "download")
    page.fill("#dl-name", "frame three.npy")
    page.select_option("#dl-format", label="CSV")
    assert page.input_value("#dl-name") == "frame three.csv"
    assert url_field(page)["filename"] == ["frame three.csv"]
    assert_no_errors(page)
    page.context.close()


def test_the_page_warns_where_publisher_limits_would_refuse(
        browser: Any, served_demo: Served,  # noqa: F811
) -> None:
    """The page's copy of limits.py's factors gives the same build cost as the server's check."""
    from publisher import limits

    page = page_for(browser, served_demo.url)
    open_view(page, DATA, "download")
    types = sorted(set(limits.FACTORS) | set(limits.PER_VALUE))
    got = page.evaluate("""async (types) => {
        const { buildCost } = await import('/ui/download.js');
        const array = { data_type: { kind: 'f', itemsize: 4 } };
        return types.map((t) => [buildCost('array', array, t, { shape: [1000, 300] }),
                                 buildCost('table', { row_count: 1000 }, t, { columns: 3 })]);
    }""", types)
    for media_type, (array_cost, table_cost) in zip(types, got, strict=True):
        data = 1000 * 300 * 4
        factor = limits.array_factor(media_type, 4)
        assert array_cost == pytest.approx(limits.cost(data, media_type, factor)), media_type
        if media_type not in limits.PER_VALUE or media_type in limits.FACTORS:
            assert table_cost == pytest.approx(limits.cost(1000 * 3 * 8, media_type)), media_type
    warning = page.locator(".download .warning")
    assert warning.is_hidden()  # 1.5 MB as NPY: nothing to say
    assert_no_errors(page)
    page.context.close()


def test_a_container_downloads_as_hdf5_with_its_arrays(
        browser: Any, served_demo: Served, tmp_path: Path,  # noqa: F811
) -> None:
    import h5py

    page = page_for(browser, served_demo.url)
    open_view(page, DATASET, "download")
    assert page.input_value("#dl-format") == "application/x-hdf5"
    assert page.inner_text("#dl-size") == "Size: not known before the download"
    saved = download(page, tmp_path)
    assert saved.name == "data.h5"
    with h5py.File(saved) as f:
        np.testing.assert_array_equal(f["data"][...], published_array(served_demo, DATA)[...])
    assert_no_errors(page)
    page.context.close()


def test_a_pinned_release_reaches_the_download_and_the_snippets(
        browser: Any, served_demo: Served, tmp_path: Path,  # noqa: F811
) -> None:

    release = json.load(urllib.request.urlopen(f"{served_demo.url}/api/v1/"))["meta"]["release"]
    page = page_for(browser, served_demo.url)
    open_view(page, TABLE, "download", {"release": release})
    assert url_field(page)["release"] == [release]
    assert pandas.read_parquet(download(page, tmp_path)).shape == (12, 4)
    open_view(page, TABLE, "code", {"release": release})
    assert f"release={release}" in snippet(page, "curl")
    assert f"/files/releases/{release}/index/nodes.parquet" in snippet(page, "DuckDB on the node index")
    assert_no_errors(page)
    page.context.close()


def test_copy_puts_the_url_on_the_clipboard_or_selects_it(
        browser: Any, served_demo: Served,  # noqa: F811
) -> None:
    page = page_for(browser, served_demo.url, permissions=["clipboard-read", "clipboard-write"])
    open_view(page, DATA, "download", {"slice": "1"})
    page.locator(".copyfield").get_by_role("button", name="Copy").click()
    page.wait_for_function("() => document.querySelector('.copyfield .copied').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == page.input_value(".download input.url")
    open_view(page, DATA, "code")
    page.get_by_role("button", name="Copy the curl snippet").click()
    assert page.evaluate("navigator.clipboard.readText()") == snippet(page, "curl")
    assert_no_errors(page)
    page.context.close()

    page = page_for(browser, served_demo.url)  # no clipboard (plain http off localhost): the text is selected
    page.add_init_script("Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined })")
    open_view(page, DATA, "code")
    page.get_by_role("button", name="Copy the zarr snippet").click()
    page.wait_for_function("() => document.getSelection().toString().length > 0")
    assert page.evaluate("document.getSelection().toString()").strip() == snippet(page, "zarr").strip()
    assert "Ctrl+C" in page.locator(".snippet .copied").nth(1).inner_text()
    assert_no_errors(page)
    page.context.close()


def test_a_large_answer_is_saved_through_its_redirect(
        browser: Any, served_demo: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    """Past SKYSHELF_MAX_BODY_BYTES the API answers 307 to a stored copy: the link follows it and
    the file keeps the asked name and the slice's numbers."""
    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "100000")  # the slice as CSV: 200 KB
    with publish_serve(served_demo.store.url, cwd=ROOT) as url:
        page = page_for(browser, url)
        open_view(page, DATA, "download", {"slice": "3"})
        page.select_option("#dl-format", label="CSV")
        assert httpx.get(page.input_value(".download input.url")).status_code == 307  # spilled, not inline
        saved = download(page, tmp_path)
        assert saved.name == "data_3.csv"
        np.testing.assert_array_equal(np.loadtxt(saved, delimiter=","), published_array(served_demo, DATA)[3])
        assert_no_errors(page)
        page.context.close()
