"""Every real file of shared/REAL_DATA.md: each node published bit-exact or reported with a reason.

One build per package (module-scoped); then every published array is compared with its
source, whole-array and byte for byte (native byte order), and every source dataset is
accounted for: published, an alias of a published node, or reported with a reason.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from publisher.jsonable import decode_bytes

from .conftest import Published, fetch_real, shared_build

pytestmark = pytest.mark.realdata
warnings.filterwarnings("ignore", category=RuntimeWarning)

PACKAGES = {
    "punx": "punx/data",
    "spec2nexus": "spec2nexus/data",
    "pynxtools": "pynxtools/data",
    "sasdata": "sasdata/example_data",
    "stardist": "stardist/data/images",
    "statsmodels": "statsmodels/datasets",
    "vega_datasets": "vega_datasets/_data",
    "tables": "tables/tests",
    "h5py": "h5py/tests/data_files",
    "xarray": "xarray/tests/data",
    "r-cran-stars": "usr/lib/R/site-library/stars",
    # issue 15: sparse (AnnData CSR, legacy h5sparse, 10x CSC), awkward groups, vlen, complex and structured compounds
    "scirpy": "scirpy/tests/data",
    "scanpy": "scanpy/datasets",
    "scanpy-sdist": "scanpy-1.11.5/tests/_data",
    "hyperspy": "hyperspy/tests/io",
    "mneueventlib": "mneueventlib-0.4.0/tests/test_data",  # ISIS HIFI muon events (NXevent_data)
}
#: Files left out of a package's build: j_gene_test_data.h5ad holds ~5,000 nodes (a minute of
#: smoke reading); its awkward and sparse groups are tested in test_awkward_realdata / test_sparse.
EXCLUDE = {"scirpy": ["clonotypes_test_data/*"]}

_builds: dict[str, tuple[Path, Published]] = {}


def published(name: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Published]:
    if name not in _builds:  # test_xarray_datasets reads these builds too, perhaps on another worker
        root = fetch_real(name) / PACKAGES[name]
        source = {"path": str(root), "into": "", "exclude": EXCLUDE.get(name, [])}
        _builds[name] = (root, shared_build(f"real-{name}", {"sources": [source], "on_error": "fail"}, tmp_path_factory))
    return _builds[name]


def decode_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def bytes_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-exact equality: same shape, same values byte for byte (NaN payloads included)."""
    if a.dtype.kind in "OUST" or b.dtype.kind in "OUST":
        return a.shape == b.shape and [str(x) for x in a.reshape(-1)] == [str(x) for x in b.reshape(-1)]
    a = a.astype(a.dtype.newbyteorder("="), copy=False)
    b = b.astype(b.dtype.newbyteorder("="), copy=False)
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def _hdf5_source(f: Any, h5path: str) -> np.ndarray:
    import h5py

    ds = f[h5path]
    value = np.asarray(ds[()])
    if h5py.check_string_dtype(ds.dtype) is not None or value.dtype.kind == "S":
        # the documented rule: UTF-8 where valid, else Latin-1; NUL padding trimmed
        return np.vectorize(lambda b: decode_bytes(b) if isinstance(b, bytes) else b, otypes=[object])(value) if value.size else value
    return value


def _published_arrays(paths: list[str]) -> list[np.ndarray]:
    """The published arrays read whole, concurrently on zarr's own loop: one by one, zarr's
    synchronous API costs ~1.4 ms a call in handing over to its loop (7,924 arrays: ~23 s)."""
    import asyncio

    import zarr.api.asynchronous as azarr
    from zarr.core.sync import sync

    async def one(path: str) -> np.ndarray:
        array = await azarr.open_array(store=path, mode="r")
        return np.asarray(await array.getitem(...))

    async def every() -> list[np.ndarray]:
        return list(await asyncio.gather(*(one(p) for p in paths)))

    return sync(every())


def _array_entries(pub: Published) -> list[dict[str, Any]]:
    return [e for e in pub.entries() if e["family"] == "array"]


