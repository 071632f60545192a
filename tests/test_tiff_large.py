"""Large TIFFs (issue 16: memory per worker bounded whatever the source sizes): a frame above
``LAZY_FRAME_BYTES`` is read region by region through tifffile's own zarr store, decoding only
the tiles or strips a block touches; and blocks read by several writer threads at once each get
their own bytes (tifffile's file handle and page loading are not thread-safe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from publisher.readers import tiff_parts

from .conftest import run_build, write_pipeline
from .memory import build_growth


def _image(rows: int, cols: int, dtype: str = "<u2", samples: int = 0) -> np.ndarray:
    """Values that differ from pixel to pixel (a block read from the wrong place shows)."""
    index = np.arange(rows * cols * max(samples, 1), dtype=np.uint64)
    values = (index * 2654435761 >> 13) % 60000
    shape = (rows, cols, samples) if samples else (rows, cols)
    return values.astype(dtype).reshape(shape)


def _published(folder: Path, name: str) -> zarr.Array:
    site = run_build(folder, {"sources": [{"path": str(folder / "in"), "into": "img"}]})
    return zarr.open_array(site.url(f"img/{name}"), mode="r")


def test_pages_read_by_several_threads_at_once(tmp_path: Path) -> None:
    """A stack whose pages span several slabs: the writer's threads read pages at once. Before
    the lock, each read moved the others' file position: "failed to read 8388608 bytes, got
    3668", "corrupted IFD structure", or (uncompressed) values from the wrong place."""
    (tmp_path / "in").mkdir()
    stack = np.stack([_image(1024, 4096) + i for i in range(12)])  # 12 pages of 8 MiB
    tifffile.imwrite(tmp_path / "in" / "plain.tif", stack)
    tifffile.imwrite(tmp_path / "in" / "packed.tif", stack, compression="zlib", compressionargs={"level": 1}, rowsperstrip=128)
    for name in ("plain", "packed"):
        assert np.array_equal(_published(tmp_path, name)[...], stack), name


@pytest.mark.parametrize("layout", ["tiles", "strips", "pages", "strip-pages", "big-endian", "rgb", "contiguous", "contiguous-pages"])
def test_large_frames_read_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    """Past the threshold (lowered here to 1 MiB), every layout tifffile writes reads back exactly,
    and the array's chunks follow the source's tiles."""
    monkeypatch.setattr(tiff_parts, "LAZY_FRAME_BYTES", 2**20)
    used: list[object] = []  # what the reader was given: the parts path, every time
    real = tiff_parts.in_parts
    monkeypatch.setattr(tiff_parts, "in_parts", lambda *args: used.append(real(*args)) or used[-1])
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "image.tif"
    data = _image(1500, 2100, samples=3 if layout == "rgb" else 0)
    if layout == "tiles":
        tifffile.imwrite(path, data, tile=(256, 512), compression="zstd")
    elif layout == "strips":
        tifffile.imwrite(path, data, rowsperstrip=48, compression="zlib")
    elif layout == "pages":
        data = np.stack([data, data[::-1], data[:, ::-1]])
        tifffile.imwrite(path, data, tile=(512, 512), photometric="minisblack")  # three pages
    elif layout == "strip-pages":
        data = np.stack([data + i for i in range(4)])
        tifffile.imwrite(path, data, rowsperstrip=16, compression="zlib", photometric="minisblack")
    elif layout == "big-endian":
        data = data.astype(">u2")
        tifffile.imwrite(path, data, byteorder=">", rowsperstrip=100, compression="zlib")
    elif layout == "contiguous":  # uncompressed, one strip: read with preadv where its rows lie
        data = data.astype(">f8")
        tifffile.imwrite(path, data, byteorder=">")
    elif layout == "contiguous-pages":
        data = np.stack([data, data // 2])
        tifffile.imwrite(path, data, photometric="minisblack")
    else:
        tifffile.imwrite(path, data, photometric="rgb", tile=(256, 256), compression="zlib")
    array = _published(tmp_path, "image")
    assert np.array_equal(array[...], data) and array.dtype == data.dtype.newbyteorder("=")
    assert used and all(isinstance(parts, tiff_parts.Parts) for parts in used), used
    if layout == "tiles":  # whole source tiles per chunk (or the whole dimension)
        assert all(c % t == 0 or c == n for c, t, n in zip(array.chunks, (256, 512), array.shape)), array.chunks
    if layout in ("pages", "strip-pages", "contiguous-pages"):  # a chunk never spans pages: a frame reads its own
        assert array.chunks[0] == 1, array.chunks


def test_tiff_store_refusal_reads_whole_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A series tifffile's store cannot map is still published, read whole, and the warning says why."""
    monkeypatch.setattr(tiff_parts, "LAZY_FRAME_BYTES", 2**20)

    def refuse(self: object, **_: object) -> None:
        raise NotImplementedError("CHUNKMODE.PAGE not implemented")

    monkeypatch.setattr(tifffile.TiffPageSeries, "aszarr", refuse)
    (tmp_path / "in").mkdir()
    data = _image(1024, 1024)
    tifffile.imwrite(tmp_path / "in" / "image.tif", data, tile=(256, 256), compression="zlib")
    site = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "in"), "into": "img"}]})
    assert np.array_equal(zarr.open_array(site.url("img/image"), mode="r")[...], data)
    (warning,) = site.report.warnings
    assert "read whole (2 MiB a frame)" in warning.reason and "CHUNKMODE.PAGE not implemented" in warning.reason





