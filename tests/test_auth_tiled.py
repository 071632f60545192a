"""The real tiled client against ``publish serve`` of a fully private catalog: an API key given as
``api_key=``, ``TILED_API_KEY`` or ``?api_key=`` reads private arrays and tables equal to their
sources; without credentials the client refuses (the about document says auth is required);
and the device-code login at the catalog's OpenID provider works end to end, after which the
client reads what the user's group is tagged for and nothing else."""

from __future__ import annotations

import json
import webbrowser
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from handlers.local import LocalServer
from publisher.auth.keys import create_key

from .conftest import run_build
from .oidc_server import OIDCProvider, oidc_provider

IMAGE = np.arange(20 * 30, dtype="int32").reshape(20, 30) - 7
TABLE = pd.DataFrame({"x": [1, 2, 3], "label": ["one", "two", "three"]})


def make_sources(folder: Path) -> None:
    for group in ("alpha", "bravo"):
        (folder / group).mkdir()
        np.save(folder / group / "img.npy", IMAGE)
        (folder / group / "img.npy.json").write_text(json.dumps({"group": group}))
        TABLE.to_csv(folder / group / "tab.csv", index=False)


def config(provider: OIDCProvider | None) -> dict[str, Any]:
    access: dict[str, Any] = {"groups": {"grp-a": ["tag-a"], "grp-b": ["tag-b"]}}
    if provider is not None:
        access["oidc"] = {"issuer": provider.issuer, "audience": provider.audience, "client_id": provider.client_id}
    return {"name": "private", "sources": [{"path": "alpha"}, {"path": "bravo"}], "access": access,
            "rules": [{"match": "alpha", "access_tags": ["tag-a"]}, {"match": "bravo", "access_tags": ["tag-b"]}]}


@dataclass
class Served:
    url: str  # .../api/v1
    key_a: str


def _serve(folder: Path, provider: OIDCProvider | None, public: bool = False) -> Iterator[Served]:
    make_sources(folder)
    setup = config(provider)
    if public:  # a public folder too: anonymous callers read it, and the client does not ask for a login
        (folder / "open").mkdir()
        np.save(folder / "open" / "img.npy", IMAGE)
        setup["sources"].append({"path": "open"})
        setup["rules"].append({"match": "open", "access_tags": ["public"]})
    published = run_build(folder, setup)
    key_a, _ = create_key(published.store, ["tag-a"])
    server = LocalServer(published.store.url, "127.0.0.1", 0).start()
    try:
        yield Served(f"{server.url}/api/v1", key_a)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def keys_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A private catalog that takes API keys only (no identity provider)."""
    yield from _serve(tmp_path_factory.mktemp("tiled-keys"), None)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    with oidc_provider(tmp_path_factory.mktemp("tiled-oidc"), {"alice": ["grp-a"], "bob": ["grp-b"]}) as running:
        yield running


@pytest.fixture(scope="module")
def with_oidc(tmp_path_factory: pytest.TempPathFactory, provider: OIDCProvider) -> Iterator[Served]:
    """A private catalog whose identity provider is the test's OpenID provider."""
    yield from _serve(tmp_path_factory.mktemp("tiled-oidc-site"), provider)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, provider: OIDCProvider) -> Iterator[Served]:
    """The same with a public folder: anonymous callers read something."""
    yield from _serve(tmp_path_factory.mktemp("tiled-mixed-site"), provider, public=True)


