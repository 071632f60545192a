"""HTTP answers: ETag and 304, Cache-Control and Vary, content encodings (zstd, gzip), Lambda's
base64 wire format, and answers past Lambda's size limit spilled to the store behind a 307.
"""

from __future__ import annotations

import contextvars
import gzip
import hashlib
import json
import logging
import threading
import zlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from publisher import spills
from publisher.auth import signing
from publisher.errors import StoreError

from . import auth, observe, settings
from .common import API, CACHE_CONTROL, PINNED, base_url, header, store

log = logging.getLogger("skyshelf.http")
PRIVATE_CACHE_CONTROL = "private, max-age=30, must-revalidate"
#: An answer from a pinned release (``release=<id>``): the same for as long as the release is kept.
PINNED_CACHE_CONTROL = "public, max-age=31536000, immutable"
PRIVATE_PINNED_CACHE_CONTROL = "private, max-age=86400, immutable"  # a day: a revoked key's answers do not linger longer


def etag_for(*parts: Any) -> str:
    """An answer's ETag from what it depends on; a signed-in caller's tags are part of it (two
    callers may see the same URL differently), an anonymous one's are not (as before)."""
    caller = auth.CURRENT.get()
    if caller is not None and not caller.anonymous:
        parts = (*parts, caller.kind, sorted(caller.reach))
    return '"' + hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:32] + '"'


