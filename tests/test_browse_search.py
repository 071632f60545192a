"""The browse page's search (issue 14) in a real chromium against the served demo: the header's
box searches the whole catalog, results are what /search-deep answers, the facet panel's counts
are what /distinct answers over the same descendants, clicking a value narrows the results and
the address, and a deep link restores the box, the chips and the results."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .browser import (Served, assert_no_errors, browser, checked_demo_page, page_for, ready_count,  # noqa: F401
                      screenshot, served_demo, served_private, view_url, wait_ready)
from .conftest import ROOT, run_build
from .servers import publish_serve

DEPTH = 64  # what the page asks search-deep and distinct for
RUNS = 150  # runs/run_NNN groups: kind "calibration" every 4th (38), else "sample" (112: two pages)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A catalog with more results than one page: one HDF5 file of RUNS groups with two attributes."""
    import h5py
    import numpy as np

    folder = tmp_path_factory.mktemp("browse-search-runs")
    with h5py.File(folder / "runs.h5", "w") as f:
        for i in range(RUNS):
            group = f.create_group(f"run_{i:03d}")
            group.attrs["kind"] = "calibration" if i % 4 == 0 else "sample"
            group.attrs["shift"] = ("day", "night")[i % 2]
            group.create_dataset("signal", data=np.arange(3) + i)
    published = run_build(folder, {"sources": [{"path": str(folder / "runs.h5"), "into": "runs"}]})
    with publish_serve(published.store.url, cwd=ROOT) as url:
        yield url


page = pytest.fixture(name="page")(checked_demo_page)


@pytest.fixture
def base(served_demo: Served) -> str:  # noqa: F811
    return served_demo.url


def after(page: Any, action: Callable[[], Any], path: str = "", view: str = "search") -> Any:
    """Do ``action`` (a click, a key, a goto) and wait for the view it leads to."""
    seen = ready_count(page) if page.url.startswith("http") else 0
    action()
    wait_ready(page, path, view, after=seen)
    return page


def go(page: Any, path: str = "", **params: str) -> Any:
    """Open the search view of ``path`` with hash params (``**{"f.kind": "sample"}``)."""
    return after(page, lambda: page.goto(view_url(path, {"view": "search", **params})), path)


def api(base: str, route: str, path: str, query: list[tuple[str, Any]], key: str | None = None) -> Any:
    url = f"{base}/api/v1/{route}/{urllib.parse.quote(path)}?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Apikey {key}"} if key else {})
    with urllib.request.urlopen(request) as r:
        return json.load(r)


def filters(q: str | None, eq: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("filter[fulltext][condition][text]", q)] if q else []
    for key, value in eq.items():
        out += [("filter[eq][condition][key]", key), ("filter[eq][condition][value]", json.dumps(value))]
    return out


def found(base: str, q: str | None, eq: dict[str, Any], scope: str = "", key: str | None = None) -> set[str]:
    """The paths search-deep finds, as ``ancestors/id``."""
    query = [*filters(q, eq), ("page[limit]", 300), ("max_depth", DEPTH)]
    answer = api(base, "search-deep", scope, query, key)
    assert answer["meta"]["count"] <= 300
    return {"/".join([*item["attributes"]["ancestors"], item["id"]]) for item in answer["data"]}


def counts(base: str, name: str, q: str | None, eq: dict[str, Any], key: str | None = None) -> dict[str, int]:
    """/distinct's counts of a metadata key as the page shows them: equal values (300 and 300.0) as one."""
    query = [*filters(q, eq), ("metadata", name), ("counts", "true"), ("max_depth", DEPTH)]
    answer = api(base, "distinct", "", query, key)
    total: Counter[str] = Counter()
    for v in answer["metadata"][name]:
        value = v["value"]
        if value is not None:
            total[value if isinstance(value, str) else json.dumps(value).removesuffix(".0")] += v["count"]
    return dict(total)


def listed(page: Any) -> set[str]:
    """The node paths the results table links to."""
    hrefs = page.eval_on_selector_all(".results-table tbody tr td:first-child a",
                                      "as => as.map(a => a.getAttribute('href'))")
    return {urllib.parse.unquote(h.removeprefix("#/").partition("?")[0]) for h in hrefs}


def facets(page: Any) -> dict[str, dict[str, int]]:
    """The facet panel as {key: {value: count}} (values behind "more" included)."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.facet')].map((s) => [
        s.querySelector('h2').textContent,
        Object.fromEntries([...s.querySelectorAll('.facet-value')].map((a) => [
            a.querySelector('.facet-name').textContent,
            Number(a.querySelector('.count').textContent.replace(/,/g, ''))]))]))""")


def value_link(page: Any, name: str, value: str) -> Any:
    facet = page.locator(".facet", has=page.locator("h2", has_text=name))
    return facet.locator(".facet-value", has_text=value)


