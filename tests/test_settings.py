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


@pytest.mark.parametrize("raw", ["nan", "-1", "-inf"])
def test_numbers_that_are_no_count_bytes_or_seconds_are_refused(raw: str, tmp_path: Path) -> None:
    """nan seconds between the journal's writes made its thread spin (a wait of nan returns at once),
    a negative threshold spread every array into slab tasks: refused, naming the variable, before a
    build starts. inf (never) stays a number the seconds' settings take: the journal then writes at
    the end only (its thread died of an OverflowError: no journal, a killed build could not resume)."""
    from click.testing import CliRunner

    from publisher.build import BuildSettings
    from publisher.cli import main

    from .conftest import write_pipeline

    for name in ("SKYSHELF_JOURNAL_SECONDS", "SKYSHELF_SPREAD_BYTES", "SKYSHELF_SEARCH_MIN_CHILDREN"):
        if name != "SKYSHELF_JOURNAL_SECONDS" and raw != "-1":
            continue  # (an integer setting: said as no integer)
        with pytest.raises(ValueError, match=f"{name} must be a number, 0 or more, got '{raw}'"):
            BuildSettings.from_env({name: raw})
    with pytest.raises(ValueError, match="SKYSHELF_CATALOG_TTL must be a number, 0 or more"):
        Settings.from_env({"SKYSHELF_CATALOG_TTL": raw})
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(3))
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}})
    done = CliRunner().invoke(main, ["build", "-c", str(config)], env={"SKYSHELF_JOURNAL_SECONDS": raw})
    assert done.exit_code == 1 and "SKYSHELF_JOURNAL_SECONDS must be a number, 0 or more" in done.output, done.output
    assert not (tmp_path / "site" / "catalog.json").exists()
    assert BuildSettings.from_env({"SKYSHELF_JOURNAL_SECONDS": "0", "SKYSHELF_SPREAD_BYTES": "0"}).journal_seconds == 0
    assert Settings.from_env({"SKYSHELF_CATALOG_TTL": "inf"}).catalog_ttl == float("inf")  # (never re-read)
    forever = CliRunner().invoke(main, ["build", "-c", str(config)], env={"SKYSHELF_JOURNAL_SECONDS": "inf"})
    assert forever.exit_code == 0 and "Exception in thread" not in forever.output, forever.output


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


