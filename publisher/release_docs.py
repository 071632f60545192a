"""A store's catalog documents as gc, rollback and builds read them: absent, half-written or
damaged documents told apart from sound ones (:mod:`.releases` acts on what they say)."""

from __future__ import annotations

import json
from typing import Any

from .errors import DamagedCatalog, NotFound
from .formats import CATALOG_FORMAT, CATALOG_KEY, CatalogDocument
from .stores import Store


def read_json(store: Store, key: str) -> dict[str, Any] | None:
    """An object's JSON, or None when it is absent, vanishes or is half-written (gc races builds and other gcs)."""
    try:
        doc = json.loads(store.read_bytes(key))
    except (NotFound, FileNotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def current_release(store: Store) -> str | None:
    """The release ``catalog.json`` points at (None: nothing published); a StoreError naming it
    when it cannot be read, a DamagedCatalog when it is not a catalog (damaged, hand-edited): gc, rollback and builds decide nothing on it
    (a raw JSONDecodeError or AttributeError, before)."""
    try:
        body = store.read_bytes(CATALOG_KEY)
    except NotFound:
        return None
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise DamagedCatalog(f"{store.url}/{CATALOG_KEY} is not a Skyshelf catalog (not JSON: {exc}): restore it, or roll back "
                         "to a release (publish releases lists them)") from None
    if not isinstance(doc, dict):
        raise DamagedCatalog(f"{store.url}/{CATALOG_KEY} is not a Skyshelf catalog (a JSON {type(doc).__name__}): restore it, or "
                         "roll back to a release (publish releases lists them)")
    release = doc.get("release")
    return release if isinstance(release, str) else None


def release_copy(doc: Any, release: str) -> bool:
    """Whether ``doc`` is a catalog document of ``release``, complete enough to switch to."""
    if not isinstance(doc, dict) or doc.get("format") != CATALOG_FORMAT or doc.get("release") != release:
        return False
    try:
        CatalogDocument.from_json(doc)
    except (TypeError, KeyError, ValueError, AttributeError):
        return False
    return True