def hash_params(page: Any) -> dict[str, str]:
    fragment = urllib.parse.urlparse(page.url).fragment
    return dict(urllib.parse.parse_qsl(fragment.partition("?")[2]))


def test_box_searches_with_the_keyboard_and_lists_what_search_deep_finds(page: Any, base: str) -> None:
    after(page, lambda: page.goto(view_url()), view="")
    page.focus("#q")
    page.keyboard.type("KCl")
    after(page, lambda: page.keyboard.press("Enter"))
    assert hash_params(page) == {"view": "search", "q": "KCl"}
    expected = found(base, "KCl", {})
    assert listed(page) == expected and "frames/KCl_300K_00007" in expected
    assert page.locator(".search-status").inner_text().startswith(f"{len(expected)} results")
    # each result says where it is: its parent, a link
    row = page.locator(".results-table tbody tr", has=page.locator('a[href="#/frames/KCl_300K_00007"]'))
    assert row.locator("td.where a").get_attribute("href") == "#/frames"
    # and why it matched: the shallowest metadata value holding the text
    assert row.locator(".match").inner_text() == "sample: KCl"


def test_facet_counts_are_what_distinct_counts(page: Any, base: str) -> None:
    for q in (None, "KCl"):
        go(page, **({"q": q} if q else {}))
        shown = facets(page)
        assert shown, "no facets"
        assert len(shown) <= 8
        for name, values in shown.items():
            assert values == counts(base, name, q, {}), name
            assert 2 <= len(values) <= 50
    assert "temperature" in shown  # KCl matches a sample (37.0) and a frame (300)


def test_clicking_a_value_narrows_results_and_address_and_a_chip_removes_it(page: Any, base: str) -> None:
    go(page)
    before = listed(page)
    value = value_link(page, "NX_class", "NXsample")
    expected_count = int(value.locator(".count").inner_text())
    value.focus()
    after(page, lambda: page.keyboard.press("Enter"))  # a link: the keyboard works as a click does
    assert hash_params(page) == {"view": "search", "f.NX_class": "NXsample"}
    narrowed = listed(page)
    assert narrowed == found(base, None, {"NX_class": "NXsample"}) and len(narrowed) == expected_count
    assert narrowed < before
    assert page.locator(".chips .chip").inner_text().startswith("NX_class: NXsample")
    assert page.locator(".facet-value.on").get_attribute("aria-current") == "true"
    # a second facet narrows further (a number: its filter is JSON 300, matching 300 and 300.0)
    after(page, value_link(page, "temperature", "300").click)
    both = {"NX_class": "NXsample", "temperature": 300}
    assert listed(page) == found(base, None, both) == {"scans/scan_0001/entry/sample"}
    assert page.locator(".chips .chip").count() == 2
    after(page, page.locator(".chips .chip", has_text="NX_class").click)
    assert hash_params(page) == {"view": "search", "f.temperature": "300"}
    assert listed(page) == found(base, None, {"temperature": 300})


def test_deep_link_restores_box_chips_and_results(page: Any, base: str) -> None:
    go(page, q="KCl", **{"f.temperature": "300"})
    assert page.input_value("#q") == "KCl"
    assert page.locator(".chips .chip").inner_text().startswith("temperature: 300")
    assert listed(page) == found(base, "KCl", {"temperature": 300}) == {"frames/KCl_300K_00007"}
    assert page.locator(".facet-value.on .facet-name").inner_text() == "300"
    # no stray text beside the view (a null child once showed as "null")
    assert page.evaluate("[...document.getElementById('main').childNodes].every((n) => n.nodeType === 1)")


def test_nothing_found_says_so_and_offers_to_clear_filters(page: Any, base: str) -> None:
    go(page, q="KCl", **{"f.NX_class": "NXroot"})
    assert found(base, "KCl", {"NX_class": "NXroot"}) == set()
    assert "Nothing matches" in page.locator(".search-empty").inner_text()
    after(page, page.get_by_role("link", name="Clear the filters").click)
    assert hash_params(page) == {"view": "search", "q": "KCl"}
    assert listed(page) == found(base, "KCl", {})


def test_a_search_from_a_container_stays_inside_it(page: Any, base: str) -> None:
    go(page, "scans", q="KCl")
    inside = {"scans/scan_0002/entry", "scans/scan_0002/entry/sample"}
    assert listed(page) == found(base, "KCl", {}, "scans") == inside
    after(page, page.get_by_role("link", name="search everywhere").click)
    assert listed(page) == found(base, "KCl", {})
    # from an array (the box searches from where one is): its container
    go(page, "frames/KCl_300K_00007", q="KCl")
    assert listed(page) == found(base, "KCl", {}, "frames") == {"frames/KCl_300K_00007"}
    assert "in “frames”" in page.locator(".search-status").inner_text()


