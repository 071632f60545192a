"""Tables whose columns are of the less common Arrow types, served by ``publish serve`` in every
table format and as array children (``column/...``): no answer is a 500, and each is valid in
its format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import run_build


def _sources(folder: Path) -> None:
    """One Parquet file per case, each a table the API serves."""
    piece = lambda values: pa.table({"kind": pa.array(values).dictionary_encode()})
    # two row groups, each with its own dictionary (as pa.concat_tables or a polars Categorical writes them)
    pq.write_table(pa.concat_tables([piece(["alpha", "beta"] * 5), piece(["gamma"] * 10)]), folder / "cats.parquet", row_group_size=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from handlers.local import LocalServer

    folder = tmp_path_factory.mktemp("odd-columns")
    (folder / "data").mkdir()
    _sources(folder / "data")
    site = run_build(folder, {"sources": [{"path": "data", "into": ""}]}).store.url
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SKYSHELF_STORE", site)
        srv = LocalServer(site, "127.0.0.1", 0).start()
        try:
            yield f"{srv.url}/api/v1"
        finally:
            srv.stop()


@pytest.mark.parametrize("route", ["table/full/cats", "table/partition/cats?partition=0", "table/full/cats?column=kind&format=arrow"])
def test_dictionaries_that_differ_between_row_groups_as_arrow(server: str, route: str) -> None:
    """An Arrow IPC file holds one dictionary a column: the row groups' are unified into it."""
    answer = httpx.get(f"{server}/{route}")
    assert answer.status_code == 200, answer.text
    table = pa.ipc.open_file(answer.content).read_all()
    assert pa.types.is_dictionary(table.schema.field("kind").type)
    assert table.column("kind").to_pylist() == ["alpha", "beta"] * 5 + ["gamma"] * 10