#: Formats compressed inside already: another pass would cost time and save nothing.
PRECOMPRESSED = {"image/png", "application/x-parquet", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _weights(app: APIGatewayHttpResolver) -> dict[str, float]:
    """Accept-Encoding's codings and their weights (RFC 9110 12.4.2: ``q`` in any case; 1 when
    not given; an unreadable weight counts as 1)."""
    out: dict[str, float] = {}
    for part in (header(app, "accept-encoding") or "").split(","):
        name, *params = part.split(";")
        weight = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 1.0
        if name.strip():
            out[name.strip().lower()] = weight
    return out


def accepted_encodings(app: APIGatewayHttpResolver) -> set[str]:
    """The content codings named in Accept-Encoding (``q=0`` ones left out)."""
    return {name for name, weight in _weights(app).items() if weight > 0}


_local = threading.local()


def _zstd() -> Any:
    """This thread's zstd compressor, made once, not per answer (None without zstandard): level 1
    with a 4 KiB-entry hash table, which stays in the L1 cache (3 MB of CSV: 6.9 -> 6.2 ms, no bigger)."""
    compressor = getattr(_local, "zstd", False)
    if compressor is False:
        try:
            import zstandard

            compressor = zstandard.ZstdCompressor(compression_params=zstandard.ZstdCompressionParameters.from_level(1, hash_log=12))
        except ImportError:
            compressor = None
        _local.zstd = compressor
    return compressor


def _encoding_for(app: APIGatewayHttpResolver, media_type: str) -> str | None:
    """zstd (preferred) or gzip when the client accepts it and the format is not compressed already."""
    if media_type in PRECOMPRESSED:
        return None
    weights = _weights(app)
    usable = [name for name in ("zstd", "gzip") if weights.get(name, 0) > 0 and (name != "zstd" or _zstd() is not None)]
    return max(usable, key=lambda name: weights[name]) if usable else None  # (the client's preference; a tie: zstd)


def _encode(body: bytes, app: APIGatewayHttpResolver, media_type: str = "") -> tuple[bytes, str | None]:
    """The body in the client's encoding when it is worth it. Fast levels: the answer is made per
    request, and a level-1 pass already takes most of the gain."""
    encoding = _encoding_for(app, media_type) if len(body) >= 1024 else None
    if encoding == "zstd":
        return _zstd().compress(body), "zstd"
    if encoding == "gzip":
        return gzip.compress(body, compresslevel=1 if len(body) > 65536 else 4, mtime=0), "gzip"
    return body, None


#: Set by ``publish serve`` around a call: bodies are handed over as bytes instead of taking
#: the base64 leg of Lambda's wire format (encoded here, decoded there: pure overhead in-process).
LOCAL_BODY: contextvars.ContextVar[list[bytes] | None] = contextvars.ContextVar("skyshelf_local_body", default=None)
LOCAL_BODY_HEADER = "X-Skyshelf-Local-Body"


def _binary(status: int, media_type: str | None, body: bytes, headers: dict[str, str]) -> Response:
    """A Response whose bytes go out base64-encoded as they are (Powertools would re-serialize JSON bodies)."""
    sink = LOCAL_BODY.get()
    if sink is not None:
        sink.append(body)
        return Response(status, media_type, "", {**headers, LOCAL_BODY_HEADER: "1"})
    import base64

    response = Response(status, media_type, base64.b64encode(body).decode(), headers)
    response.base64_encoded = True
    return response


def _encode_parts(parts: Iterable[bytes], app: APIGatewayHttpResolver, media_type: str) -> tuple[list[bytes], int, bytes | None, str | None]:
    """(the pieces, their total size, the encoded body or None, its encoding), each piece
    compressed as it arrives into one zstd frame or gzip member while later pieces are made."""
    encoding = _encoding_for(app, media_type)
    stream = (_zstd().compressobj() if encoding == "zstd"
              else zlib.compressobj(1, zlib.DEFLATED, 31) if encoding == "gzip" else None)  # wbits 31: a gzip member
    raw, packed, total = [], [], 0
    for part in parts:
        raw.append(part)
        total += len(part)
        if stream is not None:
            packed.append(stream.compress(part))
    if stream is None or total < 1024:
        return raw, total, None, None
    packed.append(stream.flush())
    return raw, total, b"".join(packed), encoding


def respond(app: APIGatewayHttpResolver, body: bytes | Iterable[bytes], media_type: str, etag: str, status: int = 200,
            headers: dict[str, str] | None = None, redirect_ext: str = "", encoding: str | None = None,
            spillable: bool = True) -> Response:
    """ETag, Cache-Control, Vary and compression for one answer; 304 for a matching
    If-None-Match; a 307 to the bytes in the store when the body is past Lambda's limit.
    ``body`` may come in pieces (compressed as they arrive); ``encoding`` names the
    Content-Encoding that a bytes ``body`` already has (it is sent as it is). ``spillable=False``
    (the browse page's own files, kilobytes): always the body, since a 307 to a stored copy
    would make a browser save the page instead of showing it."""
    out = {"ETag": etag, **caching(), **(headers or {})}
    # If-None-Match: * matches only once the answer is known to be a 200 (RFC 9110 13.1.2): its body made
    star = status == 200 and (header(app, "if-none-match") or "").strip() == "*"
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, bytes):
        pieces, total, packed, encoding = _encode_parts(body, app, media_type)  # (a failure making it raised here)
        if star:
            return Response(304, None, "", out)
        if total <= settings.current().max_body_bytes and packed is not None:
            out["Content-Encoding"], out["ETag"] = encoding, coded(etag, encoding)  # type: ignore[arg-type]
            return _binary(status, media_type, packed, out)
        body, encoding = b"".join(pieces), None
    elif star:
        return Response(304, None, "", out)
    if encoding is None and spillable and len(body) > settings.current().max_body_bytes:
        try:
            out["Location"] = spill(body, etag, redirect_ext, app, out.get("Content-Disposition"))
            return Response(307, "application/json", json.dumps({"detail": "response too large for Lambda; follow Location"}), out)
        except StoreError as exc:
            if LOCAL_BODY.get() is None:  # (deployed: no other way past Lambda's limit)
                raise
            # publish serve has no payload limit: a store it cannot write (read-only) still answers
            log.warning("answer of %d bytes sent whole: it could not be spilled (%s)", len(body), exc)
    if encoding is None:
        body, encoding = _encode(body, app, media_type)
    if encoding:
        out["Content-Encoding"] = encoding
        out["ETag"] = coded(etag, encoding)
    return _binary(status, media_type, body, out)


def coded(etag: str, encoding: str) -> str:
    """A strong ETag per content coding (RFC 9110 8.8.3: the gzip and zstd bodies of one answer
    are different content): ``"abc"`` -> ``"abc-gzip"``."""
    return f'{etag[:-1]}-{encoding}"' if etag.endswith('"') else f"{etag}-{encoding}"


