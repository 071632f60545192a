"""``/api/v1/zarr/v3/{path}``: a node's Zarr hierarchy for direct readers who must sign in, in the
spirit of Tiled's zarr views. ``xarray.open_zarr(url, storage_options={"headers": ...})`` and
``zarr.open_group`` read a private node through it with an API key or token.

The route never sends data: the node is resolved through the caller's view (hidden answers as
missing), the requested key is checked against the node's hierarchy (its consolidated metadata),
and an existing key is a 307 to a short-lived presigned URL of the object (``publish serve``: a
signed ``/files/`` URL). Keys that are not in the hierarchy are answered 404 here: zarr probes
absent keys when it opens a store, and S3 answers a presigned URL of a missing key with 403
when the signer cannot list, which makes zarr give up. Standard library only.
"""

from __future__ import annotations

import json
import math
import threading

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from publisher.auth.view import View
from publisher.errors import NotFound
from publisher.formats import Entry

from . import common, http

PREFIX = f"{common.API}/zarr/v3"
#: Keys a Zarr reader asks a node itself for (v3's metadata, v2's probes, a 0-d array's chunk).
_OWN = {"zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata", "c"}
#: Seconds a redirect's URL may be used: enough for zarr's reads of one key, no more.
SECONDS = 300

_lock = threading.Lock()
_hierarchies: dict[tuple[str, str], dict[str, dict]] = {}


def serve(app: APIGatewayHttpResolver) -> Response:
    """A 307 to the object behind one key of a node's Zarr hierarchy (the bare node: its ``zarr.json``)."""
    parts = [p for p in common.node_path(app, PREFIX).split("/") if p]
    view = common.catalog()
    entry, rest = _deepest(view, parts)
    if not _is_zarr(entry):
        if rest and rest[0] not in _OWN:  # a name below a node that has none: missing, as the view says
            raise NotFound(f"no node at path {'/'.join([*parts[: len(parts) - len(rest)], rest[0]])!r}")
        what = {"table": "a table", "sparse": "a sparse array (Parquet blocks)", "awkward": "an awkward array (Parquet)"}.get(
            entry.family, f"a {entry.family} without data of its own (a folder)")
        route = entry.family if entry.family in ("table", "sparse", "awkward") else "container"
        raise NotFound(f"{entry.path!r} is {what}: only Zarr nodes (arrays and the groups of files) are served here; "
                       f"read it through {common.API}/{route}/full/{entry.path}")
    key = "/".join(rest) or "zarr.json"
    if not _exists(_hierarchy(entry), key):
        raise NotFound(f"no key {key!r} in the Zarr hierarchy of {entry.path!r}")
    location = http._location(f"{entry.data_url}/{key}", app, None)
    return Response(307, "application/json", json.dumps({"detail": "follow Location (a short-lived URL of the object)"}),
                    {"Location": location, "Cache-Control": "private, no-store", "Vary": "Authorization"})


def _deepest(view: View, parts: list[str]) -> tuple[Entry, list[str]]:
    """The deepest node along ``parts`` the caller may read, and the parts below it. A hidden
    node is skipped exactly as a missing one is, so the answer cannot tell them apart."""
    for depth in range(len(parts), -1, -1):
        try:
            return view.entry("/".join(parts[:depth])), parts[depth:]
        except NotFound:
            continue
    raise NotFound("no node at path ''")  # the root is always there


def _is_zarr(entry: Entry) -> bool:
    return entry.family in ("array", "container") and bool(entry.data_url) and ".zarr" in (entry.data_url or "")


def _hierarchy(entry: Entry) -> dict[str, dict]:
    """Node path (relative, "" for the node) → its Zarr metadata, from the node's ``zarr.json``
    (a group's carries its consolidated metadata: the build writes it). Objects are immutable
    under a release's keys, so each is read once per process."""
    store = common.store()
    cache_key = (store.url, entry.data_url or "")
    with _lock:
        found = _hierarchies.get(cache_key)
    if found is None:
        document = json.loads(store.read_bytes(f"{entry.data_url}/zarr.json"))
        found = {"": document}
        if document.get("node_type") == "group":
            found.update((document.get("consolidated_metadata") or {}).get("metadata") or {})
        with _lock:
            if len(_hierarchies) >= 1024:
                _hierarchies.clear()
            _hierarchies[cache_key] = found
    return found


def _exists(nodes: dict[str, dict], key: str) -> bool:
    """Whether ``key`` names a metadata document of a node or a chunk inside an array's grid."""
    parts = key.split("/")
    if parts[-1] == "zarr.json":
        return "/".join(parts[:-1]) in nodes
    for depth in range(len(parts) - 1, -1, -1):
        meta = nodes.get("/".join(parts[:depth]))
        if meta is not None:
            return meta.get("node_type") == "array" and _in_grid(meta, parts[depth:])
    return False


def _in_grid(meta: dict, rest: list[str]) -> bool:
    """Whether ``rest`` is the key of a chunk (a shard, when sharded) of this array's grid."""
    shape = meta.get("shape") or []
    chunks = ((meta.get("chunk_grid") or {}).get("configuration") or {}).get("chunk_shape") or shape
    encoding = meta.get("chunk_key_encoding") or {"name": "default"}
    separator = (encoding.get("configuration") or {}).get("separator", "/" if encoding.get("name") == "default" else ".")
    text = "/".join(rest)
    if encoding.get("name") == "default":
        if not text.startswith("c"):
            return False
        text = text[1:].removeprefix(separator) if shape else text[1:]
    if not shape:
        return text == ("" if encoding.get("name") == "default" else "0")
    indices = text.split(separator)
    if len(indices) != len(shape) or not all(i.isdigit() for i in indices):
        return False
    return all(int(i) < max(math.ceil(n / c), 1) if c else False for i, n, c in zip(indices, shape, chunks))
