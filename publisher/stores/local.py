"""A local folder as a store: plain ``os`` calls (``pread`` for ranges, durable renames for entry
points, ``O_DIRECT`` and background write-back for a build's bulk), links never followed out."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from stat import S_ISDIR
from typing import IO, Any

from ..errors import StoreError
from .base import ContentTypes, Store, clean_key
from .local_io import DIRECT_BYTES, DirectWriter, Writeback, local_size, write_file


#: Folders a store remembers having made (past that it forgets them all and, at worst, a mkdir
#: finds one there): a bound on memory whatever the tree's size.
FOLDERS_KEPT = 65536


class LocalStore(Store):
    backend = "local"
    is_local = True

    def __init__(self, url: str, content_type: ContentTypes | None = None, direct_io: bool = True) -> None:
        super().__init__(str(Path(url.removeprefix("file://")).resolve()), content_type)
        self._fs: Any = None
        self._folders: set[str] = set()
        self._writeback = Writeback()
        self._direct = DirectWriter(direct_io)

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            self._fs = fsspec.filesystem("file")
        return self._fs

    # -- reading ---------------------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes:
        with self.reading(key):
            return Path(self.path(key)).read_bytes()

    def read_ranges(self, key: str, spans: list[tuple[int, int]]) -> list[bytes]:
        if not spans:
            return []
        with self.reading(key):
            fd = os.open(self.path(key), os.O_RDONLY)
            try:
                return [os.pread(fd, max(b - a, 0), a) for a, b in spans]
            finally:
                os.close(fd)

    def exists(self, key: str) -> bool:
        return os.path.exists(self.path(key))

    def stat(self, key: str) -> tuple[int, float] | None:
        try:
            st = os.stat(self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if S_ISDIR(st.st_mode) else (st.st_size, st.st_mtime)

    def objects(self, folder: str) -> list[tuple[str, int, float]]:
        base = clean_key(folder)
        try:
            with os.scandir(self.path(base)) as entries:
                found = [(e.name, e.stat(follow_symlinks=False)) for e in entries if e.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [(f"{base}/{name}", st.st_size, st.st_mtime) for name, st in found]

    def listdir(self, prefix: str) -> list[str]:
        path = self.path(prefix)
        if os.path.isfile(path):
            return [os.path.basename(path)]
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def size(self, prefix: str) -> int:
        return local_size(self.path(prefix))

    def inside(self, key: str) -> bool:
        """Whether a key, symlinks followed, is a file inside the store (a link may point
        anywhere: what is served must not)."""
        real = os.path.realpath(self.path(key))
        return real.startswith(self.root.rstrip(os.sep) + os.sep) and os.path.isfile(real)

    # -- writing ---------------------------------------------------------------------------
    def write_bytes(self, key: str, data: bytes, atomic: bool = False) -> None:
        """``atomic``: a durable temp file renamed into place."""
        path = self.path(key)
        try:
            try:
                self._write(path, data, atomic)
            except FileNotFoundError:  # a folder made earlier was deleted since (gc, by hand): make it again
                self._folders.clear()
                self._write(path, data, atomic)
        except OSError as exc:
            raise StoreError(f"cannot write {key!r} to {self.url}: {exc}") from exc

    def _write(self, path: str, data: bytes, atomic: bool) -> None:
        self._ensure_folder(path)
        if atomic:
            fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=".tmp-")
            os.fchmod(fd, _FILE_MODE)  # (mkstemp's 0600: catalog.json unreadable to a web server or another user)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        elif not (len(data) >= DIRECT_BYTES and self._direct.enabled and self._direct.write(path, data)):
            write_file(path, data)
            self._writeback.wrote(len(data))

    def _ensure_folder(self, path: str) -> None:
        """Create an object's folder once; remembered, since a mkdir walk per object adds up."""
        self._make_folder(os.path.dirname(path))

    def _make_folder(self, folder: str) -> None:
        """``folder`` and its missing parents, one ``mkdir`` each, every one remembered (a chunk
        key ``c/7/0/0`` adds two folders; ``os.makedirs`` would probe each level in Python)."""
        missing = []  # (a loop, not recursion: a tree may be deeper than Python's recursion limit)
        while folder not in self._folders:
            missing.append(folder)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        for folder in reversed(missing):  # the highest first
            try:
                os.mkdir(folder)
            except FileExistsError:
                pass
            except OSError:  # e.g. no permission to probe a parent above the store: let makedirs decide
                os.makedirs(folder, exist_ok=True)
            if len(self._folders) >= FOLDERS_KEPT:  # a million arrays make three million folders: remember the recent ones
                self._folders.clear()
            self._folders.add(folder)

    def open_write(self, key: str) -> IO[bytes]:
        path = self.path(key)
        self._ensure_folder(path)
        what = f"cannot write {key!r} to {self.url}"
        try:
            raw = _Written(path, what)
        except OSError as exc:
            raise StoreError(f"{what}: {exc}") from exc
        return io.BufferedWriter(raw)

    def flush(self) -> None:
        self._writeback.wait()
        os.sync()

    def move(self, src: str, dst: str) -> None:
        self._ensure_folder(self.path(dst))
        shutil.move(self.path(src), self.path(dst))

    def delete_prefix(self, prefix: str) -> None:
        """As S3's deletes: what is gone already is no error. Another process or thread may delete
        the same keys meanwhile (two served answers' spill cleanups, ``publish gc``): an entry
        vanishing under the walk failed the request whose cleanup it was (a 500)."""
        path = self.path(prefix)
        self._folders = {f for f in self._folders if not (f == path or f.startswith(path + "/"))}
        while True:
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                elif os.path.lexists(path):
                    os.remove(path)
                return
            except FileNotFoundError:
                continue  # (looked at again: gone by now, or what is left of it deleted)


def _file_mode() -> int:
    """What a new file gets from ``open`` (0666 less the umask), as every other store object has."""
    mask = os.umask(0o022)  # (read once, at import: os.umask sets as it reads)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


class _Written(io.FileIO):
    """A file a writer streams into (Parquet): its failures (a full disk, a read-only mount) are
    the store's, as :meth:`LocalStore.write_bytes` says them, not the item's (a raw OSError was
    taken for the source file's, and the item left out of the release)."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(path, "wb")
        self.what = what

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise StoreError(f"{self.what}: {exc}") from exc

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:
            raise StoreError(f"{self.what}: {exc}") from exc
