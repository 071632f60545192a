"""A reader of ``.kv`` files (``key = value`` lines, ``#`` comments) into a two-column table."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from publisher.nodes import Node, TableNode
from publisher.readers import Reader


class KeyValueReader(Reader):
    name = "kv"
    extensions = (".kv",)
    magic = (b"#kv\n",)
    requires = ("pyarrow",)  # a missing one fails the file with "install pyarrow to read kv files"

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        import pyarrow as pa

        pairs = [line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#")]
        table = pa.table({"key": [k.strip() for k, _ in pairs], "value": [v.strip() for _, v in pairs]})
        yield TableNode(key=key, metadata={"format": "kv"}, schema=table.schema, batches=lambda: iter(table.to_batches()),
                        num_rows=table.num_rows)
