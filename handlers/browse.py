"""The browse page: ``GET /`` (index.html) and ``GET /ui/{path+}`` (its scripts and styles), on
the metadata function, from the current release's copy (``releases/<id>/browse/``, read through
the store; the package's copy for a release built before the page existed).

Same origin as the API, so no CORS and no token crosses origins. Every answer carries the page's
Content-Security-Policy (no inline script; requests to this origin, the catalog's identity
provider and https: for presigned downloads), ``nosniff`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from publisher import browse as page
from publisher.catalog import Catalog
from publisher.errors import NotFound

from . import common, http

#: index.html is checked on every load (a new release's page shows at once); assets briefly kept, then revalidated (ETag).
INDEX_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=60, must-revalidate"
#: (store, release, name) → the asset's bytes, or None: the release has no such file. Objects of a
#: release never change, so a warm process keeps what it read.
_files: OrderedDict[tuple[str, str, str], bytes | None] = OrderedDict()
_has_page: dict[tuple[str, str], bool] = {}
_lock = threading.Lock()
KEPT_FILES = 128


def index(app: APIGatewayHttpResolver) -> Response:
    return _serve(app, page.INDEX, INDEX_CACHE)


def asset(app: APIGatewayHttpResolver) -> Response:
    """One file of the page; a name that is no asset's (a folder, ``..``, an unknown file) is a 404."""
    name = common.node_path(app, "/ui")
    return _serve(app, name, ASSET_CACHE)


def _serve(app: APIGatewayHttpResolver, name: str, cache_control: str) -> Response:
    media_type = page.media_type(name)
    catalog = _current()
    body = _read(catalog, name) if media_type is not None else None
    if body is None:
        raise NotFound(f"no browse page file {name!r} (the page's files are index.html and the scripts and styles it links)")
    etag = '"' + hashlib.sha1(body).hexdigest()[:32] + '"'  # by content: an unchanged file stays cached across releases
    headers = {"Cache-Control": cache_control, "Vary": "Accept-Encoding", **page_headers(catalog)}
    cached = http.not_modified(app, etag, headers)
    if cached is not None:
        return cached
    return http.respond(app, body, media_type, etag, headers=headers, spillable=False)  # type: ignore[arg-type]


def _current() -> Catalog | None:
    """The current release (None: nothing published yet, the package's page is served). Never a
    pinned one: an old release's page on today's origin would bring back whatever an old page
    did wrong, next to the signed-in tab's key (the page pins releases in its own requests)."""
    try:
        return common.current()
    except NotFound:
        return None


def _read(catalog: Catalog | None, name: str) -> bytes | None:
    """The release's copy of a file; the package's when the release has no page of its own."""
    if catalog is None:
        return page.packaged(name)
    store = common.store()
    release = catalog.release
    key = (store.url, release, name)
    with _lock:
        if key in _files:
            _files.move_to_end(key)
            return _files[key]
    if not _release_has_page(store, release):
        return page.packaged(name)
    try:
        body: bytes | None = store.read_bytes(f"{page.release_prefix(release)}/{name}")
    except (NotFound, FileNotFoundError):
        body = None
    with _lock:
        _files[key] = body
        while len(_files) > KEPT_FILES:
            _files.popitem(last=False)
    return body


def _release_has_page(store: Any, release: str) -> bool:
    key = (store.url, release)
    found = _has_page.get(key)
    if found is None:
        found = _has_page[key] = store.exists(f"{page.release_prefix(release)}/{page.INDEX}")
    return found


def page_headers(catalog: Catalog | None) -> dict[str, str]:
    """The page's security headers: its Content-Security-Policy names this catalog's identity provider."""
    return {"Content-Security-Policy": policy(_provider_origins(catalog)), "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}


def policy(providers: list[str]) -> str:
    """Scripts and styles from this origin only (no inline ones); fetches to this origin, the
    identity provider (token endpoint) and https: (presigned downloads redirect to S3); images
    also from data:/blob: (previews); never framed; forms post here or to the provider."""
    extra = "".join(f" {o}" for o in providers)
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https:; "
            f"connect-src 'self'{extra} https:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'{extra}; object-src 'none'")


def _provider_origins(catalog: Catalog | None) -> list[str]:
    """The origins of the catalog's OIDC issuer and of the endpoints its discovery document names
    (when this process has read it already: nothing is fetched for a page)."""
    oidc = ((catalog.info.access or {}).get("oidc") if catalog is not None else None) or {}
    issuer = oidc.get("issuer")
    if not issuer:
        return []
    from . import auth

    endpoints = auth._discovered.get(issuer) or {}
    urls = [issuer, *(endpoints.get(k) for k in ("token_endpoint", "authorization_endpoint"))]
    origins = []
    for url in urls:
        parts = urlsplit(url or "")
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None
        if origin and origin not in origins and all(c not in origin for c in " ;,'\""):
            origins.append(origin)
    return origins
