"""Releases in a store: list them, switch the catalog back to one, and delete what no kept release uses.

Each release keeps a copy of its entry point (``releases/<id>/catalog.json``) and a manifest of
its items with the data prefixes they use; an incremental build's items may use data written
by an earlier release, so garbage collection works from references, not from release folders.

A build marks its release in progress (``releases/<id>/building.json``, refreshed while it runs,
naming the release it reuses data from). Release ids sort by time, so gc never touches the current
release or anything newer (a build may be writing it), nor a release whose build is alive, nor the
release such a build reuses data from.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import DamagedCatalog, NotFound, StoreError
from .formats import (
    ACCESS_CLASS,
    BUILD_REPORT,
    CATALOG_KEY,
    MANIFEST,
    PRIVATE_CATALOG_KEY,
    CatalogDocument,
    Manifest,
    release_of,
)
from .release_docs import current_release, read_json, release_copy
from .store_lock import GC_LOCK_KEY, exclusive, exited_here, heartbeat, here
from .stores import Store

RETIRED = "retired.json"
BUILDING = "building.json"
#: A build's journal of finished items, under its release's folder (publisher/build/journal.py).
JOURNAL = "progress"
#: A build refreshes its marker this often (seconds) ...
HEARTBEAT_SECONDS = 60.0
#: ... and gc takes a release whose marker is this old (seconds) for an abandoned build.
ABANDONED_AFTER = 30 * 60.0


@dataclass
class Release:
    id: str
    current: bool
    catalog: CatalogDocument | None  # None: unfinished (a build that never switched), or retired
    retired: bool = False  # garbage-collected, but newer releases still use some of its data
    building: dict[str, Any] | None = None  # the marker of an unfinished release's build

    @property
    def created(self) -> str | None:
        return self.catalog.created if self.catalog else None

    @property
    def node_count(self) -> int | None:
        return self.catalog.node_count if self.catalog else None

    def alive(self, abandoned_after: float = ABANDONED_AFTER, now: float | None = None) -> bool:
        """An unfinished release whose build refreshed its marker recently: it is being written."""
        if self.catalog is not None or not self.building or exited_here(self.building):  # (a build killed on this host)
            return False
        beat = max(heartbeat(self.building), heartbeat({"heartbeat": self.building.get("stored", 0)}))  # (the later of the build's clock and the store's)
        return (now if now is not None else time.time()) - beat < abandoned_after

    @property
    def state(self) -> str:
        if self.catalog is not None:
            return f"{self.node_count} nodes, created {self.created}"
        if self.retired:
            return "retired (newer releases still use some of its data)"
        if self.alive():
            return f"in progress (build started {self.building['started']} on {self.building.get('host', '?')})"  # type: ignore[index]
        return "incomplete (never published)"


def building_marker(base: str | None) -> bytes:
    """The in-progress marker of a build: when it started and last ran, and whose data it reuses."""
    now = time.time()
    return json.dumps({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "heartbeat": now, "base": base, **here()}).encode()


def list_releases(store: Store, damaged: bool = False) -> list[Release]:
    """Every release folder, oldest first, with the current one marked; ``damaged``: a
    ``catalog.json`` that is no catalog marks none (listed, to choose one to roll back to), where
    otherwise it is a StoreError (gc and builds decide nothing on it)."""
    try:
        current = current_release(store)
    except DamagedCatalog:
        if not damaged:
            raise
        current = None
    out = []
    for rid in store.listdir("releases"):
        # complete once its public entry point is there (written after the private one, what rollback
        # switches to); a release with private nodes: its full view (manifest, report) is the private copy
        public = read_json(store, f"releases/{rid}/{CATALOG_KEY}")
        doc = (read_json(store, f"private/releases/{rid}/{CATALOG_KEY}") or public) if public else None
        building = None if doc else read_json(store, f"releases/{rid}/{BUILDING}")
        if building is not None:  # the store's own time of the last beat too: a build host's clock behind gc's made a live build look abandoned
            with contextlib.suppress(OSError, NotFound):
                stat = store.stat(f"releases/{rid}/{BUILDING}")
                building = {**building, "stored": stat[1]} if stat else building
        try:
            if doc is None and building is None and store.size(f"releases/{rid}") == 0:
                continue  # an emptied folder (stores with real directories, e.g. SeaweedFS, keep them)
        except FileNotFoundError:
            continue  # deleted while we looked (another gc)
        retired = doc is None and store.exists(f"releases/{rid}/{RETIRED}")
        out.append(Release(rid, rid == current, CatalogDocument.from_json(doc) if doc else None, retired, building))
    return out


def rollback(store: Store, release: str, wait: float = 0.0) -> CatalogDocument:
    """Point the catalog at an earlier (complete) release, in one atomic write, holding the
    store's lock (a build switching meanwhile would undo it, or be undone)."""
    what, deadline = f"publish rollback to {release}", time.monotonic() + wait
    # the gc lock first (no gc is deleting the release), then the build lock: a rollback waiting
    # out a gc holds up no build; one deadline for both waits
    with (exclusive(store, what, wait, key=GC_LOCK_KEY) as gc_lock,
          exclusive(store, what, max(0.0, deadline - time.monotonic())) as lock):
        return _rollback(store, release, lambda: (lock.confirm(), gc_lock.confirm()))


