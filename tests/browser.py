"""The browse page's tests drive it in a real browser: Debian's chromium (installed by
``scripts/setup.sh dev``) through playwright's sync API, by path (no ``playwright install``).

A test module imports what it uses (``from .browser import browser, served_demo  # noqa: F401``):
``browser`` (module scope) and the served catalogs ``served_demo`` / ``served_private`` are
fixtures; ``page_for`` gives a page in a fresh context that records console and page errors
(``assert_no_errors`` at the end); ``open_view`` / ``wait_ready`` wait for the page's
``view-ready``; ``screenshot`` saves into ``test-artifacts/`` (``SKYSHELF_ARTIFACTS`` moves it).
Without chromium or playwright the tests skip, and fail when ``CI`` is set (an install step that
went missing must not pass silently).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlencode

import pytest

from publisher.stores import Store

from .conftest import ROOT, Published, run_build
from .servers import publish_serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from .oidc_server import OIDCProvider

#: Debian's real binary (``/usr/bin/chromium`` is a shell wrapper that prints noise on stderr).
DEBIAN_CHROMIUM = "/usr/lib/chromium/chromium"
#: How long a view may take to be ready before a test gives up (ms): generous, the machine is shared.
READY_MS = 20_000
_ERRORS: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def artifacts() -> Path:
    """Where screenshots go (created on first use); ``SKYSHELF_ARTIFACTS`` overrides."""
    folder = Path(os.environ.get("SKYSHELF_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_path() -> str | None:
    """``SKYSHELF_CHROMIUM`` if set (even when wrong: that is then reported), else Debian's chromium."""
    chosen = os.environ.get("SKYSHELF_CHROMIUM")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    for candidate in (DEBIAN_CHROMIUM, shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def missing(why: str) -> NoReturn:
    """Skip a browser test locally; fail it under CI, where ``scripts/setup.sh dev`` installs everything."""
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI must have it: scripts/setup.sh dev installs it)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium per test module (tests run ``-n 2 --dist loadfile``: one per worker)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed: bash scripts/setup.sh dev")
    exe = chromium_path()
    if exe is None:
        wanted = os.environ.get("SKYSHELF_CHROMIUM") or DEBIAN_CHROMIUM
        missing(f"chromium is not at {wanted}: apt-get install --no-install-recommends chromium fonts-liberation")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=exe, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def page_for(browser: Browser, base_url: str, **context_kwargs: Any) -> Page:
    """A page in a fresh context (its own cache and storage: "no key" and "key" are two contexts)
    whose console errors and uncaught exceptions are recorded for :func:`assert_no_errors`.
    ``base_url`` lets ``page.goto("/#/scans")`` work; ``context_kwargs`` go to ``new_context``
    (``viewport={"width": 390, "height": 844}`` for a phone). Closed with the context or browser."""
    options = {"viewport": {"width": 1280, "height": 800}, "accept_downloads": True, **context_kwargs}
    context = browser.new_context(base_url=base_url, **options)
    page = context.new_page()
    seen: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error":
            seen.append(f"console.error: {message.text} ({message.location.get('url', '')})")

    page.on("console", console)
    page.on("pageerror", lambda exc: seen.append(f"uncaught: {exc}"))
    _ERRORS[page] = seen
    return page


def errors(page: Page) -> list[str]:
    """The console errors and uncaught exceptions of a :func:`page_for` page so far."""
    return _ERRORS[page]


def assert_no_errors(page: Page, allow: Iterable[str] = ()) -> None:
    """No console error nor uncaught exception, but those matching a regex in ``allow`` (a test of
    a 404 view allows the browser's own ``Failed to load resource: ... 404`` line)."""
    patterns = [re.compile(a) for a in allow]
    left = [e for e in errors(page) if not any(p.search(e) for p in patterns)]
    assert not left, f"{page.url}: {left}"


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save a PNG of the page as ``<artifacts>/<name>.png`` (for people to look at; CI keeps them)."""
    path = artifacts() / (name if name.endswith(".png") else f"{name}.png")
    page.screenshot(path=str(path), full_page=full_page)
    return path


def ready_count(page: Page) -> int:
    """How many views the page has finished (``performance.mark('view-ready')`` so far)."""
    return int(page.evaluate("performance.getEntriesByName('view-ready').length"))


def wait_ready(page: Page, path: str = "", view: str = "", after: int = 0, timeout: float = READY_MS) -> None:
    """Wait until the page has rendered view ``view`` of ``path`` (``body[data-ready]`` is
    ``path|view``) in more than ``after`` renders (pass ``ready_count(page)`` taken before a click,
    so a view that was already shown does not count)."""
    page.wait_for_function("([want, after]) => document.body && document.body.dataset.ready === want"
                           " && performance.getEntriesByName('view-ready').length > after",
                           arg=[f"{path}|{view}", after], timeout=timeout)


def view_url(path: str = "", params: dict[str, str] | None = None) -> str:
    """The page's address for a node and hash params: ``/#/<path>?<params>`` (``{"f.beamline": "x"}``)."""
    query = urlencode(params or {})
    return f"/#/{path}" + (f"?{query}" if query else "")


