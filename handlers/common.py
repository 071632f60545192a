"""What every handler shares: the store and catalog, request parsing, HTTP caching and
compression, oversized-response redirects, and the one mapping of errors to HTTP status.

Only the standard library, Powertools and ``publisher``'s lean modules are imported here.
"""

from __future__ import annotations

import contextvars
import gzip
import hashlib
import json
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from publisher import spills
from publisher.catalog import Catalog
from publisher.errors import BadRequest, NotFound, SkyshelfError
from publisher.stores import Store

from .routes import ROUTES

log = logging.getLogger("skyshelf.handlers")

API = "/api/v1"
#: Lambda's synchronous response limit is 6 MB after base64; past this many body bytes we redirect.
MAX_BODY_BYTES = 4 * 2**20


def max_body_bytes() -> int:
    return int(os.environ.get("SKYSHELF_MAX_BODY_BYTES", MAX_BODY_BYTES))
CATALOG_TTL = float(os.environ.get("SKYSHELF_CATALOG_TTL", 2.0))
CACHE_CONTROL = "public, max-age=30, must-revalidate"  # caches may keep an answer 30 s; revalidation is a 304

_lock = threading.Lock()
_stores: dict[str, Store] = {}
_catalogs: dict[str, tuple[tuple[int, int, int] | None, float, Catalog]] = {}


def store() -> Store:
    """The store named by ``SKYSHELF_STORE`` (a folder or s3:// URL); AWS settings come from the environment."""
    url = os.environ.get("SKYSHELF_STORE", "site")
    with _lock:
        if url not in _stores:
            _stores[url] = Store(url, **({"anon": True} if os.environ.get("SKYSHELF_STORE_ANON") else {}))
        return _stores[url]


def _stamp(s: Store) -> tuple[int, int, int] | None:
    """What identifies a local ``catalog.json`` version: a switch renames a new file into place."""
    try:
        st = os.stat(s.path("catalog.json"))
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def catalog() -> Catalog:
    """The published catalog, kept while it is current. On a local store every request checks
    ``catalog.json``'s identity (one ``stat``), so a release switch shows at once; on S3 it is
    re-read at most every ``CATALOG_TTL`` seconds (a read per request would cost a round trip)."""
    s = store()
    now = time.monotonic()
    stamp = _stamp(s) if s.is_local else None
    with _lock:
        cached = _catalogs.get(s.url)
    if cached:
        then, when, current = cached
        if (stamp == then) if s.is_local else (now - when < CATALOG_TTL):
            return current
    fresh = Catalog.open(s)
    if cached and cached[2].document == fresh.document:
        fresh = cached[2]  # the same release: keep what its catalog has loaded (search columns)
    with _lock:
        _catalogs[s.url] = (stamp, now, fresh)
    return fresh


# -- requests ------------------------------------------------------------------------------
def query(app: APIGatewayHttpResolver) -> dict[str, list[str]]:
    """Every query parameter with all its values (API Gateway's v2 ``queryStringParameters`` joins repeats with commas)."""
    return parse_qs(app.current_event.raw_event.get("rawQueryString", ""), keep_blank_values=True)


