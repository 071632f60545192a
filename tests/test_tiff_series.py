"""A multi-file OME-TIFF series read through a symlink: its other files are found beside the file
the link points to (where tifffile looks when given the path), not beside the link."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import tifffile

from publisher.readers.tiff import TiffReader


def _two_file_series(folder: Path) -> None:
    """Two planes (T=2), one per file; the first file's OME-XML names the second by file name."""
    first, second = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    xml = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="{first}">'
           '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="8" SizeY="6" SizeZ="1" SizeC="1" SizeT="2">'
           '<Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
           f'<TiffData FirstT="0" IFD="0" PlaneCount="1"><UUID FileName="a.ome.tif">{first}</UUID></TiffData>'
           f'<TiffData FirstT="1" IFD="0" PlaneCount="1"><UUID FileName="b.ome.tif">{second}</UUID></TiffData>'
           "</Pixels></Image></OME>")
    tifffile.imwrite(folder / "a.ome.tif", np.full((6, 8), 1, "u1"), description=xml, metadata=None)
    other = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="{second}">'
             f'<BinaryOnly MetadataFile="a.ome.tif" UUID="{first}"/></OME>')
    tifffile.imwrite(folder / "b.ome.tif", np.full((6, 8), 2, "u1"), description=other, metadata=None)


def test_a_series_through_a_symlink_reads_its_other_files(tmp_path: Path) -> None:
    real, links = tmp_path / "real", tmp_path / "links"
    real.mkdir()
    links.mkdir()
    _two_file_series(real)
    (links / "a.ome.tif").symlink_to(real / "a.ome.tif")
    for path in (real / "a.ome.tif", links / "a.ome.tif"):
        with TiffReader().open(path, "a", None) as node:
            assert node.shape == (2, 6, 8), path
            data = node.read((slice(0, 2), slice(0, 6), slice(0, 8)))
        assert [int(plane.max()) for plane in data] == [1, 2], path  # not zeros where the second file was not found


def test_a_hyperstack_is_read_page_by_page(tmp_path: Path) -> None:
    """A (T, C, Y, X) series, one page a (T, C): taken for one image, it was read whole for any
    block (32 MiB pages: a 1 GiB file grew a build by ~1 GB). Its pages are its chunks, and a
    block reads the pages it covers."""
    frames = np.arange(3 * 2 * 64 * 80, dtype="u2").reshape(3, 2, 64, 80)
    tifffile.imwrite(tmp_path / "h.tif", frames, compression="zlib", rowsperstrip=64, metadata={"axes": "TCYX"})
    with TiffReader().open(tmp_path / "h.tif", "h", None) as node:
        assert node.shape == (3, 2, 64, 80) and node.source_chunks == (1, 1, 64, 80)
        for sel in [(slice(1, 3), slice(1, 2), slice(5, 60), slice(0, 80)), (slice(0, 3), slice(0, 2), slice(0, 64), slice(0, 80)),
                    (slice(2, 2), slice(0, 2), slice(0, 64), slice(0, 80))]:
            assert np.array_equal(node.read(sel), frames[sel])
    rgb = np.random.default_rng(0).integers(0, 255, (2, 3, 16, 24, 3), dtype="u1")
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb", metadata={"axes": "TZYXS"})
    with TiffReader().open(tmp_path / "rgb.tif", "rgb", None) as node:
        assert node.source_chunks == (1, 1, 16, 24, 3)
        assert np.array_equal(node.read((slice(1, 2), slice(0, 3), slice(0, 16), slice(0, 24), slice(0, 3))), rgb[1:2])


def test_a_stack_with_a_trailing_axis_of_one_is_read_page_by_page(tmp_path: Path) -> None:
    """tifffile gives a stack written as (N, Y, X, 1) that shape, its pages (Y, X): still a page a
    block, not the whole series for any block."""
    frames = np.arange(6 * 20 * 30, dtype="u1").reshape(6, 20, 30, 1)
    tifffile.imwrite(tmp_path / "s.tif", frames)
    with TiffReader().open(tmp_path / "s.tif", "s", None) as node:
        assert node.shape == (6, 20, 30, 1) and node.source_chunks == (1, 20, 30, 1)
        assert np.array_equal(node.read((slice(2, 4), slice(0, 20), slice(5, 25), slice(0, 1))), frames[2:4, :, 5:25])