def _rollback(store: Store, release: str, confirm: Callable[[], None]) -> CatalogDocument:
    finish_switch(store)
    try:
        doc = json.loads(store.read_bytes(f"releases/{release}/{CATALOG_KEY}"))
    except NotFound:
        known = ", ".join(r.id for r in list_releases(store, damaged=True) if r.catalog) or "none"
        raise NotFound(f"no complete release {release!r} in {store.url} (complete releases: {known})") from None
    except ValueError:
        doc = None
    full = read_json(store, f"private/releases/{release}/{CATALOG_KEY}")
    for key, found in ((f"releases/{release}/{CATALOG_KEY}", doc), (f"private/releases/{release}/{CATALOG_KEY}", full)):
        if (found is not None or key.startswith("releases/")) and not release_copy(found, release):
            # (switched to, it left catalog.json unreadable, or half-written before a raw TypeError)
            raise StoreError(f"{store.url}/{key} is not release {release}'s catalog (damaged?): catalog.json is left as it was")
    was = (read_json(store, CATALOG_KEY) or {}).get("release")
    confirm()
    switch(store, doc, full)
    if was and was != release:  # a journal its build could not delete: the next build would resume what was rolled back from
        for key in (f"releases/{was}/{JOURNAL}", f"private/releases/{was}/{JOURNAL}"):
            with contextlib.suppress(FileNotFoundError, NotFound, OSError):
                store.delete_prefix(key)
    return CatalogDocument.from_json(full or doc)


def switch(store: Store, public: dict[str, Any], full: dict[str, Any] | None) -> None:
    """Point the catalog at a release: its full view first (what the handlers read), then what
    anyone reads; a release without private nodes has no full view, so that first write is its
    public view, deleted last. Two objects cannot change at once: the first write says which
    release the switch is for, whenever it is cut short (:func:`finish_switch`)."""
    store.write_bytes(PRIVATE_CATALOG_KEY, json.dumps(full if full is not None else public, indent=1).encode(), atomic=True)
    store.write_bytes(CATALOG_KEY, json.dumps(public, indent=1).encode(), atomic=True)
    if full is None:
        try:
            store.delete_prefix(PRIVATE_CATALOG_KEY)
        except (OSError, NotFound) as exc:  # switched all the same: the next build or rollback removes it (finish_switch)
            logging.getLogger("skyshelf.build").warning(
                "release %s is published; the switch's own note %s stays, as the store would not delete it (%s)",
                public.get("release"), PRIVATE_CATALOG_KEY, exc)


def finish_switch(store: Store) -> str | None:
    """Finish a switch that a killed build or rollback cut short (call holding the store's lock):
    ``private/catalog.json`` naming a release that ``catalog.json`` does not (the handlers served
    it, direct readers the other, and the next build took it for current: "nothing changed"
    forever), or left over from a release with no full view. Returns the release switched to, if any."""
    intent = read_json(store, PRIVATE_CATALOG_KEY)
    if intent is None:
        return None
    release = str(intent.get("release"))
    public, full = read_json(store, f"releases/{release}/{CATALOG_KEY}"), read_json(store, f"private/releases/{release}/{CATALOG_KEY}")
    current = read_json(store, CATALOG_KEY)
    if current is not None and current.get("release") == release:
        if full is None:  # switched, but the store would not delete the note then: it alone goes
            with contextlib.suppress(FileNotFoundError, NotFound):
                store.delete_prefix(PRIVATE_CATALOG_KEY)
        return None  # (with a full view: as a switch leaves it)
    if public is None:  # (gone: the switch cannot be finished; the catalog's release stands, whole)
        if current is None:
            return None
        release = str(current.get("release"))
        public, full = current, read_json(store, f"private/releases/{release}/{CATALOG_KEY}")
    switch(store, public, full)
    for key in (f"releases/{release}/{JOURNAL}", f"private/releases/{release}/{JOURNAL}", f"releases/{release}/{BUILDING}"):
        with contextlib.suppress(FileNotFoundError, NotFound):  # the build's own, had it lived: its release is published
            store.delete_prefix(key)
    return release


