"""Releases in a store: list them, switch the catalog back to one, and delete what no kept release uses.

Each release keeps a copy of its entry point (``releases/<id>/catalog.json``) and a manifest of
its items with the data prefixes they use; an incremental build's items may use data written
by an earlier release, so garbage collection works from references, not from release folders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .catalog import CATALOG_KEY
from .errors import NotFound, StoreError
from .stores import Store

RETIRED = "retired.json"


@dataclass
class Release:
    id: str
    created: str | None
    node_count: int | None
    current: bool
    catalog: dict[str, Any] | None  # None: unfinished (a build that never switched), or retired
    retired: bool = False  # garbage-collected, but newer releases still use some of its data

    @property
    def state(self) -> str:
        if self.catalog is not None:
            return f"{self.node_count} nodes, created {self.created}"
        return "retired (newer releases still use some of its data)" if self.retired else "incomplete (never published)"


def list_releases(store: Store) -> list[Release]:
    """Every release folder, oldest first, with the current one marked."""
    try:
        current = json.loads(store.read_bytes(CATALOG_KEY)).get("release")
    except NotFound:
        current = None
    out = []
    for rid in store.listdir("releases"):
        try:
            doc = json.loads(store.read_bytes(f"releases/{rid}/{CATALOG_KEY}"))
        except NotFound:
            doc = None
        if doc is None and store.size(f"releases/{rid}") == 0:
            continue  # an emptied folder (stores with real directories, e.g. SeaweedFS, keep them)
        retired = doc is None and store.exists(f"releases/{rid}/{RETIRED}")
        out.append(Release(rid, doc.get("created") if doc else None, doc.get("node_count") if doc else None, rid == current, doc, retired))
    return out


def rollback(store: Store, release: str) -> dict[str, Any]:
    """Point the catalog at an earlier (complete) release, in one atomic write."""
    try:
        doc = json.loads(store.read_bytes(f"releases/{release}/{CATALOG_KEY}"))
    except NotFound:
        known = ", ".join(r.id for r in list_releases(store) if r.catalog) or "none"
        raise NotFound(f"no complete release {release!r} in {store.url} (complete releases: {known})") from None
    store.write_bytes(CATALOG_KEY, json.dumps(doc, indent=1).encode(), atomic=True)
    return doc


def _manifest(store: Store, release: Release) -> dict[str, Any] | None:
    if release.catalog is None or "manifest" not in release.catalog:
        return None
    try:
        return json.loads(store.read_bytes(release.catalog["manifest"]))
    except NotFound:
        return None


def gc(store: Store, keep: int) -> dict[str, Any]:
    """Keep the ``keep`` newest complete releases and the current one; delete everything else that
    none of them references. Returns what was deleted."""
    if keep < 1:
        raise ValueError("--keep must be at least 1")
    releases = list_releases(store)
    complete = [r for r in releases if r.catalog is not None]
    kept = {r.id for r in complete[-keep:]} | {r.id for r in releases if r.current}
    referenced: set[str] = set()
    for release in releases:
        if release.id in kept:
            manifest = _manifest(store, release)
            if manifest is None and release.catalog is not None:
                raise StoreError(f"release {release.id} has no manifest; refusing to delete what it may reference")
            for item in (manifest or {}).get("items", []):
                referenced.update(item["data_prefixes"])
    deleted: list[str] = []
    for release in releases:
        if release.id in kept:
            continue
        if not any(p.startswith(f"releases/{release.id}/") for p in referenced):
            store.delete_prefix(f"releases/{release.id}")  # nothing of it is used (or it never finished)
            deleted.append(f"releases/{release.id}")
            continue
        if release.catalog is None:
            continue  # retired earlier; its used data stays
        manifest = _manifest(store, release) or {"items": []}
        for prefix in {p for item in manifest["items"] for p in item["data_prefixes"] if p.startswith(f"releases/{release.id}/")}:
            if prefix not in referenced:
                store.delete_prefix(prefix)
                deleted.append(prefix)
        for key in ("index", "build-report.json", "manifest.json", CATALOG_KEY):  # what only this release used
            store.delete_prefix(f"releases/{release.id}/{key}")
        store.write_bytes(f"releases/{release.id}/{RETIRED}", json.dumps({"retired": True}).encode())
        deleted.append(f"releases/{release.id}: index and entry point (data still in use kept)")
    return {"kept": sorted(kept), "deleted": deleted}