def one(params: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    values = params.get(name)
    return values[-1] if values else default


def integer(params: dict[str, list[str]], name: str, default: int, low: int = 0, high: int | None = None) -> int:
    raw = one(params, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{name} must be between {low} and {high if high is not None else 'any'}, got {value}")
    return value


def node_path(app: APIGatewayHttpResolver, prefix: str) -> str:
    """The node path after a route prefix, URL-decoded; ``..`` cannot leave the catalog."""
    raw = app.current_event.path
    rest = raw[len(prefix):] if raw.startswith(prefix) else ""
    parts = [unquote(p) for p in rest.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise NotFound(f"path {rest!r} leaves the catalog")
    return "/".join(parts)


def header(app: APIGatewayHttpResolver, name: str) -> str | None:
    """A request header. Payload v2 events carry header names in lower case; read from the raw
    event (Powertools' ``headers`` builds a case-insensitive copy on every access)."""
    headers = app.current_event.raw_event.get("headers") or {}
    value = headers.get(name.lower())
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value


# -- responses -----------------------------------------------------------------------------
def etag_for(*parts: Any) -> str:
    return '"' + hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:32] + '"'


#: Formats compressed inside already: another pass would cost time and save nothing.
PRECOMPRESSED = {"image/png", "application/x-parquet", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def accepted_encodings(app: APIGatewayHttpResolver) -> set[str]:
    """The content codings named in Accept-Encoding (``q=0`` ones left out)."""
    out = set()
    for part in (header(app, "accept-encoding") or "").split(","):
        name, _, params = part.partition(";")
        if params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            out.add(name.strip().lower())
    return out - {""}


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
    accepted = accepted_encodings(app)
    if "zstd" in accepted and _zstd() is not None:
        return "zstd"
    return "gzip" if "gzip" in accepted else None


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
            headers: dict[str, str] | None = None, redirect_ext: str = "", encoding: str | None = None) -> Response:
    """ETag, Cache-Control, Vary and compression for one answer; 304 for a matching
    If-None-Match; a 307 to the bytes in the store when the body is past Lambda's limit.
    ``body`` may come in pieces (compressed as they arrive); ``encoding`` names the
    Content-Encoding that a bytes ``body`` already has (it is sent as it is)."""
    out = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept, Accept-Encoding", **(headers or {})}
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, bytes):
        pieces, total, packed, encoding = _encode_parts(body, app, media_type)
        if total <= max_body_bytes() and packed is not None:
            out["Content-Encoding"] = encoding  # type: ignore[assignment]
            return _binary(status, media_type, packed, out)
        body, encoding = b"".join(pieces), None
    if encoding is None and len(body) > max_body_bytes():
        out["Location"] = spill(body, etag, redirect_ext, app, out.get("Content-Disposition"))
        return Response(307, "application/json", json.dumps({"detail": "response too large for Lambda; follow Location"}), out)
    if encoding is None:
        body, encoding = _encode(body, app, media_type)
    if encoding:
        out["Content-Encoding"] = encoding
    return _binary(status, media_type, body, out)


def not_modified(app: APIGatewayHttpResolver, etag: str) -> Response | None:
    match = header(app, "if-none-match")
    if match and (match.strip() == "*" or etag in [m.strip().removeprefix("W/") for m in match.split(",")]):
        return Response(304, None, "", {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept, Accept-Encoding"})
    return None


_spilled: set[str] = set()  # keys this process wrote: a warm Lambda redirects without recomputing


def spilled(etag: str, ext: str, app: APIGatewayHttpResolver, disposition: str | None = None) -> Response | None:
    """The 307 for an answer this process already spilled to the store (checked before any data
    is read), while that object is still there and fresh (:mod:`publisher.spills`): else None,
    and the answer is made and spilled again."""
    key = spills.key_for(etag, ext)
    if key not in _spilled:
        return None
    if not spills.fresh(store(), key):
        _spilled.discard(key)
        return None
    return Response(307, "application/json", json.dumps({"detail": "response too large for Lambda; follow Location"}),
                    {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Location": _location(key, app, disposition)})


def spill(body: bytes, etag: str, ext: str, app: APIGatewayHttpResolver, disposition: str | None = None) -> str:
    """Write an oversized body to the store (``responses/<etag><ext>``, unless a fresh copy is
    there) and return where to fetch it: a presigned URL on S3, the static ``/files`` path on a
    local store; either answers with ``disposition`` (the download's file name)."""
    s = store()
    key = spills.key_for(etag, ext)
    if not spills.fresh(s, key):
        spills.write(s, key, body)
    if len(_spilled) >= 4096:  # a long-lived server: forget them all rather than grow (each is checked anyway)
        _spilled.clear()
    _spilled.add(key)
    return _location(key, app, disposition)


def _location(key: str, app: APIGatewayHttpResolver, disposition: str | None) -> str:
    """Where a spilled answer is read, carrying its Content-Disposition as S3's
    ``response-content-disposition`` (signed on S3; ``publish serve``'s ``/files/`` honours it
    for spilled answers), so a big download keeps its file name across the 307."""
    s = store()
    if s.is_s3:
        return s.presign(key, 3600, disposition)
    base = os.environ.get("SKYSHELF_FILES_URL") or f"{base_url(app).removesuffix(API)}/files"
    return f"{base}/{key}" + (f"?{spills.DISPOSITION}={quote(disposition, safe='')}" if disposition else "")


#: A Host header as RFC 9110 allows it: a name or IPv4 address, or a bracketed IPv6 one, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def base_url(app: APIGatewayHttpResolver) -> str:
    """``scheme://host/api/v1`` as the client sees it (links in responses are absolute, as Tiled's are)."""
    configured = os.environ.get("SKYSHELF_BASE_URL")
    if configured:
        return configured.rstrip("/") + API
    host = header(app, "host") or "localhost"
    if not _HOST.fullmatch(host):
        raise BadRequest(f"malformed Host header {host!r}: links are built from it")
    scheme = (header(app, "x-forwarded-proto") or "https").partition(",")[0].strip().lower()  # the first proxy's
    if scheme not in ("http", "https"):
        scheme = "https"  # what a proxy in front says, or nonsense: never copied into a link
    stage = app.current_event.raw_event.get("requestContext", {}).get("stage", "$default")
    return f"{scheme}://{host}{'' if stage in ('$default', None) else '/' + stage}{API}"


def error_response(status: int, detail: str) -> Response:
    return Response(status, "application/json", json.dumps({"detail": detail}), {"Cache-Control": "no-store"})


def make_app(module: str, functions: dict[str, Any]) -> APIGatewayHttpResolver:
    """A resolver with this module's routes from the route table and the one error mapping:
    Skyshelf errors answer their ``http_status`` with a ``detail``; anything else is a 500
    without a traceback (logged)."""
    app = APIGatewayHttpResolver()
    for route in ROUTES:
        if route.module == module:
            app.route(route.regex, route.method)(functions[route.path])

    @app.exception_handler(SkyshelfError)
    def _known(exc: SkyshelfError) -> Response:
        status = exc.http_status
        if status >= 500:
            log.error("server error: %s", exc)
        return error_response(status, str(exc) if status < 500 else f"{type(exc).__name__}: {exc}")

    @app.exception_handler(Exception)
    def _unknown(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, f"internal error ({type(exc).__name__})")

    @app.not_found
    def _missing(exc: Exception) -> Response:
        return error_response(404, f"no route for {app.current_event.http_method} {app.current_event.path}")

    return app