def open_view(page: Page, path: str = "", view: str = "", params: dict[str, str] | None = None) -> Page:
    """Load the page at a node (``view`` and other hash params) and wait until that view is ready."""
    target = view_url(path, {**({"view": view} if view else {}), **(params or {})})
    # A goto that changes only the hash stays in the same document, whose earlier views count in
    # ready_count: wait for one more than it had. A new document starts counting from zero.
    seen = ready_count(page) if page.url.startswith("http") else 0
    if seen:
        page.evaluate("() => { window.__skyshelfSameDocument = true; }")
    if page.url.endswith(target):
        page.reload()
    else:
        page.goto(target)
    same = bool(seen) and page.evaluate("() => window.__skyshelfSameDocument === true")
    wait_ready(page, path, view, after=seen if same else 0)
    return page


@dataclass
class Served:
    """A catalog built into a tmp store and served by ``publish serve`` on a free loopback port."""

    url: str
    published: Published
    keys: dict[str, str] = field(default_factory=dict)  # name -> API key (served_private)
    source: Path | None = None  # the folder it was built from

    @property
    def store(self) -> Store:
        return self.published.store


@contextlib.contextmanager
def serve_demo(demo_dir: Path, folder: Path) -> Iterator[Served]:
    """The demo (examples/demo, built with the root pipeline.yml as ``scripts/demo.sh`` builds it), served."""
    from .test_build_demo import demo_config

    published = run_build(folder, demo_config(demo_dir))
    with publish_serve(published.store.url, cwd=ROOT) as url:
        yield Served(url, published, source=demo_dir)


@contextlib.contextmanager
def serve_private(folder: Path, provider: OIDCProvider | None = None) -> Iterator[Served]:
    """tests/auth_world.py's catalog (public ``pub``; ``sec_alpha`` tagged A, ``sec_bravo`` B,
    ``sec_zulu`` nobody's), served with API keys ``a`` (reads A), ``ab`` (A and B) and ``b``;
    with ``provider`` its OIDC section too."""
    from publisher.auth.keys import create_key

    from . import auth_world

    sources = folder / "sources"
    sources.mkdir()
    auth_world.make_sources(sources)
    published = run_build(sources, auth_world.config(provider))
    tags = auth_world.TAGS
    keys = {name: create_key(published.store, wanted)[0]
            for name, wanted in (("a", tags["a"]), ("b", tags["b"]), ("ab", tags["a"] + tags["b"]))}
    with publish_serve(published.store.url, cwd=ROOT) as url:
        yield Served(url, published, keys, source=sources)


def checked_demo_page(browser: Browser, served_demo: Served) -> Iterator[Page]:
    """A page on the served demo in a fresh context that must end with no console error (a test
    module makes it its fixture: ``page = pytest.fixture(name="page")(checked_demo_page)``)."""
    one = page_for(browser, served_demo.url)
    yield one
    assert_no_errors(one)
    one.context.close()


@pytest.fixture(scope="module")
def served_demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_demo(demo_dir, tmp_path_factory.mktemp("browse-demo")) as served:
        yield served


@pytest.fixture(scope="module")
def served_private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_private(tmp_path_factory.mktemp("browse-private")) as served:
        yield served


def snippet(page: Page, title: str) -> str:
    """The code of the Code tab's snippet under the heading ``title``."""
    heading = page.get_by_role("heading", name=title, exact=True)
    return page.locator(".snippet", has=heading).locator("code").inner_text()


def run_python(code: str) -> dict[str, Any]:
    """Run a snippet as a user would; its globals."""
    space: dict[str, Any] = {}
    exec(compile(code, "<snippet>", "exec"), space)  # noqa: S102 - the page's snippet, run as a user would
    return space
