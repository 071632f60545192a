"""One writer of a store's releases at a time: a build (or a rollback) holds the store's lock from
before it reads the current catalog until after it has switched it, so two builds to one store
never interleave their catalogs: the second fails at once with who holds the lock, or waits for it.

The lock is the store's own atomic primitive:

- a local folder: ``private/.build.lock`` held with ``flock``. The kernel releases it when its holder
  exits, however it dies (a build killed with SIGKILL holds nothing), which a file made with
  ``O_EXCL`` would not: that one outlives a killed build, and whether its holder is still alive
  can only be guessed. While held it names its holder; its holder deletes it when done.
- S3: the object ``private/.build.lock``, created with ``If-None-Match: *`` (only one creator succeeds) and
  refreshed with ``If-Match`` on its own ETag while the build runs. A lock whose holder stopped
  refreshing it for ``stale_after`` seconds (a killed client) is taken over with ``If-Match`` on
  the stale ETag, so of two builds that find it stale only one gets it (at once when its holder
  ran on this host, in this PID namespace, and has exited); and the holder refreshes
  it right before switching the catalog, which proves nobody took it over (a takeover needs
  ``stale_after`` seconds of silence from that moment on).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .errors import StoreError
from .stores import Store

log = logging.getLogger(__name__)

#: Under ``private/``: never public (it names a host and a process), and never uploaded by a deploy;
#: hidden (a dot file), so a source tree that holds the store never takes it for a source.
LOCK_KEY = "private/.build.lock"
#: The lock of what deletes releases (``publish gc``) and of what may switch back to an old one
#: (``publish rollback``, which holds both): a rollback to a release that a running gc is deleting
#: would leave the catalog pointing at deleted data. Builds do not take it: they only switch to a
#: release of their own, which gc keeps while their marker is fresh, so gc may run during a build.
GC_LOCK_KEY = "private/.gc.lock"
#: A holder refreshes its lock this often (seconds) ...
REFRESH_SECONDS = 60.0
#: ... and a lock not refreshed for this long (seconds) is taken for abandoned (its holder was killed).
STALE_AFTER = 30 * 60.0


class StoreBusy(StoreError):
    """Another build or rollback holds the store's lock (or took it over from this one)."""

    http_status = 409


def holder(what: str) -> dict[str, Any]:
    """Who holds a lock: what it is doing, where and since when (``token``: this holding's own)."""
    import secrets

    now = time.time()
    return {"what": what, "token": secrets.token_hex(8), **here(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "heartbeat": now}


def here() -> dict[str, Any]:
    """This process as a lock (or a build's in-progress marker) names it: its host, its pid, and
    where that pid means this process (``pids``: the kernel's boot and its PID namespace; a
    container sharing the host's name has its own pids, so a live build's pid looked dead there)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pids": _pid_space()}


@functools.cache
def _pid_space() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return f"{boot.read().strip()}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:  # (not Linux: one PID space per host)
        return None


def heartbeat(doc: dict[str, Any] | None) -> float:
    """When a lock or marker was last refreshed (0: never, or not a finite number: taken for stale, not a traceback)."""
    try:
        beat = float((doc or {}).get("heartbeat", 0))
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return beat if math.isfinite(beat) else 0.0


def _described(doc: dict[str, Any] | None) -> str:
    if not doc:
        return "another process"
    return f"{doc.get('what', 'a build')} (pid {doc.get('pid', '?')} on {doc.get('host', '?')}, started {doc.get('started', '?')})"


def _busy(store: Store, doc: dict[str, Any] | None, key: str = LOCK_KEY) -> StoreBusy:
    stale = "" if store.is_local else (f" A lock whose holder died on another host is taken over {STALE_AFTER / 60:.0f} "
                                       "minutes after its last refresh.")
    why = ("is publishing to it. Two at once would interleave their releases" if key == LOCK_KEY else
           "holds its gc lock, which gc and rollback take in turn (a rollback during a gc could switch to a "
           "release being deleted)")
    return StoreBusy(f"{store.url} is busy: {_described(doc)} {why}, so this one stopped before writing anything; "
                     f"run it again when that one has finished (or pass --wait SECONDS to wait for it).{stale}")


def exited_here(doc: dict[str, Any] | None) -> bool:
    """Whether a lock's holder (or a build's in-progress marker) ran on this host and has exited (a
    killed build here: no need to wait for its lock, or its marker, to go stale)."""
    if not doc or doc.get("host") != socket.gethostname() or not isinstance(doc.get("pid"), int) or doc.get("pids") != _pid_space():
        return False  # (another host, or another PID space of this one: whether its pid runs cannot be told from here)
    try:
        os.kill(doc["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class Held:
    """A lock this process holds: :meth:`confirm` right before the switch it protects."""

    def confirm(self) -> None:
        """Raise :class:`StoreBusy` unless the lock is still this process's."""

    def release(self) -> None: ...


