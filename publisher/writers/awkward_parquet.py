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
        content = content.form.length_one_array(highlevel=False)[np.zeros(n, np.int64)]
    return ak.contents.ByteMaskedArray(ak.index.Index8(np.zeros(n, np.int8)), content, valid_when=True, parameters=layout.parameters)


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
            for piece in pieces:
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
