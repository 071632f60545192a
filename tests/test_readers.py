"""Each reader on small files it must handle, detection by magic bytes, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr
from click.testing import CliRunner

from publisher.cli import EXIT_FAILED, main
from publisher.readers import detect, readers

from .conftest import run_build, write_pipeline


def test_every_builtin_reader_is_registered() -> None:
    assert {"hdf5", "netcdf", "hdf4", "tiff", "image", "npy", "csv", "parquet", "excel"} <= set(readers())


def test_detection_prefers_magic_bytes(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "scan.dat", "w") as f:  # HDF5 content, an extension that says nothing
        f["x"] = np.arange(3)
    assert detect(tmp_path / "scan.dat").name == "hdf5"
    (tmp_path / "fake.h5").write_text("a,b\n1,2\n")  # claims HDF5 by name only
    assert detect(tmp_path / "fake.h5").name == "hdf5"  # ... and its reader will report it as corrupt
    (tmp_path / "table.tsv").write_text("a\tb\n1\t2\n")
    assert detect(tmp_path / "table.tsv").name == "csv"
    (tmp_path / "x.nc").write_bytes(b"CDF\x01" + b"\x00" * 32)
    assert detect(tmp_path / "x.nc").name == "netcdf"
    (tmp_path / "unknown.bin").write_bytes(b"\x00\x01\x02")
    assert detect(tmp_path / "unknown.bin") is None


def test_image_npy_parquet_excel_tsv(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    gray = rng.integers(0, 255, (30, 20), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.jpg", quality=95)
    big_endian = np.arange(24, dtype=">f8").reshape(2, 3, 4)
    big_endian[0, 0, 0] = np.nan
    np.save(tmp_path / "cube.npy", big_endian)
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"], "t": pd.to_datetime(["2026-01-01", "2026-01-02", None])})
    frame.to_parquet(tmp_path / "events.parquet")
    with pd.ExcelWriter(tmp_path / "book.xlsx") as writer:
        frame[["a", "b"]].to_excel(writer, sheet_name="first", index=False)
        pd.DataFrame({"q": [0.5, 1.5]}).to_excel(writer, sheet_name="second", index=False)
    (tmp_path / "spectra.tsv").write_text("# exported\nenergy\tcounts\n1.0\t10\n2.0\tnan\n3.0\t12\n")
    (tmp_path / "spaces.csv").write_text("x    y\n1    2\n3    4\n")

    published = run_build(tmp_path, {"sources": [{"path": ".", "exclude": ["pipeline.yml", "site/**"]}]})
    assert not published.report.skipped, published.report.skipped
    np.testing.assert_array_equal(zarr.open_array(published.url("photo"), mode="r")[...], rgb)
    assert published.node("photo")["structure"]["dims"] == ["y", "x", "band"]
    assert zarr.open_array(published.url("gray"), mode="r").shape == (30, 20)
    cube = zarr.open_array(published.url("cube"), mode="r")[...]
    assert cube.dtype == np.dtype("<f8") and cube.tobytes() == big_endian.astype("<f8").tobytes()
    pd.testing.assert_frame_equal(pd.read_parquet(published.url("events")), frame)
    assert pd.read_parquet(published.url("book/first"))["a"].tolist() == [1, 2, 3]
    assert pd.read_parquet(published.url("book/second"))["q"].tolist() == [0.5, 1.5]
    spectra = pd.read_parquet(published.url("spectra"))
    assert list(spectra.columns) == ["energy", "counts"] and spectra["counts"].isna().sum() == 1
    assert published.node("spectra")["metadata"]["delimiter"] == "\t"
    assert pd.read_parquet(published.url("spaces")).to_dict("list") == {"x": [1, 3], "y": [2, 4]}


def test_excel_columns_mixing_numbers_and_text_are_published_as_text(tmp_path: Path) -> None:
    """A note under a column of counts failed the whole workbook (Arrow: "Could not convert 'note'
    ... tried to convert to int64"); the column is text now, with a warning naming it."""
    pd.DataFrame({"count": [1, 2, 3, "note: detector off"], "t": [0.5, 1.0, 1.5, 2.0], "when": [1.5, None, "late", 4]}).to_excel(
        tmp_path / "log.xlsx", index=False)
    published = run_build(tmp_path, {"sources": [{"path": "log.xlsx"}]})
    table = pd.read_parquet(published.url("log"))
    assert table["count"].tolist() == ["1", "2", "3", "note: detector off"] and table["t"].tolist() == [0.5, 1.0, 1.5, 2.0]
    assert [None if pd.isna(v) else v for v in table["when"]] == ["1.5", None, "late", "4"]
    assert any("'count', 'when' mix numbers and text" in reason for reason in published.problems("warnings").values())


def test_excel_headers_equal_as_text_get_distinct_names(tmp_path: Path) -> None:
    """A header cell holding the number 1 and one holding the text "1" are two pandas labels but
    one name as text: the sheet failed with an AttributeError. They are named as pandas names
    repeated headers (``1``, ``1.1``)."""
    pd.DataFrame([[10, 20, 30], [11, 21, 31]], columns=[1, "1", "1.1"]).to_excel(tmp_path / "h.xlsx", index=False)
    table = pd.read_parquet(run_build(tmp_path, {"sources": [{"path": "h.xlsx"}]}).url("h"))
    assert list(table.columns) == ["1", "1.2", "1.1"] and table["1.2"].tolist() == [20, 21]


def test_excel_cells_read_as_empty_are_named(tmp_path: Path) -> None:
    """pandas reads a formula error (``#DIV/0!``) and a formula saved without its computed value
    (openpyxl and xlsxwriter never compute them) as empty: the table had silent gaps. Each sheet
    says which cells and why; a sheet with computed formulas says nothing."""
    import openpyxl

    book = openpyxl.Workbook()
    runs = book.active
    runs.title = "runs"
    runs.append(["scan", "ratio", "total"])
    for i in range(1, 9):
        runs.append([i, "#DIV/0!" if i in (2, 5) else i / 2, f"=A{i + 1}*2" if i > 1 else 2])
    clean = book.create_sheet("clean")
    clean.append(["x"])
    clean.append([1])
    book.save(tmp_path / "book.xlsx")
    published = run_build(tmp_path, {"sources": [{"path": "book.xlsx"}]})
    table = pd.read_parquet(published.url("book/runs"))
    assert table["ratio"].isna().tolist() == [i in (2, 5) for i in range(1, 9)]
    assert {p.path for p in published.report.warnings} == {"book/runs"}, published.report.warnings
    text = " | ".join(p.reason for p in published.report.warnings)
    assert "2 cells hold a formula error (B3 (#DIV/0!), B6 (#DIV/0!))" in text, text
    assert "7 formulas (C3, C4, C5, C6, C7 and 2 more) have no computed value" in text, text


def _rewritten(source: Path, target: Path, edits: dict[str, Any]) -> None:
    """A copy of a workbook with some of its XML parts changed (``edits``: part -> function of its text)."""
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename in edits:
                data = edits[item.filename](data.decode()).encode()
            new.writestr(item, data)


def test_excel_formula_values_no_program_computed_are_named_and_computed_ones_are_not(tmp_path: Path) -> None:
    """Three workbooks as other writers save them, made from openpyxl's XML: xlsxwriter's (each
    formula stored as 0 and ``fullCalcOnLoad``: pandas read 0, no warning), Excel's (computed
    values, an empty text result as ``<v></v>``: no warning; it was taken for uncomputed), and
    the Open XML SDK's prefixed elements (``<x:c>``: an error and an uncomputed formula went unseen)."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "s"
    book.active.append(["a", "double", "label"])
    book.active.append([21, "=A2*2", '=IF(A2>100,"big","")'])
    book.save(tmp_path / "openpyxl.xlsx")
    sheet = "xl/worksheets/sheet1.xml"
    (tmp_path / "in").mkdir()
    _rewritten(tmp_path / "openpyxl.xlsx", tmp_path / "in" / "xw.xlsx", {sheet: lambda x: x.replace("<v />", "<v>0</v>")})
    _rewritten(tmp_path / "openpyxl.xlsx", tmp_path / "in" / "excel.xlsx", {
        "xl/workbook.xml": lambda x: x.replace(' fullCalcOnLoad="1"', ""),
        sheet: lambda x: x.replace('<c r="C2">', '<c r="C2" t="str">').replace("A2*2</f><v />", "A2*2</f><v>42</v>").replace("<v />", "<v></v>")})
    prefixed = {sheet: lambda x: re.sub(r"<(/?)(\w+)", r"<\1x:\2", x).replace('xmlns="', 'xmlns:x="')
                .replace("<x:v />", "<x:v></x:v>").replace('<x:c r="A2" t="n"><x:v>21</x:v>', '<x:c r="A2" t="e"><x:v>#N/A</x:v>')}
    _rewritten(tmp_path / "openpyxl.xlsx", tmp_path / "in" / "prefixed.xlsx", prefixed)
    published = run_build(tmp_path, {"sources": [{"path": "in", "into": ""}], "on_error": "skip"})
    assert published.report.failures == [], published.report.failures
    warnings = {p.path: p.reason for p in published.report.warnings}
    assert set(warnings) == {"xw", "prefixed"}, warnings
    assert "2 formulas (B2, C2) have their values marked to be recalculated when the workbook is opened" in warnings["xw"], warnings["xw"]
    assert pd.read_parquet(published.url("xw"))["double"].tolist() == [0]  # (as stored: only a warning can tell)
    assert pd.read_parquet(published.url("excel"))["double"].tolist() == [42]
    reasons = " | ".join(p.reason for p in published.report.warnings if p.path == "prefixed")
    assert "1 cell holds a formula error (A2 (#N/A))" in reasons and "2 formulas (B2, C2) have no computed value" in reasons, reasons


def test_large_tables_split_into_partitions(tmp_path: Path) -> None:
    rows = 2500
    pd.DataFrame({"i": np.arange(rows), "v": np.sqrt(np.arange(rows))}).to_csv(tmp_path / "log.csv", index=False)
    published = run_build(tmp_path, {"sources": [{"path": "log.csv"}], "output": {"store": str(tmp_path / "site"), "table_partition_rows": 1000}})
    structure = published.node("log")["structure"]
    assert structure["npartitions"] == 3 and structure["partition_rows"] == [1000, 1000, 500] and structure["row_count"] == rows
    table = pq.read_table(published.url("log"))  # the folder of partitions reads as one table
    assert table.num_rows == rows and table["i"].to_pylist() == list(range(rows))
    schema = pa.ipc.read_schema(pa.py_buffer(__import__("base64").b64decode(structure["arrow_schema"].split(",", 1)[1])))
    assert schema.names == ["i", "v"]


def test_rules_chunks_codec_and_metadata(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("a/img", data=np.arange(64 * 64, dtype="u2").reshape(64, 64))
        f.create_dataset("b/img", data=np.zeros((8, 8)))
    published = run_build(
        tmp_path,
        {"sources": [{"path": "m.h5"}],
         "rules": [{"match": "m/a/*", "chunks": [16, None], "codec": "gzip:3", "metadata": {"quality": "good"}, "access_tags": ["beamline"]},
                   {"match": "m/b", "skip": True}]},
    )
    node = published.node("m/a/img")
    assert node["structure"]["chunks"] == [[16] * 4, [64]]
    assert node["metadata"]["quality"] == "good" and node["access_tags"] == ["beamline"]
    array = zarr.open_array(published.url("m/a/img"), mode="r")
    assert array.chunks == (16, 64) and type(array.compressors[0]).__name__ == "GzipCodec"
    assert [c.key for c in published.catalog.entries("m")] == ["a"]


def test_bad_reader_options_fail_before_writing(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    store = tmp_path / "site"
    pipeline = write_pipeline(tmp_path, {"sources": [{"path": "a.csv", "options": {"delimeter": ";"}}], "output": {"store": str(store)}})
    result = CliRunner().invoke(main, ["build", "-c", str(pipeline)])
    assert result.exit_code == EXIT_FAILED
    assert f"{pipeline}:4: options.delimeter: Extra inputs are not permitted (for the csv reader)" in result.output
    assert not store.exists()


def test_same_path_from_two_sources_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "a.tsv").write_text("x\n1\n")
    pipeline = write_pipeline(tmp_path, {"sources": [{"path": "a.csv"}, {"path": "a.tsv"}]})
    result = CliRunner().invoke(main, ["validate", "-c", str(pipeline)])
    assert result.exit_code == EXIT_FAILED and "would both be published at 'a'" in result.output


def test_external_and_soft_links(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["payload"] = np.arange(4.0)
    with h5py.File(tmp_path / "main.h5", "w") as f:
        f["data/x"] = np.arange(3)
        f["soft"] = h5py.SoftLink("/data/x")
        f["dangling"] = h5py.SoftLink("/nowhere")
        f["ext"] = h5py.ExternalLink("other.h5", "/payload")
        f["ext_missing"] = h5py.ExternalLink("gone.h5", "/payload")
    published = run_build(tmp_path, {"sources": [{"path": "main.h5"}]})
    root = published.node("main")
    assert root["notes"]["links"] == {"soft": "/data/x"}
    assert root["notes"]["dangling_links"]["dangling"]["target"] == "/nowhere"
    assert root["notes"]["external_links"]["ext_missing"] == {"file": "gone.h5", "path": "/payload", "missing": True}
    np.testing.assert_array_equal(zarr.open_array(published.url("main/ext"), mode="r")[...], np.arange(4.0))  # present: followed
    assert "/soft" in published.node("main/data/x")["notes"]["aliases"]
    warnings = " ".join(p.reason for p in published.report.warnings)
    assert "dangling soft link" in warnings and "gone.h5" in warnings
    assert json.loads(published.store.read_bytes(published.catalog.document["report"]))["published"] is True


def test_registry_loads_once_for_concurrent_detection(tmp_path: Path) -> None:
    """Threads detecting at the same moment all see the full registry (it loads under a lock)."""
    import subprocess
    import sys

    (tmp_path / "t.csv").write_text("a\n1\n")
    script = f"""
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from publisher.readers import detect
with ThreadPoolExecutor(8) as pool:
    found = list(pool.map(lambda _: detect(Path({str(tmp_path / 't.csv')!r})), range(64)))
assert all(r is not None and r.name == "csv" for r in found), found
"""
    subprocess.run([sys.executable, "-c", script], check=True)


def test_file_next_to_folder_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "a.csv").write_text("x\n1\n")
    (tmp_path / "data" / "a" / "b.csv").write_text("y\n2\n")
    published = run_build(tmp_path, {"sources": [{"path": "data", "into": ""}]})
    assert sorted(c.key for c in published.catalog.entries("")) == ["a", "a.csv"]
    assert pd.read_parquet(published.url("a.csv"))["x"].tolist() == [1]
    assert pd.read_parquet(published.url("a/b"))["y"].tolist() == [2]


def test_file_next_to_a_folder_of_the_same_name_with_files_only_deeper(tmp_path: Path) -> None:
    """The folder ``a`` publishes only below a subfolder: the file is keyed ``a.csv`` all the same.
    It was keyed ``a`` (only the folder's direct files were looked at), and its table row took the
    folder's place in the index, ``a/sub/b`` converted but listed nowhere; an HDF5 ``a.h5``
    holding ``/sub/b`` replaced the CSV's node silently."""
    import h5py

    (tmp_path / "data" / "a" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "a.csv").write_text("x\n1\n")
    (tmp_path / "data" / "a" / "sub" / "b.csv").write_text("y\n2\n")
    with h5py.File(tmp_path / "data" / "c.h5", "w") as f:
        f["sub/b"] = np.arange(5)
    (tmp_path / "data" / "c" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "c" / "sub" / "b.csv").write_text("z\n3\n")
    published = run_build(tmp_path, {"sources": [{"path": "data", "into": ""}]})
    assert sorted(c.key for c in published.catalog.entries("")) == ["a", "a.csv", "c", "c.h5"]
    assert pd.read_parquet(published.url("a.csv"))["x"].tolist() == [1]
    assert pd.read_parquet(published.url("a/sub/b"))["y"].tolist() == [2]
    assert pd.read_parquet(published.url("c/sub/b"))["z"].tolist() == [3]
    assert zarr.open_array(published.url("c.h5/sub/b"), mode="r")[...].tolist() == [0, 1, 2, 3, 4]
    assert not published.report.failures


def test_hdf5_after_a_user_block_is_detected_and_read(tmp_path: Path) -> None:
    """MuData's .h5mu (and any HDF5 file made with a user block) starts with text, its HDF5
    signature at byte 512, 1024 or 2048: still an HDF5 file, read as one."""
    import h5py

    for size in (512, 1024, 2048):
        path = tmp_path / f"ub{size}.dat"  # an extension that says nothing: the magic decides
        with h5py.File(path, "w", userblock_size=size) as f:
            f["x"] = np.arange(6, dtype="<i4").reshape(2, 3)
        with path.open("r+b") as raw:
            raw.write(b"MuData (format-version=0.1.0)")
        reader = detect(path)
        assert reader is not None and reader.name == "hdf5", size
    pub = run_build(tmp_path, {"sources": [{"path": "ub2048.dat"}]})
    assert zarr.open_array(pub.url("ub2048/x"), mode="r")[...].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_tiff_with_64_bit_samples_and_a_nan_nodata(tmp_path: Path) -> None:
    """tifffile gives 64-bit samples as numpy's long long ('Q'), which zarr 3.1 did not match to any
    of its data types; GDAL's nodata "nan" is published as STAC's raster extension writes it."""
    import tifffile
    import zarr

    (tmp_path / "in").mkdir()
    big = (np.arange(300 * 200, dtype=np.uint64) * 2**40).reshape(300, 200)
    tifffile.imwrite(tmp_path / "in" / "u64.tif", big, rowsperstrip=64)
    tifffile.imwrite(tmp_path / "in" / "i64.tif", -big.astype(np.int64))
    tifffile.imwrite(tmp_path / "in" / "dem.tif", np.full((64, 64), np.nan, "f4"), extratags=[(42113, "s", 0, "nan", True)])
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "t"}]})
    assert np.array_equal(zarr.open_array(site.url("t/u64"), mode="r")[...], big)
    assert np.array_equal(zarr.open_array(site.url("t/i64"), mode="r")[...], -big.astype(np.int64))
    assert site.node("t/dem")["metadata"]["nodata"] == "nan"


def test_images_past_pillows_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's guard against decompression bombs (its limit lowered here): past twice the limit
    an image is skipped with a reason that says what to do; past the limit it is published, with a
    warning in the report (not Pillow's on stderr)."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "in" / "huge.png")
    Image.fromarray(np.full((40, 40), 7, np.uint8)).save(tmp_path / "in" / "large.png")
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "img"}], "on_error": "skip"})
    (skipped,) = site.report.skipped
    assert skipped.path == "img/huge" and "too large to decode at once" in skipped.reason and "tiled TIFF" in skipped.reason
    (warning,) = site.report.warnings
    assert warning.path == "img/large" and "40 x 40 pixels, decoded whole" in warning.reason
    assert site.node("img/large")["structure"]["shape"] == [40, 40]