def _manifest(store: Store, release: Release) -> Manifest | None:
    if release.catalog is None or release.catalog.manifest is None:
        return None
    doc = read_json(store, release.catalog.manifest)
    try:
        return Manifest.from_json(doc) if doc is not None else None
    except (KeyError, TypeError, AttributeError, ValueError):  # (damaged: as missing, which gc refuses to guess past)
        return None


def _delete(store: Store, prefix: str, problems: list[str]) -> bool:
    """Delete a prefix; what vanished meanwhile counts as deleted, what cannot be deleted is noted, not raised."""
    for _ in range(3):
        try:
            store.delete_prefix(prefix)
            return True
        except (FileNotFoundError, NotFound):
            continue  # part of it vanished under us (another gc): again, for what may remain
        except OSError as exc:
            reason = "something is writing there" if exc.errno == errno.ENOTEMPTY else str(exc)
            problems.append(f"{prefix}: not deleted ({reason}); run gc again later")
            return False
    return True


def gc(store: Store, keep: int, abandoned_after: float = ABANDONED_AFTER, wait: float = 0.0) -> dict[str, Any]:
    """Keep the ``keep`` newest complete releases, the current one and every newer one, releases
    whose build is alive (marker refreshed within ``abandoned_after`` seconds) and the releases
    those builds reuse data from; delete everything else that none of them references.
    Returns what was kept and deleted, and what could not be deleted. Holds the store's gc lock
    (:data:`~.store_lock.GC_LOCK_KEY`, waiting up to ``wait`` seconds): no rollback meanwhile."""
    if keep < 1:
        raise ValueError("--keep must be at least 1")
    with exclusive(store, "publish gc", wait, key=GC_LOCK_KEY) as lock:
        return _gc(store, keep, abandoned_after, lock.confirm)


def _gc(store: Store, keep: int, abandoned_after: float, confirm: Callable[[], None]) -> dict[str, Any]:
    releases = list_releases(store)
    current = next((r.id for r in releases if r.current), None)
    now = time.time()
    live = [r for r in releases if r.alive(abandoned_after, now)]
    complete = [r for r in releases if r.catalog is not None]
    kept = {r.id for r in complete[-keep:]} | {r.id for r in live} | {str(r.building["base"]) for r in live if r.building and r.building.get("base")}
    # ids sort by time: the current release and anything newer (being written, or rolled back from) stay
    kept |= {r.id for r in releases if current is None or r.id >= current}
    # and the release the full view names, should a switch have been cut short (the handlers read it)
    kept |= {str(doc["release"]) for doc in [read_json(store, PRIVATE_CATALOG_KEY)] if doc and "release" in doc}
    referenced: set[str] = set()
    for release in releases:
        if release.id in kept:
            manifest = _manifest(store, release)
            if manifest is None and release.catalog is not None:
                raise StoreError(f"release {release.id} has no manifest; refusing to delete what it may reference")
            if manifest is None and release.current:  # (its copy of the catalog gone or damaged: it reuses older releases' data)
                raise StoreError(f"the current release {release.id} has no readable catalog copy or manifest under releases/{release.id}/; "
                                 "refusing to delete what it may reference (build again, or restore them)")
            if manifest is not None:
                referenced |= manifest.data_prefixes()
    deleted: list[str] = []
    problems: list[str] = []
    for release in releases:
        if release.id in kept:
            continue
        confirm()  # the lock still this gc's (an S3 lock taken over as stale would let a rollback in)
        if not any(release_of(p) == release.id for p in referenced):
            # nothing of it is used (or it never finished): its entry point first (from then on no rollback
            # takes it), its public folder last (what lists it: a gc killed midway is finished by the next,
            # where the private folders deleted last stayed, listed nowhere)
            _delete(store, f"releases/{release.id}/{CATALOG_KEY}", problems)
            for root in reversed(_roots(store, release.id)):
                if _delete(store, root, problems):
                    deleted.append(root)
            continue
        if release.catalog is None and not release.retired:
            continue  # never finished; a kept release resumed (uses) its data
        if _retire(store, release, referenced, problems):
            deleted.append(f"releases/{release.id}: index and entry point (data still in use kept)")
    return {"kept": sorted(kept & {r.id for r in releases}), "deleted": deleted, "problems": problems}


