"""A multi-file TIFF series (an NDTiff acquisition of Micro-Manager 2, a multi-file OME-TIFF) is
published once, from the file of its own whose name sorts first; its other files are skipped as
parts of it. tifffile reads the whole series from any of them, so file by file it was published
once per file. And the series is converted again when the acquisition goes on, though its first
file did not change (its frames are in the others and in NDTiff.index)."""

from __future__ import annotations

import json
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


def _arrays(site: Path) -> dict[str, np.ndarray]:
    """Every published array, read back through the catalog."""
    if not (site / "catalog.json").exists():
        return {}
    catalog, out, todo = Catalog.open(Store(site)), {}, [""]
    while todo:
        for entry in catalog.entries(todo.pop()):
            if entry.family == "array" and entry.data_url:
                out[entry.path] = zarr.open_array(str(site / entry.data_url), mode="r")[:]
            elif entry.family == "container":
                todo.append(entry.path)
    return out


def _build_tree(tmp_path: Path, **source: object) -> object:
    config = {"sources": [{"path": "tree", "into": "", **source}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip"}
    return build(load_pipeline(write_pipeline(tmp_path, config)), workers=1)


def _planes(array: np.ndarray) -> list[int]:
    return [int(v) for v in array.reshape(-1, 12)[:, 0]]


def test_a_binary_only_file_that_sorts_first_leaves_the_series_to_its_metadata_file(tmp_path: Path) -> None:
    """a.ome.tif holds only pixels (its metadata in z.ome.tif, which names both): each was skipped
    as published by the other, and nothing was published."""
    (tmp_path / "tree").mkdir()
    ids = [str(uuid.uuid4()) for _ in range(2)]
    files = [("z.ome.tif", ids[0]), ("a.ome.tif", ids[1])]
    tifffile.imwrite(tmp_path / "tree" / "z.ome.tif", np.full((3, 4), 7, np.uint8), description=_ome(ids[0], files), metadata=None)
    binary = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="urn:uuid:{ids[1]}">'
              f'<BinaryOnly MetadataFile="z.ome.tif" UUID="urn:uuid:{ids[0]}"/></OME>')
    tifffile.imwrite(tmp_path / "tree" / "a.ome.tif", np.full((3, 4), 42, np.uint8), description=binary, metadata=None)
    report = _build_tree(tmp_path)
    assert {k: _planes(v) for k, v in _arrays(tmp_path / "site").items()} == {"z.ome": [7, 42]}
    assert [p.path for p in report.skipped] == ["a.ome"]


def test_a_companion_in_a_subfolder_leaves_the_series_to_the_file_beside_the_names(tmp_path: Path) -> None:
    """z.ome.tif names itself and sub/a.ome.tif: sub/a sorted first by its bare name, z was
    skipped for it, and sub/a (whose names resolve below sub/) could not read the series."""
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    ids = [str(uuid.uuid4()) for _ in range(2)]
    files = [("z.ome.tif", ids[0]), ("sub/a.ome.tif", ids[1])]
    tifffile.imwrite(tmp_path / "tree" / "z.ome.tif", np.full((3, 4), 7, np.uint8), description=_ome(ids[0], files), metadata=None)
    tifffile.imwrite(tmp_path / "tree" / "sub" / "a.ome.tif", np.full((3, 4), 42, np.uint8), description=_ome(ids[1], files), metadata=None)
    _build_tree(tmp_path)
    assert _planes(_arrays(tmp_path / "site")["z.ome"]) == [7, 42]


def test_a_stack_rule_over_a_series_files_stacks_them_as_they_read(tmp_path: Path) -> None:
    """Three files of one OME series stacked by the pipeline's rule: the stack's second file was
    skipped as part of the series, and with it the whole stack."""
    (tmp_path / "tree").mkdir()
    ids = [str(uuid.uuid4()) for _ in range(3)]
    files = [(f"img_{i}.ome.tif", ids[i]) for i in range(3)]
    for i, value in enumerate((7, 42, 99)):
        tifffile.imwrite(tmp_path / "tree" / files[i][0], np.full((3, 4), value, np.uint8), description=_ome(ids[i], files), metadata=None)
    report = _build_tree(tmp_path, name_pattern="img_{z:d}.ome.tif", stack="z")
    assert not report.skipped and not report.failures
    (stack,) = _arrays(tmp_path / "site").values()
    assert stack.shape == (3, 3, 3, 4) and [int(v) for v in stack[0, :, 0, 0]] == [7, 42, 99]


def test_an_acquisition_of_one_file_is_read_again_as_it_grows(tmp_path: Path) -> None:
    """Built when its first file had just filled: the second file and the grown index arrived, the
    first file's bytes as they were; it recorded no index (one file: not multi-file), was reused
    with 23 frames, and the new file was skipped as its part: the new frames published nowhere."""
    _acquisition(tmp_path / "tree" / "acq", 23)
    assert sorted(p.name for p in (tmp_path / "tree" / "acq").glob("*.tif")) == ["NDTiffStack.tif"]
    _build_tree(tmp_path)
    _acquisition(tmp_path / "longer", 40)
    assert (tmp_path / "longer" / "NDTiffStack.tif").read_bytes() == (tmp_path / "tree" / "acq" / "NDTiffStack.tif").read_bytes()
    for name in ("NDTiffStack_1.tif", "NDTiff.index"):
        shutil.copyfile(tmp_path / "longer" / name, tmp_path / "tree" / "acq" / name)
    _build_tree(tmp_path)
    assert _arrays(tmp_path / "site")["acq/NDTiffStack"][:, 0, 0].tolist() == list(range(40))


def test_a_file_the_acquisitions_index_does_not_list_fails_naming_why(tmp_path: Path) -> None:
    """A file of another acquisition copied into this one's folder reads as this one's series
    (tifffile follows the folder's index): it published that series under its own name."""
    _acquisition(tmp_path / "other", 5)
    _acquisition(tmp_path / "tree" / "acq", 7)
    shutil.copyfile(tmp_path / "other" / "NDTiffStack.tif", tmp_path / "tree" / "acq" / "a_NDTiffStack.tif")
    report = _build_tree(tmp_path)
    assert list(_arrays(tmp_path / "site")) == ["acq/NDTiffStack"]
    assert [(p.path, "does not hold this file's frames" in p.reason) for p in report.failures] == [("acq/a_NDTiffStack", True)]


def test_the_parts_of_a_series_record_one_file_each(tmp_path: Path) -> None:
    """Each of a series' n files recorded all n (and the index): n^2 records, a manifest of 82 MB
    and a no-change rebuild of 5 s for 800 files. The parts record the file publishing it."""
    _acquisition(tmp_path / "tree" / "acq", 23 * 12)  # 12 files
    _build_tree(tmp_path)
    catalog = json.loads((tmp_path / "site" / "catalog.json").read_text())
    manifest = json.loads((tmp_path / "site" / catalog["manifest"]).read_text())
    refers = {item["node_path"]: len(item.get("refers", [])) for item in manifest["items"] if item["node_path"].startswith("acq/NDTiffStack")}
    assert refers["acq/NDTiffStack"] == 12  # its 11 other files and the index
    assert {n for path, n in refers.items() if path != "acq/NDTiffStack"} == {1}


def _counting_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file tifffile opens in this process, by name."""
    opened: list[str] = []
    real = tifffile.TiffFile.__init__

    def counting(self: tifffile.TiffFile, arg: object, *args: object, **kwargs: object) -> None:
        opened.append(Path(getattr(arg, "name", str(arg))).name)
        real(self, arg, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffFile, "__init__", counting)
    return opened


def _build_here(tmp_path: Path) -> object:
    """A build converting in this process (no worker processes), where the test counts opens."""
    config = {"sources": [{"path": "tree", "into": ""}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip",
              "build": {"processes": 0}}
    return build(load_pipeline(write_pipeline(tmp_path, config)), workers=1)


def test_the_parts_of_an_ome_series_do_not_each_read_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plane a file, 40 files each naming all 40: each part read the series (opening its 40
    files) to learn it was a part: 1,600 opens, 2.0 s for 100 files and ~200 s for 1,000. A part
    is known from its OME-XML's names and the first file's kind: ~2 opens a file."""
    (tmp_path / "tree").mkdir()
    ids = [str(uuid.uuid4()) for _ in range(40)]
    files = [(f"t{i:03d}.ome.tif", ids[i]) for i in range(40)]
    for i, (name, ident) in enumerate(files):
        tifffile.imwrite(tmp_path / "tree" / name, np.full((3, 4), i, np.uint8), description=_ome(ident, files), metadata=None)
    opened = _counting_opens(monkeypatch)
    report = _build_here(tmp_path)
    assert {k: _planes(v) for k, v in _arrays(tmp_path / "site").items()} == {"t000.ome": list(range(40))}
    assert {p.path: p.reason for p in report.skipped} == {
        f"t{i:03d}.ome": "part of the ome series of 40 files published from t000.ome.tif" for i in range(1, 40)}
    assert len(opened) <= 3 * 40, f"{len(opened)} opens for 40 files"


def test_the_parts_of_an_acquisition_do_not_each_read_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file of an NDTiff acquisition opened every other one (its series' keyframes) to learn
    it was a part; the acquisition's index names its files."""
    _acquisition(tmp_path / "tree" / "acq", 23 * 12)  # 12 files
    opened = _counting_opens(monkeypatch)
    report = _build_here(tmp_path)
    assert list(_arrays(tmp_path / "site")) == ["acq/NDTiffStack"]
    parts = {p.path for p in report.skipped if p.reason == "part of the ndtiff series of 12 files published from NDTiffStack.tif"}
    assert parts == {f"acq/NDTiffStack_{i}" for i in range(1, 12)}
    assert len(opened) <= 3 * 12, f"{len(opened)} opens for 12 files"


def test_a_series_with_a_corrupt_file_fails_naming_it(tmp_path: Path) -> None:
    """The first of three files of an OME series corrupt: tifffile raised ``KeyError: 0`` reading
    the series from the others and ``IndexError`` for the file itself. Each failure names the file
    and why; the third is a part of the series the second (the first readable) publishes."""
    (tmp_path / "tree").mkdir()
    ids = [str(uuid.uuid4()) for _ in range(3)]
    files = [(f"{c}.ome.tif", ids[i]) for i, c in enumerate("abc")]
    for i, (name, ident) in enumerate(files):
        tifffile.imwrite(tmp_path / "tree" / name, np.full((3, 4), i, np.uint8), description=_ome(ident, files), metadata=None)
    (tmp_path / "tree" / "a.ome.tif").write_bytes(b"II*\x00" + b"not a tiff" * 10)
    report = _build_here(tmp_path)
    failures = {p.path: p.reason for p in report.failures}
    assert failures == {
        "a.ome": "SourceError: a.ome.tif: not a readable TIFF file: no image in it",
        "b.ome": "SourceError: b.ome.tif: its image series could not be read (KeyError: 0): a.ome.tif, of its series, holds no image "
                 "tifffile reads"}
    assert {p.path: p.reason for p in report.skipped} == {"c.ome": "part of the ome series of 3 files published from b.ome.tif"}


def test_an_acquisition_whose_first_file_is_gone_fails_naming_it(tmp_path: Path) -> None:
    """Its index lists NDTiffStack.tif, deleted (or not copied yet): the other files were skipped
    as parts of the series "published from" that missing file, and the build passed publishing
    nothing. They fail, naming it (as they did when each read the series)."""
    _acquisition(tmp_path / "tree" / "acq", 69)
    (tmp_path / "tree" / "acq" / "NDTiffStack.tif").unlink()
    report = _build_tree(tmp_path)
    assert not any("part of" in p.reason for p in report.skipped)
    assert {p.path for p in report.failures} == {"acq/NDTiffStack_1", "acq/NDTiffStack_2"}
    assert all("No such file or directory" in p.reason and "NDTiffStack.tif" in p.reason for p in report.failures), report.failures


def test_an_acquisition_half_copied_is_published_once_the_copy_completes(tmp_path: Path) -> None:
    """NDTiffStack_1.tif still being copied at the first build: NDTiffStack.tif's failure was
    recorded as the file's own with no record of the others, and never tried again (the file
    unchanged). It names the file at fault and records the acquisition's files."""
    _acquisition(tmp_path / "made", 69)
    acq = tmp_path / "tree" / "acq"
    shutil.copytree(tmp_path / "made", acq)
    whole = (acq / "NDTiffStack_1.tif").read_bytes()
    (acq / "NDTiffStack_1.tif").write_bytes(whole[:100])
    report = _build_tree(tmp_path)
    failures = {p.path: p.reason for p in report.failures}
    assert failures["acq/NDTiffStack"].endswith("NDTiffStack_1.tif, of its series, holds no image tifffile reads"), failures
    (acq / "NDTiffStack_1.tif").write_bytes(whole)  # the copy completes
    again = _build_tree(tmp_path)
    assert not again.failures
    assert _published(tmp_path / "site")["acq/NDTiffStack"][:, 0, 0].tolist() == list(range(69))


def test_a_part_names_the_file_publishing_its_series_once_an_earlier_one_is_back(tmp_path: Path) -> None:
    """p, q, r of one series; p deleted (q published it, r a part "published from q"), then back:
    p publishes it, and r, whose record named q alone, went on saying q. A part refers to the
    named files before its publisher too."""
    (tmp_path / "tree").mkdir()
    ids = [str(uuid.uuid4()) for _ in range(3)]
    files = [(f"{c}.ome.tif", ids[i]) for i, c in enumerate("pqr")]
    for i, (name, ident) in enumerate(files):
        tifffile.imwrite(tmp_path / "tree" / name, np.full((3, 4), 5 + i, np.uint8), description=_ome(ident, files), metadata=None)
    kept = (tmp_path / "tree" / "p.ome.tif").read_bytes()
    _build_tree(tmp_path)
    (tmp_path / "tree" / "p.ome.tif").unlink()
    without = _build_tree(tmp_path)
    assert {p.path: p.reason for p in without.skipped} == {"r.ome": "part of the ome series of 3 files published from q.ome.tif"}
    assert [(p.path, p.reason) for p in without.warnings] == [
        ("q.ome", "q.ome.tif: p.ome.tif, which its OME-XML names, is not there: its planes read as zeros")]
    assert {k: _planes(v) for k, v in _arrays(tmp_path / "site").items()} == {"q.ome": [0, 6, 7]}
    (tmp_path / "tree" / "p.ome.tif").write_bytes(kept)
    report = _build_tree(tmp_path)
    assert {p.path: p.reason for p in report.skipped} == {
        f"{c}.ome": "part of the ome series of 3 files published from p.ome.tif" for c in "qr"}
    assert {k: _planes(v) for k, v in _arrays(tmp_path / "site").items()} == {"p.ome": [5, 6, 7]}


def test_a_file_whose_ome_xml_does_not_name_it_does_not_publish_its_series(tmp_path: Path) -> None:
    """z.ome.tif names z and b; b.ome.tif names only itself (it reads as one plane): z was skipped
    as part of a series b "published", which b does not read, and z's planes went unpublished."""
    (tmp_path / "tree").mkdir()
    tifffile.imwrite(tmp_path / "tree" / "z.ome.tif", np.full((3, 4), 7, np.uint8),
                     description=_ome("z", [("z.ome.tif", "z"), ("b.ome.tif", "b")]), metadata=None)
    tifffile.imwrite(tmp_path / "tree" / "b.ome.tif", np.full((3, 4), 42, np.uint8), description=_ome("b", [("b.ome.tif", "b")]),
                     metadata=None)
    report = _build_tree(tmp_path)
    assert not report.skipped and not report.failures
    assert {k: _planes(v) for k, v in _arrays(tmp_path / "site").items()} == {"b.ome": [42], "z.ome": [7, 42]}


def test_a_part_whose_companion_is_half_copied_is_tried_again_once_it_is_whole(tmp_path: Path) -> None:
    """a.ome.tif cut to 6 bytes (its copy under way) at the first build: tifffile raised struct.error
    asking whether it publishes the series, b.ome.tif failed with "unpack requires a buffer of 4
    bytes", recorded as b's own with nothing referred, and stayed failed after a's copy ended."""
    (tmp_path / "tree").mkdir()
    ids = [str(uuid.uuid4()) for _ in range(2)]
    files = [("a.ome.tif", ids[0]), ("b.ome.tif", ids[1])]
    for i, (name, ident) in enumerate(files):
        tifffile.imwrite(tmp_path / "tree" / name, np.full((3, 4), 7 + i, np.uint8), description=_ome(ident, files), metadata=None)
    whole = (tmp_path / "tree" / "a.ome.tif").read_bytes()
    (tmp_path / "tree" / "a.ome.tif").write_bytes(whole[:6])
    failures = {p.path: p.reason for p in _build_here(tmp_path).failures}
    assert "a.ome.tif, of its series, holds no image tifffile reads" in failures["b.ome"], failures
    (tmp_path / "tree" / "a.ome.tif").write_bytes(whole)
    report = _build_here(tmp_path)
    assert not report.failures and {p.path: p.reason for p in report.skipped} == {
        "b.ome": "part of the ome series of 2 files published from a.ome.tif"}
    assert {k: _planes(v) for k, v in _arrays(tmp_path / "site").items()} == {"a.ome": [7, 8]}


def test_a_companion_linked_from_another_folder_does_not_take_the_series(tmp_path: Path) -> None:
    """a.ome.tif a symbolic link to a file elsewhere: tifffile reads its companions beside its
    target, where b.ome.tif is not (its plane zeros). b was skipped as a part of a's series, and
    its plane was published nowhere; b publishes the series it reads whole."""
    (tmp_path / "tree").mkdir()
    (tmp_path / "elsewhere").mkdir()
    ids = [str(uuid.uuid4()) for _ in range(2)]
    files = [("a.ome.tif", ids[0]), ("b.ome.tif", ids[1])]
    tifffile.imwrite(tmp_path / "elsewhere" / "a.ome.tif", np.full((3, 4), 7, np.uint8), description=_ome(ids[0], files), metadata=None)
    tifffile.imwrite(tmp_path / "tree" / "b.ome.tif", np.full((3, 4), 42, np.uint8), description=_ome(ids[1], files), metadata=None)
    (tmp_path / "tree" / "a.ome.tif").symlink_to(tmp_path / "elsewhere" / "a.ome.tif")
    config = {"sources": [{"path": "tree", "into": ""}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip",
              "symlinks_outside": "allow", "build": {"processes": 0}}
    report = build(load_pipeline(write_pipeline(tmp_path, config)), workers=1)
    assert not report.skipped and not report.failures
    assert {k: _planes(v) for k, v in _arrays(tmp_path / "site").items()} == {"a.ome": [7, 0], "b.ome": [7, 42]}
