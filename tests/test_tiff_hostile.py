"""TIFF files whose structure says more than they hold, found by a review of the TIFF reader: a
stack whose page chain stops early or loops (published as its first frame, and no word), an
OME-TIFF declaring more frames than it holds (zeros published; a large claim cost tifffile
gigabytes before a frame was read), a compression nothing here decodes (reported as damage),
pages of alternating shapes (grouped into series in quadratic time: 40,000 pages, 230 s)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from publisher.build import build
from publisher.config import load_pipeline
from publisher.errors import BuildFailed
from publisher.readers import tiff_generic
from publisher.readers.tiff import TiffReader

from .conftest import write_pipeline


def _report(folder: Path) -> Any:
    """The build's report of ``folder/data`` (skipping what fails, so a report either way)."""
    pipeline = load_pipeline(write_pipeline(folder, {"sources": [{"path": "data", "into": ""}], "output": {"store": str(folder / "site")},
                                                     "on_error": "skip"}))
    try:
        return build(pipeline, workers=2)
    except BuildFailed as failed:
        return failed.args[0]


def _next_ifd(body: bytearray, offset: int, to: int) -> None:
    """Point the classic TIFF page at ``offset`` to the page at ``to`` (0: the last page)."""
    struct.pack_into("<I", body, offset + 2 + 12 * struct.unpack_from("<H", body, offset)[0], to)


@pytest.mark.parametrize("how", ["stopped", "looping"])
@pytest.mark.parametrize("shaped", [True, False])
def test_a_stack_whose_page_chain_stops_early_or_loops_fails_naming_the_file(tmp_path: Path, how: str, shaped: bool) -> None:
    """A stack of 10 pages whose chain ends after 6 (as an acquisition that stopped leaves it)
    or loops from page 4 back to page 2: tifffile logs it and reads on with the pages it found."""
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "a.tif"
    tifffile.imwrite(path, np.stack([np.full((8, 8), i + 1, "u1") for i in range(10)]), compression="zlib",
                     **({} if shaped else {"metadata": None}))
    with tifffile.TiffFile(path) as tif:
        offsets = [page.offset for page in tif.pages]
    body = bytearray(path.read_bytes())
    if how == "stopped":
        _next_ifd(body, offsets[5], 0)
        body = body[: offsets[6]]
    else:
        _next_ifd(body, offsets[4], offsets[2])
    path.write_bytes(bytes(body))
    if how == "stopped" and not shaped:  # (nothing in the file says there were more: 6 frames are what it holds)
        report = _report(tmp_path)
        assert not report.failures and report.converted == 1
        return
    (failure,) = _report(tmp_path).failures
    assert failure.reason.startswith(f"SourceError: data/a.tif: cut short or damaged ({len(body)} bytes): tifffile: "), failure.reason


@pytest.mark.parametrize(("code", "named"), [(34676, "SGILOG (TIFF compression 34676), which tifffile cannot decode"),
                                             (65000, "EER_V0 (TIFF compression 65000), which tifffile decodes only in an EER file"),
                                             (12345, "TIFF compression 12345 (a code of no known scheme), which tifffile cannot decode"),
                                             (6, "OJPEG (TIFF compression 6), which tifffile decodes only when its strips are whole JPEG")])
def test_a_compression_tifffile_cannot_decode_is_skipped_naming_it(tmp_path: Path, code: int, named: str) -> None:
    """Not damage (a failure, "damaged or cut short?"): a limitation, skipped saying which."""
    (tmp_path / "data").mkdir()
    tifffile.imwrite(tmp_path / "data" / "good.tif", np.ones((8, 8), "u1"))
    path = tmp_path / "data" / "odd.tif"
    tifffile.imwrite(path, np.ones((64, 64), "u1"), compression="packbits")
    body = bytearray(path.read_bytes())
    ifd = struct.unpack_from("<I", body, 4)[0]
    (entry,) = (ifd + 2 + 12 * i for i in range(struct.unpack_from("<H", body, ifd)[0]) if struct.unpack_from("<H", body, ifd + 2 + 12 * i)[0] == 259)
    struct.pack_into("<H", body, entry + 8, code)
    path.write_bytes(bytes(body))
    report = _report(tmp_path)
    assert not report.failures, report.failures
    (skipped,) = report.skipped
    assert skipped.reason.startswith(f"data/odd.tif: its images are compressed as {named}"), skipped.reason


def _ome_claiming(z: int, t: int, data: str = "<TiffData/>", own: str = "") -> str:
    """OME-XML of one image of 16 x 20 uint8 planes, declaring ``z`` x ``t`` of them."""
    return ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"'
            f'{f" UUID={chr(34)}urn:uuid:{own}{chr(34)}" if own else ""}><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" '
            f'Type="uint8" SizeX="20" SizeY="16" SizeZ="{z}" SizeC="1" SizeT="{t}"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
            f"{data}</Pixels></Image></OME>")


@pytest.mark.parametrize(("z", "t", "data", "said"), [
    (1, 50, "<TiffData/>", "its OME-XML declares 50 frames in image 0 (T 50, C 1, Z 1), the file holds 2 pages"),
    (1000, 1000, "<TiffData/>", "its OME-XML declares 1000000 frames in image 0 (T 1000, C 1, Z 1000), the file holds 2 pages"),
    (1, 2, '<TiffData IFD="5" PlaneCount="2"/>', "its OME-XML places frames of image 0 in its first 7 pages, the file holds 2"),
])
def test_an_ome_tiff_declaring_frames_it_does_not_hold_fails_naming_the_file(tmp_path: Path, z: int, t: int, data: str, said: str) -> None:
    """2 frames declared 50 were published as 50, 48 of them zeros, and no word (tifffile logs
    it); declared 30,000 x 30,000, tifffile's list of them took 13.8 GB before a frame was read."""
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "a.ome.tif"
    tifffile.imwrite(path, np.full((2, 16, 20), 9, "u1"), description=_ome_claiming(z, t, data), metadata=None)
    (failure,) = _report(tmp_path).failures
    assert failure.reason == f"SourceError: data/a.ome.tif: cut short or damaged ({path.stat().st_size} bytes): {said}", failure.reason


