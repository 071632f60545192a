"""A build's journal: the manifest records of the items it has finished, written as they finish, so
a build that dies midway (a killed client, a lost scheduler, a crashed machine) is resumed by the
next one, which reuses every item that had finished instead of converting it again.

The records go where the release's manifest goes (under ``private/`` when the catalog has access
rules: records name nodes), a batch per object at most every ``every`` seconds
(``progress/<seconds>-<random>.json``), so a million-item build writes thousands of objects, not
millions, and loses at most the last few seconds of work. A record is written only after its
item's objects are (conversion returns once its writes have completed) and made durable (the
store's flush, on the journal's own thread, before each batch: a crash of the machine must not
leave records of chunks still in its page cache); the next build still checks, as for any reused
item, that the objects are there before it publishes (:mod:`.check`). The published release deletes its journal; an interrupted one keeps it until
``publish gc`` deletes the release, which it does only once no kept release references its data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator

from ..errors import NotFound, SkyshelfError
from ..formats import ManifestItem
from ..releases import JOURNAL, list_releases
from ..stores import Store

FOLDER = JOURNAL


def journal_prefix(release: str, private: bool) -> str:
    return f"private/releases/{release}/{FOLDER}" if private else f"releases/{release}/{FOLDER}"


class Journal:
    """Collects finished records (from any thread) and writes them in batches: when one is added
    ``every`` seconds after the last write, and from a daemon thread while nothing is added."""

    def __init__(self, store: Store, release: str, private: bool, every: float = 5.0) -> None:
        self.store, self.release, self.prefix, self.every = store, release, journal_prefix(release, private), every
        self._lock = threading.Lock()
        self._pending: list[str] = []  # the records' texts (made on the workers): while a slow sync holds a batch, a
        # busy build's records pile up here, a third of their objects' size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False  # removed: nothing is written any more

    def start(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="skyshelf-journal", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        # (0 writes at every item, the thread still rests; inf: only at the end, a wait Python can take)
        while not self._stop.wait(min(max(self.every, 0.1), threading.TIMEOUT_MAX)):
            with contextlib.suppress(Exception):  # a missed write only means redoing those items later
                self.flush()

    def stop(self, flush: bool) -> None:
        """Stop the thread; ``flush``: the build did not publish, so keep what finished for the next one."""
        self._halt()
        if flush:
            with contextlib.suppress(Exception):
                self.flush()

    def add(self, record: ManifestItem) -> None:
        """Written by the journal's thread within ``every`` seconds (not here: the flush before it
        waits for the disk, and the threads adding records are the build's), or at once when
        ``every`` is 0 (a journal of every item as it finishes: tests of killed builds)."""
        text = record.text()
        with self._lock:
            self._pending.append(text)
        if self.every <= 0:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            if self._closed:
                return
        if batch:
            self.store.flush()  # the batch's objects on disk before the records that say they are
            key = f"{self.prefix}/{time.time():017.6f}-{secrets.token_hex(4)}.json"
            self.store.write_bytes(key, ("[" + ",".join(batch) + "]").encode(), atomic=True)

    def _halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def published(self) -> None:
        """:meth:`remove` once the release is switched to: published whatever the store answers
        now, so a failure is a warning (a current release's journal is never resumed)."""
        try:
            self.remove()
        except (OSError, SkyshelfError) as exc:
            logging.getLogger("skyshelf.build").warning("release %s is published; its journal stays, as the store would not delete it (%s)",
                                                        self.release, exc)

    def remove(self) -> None:
        """The release is published (or discarded): its journal has done its job."""
        with self._lock:
            self._closed, self._pending = True, []
        self._halt()  # a batch the thread is writing lands before the prefix goes, not after
        with contextlib.suppress(FileNotFoundError, NotFound):
            self.store.delete_prefix(self.prefix)
        if self.store.is_local:  # no empty folders left behind (a catalog whose nodes all ended public has no private/)
            parts = self.prefix.split("/")[:-1]
            for end in range(len(parts), 0, -1):
                with contextlib.suppress(OSError):
                    os.rmdir(self.store.path("/".join(parts[:end])))


def drop_lost(store: Store, missing: list[str], resumed: set[str]) -> list[str]:
    """The interrupted builds this one resumed (``resumed``) whose data ``missing`` names (objects
    their journaled items referenced, gone: lost in a crash, or deleted), their journals deleted
    so no build resumes those items again; their ids."""
    lost = sorted({m.group(1) for key in missing if (m := _RELEASE_IN.search(key))} & resumed)
    for release in lost:
        for private in (False, True):
            with contextlib.suppress(FileNotFoundError, NotFound):
                store.delete_prefix(journal_prefix(release, private))
    return lost


_RELEASE_IN = re.compile(r"(?:^|/)releases/([^/\s]+)/")


def resumable(store: Store, current: str | None, found: set[str] | None = None) -> Iterator[ManifestItem]:
    """The finished records of interrupted builds newer than the current release (an older one was
    abandoned before the current release was made), newest last so they win: also of one killed
    after writing its own entry point but before its switch (a published release has removed its
    journal; one rolled back from has none left)."""
    for release in list_releases(store):
        if current is not None and release.id <= current:
            continue
        for private in (False, True):
            prefix = journal_prefix(release.id, private)
            try:
                keys = sorted(key for key, _, _ in store.objects(prefix) if key.endswith(".json"))
            except (FileNotFoundError, NotFound):
                continue
            for key in keys:
                try:
                    batch = json.loads(store.read_bytes(key))
                    records = [ManifestItem.from_json(r) for r in batch]
                except (NotFound, ValueError, KeyError, TypeError):
                    continue  # a batch cut short or damaged: its items are converted again
                if found is not None and records:
                    found.add(release.id)  # (``found``: the releases whose records were resumed)
                yield from records


__all__ = ["Journal", "drop_lost", "journal_prefix", "resumable"]
