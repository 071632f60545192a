"""Damaged images a review helper found published wrong or failed unclearly: a multi-page TIFF
cut short (published with the frames before the cut, or one frame, and no word), a compressed
TIFF whose strips do not decompress (taken for a passing error: every unchanged rebuild read it
again and published a new release), a broken frame of a stack of hundreds (not named), and a
16-bit colour PNG (published as 8 bits: Pillow keeps each value's high byte)."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr

from publisher.build import build
from publisher.build.lasting import lasting
from publisher.config import load_pipeline
from publisher.errors import BuildFailed, SourceError

from .conftest import run_build, write_pipeline

STACK = np.arange(10 * 64 * 80, dtype="u2").reshape(10, 64, 80)


def _failures(folder: Path) -> list[str]:
    pipeline = load_pipeline(write_pipeline(folder, {"sources": [{"path": "data", "into": ""}], "output": {"store": str(folder / "site")}}))
    with pytest.raises(BuildFailed) as failed:
        build(pipeline, workers=2)
    return [str(p) for p in failed.value.args[0].failures]


@pytest.mark.parametrize("kind", ["imagej", "ome", "pages"])
def test_a_multi_page_tiff_cut_short_fails_naming_the_cut(tmp_path: Path, kind: str) -> None:
    whole, data = tmp_path / "whole.tif", tmp_path / "data"
    data.mkdir()
    if kind == "pages":  # written page by page (each IFD before its data): cut where the 7th page starts
        with tifffile.TiffWriter(whole) as tif:
            for frame in STACK:
                tif.write(frame, contiguous=False, metadata=None)
        with tifffile.TiffFile(whole) as tif:
            cut = tif.pages[6].offset
    else:  # cut inside the 7th frame's data
        tifffile.imwrite(whole, STACK, **({"imagej": True, "metadata": {"axes": "TYX"}} if kind == "imagej" else {"ome": True}))
        with tifffile.TiffFile(whole) as tif:
            cut = tif.pages[6].dataoffsets[0] + 10
    (data / "x.tif").write_bytes(whole.read_bytes()[:cut])
    (failure,) = _failures(tmp_path)
    assert f"data/x.tif: cut short or damaged ({cut} bytes): tifffile: " in failure, failure


@pytest.mark.parametrize("images", [b"images=10", b"images=00"])
def test_a_whole_multi_page_tiff_is_published_whole(tmp_path: Path, images: bytes) -> None:
    """(The check reads what tifffile logs: a sound file logs nothing of the kind, and ImageJ
    counts below 1, which tifffile warns of and reads on without, are no cut.)"""
    (tmp_path / "data").mkdir()
    tifffile.imwrite(tmp_path / "whole.tif", STACK, imagej=True, metadata={"axes": "TYX"})
    (tmp_path / "data" / "x.tif").write_bytes((tmp_path / "whole.tif").read_bytes().replace(b"images=10", images, 1))
    published = run_build(tmp_path, {"sources": [{"path": "data", "into": ""}]})
    assert np.array_equal(zarr.open_array(published.url("x"), mode="r")[...], STACK)


@pytest.mark.parametrize("compression", ["zlib", "zstd", "lzw", None])
def test_a_damaged_compressed_tiff_is_recorded_as_the_files_own_failure(tmp_path: Path, compression: str | None) -> None:
    """imagecodecs' errors are RuntimeErrors, which a build takes for the machine's (tried again
    next time); raised by a codec they are the file's: recorded, and a rebuild with nothing
    changed publishes nothing new."""
    (tmp_path / "data").mkdir()
    image = np.random.default_rng(0).integers(0, 4000, (256, 256)).astype("u2")
    tifffile.imwrite(tmp_path / "data" / "good.tif", image)
    tifffile.imwrite(tmp_path / "whole.tif", image, compression=compression)
    body = (tmp_path / "whole.tif").read_bytes()
    (tmp_path / "data" / "bad.tif").write_bytes(body[: len(body) // 2])
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "data", "into": ""}], "output": {"store": str(tmp_path / "site")},
                                                       "on_error": "skip"}))
    first = build(pipeline, workers=2)
    (failure,) = first.failures
    assert "data/bad.tif: cannot read its image data (damaged or cut short?)" in failure.reason
    again = build(pipeline, workers=2)
    assert again.unchanged and again.release == first.release and again.converted == 0


def test_a_codec_error_is_the_files_own() -> None:
    with pytest.raises(RuntimeError) as caught:
        imagecodecs.zlib_decode(b"not zlib at all")
    assert lasting(caught.value)
    try:
        raise SourceError("x.tif: cannot read its image data") from caught.value
    except SourceError as wrapped:
        assert lasting(wrapped)
    assert not lasting(RuntimeError("a worker's event loop stopped"))  # (a RuntimeError of anything else: passing, as before)


def test_a_broken_frame_of_a_stack_is_named(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for i in range(40):
        tifffile.imwrite(tmp_path / "data" / f"img_{i}.tif", np.full((32, 40), i, "u2"))
    broken = tmp_path / "data" / "img_27.tif"
    broken.write_bytes(broken.read_bytes()[:1000])
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "data", "into": "", "name_pattern": "img_{frame:d}.tif", "stack": "frame"}],
                                                       "output": {"store": str(tmp_path / "site")}}))
    with pytest.raises(BuildFailed) as failed:
        build(pipeline, workers=2)
    (failure,) = failed.value.args[0].failures
    assert "data/img_27.tif: " in failure.reason, failure


@pytest.mark.parametrize("bands", [3, 4])
def test_a_16_bit_colour_png_keeps_its_16_bits(tmp_path: Path, bands: int) -> None:
    (tmp_path / "data").mkdir()
    image = np.random.default_rng(1).integers(0, 65535, (40, 50, bands)).astype("u2")
    (tmp_path / "data" / "c.png").write_bytes(imagecodecs.png_encode(image))
    grey = np.random.default_rng(2).integers(0, 65535, (30, 20)).astype("u2")
    (tmp_path / "data" / "g.png").write_bytes(imagecodecs.png_encode(grey))
    published = run_build(tmp_path, {"sources": [{"path": "data", "into": ""}]})
    colour = zarr.open_array(published.url("c"), mode="r")
    assert colour.dtype == np.uint16 and np.array_equal(colour[...], image)
    assert np.array_equal(zarr.open_array(published.url("g"), mode="r")[...], grey)
