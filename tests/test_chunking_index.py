"""Chunk planning, slab iteration, rule globs, and the JSON index at scale."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.catalog import Catalog
from publisher.errors import NotFound
from publisher.formats import Entry
from publisher.index.layout import PAGE_SIZE
from publisher.index.write import string_array, write_index
from publisher.rules import glob_regex
from publisher.stores import Store
from publisher.writers.chunking import auto_chunks, slabs, tiles, z_order

TARGET = 8 * 2**20

shapes = st.lists(st.integers(0, 5000), min_size=1, max_size=4)


def test_big_single_chunk_frame_is_split_into_tiles() -> None:
    chunks = auto_chunks((3262, 3108), 4, TARGET, source=(3262, 3108))  # the 40 MB Eiger frame
    assert math.prod(chunks) * 4 <= TARGET and all(c > 256 for c in chunks)


def test_sane_source_chunks_are_kept_and_small_ones_grow_by_whole_chunks() -> None:
    assert auto_chunks((80, 146, 195), 4, TARGET, source=(10, 146, 195)) == (10, 146, 195)
    grown = auto_chunks((10_000_000,), 8, TARGET, source=(1000,))
    assert grown[0] % 1000 == 0 and grown[0] * 8 <= TARGET and grown[0] * 8 > TARGET // 2
    assert auto_chunks((100, 1024, 1024), 2, TARGET) == (4, 1024, 1024)


def test_requested_chunks_win() -> None:
    assert auto_chunks((10, 20), 8, TARGET, requested=[None, 5]) == (10, 5)
    assert auto_chunks((10, 20), 8, TARGET, requested=[-1, 500]) == (10, 20)
    with pytest.raises(ValueError, match="2 dimensions"):
        auto_chunks((10, 20, 3), 8, TARGET, requested=[1, 2])


@settings(max_examples=200, deadline=None)
@given(shape=shapes, itemsize=st.sampled_from([1, 2, 4, 8, 16]), source=st.none() | st.lists(st.integers(1, 4000), min_size=1, max_size=4))
def test_auto_chunks_invariants(shape: list[int], itemsize: int, source: list[int] | None) -> None:
    if source is not None and len(source) != len(shape):
        source = None
    chunks = auto_chunks(shape, itemsize, TARGET, source=source)
    assert len(chunks) == len(shape)
    assert all(1 <= c <= max(n, 1) for c, n in zip(chunks, shape))
    if source is None:  # planned from scratch: within target unless a single element row already exceeds it
        assert math.prod(chunks) * itemsize <= max(TARGET, itemsize * max(shape[-1], 1) * 2)


@settings(max_examples=100, deadline=None)
@given(shape=st.lists(st.integers(0, 60), min_size=0, max_size=4), data=st.data(), order=st.sampled_from([slabs, tiles]))
def test_slabs_and_tiles_cover_every_element_once(shape: list[int], data: st.DataObject, order: Any) -> None:
    chunks = [data.draw(st.integers(1, max(n, 1))) for n in shape]
    budget = data.draw(st.integers(1, 4096))
    seen = np.zeros(shape, dtype=np.int32)
    for sel in order(shape, chunks, budget, 1):
        for s, c in zip(sel, chunks):
            assert s.start % c == 0  # chunk-aligned
        seen[sel] += 1
    assert (seen == 1).all()


@given(st.integers(1, 40), st.integers(1, 40))
def test_z_order_keeps_aligned_squares_together(ny: int, nx: int) -> None:
    """Every cell once, and the cells of each aligned 2^k x 2^k square one after the other (what
    lets a pyramid level finish each of its chunks soon after starting it)."""
    cells = list(z_order(ny, nx))
    assert sorted(cells) == [(y, x) for y in range(ny) for x in range(nx)]
    place = {cell: i for i, cell in enumerate(cells)}
    for k in (1, 2, 3):
        side = 2**k
        for y0 in range(0, ny, side):
            for x0 in range(0, nx, side):
                at = sorted(place[(y, x)] for y in range(y0, min(y0 + side, ny)) for x in range(x0, min(x0 + side, nx)))
                assert at == list(range(at[0], at[0] + len(at)))


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [("scans/*/entry/**", "scans/a/entry/x/y", True), ("scans/*", "scans/a/b", False), ("**/data", "data", True),
     ("**/data", "a/b/data", True), ("frames/NaCl_*K", "frames/NaCl_300K", True), ("a?c", "a/c", False), ("x.h5", "xyh5", False)],
)
def test_rule_globs(pattern: str, path: str, hit: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is hit


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text()), max_size=40))
def test_index_string_columns_equal_pyarrows_own(values: list[str | None]) -> None:
    """The buffer-built string column (no pandas import) holds exactly what ``pa.array`` would."""
    import pyarrow as pa

    column = string_array(values)
    column.validate(full=True)
    assert column.type == pa.string() and column.null_count == values.count(None)
    assert column.to_pylist() == values


def test_writing_the_index_does_not_import_pandas(tmp_path: Path) -> None:
    """pandas costs a build ~0.2 s of CPU; the index needs only pyarrow."""
    import subprocess
    import sys

    code = (
        "import sys; from publisher.formats import Entry; from publisher.index.write import write_index; from publisher.stores import Store\n"
        f"write_index(Store({str(tmp_path)!r}), 'index', [Entry('', '', 'container', [], {{'a': 'é'}}, {{}}, None, None, None)])\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    import json

    import pyarrow.parquet as pq

    assert [json.loads(m) for m in pq.read_table(tmp_path / "index/nodes.parquet").column("metadata").to_pylist()] == [{"a": "é"}]


@pytest.mark.parametrize("layout", ["pages", "rows"])
def test_json_index_shards_and_pages_at_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    """Children listed by range from JSON pages, or, for a container with search columns, from its rows."""
    min_children = 1000 if layout == "rows" else 1000000  # SKYSHELF_SEARCH_MIN_CHILDREN, as a build passes it
    n = 20_000
    entries = [Entry("", "", "container", [], {}, {"contents": None, "count": 2}, None, None, None)]
    entries.append(Entry("big", "big", "container", [], {}, {"contents": None, "count": n}, None, None, None))
    entries.append(Entry("small", "small", "container", [], {"k": 1}, {"contents": None, "count": 0}, None, None, None))
    entries += [Entry(f"big/n{i:05d}", f"n{i:05d}", "array", [], {"i": i}, {"shape": [i]}, f"data/{i}", "f.h5", f"/{i}") for i in range(n)]
    store = Store(tmp_path)
    fields = write_index(store, "releases/r/index", entries, min_children)
    store.write_bytes("catalog.json", __import__("json").dumps({"format": "skyshelf-catalog", "version": 1, "release": "r", **fields}).encode())
    catalog = Catalog.open(store)
    digits = fields["index_json"]["shard_digits"]
    assert digits == 2  # ~20k nodes / 256 per shard → 256 shards
    shard_files = list((tmp_path / "releases/r/index/nodes").iterdir())
    assert 200 < len(shard_files) <= 256
    assert max(f.stat().st_size for f in shard_files) < 64_000  # no file grows with the catalog
    assert catalog.entry("big/n12345").metadata == {"i": 12345}
    expected_shard = hashlib.sha1(b"big/n12345").hexdigest()[:digits]
    assert (tmp_path / f"releases/r/index/nodes/{expected_shard}.json").exists()
    page = [e.to_json() for e in catalog.entries("big", offset=PAGE_SIZE * 7 + 3, limit=4)]
    assert [e["key"] for e in page] == [f"n{i:05d}" for i in range(PAGE_SIZE * 7 + 3, PAGE_SIZE * 7 + 7)]
    across = [e.to_json() for e in catalog.entries("big", offset=PAGE_SIZE - 2, limit=4)]  # spans two pages
    assert [e["metadata"]["i"] for e in across] == list(range(PAGE_SIZE - 2, PAGE_SIZE + 2))
    assert len(list(catalog.entries("big", offset=n - 3))) == 3
    assert list(catalog.entries("big", offset=n + 5, limit=3)) == [] and list(catalog.entries("big", limit=0)) == []
    assert [e.key for e in catalog.entries("big")] == [f"n{i:05d}" for i in range(n)]
    assert list(catalog.entries("small")) == []
    big = hashlib.sha1(b"big").hexdigest()[:16]
    assert (tmp_path / f"releases/r/index/search/{big}").exists() == (layout == "rows")
    assert (tmp_path / f"releases/r/index/children/{big}").exists() == (layout == "pages")
    with pytest.raises(NotFound):
        catalog.entry("big/nope")
    import pyarrow.parquet as pq

    assert pq.read_metadata(store.path(fields["index"])).num_rows == n + 3


def test_demo_generation_is_deterministic(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "demo"))
    from make_demo import make_demo

    def digest(folder: Path) -> dict[str, str]:
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}

    first, second = make_demo(tmp_path / "a", force=True), make_demo(tmp_path / "b", force=True)
    assert digest(first) == digest(second)