@pytest.mark.parametrize("name", list(PACKAGES))
def test_build_publishes_or_reports_every_file(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    root, pub = published(name, tmp_path_factory)
    assert pub.report.published and not pub.report.failures
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
             and not any(p.relative_to(root).match(x) for x in EXCLUDE.get(name, []))]
    accounted = {str(pub.source(e["source_file"])) for e in pub.entries() if e["source_file"]} | {str(pub.source(p.source)) for p in pub.report.skipped}
    sidecar_like = {p for p in files if p.suffix in (".json", ".yaml", ".yml")}
    missing = [p for p in files if str(p) not in accounted and p not in sidecar_like]
    assert not missing, f"neither published nor reported: {missing[:5]}"
    for problem in pub.report.skipped:
        assert problem.reason, problem


def _as_published(entry: dict[str, Any], value: np.ndarray) -> np.ndarray:
    """A source compound as the build publishes it: a real/imaginary pair as complex, any other
    record packed and little-endian (publisher/readers/compound.py)."""
    from numpy.lib import recfunctions

    from publisher.readers.compound import complex_pair, to_complex

    if not value.dtype.names:
        return value
    pair = complex_pair(value.dtype)
    if pair is not None and "complex_from" in (entry["metadata"] or {}):
        return to_complex(value, pair)
    return recfunctions.repack_fields(value.astype(value.dtype.newbyteorder("<")))


