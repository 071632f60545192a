"""The browse page's search (issue 14) in a real chromium against the served demo: the header's
box searches the whole catalog, results are what /search-deep answers, the facet panel's counts
are what /distinct answers over the same descendants, clicking a value narrows the results and
the address, and a deep link restores the box, the chips and the results."""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Published, run_build
from .test_build_demo import demo_config

STATIC = Path(__file__).resolve().parents[1] / "publisher" / "browse" / "static"
ARTIFACTS = Path(os.environ.get("SKYSHELF_ARTIFACTS", "test-artifacts"))
CHROMIUM = os.environ.get("SKYSHELF_CHROMIUM") or next(
    (p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "") if p and os.access(p, os.X_OK)), None)
DEPTH = 64  # what the page asks search-deep and distinct for


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: bash scripts/setup.sh dev")
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (scripts/setup.sh dev installs it)")
        pytest.skip("Debian's chromium is not installed: apt-get install --no-install-recommends chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder = tmp_path_factory.mktemp("browse-search")
    return run_build(folder, demo_config(demo_dir))


@pytest.fixture(scope="module")
def base(demo: Published) -> Iterator[str]:
    from handlers.local import LocalServer

    srv = LocalServer(demo.store.url, "127.0.0.1", 0).start()
    try:
        yield srv.url.rstrip("/")
    finally:
        srv.stop()


RUNS = 150  # runs/run_NNN groups: kind "calibration" every 4th (38), else "sample" (112: two pages)


@pytest.fixture(scope="module")
def runs_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A catalog with more results than one page: one HDF5 file of RUNS groups with two attributes."""
    import h5py
    import numpy as np

    from handlers.local import LocalServer

    folder = tmp_path_factory.mktemp("browse-search-runs")
    with h5py.File(folder / "runs.h5", "w") as f:
        for i in range(RUNS):
            group = f.create_group(f"run_{i:03d}")
            group.attrs["kind"] = "calibration" if i % 4 == 0 else "sample"
            group.attrs["shift"] = ("day", "night")[i % 2]
            group.create_dataset("signal", data=np.arange(3) + i)
    published = run_build(folder, {"sources": [{"path": str(folder / "runs.h5"), "into": "runs"}]})
    srv = LocalServer(published.store.url, "127.0.0.1", 0).start()
    try:
        yield srv.url.rstrip("/")
    finally:
        srv.stop()


class Page:
    """A fresh browser context's page that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, base: str, width: int = 1100) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route(f"{base}/", _static)
        self.page.route(f"{base}/ui/**", _static)

    def open(self, hash_: str, view: str = "search") -> Any:
        return self.after(lambda: self.page.goto(f"{self.base}/{hash_}"), view)

    def after(self, action: Any, view: str = "search") -> Any:
        """Do ``action`` (a click, a key) and wait for the view it leads to: the page marks each
        render done in body[data-ready], so the old mark is removed first."""
        if self.page.url.startswith(self.base):
            self.page.evaluate("delete document.body.dataset.ready")
        action()
        self.page.wait_for_function("(v) => (document.body.dataset.ready || '').endsWith('|' + v)", arg=view)
        return self.page


def _static(route: Any) -> None:
    path = urllib.parse.urlparse(route.request.url).path
    name = "index.html" if path == "/" else path.removeprefix("/ui/")
    kind = {"html": "text/html", "js": "text/javascript", "css": "text/css"}[name.rsplit(".", 1)[-1]]
    route.fulfill(status=200, content_type=kind, body=(STATIC / name).read_bytes())


@pytest.fixture
def page(browser: Any, base: str) -> Iterator[Page]:
    p = Page(browser, base)
    yield p
    p.context.close()
    assert p.errors == [], p.errors


def api(base: str, route: str, path: str, query: list[tuple[str, Any]]) -> Any:
    url = f"{base}/api/v1/{route}/{urllib.parse.quote(path)}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url) as r:
        return json.load(r)


def filters(q: str | None, eq: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("filter[fulltext][condition][text]", q)] if q else []
    for key, value in eq.items():
        out += [("filter[eq][condition][key]", key), ("filter[eq][condition][value]", json.dumps(value))]
    return out


def found(base: str, q: str | None, eq: dict[str, Any], scope: str = "") -> set[str]:
    answer = api(base, "search-deep", scope, [*filters(q, eq), ("page[limit]", 300), ("max_depth", DEPTH)])
    assert answer["meta"]["count"] <= 300
    return {"/".join([*item["attributes"]["ancestors"], item["id"]]) for item in answer["data"]}


def counts(base: str, key: str, q: str | None, eq: dict[str, Any]) -> dict[str, int]:
    """/distinct's counts of a key as the page shows them: equal values (300 and 300.0) as one."""
    answer = api(base, "distinct", "", [*filters(q, eq), ("metadata", key), ("counts", "true"), ("max_depth", DEPTH)])
    total: Counter[str] = Counter()
    for v in answer["metadata"][key]:
        if v["value"] is not None:
            total[v["value"] if isinstance(v["value"], str) else json.dumps(v["value"]).removesuffix(".0")] += v["count"]
    return dict(total)


def listed(page: Any) -> set[str]:
    hrefs = page.eval_on_selector_all(".results-table tbody tr td:first-child a", "as => as.map(a => a.getAttribute('href'))")
    return {urllib.parse.unquote(h.removeprefix("#/")) for h in hrefs}


def facets(page: Any) -> dict[str, dict[str, int]]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.facet')].map((s) => [
        s.querySelector('h2').textContent,
        Object.fromEntries([...s.querySelectorAll('.facet-value')].map((a) => [
            a.querySelector('.facet-name').textContent, Number(a.querySelector('.count').textContent.replace(/,/g, ''))]))]))""")


def hash_params(page: Any) -> dict[str, str]:
    fragment = urllib.parse.urlparse(page.url).fragment
    return dict(urllib.parse.parse_qsl(fragment.partition("?")[2]))


def test_box_searches_with_the_keyboard_and_lists_what_search_deep_finds(page: Page, base: str) -> None:
    p = page.open("#/", view="")
    p.focus("#q")
    p.keyboard.type("KCl")
    page.after(lambda: p.keyboard.press("Enter"))
    assert hash_params(p) == {"view": "search", "q": "KCl"}
    expected = found(base, "KCl", {})
    assert listed(p) == expected and "frames/KCl_300K_00007" in expected
    assert p.locator(".search-status").inner_text().startswith(f"{len(expected)} results")
    # each result says where it is: its parent, a link
    row = p.locator(".results-table tbody tr", has=p.locator('a[href="#/frames/KCl_300K_00007"]'))
    assert row.locator("td.where a").get_attribute("href") == "#/frames"


def test_facet_counts_are_what_distinct_counts(page: Page, base: str) -> None:
    for q in (None, "KCl"):
        p = page.open(f"#/?view=search{'&q=' + q if q else ''}")
        shown = facets(p)
        assert shown, "no facets"
        assert len(shown) <= 8
        for key, values in shown.items():
            assert values == counts(base, key, q, {}), key
            assert 2 <= len(values) <= 50
    assert "temperature" in shown  # KCl matches a sample (37.0) and a frame (300)


def test_clicking_a_value_narrows_results_and_address_and_a_chip_removes_it(page: Page, base: str) -> None:
    p = page.open("#/?view=search")
    before = listed(p)
    value = p.locator(".facet", has=p.locator("h2", has_text="NX_class")).locator(".facet-value", has_text="NXsample")
    expected_count = int(value.locator(".count").inner_text())
    value.focus()
    page.after(lambda: p.keyboard.press("Enter"))  # a link: the keyboard works as a click does
    assert hash_params(p) == {"view": "search", "f.NX_class": "NXsample"}
    narrowed = listed(p)
    assert narrowed == found(base, None, {"NX_class": "NXsample"}) and len(narrowed) == expected_count
    assert narrowed < before
    chip = p.locator(".chips .chip")
    assert chip.inner_text().startswith("NX_class: NXsample")
    assert p.locator(".facet-value.on").get_attribute("aria-current") == "true"
    # a second facet narrows further (a number: its filter is JSON 300, matching 300 and 300.0)
    page.after(p.locator(".facet", has=p.locator("h2", has_text="temperature")).locator(".facet-value", has_text="300").click)
    assert listed(p) == found(base, None, {"NX_class": "NXsample", "temperature": 300}) == {"scans/scan_0001/entry/sample"}
    assert p.locator(".chips .chip").count() == 2
    page.after(p.locator(".chips .chip", has_text="NX_class").click)
    assert hash_params(p) == {"view": "search", "f.temperature": "300"}
    assert listed(p) == found(base, None, {"temperature": 300})


def test_deep_link_restores_box_chips_and_results(page: Page, base: str) -> None:
    p = page.open("#/?view=search&q=KCl&f.temperature=300")
    assert p.input_value("#q") == "KCl"
    assert p.locator(".chips .chip").inner_text().startswith("temperature: 300")
    assert listed(p) == found(base, "KCl", {"temperature": 300}) == {"frames/KCl_300K_00007"}
    assert p.locator(".facet-value.on .facet-name").inner_text() == "300"
    assert p.evaluate("[...document.getElementById('main').childNodes].every((n) => n.nodeType === 1)")  # no stray text


def test_nothing_found_says_so_and_offers_to_clear_filters(page: Page, base: str) -> None:
    p = page.open("#/?view=search&q=KCl&f.NX_class=NXroot")
    assert found(base, "KCl", {"NX_class": "NXroot"}) == set()
    assert "Nothing matches" in p.locator(".search-empty").inner_text()
    page.after(p.get_by_role("link", name="Clear the filters").click)
    assert hash_params(p) == {"view": "search", "q": "KCl"}
    assert listed(p) == found(base, "KCl", {})


def test_a_search_from_a_container_stays_inside_it(page: Page, base: str) -> None:
    p = page.open("#/scans?view=search&q=KCl")
    assert listed(p) == found(base, "KCl", {}, "scans") == {"scans/scan_0002/entry", "scans/scan_0002/entry/sample"}
    page.after(p.get_by_role("link", name="search everywhere").click)
    assert listed(p) == found(base, "KCl", {})
    # from an array (the box searches from where one is): its container
    p = page.open("#/frames/KCl_300K_00007?view=search&q=KCl")
    assert listed(p) == found(base, "KCl", {}, "frames") == {"frames/KCl_300K_00007"}
    assert "in “frames”" in p.locator(".search-status").inner_text()


def test_results_stay_when_the_counts_fail(page: Page, base: str) -> None:
    page.page.route("**/api/v1/distinct/**", lambda route: route.fulfill(
        status=503, content_type="application/json", body=json.dumps({"detail": "counting is down"})))
    p = page.open("#/?view=search&q=KCl")
    assert listed(p) == found(base, "KCl", {})
    assert p.locator(".facets").inner_text().endswith("Filters unavailable: counting is down")
    # the browser itself logs the failed request; nothing else may be
    page.errors[:] = [e for e in page.errors if "status of 503" not in e]


def test_values_that_read_as_json_stay_strings(page: Page) -> None:
    p = page.open("#/?view=search")
    got = p.evaluate("""async () => { const m = await import('/ui/search.js');
        return [m.toParam('28-ID-1'), m.toParam('1'), m.toParam(1), m.toParam(true), m.toParam('"x"'),
                [m.fromParam('28-ID-1'), m.fromParam('"1"'), m.fromParam('1'), m.fromParam('true')]]; }""")
    assert got == ["28-ID-1", '"1"', "1", "true", '"\\"x\\""', ["28-ID-1", "1", 1, True]]


def test_phone_width_facets_fold_above_results(browser: Any, base: str) -> None:
    phone = Page(browser, base, width=390)
    p = phone.open("#/?view=search&q=KCl&f.temperature=300")
    panel = p.locator("details.facets")
    assert panel.get_attribute("open") is None  # folded: the results come first on a phone
    assert panel.bounding_box()["y"] < p.locator(".results").bounding_box()["y"]
    panel.locator("summary").focus()
    p.keyboard.press("Enter")
    assert panel.get_attribute("open") == ""
    assert p.evaluate("document.documentElement.scrollWidth") <= 390
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=ARTIFACTS / "search-phone.png", full_page=True)
    wide = Page(browser, base)
    wide.open("#/?view=search&q=KCl").screenshot(path=ARTIFACTS / "search.png", full_page=True)
    for one in (phone, wide):
        one.context.close()
        assert one.errors == [], one.errors


def test_pages_keep_the_query_and_filters(browser: Any, runs_base: str) -> None:
    page = Page(browser, runs_base)
    p = page.open("#/?view=search&q=sample&f.kind=sample")
    everything = found(runs_base, "sample", {"kind": "sample"})
    assert len(everything) == 112
    first = listed(p)
    assert len(first) == 100 and first < everything
    assert p.locator(".pager .range").inner_text() == "1–100 of 112"
    assert facets(p)["shift"] == counts(runs_base, "shift", "sample", {"kind": "sample"}) == {"day": 37, "night": 75}
    page.after(p.locator(".pager a[rel=next]").click)
    assert hash_params(p) == {"view": "search", "q": "sample", "f.kind": "sample", "page": "1"}
    second = listed(p)
    assert len(second) == 12 and first | second == everything
    assert p.locator(".chips .chip").inner_text().startswith("kind: sample")
    # a facet value starts again from the first page
    page.after(p.locator(".facet-value", has_text="night").click)
    assert hash_params(p) == {"view": "search", "q": "sample", "f.kind": "sample", "f.shift": "night"}
    assert listed(p) == found(runs_base, "sample", {"kind": "sample", "shift": "night"})
    page.context.close()
    assert page.errors == [], page.errors
