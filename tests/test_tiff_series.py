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
