"""The browser harness itself (tests/browser.py), against pages that exist without the browse
page: chromium starts, a served page renders, console errors and uncaught exceptions are caught,
screenshots are real PNGs where they should be, a missing browser skips locally and fails under CI."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from .browser import (Served, assert_no_errors, browser, chromium_path, errors, missing, open_view,  # noqa: F401
                      page_for, ready_count, screenshot, served_demo, served_private, wait_ready)

DOCS_TITLE = ".swagger-ui .info .title"


def test_a_served_page_renders_without_errors_and_is_screenshot(browser, served_demo: Served,  # noqa: F811
                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert browser.version.split(".")[0].isdigit()
    page = page_for(browser, served_demo.url)
    page.goto("/api/v1/docs")
    page.wait_for_selector(DOCS_TITLE)
    assert "Skyshelf" in page.locator(DOCS_TITLE).inner_text()  # Swagger UI 4 renders OpenAPI 3.0, not 3.1
    assert_no_errors(page)
    monkeypatch.setenv("SKYSHELF_ARTIFACTS", str(tmp_path / "shots"))
    shot = screenshot(page, "api-docs")
    assert shot == tmp_path / "shots" / "api-docs.png"
    image = Image.open(io.BytesIO(shot.read_bytes()))
    assert image.format == "PNG" and image.width == 1280 and image.height >= 800
    low, high = image.convert("L").getextrema()
    assert high - low > 100, "a blank screenshot"
    page.context.close()


def test_console_errors_and_uncaught_exceptions_are_caught(browser, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url)
    page.goto("/api/v1/docs")
    page.wait_for_selector(DOCS_TITLE)
    assert errors(page) == []
    page.evaluate("console.error('deliberate console error'); setTimeout(() => { throw new Error('deliberate throw'); })")
    page.evaluate("fetch('/api/v1/metadata/no/such/node')")  # the browser logs a failed load as a console error
    page.evaluate("new Promise((done) => setTimeout(done, 100))")
    seen = errors(page)
    assert any("deliberate console error" in e for e in seen), seen
    assert any(e.startswith("uncaught:") and "deliberate throw" in e for e in seen), seen
    assert any("404" in e for e in seen), seen
    with pytest.raises(AssertionError, match="deliberate"):
        assert_no_errors(page)
    with pytest.raises(AssertionError, match="404"):
        assert_no_errors(page, allow=["deliberate"])
    assert_no_errors(page, allow=["deliberate", r"status of 404"])
    page.context.close()


def test_wait_ready_waits_for_a_new_view_ready_mark(browser, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url)
    page.goto("/api/v1/docs")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with pytest.raises(PlaywrightTimeout):
        wait_ready(page, "scans", "", timeout=300)
    page.evaluate("document.body.dataset.ready = 'scans|'; performance.mark('view-ready')")
    wait_ready(page, "scans", "")
    before = ready_count(page)
    assert before == 1
    with pytest.raises(PlaywrightTimeout):  # the same view again: only a new mark counts
        wait_ready(page, "scans", "", after=before, timeout=300)
    page.evaluate("setTimeout(() => performance.mark('view-ready'), 50)")
    wait_ready(page, "scans", "", after=before)
    page.context.close()


def test_the_browse_page_opens_and_a_click_waits_for_the_next_view(browser, served_demo: Served) -> None:  # noqa: F811
    page = open_view(page_for(browser, served_demo.url), "")
    before = ready_count(page)
    page.click('#view a[href="#/scans"]')
    wait_ready(page, "scans", "", after=before)
    assert page.locator("h1").inner_text() == "scans"
    assert_no_errors(page)
    page.context.close()


def test_the_private_catalog_answers_by_key_in_the_browser(browser, served_private: Served) -> None:  # noqa: F811
    anonymous = httpx.get(f"{served_private.url}/api/v1/search/").json()
    assert [c["id"] for c in anonymous["data"]] == ["pub"]
    page = page_for(browser, served_private.url, extra_http_headers={"Authorization": f"Apikey {served_private.keys['a']}"})
    page.goto("/api/v1/search/")
    assert "sec_alpha" in page.content() and "sec_bravo" not in page.content()
    page.context.close()


def test_a_missing_browser_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKYSHELF_CHROMIUM", str(tmp_path / "no-chromium"))
    assert chromium_path() is None
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no chromium here"):
        missing("no chromium here")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI must have it"):
        missing("no chromium here")
