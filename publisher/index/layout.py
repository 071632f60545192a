"""Where the index lives in a release (designed for a million nodes; no file grows with the catalog):

* ``index/nodes.parquet``: every entry, one row each (for DuckDB, pandas, :mod:`.client`);
* ``index/nodes/{shard}.json``: ``{path: entry}`` for the nodes whose ``sha1(path)`` starts
  with ``shard`` (``shard_digits`` hex digits, chosen so a shard holds ~``NODES_PER_SHARD``);
* ``index/children/{sha1(path)[:16]}/{page:05d}.json``: one page of a container's children,
  in order, as full entries, ``page_size`` per page;
* ``index/search/{sha1(path)[:16]}/``: for a container with many children, instead of pages:
  its children as JSON lines with their offsets, and its search columns (:mod:`.columns_write`).
"""

from __future__ import annotations

import hashlib
import math

NODES_PER_SHARD = 256
PAGE_SIZE = 500
INDEX_COLUMNS = (
    "path", "key", "parent", "family", "specs", "metadata", "structure", "data_url",
    "source_file", "source_path", "access_tags", "notes",
)
#: Index columns holding JSON text in the Parquet form.
JSON_COLUMNS = ("specs", "metadata", "structure", "access_tags", "notes")


def path_hash(path: str) -> str:
    return hashlib.sha1(path.encode("utf-8")).hexdigest()


def shard_digits_for(count: int) -> int:
    """Hex digits of the node shard names, so a shard holds about NODES_PER_SHARD entries."""
    return max(1, math.ceil(math.log(max(count, 1) / NODES_PER_SHARD, 16))) if count > NODES_PER_SHARD else 1


def node_shard_key(prefix: str, path: str, digits: int) -> str:
    return f"{prefix}/nodes/{path_hash(path)[:digits]}.json"


def children_page_key(prefix: str, path: str, page: int) -> str:
    return f"{prefix}/children/{path_hash(path)[:16]}/{page:05d}.json"


def search_prefix(prefix: str, path: str) -> str:
    """Where a large container's search columns are (:mod:`.columns_write`)."""
    return f"{prefix}/search/{path_hash(path)[:16]}"


#: Containers with at least this many children get search columns, by default; a build passes its
#: own (``SKYSHELF_SEARCH_MIN_CHILDREN``) and writes it into catalog.json's ``index_json``, where
#: readers find it.
SEARCH_MIN_CHILDREN = 1000
