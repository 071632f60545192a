"""The build's node tree takes index rows as items' records hold them, and a row of another shape
(optional columns left out) as an entry made from it would give it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from publisher.build.publish import Tree
from publisher.config import load_pipeline
from publisher.formats import BuildReport, Entry
from publisher.structures import ContainerStructure

from .conftest import write_pipeline


def _rows(tree: Tree) -> list[dict[str, Any]]:
    tree.count_folders()
    return list(tree.ordered().ordered())


def test_rows_and_entries_make_the_same_tree(tmp_path: Path) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "x"}]}))
    entries = [Entry("", "", "container", [], {"name": "demo"}, ContainerStructure(0), None, None, None),
               Entry("a", "a", "array", ["s"], {"units": "m"}, {"data_type": "<u2", "shape": [2], "chunks": [[2]], "dims": None},
                     "releases/r/data/a.zarr", "a.tif", None, ["public"], {"k": 1})]
    by_entry, by_row, by_short_row = (Tree(pipeline, BuildReport("r", "s")) for _ in range(3))
    for entry in entries:
        by_entry.add(entry)
        by_row.add_row(entry.to_json())
        short = {k: v for k, v in entry.to_json().items() if k not in ("parent", "notes")}  # (optional columns left out)
        by_short_row.add_row(short)
    want = _rows(by_entry)
    assert _rows(by_row) == want and want[1]["notes"] == {"k": 1}
    assert [{**r, "notes": None} for r in _rows(by_short_row)] == [{**r, "notes": None} for r in want]
