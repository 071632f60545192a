"""A sparse node on the browse page, in a real chromium: its Preview draws the dense image of the
nonzeros (sparse/full?format=png), its Code tab's snippets (tiled client, pyarrow + sparse over the
Parquet answer, curl) run as they are and give the source's values, whole and sliced."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from .browser import assert_no_errors, browser, open_view, page_for, run_python, snippet  # noqa: F401
from .conftest import run_build
from .servers import local_server

SHAPE = (60, 80)


def _dense() -> np.ndarray:
    rng = np.random.default_rng(15)
    dense = np.where(rng.random(SHAPE) < 0.05, rng.integers(1, 100, SHAPE), 0).astype("<f4")
    dense[0, 0], dense[59, 79] = 7.0, 9.0
    return dense


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("sparse-browse")
    dense = _dense()
    rows, cols = np.nonzero(dense)
    with h5py.File(folder / "m.h5ad", "w") as f:  # AnnData's CSR encoding
        g = f.create_group("X")
        g.attrs["encoding-type"], g.attrs["encoding-version"], g.attrs["shape"] = "csr_matrix", "0.1.0", np.array(SHAPE)
        g["data"], g["indices"] = dense[rows, cols], cols.astype("<i4")
        g["indptr"] = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=SHAPE[0]))]).astype("<i4")
    published = run_build(folder, {"sources": [{"path": str(folder / "m.h5ad"), "into": ""}]})
    assert published.node("m/X")["family"] == "sparse"
    with local_server(published.store.url) as url:
        yield url


def test_the_preview_draws_the_dense_image(browser: Any, served: str) -> None:  # noqa: F811
    page = page_for(browser, served)
    pngs: list[str] = []
    page.on("response", lambda r: pngs.append(r.url) if "format=image%2Fpng" in r.url else None)
    open_view(page, "m/X", "preview")
    page.wait_for_function("() => /pixels/.test(document.querySelector('[role=status]')?.textContent || '')")
    assert "80 × 60 pixels" in page.inner_text("body")
    assert pngs and all("/api/v1/sparse/full/m/X" in u for u in pngs)
    assert_no_errors(page)
    page.context.close()


def test_the_code_tab_of_a_sparse_node_runs(browser: Any, served: str, tmp_path: Path) -> None:  # noqa: F811
    dense = _dense()
    page = page_for(browser, served)

    for slice_text, want in (("", dense), ("10:20,5:50", dense[10:20, 5:50])):
        open_view(page, "m/X", "code", {"slice": slice_text} if slice_text else None)
        assert np.array_equal(run_python(snippet(page, "Tiled client"))["data"].todense(), want), slice_text
        assert np.array_equal(run_python(snippet(page, "pyarrow + sparse"))["data"].todense(), want), slice_text
        words = shlex.split(snippet(page, "curl"))
        answer = httpx.get(words[-1], follow_redirects=True)
        (tmp_path / "x.parquet").write_bytes(answer.content)
        nonzeros = pq.read_table(tmp_path / "x.parquet")
        assert answer.status_code == 200 and nonzeros.num_rows == int(np.count_nonzero(want)), slice_text
    assert_no_errors(page)
    page.context.close()
