"""Upload a local store to an S3 bucket: only what is not there already (size and content hash,
as S3's ETag gives it), in parallel, multipart for large objects, each with its Content-Type and
Cache-Control; ``catalog.json`` last, so readers switch to a release only once all of it is up.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import spills
from ..content_types import content_type
from ..errors import StoreError
from ..formats import CATALOG_KEY, PRIVATE_CATALOG_KEY
from ..store_lock import GC_LOCK_KEY, LOCK_KEY

#: The entry points, uploaded last and in this order (:func:`publisher.releases.switch`).
SWITCHES = (PRIVATE_CATALOG_KEY, CATALOG_KEY)

#: Objects at or past this size go up in parts of this size (and their ETag is computed so).
PART_BYTES = 16 * 2**20
#: Left out: answers spilled by a local server (anyone's, and signed-in callers' own), temporary files of an interrupted write, the
#: local API keys (the deployed functions read the stack's DynamoDB table: ``publish keys --deployed``)
#: and the local store's lock (publisher/store_lock.py).
SKIP_PREFIXES = (f"{spills.PREFIX}/", f"{spills.PRIVATE_PREFIX}/", "private/auth/", LOCK_KEY, GC_LOCK_KEY)


@dataclass
class UploadReport:
    uploaded: int = 0
    uploaded_bytes: int = 0
    unchanged: int = 0
    unchanged_bytes: int = 0
    keys: list[str] = field(default_factory=list)


def cache_control(key: str) -> str:
    """Release objects never change under their key; the entry point must be revalidated."""
    if key in SWITCHES:
        return "no-cache"
    if key.startswith("private/"):  # only a credentialed reader (or a presigned URL) gets these
        return "private, max-age=300"
    if key.startswith("releases/"):
        return "public, max-age=31536000, immutable"
    return "public, max-age=300"


def etag(path: Path, size: int) -> str:
    """The ETag S3 gives this file uploaded as :func:`upload_store` uploads it: the MD5 of its
    bytes, or for a multipart upload the MD5 of its parts' MD5s and the part count."""
    with path.open("rb") as f:
        if size < PART_BYTES:
            return hashlib.md5(f.read(), usedforsecurity=False).hexdigest()
        digests = []
        while chunk := f.read(PART_BYTES):
            digests.append(hashlib.md5(chunk, usedforsecurity=False).digest())
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


def remote_objects(client: Any, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """``{key relative to prefix: (size, etag)}`` of what is in the bucket under ``prefix``."""
    out = {}
    base = f"{prefix}/" if prefix else ""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(base):]] = (int(obj["Size"]), obj["ETag"].strip('"'))
    return out


def local_objects(folder: Path) -> dict[str, Path]:
    out = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".tmp-"):
                continue
            path = Path(root) / name
            key = path.relative_to(folder).as_posix()
            if not key.startswith(SKIP_PREFIXES):
                out[key] = path
    return out


def _verify(client: Any, bucket: str, prefix: str, local: dict[str, Path], keys: list[str], again: Any, rounds: int = 3) -> None:
    """End to end: each uploaded object's ETag (S3's MD5 of the bytes it received, or of its parts)
    must be the local file's; those that differ are sent again, and still differing after
    ``rounds`` they stop the deploy before the entry point moves to a release holding them."""
    for _ in range(rounds):
        remote = remote_objects(client, bucket, prefix)
        wrong = [k for k in keys if remote.get(k, (None, ""))[1] != etag(local[k], local[k].stat().st_size)]
        if not wrong:
            return
        again(wrong)
        keys = wrong
    raise StoreError(f"s3://{bucket}/{prefix}: {len(keys)} uploaded objects do not match their files after {rounds} tries "
                     f"(e.g. {keys[0]!r}); the entry point was not switched")


def upload_store(client: Any, folder: Path, bucket: str, prefix: str = "", workers: int = 16, dry_run: bool = False) -> UploadReport:
    """Make ``s3://bucket/prefix`` hold what ``folder`` holds (nothing is deleted there but a full
    view, ``private/catalog.json``, that the folder no longer has)."""
    from boto3.s3.transfer import TransferConfig

    remote = remote_objects(client, bucket, prefix)
    local = local_objects(folder)
    report = UploadReport()
    todo: list[str] = []
    for key, path in sorted(local.items()):
        size = path.stat().st_size
        have = remote.get(key)
        if have is not None and have[0] == size and have[1] == etag(path, size):
            report.unchanged += 1
            report.unchanged_bytes += size
        else:
            todo.append(key)
    config = TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=4, use_threads=True)

    def put(key: str) -> int:
        path = local[key]
        if not dry_run:
            client.upload_file(str(path), bucket, _key(prefix, key), Config=config,
                               ExtraArgs={"ContentType": content_type(key), "CacheControl": cache_control(key)})
        return path.stat().st_size

    first = [k for k in todo if k not in SWITCHES]
    with ThreadPoolExecutor(workers) as pool:
        sizes = list(pool.map(put, first))
        if not dry_run:
            _verify(client, bucket, prefix, local, first, lambda keys: list(pool.map(put, keys)))
    # a release without private nodes has no full view: the bucket's (an earlier release's) goes, as
    # releases.switch does it locally (the handlers read it first, and served the earlier release)
    stale = PRIVATE_CATALOG_KEY in remote and PRIVATE_CATALOG_KEY not in local and CATALOG_KEY in local
    if stale and not dry_run:  # first the public view there: the switch's first write names its release
        client.upload_file(str(local[CATALOG_KEY]), bucket, _key(prefix, PRIVATE_CATALOG_KEY),
                           ExtraArgs={"ContentType": content_type(CATALOG_KEY), "CacheControl": cache_control(PRIVATE_CATALOG_KEY)})
    for key in SWITCHES:  # the switch, after everything it points at: the full view, then the public one
        if key in todo:
            sizes.append(put(key))
            first.append(key)
            if not dry_run:
                _verify(client, bucket, prefix, local, [key], lambda keys: [put(k) for k in keys])
    if stale and not dry_run:
        client.delete_object(Bucket=bucket, Key=_key(prefix, PRIVATE_CATALOG_KEY))
    report.uploaded, report.uploaded_bytes, report.keys = len(sizes), sum(sizes), first
    return report


def _key(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key