def not_modified(app: APIGatewayHttpResolver, etag: str, headers: dict[str, str] | None = None) -> Response | None:
    """The 304 for an If-None-Match naming this answer's ETag (in any of its codings), with the
    headers its 200 has (``headers``: its own Cache-Control, say: a cache takes the 304's). ``*``
    is left to :func:`respond`: it matches only an answer that is a 200 (RFC 9110 13.1.2)."""
    match = header(app, "if-none-match")
    if not match:
        return None
    ours = {etag, coded(etag, "gzip"), coded(etag, "zstd")}
    found = next((m for m in (m.strip().removeprefix("W/") for m in match.split(",")) if m in ours), None)
    if found is None:
        return None
    return Response(304, None, "", {"ETag": found, **caching(), **(headers or {})})


_spilled: set[str] = set()  # keys this process wrote: a warm Lambda redirects without recomputing


def spilled(etag: str, ext: str, app: APIGatewayHttpResolver, disposition: str | None = None) -> Response | None:
    """The 307 for an answer this process already spilled to the store (checked before any data
    is read), while that object is still there and fresh (:mod:`publisher.spills`): else None,
    and the answer is made and spilled again."""
    key = _spill_key(etag, ext)
    if key not in _spilled:
        return None
    if not spills.fresh(store(), key, settings.current().spill_max_age):
        _spilled.discard(key)
        return None
    observe.spilled()
    return Response(307, "application/json", json.dumps({"detail": "response too large for Lambda; follow Location"}),
                    {"ETag": etag, **caching(), "Location": _location(key, app, disposition)})


def spill(body: bytes, etag: str, ext: str, app: APIGatewayHttpResolver, disposition: str | None = None) -> str:
    """Write an oversized body to the store (``responses/<etag><ext>``, unless a fresh copy is
    there) and return where to fetch it: a presigned URL on S3, the static ``/files`` path on a
    local store; either answers with ``disposition`` (the download's file name)."""
    s, current = store(), settings.current()
    key = _spill_key(etag, ext)
    if not spills.fresh(s, key, current.spill_max_age):
        spills.write(s, key, body, current.spill_max_age, current.spill_max_bytes)
    if len(_spilled) >= 4096:  # a long-lived server: forget them all rather than grow (each is checked anyway)
        _spilled.clear()
    _spilled.add(key)
    observe.spilled()
    return _location(key, app, disposition)


def _location(key: str, app: APIGatewayHttpResolver, disposition: str | None) -> str:
    """Where a spilled answer is read, carrying its Content-Disposition as S3's
    ``response-content-disposition`` (signed on S3; ``publish serve``'s ``/files/`` honours it
    for spilled answers), so a big download keeps its file name across the 307."""
    s = store()
    private = key.startswith(PRIVATE)
    if s.is_s3:
        return s.presign(key, PRIVATE_SECONDS if private else 3600, disposition)
    base = settings.current().files_url or f"{base_url(app).removesuffix(API)}/files"
    query = [f"{spills.DISPOSITION}={quote(disposition, safe='')}"] if disposition else []
    if private:  # publish serve's /files/ reads a private key only with a signature, as S3 would
        query.append(signing.sign(key, PRIVATE_SECONDS))
    return f"{base}/{quote(key)}" + (f"?{'&'.join(query)}" if query else "")  # (a node named 'scan #1': its '#' cut the URL)


#: A signed-in caller's spilled answers are private objects, readable through a URL this short-lived.
PRIVATE = "private/"
PRIVATE_SECONDS = 300


def _spill_key(etag: str, ext: str) -> str:
    """Where an answer spills: ``responses/`` (public, as before) for an anonymous caller, under
    ``private/`` for a signed-in one, whose answer may hold what others may not read."""
    key = spills.key_for(etag, ext)
    caller = auth.CURRENT.get()
    return key if caller is None or caller.anonymous else PRIVATE + key


def caching() -> dict[str, str]:
    """Cache-Control and Vary: shared caches may keep an anonymous answer; a signed-in caller's is
    theirs alone (``private``), and differs by its Authorization."""
    caller = auth.CURRENT.get()
    pinned = PINNED.get() is not None  # a pinned release's answers never change (its objects do not)
    if caller is None or caller.anonymous:  # a browser must not reuse it for a signed-in request where that sees more
        return {"Cache-Control": PINNED_CACHE_CONTROL if pinned else CACHE_CONTROL, "Vary": "Accept, Accept-Encoding" + (", Authorization" if auth.RESTRICTED.get() else "")}
    return {"Cache-Control": PRIVATE_PINNED_CACHE_CONTROL if pinned else PRIVATE_CACHE_CONTROL, "Vary": "Accept, Accept-Encoding, Authorization"}

