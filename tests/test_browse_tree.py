"""The browse page's navigation (issue 14) in a real chromium: the tree walked by keyboard and mouse
matches the API's answers, a container of thousands pages, deep links and pinned-release links
open the same view, a missing node says so, the page fits a phone and ships small."""

from __future__ import annotations

import gzip
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import (Served, assert_no_errors, browser, checked_demo_page, open_view, page_for,  # noqa: F401
                      ready_count, screenshot, served_demo, view_url, wait_ready)
from .conftest import ROOT, run_build
from .servers import publish_serve

STATIC = ROOT / "publisher" / "browse" / "static"
RUNS = 250  # three pages of 100
RUNS_PATH = "runs/runs"  # the file runs.h5 into "runs"


def api(base: str, route: str) -> Any:
    with urllib.request.urlopen(f"{base}/api/v1/{route}") as answer:
        return json.load(answer)


def children(base: str, path: str, offset: int = 0, release: str | None = None) -> list[str]:
    pin = f"&release={release}" if release else ""
    return [item["id"] for item in api(base, f"search/{path}?page[offset]={offset}&page[limit]=100{pin}")["data"]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """A container of RUNS children, published twice: (url, first release id, second release id);
    the second release adds ``run_extra``."""
    import h5py
    import numpy as np

    folder = tmp_path_factory.mktemp("browse-tree-runs")
    with h5py.File(folder / "runs.h5", "w") as f:
        for i in range(RUNS):
            f.create_dataset(f"run_{i:03d}", data=np.arange(4) + i)
    config = {"sources": [{"path": str(folder / "runs.h5"), "into": "runs"}]}
    first = run_build(folder, config)
    with h5py.File(folder / "runs.h5", "a") as f:
        f.create_dataset("run_extra", data=np.arange(2))
    second = run_build(folder, config)
    with publish_serve(second.store.url, cwd=ROOT) as url:
        yield url, first.report.release, second.report.release


page = pytest.fixture(name="page")(checked_demo_page)


def listed(page: Any) -> list[str]:
    return page.locator("table.children tbody tr td:first-child a").all_inner_texts()


def click(page: Any, selector: str, path: str, view: str = "") -> None:
    seen = ready_count(page)
    page.locator(selector).first.click()
    wait_ready(page, path, view, after=seen)


def test_the_root_lists_what_the_api_lists_and_a_walk_reaches_an_array(page: Any, served_demo: Served) -> None:  # noqa: F811
    open_view(page)
    assert listed(page) == children(served_demo.url, "")
    # the catalog's name (pipeline.yml's, through about's meta) names the page and its root
    assert api(served_demo.url, "")["meta"]["name"] == "demo-beamline"
    assert page.locator("#brand").inner_text() == "demo-beamline" == page.locator(".crumbs li").first.inner_text()
    screenshot(page, "root")
    for path in ("scans", "scans/scan_0001", "scans/scan_0001/entry", "scans/scan_0001/entry/data"):
        click(page, f"table.children a[href='#/{path}']", path, "")
        assert page.locator("h1").inner_text() == path.rsplit("/", 1)[-1]
        assert listed(page) == children(served_demo.url, path)
        crumbs = page.locator(".crumbs li").all_inner_texts()
        assert crumbs[1:] == path.split("/")  # the first is the catalog
    node = api(served_demo.url, "metadata/scans/scan_0001/entry/data/data")["data"]["attributes"]
    click(page, f"a[href='#/scans/scan_0001/entry/data/data']", "scans/scan_0001/entry/data/data", "")
    shape = " × ".join(str(n) for n in node["structure"]["shape"])
    assert f"{shape} uint16" in page.locator(".summary").inner_text()
    # breadcrumbs lead back up
    click(page, ".crumbs a:text-is('scan_0001')", "scans/scan_0001", "")
    assert page.url.endswith(view_url("scans/scan_0001"))


def test_the_tree_is_walked_with_the_keyboard(page: Any) -> None:
    open_view(page)
    page.locator("table.children a").first.focus()
    seen = ready_count(page)
    page.keyboard.press("Enter")
    wait_ready(page, "scans", "", after=seen)
    # the heading takes the focus after a keyboard navigation, so Tab continues from the new view
    assert page.evaluate("() => document.activeElement.tagName") == "H1"
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent")
    assert focused in {"Contents", "Metadata", "Download", "Code"}  # the tabs follow the heading
    page.keyboard.press("Shift+Tab")  # back to the breadcrumb of the catalog
    assert page.evaluate("() => document.activeElement.closest('.crumbs') !== null")
    seen = ready_count(page)
    page.keyboard.press("Enter")
    wait_ready(page, "", "", after=seen)


def test_the_metadata_tab_shows_metadata_structure_and_specs(page: Any, served_demo: Served) -> None:  # noqa: F811
    open_view(page, "scans/scan_0001/entry/data/data", "metadata")
    attributes = api(served_demo.url, "metadata/scans/scan_0001/entry/data/data")["data"]["attributes"]
    text = page.locator("#view").inner_text()
    for key, value in attributes["metadata"].items():
        if isinstance(value, str):
            assert key in text and value in text
    assert "th, dim_1, dim_2" in text  # dims
    assert "uint16" in text and "xarray_data_var" in text
    screenshot(page, "metadata")


def test_a_deep_link_opens_the_same_view_and_back_returns(page: Any) -> None:
    open_view(page, "scans/scan_0002/entry", "metadata")
    assert page.locator(".tab.current").inner_text() == "Metadata"
    assert "NXentry" in page.locator("#view").inner_text()
    page.reload()
    wait_ready(page, "scans/scan_0002/entry", "metadata")
    assert page.locator(".tab.current").inner_text() == "Metadata"
    click(page, ".tab:text-is('Contents')", "scans/scan_0002/entry", "")
    seen = ready_count(page)
    page.go_back()
    wait_ready(page, "scans/scan_0002/entry", "metadata", after=seen)


def test_a_missing_node_says_not_found(browser: Any, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url)
    open_view(page, "scans/no_such_scan")
    alert = page.locator(".error[role=alert]")
    assert "Not found" in alert.inner_text() and "scans/no_such_scan" in alert.inner_text()
    assert page.locator(".crumbs a:text-is('scans')").count() == 1  # a way back up
    screenshot(page, "not-found")
    assert_no_errors(page, allow=[r"status of 404"])
    page.context.close()


def test_a_container_of_hundreds_pages(browser: Any, runs: tuple[str, str, str]) -> None:  # noqa: F811
    url, _, _ = runs
    page = page_for(browser, url)
    open_view(page, RUNS_PATH)
    assert listed(page) == children(url, RUNS_PATH, 0)
    total = RUNS + 1
    assert f"1–100 of {total}" in page.locator(".pager").inner_text()
    click(page, ".pager a[rel=next]", RUNS_PATH, "")
    assert "page=1" in page.url and listed(page) == children(url, RUNS_PATH, 100)
    click(page, ".pager a:text-is('Last »')", RUNS_PATH, "")
    assert listed(page) == children(url, RUNS_PATH, 200) and f"201–{total} of {total}" in page.locator(".pager").inner_text()
    assert page.locator(".pager a[rel=next]").count() == 0
    assert_no_errors(page)
    page.context.close()


def test_a_link_to_this_release_keeps_showing_that_release(browser: Any, runs: tuple[str, str, str]) -> None:  # noqa: F811
    url, old, new = runs
    page = page_for(browser, url)
    open_view(page, RUNS_PATH, params={"page": "2"})
    assert "run_extra" in listed(page)
    assert new in page.locator("#release").inner_text()
    pin = page.locator("#release a.pin")
    assert f"release={new}" in pin.get_attribute("href")
    # the first release, pinned by its link: run_extra is not in it, and links inside keep the pin
    open_view(page, RUNS_PATH, params={"page": "2", "release": old})
    assert "run_extra" not in listed(page) and listed(page) == children(url, RUNS_PATH, 200, old)
    assert f"release={old}" in page.locator("table.children a").first.get_attribute("href")
    assert "pinned" in page.locator("#release").inner_text()
    assert_no_errors(page)
    page.context.close()


def test_a_phone_sees_the_page_without_sideways_scrolling(browser: Any, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url, viewport={"width": 390, "height": 844})
    for path, view in (("", ""), ("scans/scan_0001/entry", "metadata")):
        open_view(page, path, view)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    screenshot(page, "metadata-phone")
    assert_no_errors(page)
    page.context.close()


def test_the_shipped_assets_are_small() -> None:
    """Issue 14's budget: at most 200 KB compressed for everything the page ships."""
    files = [p for p in STATIC.iterdir() if p.is_file()]
    assert {"index.html", "app.js", "app.css"} <= {p.name for p in files}
    compressed = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
    assert compressed <= 200_000, f"{compressed} bytes compressed"


def test_the_page_has_no_inline_script_or_style() -> None:
    """The CSP (script-src 'self', style-src 'self') would block them."""
    html = (STATIC / "index.html").read_text()
    assert "<script>" not in html and "<style" not in html and " onclick=" not in html and "style=" not in html
    assert Path(STATIC / "app.js").exists()


def test_publish_serve_prints_the_page_address(served_demo: Served) -> None:  # noqa: F811
    """The README's main job ends in ``publish serve``: its banner names the page, which answers."""
    import subprocess
    import sys

    from .servers import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "publisher.cli", "serve", "--store", served_demo.store.url, "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        browse = next(line for line in lines if line.strip().startswith("browse:"))
        address = browse.split()[1]
        assert address == f"http://127.0.0.1:{port}/"
        for _ in range(200):  # the banner comes just before the server listens
            try:
                urllib.request.urlopen(f"{address}healthz").close()
                break
            except OSError:
                time.sleep(0.05)
        with urllib.request.urlopen(address) as answer:
            assert answer.headers["Content-Type"].startswith("text/html")
            assert b'src="/ui/app.js"' in answer.read()
    finally:
        process.kill()
        process.wait(10)
