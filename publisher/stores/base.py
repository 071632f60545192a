"""The one interface every store implements: what the build, the catalog and the handlers call.

Keys are slash-separated and relative to the store root, as they are in ``catalog.json``. A
missing object is :class:`NotFound`, any other failure :class:`StoreError`, whatever the backend.
"""

from __future__ import annotations

import posixpath
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from ..errors import BadRequest, NotFound, SkyshelfError, StoreError
from .faults import store_error, store_fault

#: A key's Content-Type, passed in by whoever opens the store (the stores know no media types).
ContentTypes = Callable[[str], str]


def clean_key(key: str) -> str:
    """A key without empty or ``.`` segments; NUL bytes and ``..`` are refused (they would leave the store)."""
    if "\x00" in key:
        raise BadRequest(f"key {key!r} holds a NUL byte")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise NotFound(f"key {key!r} leaves the store")
    return "/".join(parts)


def epoch(value: Any) -> float:
    """Seconds since the epoch from what a backend reports (a datetime or a number)."""
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


class _Opening(ABCMeta):
    """``Store(url, **options)`` opens the right implementation (see :func:`open_store`), so
    callers name one class whatever the URL; a subclass is constructed as usual."""

    #: The factory, set by the package beside it (which imports every implementation, so no cycle).
    opener: Callable[..., Any] | None = None

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Store and _Opening.opener is not None:
            return _Opening.opener(*args, **kwargs)
        return super().__call__(*args, **kwargs)


class Store(metaclass=_Opening):
    """A store root: a local folder, an S3 bucket (and prefix) or any fsspec URL."""

    #: Which implementation reads the bytes ("local", "s3fs", "fsspec", "boto3", "obstore").
    backend = ""
    is_local = False
    is_s3 = False

    def __init__(self, root: str, content_type: ContentTypes | None = None) -> None:
        self.root = root
        self.url = root
        self.content_type = content_type

    def path(self, key: str) -> str:
        """The full path (local path or URL) of a key."""
        key = clean_key(key)
        return posixpath.join(self.root, key) if key else self.root

    @property
    @abstractmethod
    def fs(self) -> Any:
        """An fsspec file system for the store (pyarrow and the build's streaming writers use it)."""

    # -- reading ---------------------------------------------------------------------------
    @contextmanager
    def reading(self, key: str) -> Iterator[None]:
        """File-system errors of a read as the store's: a folder, or a file taken for one, is NotFound;
        the rest as :meth:`failing` says them (a passing fault is a 503)."""
        with self.failing("read", key):
            try:
                yield
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise NotFound(f"no object {key!r} in store {self.url}") from None
            except PermissionError as exc:
                raise StoreError(f"cannot read {key!r} from {self.url}: access denied ({exc}); are the credentials "
                                 "(AWS_ACCESS_KEY_ID, AWS_PROFILE) the ones for this bucket, and do they allow reading it?") from exc

    @contextmanager
    def failing(self, what: str, key: str) -> Iterator[None]:
        """The store's own errors of one operation as :class:`StoreError` (what no caller's input made)."""
        try:
            yield
        except SkyshelfError:
            raise
        except Exception as exc:
            if store_fault(exc):
                raise store_error(what, key, self.url, exc) from exc
            raise

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """A whole object."""

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of an object (fewer past its end): one ``pread`` or one ranged GET."""
        return self.read_ranges(key, [(start, end)])[0]

    @abstractmethod
    def read_ranges(self, key: str, spans: list[tuple[int, int]]) -> list[bytes]:
        """Several ranges of one object, fetched together (one open file, concurrent GETs)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def stat(self, key: str) -> tuple[int, float] | None:
        """(bytes, last modified as epoch seconds) of one object; None when there is none (or a folder)."""

    @abstractmethod
    def objects(self, folder: str) -> list[tuple[str, int, float]]:
        """(key, bytes, last modified) of each object directly in a folder (not below it)."""

    @abstractmethod
    def listdir(self, prefix: str) -> list[str]:
        """Sorted names directly below a prefix (objects and folders)."""

    @abstractmethod
    def size(self, prefix: str) -> int:
        """Total bytes under a key prefix (a file or a folder)."""

    def inside(self, key: str) -> bool:
        """Whether what a key names may be served: only a local store has links that lead out."""
        return True

    # -- writing ---------------------------------------------------------------------------
    @abstractmethod
    def write_bytes(self, key: str, data: bytes, atomic: bool = False) -> None:
        """Write an object. ``atomic`` (entry points such as catalog.json): a reader sees the old or
        the new bytes, never a mix. Objects of a release need not be: nobody reads them before the
        catalog points at them."""

    @abstractmethod
    def open_write(self, key: str) -> IO[bytes]:
        """A file to stream one object into (Parquet writers)."""

    @abstractmethod
    def move(self, src: str, dst: str) -> None:
        """Rename an object (its new folder is made as needed)."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Delete an object or everything below a folder."""

    def flush(self) -> None:
        """Make everything written so far durable (before an entry point is switched to it)."""

    # -- conditional writes (the store lock of an object store: publisher/store_lock.py) ---
    def put_if(self, key: str, data: bytes, etag: str | None) -> str | None:
        """Write an object only if it is as the caller saw it: absent (``etag`` None) or with that
        ETag. Returns the new ETag, or None when it was not (someone else wrote it since)."""
        raise StoreError(f"{self.url} has no conditional writes")

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        """An object and its ETag (for :meth:`put_if`), or None when there is none."""
        raise StoreError(f"{self.url} has no conditional writes")

    def delete_if(self, key: str, etag: str) -> bool:
        """Delete an object only if it still has that ETag; whether it did."""
        raise StoreError(f"{self.url} has no conditional writes")

    def put_kwargs(self, key: str) -> dict[str, Any]:
        """Per-object upload arguments: the Content-Type, where the store keeps one."""
        return {}

    def presign(self, key: str, seconds: int = 3600, disposition: str | None = None) -> str:
        """A URL that reads one object for ``seconds`` with no credentials; ``disposition`` is the
        Content-Disposition it is answered with (a download's file name)."""
        raise StoreError(f"{self.url} cannot sign URLs")

    def __repr__(self) -> str:
        return f"Store({self.url!r})"
