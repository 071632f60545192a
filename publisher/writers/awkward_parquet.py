"""Awkward arrays → one Parquet file written by ``ak.to_parquet`` (``ak.from_parquet`` and
``pyarrow.parquet`` read it directly), published with the form awkward reads back from it."""

from __future__ import annotations

from typing import Any

from ..access.awkward import from_parquet_bytes, to_parquet_bytes
from ..errors import SourceError
from ..nodes import AwkwardNode
from ..structures import AwkwardStructure
from .base import WriteContext, Written, register


@register("awkward")
class AwkwardWriter:
    """One ``prefix/data/<path>.parquet`` per awkward node."""

    def __init__(self, context: WriteContext) -> None:
        self.context = context

    def write(self, node: AwkwardNode, path: str, zarr_path: str, documents: dict[str, Any]) -> Written:
        import awkward as ak

        assert node.read is not None
        array = node.read()
        try:
            data = to_parquet_bytes(array)
        except (TypeError, ValueError, NotImplementedError) as exc:
            raise SourceError(f"{node.source_path or path}: awkward array of type {array.type} cannot be stored as Parquet: {exc}") from exc
        key = f"{self.context.prefix}/data/{path}.parquet"
        self.context.store.write_bytes(key, data)
        stored = from_parquet_bytes(data)  # the form the server will produce, not the source's
        form, _, _ = ak.to_buffers(stored)
        return Written(AwkwardStructure(length=len(stored), form=form.to_dict()), key, int(array.nbytes))
