"""Big compressed source chunks cut by the writer's slabs are decoded once each, not once a slab."""

from __future__ import annotations

import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest
import zarr

from publisher.readers.hdf5_direct import SLACK, DirectChunks, _inflater
from publisher.readers.whole_chunks import BIG_CHUNK_BYTES, DecodedChunks, decoded_once
from publisher.writers.chunking import auto_chunks, slabs
from tests.conftest import run_build

SHAPE, CHUNKS = (45, 300, 700), (20, 300, 700)  # float32: 16.8 MB chunks, the last one partial


def _recording(data: np.ndarray) -> tuple[list[tuple[slice, ...]], object]:
    reads: list[tuple[slice, ...]] = []

    def read(sel: tuple[slice, ...]) -> np.ndarray:
        reads.append(sel)
        return data[sel].copy()

    return reads, read


def test_slabs_cutting_big_chunks_read_each_chunk_once() -> None:
    data = np.arange(np.prod(SHAPE), dtype="f4").reshape(SHAPE)
    assert np.prod(CHUNKS) * 4 >= BIG_CHUNK_BYTES
    reads, read = _recording(data)
    cut = decoded_once(read, SHAPE, CHUNKS, 4, DecodedChunks(), "d")
    out_chunks = auto_chunks(SHAPE, 4, 8 * 2**20, CHUNKS)
    assert out_chunks[0] < CHUNKS[0]  # the writer does cut these chunks
    regions = list(slabs(SHAPE, out_chunks, 4 * 2**20, 4))
    for sel in regions:
        assert np.array_equal(cut(sel), data[sel])
    origins = sorted(s[0].start for s in reads)
    assert origins == [0, 20, 40] and all(s[0].stop in (20, 40, 45) for s in reads)  # each chunk once, whole
    cut(regions[0])  # read through, the chunks were let go: read again, decoded again
    assert len(reads) == 4
    # reads covering whole chunks, or chunks below the threshold, go to the source as asked
    reads.clear()
    assert np.array_equal(cut((slice(20, 45), slice(0, 300), slice(0, 700))), data[20:45])
    assert decoded_once(read, SHAPE, (2, 300, 700), 4, DecodedChunks(), "d") is read
    assert reads == [(slice(20, 45, 1), slice(0, 300, 1), slice(0, 700, 1))]


def test_chunks_read_through_are_let_go() -> None:
    """A chunk whose every value has been read is not kept (it was, until the next big chunk of
    the file: a GiB chunk held while the file's other datasets were built)."""
    import gc
    import weakref

    data = np.arange(np.prod(SHAPE), dtype="f4").reshape(SHAPE)
    decoded: list[weakref.ref] = []

    def read(sel: tuple[slice, ...]) -> np.ndarray:
        block = data[sel].copy()
        decoded.append(weakref.ref(block))
        return block

    cut = decoded_once(read, SHAPE, CHUNKS, 4, DecodedChunks(), "d")
    for sel in slabs(SHAPE, auto_chunks(SHAPE, 4, 8 * 2**20, CHUNKS), 4 * 2**20, 4):
        cut(sel)
    gc.collect()
    assert len(decoded) == 3 and all(ref() is None for ref in decoded)


def test_slabs_sweeping_a_band_of_chunks_decode_each_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slabs in C order cross every chunk of a band (the chunks across the trailing dimensions):
    with one chunk kept, each slab decoded both of the band's chunks again."""
    from publisher.readers import whole_chunks

    monkeypatch.setattr(whole_chunks, "BIG_CHUNK_BYTES", 2**18)
    shape, chunks = (1024, 1024), (512, 512)
    data = np.arange(np.prod(shape), dtype="f4").reshape(shape)
    reads, read = _recording(data)
    cut = decoded_once(read, shape, chunks, 4, DecodedChunks(), "d")
    for sel in slabs(shape, (64, 1024), 2**18, 4):  # 16 slabs of 64 rows
        assert np.array_equal(cut(sel), data[sel])
    assert len(reads) == 4


