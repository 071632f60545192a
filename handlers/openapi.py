"""The OpenAPI document, generated from the route table."""

from __future__ import annotations

from typing import Any

from publisher import __version__

from publisher.functions import ROUTES

_PARAMS: dict[str, list[str]] = {
    "search": ["page[offset]", "page[limit]", "fields", "sort", "omit_links", "select_metadata", "include_data_sources"],
    "search-deep": ["page[offset]", "page[limit]", "fields", "max_depth", "omit_links", "select_metadata", "include_data_sources"],
    "metadata": ["fields", "omit_links", "include_data_sources"],
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
    "release": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$", "maxLength": 100,
                "description": "a release id (publish releases), for a pinned answer"},
}
#: Every status the API answers (4xx and 5xx carry a JSON ``detail``).
_RESPONSES = {"200": "OK", "206": "Partial content", "304": "Not modified", "307": "Too large for Lambda, or elsewhere: follow Location",
              "400": "Bad request", "401": "Credentials needed or refused", "403": "Not allowed", "404": "Not found",
              "405": "Method not allowed", "406": "Format not available", "413": "Answer or request too large", "414": "Request line and headers past API Gateway's 10,240 bytes", "415": "Unsupported",
              "416": "Range not satisfiable", "422": "Source unreadable", "429": "Too many requests", "502": "Store unavailable",
              "503": "Try again later"}
_PATH_DESCRIPTION = {"docs/assets": "a file of the docs page (swagger-ui.css, swagger-ui-bundle.js, init.js, ...)"}


def document(base: str) -> dict[str, Any]:
    from .common import FIELDS

    schemas = {**_SCHEMAS, "fields": {"type": "array", "items": {"type": "string", "enum": list(FIELDS)}}}
    paths: dict[str, Any] = {}
    for route in ROUTES:
        path = route.path.replace("{path+}", "{path}")
        kind = next((k for k in _PARAMS if f"/api/v1/{k}/" in route.path), None)
        pinnable = route.path.startswith("/api/v1/") and "/docs" not in route.path  # release=<id> (docs/serve.md)
        names = [*_PARAMS.get(kind or "", []), *(["release"] if pinnable else [])]
        parameters = [{"name": n, "in": "query", "required": False, "schema": schemas.get(n, {"type": "string"})} for n in names]
        if "{path}" in path:
            description = next((d for k, d in _PATH_DESCRIPTION.items() if f"/api/v1/{k}/" in route.path),
                               "a file of the browse page (app.js, app.css, ...)" if route.path.startswith("/ui/") else "node path; empty for the root")
            parameters.insert(0, {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}, "description": description})
        paths.setdefault(path, {})[route.method.lower()] = {
            "summary": f"{route.path} (Lambda: {route.module})",
            "parameters": parameters,
            "responses": {status: {"description": text} for status, text in _RESPONSES.items()},
        }
    # 3.0: the bundled Swagger UI (4.x) refuses to render a 3.1 document ("Unable to render this definition")
    return {"openapi": "3.0.3", "info": {"title": "Skyshelf (Tiled-compatible read API)", "version": __version__},
            "servers": [{"url": base.removesuffix("/api/v1")}], "paths": paths}


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
