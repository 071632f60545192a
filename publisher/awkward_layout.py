"""How a published awkward array is stored and read back (docs/catalog.md): one Parquet file
written by ``ak.to_parquet``; shared by the writer (which publishes the form read back from the
file), the access layer and the serializers, so the three never disagree. awkward and pyarrow
are imported on first use.
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import Any


def from_parquet_bytes(data: bytes) -> Any:
    """The ``awkward.Array`` of a Parquet file written by ``ak.to_parquet`` (as ``ak.from_parquet`` reads it)."""
    import pyarrow.parquet as pq

    return from_arrow_table(pq.read_table(io.BytesIO(data)))


def to_parquet_bytes(array: Any) -> bytes:
    """``ak.to_parquet`` writes only to paths: through a temporary file."""
    import awkward as ak

    handle, name = tempfile.mkstemp(suffix=".parquet")
    os.close(handle)
    try:
        ak.to_parquet(array, name, compression="zstd")
        with open(name, "rb") as f:
            return f.read()
    finally:
        os.unlink(name)


def from_arrow_table(table: Any) -> Any:
    """``ak.from_arrow`` of the table in one chunk (each row group's form, where awkward would
    merge row groups into other node classes), nullable columns always as bit-masked options
    (``generate_bitmasks``: the form does not depend on whether a piece holds a null), without the ``UnmaskedArray`` wrappers Arrow's non-nullable fields come
    back in: they hold no buffers, the source had none, and the tiled client's form projection
    (tiled 0.2.20 ``project_form``) fails on one whose content it does not read. The schema's
    ``awkward_array_metadata`` applied first, as ``ak.from_parquet`` applies it (awkward's own
    step, not public API): without it a tuple came back a record of fields "0", "1"."""
    import awkward as ak
    from awkward._connect.pyarrow import convert_native_arrow_table_to_awkward

    def unwrap(layout: Any, continuation: Any, **_: Any) -> Any:
        return continuation().content if isinstance(layout, ak.contents.UnmaskedArray) else None

    native = convert_native_arrow_table_to_awkward(table.combine_chunks())
    return ak.transform(unwrap, ak.from_arrow(native, generate_bitmasks=True))