class _FileLock(Held):
    def __init__(self, store: Store, doc: dict[str, Any], key: str = LOCK_KEY) -> None:
        self.path, self.key = store.path(key), key
        self.made = []  # the folders made for the lock (the store's root too, before a first build), deepest first
        folder = os.path.dirname(self.path)
        while not os.path.isdir(folder):
            self.made.append(folder)
            folder = os.path.dirname(folder)
        try:
            # a leaving holder removed a parent meanwhile (FileExistsError: makedirs found it there, then
            # not a folder when it looked again: removed in between; 1 contention run in ~20): _lock makes it again
            with contextlib.suppress(FileNotFoundError, FileExistsError):
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.fd = self._lock(store)
        except StoreBusy:
            raise
        except OSError as exc:  # (a store path that names a file: NotADirectoryError, once a traceback)
            raise StoreError(f"cannot lock {store.url}: {exc.strerror or exc} ({exc.filename or self.path})") from exc
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(doc).encode(), 0)

    def _lock(self, store: Store) -> int:
        """The lock file, open and flocked. Its holder deletes it when done, so a process that
        locked a file just deleted holds nothing: it checks the path still names its file."""
        import fcntl

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # its folder, made by the last holder, removed as it left: make it again
                with contextlib.suppress(FileNotFoundError, FileExistsError):  # (and again, should a parent go while it is made)
                    os.makedirs(os.path.dirname(self.path), exist_ok=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                theirs = _parse(os.pread(fd, 65536, 0))
                os.close(fd)
                raise _busy(store, theirs, self.key) from None
            except OSError:
                os.close(fd)
                raise
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)  # deleted by its last holder after we opened it: lock the new one

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # (while still locked: whoever opened it meanwhile sees it is gone)
        os.close(self.fd)
        for folder in self.made:  # a store with no private part keeps none; a build that wrote nothing leaves nothing
            try:
                os.rmdir(folder)
            except OSError:  # not empty: the build wrote there
                break


class _ObjectLock(Held):
    def __init__(self, store: Store, doc: dict[str, Any], stale_after: float, every: float, key: str = LOCK_KEY) -> None:
        self.store, self.doc, self.stale_after, self.key = store, doc, stale_after, key
        self.lost: str | None = None
        etag = store.put_if(key, json.dumps(doc).encode(), None)
        if etag is None:
            etag = self._take_over()
        self.etag = etag
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh_every, args=(every,), name="skyshelf-lock", daemon=True)
        self._thread.start()

    def _take_over(self) -> str:
        """The lock is there: take it if its holder stopped refreshing it, else say who holds it."""
        found = self.store.read_tagged(self.key)
        if found is None:  # released meanwhile
            etag = self.store.put_if(self.key, json.dumps(self.doc).encode(), None)
        else:
            data, theirs = found
            doc = _parse(data)
            age = time.time() - heartbeat(doc)
            if age < self.stale_after and not exited_here(doc):
                raise _busy(self.store, doc, self.key)
            etag = self.store.put_if(self.key, json.dumps(self.doc).encode(), theirs)
        if etag is None:  # another process took it first
            raise _busy(self.store, _parse((self.store.read_tagged(self.key) or (b"", ""))[0]), self.key)
        return etag

    def _refresh(self) -> None:
        """Refresh the lock (only if it is still this holder's); StoreBusy when it is not."""
        with self._guard:
            if self.lost:
                raise StoreBusy(self.lost)
            self.doc["heartbeat"] = time.time()
            data = json.dumps(self.doc).encode()
            etag = self.store.put_if(self.key, data, self.etag)
            if etag is None:  # a retried PUT that had landed, or a conflicting request in flight (409): is it still ours?
                found = self.store.read_tagged(self.key)
                if found is not None and found[0] == data:
                    etag = found[1]
                elif found is not None and _parse(found[0]) is not None and _parse(found[0]).get("token") == self.doc["token"]:
                    etag = self.store.put_if(self.key, data, found[1])
            if etag is None:
                found = self.store.read_tagged(self.key)
                self.lost = (f"the lock of {self.store.url} was taken over by {_described(_parse(found[0]) if found else None)} "
                             f"while this build ran (it had not refreshed the lock for {self.stale_after:.0f} s); "
                             "this build's release was not published")
                raise StoreBusy(self.lost)
            self.etag = etag

    def _refresh_every(self, every: float) -> None:
        while not self._stop.wait(every):
            # lost: confirm() says so; the store unreachable for now (whatever its client raises):
            # the next refresh, or confirm(), tries again; never the end of the thread
            with contextlib.suppress(Exception):
                self._refresh()

    def confirm(self) -> None:
        self._refresh()

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        with self._guard:
            if not self.lost:
                with contextlib.suppress(Exception):  # (after a switch: never the build's failure; the lock goes stale)
                    self.store.delete_if(self.key, self.etag)


@contextlib.contextmanager
def exclusive(store: Store, what: str, wait: float = 0.0, stale_after: float | None = None, every: float | None = None,
              sleep: Callable[[float], None] = time.sleep, key: str = LOCK_KEY) -> Iterator[Held]:
    """Hold ``store``'s lock for ``what`` (``"publish build"``), waiting up to ``wait`` seconds for
    another holder to finish; :class:`StoreBusy` when it does not. ``stale_after`` and ``every``:
    :data:`STALE_AFTER` and :data:`REFRESH_SECONDS` unless given. ``key``: which lock
    (:data:`LOCK_KEY`, or :data:`GC_LOCK_KEY`)."""
    stale_after = STALE_AFTER if stale_after is None else stale_after
    every = REFRESH_SECONDS if every is None else every
    start, told = time.monotonic(), False
    while True:
        try:
            held: Held = _FileLock(store, holder(what), key) if store.is_local else _ObjectLock(store, holder(what), stale_after, every, key)
            break
        except StoreBusy as exc:
            waited = time.monotonic() - start
            if waited >= wait:
                if wait:
                    raise StoreBusy(str(exc).replace(" is busy:", f" is still busy after {waited:.0f} s:", 1)) from None
                raise
            if not told:  # once: a --wait that says nothing looks like a hang
                log.warning("%s; waiting up to %.0f s for it", exc, wait)
                told = True
            sleep(min(1.0, wait - waited))
    try:
        yield held
    finally:
        held.release()
