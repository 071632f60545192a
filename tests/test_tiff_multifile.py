"""A multi-file TIFF series (an NDTiff acquisition of Micro-Manager 2, a multi-file OME-TIFF) is
published once, from the file of its own whose name sorts first; its other files are skipped as
parts of it. tifffile reads the whole series from any of them, so file by file it was published
once per file. And the series is converted again when the acquisition goes on, though its first
file did not change (its frames are in the others and in NDTiff.index)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from publisher.build import build
from publisher.catalog import Catalog
from publisher.config import load_pipeline
from publisher.errors import NotFound
from publisher.stores import Store

from .conftest import write_pipeline

FRAME = (64, 64)


def _acquisition(folder: Path, frames: int) -> None:
    """An NDTiff dataset as Micro-Manager writes it, with files of ~190 KB (not 4 GB) so a few
    dozen frames span several files; frame t holds the value t."""
    from ndtiff import NDTiffDataset, ndtiff_file

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ndtiff_file, "MAX_FILE_SIZE", 5_200_000)  # (its padding alone is 5 MB)
        dataset = NDTiffDataset(str(folder), summary_metadata={"PixelType": "GRAY16"}, writable=True)
        for t in range(frames):
            dataset.put_image({"time": t}, np.full(FRAME, t, np.uint16), {"ElapsedTime-ms": t})
        dataset.finish()


def _published(site: Path) -> dict[str, np.ndarray]:
    catalog = Catalog.open(Store(site))
    out = {}
    for path in ("acq/NDTiffStack", "acq/NDTiffStack_1", "acq/NDTiffStack_2", "acq/NDTiffStack_3"):
        try:
            url = catalog.entry(path).to_json()["data_url"]
        except NotFound:  # (not published)
            continue
        out[path] = zarr.open_array(str(site / url), mode="r")[:]
    return out


def test_an_ndtiff_acquisition_is_published_once_and_again_as_it_grows(tmp_path: Path) -> None:
    _acquisition(tmp_path / "tree" / "acq", 69)  # three files, full
    names = sorted(p.name for p in (tmp_path / "tree" / "acq").glob("*.tif"))
    assert names == ["NDTiffStack.tif", "NDTiffStack_1.tif", "NDTiffStack_2.tif"]
    config = {"sources": [{"path": "tree", "into": ""}], "output": {"store": str(tmp_path / "site")}}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    report = build(pipeline, workers=1)
    published = _published(tmp_path / "site")
    assert list(published) == ["acq/NDTiffStack"]  # once, not three times
    assert published["acq/NDTiffStack"][:, 0, 0].tolist() == list(range(69))
    parts = {p.path: p.reason for p in report.skipped if "part of" in p.reason}
    assert parts == {f"acq/NDTiffStack_{i}": "part of the ndtiff series of 3 files published from NDTiffStack.tif" for i in (1, 2)}
    assert build(pipeline, workers=1).unchanged

    # the acquisition goes on: its three files as they were (not touched), a fourth, and the index
    # grown; the series is read again (it was reused: every file it had read was as it was)
    _acquisition(tmp_path / "longer", 90)
    for name in ("NDTiffStack.tif", "NDTiffStack_1.tif", "NDTiffStack_2.tif"):
        assert (tmp_path / "longer" / name).read_bytes() == (tmp_path / "tree" / "acq" / name).read_bytes()
    for name in ("NDTiffStack_3.tif", "NDTiff.index"):
        shutil.copyfile(tmp_path / "longer" / name, tmp_path / "tree" / "acq" / name)
    again = build(pipeline, workers=1)
    published = _published(tmp_path / "site")
    assert list(published) == ["acq/NDTiffStack"]
    assert published["acq/NDTiffStack"][:, 0, 0].tolist() == list(range(90))
    assert "acq/NDTiffStack_3" in {p.path for p in again.skipped}
    assert build(pipeline, workers=1).unchanged


def _ome(own: str, files: list[tuple[str, str]]) -> str:
    data = "".join(f'<TiffData FirstZ="{z}" IFD="0" PlaneCount="1"><UUID FileName="{name}">urn:uuid:{ident}</UUID></TiffData>'
                   for z, (name, ident) in enumerate(files))
    return ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
            f'UUID="urn:uuid:{own}"><Image ID="Image:0" Name="img"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" '
            f'SizeX="4" SizeY="3" SizeZ="{len(files)}" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>{data}'
            "</Pixels></Image></OME>")


@pytest.mark.parametrize("binary_only", [False, True], ids=["full-xml-in-each", "binary-only"])
def test_a_multi_file_ome_tiff_is_published_from_one_file(tmp_path: Path, binary_only: bool) -> None:
    """Both files carry the whole OME-XML (each reads as the two planes), or the second only its
    pixels ("BinaryOnly", pointing at the first): either way the series is published once, from
    the first; with the first gone, the second publishes what it holds."""
    ids = [str(uuid.uuid4()) for _ in range(2)]
    files = [("p.ome.tif", ids[0]), ("q.ome.tif", ids[1])]
    tree = tmp_path / "tree"
    tree.mkdir()
    tifffile.imwrite(tree / "p.ome.tif", np.full((3, 4), 7, np.uint8), description=_ome(ids[0], files), metadata=None)
    second = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
              f'UUID="urn:uuid:{ids[1]}"><BinaryOnly MetadataFile="p.ome.tif" UUID="urn:uuid:{ids[0]}"/></OME>') if binary_only else _ome(ids[1], files)
    tifffile.imwrite(tree / "q.ome.tif", np.full((3, 4), 42, np.uint8), description=second, metadata=None)
    config = {"sources": [{"path": "tree", "into": ""}], "output": {"store": str(tmp_path / "site")}}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    report = build(pipeline, workers=1)

    def planes() -> dict[str, list[int]]:
        catalog, out = Catalog.open(Store(tmp_path / "site")), {}
        for key in ("p.ome", "q.ome"):
            try:
                url = catalog.entry(key).to_json()["data_url"]
            except NotFound:  # (not published)
                continue
            out[key] = np.asarray(zarr.open_array(str(tmp_path / "site" / url), mode="r")).reshape(-1, 12)[:, 0].tolist()
        return out

    assert planes() == {"p.ome": [7, 42]}
    assert [p.path for p in report.skipped] == ["q.ome"] and "published from p.ome.tif" in report.skipped[0].reason
    assert build(pipeline, workers=1).unchanged
    (tree / "p.ome.tif").unlink()  # the part left alone: published (what tifffile reads of it), not skipped for good
    build(pipeline, workers=1)
    assert list(planes()) == ["q.ome"] and 42 in planes()["q.ome"]