def test_results_stay_when_the_counts_fail(browser: Any, base: str) -> None:  # noqa: F811
    page = page_for(browser, base)
    page.route("**/api/v1/distinct/**", lambda route: route.fulfill(
        status=503, content_type="application/json", body=json.dumps({"detail": "counting is down"})))
    go(page, q="KCl")
    assert listed(page) == found(base, "KCl", {})
    assert page.locator(".facets").inner_text().endswith("Filters unavailable: counting is down")
    assert_no_errors(page, allow=["status of 503"])  # the browser itself logs the failed request
    page.context.close()


def test_values_that_read_as_json_stay_strings(page: Any) -> None:
    go(page)
    got = page.evaluate("""async () => { const m = await import('/ui/search.js');
        return [m.toParam('28-ID-1'), m.toParam('1'), m.toParam(1), m.toParam(true), m.toParam('"x"'),
                [m.fromParam('28-ID-1'), m.fromParam('"1"'), m.fromParam('1'), m.fromParam('true')]]; }""")
    assert got == ["28-ID-1", '"1"', "1", "true", '"\\"x\\""', ["28-ID-1", "1", 1, True]]


def test_phone_width_facets_fold_above_results(browser: Any, base: str) -> None:  # noqa: F811
    phone = page_for(browser, base, viewport={"width": 390, "height": 844})
    go(phone, q="KCl", **{"f.temperature": "300"})
    panel = phone.locator("details.facets")
    assert panel.get_attribute("open") is None  # folded: the results come first on a phone
    assert panel.bounding_box()["y"] < phone.locator(".results").bounding_box()["y"]
    panel.locator("summary").focus()
    phone.keyboard.press("Enter")
    assert panel.get_attribute("open") == ""
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone, "search-phone")
    wide = page_for(browser, base)
    screenshot(go(wide, q="KCl"), "search")
    for one in (phone, wide):
        assert_no_errors(one)
        one.context.close()


def test_pages_keep_the_query_and_filters(browser: Any, runs: str) -> None:  # noqa: F811
    page = page_for(browser, runs)
    go(page, q="sample", **{"f.kind": "sample"})
    everything = found(runs, "sample", {"kind": "sample"})
    assert len(everything) == 112
    first = listed(page)
    assert len(first) == 100 and first < everything
    assert page.locator(".pager .range").inner_text() == "1–100 of 112"
    shift = counts(runs, "shift", "sample", {"kind": "sample"})
    assert facets(page)["shift"] == shift == {"day": 37, "night": 75}
    after(page, page.locator(".pager a[rel=next]").click)
    assert hash_params(page) == {"view": "search", "q": "sample", "f.kind": "sample", "page": "1"}
    second = listed(page)
    assert len(second) == 12 and first | second == everything
    assert page.locator(".chips .chip").inner_text().startswith("kind: sample")
    # a facet value starts again from the first page
    after(page, value_link(page, "shift", "night").click)
    assert hash_params(page) == {"view": "search", "q": "sample", "f.kind": "sample", "f.shift": "night"}
    assert listed(page) == found(runs, "sample", {"kind": "sample", "shift": "night"})
    assert_no_errors(page)
    page.context.close()


def test_private_nodes_neither_listed_nor_counted(browser: Any, served_private: Served) -> None:  # noqa: F811
    for key in (None, served_private.keys["a"], served_private.keys["ab"]):
        headers = {"Authorization": f"Apikey {key}"} if key else {}
        page = page_for(browser, served_private.url, extra_http_headers=headers)
        go(page)
        shown = listed(page)
        assert shown == found(served_private.url, None, {}, key=key)
        assert not any("sec_zulu" in path for path in shown)
        assert ("sec_alpha" in shown) == (key is not None)
        notes = facets(page).get("note", {})
        assert notes == (counts(served_private.url, "note", None, {}, key) if notes else notes)
        assert not any("ZULU" in value for value in notes)
        assert any("BRAVO" in value for value in notes) == (key == served_private.keys["ab"])
        assert any("ALPHA" in value for value in notes) == (key is not None)
        assert_no_errors(page)
        page.context.close()


def test_a_pinned_release_stays_pinned_through_facets_and_chips(page: Any, base: str) -> None:
    with urllib.request.urlopen(f"{base}/api/v1/") as r:
        release = json.load(r)["meta"]["release"]
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url)
            if "/api/v1/search-deep/" in request.url or "/api/v1/distinct/" in request.url else None)
    go(page, q="KCl", release=release)
    pinned = page.eval_on_selector_all(".facet-value", "as => as.map(a => a.getAttribute('href'))")
    assert pinned and all(f"release={release}" in href for href in pinned)
    after(page, value_link(page, "temperature", "37").click)
    assert hash_params(page) == {"view": "search", "q": "KCl", "f.temperature": "37", "release": release}
    assert listed(page) == found(base, "KCl", {"temperature": 37}) == {"scans/scan_0002/entry/sample"}
    chip = page.locator(".chips .chip").get_attribute("href")
    assert f"release={release}" in chip
    assert len(asked) >= 4 and all(f"release={release}" in url for url in asked)  # both answers, both times
