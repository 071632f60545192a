"""An awkward node on the browse page, in a real chromium: its summary, and a Code tab whose
snippets (tiled client, ak.from_parquet of the stored file, curl of the Parquet export) run as
they are and give the source's values."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import awkward as ak
import h5py
import httpx
import numpy as np
import pytest

from .browser import assert_no_errors, browser, open_view, page_for, run_python, snippet  # noqa: F401
from .conftest import run_build
from .servers import local_server

ROWS = [[1, 2, 3], [], [4]]
#: 45 entries: three pages of the preview
MANY = [[float(i)] * (i % 4) for i in range(45)]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("awkward-browse")
    with h5py.File(folder / "rag.h5", "w") as f:
        ds = f.create_dataset("v", (3,), dtype=h5py.vlen_dtype(np.dtype("<i8")))
        for i, row in enumerate(ROWS):
            ds[i] = row
        many = f.create_dataset("many", (len(MANY),), dtype=h5py.vlen_dtype(np.dtype("<f4")))
        for i, row in enumerate(MANY):
            many[i] = row
    published = run_build(folder, {"sources": [{"path": str(folder / "rag.h5"), "into": ""}]})
    with local_server(published.store.url) as url:
        yield url


def test_the_code_tab_of_an_awkward_node_runs(browser: Any, served: str, tmp_path: Path) -> None:  # noqa: F811
    page = page_for(browser, served)
    open_view(page, "rag/v", "code")
    assert "3 ragged items" in page.inner_text(".summary")

    assert run_python(snippet(page, "Tiled client"))["data"].tolist() == ROWS
    direct = snippet(page, "awkward")
    assert "/files/" in direct and ".parquet" in direct  # the stored file, not an API answer
    assert run_python(direct)["data"].tolist() == ROWS
    words = shlex.split(snippet(page, "curl"))
    answer = httpx.get(words[-1], follow_redirects=True)
    (tmp_path / "v.parquet").write_bytes(answer.content)
    assert answer.status_code == 200 and ak.from_parquet(tmp_path / "v.parquet").tolist() == ROWS
    assert_no_errors(page)
    page.context.close()


def test_the_preview_pages_through_entries_and_download_takes_a_slice(browser: Any, served: str, tmp_path: Path) -> None:  # noqa: F811
    """Preview: the type in awkward's notation and 20 entries a page (awkward/full?slice=); Download:
    a slice of entries as Parquet, which awkward reads back as those entries."""
    page = page_for(browser, served)
    open_view(page, "rag/many", "preview")
    assert page.inner_text(".awkward-type") == "45 * var * float32"
    items = page.locator(".awkward-entries > li")
    assert items.count() == 20 and items.nth(3).inner_text() == "3, 3, 3" and items.nth(0).inner_text() == "[]"
    assert "entries 0–19 of 45" in page.inner_text(".pager")
    open_view(page, "rag/many", "preview", {"page": "3"})
    assert page.locator(".awkward-entries").get_attribute("start") == "40" and items.count() == 5
    assert items.nth(1).inner_text() == "41"  # 41 % 4 == 1: one value

    open_view(page, "rag/many", "download")
    page.select_option("#dl-format", label="Parquet")
    page.fill("#dl-slice", "5:12")
    assert page.input_value("#dl-name") == "many_5-12.parquet"
    answer = httpx.get(page.input_value(".download input.url"), follow_redirects=True)
    (tmp_path / "s.parquet").write_bytes(answer.content)
    assert answer.status_code == 200 and ak.from_parquet(tmp_path / "s.parquet").tolist() == MANY[5:12]
    assert_no_errors(page)
    page.context.close()
