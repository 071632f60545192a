"""A pinned release (``release=<id>``) under today's access rules (security review of issue 14).

Release 1 tags ``data/secret`` for group A; release 2 moves it to group B (a data manager taking
access away). Pinning release 1 must not hand group A what release 2 took away: a pin reaches a
release's public nodes only, whoever asks, and who the caller is comes from today's rules. A
signed-in caller's pinned redirect (a signed URL) is never marked for shared caches.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest

from publisher.auth.keys import create_key

from .conftest import Published, run_build
from .servers import local_server

ISSUER_1, ISSUER_2 = "http://127.0.0.1:9/one", "http://127.0.0.1:9/two"  # unreachable: never contacted for keys


def _config(group: str, issuer: str) -> dict[str, Any]:
    return {"name": "pinned access", "sources": [{"path": "data"}],
            "rules": [{"match": "data/secret", "access_tags": [group]}],
            "access": {"default": "public", "groups": {"grp-a": ["grp-a"], "grp-b": ["grp-b"]},
                       "oidc": {"issuer": issuer, "audience": "https://skyshelf.test/api", "client_id": "skyshelf-cli"}}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str, dict[str, str]]]:
    folder: Path = tmp_path_factory.mktemp("pinned-access")
    (folder / "data").mkdir()
    for name in ("open", "secret"):
        with h5py.File(folder / "data" / f"{name}.h5", "w") as f:
            f.create_dataset("counts", data=np.arange(6, dtype="i4").reshape(2, 3))
    first = run_build(folder, _config("grp-a", ISSUER_1)).report.release
    (folder / "data" / "note.csv").write_text("a\n1\n")  # something changes, so release 2 is made
    published: Published = run_build(folder, _config("grp-b", ISSUER_2))
    keys = {tag: create_key(published.store, [tag])[0] for tag in ("grp-a", "grp-b")}
    with local_server(published.store.url) as url:
        yield url, first, published.report.release, keys


def _get(base: str, route: str, key: str | None = None, release: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Apikey {key}"} if key else {}
    return httpx.get(f"{base}{route}", headers=headers, params={"release": release} if release else {})


ROUTES = ["/api/v1/metadata/data/secret", "/api/v1/metadata/data/secret/counts",
          "/api/v1/array/full/data/secret/counts?format=json", "/api/v1/zarr/v3/data/secret/counts/zarr.json"]


@pytest.mark.parametrize("route", ROUTES)
def test_a_pin_does_not_give_back_what_the_current_rules_took_away(world: Any, route: str) -> None:
    base, first, current, keys = world
    # today: group B reads the secret, group A does not
    assert _get(base, route, keys["grp-b"]).status_code in (200, 307)
    assert _get(base, route, keys["grp-a"]).status_code == 404
    # pinned to release 1 (where group A could read it): nobody reads a private node through a pin
    for key in (keys["grp-a"], keys["grp-b"], None):
        pinned = _get(base, route, key, first)
        assert pinned.status_code == 404, (route, key, pinned.status_code, pinned.text[:200])
        assert "grp-a" not in pinned.text


def test_a_pin_still_reaches_the_public_nodes_of_its_release(world: Any) -> None:
    base, first, current, keys = world
    for key in (None, keys["grp-a"]):
        old = {d["id"] for d in _get(base, "/api/v1/search/data", key, first).json()["data"]}
        assert old == {"open"}  # release 1 had no note; its secret is not listed
    assert {d["id"] for d in _get(base, "/api/v1/search/data", keys["grp-b"]).json()["data"]} == {"open", "secret", "note"}


def test_who_the_caller_is_follows_todays_provider(world: Any) -> None:
    """about pinned to release 1 advertises today's identity provider, not release 1's."""
    base, first, _, _ = world
    today, pinned = _get(base, "/api/v1/").json(), _get(base, "/api/v1/", release=first).json()
    assert pinned["authentication"] == today["authentication"]
    assert ISSUER_1 not in str(pinned["authentication"])


def test_a_signed_in_pinned_redirect_is_private(world: Any) -> None:
    base, first, _, keys = world
    route = "/api/v1/zarr/v3/data/open/counts/zarr.json"
    anonymous = _get(base, route, release=first)
    assert anonymous.status_code == 307 and "immutable" not in anonymous.headers["cache-control"]
    signed_in = _get(base, route, keys["grp-a"], first)
    assert signed_in.status_code == 307
    assert signed_in.headers["cache-control"].startswith("private") and "public" not in signed_in.headers["cache-control"]
