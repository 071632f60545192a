"""A build's files that grow with the tree: private temporary folders, each holding one SQLite
database (:mod:`publisher.index.table`, :mod:`publisher.build.items`, :mod:`publisher.build.manifests`,
the completeness check), in ``$TMPDIR``."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import resource
import shutil
import socket
import sqlite3
import tempfile

from .errors import NoRoom

_SCRATCH = re.compile(r"skyshelf-(?:nodes|previous|items|check)-(.+)-(\d+)-[a-z0-9_]+$")
#: This machine, in scratch folders' names: a shared temporary folder holds other machines' (or
#: containers') builds, whose process ids mean nothing here.
HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"
_swept: set[str] = set()


def sweep(folder: str) -> list[str]:
    """Remove the scratch folders under ``folder`` of this machine's builds whose process is gone
    (killed: a build that ends removes its own), once per process; return them."""
    if folder in _swept:
        return []
    _swept.add(folder)
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        found = _SCRATCH.match(name)
        if not found or found.group(1) != HOST or _alive(int(found.group(2))):
            continue
        path = os.path.join(folder, name)
        if _held(path):  # a live build after all: another container's, with this machine's name
            continue
        try:
            shutil.rmtree(path)
            removed.append(path)
        except OSError:
            continue  # gone meanwhile, or not ours
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


#: What a write says when its disk is full (or the user's quota, or the file size limit, is reached).
NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_FULL = 1 << 20  # a filesystem with less free space than this is taken for the full one


def out_of_room(exc: BaseException, store_folder: str | None) -> NoRoom | None:
    """The build's error for ``exc`` when it says a disk is full (SQLite's "database or disk is
    full", or an OSError), naming which: the temporary folder's (where the scratch files are) or
    a local store's ``store_folder``; None for any other error."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    limited = f" (files of at most {limit} bytes: ulimit -f)" if limit != resource.RLIM_INFINITY else ""
    if isinstance(exc, sqlite3.OperationalError):  # SQLite says a write past the file size limit is an I/O error
        name = getattr(exc, "sqlite_errorname", "")
        if name != "SQLITE_FULL" and not (name.startswith("SQLITE_IOERR") and limited):
            return None
    elif not isinstance(exc, OSError) or isinstance(exc, NoRoom) or exc.errno not in NO_ROOM:
        return None
    temporary = tempfile.gettempdir()
    named = getattr(exc, "filename", None)
    named = named if isinstance(named, str) else None
    if store_folder is not None and named is not None and _below(named, store_folder):
        full = "store"
    elif isinstance(exc, sqlite3.OperationalError) or store_folder is None or (named is not None and _below(named, temporary)):
        full = "temporary"
    else:  # (a write to an open file says no name): the disk left without room, if one is
        temporary_full, store_full = _free(temporary) < _FULL, _free(store_folder) < _FULL
        full = "temporary" if temporary_full and not store_full else "store" if store_full and not temporary_full else "either"
    what, fix = ("a file size limit met", "raise the limit") if limited else ("no room left", "")
    if full == "either":
        return NoRoom(f"{what} in the build's temporary folder {temporary} (TMPDIR sets it) or the store {store_folder}: {exc}{limited} "
                      f"(a quota?). Nothing was published; {fix or 'make room in either'} and build again")
    if full == "store":
        return NoRoom(f"{what} in the store {store_folder}: {exc}{limited}. Nothing was published; {fix or 'free some space'} and build again")
    return NoRoom(f"{what} in the build's temporary folder {temporary} (TMPDIR sets it; a build keeps about 2 KB a node there "
                  f"while it runs): {exc}{limited}. Nothing was published; {fix or 'point TMPDIR at a disk with room'} and build again")


def _below(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _free(folder: str) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _held(path: str) -> bool:
    """Whether a build holds the folder's lock (a process of another PID namespace, whose id
    means nothing here, or one of its worker processes: they share the lock)."""
    try:
        fd = os.open(os.path.join(path, _LOCK), os.O_RDONLY)
    except OSError:
        return False  # (a folder of a build from before the lock, or gone)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


_LOCK = "lock"


class Scratch:
    """A private temporary folder holding one SQLite database, removed on :meth:`close` (or at
    exit). A killed build leaves its folders: the next build on the machine removes them (their
    names carry the machine's name and the process id, :func:`sweep`; and its lock, held while it
    lives, keeps a folder of a container sharing this machine's name and ``/tmp`` from the sweep)."""

    def __init__(self, name: str, folder: str | None = None) -> None:
        sweep(folder or tempfile.gettempdir())
        self._dir = tempfile.TemporaryDirectory(prefix=f"skyshelf-{name}-{HOST}-{os.getpid()}-", dir=folder)
        self.folder = self._dir.name
        self._lock = os.open(os.path.join(self.folder, _LOCK), os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # held while this build (or a worker it forked) lives: see sweep
        self.db = sqlite3.connect(os.path.join(self.folder, f"{name}.sqlite"), check_same_thread=False, isolation_level=None)

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()
        os.close(self._lock)
