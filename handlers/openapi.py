"""The OpenAPI document, generated from the route table."""

from __future__ import annotations

from typing import Any

from publisher import __version__

from .routes import ROUTES

_PARAMS: dict[str, list[str]] = {
    "search": ["page[offset]", "page[limit]", "fields", "sort", "omit_links", "select_metadata"],
    "search-deep": ["page[offset]", "page[limit]", "fields", "max_depth", "omit_links", "select_metadata"],
    "metadata": ["fields", "omit_links"],
    "distinct": ["metadata", "structure_families", "specs", "counts"],
    "array/full": ["slice", "expected_shape", "format", "filename", "rescale", "colormap", "max_size"],
    "array/block": ["block", "expected_shape", "format", "filename", "rescale", "colormap", "max_size"],
    "table/full": ["column", "format", "filename"],
    "table/partition": ["partition", "column", "format", "filename"],
    "container/full": ["field", "format", "filename"],
    "column/metadata": [],
    "column/full": ["slice", "block", "expected_shape", "format", "filename"],
}


def document(base: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in ROUTES:
        path = route.path.replace("{path+}", "{path}")
        kind = next((k for k in _PARAMS if f"/api/v1/{k}/" in route.path), None)
        parameters = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in _PARAMS.get(kind or "", [])]
        if "{path}" in path:
            parameters.insert(0, {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}, "description": "node path; empty for the root"})
        paths.setdefault(path, {})[route.method.lower()] = {
            "summary": f"{route.path} (Lambda: {route.module})",
            "parameters": parameters,
            "responses": {"200": {"description": "OK"}, "304": {"description": "Not modified"}, "307": {"description": "Too large for Lambda: follow Location"},
                          "400": {"description": "Bad request"}, "404": {"description": "Not found"}, "406": {"description": "Format not available"}},
        }
    return {"openapi": "3.1.0", "info": {"title": "Skyshelf (Tiled-compatible read API)", "version": __version__},
            "servers": [{"url": base.removesuffix("/api/v1")}], "paths": paths}
