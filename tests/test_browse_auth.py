"""Signing in on the browse page, in chromium against ``publish serve`` of tests/auth_world.py's
catalog (public ``pub``; ``sec_alpha`` read with tag A, ``sec_bravo`` with B, ``sec_zulu`` by
nobody) with the test OpenID provider's browser client (authorization code + PKCE): what each
caller sees, where credentials are kept (sessionStorage for a key, memory for a token; never
localStorage, cookies or the URL) and what a refused credential or a catalog closed to anonymous
callers shows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from publisher.auth.keys import create_key

from . import auth_world
from .browser import (assert_no_errors, browser, open_view, page_for, ready_count, screenshot,  # noqa: F401
                      wait_ready)
from .conftest import ROOT, run_build
from .oidc_server import OIDCProvider, oidc_provider
from .servers import publish_serve

BROWSER_CLIENT = "skyshelf-browse"
#: The browser's own line for a failed request (a 401 or 404 the page shows as a message).
FAILED_LOAD = r"Failed to load resource: the server responded with a status of (401|404)"


@dataclass
class Site:
    url: str
    keys: dict[str, str]
    provider: OIDCProvider


def _serve(folder: Path, provider: OIDCProvider, sources: tuple[str, ...]) -> Any:
    """Build the world's catalog from ``sources`` (its folders) with the browser client configured."""
    auth_world.make_sources(folder)
    config = auth_world.config(provider)
    config["sources"] = [{"path": p} for p in sources]
    config["access"]["oidc"]["browser_client_id"] = BROWSER_CLIENT
    published = run_build(folder, config)
    tags = auth_world.TAGS
    keys = {name: create_key(published.store, wanted)[0]
            for name, wanted in (("a", tags["a"]), ("ab", tags["a"] + tags["b"]))}
    return published, keys


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The mixed catalog served, and the provider restarted (same port, same keys) to register the
    page's origin as its browser client's redirect URI (CORS on /token compares exact origins)."""
    with oidc_provider(tmp_path_factory.mktemp("browse-oidc"), {"alice": ["grp-a"], "bob": ["grp-b"]},
                       access_ttl=3600) as provider:
        sources = ("pub", "sec_alpha", "sec_bravo", "sec_zulu")
        published, keys = _serve(tmp_path_factory.mktemp("browse-auth"), provider, sources)
        with publish_serve(published.store.url, cwd=ROOT) as url:
            provider.env["BROWSER_REDIRECT_URIS"] = f"{url}/"
            provider.stop()
            provider.start(provider.port)
            yield Site(url, keys, provider)


def names(page: Any) -> set[str]:
    """The children the current container view lists."""
    return set(page.locator("main table.children tbody a").all_inner_texts())


def storage(page: Any) -> dict[str, Any]:
    return page.evaluate("""() => ({local: {...localStorage}, session: {...sessionStorage},
                                    cookie: document.cookie, href: location.href})""")


def assert_nowhere(page: Any, *secrets: str) -> None:
    """No secret in localStorage, sessionStorage, a cookie (the page's or the context's) or the address."""
    seen = storage(page)
    cookies = page.context.cookies()
    assert seen["local"] == {}
    for secret in secrets:
        assert secret not in repr(seen), seen
        assert all(secret not in c["value"] for c in cookies), cookies


def test_anonymous_sees_public_nodes_and_a_private_deep_link_says_not_found_or_sign_in(
        browser, site: Site,  # noqa: F811
) -> None:
    page = page_for(browser, site.url)
    open_view(page)
    assert names(page) == {"pub"}
    assert page.get_by_role("button", name="Sign in").is_visible()
    screenshot(page, "private-anonymous")
    open_view(page, "sec_alpha")
    box = page.locator("main .error")
    assert "Not found" in box.inner_text()
    assert "Private nodes show only to signed-in visitors" in box.locator(".auth-hint").inner_text()
    assert_no_errors(page, allow=[FAILED_LOAD])
    page.context.close()
    phone = page_for(browser, site.url, viewport={"width": 390, "height": 844})
    open_view(phone)
    assert phone.get_by_role("button", name="Sign in").is_visible()
    assert phone.locator("#apikey-input").is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # the sign-in control fits
    screenshot(phone, "private-anonymous-phone")
    phone.context.close()


def test_an_api_key_shows_its_private_nodes_until_sign_out(browser, site: Site) -> None:  # noqa: F811
    page = page_for(browser, site.url)
    open_view(page)
    before = ready_count(page)
    page.fill("#apikey-input", site.keys["ab"])
    page.get_by_role("button", name="Use key").click()
    wait_ready(page, after=before)
    assert names(page) == {"pub", "sec_alpha", "sec_bravo"}
    assert "Signed in as" in page.locator("#auth .who").inner_text()
    assert storage(page)["session"] == {"skyshelf.apikey": site.keys["ab"]}  # this tab only
    assert_nowhere(page)
    assert site.keys["ab"] not in storage(page)["href"] and site.keys["ab"] not in str(page.context.cookies())
    page.reload()  # the tab keeps its key
    wait_ready(page)
    assert names(page) == {"pub", "sec_alpha", "sec_bravo"}
    before = ready_count(page)
    page.get_by_role("button", name="Sign out").click()
    wait_ready(page, after=before)
    assert names(page) == {"pub"}
    assert storage(page)["session"] == {}
    assert_no_errors(page)
    page.context.close()


def test_a_refused_key_says_why_and_is_not_kept(browser, site: Site) -> None:  # noqa: F811
    page = page_for(browser, site.url)
    open_view(page)
    page.fill("#apikey-input", "ssk_nothing")
    page.get_by_role("button", name="Use key").click()
    note = page.locator("#auth .auth-note")
    note.wait_for()
    assert note.inner_text().startswith("API key refused: ")
    assert "malformed API key" in note.inner_text()  # the API's own detail
    assert storage(page)["session"] == {}
    assert names(page) == {"pub"}
    assert_no_errors(page, allow=[FAILED_LOAD])
    page.context.close()


def sign_in(page: Any, site: Site, account: str) -> dict[str, Any]:
    """Click "Sign in", sign in at the provider's login page, and come back to the page; the
    context's cookies and localStorage as they were while the provider had the tab."""
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.provider.issuer}/interaction/**")
    away = page.context.storage_state()
    page.fill("input[name=login]", account)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/**")
    return away


def test_oidc_sign_in_with_pkce_shows_the_groups_nodes_and_keeps_the_token_in_memory(
        browser, site: Site,  # noqa: F811
) -> None:
    page = page_for(browser, site.url)
    open_view(page, "sec_alpha")  # not found anonymously; the route comes back after the sign-in
    sent: dict[str, Any] = {}

    def exchange(response: Any) -> None:
        if response.url == f"{site.provider.issuer}/token":
            sent["form"] = dict(re.findall(r"([^&=]+)=([^&]*)", response.request.post_data or ""))
            sent["answer"] = response.json()

    page.on("response", exchange)
    away = sign_in(page, site, "alice")
    wait_ready(page, "sec_alpha")
    assert names(page) == {"sec_alpha_img", "sec_alpha_tab", "sec_alpha_box"}
    assert page.locator("#auth .who").inner_text() == "Signed in as alice"
    form, token = sent["form"], sent["answer"]["access_token"]
    assert form["grant_type"] == "authorization_code" and form["client_id"] == BROWSER_CLIENT
    assert len(form["code_verifier"]) >= 43  # PKCE S256's verifier went to the token endpoint...
    seen = storage(page)
    assert seen["href"] == f"{site.url}/#/sec_alpha"  # ...code, state and iss left the address bar
    assert seen["session"] == {}  # the verifier and state are gone; the token was never there
    assert_nowhere(page, token, form["code_verifier"], form["code"])
    assert all(not origin["localStorage"] for origin in away["origins"])  # during the redirect too
    assert form["code_verifier"] not in repr(away["cookies"])
    screenshot(page, "private-signed-in")
    before = ready_count(page)
    page.click("a.brand")
    wait_ready(page, after=before)
    assert names(page) == {"pub", "sec_alpha"}  # alice's group grants A, not B
    page.reload()  # the token lived in memory only: a reload signs out
    wait_ready(page)
    assert names(page) == {"pub"}
    assert page.get_by_role("button", name="Sign in").is_visible()
    assert_no_errors(page, allow=[FAILED_LOAD])
    page.context.close()


def test_a_redirect_whose_state_does_not_match_is_refused_and_cleaned(
        browser, site: Site,  # noqa: F811
) -> None:
    page = page_for(browser, site.url)
    page.goto("/?code=stolen-code&state=forged")
    wait_ready(page)
    assert "does not match a sign-in started here" in page.locator("#auth .auth-note").inner_text()
    assert storage(page)["href"] == f"{site.url}/"
    assert names(page) == {"pub"}
    assert_no_errors(page)
    page.context.close()


def test_a_catalog_closed_to_anonymous_callers_shows_a_sign_in_prompt(
        browser, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
) -> None:
    with oidc_provider(tmp_path_factory.mktemp("closed-oidc")) as provider:
        published, keys = _serve(tmp_path_factory.mktemp("closed"), provider, ("sec_alpha", "sec_bravo"))
        with publish_serve(published.store.url, cwd=ROOT) as url:
            page = page_for(browser, url)
            open_view(page)
            prompt = page.locator("main .signin-prompt")
            assert prompt.get_by_text("Sign in to browse this catalog").is_visible()
            assert not page.locator("main .error").count()
            screenshot(page, "private-closed")
            before = ready_count(page)
            page.fill("#apikey-input", keys["a"])
            page.get_by_role("button", name="Use key").click()
            wait_ready(page, after=before)
            assert names(page) == {"sec_alpha"}
            assert_no_errors(page, allow=[FAILED_LOAD])
            page.context.close()


def test_the_token_is_renewed_with_the_refresh_token_before_it_expires(
        browser, site: Site,  # noqa: F811
) -> None:
    site.provider.env["BROWSER_ACCESS_TTL"] = "6"  # the page renews at 3/4 of the lifetime
    site.provider.stop()
    site.provider.start(site.provider.port)
    try:
        page = page_for(browser, site.url)
        open_view(page)
        token_url = f"{site.provider.issuer}/token"
        with page.expect_response(lambda r: r.url == token_url) as first:
            sign_in(page, site, "bob")
        wait_ready(page)
        # the renewal: a refresh grant, then whoami with the new token, which then becomes the credential
        with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/whoami"), timeout=30_000) as checked:
            with page.expect_response(lambda r: r.url == token_url, timeout=30_000) as renewed:
                pass
        checked.value.finished()
        assert "grant_type=refresh_token" in renewed.value.request.post_data
        old, new = first.value.json()["access_token"], renewed.value.json()["access_token"]
        assert new != old and checked.value.request.headers["authorization"] == f"Bearer {new}"
        with page.expect_request(lambda r: "/api/v1/" in r.url) as asked:
            page.goto(f"{site.url}/#/sec_bravo")
        assert asked.value.headers["authorization"] == f"Bearer {new}"
        wait_ready(page, "sec_bravo")
        assert page.locator("#auth .who").inner_text() == "Signed in as bob"
        assert storage(page)["session"] == {}
        assert_nowhere(page, old, new)
        assert_no_errors(page, allow=[FAILED_LOAD])
        page.context.close()
    finally:
        del site.provider.env["BROWSER_ACCESS_TTL"]
        site.provider.stop()
        site.provider.start(site.provider.port)


def test_about_advertises_the_browser_client_and_the_tiled_client_still_connects(site: Site) -> None:
    from tiled.client import from_uri

    about = httpx.get(f"{site.url}/api/v1/", timeout=30).json()
    (provider,) = about["authentication"]["providers"]
    assert provider["links"]["browser_client_id"] == BROWSER_CLIENT
    assert provider["links"]["client_id"] == site.provider.client_id  # the CLI's device-code client
    assert provider["links"]["authorize_endpoint"] == f"{site.provider.issuer}/auth"
    assert sorted(from_uri(site.url, api_key=site.keys["a"])) == ["pub", "sec_alpha"]


def test_without_an_identity_provider_the_page_offers_api_keys_only(
        browser, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
) -> None:
    folder = tmp_path_factory.mktemp("keys-only")
    auth_world.make_sources(folder)
    published = run_build(folder, auth_world.config(None))
    key = create_key(published.store, auth_world.TAGS["a"])[0]
    with publish_serve(published.store.url, cwd=ROOT) as url:
        page = page_for(browser, url)
        open_view(page)
        assert names(page) == {"pub"}
        assert not page.locator("#auth button.oidc").count()
        before = ready_count(page)
        page.fill("#apikey-input", key)
        page.get_by_role("button", name="Sign in").click()
        wait_ready(page, after=before)
        assert names(page) == {"pub", "sec_alpha"}
        assert_no_errors(page)
        page.context.close()
