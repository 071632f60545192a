"""Any fsspec URL as a store (``memory://x``, ``gs://...``; ``s3://`` through s3fs), and the base of
the S3 store, whose build-side listing, streaming writes and moves stay with s3fs."""

from __future__ import annotations

import hashlib
import posixpath
from typing import IO, Any

from ..errors import NotFound, StoreError
from .base import ContentTypes, Store, clean_key, epoch
from .faults import check_put, checksum_failed, damaged, retrying, store_error


def _modified(info: dict[str, Any]) -> float:
    return epoch(info.get("LastModified") or info.get("mtime") or info.get("created") or 0)


#: What S3 answers a write or delete whose condition (If-None-Match, If-Match) does not hold:
#: 412, or 409 when another conditional request on the key was in flight (s3fs raises an OSError
#: whose cause is botocore's error).
_CONDITION_FAILED = ("PreconditionFailed", "ConditionalRequestConflict")


def _condition_failed(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc
    response = getattr(cause, "response", None) or {}
    return response.get("Error", {}).get("Code") in _CONDITION_FAILED or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412


class FsspecStore(Store):
    backend = "fsspec"

    def __init__(self, url: str, content_type: ContentTypes | None = None, **storage_options: Any) -> None:
        super().__init__(url.rstrip("/"), content_type)
        self.is_s3 = url.startswith(("s3://", "s3a://"))
        if self.is_s3:
            self.backend = "s3fs"
        self.storage_options = storage_options
        self._fs: Any = None

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            # a fresh instance (fsspec's cache would reuse one made under another AWS environment), and
            # no listings cache: a cached listing would hide releases written since (s3fs #490)
            self._fs, _ = fsspec.core.url_to_fs(self.root, skip_instance_cache=True, use_listings_cache=False, **self.storage_options)
        return self._fs

    # -- reading ---------------------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes:
        with self.reading(key):  # a body failing botocore's check of S3's CRC is read again (s3fs retries cut ones itself)
            return bytes(retrying(lambda: self.fs.cat_file(self.path(key)), when=checksum_failed))

    def read_ranges(self, key: str, spans: list[tuple[int, int]]) -> list[bytes]:
        if not spans:
            return []
        if any(b <= a for a, b in spans):  # an empty range, which S3 would answer with the whole object
            return [self.read_range(key, a, b) if b > a else b"" for a, b in spans]
        with self.reading(key):
            try:
                if len(spans) == 1:
                    return [retrying(lambda: self.fs.cat_file(self.path(key), start=spans[0][0], end=spans[0][1]), when=checksum_failed)]
                return list(self.fs.cat_ranges([self.path(key)] * len(spans), [a for a, _ in spans], [b for _, b in spans]))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise
            except OSError:
                found = self.stat(key)
                if found is None or all(a < found[0] for a, _ in spans):
                    raise
                # S3 refuses a range past the end: those are empty, as a file's read is
                return [self.read_range(key, a, b) if a < found[0] else b"" for a, b in spans]

    def exists(self, key: str) -> bool:
        with self.failing("check", key):
            return bool(self.fs.exists(self.path(key)))

    def stat(self, key: str) -> tuple[int, float] | None:
        with self.failing("check", key):
            try:
                info = self.fs.info(self.path(key))
            except (FileNotFoundError, NotADirectoryError):
                return None
        if info.get("type") == "directory":
            return None
        return int(info["size"]), _modified(info)

    def objects(self, folder: str) -> list[tuple[str, int, float]]:
        base = clean_key(folder)
        path = self.path(base)
        with self.failing("list", base):
            if not self.fs.exists(path):
                return []
            return [(f"{base}/{posixpath.basename(info['name'].rstrip('/'))}", int(info["size"]), _modified(info))
                    for info in self.fs.ls(path, detail=True) if info.get("type") == "file"]

    def listdir(self, prefix: str) -> list[str]:
        path = self.path(prefix)
        with self.failing("list", prefix):
            if not self.fs.exists(path):
                return []
            return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(path, detail=False))

    def size(self, prefix: str) -> int:
        path = self.path(prefix)
        with self.failing("measure", prefix):
            if not self.fs.exists(path):
                return 0
            if self.fs.isfile(path):
                return int(self.fs.size(path))
            return int(sum(info["size"] for info in self.fs.find(path, detail=True).values()))

    # -- writing ---------------------------------------------------------------------------
    def put_kwargs(self, key: str) -> dict[str, Any]:
        """The Content-Type on S3 (other file systems keep none)."""
        return {"ContentType": self.content_type(key)} if self.is_s3 and self.content_type else {}

    def write_bytes(self, key: str, data: bytes, atomic: bool = False) -> None:
        """A single PUT: an object store shows the old object or the new one, never a mix."""
        def send() -> None:
            if not self.is_s3:
                self.fs.pipe_file(self.path(key), data)
                return
            # sent again when S3 refuses bytes not matching the CRC32 botocore sends (BadDigest), or
            # answers the MD5 (ETag) of other bytes than these
            check_put(data, self._s3("put_object", key, Body=data, **self.put_kwargs(key)), key)

        with self.failing("write", key):
            retrying(send, when=damaged)

    def open_write(self, key: str) -> IO[bytes]:
        if self.is_s3:  # spooled, then sent and checked as write_bytes sends (publisher/stores/s3_upload.py)
            from .s3_upload import VerifiedUpload

            return VerifiedUpload(self, key)  # type: ignore[return-value]
        with self.failing("write", key):
            return self.fs.open(self.path(key), "wb", **self.put_kwargs(key))  # type: ignore[no-any-return]

    # On S3, S3's own conditional requests. fsspec exposes none for other file systems, so there
    # the condition is checked, then the object written: not atomic (a store for tests, or one
    # process); the ETag is then the content's MD5.
    def _s3(self, op: str, key: str, **params: Any) -> dict[str, Any]:
        bucket, path, _ = self.fs.split_path(self.path(key))  # (s3fs: bucket, key, version)
        return self.fs.call_s3(op, Bucket=bucket, Key=path, **params)  # type: ignore[no-any-return]

    def put_if(self, key: str, data: bytes, etag: str | None) -> str | None:
        if not self.is_s3:
            found = self.read_tagged(key)
            if (found[1] if found else None) != etag:
                return None
            self.write_bytes(key, data)
            return hashlib.md5(data).hexdigest()
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        with self.failing("write", key):  # (botocore's own errors: the store unreachable, no credentials)
            try:
                return str(self._s3("put_object", key, Body=data, **condition, **self.put_kwargs(key))["ETag"])
            except FileNotFoundError as exc:  # If-Match on an object that is gone: not as the caller saw it either
                if etag is None or _error_code(exc) == "NoSuchBucket":  # (not a lock someone holds: "busy" for a missing bucket)
                    raise store_error("write", key, self.url, exc) from exc
                return None
            except OSError as exc:
                if _condition_failed(exc):
                    return None
                raise store_error("write", key, self.url, exc) from exc

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        try:
            with self.failing("read", key):
                if not self.is_s3:
                    data = self.read_bytes(key)
                    return data, hashlib.md5(data).hexdigest()
                # the ETag first: should the object change in between, the ETag is the older one and a
                # put_if with it fails (safe); the other order could pair old bytes with a new ETag
                try:
                    etag = str(self._s3("head_object", key)["ETag"])
                except FileNotFoundError:
                    return None
                return self.read_bytes(key), etag
        except NotFound:
            return None

    def delete_if(self, key: str, etag: str) -> bool:
        if not self.is_s3:
            found = self.read_tagged(key)
            if found is None or found[1] != etag:
                return False
            self.delete_prefix(key)
            return True
        with self.failing("delete", key):
            try:
                self._s3("delete_object", key, IfMatch=etag)
                return True
            except FileNotFoundError as exc:
                if _error_code(exc) == "NoSuchBucket":
                    raise store_error("delete", key, self.url, exc) from exc
                return False
            except OSError as exc:
                if _condition_failed(exc):
                    return False
                raise store_error("delete", key, self.url, exc) from exc

    def move(self, src: str, dst: str) -> None:
        with self.failing("move", src):
            self.fs.mv(self.path(src), self.path(dst), recursive=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self.path(prefix)
        with self.failing("delete", prefix):
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)

    def presign(self, key: str, seconds: int = 3600, disposition: str | None = None) -> str:
        params = {"ResponseContentDisposition": disposition} if disposition else {}
        try:
            return str(self.fs.sign(self.path(key), expiration=seconds, **params))
        except NotImplementedError:
            raise StoreError(f"{self.url} cannot sign URLs") from None


def _error_code(exc: BaseException) -> str | None:
    """S3's error code behind an error s3fs translated (``NoSuchBucket``, ``NoSuchKey``...), from
    the botocore error it keeps as the cause; None when there is none."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            return response.get("Error", {}).get("Code")
        seen = seen.__cause__
    return None
