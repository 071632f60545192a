"""Metadata and search (one Lambda): about, metadata, search, health, OpenAPI.

Reads the JSON index, and a large container's search columns with numpy (imported only then);
no pyarrow. The query machinery is imported by the first search, not by a cold metadata request.
"""

from __future__ import annotations

import functools
import json
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import Response

from publisher import __version__
from publisher.auth.view import View
from publisher.errors import BadRequest, NotFound
from publisher.formats import Entry
from publisher.structures import ContainerStructure

from . import auth, browse, common, credentials, data_sources, http
from .columns import table_column

MAX_PAGE = 300
DEFAULT_PAGE = 100


def resource(entry: Entry, base: str, fields: tuple[str, ...] | None = None, omit_links: bool = False,
             select_metadata: Any = None, count: int | None = None) -> dict[str, Any]:
    """One node as Tiled's ``Resource``: id, attributes (ancestors, family, structure, ...) and
    links (absolute, with each path segment percent-encoded: keys may hold ``#``, ``?`` or ``%``).
    ``select_metadata`` (a compiled JMESPath expression) replaces the metadata by ``{"selected": ...}``.
    The structure goes out as the index holds it (:meth:`Entry.structure_json`), unparsed; a
    container's ``count`` is what the caller sees (``count``) when given."""
    path = entry.path
    url_path = quote(path, safe="/")
    family = entry.family
    wanted = common.FIELDS if fields is None else fields
    structure = stored = entry.structure_json()
    if family == "container":
        structure = {"contents": None, "count": structure.get("count", 0) if count is None else count}
    attributes = {
        "ancestors": path.split("/")[:-1] if path else [],
        "structure_family": family if "structure_family" in wanted or fields is None else None,
        "specs": [{"name": s, "version": None} for s in entry.specs] if "specs" in wanted else None,
        "metadata": (entry.metadata if select_metadata is None else {"selected": select_metadata.search(entry.metadata)})
        if "metadata" in wanted else None,
        "structure": structure if ("structure" in wanted or (family == "container" and "count" in wanted)) else None,
        "access_tags": entry.access_tags if "access_tags" in wanted else None,
        "sorting": [{"key": "", "direction": 1}] if family == "container" and "sorting" in wanted else None,
        "data_sources": None,
    }
    if family == "container":  # (as Tiled: always, so a listing of fields=metadata tells containers from leaves)
        attributes["structure_family"] = family
    links: dict[str, str] | None = None
    if not omit_links:
        links = {"self": f"{base}/metadata/{url_path}"}
        if fields is None or fields:
            links.update(_links(family, url_path, stored, base))
    return {"id": entry.key, "attributes": attributes, "links": links, "meta": None}


def _inlined(catalog: View, entry: Entry, res: dict[str, Any], base: str) -> dict[str, Any]:
    """A dataset with groups below it (a NetCDF-4 file) inlines its variables, as Tiled inlines an
    ``xarray_dataset``'s contents: the tiled client reads the dataset from them (a group among
    them would break its ``read()``) and reaches the groups by key. The sorting is Tiled's natural
    order ``_``, the only one for which the client uses inlined contents."""
    structure = res["attributes"].get("structure")
    if structure is not None and (entry.notes or {}).get("xarray_groups"):
        structure["contents"] = {c.key: resource(c, base) for c in catalog.entries(entry.path) if c.family == "array"}
        structure["count"] = catalog.count(entry)
        res["attributes"]["sorting"] = [{"key": "_", "direction": 1}]
    return res


def _links(family: str, path: str, structure: dict[str, Any], base: str) -> dict[str, str]:
    if family == "container":
        return {"search": f"{base}/search/{path}", "search_deep": f"{base}/search-deep/{path}", "full": f"{base}/container/full/{path}"}
    if family in ("array", "sparse"):  # sparse/...: what Tiled's array/... redirect to for a sparse node (handlers/sparse.py)
        ndim = len(structure.get("shape", []))
        return {"full": f"{base}/{family}/full/{path}", "block": f"{base}/{family}/block/{path}?block=" + ",".join(f"{{{i}}}" for i in range(ndim))}
    if family == "table":
        return {"full": f"{base}/table/full/{path}", "partition": f"{base}/table/partition/{path}?partition={{index}}"}
    if family == "awkward":
        return {"buffers": f"{base}/awkward/buffers/{path}", "full": f"{base}/awkward/full/{path}"}
    return {}


