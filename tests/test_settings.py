"""The handlers' settings: typed, read from the environment once per process, and passed by
``publish serve`` to the handlers instead of written into the environment."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import numpy as np
import pytest

from handlers import settings
from handlers.settings import Settings

from .conftest import run_build


def test_settings_are_typed_and_empty_values_are_unset() -> None:
    got = Settings.from_env({"SKYSHELF_STORE": "s3://b/site", "SKYSHELF_MAX_BODY_BYTES": "1000", "SKYSHELF_CATALOG_TTL": "0.5",
                             "SKYSHELF_STORE_ANON": "1", "SKYSHELF_BASE_URL": "", "SKYSHELF_OTHER": "x"})
    assert got == Settings(store="s3://b/site", max_body_bytes=1000, catalog_ttl=0.5, store_anon=True)
    assert Settings.from_env({}) == Settings() and Settings.from_env({}, store="here").store == "here"
    with pytest.raises(ValueError, match="SKYSHELF_MAX_CONTAINER_NODES must be an integer, got 'many'"):
        Settings.from_env({"SKYSHELF_MAX_CONTAINER_NODES": "many"})


def test_yes_no_settings_read_no_as_no() -> None:
    """``SKYSHELF_STORE_ANON=0`` turns anonymous reads off (any non-empty text used to turn them on)."""
    for raw, expected in (("1", True), ("TRUE", True), ("on", True), ("0", False), ("false", False), ("No", False)):
        assert Settings.from_env({"SKYSHELF_STORE_ANON": raw, "SKYSHELF_ACCESS_LOG": raw}) == Settings(store_anon=expected, access_log=expected)
    with pytest.raises(ValueError, match="SKYSHELF_STORE_ANON must be one of 1/true/yes/on or 0/false/no/off, got 'maybe'"):
        Settings.from_env({"SKYSHELF_STORE_ANON": "maybe"})


def test_the_environment_is_read_once_until_reset() -> None:
    first = settings.environment()
    os.environ["SKYSHELF_MAX_BODY_BYTES"] = "1234"  # not through monkeypatch: no reset follows
    try:
        assert settings.environment() is first and settings.current() is first
        settings.reset()
        assert settings.environment().max_body_bytes == 1234
    finally:
        del os.environ["SKYSHELF_MAX_BODY_BYTES"]
        settings.reset()


def test_two_local_servers_each_serve_their_own_store(tmp_path: Path) -> None:
    """Each server passes its store to the handlers it calls; neither writes the environment (it
    did once, and the server started last took over the other's requests)."""
    from handlers.local import LocalServer

    stores = []
    for name, value in (("a", 1), ("b", 2)):
        folder = tmp_path / name / "data"
        folder.mkdir(parents=True)
        np.save(folder / f"{name}.npy", np.full((4, 4), value, dtype="int16"))
        stores.append(run_build(tmp_path / name, {"sources": [{"path": str(folder), "into": ""}]}))
    before = os.environ.get("SKYSHELF_STORE")
    servers = [LocalServer(p.store.url, "127.0.0.1", 0).start() for p in stores]
    try:
        assert os.environ.get("SKYSHELF_STORE") == before
        for server, (name, value) in zip(servers, (("a", 1), ("b", 2))):
            answer = httpx.get(f"{server.url}/api/v1/array/full/{name}", params={"format": "json"})
            assert answer.status_code == 200 and answer.json() == [[value] * 4] * 4
    finally:
        for server in servers:
            server.stop()
