"""One error tree for Skyshelf.

Each error subclasses a builtin as well, so callers may catch either (as zarr does).
``http_status`` is read once, at the handler edge, to map errors to HTTP responses.
"""

from __future__ import annotations


class SkyshelfError(Exception):
    """Base of every error Skyshelf raises on purpose."""

    http_status = 500


class ConfigError(SkyshelfError, ValueError):
    """pipeline.yml is malformed; the message names the file, line and field."""

    http_status = 400


class RuleError(SkyshelfError, ValueError):
    """A pipeline rule that does not fit the node it matched (e.g. ``table: true`` on a group of unequal columns)."""

    http_status = 400


class UnsupportedError(SkyshelfError, NotImplementedError):
    """A known limitation: a format, dtype, filter or link that cannot be converted.

    Nodes that raise this are skipped with the reason, never counted as failures.
    """

    http_status = 415


class SourceError(SkyshelfError, OSError):
    """A source file is corrupt or unreadable."""

    http_status = 422


class BadRequest(SkyshelfError, ValueError):
    """A request the server understood but cannot answer as asked: a bad slice, block or parameter."""

    http_status = 400


class NotAcceptable(SkyshelfError, ValueError):
    """No serializer for the requested format and this structure family."""

    http_status = 406


class NotFound(SkyshelfError, KeyError):
    """No node, release or object at that path."""

    http_status = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "not found"


class Unauthorized(SkyshelfError, PermissionError):
    """Credentials are missing where a catalog needs them, or are bad: unknown, expired, revoked
    or forged. The message says which, never echoing a secret."""

    http_status = 401


class StoreError(SkyshelfError, OSError):
    """The output store cannot be read or written."""

    http_status = 502


class DamagedCatalog(StoreError):
    """The store's ``catalog.json`` is there but is no catalog (damaged, hand-edited): gc and
    builds decide nothing on it; the releases can still be listed, and a rollback mends it."""


class StoreUnavailable(StoreError):
    """The store cannot be reached, or kept failing (throttling, 5xx, dropped connections) after
    its client's retries: a passing fault, so try again later (HTTP 503 with ``Retry-After``)."""

    http_status = 503


class BuildFailed(SkyshelfError, RuntimeError):
    """A build had failures and, with ``on_error: fail``, published nothing."""


class NoRoom(SkyshelfError, OSError):
    """A disk the build writes to is full: its temporary folder (``TMPDIR``: the plan, the node
    table and the manifests, ~2 KB a node) or a local store's. Nothing was switched."""


class WorkerRefused(ConfigError):
    """A cluster worker that may not convert for this build (another Skyshelf, a reader missing, the
    sources or the store out of its sight): the build stops, naming it, whatever task met it (a
    slab task inside an item's conversion too: not that item's failure)."""


class ClusterLost(SkyshelfError, RuntimeError):
    """A build on a Dask cluster lost its scheduler: nothing was switched; the items it finished are
    kept in its journal for the next build."""