def test_a_multi_file_ome_tiff_declaring_more_frames_than_its_files_can_hold_fails(tmp_path: Path) -> None:
    """A companion not there reads as zeros (its planes arrive with it), but as many as the
    OME-XML says: 10 million declared in a file of 1 KB cost tifffile a list of 10 million."""
    (tmp_path / "data").mkdir()
    data = ('<TiffData IFD="0" PlaneCount="1"><UUID FileName="a.ome.tif">urn:uuid:a</UUID></TiffData>'
            '<TiffData FirstZ="1" IFD="0" PlaneCount="9999999"><UUID FileName="b.ome.tif">urn:uuid:b</UUID></TiffData>')
    path = tmp_path / "data" / "a.ome.tif"
    tifffile.imwrite(path, np.full((16, 20), 9, "u1"), description=_ome_claiming(10_000_000, 1, data, own="a"), metadata=None)
    (failure,) = _report(tmp_path).failures
    assert failure.reason.startswith("SourceError: data/a.ome.tif: its OME-XML declares 10000000 frames in image 0 (T 1, C 1, Z 10000000), "
                                     "more than the 1 files of its series here"), failure.reason


def _series(path: Path, linear: bool) -> list[tuple[Any, ...]]:
    with tifffile.TiffFile(path) as tif:
        if linear:
            tiff_generic.install(tif, path.name)
        return [(s.kind, s.shape, s.axes, str(s.dtype), [p.offset for p in s.pages], [(lv.shape, [p.offset for p in lv.pages]) for lv in s.levels])
                for s in tif.series]


def test_pages_of_mixed_shapes_are_grouped_as_tifffile_groups_them(tmp_path: Path) -> None:
    """(tifffile's own grouping, which this one replaces: should a new tifffile change it.)"""
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tif:
        for i in range(9):
            tif.write(np.full((8, 8 + i % 3), i, "u1" if i % 4 else "u2"), contiguous=False, metadata=None)
        tif.write(np.zeros((64, 64), "u1"), subifds=1, tile=(16, 16), metadata=None)  # (a pyramid: its level in a SubIFD)
        tif.write(np.zeros((32, 32), "u1"), subfiletype=1, tile=(16, 16), metadata=None)
        tif.write(np.zeros((32, 32), "u1"), metadata=None)
    series = _series(path, linear=True)
    assert series == _series(path, linear=False)
    assert len(series) == 8 and max(len(s[-1]) for s in series) > 1  # (2 types x 3 shapes, a pyramid, a plain 32x32)


def test_many_pages_of_alternating_shapes_are_grouped_in_linear_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tifffile's grouping compared each page with every page of its shape before it: 16,000
    pages alternating 8x8 and 8x9 took ~15 s (40,000: 230 s), ~1.5 s with this one. Its own is
    not reached (``benchmarks`` is where times are compared; here, which grouping ran)."""

    def quadratic(self: Any) -> None:
        raise AssertionError("tifffile's own generic grouping ran")

    monkeypatch.setattr(tifffile.TiffFile, "_series_generic", quadratic)
    path = tmp_path / "a.tif"
    with tifffile.TiffWriter(path) as tif:
        for i in range(2_000):
            tif.write(np.full((8, 8 + i % 2), i % 251, "u1"), contiguous=False, metadata=None)
    with TiffReader().open(path, "a", None) as node:
        assert node.shape == (1000, 8, 8) and len(node.notes["other_series"]) == 1
        assert node.read((slice(998, 1000), slice(0, 8), slice(0, 8)))[:, 0, 0].tolist() == [1996 % 251, 1998 % 251]


def test_a_tiff_of_more_page_shapes_than_series_are_compared_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each series is compared with each other (for a pyramid's levels): 1,000 shapes took 2 s."""
    monkeypatch.setattr(tiff_generic, "MAX_SERIES", 5)
    (tmp_path / "data").mkdir()
    with tifffile.TiffWriter(tmp_path / "data" / "a.tif") as tif:
        for i in range(8):
            tif.write(np.zeros((4, 1 + i), "u1"), contiguous=False, metadata=None)
    report = _report(tmp_path)
    assert not report.failures, report.failures
    (skipped,) = report.skipped
    assert skipped.reason == "data/a.tif: its pages are of more than 5 shapes or types (by page 5): as many image series, each compared with each other"


def test_an_ome_tiff_whose_xml_gives_another_plane_size_is_read_as_its_pages(tmp_path: Path) -> None:
    """ImageJ's crop keeps the original size in the OME-XML: tifffile reads such a file as its
    pages; its declared 64 x 64 plane over a 32 x 32 page counted as 4 frames in 1 page, and the
    file was refused as cut short."""
    ome = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
           'UUID="urn:uuid:1"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" '
           'SizeX="64" SizeY="64" SizeC="1" SizeZ="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
           '<TiffData IFD="0" PlaneCount="1"/></Pixels></Image></OME>')
    data = np.arange(32 * 32, dtype="u1").reshape(32, 32)
    tifffile.imwrite(tmp_path / "crop.ome.tif", data, description=ome, metadata=None)
    with TiffReader().open(tmp_path / "crop.ome.tif", "crop", None) as node:
        assert node.shape == (32, 32)
        assert node.read((slice(0, 32), slice(0, 32))).tolist() == data.tolist()
