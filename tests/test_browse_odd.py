"""The browse page with what facilities' names and values hold (a review helper's repros in a
real chromium): a refused download says why, TIFF and PNG are not offered for values they cannot
hold, a column named ``I/I0`` plots, a column named ``x, mm`` stays chosen in a shared address, a
raw ``%`` in the address opens the node, the tiled client's snippet reads names with ``#``, ``?``
and ``%``, and a signed-in page offers no index query for a node the index does not hold."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas
import pytest

from . import auth_world
from .browser import (  # noqa: F401
    Served,
    assert_no_errors,
    browser,
    page_for,
    ready_count,
    run_python,
    served_private,
    snippet,
    wait_ready,
)
from .conftest import ROOT, run_build
from .servers import publish_serve, serve_process


def _sources(folder: Path) -> None:
    folder.mkdir()
    np.save(folder / "cplx.npy", np.array([[1 + 2j, 3 - 1j], [0, 5j]]))
    np.save(folder / "words.npy", np.array(["ab", "cde"]))
    np.save(folder / "frame.npy", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    np.save(folder / "cube.npy", np.arange(4 * 32 * 32, dtype=np.uint16).reshape(4, 32, 32))
    for name in ("x#y", "q?r", "pct%zz"):
        np.save(folder / f"{name}.npy", np.arange(3) + len(name))
    pandas.DataFrame({"I/I0": [1.5, 2.5, 4.0], "x, mm": [0.1, 0.2, 0.3], "n": [1, 2, 3]}).to_csv(folder / "scatter.csv", index=False)


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("browse-odd")
    _sources(folder / "src")
    published = run_build(folder, {"sources": [{"path": "src", "into": ""}]})
    with publish_serve(published.store.url, cwd=ROOT) as url:
        yield Served(url, published)


def _open(page: Any, path: str = "", view: str = "", params: dict[str, str] | None = None) -> None:
    """Load the page at ``path`` (its segments percent-encoded as the page's links write them)."""
    query = urllib.parse.urlencode({**({"view": view} if view else {}), **(params or {})}, doseq=True)
    page.goto(f"/#/{'/'.join(urllib.parse.quote(p, safe='') for p in path.split('/') if p)}" + (f"?{query}" if query else ""))
    wait_ready(page, path, view)


def _formats(page: Any) -> list[str]:
    return page.eval_on_selector_all("#dl-format option", "os => os.map(o => o.textContent)")


def test_tiff_and_png_are_offered_for_numbers_only(browser: Any, odd: Served) -> None:  # noqa: F811
    """TIFF and PNG were offered for a complex and a text array, whose answer is a 400."""
    page = page_for(browser, odd.url)
    for path in ("cplx", "words"):
        _open(page, path, "download")
        assert not {"TIFF", "PNG image"} & set(_formats(page)), (path, _formats(page))
        assert "CSV" in _formats(page) or "JSON" in _formats(page)
    _open(page, "frame", "download")
    assert {"TIFF", "PNG image"} <= set(_formats(page))
    assert_no_errors(page)
    page.context.close()


def test_a_refused_download_says_why(browser: Any, odd: Served) -> None:  # noqa: F811
    """Anonymous downloads were a plain link: a refusal (here the server's answer limit) was a
    download the browser cancelled without a word, and the page said "Downloading". It now shows
    the server's reason; an accepted one is saved as before."""
    with serve_process(odd.store.url, cwd=ROOT, env={"SKYSHELF_MAX_ANSWER_BYTES": "2000"}) as (url, _):
        page = page_for(browser, url)
        _open(page, "frame", "download")
        page.select_option("#dl-format", label="JSON")
        page.get_by_role("button", name="Download", exact=True).click()
        page.wait_for_function("() => document.querySelector('.download .status').textContent.startsWith('The download failed')")
        said = page.inner_text(".download .status")
        assert "SKYSHELF_MAX_ANSWER_BYTES" in said or "limit" in said, said
        page.fill("#dl-slice", "0:2,0:3")
        with page.expect_download() as d:
            page.get_by_role("button", name="Download", exact=True).click()
        assert d.value.suggested_filename == "frame_0-2_0-3.json"
        assert page.inner_text(".download .status") == "Downloaded frame_0-2_0-3.json"
        assert_no_errors(page, allow=[r"Failed to load resource: .* 413", r"Failed to load resource: .* 4\d\d"])
        page.context.close()


def test_a_column_named_with_a_slash_plots(browser: Any, odd: Served) -> None:  # noqa: F811
    """``I/I0`` was asked as column/full/scatter/I/I0: a 404 ("no node at path 'scatter/I'")."""
    page = page_for(browser, odd.url)
    _open(page, "scatter")
    page.select_option("#table-column", "I/I0")
    page.wait_for_selector(".column-plot svg")
    assert page.get_attribute(".column-plot svg", "data-points") == "3"
    assert_no_errors(page)
    page.context.close()


def test_a_column_named_with_a_comma_stays_chosen_in_the_address(browser: Any, odd: Served) -> None:  # noqa: F811
    """Chosen columns were kept joined by commas: ``x, mm`` came back as ``x`` and `` mm``, neither
    a column, and left the selection and the URL after a reload."""
    page = page_for(browser, odd.url)
    _open(page, "scatter", "download")
    page.locator(".download .columns input[value='n']").uncheck()
    fragment = urllib.parse.urlparse(page.url).fragment
    assert urllib.parse.parse_qs(fragment.partition("?")[2])["columns"] == ["I/I0", "x, mm"]
    page.reload()
    wait_ready(page, "scatter", "download")
    checked = page.eval_on_selector_all(".download .columns input", "is => is.filter(i => i.checked).map(i => i.value)")
    assert checked == ["I/I0", "x, mm"]
    url = urllib.parse.urlsplit(page.input_value(".download input.url"))
    assert urllib.parse.parse_qs(url.query)["column"] == ["I/I0", "x, mm"]
    assert_no_errors(page)
    page.context.close()


def test_a_raw_percent_in_the_address_opens_the_node(browser: Any, odd: Served) -> None:  # noqa: F811
    """``#/pct%zz`` (a hand-typed or shared address): decodeURIComponent threw, and the page said
    "Could not load the catalog — URI malformed"."""
    page = page_for(browser, odd.url)
    page.goto("/#/pct%zz")
    wait_ready(page, "pct%zz")
    assert page.inner_text("h1") == "pct%zz"
    assert_no_errors(page)
    page.context.close()


@pytest.mark.parametrize("name", ["x#y", "q?r", "pct%zz"])
def test_the_tiled_client_snippet_reads_names_with_url_characters(browser: Any, odd: Served, name: str) -> None:  # noqa: F811
    """tiled's client puts a key into the URL as it is: ``client["x#y"]`` was a KeyError."""
    page = page_for(browser, odd.url)
    _open(page, name, "code")
    code = snippet(page, "Tiled client")
    assert run_python(code)["data"].tolist() == (np.arange(3) + len(name)).tolist(), code
    assert_no_errors(page)
    page.context.close()


def test_signed_in_no_index_query_for_a_private_node(browser: Any, served_private: Served) -> None:  # noqa: F811
    """The node index anyone reads holds public nodes only: the DuckDB snippet for a private node
    found no row. Not offered there; on a public node, signed in, it says so. Reloading a private
    deep link signed in asks nothing anonymously first (a 404 in the console)."""
    page = page_for(browser, served_private.url)
    _open(page)
    page.fill("#apikey-input", served_private.keys["a"])
    page.press("#apikey-input", "Enter")
    page.wait_for_selector("#auth .who")
    private = auth_world.NODES["table"]["a"]
    _open(page, private, "code")
    assert page.get_by_role("heading", name="DuckDB on the node index", exact=True).count() == 0
    _open(page, auth_world.NODES["table"]["public"], "code")
    assert page.get_by_role("heading", name="DuckDB on the node index", exact=True).count() == 1
    assert "public nodes only" in page.inner_text("#view")
    anonymous: list[str] = []
    page.on("response", lambda r: anonymous.append(r.url) if r.status == 404 and "/api/v1/" in r.url else None)
    page.goto(f"/#/{private}?view=code")
    page.reload()
    wait_ready(page, private, "code")
    assert anonymous == [] and page.get_by_role("heading", name="DuckDB on the node index", exact=True).count() == 0
    assert_no_errors(page)
    page.context.close()


def test_a_page_past_the_last_leads_back(browser: Any, odd: Served) -> None:  # noqa: F811
    """``page=`` past the last (an old link to a container that shrank) said "No items on this
    page." with no way back but the breadcrumbs."""
    page = page_for(browser, odd.url)
    _open(page, "", params={"page": "99"})
    assert "No items on this page" in page.inner_text("#view")
    seen = ready_count(page)
    page.get_by_role("link", name="Go to its last page").click()
    wait_ready(page, "", after=seen)  # (the page past the last was a view of "" too)
    assert page.locator("table.children tbody tr").count() == 8  # (the eight sources)
    assert_no_errors(page)
    page.context.close()


def test_complex_values_read_as_complex_numbers(browser: Any, odd: Served) -> None:  # noqa: F811
    """The text preview showed a complex array's [re, im] pairs as one more dimension: a 2 × 2
    complex array looked like a 2 × 2 × 2 real one."""
    page = page_for(browser, odd.url)
    _open(page, "cplx")
    assert page.inner_text("pre.array-text") == "[[1+2j,3-1j],\n [0+0j,0+5j]]"
    assert_no_errors(page)
    page.context.close()


def test_the_download_and_code_tabs_take_the_frame_the_preview_shows(browser: Any, odd: Served) -> None:  # noqa: F811
    """A frame chosen with the slider was lost on the way to the Download tab ("the whole array"
    chosen, a PNG refused as 3-D): the tabs' links carry the preview's slice."""
    page = page_for(browser, odd.url)
    _open(page, "cube")
    slider = page.get_by_role("slider")
    slider.focus()
    slider.press("ArrowRight")
    slider.press("ArrowRight")
    page.wait_for_function("() => location.hash.includes('slice=2')")
    page.get_by_role("link", name="Download", exact=True).click()
    wait_ready(page, "cube", "download")
    assert page.input_value("#dl-slice") == "2,:,:" and page.is_checked("input[value=slice]")
    page.select_option("#dl-format", label="PNG image")
    assert not page.is_disabled("#dl-go")
    page.get_by_role("link", name="Code", exact=True).click()
    wait_ready(page, "cube", "code")
    assert "node[2,:,:]" in snippet(page, "Tiled client")
    assert_no_errors(page)
    page.context.close()