@pytest.mark.parametrize("name", ["punx", "spec2nexus", "pynxtools", "sasdata", "tables", "h5py", "scirpy", "scanpy", "scanpy-sdist", "hyperspy", "mneueventlib"])
def test_hdf5_arrays_bit_exact(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    import h5py
    import hdf5plugin  # noqa: F401

    _, pub = published(name, tmp_path_factory)
    checked = 0
    entries = [e for e in _array_entries(pub) if e["source_path"] != ""
               and pub.source(e["source_file"]).suffix.lower() not in (".tif", ".tiff", ".png", ".npy", ".nc")  # NetCDF: test_xarray_datasets
               and pub.source(e["source_file"]).exists()]
    files: dict[Path, Any] = {}  # each source opened once (7,924 opens of a few files took ~5 s)
    try:
        for start in range(0, len(entries), 500):  # (in hundreds: the arrays are held until compared)
            pairs = []
            for entry in entries[start:start + 500]:
                source = pub.source(entry["source_file"])
                try:
                    if source not in files:
                        files[source] = h5py.File(source, "r")
                    expected = _hdf5_source(files[source], entry["source_path"])
                except (OSError, KeyError):  # a NetCDF-3 file has no HDF5 paths; checked through xarray below
                    continue
                pairs.append((entry, source, _as_published(entry, expected)))
            actuals = _published_arrays([str(pub.store.path(e["data_url"])) for e, _, _ in pairs])
            for (entry, source, expected), actual in zip(pairs, actuals, strict=True):
                if expected.dtype.names:  # zarr shows a record's sub-array fields as opaque bytes: compare the packed bytes
                    assert actual.shape == expected.shape and actual.tobytes() == expected.tobytes(), entry["path"]
                else:
                    assert bytes_equal(actual, expected), f"{entry['path']} differs from {source}:{entry['source_path']}"
                checked += 1
    finally:
        for f in files.values():
            f.close()
    assert checked > 0


@pytest.mark.parametrize("name", ["punx", "tables", "h5py", "sasdata", "scirpy", "scanpy", "scanpy-sdist", "hyperspy", "mneueventlib"])
def test_every_hdf5_dataset_accounted_for(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each dataset is a node, an alias of one, a table column, a member of a sparse or awkward
    group (one node) or reported with a reason."""
    import h5py

    root, pub = published(name, tmp_path_factory)
    entries = pub.entries()
    by_file: dict[str, set[str]] = {}
    groups: dict[str, list[str]] = {}  # per file: source groups published as one sparse or awkward node
    for e in entries:
        if e["source_file"] is None:  # folders
            continue
        paths = by_file.setdefault(str(pub.source(e["source_file"])), set())
        paths.add(e["source_path"])
        if e["family"] in ("sparse", "awkward"):
            groups.setdefault(str(pub.source(e["source_file"])), []).append(e["source_path"].rstrip("/") + "/")
            # a 10x matrix is published at <group>/data, its other members named in notes.sparse
            folder = e["source_path"].rpartition("/")[0]
            paths.update(f"{folder}/{m}" for m in ((e["notes"] or {}).get("sparse") or {}).get("members", []))
        paths.update((e["notes"] or {}).get("aliases", []))
        for key in ("links", "dangling_links", "external_links", "skipped"):
            base = e["source_path"].rstrip("/")
            paths.update(f"{base}/{k}" for k in (e["notes"] or {}).get(key, {}))
    skipped = {(str(pub.source(p.source)), p.path) for p in pub.report.skipped}
    for path in root.rglob("*"):
        if not path.is_file() or any(path.relative_to(root).match(x) for x in EXCLUDE.get(name, [])) or not h5py.is_hdf5(path):
            continue
        if str(path) in {s for s, _ in skipped} and str(path) not in by_file:
            continue  # the whole file was reported (e.g. unsupported)
        known = by_file.get(str(path), set())
        with h5py.File(path, "r") as f:
            seen: list[str] = []
            f.visit_links(seen.append)
            seen = ["/" + n for n in seen]
        members = tuple(groups.get(str(path), []))
        unaccounted = [n for n in seen if n not in known and not (members and n.startswith(members))]
        assert not unaccounted, f"{path.name}: {unaccounted[:5]}"


def test_netcdf_through_xarray(tmp_path_factory: pytest.TempPathFactory) -> None:
    import xarray as xr

    for name in ("xarray", "r-cran-stars"):
        _, pub = published(name, tmp_path_factory)
        compared = 0
        for entry in pub.entries():
            if entry["family"] != "container" or "xarray_dataset" not in entry["specs"] or entry["source_path"] != "":
                continue
            source = pub.source(entry["source_file"])
            try:
                expected = xr.open_dataset(source, decode_timedelta=False)
            except Exception:  # xarray itself cannot open it (e.g. a deliberately borked file)
                continue
            actual = xr.open_zarr(pub.store.path(entry["data_url"]), decode_timedelta=False)
            xr.testing.assert_identical(actual, expected)
            compared += 1
        assert compared >= 2, name


def test_tiff_arrays_bit_exact(tmp_path_factory: pytest.TempPathFactory) -> None:
    import tifffile

    for name in ("stardist", "r-cran-stars"):
        _, pub = published(name, tmp_path_factory)
        tiffs = [e for e in _array_entries(pub) if e["source_file"].endswith(".tif")]
        assert tiffs
        for entry in tiffs:
            expected = tifffile.imread(pub.source(entry["source_file"]))
            assert bytes_equal(zarr.open_array(pub.store.path(entry["data_url"]), mode="r")[...], expected), entry["path"]
    _, stardist = published("stardist", tmp_path_factory)
    assert any(len(e["structure"]["shape"]) == 3 for e in _array_entries(stardist))  # the 31-page stack


def test_csv_tables_match_pandas(tmp_path_factory: pytest.TempPathFactory) -> None:
    import pandas as pd

    for name in ("statsmodels", "vega_datasets"):
        _, pub = published(name, tmp_path_factory)
        tables = [e for e in pub.entries() if e["family"] == "table"]
        assert len(tables) >= 8
        for entry in tables:
            frame = pd.read_parquet(pub.store.path(entry["data_url"]))
            assert len(frame) == entry["structure"]["row_count"]
            assert list(frame.columns) == entry["structure"]["columns"]
    _, vega = published("vega_datasets", tmp_path_factory)
    weather = pd.read_parquet(vega.url("seattle-weather"))
    assert weather["date"].dtype.kind == "M" and weather["date"].iloc[0] == pd.Timestamp("2012-01-01")
    source = pd.read_csv(fetch_real("vega_datasets") / PACKAGES["vega_datasets"] / "seattle-weather.csv")
    np.testing.assert_array_equal(weather["temp_max"].to_numpy(), source["temp_max"].to_numpy())


def test_compound_datasets_become_tables(tmp_path_factory: pytest.TempPathFactory) -> None:
    import h5py
    import pyarrow.parquet as pq

    _, pub = published("tables", tmp_path_factory)
    tables = [e for e in pub.entries() if e["family"] == "table" and e["source_file"].endswith(".h5")]
    assert len(tables) > 10
    for entry in tables:
        with h5py.File(pub.source(entry["source_file"])) as f:
            source = f[entry["source_path"]][()]
        table = pq.read_table(pub.store.path(entry["data_url"]))
        source = source.reshape(-1)
        assert table.num_rows == len(source)
        for field in source.dtype.names:
            kind = source.dtype[field]
            if kind.names is None and kind.subdtype is None and kind.kind in "iufb":
                column = table[field].to_numpy(zero_copy_only=False)
                assert bytes_equal(np.asarray(column), source[field]), (entry["path"], field)
            elif kind.names:  # nested compound: flattened to dotted columns
                assert any(c.startswith(f"{field}.") for c in table.column_names)


def test_eiger_bitshuffle_frame_with_gap_pixels(tmp_path_factory: pytest.TempPathFactory) -> None:
    _, pub = published("punx", tmp_path_factory)
    node = pub.node("S2p5min_00070_00001/entry/data/data")
    assert node["structure"]["shape"] == [3262, 3108]
    assert len(node["structure"]["chunks"][0]) > 1 or len(node["structure"]["chunks"][1]) > 1  # the 40 MB chunk was split
    data = zarr.open_array(pub.url("S2p5min_00070_00001/entry/data/data"), mode="r")[...]
    assert data.dtype == np.uint32
    assert (data == 0xFFFFFFFF).sum() > 100_000  # the detector's gap pixels survive


def test_virtual_dataset_with_missing_source_is_never_materialised(tmp_path_factory: pytest.TempPathFactory) -> None:
    _, pub = published("punx", tmp_path_factory)
    group = pub.node("DLS_i03_i04_NXmx_Therm_6_2/entry/data")
    skipped = group["notes"]["skipped"]["data"]
    assert "virtual dataset whose source files are missing" in skipped["reason"]
    assert skipped["shape"] == [488, 4362, 4148]
    assert group["notes"]["external_links"]["data_000001"]["missing"] is True
    assert any("external link" in p.reason for p in pub.report.warnings)
    assert pub.report.bytes_in < 500e6  # the 70 GB virtual dataset was not read


def test_dangling_links_and_unsupported_types_reported(tmp_path_factory: pytest.TempPathFactory) -> None:
    _, pub = published("tables", tmp_path_factory)
    reasons = " | ".join(p.reason for p in pub.report.skipped)
    assert "compression filter lzo" in reasons
    assert "float128" in reasons or "Insufficient precision" in reasons
    assert "TypeTimeID" in reasons
    links = [e for e in pub.entries() if (e["notes"] or {}).get("dangling_links") or (e["notes"] or {}).get("external_links")]
    assert links, "the PyTables link test files record their links"


@pytest.mark.parametrize("name", ["punx", "pynxtools", "spec2nexus", "sasdata"])
def test_every_nxdata_group_opens_labelled_in_xarray(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    import xarray as xr

    _, pub = published(name, tmp_path_factory)
    groups = [e for e in pub.entries() if "NXdata" in (e["specs"] or [])]
    assert groups
    for entry in groups:
        ds = xr.open_zarr(pub.store.path(entry["data_url"]))
        signal = entry["metadata"].get("signal")
        if isinstance(signal, str) and signal in ds:
            assert len(ds[signal].dims) == len(pub.node(f"{entry['path']}/{signal}")["structure"]["shape"])
    if name == "punx":
        ds = xr.open_zarr(pub.url("example_mapping/entry1/data"))  # Diamond mapping: 4-D signal, 3-D auxiliary axes
        assert ds["data"].dims == ("x_stage_set", "y_stage_set", "t_stage_set", "energy")
        assert ds["x_stage"].dims == ("x_stage_set", "y_stage_set", "t_stage_set")
        assert "NXentry" in pub.node("example_mapping/entry1")["specs"]  # NX_class stored as a byte array


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_tiled_client_smoke_reads_every_node(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The real tiled client reads every node of each package through ``publish serve``
    (``smoke.read(strict=True)``), and every array it reads equals the published Zarr bytes."""

    from tiled.client import from_uri
    from tiled.client.smoke import read

    from handlers.local import LocalServer

    _, pub = published(name, tmp_path_factory)
    srv = LocalServer(pub.store.url, "127.0.0.1", 0).start()
    try:
        client = from_uri(f"{srv.url}/api/v1")
        read(client, strict=True)
        for entry in _array_entries(pub)[:200]:  # values: the client's against the store's
            served = np.asarray(client[entry["path"]].read())
            stored = np.asarray(zarr.open_array(pub.url(entry["path"]), mode="r")[...])
            if stored.dtype.kind in "OUST":  # strings: served as fixed-width unicode
                assert served.astype(str).tolist() == np.vectorize(decode_text, otypes=[str])(stored).tolist(), entry["path"]
            else:
                assert bytes_equal(served, stored), entry["path"]
    finally:
        srv.stop()
