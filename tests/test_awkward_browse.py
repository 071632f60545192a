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

from .browser import assert_no_errors, browser, open_view, page_for  # noqa: F401
from .conftest import run_build
from .servers import local_server

ROWS = [[1, 2, 3], [], [4]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("awkward-browse")
    with h5py.File(folder / "rag.h5", "w") as f:
        ds = f.create_dataset("v", (3,), dtype=h5py.vlen_dtype(np.dtype("<i8")))
        for i, row in enumerate(ROWS):
            ds[i] = row
    published = run_build(folder, {"sources": [{"path": str(folder / "rag.h5"), "into": ""}]})
    with local_server(published.store.url) as url:
        yield url


def _run(code: str) -> dict[str, Any]:
    space: dict[str, Any] = {}
    exec(compile(code, "<snippet>", "exec"), space)  # noqa: S102 - the page's snippet, run as a user would
    return space


def test_the_code_tab_of_an_awkward_node_runs(browser: Any, served: str, tmp_path: Path) -> None:  # noqa: F811
    page = page_for(browser, served)
    open_view(page, "rag/v", "code")
    assert "3 ragged items" in page.inner_text(".summary")

    def snippet(title: str) -> str:
        return page.locator(".snippet", has=page.get_by_role("heading", name=title, exact=True)).locator("code").inner_text()

    assert _run(snippet("Tiled client"))["data"].tolist() == ROWS
    direct = snippet("awkward")
    assert "/files/" in direct and ".parquet" in direct  # the stored file, not an API answer
    assert _run(direct)["data"].tolist() == ROWS
    words = shlex.split(snippet("curl"))
    answer = httpx.get(words[-1], follow_redirects=True)
    (tmp_path / "v.parquet").write_bytes(answer.content)
    assert answer.status_code == 200 and ak.from_parquet(tmp_path / "v.parquet").tolist() == ROWS
    assert_no_errors(page)
    page.context.close()
