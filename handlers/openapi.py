"""The OpenAPI document, generated from the route table."""

from __future__ import annotations

from typing import Any

from publisher import __version__
from publisher.functions import ROUTES
from publisher.index.rows import SORT_PATTERN

from .grammar import BLOCK_PATTERN, MAX_INTS_TEXT, MAX_TEXT, SHAPE_PATTERN, SLICE_PATTERN

_PARAMS: dict[str, list[str]] = {
    "search": ["page[offset]", "page[limit]", "fields", "sort", "omit_links", "select_metadata", "include_data_sources"],
    "search-deep": ["page[offset]", "page[limit]", "fields", "max_depth", "omit_links", "select_metadata", "include_data_sources"],
    "metadata": ["fields", "omit_links", "select_metadata", "include_data_sources"],
    "distinct": ["metadata", "structure_families", "specs", "counts", "max_depth"],
    "array/full": ["slice", "expected_shape", "format", "filename", "rescale", "colormap", "scale", "max_size"],
    "array/block": ["block", "expected_shape", "format", "filename", "rescale", "colormap", "scale", "max_size"],
    "sparse/full": ["slice", "format", "filename", "rescale", "colormap", "scale", "max_size"],
    "sparse/block": ["block", "format", "filename"],
    "table/full": ["column", "slice", "format", "filename"],
    "table/partition": ["partition", "column", "slice", "format", "filename"],
    "container/full": ["field", "format", "filename"],
    "awkward/full": ["slice", "format", "filename"],
    "awkward/buffers": ["form_key", "format"],
    "column/metadata": [],
    "column/full": ["slice", "block", "expected_shape", "format", "filename"],
}
#: What each query parameter takes, where more precise than any string (what the handlers accept;
#: a fuzzer generates from these: tests/test_fuzz_api.py).
_SCHEMAS: dict[str, dict[str, Any]] = {
    "page[offset]": {"type": "integer", "minimum": 0}, "page[limit]": {"type": "integer", "minimum": 0, "maximum": 300},
    "max_depth": {"type": "integer", "minimum": 1, "maximum": 64}, "partition": {"type": "integer", "minimum": 0},
    **{flag: {"type": "boolean"} for flag in ("omit_links", "include_data_sources", "counts", "specs", "structure_families")},
    # "fields": handlers.common.FIELDS (added by document(), which only the metadata handler calls)
    "max_size": {"type": "integer", "minimum": 1},
    # exactly what the parsers take (tests/test_parsers_property.py holds each parser to its pattern)
    "slice": {"type": "string", "pattern": SLICE_PATTERN, "maxLength": MAX_TEXT,
              "description": "NumPy basic indexing per dimension, comma-separated: 5, -1, 0:10, ::2, 10:0:-1"},
    "block": {"type": "string", "pattern": BLOCK_PATTERN, "maxLength": MAX_INTS_TEXT, "description": "a chunk's index per dimension: 0,1,0"},
    "expected_shape": {"type": "string", "pattern": SHAPE_PATTERN, "maxLength": MAX_INTS_TEXT,
                       "description": "the answer's shape, or scalar: a 400 when it differs"},
    "sort": {"type": "string", "pattern": SORT_PATTERN,
             "description": "metadata keys, comma-separated, - for descending (Tiled's SortField); - alone: index order reversed"},
    "column": {"type": "string", "description": "a column of the table (repeat for several); empty: all"},
    "field": {"type": "string", "description": "a child of the container (repeat for several); empty: all"},
    "release": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$", "maxLength": 100,
                "description": "a release id (publish releases), for a pinned answer"},
}
#: Every status the API answers (4xx and 5xx carry a JSON ``detail``).
_RESPONSES = {"200": "OK", "206": "Partial content", "304": "Not modified", "307": "Too large for Lambda, or elsewhere: follow Location",
              "400": "Bad request", "401": "Credentials needed or refused", "403": "Not allowed", "404": "Not found",
              "405": "Method not allowed", "406": "Format not available", "413": "Answer or request too large", "414": "Request line and headers past API Gateway's 10,240 bytes", "431": "Headers past API Gateway's 10,240 bytes", "415": "Unsupported",
              "416": "Range not satisfiable", "422": "Source unreadable", "429": "Too many requests", "502": "Store unavailable",
              "503": "Try again later"}
