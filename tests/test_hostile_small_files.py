"""Small hostile files a review helper built for the readers beside HDF5 (classic NetCDF, .npy,
TIFF): what a file declares must not cost more than what it holds, or publish what it does not
hold; each is refused naming the file and the reason, and the other files publish."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_build


def _name(text: bytes) -> bytes:
    return struct.pack(">I", len(text)) + text + b"\0" * (-len(text) % 4)


def classic_header(numrecs: int, dims: list[tuple[bytes, int]], attrs: bytes, variables: list[tuple[bytes, list[int], int, int]],
                   begin: int) -> bytes:
    """A CDF-1 header (the format's specification): dimensions, global attributes as given, and
    variables (name, dimension ids, type, vsize) whose data start at ``begin``."""
    out = b"CDF\x01" + struct.pack(">I", numrecs)
    out += (struct.pack(">II", 0x0A, len(dims)) + b"".join(_name(n) + struct.pack(">I", length) for n, length in dims)) if dims else b"\0" * 8
    out += attrs or b"\0" * 8
    out += struct.pack(">II", 0x0B, len(variables))
    for name, ids, kind, vsize in variables:
        out += _name(name) + struct.pack(">I", len(ids)) + b"".join(struct.pack(">I", i) for i in ids) + b"\0" * 8
        out += struct.pack(">III", kind, vsize, begin)
    return out


def test_a_classic_netcdf_streaming_record_count_is_refused_not_published(tmp_path: Path) -> None:
    """A record count of "streaming" (all ones) in a 160-byte file: netCDF-C reads it as
    4,294,967,295 records, and the build published 17 TB of fill values without a word."""
    (tmp_path / "in").mkdir()
    header = classic_header(0xFFFFFFFF, [(b"t", 0), (b"x", 1000)], b"", [(b"v", [0, 1], 5, 4000)], begin=0)
    header = classic_header(0xFFFFFFFF, [(b"t", 0), (b"x", 1000)], b"", [(b"v", [0, 1], 5, 4000)], begin=len(header))
    (tmp_path / "in" / "stream.nc").write_bytes(header)
    np.save(tmp_path / "in" / "fine.npy", np.arange(3))
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "n"}], "on_error": "skip"})
    (failure,) = site.report.failures
    assert failure.path == "n/stream" and "its variables need" in failure.reason and "the file holds" in failure.reason
    assert site.node("n/fine")


def test_a_classic_netcdf_attribute_declaring_gigabytes_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A 52-byte file whose one attribute declares 2 GiB of characters: netCDF-C allocated them
    (2.2 GB; a CDF-5 one of 6 GiB took 6.4 GB) before the header was found cut short."""
    import subprocess
    import sys

    (tmp_path / "in").mkdir()
    attrs = struct.pack(">II", 0x0C, 1) + _name(b"a") + struct.pack(">II", 2, 2**31 - 16) + b"xxxx"
    (tmp_path / "in" / "bomb.nc").write_bytes(b"CDF\x01" + b"\0" * 4 + b"\0" * 8 + attrs)
    # (VmHWM, not ru_maxrss: a child's ru_maxrss keeps its parent's high-water mark across exec)
    code = ("import sys; from pathlib import Path; from publisher.readers.netcdf import NetCDFReader\n"
            "try:\n    NetCDFReader().open(Path(sys.argv[1]), 'b', None).__enter__()\nexcept Exception as exc: print(exc)\n"
            "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "in" / "bomb.nc")], capture_output=True, text=True, check=True,
                          timeout=120)
    message, peak_kb = done.stdout.strip().rsplit("\n", 1)
    assert "truncated: the file ends inside its header" in message and "bomb.nc" in message, done.stdout
    assert int(peak_kb) < 600_000, peak_kb  # (a fresh process with the readers imported: ~200 MB; it took 2.2 GB)


def _npy(path: Path, descr: str, shape: tuple[int, ...], data: bytes = b"") -> None:
    """A .npy of this header (numpy's format 1.0) and ``data``, whatever the header claims."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data)


def test_odd_npy_headers_cost_what_the_file_holds(tmp_path: Path) -> None:
    """128-byte .npy files: 10**12 zero-width strings ran for hours; an empty array with a
    dimension of 2*10**13 listed its chunk sizes one by one (4.7 GB, a 235 MB index object);
    100 dimensions failed in numpy's words."""
    import json

    (tmp_path / "in").mkdir()
    _npy(tmp_path / "in" / "u0.npy", "<U0", (10**12,))
    _npy(tmp_path / "in" / "empty_wide.npy", "<f8", (0, 2 * 10**13))
    _npy(tmp_path / "in" / "dims.npy", "<f8", (1,) * 100, b"\0" * 8)
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "n"}], "on_error": "skip"})
    reasons = {p.path: p.reason for p in [*site.report.failures, *site.report.skipped]}
    assert "zero bytes wide" in reasons["n/u0"]
    assert "100 dimensions" in reasons["n/dims"] and "at most 64" in reasons["n/dims"]
    empty = site.node("n/empty_wide")
    assert empty["structure"]["shape"] == [0, 2 * 10**13] and empty["structure"]["chunks"] == [[0], [2 * 10**13]]
    assert max(p.stat().st_size for p in Path(site.store.url).rglob("*") if p.is_file()) < 2**20
    assert json.dumps(empty)  # (what the index holds of it: a few numbers)


def test_a_tiff_whose_tiles_are_too_big_to_read_in_parts_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiles over PART_BYTES are not read in parts: the frame was decoded whole whatever its size
    (a 49 KB file of four 400 MB zstd tiles took 2 GB, and one of larger tiles would take more).
    Past MAX_WHOLE_FRAME it is refused saying what to do; below, published with a warning. (The
    bounds scaled down here, as the images are.)"""
    import tifffile
    import zarr

    from publisher.readers import tiff_parts

    monkeypatch.setattr(tiff_parts, "LAZY_FRAME_BYTES", 2**20)
    monkeypatch.setattr(tiff_parts, "PART_BYTES", 2**18)
    monkeypatch.setattr(tiff_parts, "MAX_WHOLE_FRAME", 3 * 2**20)
    (tmp_path / "in").mkdir()
    big = np.zeros((2048, 2048), np.uint8)
    tifffile.imwrite(tmp_path / "in" / "huge.tif", big, tile=(1024, 1024), compression="zstd")
    fine = np.arange(1536 * 1536, dtype=np.uint32).astype(np.uint8).reshape(1536, 1536)
    tifffile.imwrite(tmp_path / "in" / "large.tif", fine, tile=(768, 768), compression="zstd")
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "t"}], "on_error": "skip"})
    (skipped,) = site.report.skipped
    assert skipped.path == "t/huge" and "would be decoded whole" in skipped.reason and "tiles of up to 1024" in skipped.reason
    (warning,) = [w for w in site.report.warnings if w.path == "t/large"]
    assert "read whole" in warning.reason and "over 0.25 MiB each" in warning.reason
    assert (zarr.open_array(site.url("t/large"), mode="r")[...] == fine).all()
