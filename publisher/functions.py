"""The one table of Lambda functions and their routes: which function serves which path, its
memory and timeout, and the distributions its package ships.

``publish serve`` dispatches with it, the handlers register their routes from it, the packager
builds one zip per function from it, the CloudFormation template makes one function and one
API Gateway route per row, and the pipeline config's ``deploy.memory`` names its functions.
Paths use API Gateway's syntax: ``{path+}`` is greedy and may be empty here (the node path;
empty for the root). Standard library only: the handlers import it at cold start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    module: str  # handlers.<module> holds the function and its lambda_handler
    #: Tiled's scope a caller needs (``read:metadata`` or ``read:data``); None: anyone (the page, about, docs)
    scope: str | None = None

    @property
    def regex(self) -> str:
        """For the resolver and the local server: ``{path+}`` also matches nothing (the root)."""
        return re.escape(self.path).replace(r"/\{path\+\}", "(?:/.*)?")


@dataclass(frozen=True)
class Function:
    """One Lambda function: ``handlers.<name>.lambda_handler``."""

    name: str
    #: MB; search columns and array chunks want room (1,769 MB is one full vCPU).
    memory: int
    #: Distributions its package ships (their own dependencies follow); boto3 is the runtime's.
    requirements: tuple[str, ...]
    #: Unzipped size aimed at (the report notes a package past it); None: only Lambda's limit.
    target_bytes: int | None = None
    #: Seconds: API Gateway's integration limit is 30 s.
    timeout: int = 29
    #: Its S3 client (``SKYSHELF_S3_BACKEND``): obstore (shipped in ``requirements``) costs a cold
    #: start ~15 ms against the runtime's boto3 ~220 ms, but 13.5 MiB (docs/deploy.md).
    s3_backend: str = "obstore"

    @property
    def handler(self) -> str:
        return f"handlers.{self.name}.lambda_handler"

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(r for r in ROUTES if r.module == self.name)


FUNCTIONS: tuple[Function, ...] = (
    Function("metadata", 1024, ("aws-lambda-powertools", "numpy", "zstandard", "google-re2", "pyjwt", "cryptography"),  # RE2: search patterns in linear time
             # pyjwt + cryptography (Bearer tokens) take it from 58 to 76 MiB; obstore would add 14 more
             target_bytes=80 * 2**20, s3_backend="boto3"),
    Function("arrays", 1769, ("aws-lambda-powertools", "numpy", "numcodecs", "zstandard", "pillow", "tifffile", "obstore", "pyjwt", "cryptography"),
             target_bytes=80 * 2**20),
    Function("tables", 1769, ("aws-lambda-powertools", "numpy", "numcodecs", "pyarrow", "zstandard", "openpyxl", "h5py", "obstore", "pyjwt",
                              "cryptography", "awkward")),  # awkward: the awkward routes (docs/deploy.md: its size)
)
BY_NAME = {f.name: f for f in FUNCTIONS}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", "metadata"),
    Route("GET", "/", "metadata"),  # the browse page (index.html), from the current release (handlers/browse.py)
    Route("GET", "/ui/{path+}", "metadata"),  # its scripts and styles
    Route("GET", "/api/v1", "metadata"),
    Route("GET", "/api/v1/", "metadata"),
    Route("GET", "/api/v1/openapi.json", "metadata"),
    Route("GET", "/api/v1/docs", "metadata"),
    Route("GET", "/api/v1/docs/assets/{path+}", "metadata"),  # Swagger UI's files, from the package
    Route("GET", "/api/v1/metadata/{path+}", "metadata", "read:metadata"),
    Route("GET", "/api/v1/search/{path+}", "metadata", "read:metadata"),
    Route("GET", "/api/v1/distinct/{path+}", "metadata", "read:metadata"),
    Route("GET", "/api/v1/search-deep/{path+}", "metadata", "read:metadata"),
    Route("GET", "/api/v1/auth/whoami", "metadata"),  # the tiled client checks its cached tokens here
    Route("GET", "/api/v1/auth/credentials", "metadata", "read:data"),  # scoped S3 credentials (handlers/credentials.py)
    Route("GET", "/api/v1/array/full/{path+}", "arrays", "read:data"),
    Route("GET", "/api/v1/array/block/{path+}", "arrays", "read:data"),
    # a node's Zarr hierarchy, each key a 307 to a short-lived URL of its object (handlers/zarr.py)
    Route("GET", "/api/v1/zarr/v3/{path+}", "arrays", "read:data"),
    # sparse arrays: Arrow/Parquet COO triplets need pyarrow, which only the tables function ships
    # (handlers/sparse.py); array/full and array/block on a sparse node answer a 307 to these
    Route("GET", "/api/v1/sparse/full/{path+}", "tables", "read:data"),
    Route("GET", "/api/v1/sparse/block/{path+}", "tables", "read:data"),
    Route("GET", "/api/v1/table/full/{path+}", "tables", "read:data"),
    Route("GET", "/api/v1/table/partition/{path+}", "tables", "read:data"),
    Route("POST", "/api/v1/table/partition/{path+}", "tables", "read:data"),  # (the client's, for columns past a URL's length)
    Route("GET", "/api/v1/container/full/{path+}", "tables", "read:data"),
    Route("POST", "/api/v1/container/full/{path+}", "tables", "read:data"),  # (and for fields)
    # a table's columns as array children (metadata/<table>/<column> redirects to the first)
    Route("GET", "/api/v1/column/metadata/{path+}", "tables", "read:metadata"),
    Route("GET", "/api/v1/column/full/{path+}", "tables", "read:data"),
    # awkward arrays (handlers/awkward.py): the tiled client POSTs the form keys it needs
    Route("POST", "/api/v1/awkward/buffers/{path+}", "tables", "read:data"),
    Route("GET", "/api/v1/awkward/buffers/{path+}", "tables", "read:data"),
    Route("GET", "/api/v1/awkward/full/{path+}", "tables", "read:data"),
)

_COMPILED = [(re.compile(f"^{r.regex}$"), r) for r in ROUTES]


def route_for(method: str, path: str) -> Route | None:
    for regex, route in _COMPILED:
        if route.method == method and regex.match(path):
            return route
    return None


def allowed_methods(path: str) -> list[str]:
    """The methods some route takes at ``path`` (HEAD wherever GET is): the ``Allow`` of a 405,
    empty when no route has the path (a 404)."""
    methods = {route.method for regex, route in _COMPILED if regex.match(path)}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def method_not_allowed(method: str, path: str, allowed: list[str]) -> str:
    """The ``detail`` of a 405."""
    return f"{path} does not take {method}; it takes {', '.join(allowed)}"


def event_path(event: dict[str, Any]) -> str:
    """The path of a payload-v2 event as the resolver routes it: ``rawPath`` without a named
    stage's prefix (Powertools' ``APIGatewayProxyEventV2.path``). Scopes and metrics looked up by
    ``rawPath`` found no route under a stage (``/prod/api/v1/...``): a metadata-only key read data."""
    raw = str(event.get("rawPath") or "/")
    stage = (event.get("requestContext") or {}).get("stage") or "$default"
    # exactly as Powertools cuts it, prefix or not (a custom domain's path has none): whatever it
    # routes to is the route whose scope is checked
    return raw[len(stage) + 1:] if stage != "$default" else raw


def scope_for(method: str, path: str) -> str | None:
    """The scope a request needs (its route's), None for routes anyone may call and unknown paths."""
    route = route_for(method, path)
    return route.scope if route else None


def modules() -> list[str]:
    return sorted(BY_NAME)
