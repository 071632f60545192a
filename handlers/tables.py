"""Tables and whole containers (one Lambda): ``table/full``, ``table/partition``, ``container/full``.

pyarrow is imported on first use.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from publisher.access.tables import PublishedTable
from publisher.errors import BadRequest

from . import common
from .data import answer


def _table(path: str) -> tuple[Any, PublishedTable]:
    catalog = common.catalog()
    entry = catalog.node(path)
    if entry["family"] != "table":
        raise BadRequest(f"{path!r} is a {entry['family']}, not a table")
    return catalog, PublishedTable(common.store(), entry["data_url"], entry["structure"])


def _columns(params: dict[str, list[str]]) -> list[str] | None:
    return [c for value in params.get("column", []) for c in [value] if c] or None


def full() -> Response:
    path = common.node_path(app, f"{common.API}/table/full")
    params = common.query(app)
    catalog, table = _table(path)
    columns = _columns(params)
    table._check_columns(columns)
    return answer(app, "table", "application/vnd.apache.arrow.file", catalog.release, path, params, lambda: table.read(columns))


def partition() -> Response:
    path = common.node_path(app, f"{common.API}/table/partition")
    params = common.query(app)
    catalog, table = _table(path)
    if "partition" not in params:
        raise BadRequest("partition=N is required")
    index = common.integer(params, "partition", 0, 0)
    columns = _columns(params)
    return answer(app, "table", "application/vnd.apache.arrow.file", catalog.release, path, params, lambda: table.partition(index, columns))


def container_full() -> Response:
    """A container's whole subtree as JSON: arrays as nested lists, tables as ``{column: values}``."""
    import json

    from publisher.access.arrays import published_array
    from publisher.serializers.array import _jsonable
    from publisher.serializers.table import to_json as table_json

    path = common.node_path(app, f"{common.API}/container/full")
    params = common.query(app)
    catalog = common.catalog()
    entry = catalog.node(path)
    if entry["family"] != "container":
        raise BadRequest(f"{path!r} is a {entry['family']}, not a container")
    fmt = common.one(params, "format") or "application/json"
    if fmt not in ("json", "application/json"):
        raise BadRequest(f"container/full is served as JSON only, not {fmt!r}")

    def walk(node: dict[str, Any]) -> Any:
        if node["family"] == "container":
            return {child["key"]: walk(child) for child in catalog.children(node["path"])}
        if node["family"] == "array":
            return _jsonable(published_array(common.store(), node["data_url"]).read())
        t = PublishedTable(common.store(), node["data_url"], node["structure"]).read()
        return json.loads(table_json(t))

    etag = common.etag_for("container", catalog.release, path)
    cached = common.not_modified(app, etag)
    if cached is not None:
        return cached
    body = json.dumps(walk(entry), separators=(",", ":"), default=str).encode()
    return common.respond(app, body, "application/json", etag, redirect_ext=".json")


app = common.make_app("tables", {
    "/api/v1/table/full/{path+}": full, "/api/v1/table/partition/{path+}": partition, "/api/v1/container/full/{path+}": container_full,
})


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
