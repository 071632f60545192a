"""Object stores behind one small interface: a local folder by default, any fsspec URL otherwise.

Keys are slash-separated and relative to the store root, as they are in ``catalog.json``.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path
from stat import S_ISDIR
from typing import IO, Any

from .content_types import content_type
from .errors import BadRequest, NotFound, StoreError
from .local_files import DIRECT_BYTES, DirectWriter, Writeback, local_size, write_file


def _clean_key(key: str) -> str:
    if "\x00" in key:
        raise BadRequest(f"key {key!r} holds a NUL byte")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise NotFound(f"key {key!r} leaves the store")
    return "/".join(parts)


def _epoch(value: Any) -> float:
    """Seconds since the epoch from what fsspec's file systems report (a datetime or a number)."""
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


class _Boto3Objects:
    """S3 reads and small writes through boto3 alone: what a Lambda handler needs, from the boto3
    its runtime already has, without s3fs, aiobotocore and aiohttp in its package
    (``SKYSHELF_S3_BACKEND=boto3``, which the deployed functions set)."""

    def __init__(self, root: str) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, _, self.prefix = root.split("://", 1)[1].partition("/")
        self.client = boto3.client("s3", config=Config(max_pool_connections=32, retries={"mode": "standard"}))

    def key(self, key: str) -> str:
        key = _clean_key(key)
        return posixpath.join(self.prefix, key) if self.prefix else key

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        if start is not None and end is not None and end <= start:
            return b""
        extra = {} if start is None else {"Range": f"bytes={start}-{'' if end is None else end - 1}"}
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(key), **extra)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise NotFound(f"no object {key!r} in s3://{self.bucket}/{self.prefix}") from None
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise StoreError(f"cannot read {key!r} from s3://{self.bucket}/{self.prefix}: {exc}") from exc
        return body

    def get_many(self, key: str, spans: list[tuple[int, int]]) -> list[bytes]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(spans), 16)) as pool:
            return list(pool.map(lambda span: self.get(key, *span), spans))

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(key), Body=data, ContentType=content_type(key))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StoreError(f"cannot check {key!r} in s3://{self.bucket}/{self.prefix}: {exc}") from exc
        return True

    def stat(self, key: str) -> tuple[int, float] | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StoreError(f"cannot check {key!r} in s3://{self.bucket}/{self.prefix}: {exc}") from exc
        return int(head["ContentLength"]), head["LastModified"].timestamp()

    def presign(self, key: str, seconds: int, **params: str) -> str:
        return str(self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self.key(key), **params},
                                                      ExpiresIn=seconds))


