"""What every handler shares: the settings, store and catalog, request parsing, the one
mapping of errors to HTTP status, and the Lambda entry point. HTTP answers (caching,
compression, spilled answers) are :mod:`.http`'s.

Only the standard library, Powertools and ``publisher``'s lean modules are imported here.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qs, unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from publisher.access.cache import DECODED
from publisher.auth.view import View
from publisher.catalog import Catalog
from publisher.content_types import content_type
from publisher.formats import Entry
from publisher.errors import BadRequest, NotFound, SkyshelfError
from publisher.functions import ROUTES, allowed_methods, method_not_allowed
from publisher.stores.faults import store_trouble
from publisher.stores import Store

from . import auth, observe, settings

#: Structured JSON lines with the request id (Powertools reads ``POWERTOOLS_SERVICE_NAME``, set per function).
log = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "skyshelf")

API = "/api/v1"
CACHE_CONTROL = "public, max-age=30, must-revalidate"  # caches may keep an answer 30 s; revalidation is a 304

_lock = threading.Lock()
_stores: dict[tuple[str, bool, str, bool], Store] = {}
_catalogs: dict[str, tuple[tuple[int, int, int] | None, float, Catalog]] = {}


def store() -> Store:
    """The store the settings name (a folder or s3:// URL), made once per process; and the
    decoded-data cache its data is kept in, sized from the settings (unchanged: nothing to do)."""
    current = settings.current()
    DECODED.resize(current.decoded_cache_bytes)
    key = (current.store, current.store_anon, current.s3_backend, current.direct_io)
    with _lock:
        if key not in _stores:
            _stores[key] = Store(current.store, content_type=content_type, backend=current.s3_backend, direct_io=current.direct_io,
                                 **({"anon": True} if current.store_anon else {}))
        return _stores[key]


def _stamp(s: Store, key: str = "catalog.json") -> tuple[int, int, int] | None:
    """What identifies a local ``catalog.json`` version: a switch renames a new file into place."""
    try:
        st = os.stat(s.path(key))
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


#: The request being answered (set by the entry point): who asks is read from it once.
EVENT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("skyshelf_event", default={})


def catalog() -> View:
    """The catalog as the request's caller may see it (:class:`publisher.auth.view.View`): every
    route reads nodes through it. Bad credentials are a 401; so is an anonymous request to a
    catalog anonymous callers can read nothing of."""
    published_catalog = published()
    view = View(published_catalog, auth.principal(EVENT.get(), current(), store()))
    auth.RESTRICTED.set(view.restricted)
    view.require_some_access()
    return view


def published() -> Catalog:
    """The published catalog (its full view), kept while it is current. On a local store every request checks
    ``catalog.json``'s identity (one ``stat``), so a release switch shows at once; on S3 it is
    re-read at most every ``catalog_ttl`` seconds (settings) (a read per request would cost a round trip).
    A request that pins a release (``release=<id>``) reads that release's catalog instead (:func:`pinned`)."""
    release = pinned_release()
    if release is not None:
        PINNED.set(release)
        return pinned(store(), release)
    return current()


def current() -> Catalog:
    """The current release's catalog (its full view), whatever the request pins: who the caller is
    (the identity provider, the group and subject mappings) is always decided by today's rules."""
    s = store()
    now = time.monotonic()
    stamp = _stamp(s) if s.is_local else None
    with _lock:
        cached = _catalogs.get(s.url)
    if cached:
        then, when, current = cached
        if (stamp == then) if s.is_local else (now - when < settings.current().catalog_ttl):
            return current
    fresh = Catalog.open_full(s)
    if cached and cached[2].info == fresh.info:
        fresh = cached[2]  # the same release: keep what its catalog has loaded (search columns)
    with _lock:
        _catalogs[s.url] = (stamp, now, fresh)
    return fresh


# -- a release pinned by the request ----------------------------------------------------------
RELEASE = "release"
#: What a release id may be (the build makes ``20261204T120000.123456Z-1a2b3c``): no '/', no '..'.
_RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")
#: The release the request pinned, once :func:`published` has read it (None: the current one).
PINNED: contextvars.ContextVar[str | None] = contextvars.ContextVar("skyshelf_pinned", default=None)
_pins: dict[tuple[str, str], tuple[Any, float, Catalog]] = {}
PINNED_CATALOGS = 8  # releases' catalogs a warm process keeps (each keeps the shards it read)


def pinned_release() -> str | None:
    """The ``release=<id>`` of the request, checked; None when it names none (the current release)."""
    raw = EVENT.get().get("rawQueryString") or ""
    if f"{RELEASE}=" not in raw:
        return None
    values = parse_qs(raw, keep_blank_values=True).get(RELEASE)
    if not values:
        return None
    release = values[-1]
    if len(release) > 100 or not _RELEASE_ID.fullmatch(release):
        raise BadRequest(f"release must be a release id (letters, digits, '.', '_' and '-', as 20261204T120000.123456Z-1a2b3c), got {release!r}")
    return release


def pinned(s: Store, release: str) -> Catalog:
    """A release's PUBLIC view (``releases/<id>/catalog.json``: its public nodes only), for every
    caller. Private nodes are served from the current release alone: an old release judged by
    its own tags would keep granting what a data manager has since taken away (a node re-tagged,
    a group unmapped), so pinning reaches what the release published to everyone (its objects
    stay public in the store until gc anyway). Kept while its ``catalog.json`` is unchanged
    (local: one ``stat``; S3: re-read after ``catalog_ttl`` s), so a garbage-collected release
    stops answering."""
    keys = (f"releases/{release}/catalog.json",)
    now = time.monotonic()
    stamp = _stamp(s, keys[0]) if s.is_local else None
    with _lock:
        cached = _pins.get((s.url, release))
    if cached and ((stamp == cached[0] and stamp is not None) if s.is_local else now - cached[1] < settings.current().catalog_ttl):
        return cached[2]
    fresh = None
    for key in keys:
        try:
            fresh = Catalog.open(s, key)
            break
        except NotFound:
            continue
    if fresh is None or fresh.release != release:
        raise NotFound(_no_release(s, release))
    if cached and cached[2].info == fresh.info:
        fresh = cached[2]
    with _lock:
        _pins.pop((s.url, release), None)
        _pins[(s.url, release)] = (stamp, now, fresh)
        while len(_pins) > PINNED_CATALOGS:
            _pins.pop(next(iter(_pins)))
    return fresh


def _no_release(s: Store, release: str) -> str:
    """Why a pinned release cannot answer (nothing else: no list of releases, nothing private)."""
    from publisher.releases import BUILDING, RETIRED

    if s.exists(f"releases/{release}/{RETIRED}"):
        return f"release {release!r} was garbage-collected: it can no longer be read"
    if s.exists(f"releases/{release}/{BUILDING}"):
        return f"release {release!r} is incomplete: its build has not finished (or was abandoned)"
    return f"no release {release!r}: no such release was published here (or it was garbage-collected)"


# -- requests ------------------------------------------------------------------------------
def query(app: APIGatewayHttpResolver) -> dict[str, list[str]]:
    """Every query parameter with all its values (API Gateway's v2 ``queryStringParameters`` joins repeats with commas)."""
    return parse_qs(app.current_event.raw_event.get("rawQueryString", ""), keep_blank_values=True)


def one(params: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    values = params.get(name)
    return values[-1] if values else default


#: What a node's resource has, each asked for with ``fields=`` (Tiled's names).
FIELDS = ("structure_family", "specs", "metadata", "structure", "access_tags", "sorting", "data_sources", "count")


def boolean(params: dict[str, list[str]], name: str) -> bool:
    """A flag: true or false (1 or 0, any case), false when absent; anything else is a 400
    (a misspelt value silently taken for false would answer something else than asked)."""
    value = (one(params, name, "false") or "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} must be true or false, got {value!r}")
    return value in ("true", "1")


#: An integer parameter's text: ASCII digits, an optional minus.
_INTEGER = re.compile(r"-?[0-9]+")


def integer(params: dict[str, list[str]], name: str, default: int, low: int = 0, high: int | None = None) -> int:
    raw = one(params, name)
    if raw is None or raw == "":
        return default
    if len(raw) > 100 or not _INTEGER.fullmatch(raw):  # int() alone takes " 1", "+1", "1_0" and other scripts' digits
        raise BadRequest(f"{name} must be an integer (ASCII digits, at most 100), got {raw if len(raw) <= 80 else raw[:80] + '...'!r}")
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{name} must be {f'between {low} and {high}' if high is not None else f'at least {low}'}, got {value}")
    return value


def node_path(app: APIGatewayHttpResolver, prefix: str) -> str:
    """The node path after a route prefix, URL-decoded; ``..`` cannot leave the catalog."""
    raw = app.current_event.path
    rest = raw[len(prefix):] if raw.startswith(prefix) else ""
    parts = [unquote(p) for p in rest.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise NotFound(f"path {rest!r} leaves the catalog")
    return "/".join(parts)


def structured_entry(app: APIGatewayHttpResolver, route: str, kind: type, what: str) -> tuple[View, str, Entry]:
    """The caller's view, the node's path and its entry for ``API/<route>/<path>``, refused (400)
    when the node's structure is not ``kind`` (``what`` names it: "a sparse array")."""
    path = node_path(app, f"{API}/{route}")
    view = catalog()
    entry = view.entry(path)
    if not isinstance(entry.structure, kind):
        raise BadRequest(f"{path!r} is a {entry.family}, not {what}")
    return view, path, entry


def header(app: APIGatewayHttpResolver, name: str) -> str | None:
    """A request header. Payload v2 events carry header names in lower case; read from the raw
    event (Powertools' ``headers`` builds a case-insensitive copy on every access)."""
    headers = app.current_event.raw_event.get("headers") or {}
    value = headers.get(name.lower())
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value



#: A Host header as RFC 9110 allows it: a name or IPv4 address, or a bracketed IPv6 one, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def base_url(app: APIGatewayHttpResolver) -> str:
    """``scheme://host/api/v1`` as the client sees it (links in responses are absolute, as Tiled's are)."""
    configured = settings.current().base_url
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


#: Seconds a client is asked to wait before asking again when the store cannot be reached.
RETRY_AFTER = 5


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

    def _unavailable(status: int, error: str) -> Response:
        """The store unreachable or failing for now (its client retried already): the caller's detail
        names no endpoint, bucket or path (the log does) but the request, and when to ask again."""
        log.warning("store unavailable", error=error)
        answer = error_response(status, "the store is unavailable: it kept failing after retries or could not be "
                                f"reached; try again later (request {log.thread_safe_get_current_keys().get('request_id') or '-'})")
        if status == 503:
            answer.headers["Retry-After"] = str(RETRY_AFTER)
        return answer

    @app.exception_handler(SkyshelfError)
    def _known(exc: SkyshelfError) -> Response:
        status = exc.http_status
        if status == 503:  # a passing fault of the store
            return _unavailable(status, str(exc))
        if status >= 500:
            log.error("server error", error=str(exc))
        answer = error_response(status, str(exc) if status < 500 else f"{type(exc).__name__}: {exc}")
        if status == 401:  # RFC 9110: a 401 names the schemes it takes
            answer.headers["WWW-Authenticate"] = auth.CHALLENGE
        return answer

    @app.exception_handler(Exception)
    def _unknown(exc: Exception) -> Response:
        trouble = store_trouble(exc)
        if trouble is not None:  # not a 500
            return _unavailable(trouble.http_status, str(trouble))
        log.exception("unhandled error")
        return error_response(500, f"internal error ({type(exc).__name__})")

    @app.not_found
    def _missing(exc: Exception) -> Response:
        method, path = app.current_event.http_method, app.current_event.path
        allowed = allowed_methods(path)
        if allowed and method not in allowed:  # a path some route has, asked with another method
            answer = error_response(405, method_not_allowed(method, path, allowed))
            answer.headers["Allow"] = ", ".join(allowed)
            return answer
        return error_response(404, f"no route for {method} {path}")

    return app


def _method(event: dict[str, Any]) -> str | None:
    return ((event.get("requestContext") or {}).get("http") or {}).get("method")


def entry_point(app: APIGatewayHttpResolver) -> Any:
    """The module's ``lambda_handler``: each log line carries the request id (and, on Lambda,
    the function's context), then the resolver answers; on Lambda each request is logged and
    measured once it is answered (:mod:`.observe`)."""

    with_context = log.inject_lambda_context(app.resolve)

    def answer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        head = _method(event) == "HEAD"
        if head:  # answered as GET is, without its body (RFC 9110 9.3.2), as publish serve does; logged and measured as the HEAD it is
            event = {**event, "requestContext": {**event["requestContext"], "http": {**event["requestContext"]["http"], "method": "GET"}}}
        EVENT.set(event)
        result = secured(app.resolve(event, context) if context is None else with_context(event, context))
        return {**result, "body": "", "isBase64Encoded": False} if head else result

    observed = observe.Observed(answer, log)

    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # this thread's (a context variable): publish serve answers on several threads at once
        log.thread_safe_append_keys(request_id=(event.get("requestContext") or {}).get("requestId"))
        if event.get("version") != "2.0" or not _method(event):  # (a payload 1.0 integration: a KeyError, API Gateway's bare 500)
            log.error("not an API Gateway HTTP API event of payload format 2.0: the integration must use payloadFormatVersion 2.0")
            return {"statusCode": 500, "headers": {"Content-Type": "application/json", **NOSNIFF}, "isBase64Encoded": False,
                    "body": json.dumps({"detail": "this function takes API Gateway HTTP API events of payload format 2.0 only"})}
        EVENT.set(event)
        auth.CURRENT.set(None)  # who asks is decided afresh for each request
        auth.RESTRICTED.set(False)
        PINNED.set(None)
        return observed(event, context)

    return lambda_handler


#: Every answer: a browser takes it for what its Content-Type says, never sniffs it into HTML or script.
NOSNIFF = {"X-Content-Type-Options": "nosniff"}
#: An HTML answer made from data (format=html of an array or table, a metadata string in it): no
#: script, no requests, its own origin (sandbox), so nothing in a catalog runs next to the page's tokens.
DATA_HTML_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


def secured(result: dict[str, Any]) -> dict[str, Any]:
    """Security headers on a Lambda answer: ``nosniff`` on all; an HTML answer without a policy of
    its own (the browse and docs pages have theirs) gets :data:`DATA_HTML_POLICY`. A redirect of a
    pinned answer is not kept long (it points at a short-lived URL)."""
    headers = result.setdefault("headers", {})
    headers.update(NOSNIFF)
    lowered = {k.lower(): k for k in headers}
    if str(headers.get(lowered.get("content-type", ""), "")).startswith("text/html") and "content-security-policy" not in lowered:
        headers["Content-Security-Policy"] = DATA_HTML_POLICY
    if PINNED.get() is not None and 300 <= int(result.get("statusCode", 200)) < 400 and result.get("statusCode") != 304:
        key = lowered.get("cache-control", "Cache-Control")
        existing = str(headers.get(key, ""))
        caller = auth.CURRENT.get()
        if "no-store" not in existing:  # a signed-in caller's redirect (a signed URL) stays private
            headers[key] = "private, no-store" if "private" in existing or (caller and not caller.anonymous) else CACHE_CONTROL
    return result