def _retire(store: Store, release: Release, referenced: set[str], problems: list[str]) -> bool:
    """Delete what only ``release`` used, keeping the data kept releases use: marked retired, its
    entry points deleted (from then on no rollback takes it: its parts went first, and a gc killed
    midway left it listed complete, a rollback to it a broken catalog), then its own data, its
    index, report and manifest (last: it names the data). A retired release with parts left (a gc
    killed midway) is finished the same way. Returns whether there was anything to do."""
    folders = (f"releases/{release.id}", f"private/releases/{release.id}")
    manifest = _manifest(store, release) if release.catalog is not None else next(
        (Manifest.from_json(doc) for doc in (read_json(store, f"{f}/{MANIFEST}") for f in folders) if doc is not None), None)
    if release.retired and manifest is None and not any(_holds(store, f"{f}/index") for f in folders):
        # retired whole before, its data kept for the releases kept then: what none kept now uses goes
        # (else a file changed or deleted after its release retired stayed for good, listed nowhere)
        return any([_delete_around(store, f"{root}/data", {r for r in referenced if r.startswith(f"{root}/data/")}, problems, empty=False)
                    for root in _roots(store, release.id) if _holds(store, f"{root}/data")])
    if not release.retired:
        store.write_bytes(f"releases/{release.id}/{RETIRED}", json.dumps({"retired": True}).encode())
    for folder in folders:
        if store.exists(f"{folder}/{CATALOG_KEY}"):
            _delete(store, f"{folder}/{CATALOG_KEY}", problems)
    for prefix in {p for p in manifest.data_prefixes() if release_of(p) == release.id} if manifest else set():
        if prefix not in referenced:
            _delete_around(store, prefix, {r for r in referenced if r.startswith(f"{prefix}/")}, problems)
    for key in ("index", "browse", JOURNAL, BUILDING, BUILD_REPORT, MANIFEST):  # what only this release used
        for folder in folders:
            if key in ("index", "browse", JOURNAL) or store.exists(f"{folder}/{key}"):
                _delete(store, f"{folder}/{key}", problems)
    return True


def _delete_around(store: Store, prefix: str, kept: set[str], problems: list[str], empty: bool = True) -> bool:
    """Delete ``prefix`` but the ``kept`` prefixes inside it: a folder of sources named like another
    node's data (``a.zarr/c.csv`` beside ``a.h5``) puts its data inside that node's prefix, and a
    kept release may reuse it after the other node changed. Whether anything was deleted (not
    ``empty``: a folder that held no object, left by an earlier gc on a store with folders, is no
    deletion)."""
    if not kept:
        held = empty or _holds(store, prefix)
        return _delete(store, prefix, problems) and held
    deleted = False
    with contextlib.suppress(FileNotFoundError, NotFound):
        for name in store.listdir(prefix):
            child = f"{prefix}/{name}"
            if child not in kept:
                deleted = _delete_around(store, child, {k for k in kept if k.startswith(f"{child}/")}, problems, empty) or deleted
    return deleted


def _holds(store: Store, prefix: str) -> bool:
    """Whether anything is under ``prefix`` (what vanished meanwhile, another gc's, is nothing)."""
    try:
        return store.size(prefix) > 0
    except (FileNotFoundError, NotFound):
        return False


def _roots(store: Store, rid: str) -> list[str]:
    """Every folder of one release that is there: public, its full index, its private data."""
    candidates = [f"releases/{rid}", f"private/releases/{rid}"]
    with contextlib.suppress(FileNotFoundError, NotFound):
        candidates += [f"private/{name}/releases/{rid}" for name in store.listdir("private") if ACCESS_CLASS.fullmatch(name)]
    return [root for root in candidates if root == candidates[0] or _holds(store, root)]


class InProgress:
    """Marks a release in progress while a build writes it: the marker is written on :meth:`start`
    and refreshed every ``HEARTBEAT_SECONDS`` on a daemon thread until :meth:`stop`."""

    def __init__(self, store: Store, release: str, base: str | None, every: float = HEARTBEAT_SECONDS) -> None:
        import threading

        self.store, self.key, self.base, self.every = store, f"releases/{release}/{BUILDING}", base, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="skyshelf-heartbeat", daemon=True)
        self.started = False

    def start(self) -> None:
        self.store.write_bytes(self.key, building_marker(self.base))
        self.started = True
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.store.write_bytes(self.key, building_marker(self.base))
            except Exception:  # a missed beat only makes gc more careful later, never the build fail
                pass

    def stop(self, remove: bool) -> None:
        """Stop refreshing; ``remove``: the release is complete (or gone), the marker has done its job."""
        if not self.started:
            return
        self.started = False
        self._stop.set()
        self._thread.join()
        if remove:  # best effort: a marker the store would not let go of goes stale, as a killed build's does
            with contextlib.suppress(OSError, NotFound):
                self.store.delete_prefix(self.key)
