"""The contract of an S3 client library behind :class:`~publisher.stores.s3.S3Store`, and what
its implementations share (the bucket and prefix of a root, the errors they raise)."""

from __future__ import annotations

from typing import Protocol

from ..errors import NotFound, StoreError
from .faults import store_error


class S3Objects(Protocol):
    """What one S3 client library does for :class:`S3Store`; keys are relative to the store root."""

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """An object, or bytes ``[start, end)`` of it (fewer past its end); NotFound when there is none."""

    def get_many(self, key: str, spans: list[tuple[int, int]]) -> list[bytes]: ...

    def put(self, key: str, data: bytes, content_type: str | None) -> None: ...

    def head(self, key: str) -> tuple[int, float] | None:
        """(bytes, last modified) of an object; None when there is none."""

    def presign(self, key: str, seconds: int, disposition: str | None) -> str: ...


def split_root(root: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``."""
    bucket, _, prefix = root.split("://", 1)[1].partition("/")
    return bucket, prefix.strip("/")


def missing(key: str, root: str) -> NotFound:
    return NotFound(f"no object {key!r} in store {root}")


def failed(what: str, key: str, root: str, exc: Exception) -> StoreError:
    return store_error(what, key, root, exc)
