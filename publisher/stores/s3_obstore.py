"""S3 objects through obstore (Rust's object_store): a cold function's first read costs ~15 ms of
import and client against boto3's ~220 ms (docs/deploy.md), so the deployed functions use it.
Credentials, region and endpoint come from the standard AWS environment, or from s3fs-style
storage options where a caller passes them."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from .faults import ChecksumMismatch, check_md5, damaged, retrying
from .s3_objects import failed, missing, split_root

#: s3fs's option names → obstore's configuration keys.
_OPTIONS = {"key": "access_key_id", "secret": "secret_access_key", "token": "session_token", "anon": "skip_signature"}
_CLIENT = {"endpoint_url": "endpoint", "region_name": "region"}
#: obstore retries 5xx, throttling and dropped connections (and resumes a body cut short) for up
#: to 3 minutes by default; a deployed function answers within API Gateway's 30 s, so it gives up
#: sooner and answers 503 with Retry-After (docs/serve.md).
_RETRY = {"max_retries": 8, "retry_timeout": timedelta(seconds=12),
          "backoff": {"init_backoff": timedelta(milliseconds=200), "max_backoff": timedelta(seconds=3), "base": 2}}


def _config(options: dict[str, Any]) -> dict[str, Any]:
    config = {_OPTIONS[k]: v for k, v in options.items() if k in _OPTIONS and v}
    config.update({_CLIENT[k]: v for k, v in (options.get("client_kwargs") or {}).items() if k in _CLIENT and v})
    return config


#: S3's largest single PUT.
_ONE_PUT = 5 * 2**30


class ObstoreObjects:
    def __init__(self, root: str, options: dict[str, Any]) -> None:
        self.root = root
        bucket, prefix = split_root(root)
        config = _config(options)
        # AWS's own variables (as boto3 and s3fs read them), not a Skyshelf knob: read where the client is made
        endpoint = config.get("endpoint") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
        client = {"allow_http": True} if endpoint.startswith("http://") else {}  # a local server (moto, SeaweedFS)
        self.options = options
        self.store = S3Store(bucket, prefix=prefix or None, config=config, client_options=client,
                             retry_config=_RETRY)  # type: ignore[arg-type]
        self._boto: Any = None
        self._encrypted = False

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        try:
            if start is None:
                return retrying(lambda: self._whole(key), when=damaged)
            if end is not None and end <= start:
                return b""
            return bytes(obstore.get_range(self.store, key, start=start, end=end if end is not None else 2**62))
        except (FileNotFoundError, NotFoundError):  # obstore raises the builtin
            raise missing(key, self.root) from None
        except ChecksumMismatch as exc:
            raise failed("read", key, self.root, exc) from exc
        except BaseError as exc:
            found = self.head(key) if start is not None else None
            if found is not None and start >= found[0]:  # type: ignore[operator]
                return b""  # a range past the end is empty, as a file's read is
            raise failed("read", key, self.root, exc) from exc

    def _whole(self, key: str) -> bytes:
        """An object, checked against its MD5 ETag where it has one: obstore checks no checksum
        (bytes flipped on the way arrived unnoticed, measured with tests/faultproxy.py)."""
        found = obstore.get(self.store, key)
        data = bytes(found.bytes())
        self._check(data, found.meta.get("e_tag"), key)
        return data

    def _check(self, data: bytes, etag: str | None, key: str) -> None:
        """:func:`check_md5`, unless the bucket encrypts with KMS or a customer key (its ETags are no
        MD5s). obstore reports no encryption: asked of boto3 on the first mismatch, and remembered."""
        if self._encrypted:
            return
        try:
            check_md5(data, etag, key)
        except ChecksumMismatch:
            self._encrypted = self._boto3().encrypted(key)
            if not self._encrypted:
                raise

    def _boto3(self) -> Any:
        """boto3 for what obstore cannot do, built on first need (~220 ms)."""
        if self._boto is None:
            from .s3_boto3 import Boto3Objects

            self._boto = Boto3Objects(self.root)
        return self._boto

    def get_many(self, key: str, spans: list[tuple[int, int]]) -> list[bytes]:
        """The spans in one call: obstore coalesces near ones and fetches the rest concurrently."""
        if any(b <= a for a, b in spans):
            return [self.get(key, a, b) for a, b in spans]
        try:
            return [bytes(b) for b in obstore.get_ranges(self.store, key, starts=[a for a, _ in spans], ends=[b for _, b in spans])]
        except (FileNotFoundError, NotFoundError):  # obstore raises the builtin
            raise missing(key, self.root) from None
        except BaseError:  # a span past the end: one by one, each as get() answers it
            return [self.get(key, a, b) for a, b in spans]

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        attributes = {"Content-Type": content_type} if content_type else None

        def send() -> None:  # the ETag S3 answers is the MD5 of the bytes it received: sent again if they differ
            # one PUT (obstore would go multipart past 5 MiB, whose ETag is no MD5) up to S3's 5 GiB
            put = obstore.put(self.store, key, data, attributes=attributes, use_multipart=len(data) > _ONE_PUT)  # type: ignore[arg-type]
            self._check(data, put.get("e_tag"), key)

        try:
            retrying(send, when=damaged)
        except (BaseError, ChecksumMismatch) as exc:
            raise failed("write", key, self.root, exc) from exc

    def head(self, key: str) -> tuple[int, float] | None:
        try:
            meta = obstore.head(self.store, key)
        except (FileNotFoundError, NotFoundError):  # obstore raises the builtin
            return None
        except BaseError as exc:
            raise failed("check", key, self.root, exc) from exc
        return int(meta["size"]), meta["last_modified"].timestamp()

    def presign(self, key: str, seconds: int, disposition: str | None) -> str:
        """obstore signs no response headers: a download's file name (``disposition``) is signed
        by boto3, built on first need (only oversized answers are presigned)."""
        if not disposition:
            return str(obstore.sign(self.store, "GET", key, timedelta(seconds=seconds)))
        return str(self._boto3().presign(key, seconds, disposition))
