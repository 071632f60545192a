"""The one route table: which Lambda function serves which path.

``publish serve`` dispatches with it, and the infrastructure (API Gateway routes and one
function per module) is generated from it. Paths use API Gateway's syntax: ``{path+}`` is
greedy and may be empty here (the node path; empty for the root).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    module: str  # handlers.<module> holds the function and its lambda_handler

    @property
    def regex(self) -> str:
        """For the resolver and the local server: ``{path+}`` also matches nothing (the root)."""
        pattern = re.escape(self.path).replace(r"/\{path\+\}", "(?:/.*)?")
        return pattern


ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", "metadata"),
    Route("GET", "/api/v1", "metadata"),
    Route("GET", "/api/v1/", "metadata"),
    Route("GET", "/api/v1/openapi.json", "metadata"),
    Route("GET", "/api/v1/docs", "metadata"),
    Route("GET", "/api/v1/docs/assets/{path+}", "metadata"),  # Swagger UI's files, from the package
    Route("GET", "/api/v1/metadata/{path+}", "metadata"),
    Route("GET", "/api/v1/search/{path+}", "metadata"),
    Route("GET", "/api/v1/distinct/{path+}", "metadata"),
    Route("GET", "/api/v1/search-deep/{path+}", "metadata"),
    Route("GET", "/api/v1/array/full/{path+}", "arrays"),
    Route("GET", "/api/v1/array/block/{path+}", "arrays"),
    Route("GET", "/api/v1/table/full/{path+}", "tables"),
    Route("GET", "/api/v1/table/partition/{path+}", "tables"),
    Route("GET", "/api/v1/container/full/{path+}", "tables"),
    # a table's columns as array children (metadata/<table>/<column> redirects to the first)
    Route("GET", "/api/v1/column/metadata/{path+}", "tables"),
    Route("GET", "/api/v1/column/full/{path+}", "tables"),
)

_COMPILED = [(re.compile(f"^{r.regex}$"), r) for r in ROUTES]


def route_for(method: str, path: str) -> Route | None:
    for regex, route in _COMPILED:
        if route.method == method and regex.match(path):
            return route
    return None


def modules() -> list[str]:
    return sorted({r.module for r in ROUTES})
