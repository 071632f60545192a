"""HDF5 files that refer to files outside their source folder (external raw storage, external
links, virtual datasets' sources) follow the rule symbolic links follow (``symlinks_outside``),
and never read a /proc, /sys or /dev file: external storage naming /etc/passwd or
/proc/self/environ published them, with no word, under any rule (a review helper's repro)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from publisher.build import build
from publisher.config import load_pipeline

from .conftest import _published, write_pipeline


def _tree(root: Path) -> None:
    (root / "outside").mkdir()
    with h5py.File(root / "outside" / "secret.h5", "w") as f:
        f["data"] = np.arange(100, dtype="i4") + 424242
    (root / "outside" / "secret.bin").write_bytes(b"TOPSECRET-" * 100)
    src = root / "src"
    src.mkdir()
    with h5py.File(src / "ext.h5", "w") as f:
        f.create_dataset("rel", shape=(1000,), dtype="u1", external=[(str(root / "outside" / "secret.bin"), 0, 1000)])
    with h5py.File(src / "link.h5", "w") as f:
        f["abs"] = h5py.ExternalLink(str(root / "outside" / "secret.h5"), "/data")
    with h5py.File(src / "vds.h5", "w") as f:
        layout = h5py.VirtualLayout(shape=(100,), dtype="i4")
        layout[:] = h5py.VirtualSource(str(root / "outside" / "secret.h5"), "data", shape=(100,))
        f.create_virtual_dataset("abs", layout, fillvalue=-1)
    with h5py.File(src / "proc.h5", "w") as f:
        f.create_dataset("env", shape=(4096,), dtype="u1", external=[("/proc/self/environ", 0, 4096)])
    with h5py.File(src / "fine.h5", "w") as f:
        f["x"] = np.arange(3)


def _build(root: Path, rule: str):  # type: ignore[no-untyped-def]
    config = {"output": {"store": str(root / f"site-{rule}")}, "on_error": "skip", "symlinks_outside": rule,
              "sources": [{"path": "src", "into": ""}]}
    report = build(load_pipeline(write_pipeline(root, config)), workers=1)
    return report, _published(report, config["output"]["store"], root)


@pytest.mark.parametrize("rule", ["warn", "refuse"])
def test_files_referred_outside_the_source_folder_follow_symlinks_outside(tmp_path: Path, rule: str) -> None:
    _tree(tmp_path)
    report, published = _build(tmp_path, rule)
    skipped = {p.path: p.reason for p in report.skipped}
    assert "no file of data" in skipped["proc"] and "/environ" in skipped["proc"]  # under any rule
    with pytest.raises(KeyError):
        published.node("proc/env")
    assert zarr.open_array(published.url("fine/x"), mode="r")[:].tolist() == [0, 1, 2]
    outside = {"ext": "secret.bin", "link": "secret.h5", "vds": "secret.h5"}
    if rule == "refuse":
        for name, file in outside.items():
            assert f"{file}, outside the source folder: refused" in skipped[name], skipped
            with pytest.raises(KeyError):
                published.node(name)
        assert not [w for w in report.warnings if "outside the source folder" in w.reason]
    else:
        warned = {w.path: w.reason for w in report.warnings if "outside the source folder" in w.reason}
        assert set(warned) == set(outside), report.warnings
        assert zarr.open_array(published.url("ext/rel"), mode="r")[:10].tobytes() == b"TOPSECRET-"  # read, as a warned link is


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_chunk_that_decodes_past_its_size_fails_without_decoding_it(tmp_path: Path, codec: str) -> None:
    """A chunk said to hold 100 bytes whose stream inflates to 64 MiB (4 GiB in the review, from a
    4 MB file; a 136 KB zstd frame claimed 4 GiB): it was decoded whole, the build's memory with
    it. Deflate stops at the chunk's size (its first bytes kept, as HDF5 keeps a long chunk's); a
    zstd frame stating more is refused first, the dataset failing as corrupt; the rest publishes."""
    import resource
    import zlib

    import hdf5plugin
    import numcodecs

    (tmp_path / "src").mkdir()
    bomb = zlib.compress(bytes(64 * 2**20), 9) if codec == "gzip" else numcodecs.Zstd(level=19).encode(bytes(64 * 2**20))
    options = {"compression": "gzip"} if codec == "gzip" else dict(hdf5plugin.Zstd())
    with h5py.File(tmp_path / "src" / "b.h5", "w") as f:
        ds = f.create_dataset("bomb", shape=(1000,), dtype="u1", chunks=(100,), **options)
        ds.id.write_direct_chunk((0,), bomb)
        f["fine"] = np.arange(5)
    (tmp_path / "warm" / "src").mkdir(parents=True)
    with h5py.File(tmp_path / "warm" / "src" / "w.h5", "w") as f:  # (a first build's imports, before measuring)
        f.create_dataset("x", data=np.arange(1000, dtype="u1"), chunks=(100,), **options)
    _build(tmp_path / "warm", "warn")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report, _ = _build(tmp_path, "warn")
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    failed = {p.path: p.reason for p in report.failures}
    if codec == "zstd":  # its header states 64 MiB: refused before decoding
        assert "chunk at [0]" in failed.get("b/bomb", ""), (report.failures, report.skipped)
    else:  # inflated only to the chunk's size (and a slack), its first bytes kept as HDF5 keeps a long chunk's
        assert not failed, failed
    assert grown < 48 * 2**20, (grown, failed)  # (the 64 MiB never decoded)


def test_an_array_of_more_chunks_than_any_store_holds_fails_at_once(tmp_path: Path) -> None:
    """An 8 KB HDF5 file declaring a (2**30, 2**30) dataset with no chunk written: each chunk was
    written (its fill value), 1.7 million files in two minutes with 2**40 to go, until the disk
    was full. More than 2**24 chunks fail the dataset at once, naming its shape; the rest publishes."""
    import time

    (tmp_path / "src").mkdir()
    with h5py.File(tmp_path / "src" / "huge.h5", "w") as f:
        f.create_dataset("x", shape=(2**30, 2**30), dtype="u1", chunks=(1024, 1024))
        f["fine"] = np.arange(3)
    start = time.monotonic()
    report, published = _build(tmp_path, "warn")
    assert time.monotonic() - start < 60
    failed = {p.path: p.reason for p in report.failures}
    assert "(1073741824, 1073741824)" in failed.get("huge/x", "") and "chunks" in failed["huge/x"], report.failures
    assert zarr.open_array(published.url("huge/fine"), mode="r")[:].tolist() == [0, 1, 2]
    assert sum(1 for _ in (tmp_path / "site-warn").rglob("*")) < 200  # (no flood of fill-value chunks)


def _claiming_tiff(width: int, height: int, data: bytes) -> bytes:
    """An uncompressed 8-bit TIFF whose one strip is ``data``, whatever size its header claims."""
    import struct

    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8),
               (277, 3, 1), (278, 4, height), (279, 4, len(data))]
    ifd = 8 + len(data) + len(data) % 2
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd) + data + b"\x00" * (len(data) % 2))
    out += struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        out += struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
    return bytes(out + struct.pack("<I", 0))


def test_a_tiff_claiming_more_pixels_than_it_holds_fails_at_open(tmp_path: Path) -> None:
    """An uncompressed TIFF claiming 300000 x 300000 pixels in a 16-byte strip: the build went on
    to allocate them (under a memory limit the process aborted, no report, its lock left). The
    claim is checked against the file's size when it is opened."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "claim.tif").write_bytes(_claiming_tiff(300_000, 300_000, bytes(16)))
    (tmp_path / "src" / "fine.tif").write_bytes(_claiming_tiff(4, 4, bytes(range(16))))
    report, published = _build(tmp_path, "warn")
    failed = {p.path: p.reason for p in report.failures}
    assert "the file ends before its image data does" in failed.get("claim", "") and "90,000,000,000 bytes" in failed["claim"], report.failures
    assert zarr.open_array(published.url("fine"), mode="r")[:].ravel().tolist() == list(range(16))