# -- the library's knobs: read once at the edge, passed in -------------------------------------
@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store holding one 64 x 64 float64 array (32 KiB; as JSON it costs ~20x that to build)."""
    folder = tmp_path_factory.mktemp("knobs")
    (folder / "data").mkdir()
    np.save(folder / "data" / "frame.npy", np.arange(64 * 64, dtype="float64").reshape(64, 64))
    return run_build(folder, {"sources": [{"path": "data", "into": ""}]}).store.url


def _ask(store: str, given: Settings | None = None) -> tuple[int, dict]:
    """``array/full/frame`` as JSON through the Lambda handler, with ``given`` settings (else the environment's)."""
    import json

    from handlers import arrays
    from handlers.local import event_for, invoke

    status, _, body = invoke(arrays.lambda_handler, event_for("GET", "/api/v1/array/full/frame", "format=json", {"host": "x"}, "127.0.0.1"),
                             given)
    return status, json.loads(body) if status != 200 else {}


def test_two_servers_in_one_process_keep_their_own_answer_limit(frames: str) -> None:
    """Each ``publish serve``-style settings object carries its own ``max_answer_bytes``, passed
    to ``limits.check``: one process answers under one and refuses under the other."""
    small, large = Settings(store=frames, max_answer_bytes=2**16), Settings(store=frames, max_answer_bytes=2**30)
    refused, detail = _ask(frames, small)
    assert refused == 400 and "SKYSHELF_MAX_ANSWER_BYTES" in detail["detail"] and "64.0 KiB" in detail["detail"]
    assert _ask(frames, large)[0] == 200
    assert _ask(frames, small)[0] == 400  # still its own, after the other one answered


def test_a_changed_environment_counts_only_after_reset(frames: str) -> None:
    """The environment is read once: a later change does not reach a request until ``reset()``."""
    os.environ["SKYSHELF_STORE"] = frames  # not through monkeypatch: no reset follows
    try:
        settings.reset()
        assert _ask(frames)[0] == 200
        os.environ["SKYSHELF_MAX_ANSWER_BYTES"] = str(2**16)
        assert _ask(frames)[0] == 200 and settings.environment().max_answer_bytes == 512 * 2**20
        settings.reset()
        assert _ask(frames)[0] == 400
    finally:
        os.environ.pop("SKYSHELF_MAX_ANSWER_BYTES", None)
        os.environ.pop("SKYSHELF_STORE", None)
        settings.reset()


def test_a_malformed_knob_is_named(frames: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``SKYSHELF_MAX_ANSWER_BYTES=lots`` used to fall back to the default in silence: now the
    settings, a request and ``publish serve`` each say which variable is wrong."""
    import subprocess
    import sys

    from publisher.settings import BuildSettings, SettingError

    message = "SKYSHELF_MAX_ANSWER_BYTES must be an integer, got 'lots'"
    with pytest.raises(SettingError, match=message):
        Settings.from_env({"SKYSHELF_MAX_ANSWER_BYTES": "lots"})
    with pytest.raises(SettingError, match="SKYSHELF_SEARCH_MIN_CHILDREN must be an integer, got 'many'"):
        BuildSettings.from_env({"SKYSHELF_SEARCH_MIN_CHILDREN": "many"})
    monkeypatch.setenv("SKYSHELF_STORE", frames)
    monkeypatch.setenv("SKYSHELF_MAX_ANSWER_BYTES", "lots")
    status, detail = _ask(frames)
    assert status == 500 and message in detail["detail"]  # the server's fault, named; no traceback
    served = subprocess.run([sys.executable, "-m", "publisher.cli", "serve", "--store", frames, "--port", "0"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "SKYSHELF_MAX_ANSWER_BYTES": "lots"})
    assert served.returncode == 1 and f"error: {message}" in served.stderr, served.stderr


def test_the_build_reads_its_knobs_once_and_writes_the_threshold(tmp_path: Path) -> None:
    """``build(settings=)`` takes the search columns' threshold without the environment; it is
    written into catalog.json, where the handlers read it back."""
    import json

    from publisher.build import build
    from publisher.config import load_pipeline
    from publisher.settings import BuildSettings

    from .conftest import write_pipeline

    (tmp_path / "data").mkdir()
    for i in range(3):
        np.save(tmp_path / "data" / f"n{i}.npy", np.zeros(2))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"output": {"store": str(tmp_path / "site")}, "sources": [{"path": "data", "into": ""}]}))
    os.environ["SKYSHELF_SEARCH_MIN_CHILDREN"] = "1000"  # the given settings win over it
    try:
        report = build(pipeline, workers=1, settings=BuildSettings(search_min_children=2, direct_io=False))
    finally:
        del os.environ["SKYSHELF_SEARCH_MIN_CHILDREN"]
    catalog = json.loads((tmp_path / "site" / "catalog.json").read_text())
    assert catalog["index_json"]["search_min_children"] == 2
    assert (tmp_path / "site" / "releases" / report.release / "index" / "search").is_dir()


def test_no_library_module_reads_a_skyshelf_variable() -> None:
    """Every ``os.environ`` / ``getenv`` read of a ``SKYSHELF_*`` name in publisher/ and handlers/
    is the one reader's (``publisher.settings``), but the packager's own cache folder (CLI side)."""
    import ast

    root = Path(__file__).resolve().parents[1]
    found = []
    for path in [*root.glob("publisher/**/*.py"), *root.glob("handlers/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            text = ast.unparse(node) if isinstance(node, (ast.Call, ast.Subscript)) else ""
            if ("environ" in text or "getenv" in text) and any(isinstance(c, ast.Constant) and str(c.value).startswith("SKYSHELF_")
                                                                 for c in ast.walk(node)):
                found.append(str(path.relative_to(root)))
    assert set(found) == {"publisher/deploy/package.py"}  # SKYSHELF_PACKAGE_CACHE


def test_the_cache_budget_and_direct_writes_come_from_the_settings(frames: str, tmp_path: Path) -> None:
    """The decoded cache is sized by the settings of the request that uses it (0: off), and a
    store opened with ``direct_io=False`` (``SKYSHELF_DIRECT_IO=0``) writes without O_DIRECT."""
    from publisher.access.cache import DECODED
    from publisher.stores import open_store

    try:
        assert _ask(frames, Settings(store=frames, decoded_cache_bytes=0))[0] == 200
        assert DECODED.capacity == 0 and DECODED.size == 0  # nothing kept
        assert _ask(frames, Settings(store=frames, decoded_cache_bytes=2**20))[0] == 200
        assert DECODED.capacity == 2**20 and DECODED.size == 64 * 64 * 8  # the frame's one chunk, kept
    finally:
        DECODED.resize(Settings().decoded_cache_bytes)
    assert not open_store(tmp_path, direct_io=False)._direct.enabled  # type: ignore[attr-defined]
    assert Settings.from_env({"SKYSHELF_DIRECT_IO": "0"}).direct_io is False