def test_threads_share_the_decoded_chunks() -> None:
    data = np.random.default_rng(1).random(SHAPE, dtype="f4")
    reads, read = _recording(data)
    lock = threading.Lock()

    def locked(sel: tuple[slice, ...]) -> np.ndarray:
        with lock:
            return read(sel)

    cut = decoded_once(locked, SHAPE, CHUNKS, 4, DecodedChunks(), "d")
    regions = [(slice(i, i + 1), slice(0, 300), slice(0, 700)) for i in range(SHAPE[0])]
    with ThreadPoolExecutor(4) as pool:
        for sel, got in zip(regions, pool.map(cut, regions)):
            assert np.array_equal(got, data[sel])
    assert len(reads) <= 6  # three chunks, each read once or, when threads cross a border together, twice


def test_a_failed_decode_is_raised_and_not_kept() -> None:
    cache, calls = DecodedChunks(), []

    def failing() -> np.ndarray:
        calls.append(1)
        raise OSError("chunk unreadable")

    for _ in range(2):
        with pytest.raises(OSError, match="unreadable"):
            cache.get("k", failing, 24, 1, 100)
    assert len(calls) == 2
    assert cache.get("k", lambda: np.ones(3), 24, 1, 100).sum() == 3


def test_inflate_in_pieces_equals_zlib() -> None:
    raw = np.random.default_rng(2).integers(0, 50, 3_000_000, dtype="u1").tobytes()
    packed = zlib.compress(raw, 1)
    for size in (len(raw), len(raw) + 4):  # exact, and over the size given
        assert bytes(_inflater(size)(packed)) == raw
    # under: a chunk's size and the slack decoded, the rest never (a decompression bomb stops there)
    assert bytes(_inflater(1000)(packed)) == raw[: 1000 + SLACK]
    with pytest.raises(zlib.error):
        _inflater(len(raw))(packed[: len(packed) // 2])


@pytest.fixture()
def big_chunked(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    data = rng.normal(1000, 30, SHAPE).astype("f4")
    folder = tmp_path / "src"
    folder.mkdir()
    with h5py.File(folder / "big.h5", "w") as f:
        f.create_dataset("gzip", data=data, chunks=CHUNKS, compression="gzip", compression_opts=1, shuffle=True)
        f.create_dataset("lzf", data=data, chunks=CHUNKS, compression="lzf")  # no decoder here: h5py's path
        f.create_dataset("zstd", data=data[:30], chunks=CHUNKS, **hdf5plugin.Zstd())
        part = f.create_dataset("unwritten", shape=SHAPE, dtype="f4", chunks=CHUNKS, compression="gzip", fillvalue=-1)
        part[0:20] = data[0:20]
    return folder / "big.h5"


def test_direct_reads_of_one_chunk(big_chunked: Path) -> None:
    with h5py.File(big_chunked) as f:
        for name in ("gzip", "zstd", "unwritten"):
            ds = f[name]
            direct = DirectChunks.for_dataset(ds, threading.Lock(), lambda ds=ds: ds)
            assert direct is not None
            for sel in ((slice(0, 20), slice(0, 300), slice(0, 700)), (slice(40, 45), slice(0, 300), slice(0, 700))):
                if sel[0].stop > ds.shape[0]:
                    continue
                assert np.array_equal(direct.read(sel), ds[sel])


def test_build_of_big_chunks_equals_the_source(tmp_path: Path, big_chunked: Path) -> None:
    published = run_build(tmp_path, {"version": 1, "name": "big", "sources": [{"path": str(big_chunked), "into": "big"}],
                                     "output": {"store": str(tmp_path / "site")}})
    with h5py.File(big_chunked) as f:
        for name in ("gzip", "lzf", "zstd", "unwritten"):
            array = zarr.open_array(published.url(f"big/big/{name}"), mode="r")
            assert array.chunks[0] < CHUNKS[0], name  # cut by the writer
            assert np.array_equal(array[:], f[name][:]), name
