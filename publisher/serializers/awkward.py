"""Awkward serializers, as Tiled's ``awkward/full`` and ``awkward/buffers`` answer: a zip of
buffers, JSON, Arrow IPC file, Parquet. In: an ``awkward.Array`` (the zip also takes a
``{form_key}-{attribute}`` → buffer mapping, ``awkward/buffers``' selection)."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from .base import register

ZIP = "application/zip"


@register("awkward", ZIP, ("zip",), ".zip")
def to_zip(data: Any, **_: Any) -> bytes:
    """One uncompressed member per buffer named ``{form_key}-{attribute}``, raw bytes (what the
    tiled client's ``from_zipped_buffers`` reads)."""
    if not isinstance(data, dict):
        import awkward as ak

        data = ak.to_buffers(data)[2]
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, buffer in data.items():
            archive.writestr(name, memoryview(buffer).cast("B") if not isinstance(buffer, bytes) else buffer)
    return sink.getvalue()


@register("awkward", "application/json", ("json",), ".json")
def to_json(array: Any, **_: Any) -> bytes:
    """The array as JSON values (non-finite floats as the strings ``NaN``, ``Infinity``, ``-Infinity``;
    byte strings as text, UTF-8 with replacement, as the array and table answers give them:
    awkward's own JSON has no way for bytes, and the route answered a 500)."""
    import awkward as ak

    return ak.to_json(array, nan_string="NaN", posinf_string="Infinity", neginf_string="-Infinity",
                      convert_bytes=lambda b: b.decode("utf-8", "replace")).encode()


@register("awkward", "application/vnd.apache.arrow.file", ("arrow", "feather"), ".arrow")
def to_arrow(array: Any, **_: Any) -> bytes:
    """``ak.to_arrow_table`` (awkward's extension types: ``ak.from_arrow`` round-trips it)."""
    import awkward as ak

    from .table import to_arrow as table_to_arrow

    return table_to_arrow(ak.to_arrow_table(array))


@register("awkward", "application/x-parquet", ("parquet",), ".parquet")
def to_parquet(array: Any, **_: Any) -> bytes:
    """``ak.to_parquet`` (``ak.from_parquet`` and pyarrow read it), as the store holds it."""
    from ..awkward_layout import to_parquet_bytes

    return to_parquet_bytes(array)