def _fields(params: dict[str, list[str]]) -> tuple[str, ...] | None:
    if "fields" not in params:
        return None
    chosen = tuple(f for value in params["fields"] for f in value.split(",") if f)
    unknown = [f for f in chosen if f not in common.FIELDS]
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}; fields are {list(common.FIELDS)}")
    return chosen


def _json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _answer(body_fn: Any, *etag_parts: Any) -> Response:
    """A JSON answer whose ETag depends only on the release and the request: 304s skip the work."""
    etag = http.etag_for(*etag_parts)
    cached = http.not_modified(app, etag)
    if cached is not None:
        return cached
    return http.respond(app, _json(body_fn()), "application/json", etag)


@functools.lru_cache(maxsize=64)
def _about(base: str, release: str | None, authentication: str, name: str | None = None) -> bytes:
    """The about document for one base URL, release and ``authentication`` (JSON: it changes while
    the identity provider is out of reach): the same for every request that names them."""
    from publisher import serializers
    from publisher.queries.registry import names

    return _json({
        "api_version": 0,
        "library_version": __version__,
        "formats": serializers.formats(),
        "aliases": serializers.aliases(),
        "queries": names(),
        "authentication": json.loads(authentication),
        "links": {"self": base, "documentation": f"{base}/docs"},
        # the release answering (the current one, or the one ``release=<id>`` pins): the page links to it
        "meta": {"root_path": "", "server": "skyshelf", "release": release, "name": name},  # name: pipeline.yml's, for the page
    })


def _authentication(base: str) -> dict[str, Any]:
    try:
        published = common.current()  # today's provider and rules, whatever release is pinned
    except NotFound:  # nothing published yet: nothing to protect
        return {"required": False, "providers": [], "links": None}
    return auth.authentication(published, base)


def about() -> Response:
    """Tiled's about document; ``authentication`` says whether the tiled client must sign in
    and how (an API key, or a device-code login at the catalog's identity provider)."""
    base = common.base_url(app)
    name: str | None = None
    try:
        published = common.published()
        release: str | None = published.release
        name = published.info.name
    except NotFound:
        if common.pinned_release() is not None:
            raise  # a pinned release that cannot answer says so
        release = None  # nothing published yet
    authentication = json.dumps(_authentication(base))
    etag = http.etag_for("about", __version__, base, release, authentication, name)
    answer = http.not_modified(app, etag) or http.respond(app, _about(base, release, authentication, name), "application/json", etag)
    return auth.with_csrf_cookie(answer, common.EVENT.get().get("cookies"))


def healthz() -> Response:
    catalog = common.published()
    return http.respond(app, _json({"status": "ok", "release": catalog.release}), "application/json", http.etag_for("healthz", catalog.release))


def metadata() -> Response:
    catalog = common.catalog()
    path = common.node_path(app, f"{common.API}/metadata")
    params = common.query(app)
    fields, omit, chosen = _fields(params), common.boolean(params, "omit_links"), _select_metadata(params)
    base = common.base_url(app)
    try:
        entry = catalog.entry(path)
    except NotFound:
        column = _table_column(catalog, path, base)
        if column is None:
            raise
        return column
    sources = data_sources.wanted(params)
    return _answer(lambda: {"data": _sourced(_inlined(catalog, entry, _resource(catalog, entry, base, fields, omit, chosen), base), entry, base, sources),
                            "error": None, "links": None, "meta": {}}, "metadata", catalog.release, path, sorted(params.items()), base)


def _sourced(res: dict[str, Any], entry: Entry, base: str, wanted: bool) -> dict[str, Any]:
    """``include_data_sources=true``: the node's published object (:mod:`.data_sources`)."""
    if wanted:
        res["attributes"]["data_sources"] = data_sources.data_sources(entry, base)
    return res


def _table_column(catalog: View, path: str, base: str) -> Response | None:
    """A table's column is an array child (the tiled client's ``table[column]``). Its data type
    needs the table's Arrow schema and, for strings, the values: the tables function answers
    (a 307 there; this function has no pyarrow)."""
    found = table_column(catalog, path)
    if found is None:
        return None
    _, parent, column = found
    raw = app.current_event.raw_event.get("rawQueryString", "")
    location = f"{base}/column/metadata/{quote(parent, safe='/')}/{quote(column, safe='')}" + (f"?{raw}" if raw else "")
    return Response(307, "application/json", _json({"detail": "a table column: follow Location"}).decode(),
                    {"Location": location, **http.caching()})


