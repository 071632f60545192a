"""The handlers' lean Zarr reader against numpy: any basic selection, any block, both Zarr formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.access.arrays import PublishedArray
from publisher.errors import BadRequest

from .conftest import Published, run_build

SOURCE = np.arange(7 * 11 * 5, dtype=">i4").reshape(7, 11, 5) * 3 - 100  # big-endian source, odd sizes


@pytest.fixture(scope="module", params=[2, 3])
def published(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Published, PublishedArray]:
    folder = tmp_path_factory.mktemp(f"access-v{request.param}")
    np.save(folder / "cube.npy", SOURCE)
    pub = run_build(folder, {"sources": [{"path": "cube.npy"}], "rules": [{"match": "**", "chunks": [3, 4, 2]}],
                             "output": {"store": str(folder / "site"), "zarr_format": request.param}})
    return pub, PublishedArray(pub.store, pub.node("cube")["data_url"])


def _index(n: int) -> st.SearchStrategy:
    bound = st.integers(-n - 3, n + 3) | st.none()
    return st.integers(-n, n - 1) | st.builds(slice, bound, bound, st.sampled_from([None, 1, 2, 3, -1, -2, -4]))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_basic_selection_equals_numpy(published: tuple[Published, PublishedArray], data: st.DataObject) -> None:
    _, array = published
    sel = tuple(data.draw(_index(n)) for n in SOURCE.shape[: data.draw(st.integers(0, 3))])
    got = array.read(sel)
    assert got.dtype == SOURCE.dtype.newbyteorder("<")
    np.testing.assert_array_equal(got, SOURCE[sel])


def test_blocks_and_bad_requests(published: tuple[Published, PublishedArray]) -> None:
    _, array = published
    assert array.grid() == (3, 3, 3)
    np.testing.assert_array_equal(array.block((2, 2, 2)), SOURCE[6:7, 8:11, 4:5])
    for bad in ((3, 0, 0), (0, 0), (-1, 0, 0)):
        with pytest.raises(BadRequest):
            array.block(bad)
    with pytest.raises(BadRequest):
        array.read((7,))
    with pytest.raises(BadRequest):
        array.read((0, 0, 0, 0))


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("codec", ["zstd", "gzip", "blosc-lz4", "none"])
def test_stored_blocks_are_the_answer_as_they_are(tmp_path: Path, zarr_format: int, codec: str) -> None:
    """Interior chunks stored as zstd or gzip of the little-endian values are a valid octet-stream
    body in that Content-Encoding; edge chunks (stored padded), other codecs, and encodings the
    client did not accept are left to the general path."""
    import gzip

    import zstandard

    np.save(tmp_path / "cube.npy", SOURCE)
    pub = run_build(tmp_path, {"sources": [{"path": "cube.npy"}], "rules": [{"match": "**", "chunks": [3, 4, 2]}],
                               "output": {"store": str(tmp_path / "site"), "zarr_format": zarr_format, "codec": codec}})
    array = PublishedArray(pub.store, pub.node("cube")["data_url"])
    decode = {"zstd": zstandard.ZstdDecompressor().decompressobj, "gzip": lambda: gzip}
    served = 0
    for index in np.ndindex(*array.grid()):
        ready = array.stored_block(index, {"gzip", "zstd", "br"})
        interior = all((i + 1) * c <= n for i, c, n in zip(index, array.chunks, array.shape))
        if codec not in ("zstd", "gzip") or not interior:
            assert ready is None
            continue
        body, encoding = ready
        assert encoding == codec and array.stored_block(index, {"br"}) is None
        raw = decode[codec]().decompress(body)
        expected = array.block(index)
        assert raw == np.ascontiguousarray(expected, dtype=expected.dtype.newbyteorder("<")).tobytes()
        served += 1
    assert served == (2 * 2 * 2 if codec in ("zstd", "gzip") else 0)


def test_decoded_cache_is_bounded_least_recently_used_and_read_only() -> None:
    from publisher.access.cache import DecodedCache

    cache = DecodedCache(capacity=4000)
    chunks = {f"k{i}": np.full(100, i, dtype="u8") for i in range(6)}  # 800 bytes each
    for key, value in chunks.items():
        cache.put(("s", key), value)
        cache.get(("s", "k0"))  # k0 stays recently used
    assert cache.size <= 4000
    assert cache.get(("s", "k0")) is not None and cache.get(("s", "k1")) is None and cache.get(("s", "k5")) is not None
    with pytest.raises(ValueError):
        cache.get(("s", "k5"))[0] = 1  # type: ignore[index]
    cache.put(("s", "big"), np.zeros(2000, dtype="u1"))  # over a quarter of the capacity: not kept
    assert cache.get(("s", "big")) is None


def test_reads_through_the_chunk_cache_equal_the_source(published: tuple[Published, PublishedArray]) -> None:
    _, array = published
    for _ in range(2):  # the second pass is served from the cache
        np.testing.assert_array_equal(array.read(), SOURCE)
        np.testing.assert_array_equal(array.read((slice(3, 6), slice(4, 8), slice(0, 2))), SOURCE[3:6, 4:8, 0:2])
