"""Raw chunk reads decoded outside h5py's lock equal h5py's own reads, or fall back to them."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

from publisher.readers.hdf5_direct import DirectChunks, NotDirect


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
