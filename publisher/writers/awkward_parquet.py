"""Awkward arrays → one Parquet file written by ``ak.to_parquet`` (``ak.from_parquet`` and
``pyarrow.parquet`` read it directly), published with the form awkward reads back from it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from ..awkward_layout import from_arrow_table
from ..errors import SourceError
from ..nodes import AwkwardNode
from ..structures import AwkwardStructure
from .base import WriteContext, Written, discard, register


def _all_missing(layout: Any, **_: Any) -> Any:
    """An option node over an empty content (a field missing everywhere, as in scirpy's AIRR
    data) as a mask over placeholders: awkward 2.14's ``to_arrow`` indexes past the empty content
    (IndexError). The values (all None) are kept; an unknown type becomes ``?float64``."""
    import awkward as ak
    import numpy as np

    if not (layout.is_option and layout.length and layout.content.length == 0):
        return None
    n, content = layout.length, layout.content
    if isinstance(content, ak.contents.EmptyArray):
        content = ak.contents.NumpyArray(np.zeros(n, np.float64))
    elif isinstance(content, ak.contents.NumpyArray):
        content = ak.contents.NumpyArray(np.zeros((n, *content.inner_shape), content.dtype), parameters=content.parameters)
    elif isinstance(content, (ak.contents.ListOffsetArray, ak.contents.ListArray)):
        content = ak.contents.ListOffsetArray(ak.index.Index64(np.zeros(n + 1, np.int64)), content.content, parameters=content.parameters)
    else:  # regular dimensions, records...: one placeholder of the content's form, repeated
        # (packed: an index over it, as taking rows gives, cannot sit under a mask: "ByteMaskedArray cannot contain ... IndexedArray")
        content = ak.to_packed(content.form.length_one_array(highlevel=False)[np.zeros(n, np.int64)], highlevel=False)
    return ak.contents.ByteMaskedArray(ak.index.Index8(np.zeros(n, np.int8)), content, valid_when=True, parameters=layout.parameters)


def _lost_missing_rows(piece: Any) -> int | None:
    """The first row of a top-level optional record that Parquet would not keep as it is: awkward
    2.14 stores such an array's fields as the table's columns, without the rows' own mask, and
    reads back a present record whose fields are all missing as a missing row (``[{"x": 1},
    None, {"x": None}]`` came back ``[{"x": 1}, None, None]``). Found by the same conversion to
    Arrow and back; None when every row keeps its own presence (or the array is not such a record)."""
    import awkward as ak
    import numpy as np

    layout = piece.layout
    if not (layout.is_option and layout.content.is_record and layout.length):
        return None
    back = from_arrow_table(ak.to_arrow_table(piece, extensionarray=True))
    differ = np.flatnonzero(np.asarray(ak.is_none(piece, axis=0)) != np.asarray(ak.is_none(back, axis=0)))
    return int(differ[0]) if differ.size else None


@register("awkward")
class AwkwardWriter:
    """One ``prefix/data/<path>.parquet`` per awkward node."""

    def __init__(self, context: WriteContext) -> None:
        self.context = context

    def write(self, node: AwkwardNode, path: str, zarr_path: str, documents: dict[str, Any]) -> Written:
        import awkward as ak
        import pyarrow.parquet as pq

        pieces = node.pieces() if node.pieces is not None else iter([node.read()]) if node.read is not None else iter([])
        bytes_in = 0

        def storable() -> Iterator[Any]:
            nonlocal bytes_in
            rows = 0
            for piece in pieces:
                if (row := _lost_missing_rows(piece)) is not None:  # (refused, not published with other values)
                    raise SourceError(f"{node.source_path or path}: this awkward array cannot be stored as Parquet as it is: row "
                                      f"{rows + row} is a record whose fields are all missing, which Parquet's copy would read "
                                      "back as a missing row (a top-level optional record)")
                rows += len(piece)
                bytes_in += int(piece.nbytes)
                yield ak.transform(_all_missing, piece)

        key = f"{self.context.prefix}/data/{path}.parquet"
        with tempfile.TemporaryDirectory() as folder:
            local = os.path.join(folder, "data.parquet")
            try:  # one row group per piece: memory holds one piece, not the array
                ak.to_parquet_row_groups(storable(), local, compression="zstd")
            except (TypeError, ValueError, NotImplementedError, IndexError) as exc:
                raise SourceError(f"{node.source_path or path}: this awkward array cannot be stored as Parquet: {exc}") from exc
            try:
                with open(local, "rb") as source, self.context.store.open_write(key) as target:
                    shutil.copyfileobj(source, target, 8 * 2**20)
            except BaseException:  # (a copy cut short: not left in the release)
                discard(self.context.store, [key])
                raise
            parquet = pq.ParquetFile(local)
            # the form the server will produce (not the source's): one row group has the file's schema
            first = parquet.read_row_group(0) if parquet.num_row_groups else parquet.read()
            form, _, _ = ak.to_buffers(from_arrow_table(first))
            length = parquet.metadata.num_rows
        return Written(AwkwardStructure(length=length, form=form.to_dict()), key, bytes_in)