def _container(route: str) -> tuple[View, str, dict[str, list[str]], ContainerStructure, Entry]:
    """(catalog as the caller sees it, node path, query parameters, structure with the count the
    caller sees, the container) of a request for a container's children."""
    catalog = common.catalog()
    path = common.node_path(app, f"{common.API}/{route}")
    entry = catalog.entry(path)
    if not isinstance(entry.structure, ContainerStructure):
        raise BadRequest(f"{path!r} is a {entry.family}, not a container: there is nothing to search")
    return catalog, path, common.query(app), ContainerStructure(catalog.count(entry)), entry


def _resource(catalog: View, entry: Entry, base: str, *args: Any) -> dict[str, Any]:
    return resource(entry, base, *args, count=catalog.count(entry) if entry.family == "container" else None)


def search() -> Response:
    from publisher.index.rows import checked_sort
    from publisher.index.strategy import search_children
    from publisher.queries.registry import filters_from

    catalog, path, params, container, entry = _container("search")
    base = common.base_url(app)
    offset = common.integer(params, "page[offset]", 0)
    if "page[cursor]" in params:  # Tiled's cursors are opaque; ours are offsets
        offset = common.integer(params, "page[cursor]", 0)
    limit = common.integer(params, "page[limit]", DEFAULT_PAGE, 0, MAX_PAGE)
    fields, omit, chosen = _fields(params), common.boolean(params, "omit_links"), _select_metadata(params)
    sort = ",".join(v for v in params.get("sort", []) if v)  # the tiled client repeats sort=KEY, one per key
    sort = {"_": "", "-_": "-"}.get(sort, sort)  # Tiled's natural order (what a dataset with inlined contents sends)
    checked_sort(sort)  # a 400 for a malformed sort, whether or not a search reads its keys ("--" too)
    queries, sources = filters_from(params), data_sources.wanted(params)
    if queries or sort.strip("-"):  # a plain page is read through the view (readable children, counted from
        queries = catalog.scoped(queries, children_of=entry)  # child_access): no filter, so no scan of them all

    def body() -> dict[str, Any]:
        count, page = search_children(catalog, path, container.count, queries, sort, offset, limit)
        return _page(f"{base}/search/{quote(path, safe='/')}", offset, limit, count,
                     [_sourced(_inlined(catalog, e, _resource(catalog, e, base, fields, omit, chosen), base), e, base, sources)
                      for e in page])

    return _answer(body, "search", catalog.release, path, sorted(params.items()), base)


def _page(here: str, offset: int, limit: int, count: int, data: list[dict[str, Any]]) -> dict[str, Any]:
    """One page of results with Tiled's pagination links (``page[limit]=0`` asks for the count
    alone, as the tiled client's ``len()`` does: no next page, which would be the same one)."""
    links = {
        "self": f"{here}?{'page[offset]=%d&' % offset if offset else ''}page[limit]={limit}",
        "first": f"{here}?page[limit]={limit}",
        "next": f"{here}?page[offset]={offset + limit}&page[limit]={limit}" if limit and offset + limit < count else None,
    }
    return {"data": data, "error": None, "links": links, "meta": {"count": count}}


def _select_metadata(params: dict[str, list[str]]) -> Any:
    """``select_metadata``: a JMESPath expression applied to each result's metadata (as Tiled does)."""
    from publisher.index.selection import Selection

    expression = common.one(params, "select_metadata")
    if expression is not None and not expression.strip():  # (Tiled's 400: an empty one selected everything here)
        raise BadRequest("select_metadata cannot be empty: give a JMESPath expression, e.g. select_metadata=sample.element")
    return Selection(expression) if expression else None


