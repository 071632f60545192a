"""The browse page's text preview of arrays it cannot draw (strings, complex numbers), in chromium:
a bounded number of values however the shape is made (a 2 × 5000 array is cut along both
dimensions, not sent whole as "the first row"), one row per line."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from .browser import assert_no_errors, browser, open_view, page_for  # noqa: F401
from .conftest import ROOT, run_build
from .servers import publish_serve


@pytest.fixture(scope="module")
def text_arrays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``grid`` (2 × 5000 strings), ``pairs`` (2 × 2 strings), ``waves`` (3 × 4 complex)."""
    import h5py

    folder = tmp_path_factory.mktemp("browse-array-text")
    with h5py.File(folder / "text.h5", "w") as f:
        f.create_dataset("grid", data=np.array([[f"w{i}_{j}" for j in range(5000)] for i in range(2)],
                                               dtype=h5py.string_dtype()))
        f.create_dataset("pairs", data=np.array([["a", "b"], ["c", "d"]], dtype=h5py.string_dtype()))
        f.create_dataset("waves", data=(np.arange(12) * 1j).reshape(3, 4))
    published = run_build(folder, {"sources": [{"path": str(folder / "text.h5"), "into": "t"}]})
    with publish_serve(published.store.url, cwd=ROOT) as url:
        yield url


def test_a_wide_text_array_is_cut_along_each_dimension(browser: Any, text_arrays: str) -> None:  # noqa: F811
    page = page_for(browser, text_arrays)
    with page.expect_response(lambda r: "/array/full/t/text/grid?" in r.url) as answer:
        open_view(page, "t/text/grid")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(answer.value.url).query)
    assert query["slice"] == ["0:1,0:1000"]  # one row of 5000 would already be 5× the 1000 shown
    shown = json.loads(page.locator("pre.array-text").inner_text())
    assert shown == [[f"w0_{j}" for j in range(1000)]]
    assert "first 1 × 1,000 of 2 × 5,000" in page.locator("#view .note").inner_text()
    assert_no_errors(page)
    page.context.close()


def test_rows_are_lines(browser: Any, text_arrays: str) -> None:  # noqa: F811
    page = page_for(browser, text_arrays)
    open_view(page, "t/text/pairs")
    assert page.locator("pre.array-text").inner_text() == '[["a","b"],\n ["c","d"]]'
    assert page.locator("#view .note").count() == 0  # all of it is shown
    open_view(page, "t/text/waves")  # complex: a row per line, each value re+imj (tests/test_browse_odd.py)
    text = page.locator("pre.array-text").inner_text()
    assert text.splitlines()[1] == " [0+4j,0+5j,0+6j,0+7j],"
    assert text.count("\n") == 3 - 1
    assert_no_errors(page)
    page.context.close()