def test_a_large_image_builds_in_bounded_memory(tmp_path: Path) -> None:
    """A 384 MiB single-page tiled TIFF: the build's peak memory grows by well under the image's
    size (read whole, as before, it grew by more than the image: the frame plus its slabs)."""
    rows, cols = 12288, 16384
    image = (np.arange(rows, dtype=np.uint16)[:, None] * 3 + np.arange(cols, dtype=np.uint16)[None, :])
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "mosaic.tif", image, tile=(512, 512), compression="zstd", compressionargs={"level": 1})
    del image
    grown, report = build_growth(write_pipeline(tmp_path, {"sources": [{"path": str(tmp_path / "in"), "into": "img"}],
                                                           "output": {"store": str(tmp_path / "site")}}))
    assert report["nodes"]["array"] == 1
    assert grown < 192 * 2**20, f"peak grew by {grown / 2**20:.0f} MiB for a {rows * cols * 2 / 2**20:.0f} MiB image"
    published = zarr.open_array(str(next((tmp_path / "site").glob("releases/*/data/img/mosaic.zarr/mosaic"))), mode="r")
    assert np.array_equal(published[5000:5600, 9000:10100],
                          np.arange(5000, 5600, dtype=np.uint16)[:, None] * 3 + np.arange(9000, 10100, dtype=np.uint16)[None, :])


def test_truncated_image_data_is_an_error_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncompressed rows read where they lie: a file that ends before its image data does fails
    that item with the file's name and the reason (numpy.memmap would have killed the build: SIGBUS)."""
    monkeypatch.setattr(tiff_parts, "LAZY_FRAME_BYTES", 2**20)
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "cut.tif"
    tifffile.imwrite(path, _image(2048, 1024))
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(AssertionError, match=r"cut\.tif: the file ends before its image data does"):
        run_build(tmp_path, {"sources": [{"path": str(tmp_path / "in"), "into": "img"}]})


def test_big_stored_pieces_are_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compressed frame stored as one strip: reading it in parts would decode the whole strip for
    every block (a 256 MiB page: 2.7 s and 1.1 GiB against 0.5 s and 0.4 GiB read whole)."""
    monkeypatch.setattr(tiff_parts, "PART_BYTES", 2**20)
    path = tmp_path / "one-strip.tif"
    data = _image(1024, 1024)
    tifffile.imwrite(path, data, compression="zlib", rowsperstrip=1024)
    with tifffile.TiffFile(path) as tif:
        assert tiff_parts.in_parts(tif, tif.series[0], data.shape, data.dtype, path, 0) is None
    tifffile.imwrite(path, data, compression="zlib", rowsperstrip=256)
    with tifffile.TiffFile(path) as tif:
        parts = tiff_parts.in_parts(tif, tif.series[0], data.shape, data.dtype, path, 0)
        assert isinstance(parts, tiff_parts.Parts) and parts.chunks == (256, 1024)
        assert np.array_equal(parts.read((slice(100, 700), slice(3, 1000))), data[100:700, 3:1000])