@pytest.fixture(autouse=True)
def _own_tiled_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens the client caches go to the test's folder, never the user's."""
    monkeypatch.setenv("TILED_CACHE_DIR", str(tmp_path / "tiled-cache"))
    monkeypatch.delenv("TILED_API_KEY", raising=False)


def _reads_alpha(client: Any) -> None:
    np.testing.assert_array_equal(client["alpha/img"].read(), IMAGE)
    assert client["alpha/img"].metadata["group"] == "alpha"
    pd.testing.assert_frame_equal(client["alpha/tab"].read(), TABLE, check_dtype=False)
    assert list(client) == ["alpha"]  # the listing holds only what the key reaches


@pytest.mark.parametrize("how", ["api_key=", "TILED_API_KEY", "?api_key="])
def test_an_api_key_reads_private_data_as_published(keys_only: Served, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiled.client import from_uri

    if how == "api_key=":
        client = from_uri(keys_only.url, api_key=keys_only.key_a)
    elif how == "TILED_API_KEY":
        monkeypatch.setenv("TILED_API_KEY", keys_only.key_a)
        client = from_uri(keys_only.url)
    else:
        client = from_uri(f"{keys_only.url}?api_key={keys_only.key_a}")
    _reads_alpha(client)
    with pytest.raises(KeyError):  # tagged B: as absent as a node that does not exist
        client["bravo/img"]
    with pytest.raises(KeyError):
        client["nothing/img"]


def test_without_credentials_the_client_refuses(keys_only: Served) -> None:
    import httpx
    from tiled.client import from_uri
    from tiled.client.utils import ClientError

    assert httpx.get(keys_only.url + "/").json()["authentication"] == {"required": True, "providers": [], "links": None}
    for path in ("metadata/", "metadata/alpha/img", "metadata/nothing", "search/", "array/full/alpha/img"):
        refused = httpx.get(f"{keys_only.url}/{path}")  # the same 401 whether the node exists or not
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Apikey")
        assert refused.json()["detail"].startswith("this catalog is private")
    with pytest.raises(RuntimeError, match="requires API key authentication"):
        from_uri(keys_only.url)
    with pytest.raises(ClientError, match="401"):
        from_uri(keys_only.url, api_key="ssk_000000000000_" + "0" * 64)


def test_device_code_login_reads_the_groups_nodes_only(with_oidc: Served, provider: OIDCProvider,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tiled.client import from_uri

    monkeypatch.setattr(webbrowser, "open", provider.browser("alice"))
    client = from_uri(with_oidc.url)  # required, a provider advertised: the client logs in (device code)
    assert not provider.browser_errors
    _reads_alpha(client)
    with pytest.raises(KeyError):
        client["bravo/img"]
    # a second connection reuses the cached tokens (through whoami): no browser this time
    monkeypatch.setattr(webbrowser, "open", lambda *a, **k: pytest.fail("the client asked for a new login"))
    again = from_uri(with_oidc.url)
    np.testing.assert_array_equal(again["alpha/img"][2:5, 1:3], IMAGE[2:5, 1:3])


def test_anonymous_first_then_login_on_a_catalog_with_public_nodes(mixed: Served, provider: OIDCProvider,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tiled.client import from_uri

    monkeypatch.setattr(webbrowser, "open", lambda *a, **k: pytest.fail("a login was asked for"))
    client = from_uri(mixed.url)  # required: false, so the client stays anonymous
    assert list(client) == ["open"]
    np.testing.assert_array_equal(client["open/img"].read(), IMAGE)
    with pytest.raises(KeyError):
        client["alpha/img"]
    monkeypatch.setattr(webbrowser, "open", provider.browser("bob"))
    client.login()
    assert not provider.browser_errors
    assert sorted(client) == ["bravo", "open"]
    np.testing.assert_array_equal(client["bravo/img"].read(), IMAGE)
    with pytest.raises(KeyError):
        client["alpha/img"]


def test_an_identity_provider_that_is_down_does_not_lock_out_api_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The about document names the provider's login endpoints, read from its discovery document;
    while the provider cannot be reached the about document still answers (no login advertised),
    so API keys keep working with the tiled client; once it answers, its login is advertised."""
    import shutil

    import httpx
    from tiled.client import from_uri

    from handlers import auth

    from .oidc_server import install
    from .servers import free_port

    if shutil.which("node") is None:
        pytest.skip("node is not installed: the OIDC tests run a real OpenID provider (oidc-provider, npm)")
    install()
    port = free_port()
    later = OIDCProvider(tmp_path, {"AUDIENCE": "https://skyshelf.test/api", "CLIENT_ID": "skyshelf-cli", "ACCESS_TTL": "300",
                                    "ACCOUNTS": json.dumps({"alice": {"groups": ["grp-a"]}}), "KEYS_FILE": str(tmp_path / "keys.json")},
                         issuer=f"http://127.0.0.1:{port}")  # not started yet: nothing listens there
    (tmp_path / "catalog").mkdir()
    for served in _serve(tmp_path / "catalog", later):
        about = httpx.get(served.url + "/")
        assert about.status_code == 200, about.text
        assert about.json()["authentication"] == {"required": True, "providers": [], "links": None}
        _reads_alpha(from_uri(served.url, api_key=served.key_a))
        later.start(port)
        try:
            assert httpx.get(served.url + "/").json()["authentication"]["providers"] == []  # not asked again at once
            monkeypatch.setattr(auth, "RETRY_DISCOVERY", 0.0)
            (provider,) = httpx.get(served.url + "/").json()["authentication"]["providers"]
            assert provider["links"]["auth_endpoint"] == later.device_authorization_endpoint
        finally:
            later.stop()