def search_deep() -> Response:
    """Tiled's ``/search-deep``: the descendants of a container at any depth (``max_depth``) that
    match every filter; ``id`` is a node's key and ``ancestors`` its path. Sorting is a 400, as in Tiled."""
    from publisher.index.strategy import search_deep as search_descendants
    from publisher.queries.registry import filters_from

    catalog, path, params, *_ = _container("search-deep")
    base = common.base_url(app)
    if common.one(params, "sort"):
        raise BadRequest("sorting is not supported for deep search")
    offset = common.integer(params, "page[offset]", 0)
    limit = common.integer(params, "page[limit]", DEFAULT_PAGE, 0, MAX_PAGE)
    max_depth = common.integer(params, "max_depth", 0, 1, 64) or None
    fields, omit, chosen = _fields(params), common.boolean(params, "omit_links"), _select_metadata(params)
    queries, sources = catalog.scoped(filters_from(params)), data_sources.wanted(params)

    def body() -> dict[str, Any]:
        count, page = search_descendants(catalog, path, queries, max_depth, offset, limit)
        return _page(f"{base}/search-deep/{quote(path, safe='/')}", offset, limit, count,
                     [_sourced(_inlined(catalog, e, _resource(catalog, e, base, fields, omit, chosen), base), e, base, sources)
                      for e in page])

    return _answer(body, "search-deep", catalog.release, path, sorted(params.items()), base)


def distinct_values() -> Response:
    """Tiled's ``/distinct``: distinct metadata values, structure families and specs of the
    container's children (after any ``filter[...]``), with counts when asked; with ``max_depth``
    (1..64, as search-deep) those of its descendants down to that depth."""
    from publisher.index.strategy import distinct_children
    from publisher.queries.registry import filters_from

    catalog, path, params, container, entry = _container("distinct")
    max_depth = common.integer(params, "max_depth", 0, 1, 64) or None  # ours: the descendants, as search-deep
    queries = catalog.scoped(filters_from(params), children_of=None if max_depth else entry)

    keys = [k for value in params.get("metadata", []) for k in [value] if k]
    options = common.boolean(params, "structure_families"), common.boolean(params, "specs"), common.boolean(params, "counts")
    def body() -> dict[str, Any]:
        return distinct_children(catalog, path, container.count, queries, keys, *options, max_depth=max_depth)

    return _answer(body, "distinct", catalog.release, path, sorted(params.items()))


def whoami() -> Response:
    """Tiled's ``/auth/whoami``: who the credentials speak for (the tiled client calls it to reuse
    a cached token); anonymous: a 401."""
    caller = auth.principal(common.EVENT.get(), common.current(), common.store())
    if caller.anonymous:
        from publisher.errors import Unauthorized

        raise Unauthorized("no credentials: send an API key or a token")
    body = {"type": "user" if caller.kind == "token" else "service", "uuid": None, "identities": [
        {"id": caller.name, "provider": "oidc" if caller.kind == "token" else "apikey"}], "roles": [], "api_keys": [], "sessions": []}
    return Response(200, "application/json", _json(body).decode(), {"Cache-Control": "no-store", "Vary": "Authorization"})


def openapi() -> Response:
    from .openapi import document

    doc = document(common.base_url(app))
    return _answer(lambda: doc, "openapi", __version__)


def docs() -> Response:
    """Swagger UI over openapi.json: a static page (no request header in it), assets served here."""
    from .openapi import PAGE, PAGE_POLICY

    return http.respond(app, PAGE.encode(), "text/html", http.etag_for("docs", __version__, PAGE),
                          headers={"Content-Security-Policy": PAGE_POLICY})


def docs_asset() -> Response:
    """One of the docs page's files, from the swagger-ui-bundle package (so the page works offline)."""
    from .openapi import asset, swagger_version

    name = common.node_path(app, f"{common.API}/docs/assets")
    found = asset(name)
    if found is None:
        raise NotFound(f"no docs asset {name!r}")
    body, media_type = found
    etag = http.etag_for("docs-asset", name, swagger_version(), __version__)
    headers = {"Cache-Control": "public, max-age=86400"}  # (the 304's too: a cache takes its headers, and kept the asset 30 s)
    return http.not_modified(app, etag, headers) or http.respond(app, body, media_type, etag, headers=headers)


app = common.make_app("metadata", {
    "/healthz": healthz, "/api/v1": about, "/api/v1/": about, "/api/v1/openapi.json": openapi, "/api/v1/docs": docs,
    "/api/v1/docs/assets/{path+}": docs_asset,
    "/api/v1/metadata/{path+}": metadata, "/api/v1/search/{path+}": search, "/api/v1/distinct/{path+}": distinct_values,
    "/api/v1/search-deep/{path+}": search_deep, "/api/v1/auth/whoami": whoami,
    "/api/v1/auth/credentials": lambda: credentials.credentials(app),
    "/": lambda: browse.index(app), "/ui/{path+}": lambda: browse.asset(app),
})


lambda_handler = common.entry_point(app)


__all__ = ["lambda_handler", "resource"]
