"""Tables as newline-delimited JSON (``application/x-ndjson``, ``format=ndjson``)."""

from __future__ import annotations

import json
from typing import Any

from publisher.serializers import Serializer


def to_ndjson(table: Any, **_: Any) -> bytes:
    """One JSON object per row; ``table`` is a pyarrow Table, as for every table serializer."""
    return b"".join(json.dumps(row, default=str).encode() + b"\n" for row in table.to_pylist())


ndjson = Serializer("table", "application/x-ndjson", to_ndjson, aliases=("ndjson",), extension=".ndjson")
