"""Excel workbooks (.xlsx) → a table per sheet (one sheet: the table itself)."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SourceError
from ..nodes import ContainerNode, Node, TableNode
from .base import Reader, register_reader
from .excel_cells import lost_cells
from .tables import as_text, unique_names


def _table(frame: Any, key: str, sheet: str) -> TableNode:
    """The sheet as a table. A column whose cells mix numbers and text (a note under a column of
    counts, common in workbooks) is published as text, with a warning naming it: Arrow took it
    for numbers from its first cells and failed the whole workbook ("Could not convert 'note'")."""
    import pyarrow as pa

    frame.columns = unique_names([str(c) for c in frame.columns])
    mixed = []
    for name in frame.columns:
        if frame[name].dtype == object:
            try:
                pa.array(frame[name], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                frame[name] = frame[name].map(as_text)
                mixed.append(name)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    node = TableNode(key=key, metadata={"sheet": sheet}, schema=table.schema, batches=lambda: iter(table.to_batches()), num_rows=table.num_rows)
    if mixed:
        node.warn(f"sheet {sheet!r}: column{'s' if len(mixed) > 1 else ''} {', '.join(map(repr, mixed))} "
                  "mix numbers and text: published as text")
    return node


@register_reader
class ExcelReader(Reader):
    name = "excel"
    requires = ("pandas", "openpyxl")
    extensions = (".xlsx", ".xlsm")
    magic = (b"PK\x03\x04",)

    @classmethod
    def claims(cls, path: Path, head: bytes) -> bool:
        try:
            with zipfile.ZipFile(path) as z:
                return "xl/workbook.xml" in z.namelist()
        except zipfile.BadZipFile:
            return False

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        import pandas as pd

        try:
            sheets = pd.read_excel(path, sheet_name=None, engine="openpyxl")
        except Exception as exc:
            raise SourceError(f"{path}: not a readable Excel workbook: {exc}") from exc
        lost = lost_cells(str(path))
        tables = []
        for label, frame in sheets.items():
            name = str(label)
            table = _table(frame, key if len(sheets) == 1 else name, name)
            for message in lost[name].warnings(name) if name in lost else ():
                table.warn(message)
            tables.append(table)
        if len(tables) == 1:
            yield tables[0]
            return
        yield ContainerNode(key=key, metadata={"sheets": list(map(str, sheets))}, children=tables)