_PATH_DESCRIPTION = {"docs/assets": "a file of the docs page (swagger-ui.css, swagger-ui-bundle.js, init.js, ...)"}
#: The structure family whose serializers answer each data route (its ``format`` values and media types).
_FAMILY = {"array/full": "array", "array/block": "array", "column/full": "array", "sparse/full": "sparse", "sparse/block": "sparse",
           "table/full": "table", "table/partition": "table", "container/full": "container", "awkward/full": "awkward",
           "awkward/buffers": "awkward"}

# -- response bodies (Tiled's models: tiled/server/schemas.py) -----------------------------------
_NULLABLE_OBJECT = {"type": "object", "nullable": True}
_ERROR = {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}},
          "description": "every 4xx and 5xx, as Tiled's (FastAPI's) HTTPException body"}
_RESOURCE = {"type": "object", "required": ["id", "attributes"], "properties": {
    "id": {"type": "string"},
    "attributes": {"type": "object", "properties": {
        "ancestors": {"type": "array", "items": {"type": "string"}},
        "structure_family": {"type": "string", "nullable": True, "enum": ["array", "awkward", "container", "sparse", "table", None]},
        "specs": {"type": "array", "nullable": True, "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "version": {"type": "string", "nullable": True}}}},
        "metadata": {"nullable": True},  # the node's (JSON), or {"selected": ...} with select_metadata
        "structure": _NULLABLE_OBJECT, "access_tags": {"type": "array", "nullable": True, "items": {"type": "string"}},
        "sorting": {"type": "array", "nullable": True, "items": {"type": "object"}},
        "data_sources": {"type": "array", "nullable": True, "items": {"type": "object"}}}},
    "links": {"type": "object", "nullable": True, "additionalProperties": {"type": "string"}},
    "meta": _NULLABLE_OBJECT}}
_ENVELOPE = {"type": "object", "required": ["data"], "properties": {"error": _NULLABLE_OBJECT, "links": _NULLABLE_OBJECT, "meta": _NULLABLE_OBJECT}}
_REF = {"$ref": "#/components/schemas/Resource"}
_ONE = {**_ENVELOPE, "properties": {**_ENVELOPE["properties"], "data": _REF}}
_PAGE = {**_ENVELOPE, "required": ["data", "links", "meta"], "properties": {
    **_ENVELOPE["properties"], "data": {"type": "array", "items": _REF},
    "links": {"type": "object", "required": ["self", "first", "next"], "properties": {
        "self": {"type": "string"}, "first": {"type": "string"}, "next": {"type": "string", "nullable": True}}},
    "meta": {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer", "minimum": 0}}}}}
_VALUES = {"type": "array", "nullable": True, "items": {"type": "object", "required": ["value", "count"], "properties": {
    "value": {}, "count": {"type": "integer", "nullable": True, "minimum": 0}}}}
#: Tiled's ``GetDistinctResponse`` (not in the ``data`` envelope: Tiled answers it bare).
_DISTINCT = {"type": "object", "required": ["metadata", "structure_families", "specs"], "properties": {
    "metadata": {"type": "object", "nullable": True, "additionalProperties": _VALUES}, "structure_families": _VALUES, "specs": _VALUES}}
_ABOUT = {"type": "object", "required": ["api_version", "formats", "aliases", "queries", "authentication", "links"], "properties": {
    "api_version": {"type": "integer"}, "library_version": {"type": "string"},
    "formats": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    "aliases": {"type": "object"}, "queries": {"type": "array", "items": {"type": "string"}},
    "authentication": {"type": "object"}, "links": {"type": "object"}, "meta": {"type": "object"}}}
#: JSON bodies of 200 answers, by route (the others: their media types, any body).
_BODIES: dict[str, dict[str, Any]] = {
    "/api/v1": _ABOUT, "/api/v1/": _ABOUT, "/healthz": {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": ["ok"]}, "release": {"type": "string"}}},
    "/api/v1/metadata/{path+}": _ONE, "/api/v1/column/metadata/{path+}": _ONE,
    "/api/v1/search/{path+}": _PAGE, "/api/v1/search-deep/{path+}": _PAGE, "/api/v1/distinct/{path+}": _DISTINCT,
    "/api/v1/openapi.json": {"type": "object", "required": ["openapi", "paths"]},
    "/api/v1/auth/whoami": {"type": "object", "required": ["type", "identities"]},
    "/api/v1/auth/credentials": {"type": "object"},
}
#: Media types of 200 answers that are not one family's serializers.
_MEDIA = {"/api/v1/docs": ["text/html"], "/": ["text/html"]}


def _ok(route_path: str, kind: str | None) -> dict[str, Any]:
    """The 200 answer of a route: its JSON body's schema, or the media types it may take."""
    from publisher import serializers

    if route_path in _BODIES:
        return {"application/json": {"schema": _BODIES[route_path]}}
    family = _FAMILY.get(kind or "")
    if family is not None:
        return {media: {"schema": {}} for media in serializers.formats().get(family, [])}
    if route_path in _MEDIA:
        return {media: {"schema": {}} for media in _MEDIA[route_path]}
    return {"*/*": {"schema": {}}}  # files of the browse and docs pages, Zarr keys: whatever they hold


def _responses(route_path: str, kind: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, text in _RESPONSES.items():
        if status == "200":
            out[status] = {"description": text, "content": _ok(route_path, kind)}
        elif status in ("206", "304"):
            out[status] = {"description": text}
        else:  # 307s say why in a detail too
            out[status] = {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return out


def _formats(kind: str | None) -> dict[str, Any]:
    """``format=``: a media type or an alias of the route's family (plug-ins' included), as registered."""
    from publisher import serializers

    family = _FAMILY.get(kind or "")
    if family is None:
        return {"type": "string"}
    names = [*serializers.formats().get(family, []), *(a for aliases in serializers.aliases().get(family, {}).values() for a in aliases)]
    return {"type": "string", "enum": sorted(set(names)),
            "description": f"a media type or alias of a {family} serializer (case-insensitive); else the Accept header decides"}


def _filters() -> list[dict[str, Any]]:
    """``filter[NAME][condition][FIELD]`` of every registered query (Tiled's encoding): JSON fields as
    JSON (``content``), flags as Tiled reads them, the rest as text. A query needs all its fields
    without a default (a 400 names the missing one: OpenAPI cannot say "these together")."""
    import dataclasses

    from publisher.queries.base import _FLAGS
    from publisher.queries.registry import registry

    out = []
    for name, cls in registry().items():
        for field in dataclasses.fields(cls):
            kind = field.metadata.get("kind")
            param: dict[str, Any] = {"name": f"filter[{name}][condition][{field.name}]", "in": "query", "required": False}
            if kind == "json":
                param["content"] = {"application/json": {"schema": {}}}
            elif kind == "flag":
                param["schema"] = {"type": "string", "enum": sorted(_FLAGS)}
            elif field.name == "operator":
                param["schema"] = {"type": "string", "enum": ["lt", "le", "gt", "ge"]}
            else:
                param["schema"] = {"type": "string"}
            out.append(param)
    return out


def document(base: str) -> dict[str, Any]:
    from .common import FIELDS

    schemas = {**_SCHEMAS, "fields": {"type": "array", "items": {"type": "string", "enum": list(FIELDS)}}}
    paths: dict[str, Any] = {}
    filters = _filters()
    for route in ROUTES:
        path = route.path.replace("{path+}", "{path}")
        kind = next((k for k in _PARAMS if f"/api/v1/{k}/" in route.path), None)
        pinnable = route.path.startswith("/api/v1/") and "/docs" not in route.path  # release=<id> (docs/serve.md)
        names = [*_PARAMS.get(kind or "", []), *(["release"] if pinnable else [])]
        parameters = [{"name": n, "in": "query", "required": False,
                       "schema": _formats(kind) if n == "format" else schemas.get(n, {"type": "string"})} for n in names]
        if kind in ("search", "search-deep", "distinct"):
            parameters += [{"$ref": f"#/components/parameters/{_key(f['name'])}"} for f in filters]
        if "{path}" in path:
            description = next((d for k, d in _PATH_DESCRIPTION.items() if f"/api/v1/{k}/" in route.path),
                               "a file of the browse page (app.js, app.css, ...)" if route.path.startswith("/ui/") else "node path; empty for the root")
            parameters.insert(0, {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}, "description": description})
        paths.setdefault(path, {})[route.method.lower()] = {
            "summary": f"{route.path} (Lambda: {route.module})",
            "parameters": parameters,
            "responses": _responses(route.path, kind),
        }
    # 3.0: the bundled Swagger UI (4.x) refuses to render a 3.1 document ("Unable to render this definition")
    return {"openapi": "3.0.3", "info": {"title": "Skyshelf (Tiled-compatible read API)", "version": __version__},
            "servers": [{"url": base.removesuffix("/api/v1")}], "paths": paths,
            "components": {"schemas": {"Error": _ERROR, "Resource": _RESOURCE}, "parameters": {_key(f["name"]): f for f in filters}}}


def _key(name: str) -> str:
    """A component's key for a parameter name (``filter[eq][condition][key]`` → ``filter.eq.key``)."""
    return name.replace("[condition]", "").replace("][", ".").replace("[", ".").rstrip("]")


# -- the docs page: Swagger UI from the swagger-ui-bundle package, nothing from elsewhere -----
#: Swagger UI's files the page loads (a Lambda package ships these, see publisher.deploy.package).
SWAGGER_FILES = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
                 "favicon-32x32.png": "image/png", "favicon-16x16.png": "image/png"}
#: Every URL is relative to the page (``.../api/v1/docs``): no request header is reflected, the
#: page works under any host, stage or proxy, and offline.
PAGE = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>Skyshelf API</title>"
    '<link rel=stylesheet href="docs/assets/swagger-ui.css"><link rel=icon type=image/png href="docs/assets/favicon-32x32.png">'
    '</head><body><div id=ui data-openapi="openapi.json"></div><script src="docs/assets/swagger-ui-bundle.js"></script>'
    '<script src="docs/assets/init.js"></script></body></html>'
)
#: No inline script (the page's Content-Security-Policy allows none); no validator badge (it calls out).
INIT = ('window.onload = () => { window.ui = SwaggerUIBundle({url: document.getElementById("ui").dataset.openapi, '
        'dom_id: "#ui", validatorUrl: null}); };\n')
PAGE_POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'"


def asset(name: str) -> tuple[bytes, str] | None:
    """(bytes, media type) of one file the docs page loads; None for any other name."""
    if name == "init.js":
        return INIT.encode(), "text/javascript"
    if name not in SWAGGER_FILES:
        return None
    from swagger_ui_bundle import swagger_ui_path  # imported on first use only (cold starts)

    return (swagger_ui_path / name).read_bytes(), SWAGGER_FILES[name]


def swagger_version() -> str:
    """The bundled Swagger UI's version (its folder's name): assets' ETags change with it."""
    from swagger_ui_bundle import swagger_ui_path

    return swagger_ui_path.name
