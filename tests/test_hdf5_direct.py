"""Raw chunk reads decoded outside h5py's lock equal h5py's own reads, or fall back to them."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

from publisher.readers.hdf5_direct import CorruptChunk, DirectChunks, NotDirect


@pytest.fixture()
def sample(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    data = (rng.random((37, 50, 41)) * 1000).astype(">i4")
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("gzip_shuffle_fletcher", data=data, chunks=(8, 16, 41), compression="gzip", shuffle=True, fletcher32=True)
        f.create_dataset("zstd", data=data.astype("<f4"), chunks=(8, 16, 41), **hdf5plugin.Zstd())
        f.create_dataset("blosc", data=data.astype("<u2"), chunks=(8, 16, 41), **hdf5plugin.Blosc())
        f.create_dataset("plain", data=data.astype("<f8"), chunks=(8, 16, 41))
        sparse = f.create_dataset("sparse", shape=(20, 20), dtype="f8", chunks=(5, 5), fillvalue=np.nan, compression="gzip")
        sparse[0:5, 0:5] = 1
        f.create_dataset("bitshuffle", data=data.astype("<u4"), chunks=(8, 16, 41), **hdf5plugin.Bitshuffle())
    return tmp_path / "d.h5"


@pytest.mark.parametrize("name", ["gzip_shuffle_fletcher", "zstd", "blosc", "plain", "sparse"])
def test_direct_reads_equal_h5py(sample: Path, name: str) -> None:
    with h5py.File(sample) as f:
        ds = f[name]
        direct = DirectChunks.for_dataset(ds, threading.Lock(), lambda: ds)
        assert direct is not None
        for sel in ([slice(0, n) for n in ds.shape], [slice(c, min(n, 3 * c)) for c, n in zip(ds.chunks, ds.shape)]):
            got, want = direct.read(tuple(sel)), ds[tuple(sel)]
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
        with pytest.raises(NotDirect):
            direct.read(tuple(slice(1, n) for n in ds.shape))  # not chunk-aligned: h5py's path


def test_filters_without_a_decoder_use_h5py(sample: Path) -> None:
    with h5py.File(sample) as f:
        assert DirectChunks.for_dataset(f["bitshuffle"], threading.Lock(), lambda: f["bitshuffle"]) is None


def _corrupt_chunk(path: Path, name: str, index: int) -> None:
    """Flip bytes of one stored chunk on disk, where HDF5 keeps it."""
    with h5py.File(path) as f:
        info = f[name].id.get_chunk_info(index)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))


def _checksummed(path: Path) -> np.ndarray:
    data = np.arange(4000, dtype="<f8").reshape(40, 100)
    with h5py.File(path, "w") as f:
        f.create_dataset("plain", data=data, chunks=(10, 100), fletcher32=True)
        f.create_dataset("gzip", data=data, chunks=(10, 100), fletcher32=True, compression="gzip", shuffle=True)
        f.create_dataset("intact", data=data, chunks=(10, 100), fletcher32=True)
    return data


@pytest.mark.parametrize("name", ["plain", "gzip"])
def test_corrupt_chunk_fails_its_checksum(tmp_path: Path, name: str) -> None:
    path = tmp_path / "c.h5"
    _checksummed(path)
    _corrupt_chunk(path, name, 1)
    with h5py.File(path) as f:
        ds = f[name]
        direct = DirectChunks.for_dataset(ds, threading.Lock(), lambda: ds)
        assert direct is not None
        direct.read((slice(0, 10), slice(0, 100)))  # an intact chunk reads
        with pytest.raises(CorruptChunk, match=r"chunk at \[10, 0\] fails its Fletcher32 checksum"):
            direct.read((slice(0, 40), slice(0, 100)))


def test_legacy_byte_swapped_checksum_is_accepted(tmp_path: Path) -> None:
    """HDF5 before 1.6.3 stored the checksum's halves byte-swapped; HDF5 accepts those, and so does the direct path."""
    import numcodecs

    data = np.arange(100, dtype="<f8")
    with h5py.File(tmp_path / "old.h5", "w") as f:
        ds = f.create_dataset("a", shape=(100,), dtype="<f8", chunks=(100,), fletcher32=True)
        encoded = bytes(numcodecs.Fletcher32().encode(data))
        c = encoded[-4:]
        ds.id.write_direct_chunk((0,), encoded[:-4] + bytes([c[1], c[0], c[3], c[2]]))
    with h5py.File(tmp_path / "old.h5") as f:
        ds = f["a"]
        direct = DirectChunks.for_dataset(ds, threading.Lock(), lambda: ds)
        assert direct is not None
        with pytest.raises(NotDirect):  # h5py's path reads it
            direct.read((slice(0, 100),))
        np.testing.assert_array_equal(ds[:], data)


def test_build_reports_a_corrupt_chunk_as_the_datasets_failure(tmp_path: Path) -> None:
    """The corrupt dataset is a failure naming the checksum; the others are published, values intact."""
    import zarr

    from publisher.build import build
    from publisher.config import load_pipeline
    from publisher.stores import Store

    from .conftest import write_pipeline

    (tmp_path / "src").mkdir()
    data = _checksummed(tmp_path / "src" / "c.h5")
    _corrupt_chunk(tmp_path / "src" / "c.h5", "plain", 2)
    pipeline = load_pipeline(write_pipeline(tmp_path, {"output": {"store": str(tmp_path / "site")},
                                                       "sources": [{"path": "src", "into": ""}], "on_error": "skip"}))
    report = build(pipeline, workers=2)
    failures = {p.path: p.reason for p in report.failures}
    assert list(failures) == ["c/plain"] and "Fletcher32 checksum" in failures["c/plain"], failures
    store = Store(str(tmp_path / "site"))
    from publisher.catalog import Catalog

    catalog = Catalog.open(store)
    for name in ("gzip", "intact"):
        np.testing.assert_array_equal(zarr.open_array(store.path(catalog.entry(f"c/{name}").data_url), mode="r")[...], data)
    with pytest.raises(Exception):
        catalog.entry("c/plain")
