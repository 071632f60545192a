"""The direct Zarr writer against zarr-python itself: same metadata documents, same values."""

from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from publisher.config.models import Codec
from publisher.nodes import ArrayNode
from publisher.stores import Store
from publisher.writers.zarr_array import ZarrWriter

warnings.filterwarnings("ignore", category=UserWarning)

DTYPES = ["bool", "i1", "u1", "<i2", "<u4", "<i8", "<f2", "<f4", "<f8", "<c8", "<c16", "S5", "O"]


def _node(values: np.ndarray, chunks: tuple[int, ...] | None = None) -> ArrayNode:
    return ArrayNode(key="x", dtype=values.dtype, shape=values.shape, read=lambda sel: values[sel], chunks=chunks,
                     dims=[f"d{i}" for i in range(values.ndim)], metadata={"units": "mm"})


def _write(tmp_path: Path, values: np.ndarray, zarr_format: int, chunks: tuple[int, ...] | None = None, codec: str = "zstd") -> str:
    store = Store(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        writer = ZarrWriter(store, "r", zarr_format, Codec.model_validate(codec), 2**20, pool)
        docs: dict = {}
        writer.group("g", {"a": 1}, docs)
        writer.array("g/x", _node(values, chunks), documents=docs)
        writer.consolidate_tree("g", ["g"], docs)
    return str(tmp_path / "r" / "g")


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_metadata_matches_zarr_python(tmp_path: Path, dtype: str, zarr_format: int) -> None:
    values = np.array(["a", "bé", "", "xyz", "q", "r"], dtype=object).reshape(2, 3) if dtype == "O" else np.arange(6).astype(dtype).reshape(2, 3)
    ours = _write(tmp_path / "ours", values, zarr_format, chunks=(1, 2))
    theirs = str(tmp_path / "theirs")
    arr = zarr.create_array(theirs, shape=values.shape, chunks=(1, 2), dtype=str if dtype == "O" else values.dtype, zarr_format=zarr_format,
                            compressors=zarr.codecs.ZstdCodec(level=3) if zarr_format == 3 else __import__("numcodecs").Zstd(level=3),
                            dimension_names=["d0", "d1"] if zarr_format == 3 else None,
                            fill_value=("" if dtype == "O" else b"" if dtype == "S5" else 0) if zarr_format == 3 else None,
                            attributes={"units": "mm", **({} if zarr_format == 3 else {"_ARRAY_DIMENSIONS": ["d0", "d1"]})})
    arr[...] = values
    name = "zarr.json" if zarr_format == 3 else ".zarray"
    mine, reference = json.loads(Path(ours, "x", name).read_text()), json.loads(Path(theirs, name).read_text())
    assert mine == reference
    read = zarr.open_array(f"{ours}/x", mode="r")[...]
    np.testing.assert_array_equal(read, np.asarray(arr[...]))
    for chunk in Path(theirs).rglob("*"):
        if chunk.is_file() and chunk.name not in ("zarr.json", ".zarray", ".zattrs"):
            assert Path(ours, "x", chunk.relative_to(theirs)).read_bytes() == chunk.read_bytes()  # byte-identical chunks


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_consolidated_metadata_opens_every_group(tmp_path: Path, zarr_format: int) -> None:
    store = Store(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        writer = ZarrWriter(store, "r", zarr_format, Codec(), 2**20, pool)
        docs: dict = {}
        for group in ("f", "f/a", "f/a/b", "f/c"):
            writer.group(group, {"name": group}, docs)
        writer.array("f/a/b/v", _node(np.arange(5.0)), documents=docs)
        writer.array("f/c/w", _node(np.arange(3)), documents=docs)
        writer.consolidate_tree("f", ["f", "f/a", "f/a/b", "f/c"], docs)
    for group, members in (("f", {"a", "c"}), ("f/a", {"b"}), ("f/a/b", {"v"}), ("f/c", {"w"})):
        opened = zarr.open_consolidated(str(tmp_path / "r" / group), zarr_format=zarr_format)
        assert set(opened.keys()) == members and opened.attrs["name"] == group
    deep = zarr.open_consolidated(str(tmp_path / "r" / "f"), zarr_format=zarr_format)
    np.testing.assert_array_equal(deep["a/b/v"][...], np.arange(5.0))


def test_arrays_of_one_form_share_a_layout_and_keep_their_own_fill(tmp_path: Path) -> None:
    """Same-shaped arrays share one layout (zarr's data type and codec looked up once); fills that
    compare equal but are not the same value (-0.0 and 0.0, NaNs of two payloads, 1 and True) do
    not, and each array's zarr.json keeps its own attributes and fill."""
    store = Store(tmp_path)
    nans = np.array([0x7FC00000, 0x7FC00001], dtype="<u4").view("<f4")
    fills = [0.0, -0.0, np.float32(0), np.float32(-0.0), nans[0], nans[1]]
    with ThreadPoolExecutor(2) as pool:
        writer = ZarrWriter(store, "r", 3, Codec(), 2**20, pool)
        layouts = []
        for i, fill in enumerate([0.0, 0.0, *fills]):
            values = np.arange(6, dtype="<f4").reshape(2, 3)
            node = ArrayNode(key="x", dtype=values.dtype, shape=values.shape, read=lambda sel, v=values: v[sel], chunks=(2, 2),
                             dims=["y", "x"], metadata={"i": i}, fill_value=fill)
            layouts.append(writer.begin(f"a{i}", node))
    assert layouts[0]._v3 is layouts[1]._v3 is layouts[2]._v3  # the same form: one layout's documents, made once
    assert layouts[0]._constant is not layouts[1]._constant  # (but each array's own constant chunks)
    assert len({id(layout._v3) for layout in layouts[2:]}) == len(fills)  # each distinct fill its own
    docs = [json.loads((tmp_path / "r" / f"a{i}" / "zarr.json").read_text()) for i in range(len(layouts))]
    assert [d["attributes"]["i"] for d in docs] == list(range(len(layouts)))
    assert [np.asarray(layout.fill, "<f4").tobytes() for layout in layouts[4:]] == [np.asarray(f, "<f4").tobytes() for f in fills[2:]]
    assert docs[3]["fill_value"] == -0.0 and str(docs[3]["fill_value"]) == "-0.0"


def test_a_writer_keeps_no_arrays_constant_chunks_after_them(tmp_path: Path) -> None:
    """Chunks of one value (a source's unwritten chunks) are encoded once per array and shape;
    the writer, which lasts the whole build, keeps none of them once the array is written (with
    no codec each is a full chunk: 256 shared layouts held gigabytes)."""
    store = Store(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        writer = ZarrWriter(store, "r", 3, Codec.model_validate("none"), 2**16, pool)
        for i in range(3):
            node = ArrayNode(key="x", dtype=np.dtype("<f8"), shape=(8 + i, 64, 64), read=lambda sel: pytest.fail("read"),
                             chunks=(1, 64, 64), constant=lambda sel: np.float64(7))
            writer.array(f"a{i}", node)
    assert writer._layouts and not any(layout._constant for _, layout in writer._layouts.values())
    assert (zarr.open_array(str(tmp_path / "r" / "a2"), mode="r")[...] == 7).all()


@settings(max_examples=40, deadline=None)
@given(values=hnp.arrays(dtype=st.sampled_from([np.dtype(d) for d in ("<f4", ">f8", "<i2", "u1", "<c16")]),
                         shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=9)),
       data=st.data())
def test_values_round_trip_bit_exact(tmp_path_factory: pytest.TempPathFactory, values: np.ndarray, data: st.DataObject) -> None:
    chunks = tuple(data.draw(st.integers(1, max(n, 1))) for n in values.shape)
    zarr_format = data.draw(st.sampled_from([2, 3]))
    out = _write(tmp_path_factory.mktemp("rt"), values, zarr_format, chunks=chunks or None, codec=data.draw(st.sampled_from(["zstd", "gzip", "blosc-lz4", "none"])))
    read = np.asarray(zarr.open_array(f"{out}/x", mode="r")[...])
    native = values.astype(values.dtype.newbyteorder("="))
    assert read.shape == values.shape and read.tobytes() == native.tobytes()  # NaN payloads included


@pytest.mark.parametrize("setting", ["zstd", "zstd:7", "gzip", "gzip:2", "blosc-lz4", "blosc-zstd:3", "lz4", "none"])
@pytest.mark.parametrize("itemsize", [1, 4])
def test_codec_specs_are_zarrs_own(setting: str, itemsize: int) -> None:
    """A codec setting's ``{name, configuration}`` is what zarr's codec class writes, and the
    shared layout's numcodecs codec makes the bytes zarr reads back."""
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    from publisher.writers.codecs import compressor_spec
    from publisher.zarr_layout import numcodecs_codec

    codec = Codec.model_validate(setting)
    level = codec.level
    want = {
        "zstd": lambda: ZstdCodec(level=3 if level is None else level),
        "gzip": lambda: GzipCodec(level=6 if level is None else level),
        "blosc-lz4": lambda: BloscCodec(cname="lz4", clevel=5 if level is None else level, shuffle="shuffle" if itemsize > 1 else "noshuffle", typesize=itemsize),
        "lz4": lambda: BloscCodec(cname="lz4", clevel=5 if level is None else level, shuffle="shuffle" if itemsize > 1 else "noshuffle", typesize=itemsize),
        "blosc-zstd": lambda: BloscCodec(cname="zstd", clevel=5 if level is None else level, shuffle="shuffle" if itemsize > 1 else "noshuffle", typesize=itemsize),
        "none": lambda: None,
    }[codec.name]()
    spec = compressor_spec(codec, itemsize)
    assert spec == (want.to_dict() if want else None)
    if spec:
        data = np.arange(1000, dtype=f"<u{itemsize}")
        assert bytes(numcodecs_codec(spec).decode(numcodecs_codec(spec).encode(data))) == data.tobytes()