class Store:
    """A store root: local folder or fsspec URL (``s3://bucket/prefix``, ``memory://x``)."""

    def __init__(self, url: str | os.PathLike[str], **storage_options: Any) -> None:
        url = os.fspath(url)
        self.is_local = "://" not in url or url.startswith("file://")
        self.is_s3 = url.startswith(("s3://", "s3a://"))
        if self.is_local:
            self.root = str(Path(url.removeprefix("file://")).resolve())
            self.url = self.root
        else:
            self.root = url.rstrip("/")
            self.url = self.root
        self.storage_options = storage_options
        self._fs: Any = None
        self._boto = _Boto3Objects(self.root) if self.is_s3 and os.environ.get("SKYSHELF_S3_BACKEND") == "boto3" else None
        self._folders: set[str] = set()
        self._writeback = Writeback() if self.is_local else None
        self._direct = DirectWriter()

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            if self.is_local:
                self._fs = fsspec.filesystem("file")
            else:
                # a fresh instance (fsspec's cache would reuse one made under another AWS environment), and
                # no listings cache: a cached listing would hide releases written since (s3fs #490)
                self._fs, _ = fsspec.core.url_to_fs(self.root, skip_instance_cache=True, use_listings_cache=False, **self.storage_options)
        return self._fs

    def path(self, key: str) -> str:
        """The full path (local path or URL) of a key."""
        key = _clean_key(key)
        return posixpath.join(self.root, key) if key else self.root

    # -- bytes ---------------------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes:
        try:
            if self.is_local:
                return Path(self.path(key)).read_bytes()
            if self._boto is not None:
                return self._boto.get(key)
            return self.fs.cat_file(self.path(key))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):  # a folder, or a file taken for one
            raise NotFound(f"no object {key!r} in store {self.url}") from None
        except OSError as exc:
            raise StoreError(f"cannot read {key!r} from {self.url}: {exc}") from exc

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of an object: one ``pread`` locally, one ranged GET on S3."""
        return self.read_ranges(key, [(start, end)])[0]

    def read_ranges(self, key: str, spans: list[tuple[int, int]]) -> list[bytes]:
        """Several ranges of one object: locally from one open file, on S3 fetched concurrently."""
        if not spans:
            return []
        try:
            if self.is_local:
                fd = os.open(self.path(key), os.O_RDONLY)
                try:
                    return [os.pread(fd, b - a, a) for a, b in spans]
                finally:
                    os.close(fd)
            if self._boto is not None:
                return [self._boto.get(key, *spans[0])] if len(spans) == 1 else self._boto.get_many(key, spans)
            if len(spans) == 1:
                return [self.fs.cat_file(self.path(key), start=spans[0][0], end=spans[0][1])]
            return self.fs.cat_ranges([self.path(key)] * len(spans), [a for a, _ in spans], [b for _, b in spans])
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"no object {key!r} in store {self.url}") from None
        except OSError as exc:
            raise StoreError(f"cannot read {key!r} from {self.url}: {exc}") from exc

    def write_bytes(self, key: str, data: bytes, atomic: bool = False) -> None:
        """Write an object. ``atomic`` (for entry points such as catalog.json): on a local folder a
        durable temp file renamed into place, so a reader sees the old or the new bytes, never a mix.
        Objects of a release need neither: nobody reads them before the catalog points at them."""
        path = self.path(key)
        try:
            if self.is_local:
                try:
                    self._write_local(path, data, atomic)
                except FileNotFoundError:  # a folder made earlier was deleted since (gc, by hand): make it again
                    self._folders.clear()
                    self._write_local(path, data, atomic)
            elif self._boto is not None:
                self._boto.put(key, data)
            else:
                self.fs.pipe_file(path, data, **self.put_kwargs(key))
        except OSError as exc:
            raise StoreError(f"cannot write {key!r} to {self.url}: {exc}") from exc

    def _write_local(self, path: str, data: bytes, atomic: bool) -> None:
        self._ensure_folder(path)
        if atomic:
            fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        elif not (len(data) >= DIRECT_BYTES and self._direct.enabled and self._direct.write(path, data)):
            write_file(path, data)
            self._writeback.wrote(len(data))  # type: ignore[union-attr]

    def put_kwargs(self, key: str) -> dict[str, Any]:
        """Per-object upload arguments: the Content-Type on S3."""
        return {"ContentType": content_type(key)} if self.is_s3 else {}

    def _ensure_folder(self, path: str) -> None:
        """Create a local object's folder once; remembered, since a mkdir walk per object adds up."""
        self._make_folder(os.path.dirname(path))

    def _make_folder(self, folder: str) -> None:
        """``folder`` and its missing parents, one ``mkdir`` each, every one remembered (a chunk
        key ``c/7/0/0`` adds two folders; ``os.makedirs`` would probe each level in Python)."""
        if folder in self._folders:
            return
        parent = os.path.dirname(folder)
        if parent != folder:
            self._make_folder(parent)
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
        except OSError:  # e.g. no permission to probe a parent above the store: let makedirs decide
            os.makedirs(folder, exist_ok=True)
        self._folders.add(folder)

    def open_write(self, key: str) -> IO[bytes]:
        path = self.path(key)
        if self.is_local:
            self._ensure_folder(path)
        return self.fs.open(path, "wb", **self.put_kwargs(key))

    def flush(self) -> None:
        """Make everything written so far durable (before an entry point is switched to it)."""
        if self._writeback is not None:
            self._writeback.wait()
            os.sync()

    def exists(self, key: str) -> bool:
        if self.is_local:
            return os.path.exists(self.path(key))
        if self._boto is not None:
            return self._boto.exists(key)
        return self.fs.exists(self.path(key))

    def stat(self, key: str) -> tuple[int, float] | None:
        """(bytes, last modified as epoch seconds) of one object; None when there is none."""
        if self._boto is not None:
            return self._boto.stat(key)
        try:
            if self.is_local:
                st = os.stat(self.path(key))
                return None if S_ISDIR(st.st_mode) else (st.st_size, st.st_mtime)
            info = self.fs.info(self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if info.get("type") == "directory":
            return None
        return int(info["size"]), _epoch(info.get("LastModified") or info.get("mtime") or info.get("created") or 0)

    def objects(self, folder: str) -> list[tuple[str, int, float]]:
        """(key, bytes, last modified) of each object directly in a folder (not below it)."""
        base = _clean_key(folder)
        if self.is_local:
            try:
                with os.scandir(self.path(base)) as entries:
                    found = [(e.name, e.stat(follow_symlinks=False)) for e in entries if e.is_file(follow_symlinks=False)]
            except (FileNotFoundError, NotADirectoryError):
                return []
            return [(f"{base}/{name}", st.st_size, st.st_mtime) for name, st in found]
        path = self.path(base)
        if not self.fs.exists(path):
            return []
        return [(f"{base}/{posixpath.basename(info['name'].rstrip('/'))}", int(info["size"]),
                 _epoch(info.get("LastModified") or info.get("mtime") or info.get("created") or 0))
                for info in self.fs.ls(path, detail=True) if info.get("type") == "file"]

    def inside(self, key: str) -> bool:
        """Whether a local key, symlinks followed, is a file inside the store (a link may point
        anywhere: what is served must not). Elsewhere objects have no links: always true."""
        if not self.is_local:
            return True
        real = os.path.realpath(self.path(key))
        return real.startswith(self.root.rstrip(os.sep) + os.sep) and os.path.isfile(real)

    def presign(self, key: str, seconds: int = 3600, disposition: str | None = None) -> str:
        """A URL that reads one object of an S3 store for ``seconds``, no credentials needed;
        ``disposition`` is the Content-Disposition S3 answers it with (a download's file name)."""
        params = {"ResponseContentDisposition": disposition} if disposition else {}
        if self._boto is not None:
            return self._boto.presign(key, seconds, **params)
        return str(self.fs.sign(self.path(key), expiration=seconds, **params))

    def move(self, src: str, dst: str) -> None:
        if self.is_local:
            self._ensure_folder(self.path(dst))
        self.fs.mv(self.path(src), self.path(dst), recursive=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self.path(prefix)
        self._folders = {f for f in self._folders if not (f == path or f.startswith(path + "/"))}
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def size(self, prefix: str) -> int:
        """Total bytes under a key prefix (a file or a folder)."""
        path = self.path(prefix)
        if self.is_local:
            return local_size(path)
        if not self.fs.exists(path):
            return 0
        if self.fs.isfile(path):
            return int(self.fs.size(path))
        return int(sum(info["size"] for info in self.fs.find(path, detail=True).values()))

    def listdir(self, prefix: str) -> list[str]:
        path = self.path(prefix)
        if not self.fs.exists(path):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(path, detail=False))

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

