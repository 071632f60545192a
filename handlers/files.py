"""``publish serve``'s ``/files/``: the store's objects over HTTP, as S3 serves them (single byte
ranges, big objects streamed), and nothing else: no folders, no keys that are not an object's,
no links out of the store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote

from publisher.auth import signing
from publisher.content_types import content_type
from publisher.errors import SkyshelfError
from publisher.spills import DISPOSITION
from publisher.spills import PREFIX as SPILLS
from publisher.stores import Store
from publisher.stores.faults import store_trouble

from .common import DATA_HTML_POLICY, NOSNIFF, RETRY_AFTER

log = logging.getLogger("skyshelf.files")
#: What only a signed URL reads (a catalog's private view and data, private spilled answers).
PRIVATE = "private/"
#: Objects up to this size are answered in one piece; bigger ones are read and sent piece by piece.
PIECE = 4 * 2**20
Body = bytes | Iterator[bytes]


#: Every ``/files/`` answer: never sniffed into HTML or script; an object opened in a browser runs
#: nothing and loads nothing (an HTML file in the store is data here, next to the page's tokens).
SECURITY = {**NOSNIFF, "Content-Security-Policy": DATA_HTML_POLICY}


def error(status: int, detail: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", "Cache-Control": "no-store", **SECURITY}, json.dumps({"detail": detail}).encode()


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``[start, end]`` of a single ``bytes=`` range; None when there is none to honour (absent,
    several ranges, another unit), False when it cannot be satisfied."""
    if not header or header[:6].lower() != "bytes=" or "," in header:  # (the unit in any case: RFC 9110 14.1)
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if not first:
            start, end = max(size - int(last), 0), size - 1  # the last N bytes
        else:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
    except ValueError:
        return False
    return (start, end) if 0 <= start <= end and start < size else False


def _pieces(store: Store, key: str, size: int) -> Iterator[bytes]:
    """The object in pieces; one that goes away while sent ends the answer short (the client sees
    fewer bytes than Content-Length said, and the connection is closed). A local file is read
    through one open handle, which its deletion (a spilled answer collected) does not cut."""
    if store.is_local:
        try:
            with open(store.path(key), "rb") as f:
                while (piece := f.read(min(PIECE, size))) and size > 0:
                    size -= len(piece)
                    yield piece
        except OSError as exc:
            log.warning("%s went away while it was sent: %s", key, exc)
        return
    for start in range(0, size, PIECE):
        try:
            yield store.read_range(key, start, min(start + PIECE, size))
        except SkyshelfError as exc:
            log.warning("%s went away while it was sent: %s", key, exc)
            return


def _disposition(key: str, query: str) -> dict[str, str]:
    """A spilled answer's Content-Disposition from ``response-content-disposition``, as S3 gives
    it on a presigned URL: its file name survives the 307. Only for spilled answers, and only
    printable ASCII (what the handlers write), so no header can be injected."""
    value = parse_qs(query).get(DISPOSITION, [""])[0]
    if key.startswith((SPILLS + "/", PRIVATE + SPILLS + "/")) and value and all(" " <= ch <= "~" for ch in value):
        return {"Content-Disposition": value}
    return {}


def file_answer(store: Store, raw: str, range_header: str | None, query: str = "") -> tuple[int, dict[str, str], Body]:
    """A store object (``raw``: its percent-encoded key), or a byte range of it. Folders, keys
    with empty, ``.`` or ``..`` segments, NUL bytes and (locally) links that lead out of the store
    answer a JSON 404 or 400. An object is never read whole for a range, nor held whole when big."""
    key = unquote(raw)
    if "\x00" in key:
        return error(400, f"file key {key!r} holds a NUL byte")
    if key == "" or key.endswith("/"):
        return error(404, f"{key!r} is a folder, not a file (folders are not listed)")
    if any(p in ("", ".", "..") for p in key.split("/")):
        return error(404, f"file key {key!r} has an empty, '.' or '..' segment")
    if key.startswith(PRIVATE) and not signing.valid(key, query):  # only through a signed URL the handlers gave
        return error(404, f"no file {key!r} in the store")
    try:
        found = store.stat(key) if store.inside(key) else None
        if found is None:
            return error(404, f"no file {key!r} in the store")
        size = found[0]
        headers = {"Content-Type": content_type(key), "Accept-Ranges": "bytes",
                   "Cache-Control": "public, max-age=31536000, immutable" if key.startswith("releases/")
                   else "private, no-store" if key.startswith(PRIVATE) else "no-cache",
                   **_disposition(key, query), **SECURITY}
        span = byte_range(range_header, size)
        if span is False:
            status, headers, body = error(416, f"range {range_header!r} is outside {key!r}, which holds {size} bytes")
            return status, {**headers, "Content-Range": f"bytes */{size}"}, body
        if span:
            start, end = span  # type: ignore[misc]
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return 206, headers, store.read_range(key, start, end + 1)
        if size <= PIECE:
            return 200, headers, store.read_bytes(key)
    except Exception as exc:
        trouble = exc if isinstance(exc, SkyshelfError) else store_trouble(exc)
        if trouble is None:
            raise
        status = trouble.http_status if trouble.http_status < 500 or trouble.http_status == 503 else 502
        answer = error(status, str(trouble))
        if status == 503:  # a passing fault of the store, its client's retries spent: ask again later
            answer[1]["Retry-After"] = str(RETRY_AFTER)
        return answer
    return 200, {**headers, "Content-Length": str(size)}, _pieces(store, key, size)
