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
    # nor its Zarr array: written first, it stayed in the file's group, read by zarr and xarray as all fill values
    group = zarr.open_group(store.path(catalog.entry("c").data_url), mode="r")
    assert sorted(group.array_keys()) == ["gzip", "intact"]
    assert not list((tmp_path / "site").glob("releases/*/data/c.zarr/plain"))


def _stopped_scans(path: Path) -> dict[str, np.ndarray]:
    """Preallocated datasets whose acquisition stopped early: most chunks never written."""
    frames = np.arange(3 * 256 * 256, dtype="<u2").reshape(3, 256, 256)
    image = np.linspace(0, 1, 300 * 4500).reshape(300, 4500)
    with h5py.File(path, "w") as f:
        stack = f.create_dataset("stack", shape=(300, 256, 256), dtype="<u2", chunks=(1, 256, 256), fillvalue=7, compression="gzip")  # 39 MB
        stack[5:8] = frames
        wide = f.create_dataset("wide", shape=(4096, 4500), dtype="<f8", chunks=(300, 500), fillvalue=np.nan)  # a pyramid's size
        wide[:300] = image
        f.create_dataset("empty", shape=(30, 30), dtype="<i4", chunks=(10, 10), fillvalue=-1)  # nothing written at all
        movie = f.create_dataset("frames", shape=(3, 600, 4200), dtype="<u2", chunks=(1, 300, 500), fillvalue=5)  # a pyramid of frames
        movie[1, 300:600, 1000:2600] = np.arange(300 * 1600, dtype="<u2").reshape(300, 1600) % 1000
        # fill time "never": HDF5 leaves unwritten chunks unfilled (h5py reads them as it reads them, not as 7)
        never = f.create_dataset("never", shape=(3000, 3000), dtype="<i4", chunks=(250, 250), fillvalue=7, fill_time="never")  # 3 slabs
        never[:250, :250] = 1
        flags = f.create_dataset("flags", shape=(300, 300), dtype="?", chunks=(100, 100), fillvalue=True)
        flags[:100, :100] = False
        f.create_dataset("dense", data=np.ones((20, 20)), chunks=(10, 10))  # every chunk written
    return {"frames": frames, "image": image}


@pytest.mark.parametrize("listed", [10_000, 0], ids=["chunks-listed", "looked-up-by-region"])
def test_unwritten_chunks_are_not_read_and_publish_as_if_they_were(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listed: int) -> None:
    """Regions where the source stores no chunk are not read and their chunks are encoded once:
    the release is the one a build reading them makes, object for object (pyramid levels too),
    and reads back the fill value there (the stored chunks listed once, or looked up region by
    region, as for a dataset storing many)."""
    import zarr

    from publisher.build import build
    from publisher.config import load_pipeline
    from publisher.readers import hdf5 as hdf5_reader
    from publisher.readers import hdf5_direct
    from publisher.stores import Store

    from .conftest import write_pipeline
    from .test_cluster_build import release_objects

    monkeypatch.setattr(hdf5_direct, "LISTED_CHUNKS", listed)
    (tmp_path / "src").mkdir()
    written = _stopped_scans(tmp_path / "src" / "scan.h5")
    reads: list[tuple[slice, ...]] = []
    real_read = DirectChunks.read

    def spy(self: DirectChunks, sel: tuple[slice, ...]) -> np.ndarray:
        reads.append(sel)
        return real_read(self, sel)

    stores = {}
    for name in ("skipping", "reading"):
        if name == "reading":
            monkeypatch.setattr(hdf5_reader, "unwritten", lambda *args: None)
        reads.clear()
        monkeypatch.setattr(DirectChunks, "read", spy)
        config = {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / name)}, "build": {"processes": 0}}
        report = build(load_pipeline(write_pipeline(tmp_path, config)), workers=2)
        assert report.published and not report.failures
        stores[name] = release_objects(Store(str(tmp_path / name)))
        if name == "skipping":  # only the regions holding stored chunks were read, of those with unwritten ones
            stack = [s for s in reads if len(s) == 3 and s[2].stop <= 256]
            assert stack and all(s[0].start < 8 and s[0].stop > 5 for s in stack), stack
            wide = [s for s in reads if len(s) == 2 and s[1].stop > 30]
            assert wide and all(s[0].start < 300 for s in wide), wide
            assert not [s for s in reads if len(s) == 2 and s[1].stop == 30]  # the empty one: never read
        else:
            assert any(len(s) == 3 and s[2].stop <= 256 and s[0].start >= 8 for s in reads)  # (the spy sees unwritten regions read, when they are)
    assert len(stores["skipping"]) > 60 and stores["skipping"] == stores["reading"]
    root = zarr.open_group(str(next((tmp_path / "skipping" / "releases").iterdir()) / "data/src/scan.zarr"), mode="r")
    stack = root["stack"][:]
    assert (stack[5:8] == written["frames"]).all() and (stack[:5] == 7).all() and (stack[8:] == 7).all()
    wide = root["wide"][:]
    assert np.array_equal(wide[:300], written["image"]) and np.isnan(wide[300:]).all()
    assert (root["empty"][:] == -1).all() and (root["dense"][:] == 1).all()
    with h5py.File(tmp_path / "src" / "scan.h5") as f:  # as HDF5 reads them
        assert np.array_equal(root["never"][:], f["never"][:]) and np.array_equal(root["flags"][:], f["flags"][:])
    assert "wide.levels" in root and "frames.levels" in root  # pyramids (their levels compared above, object for object)
    assert (root["frames.levels/1"][0] == 5).all() and (root["frames.levels/1"][1] != 5).any()
