"""Real compound data (issue 15): hyperspy's Velox EMD complex images, its 3-D RGBA16 stack (in a
group named "Stack of ", trailing space) and scanpy's AnnData with sub-array compound fields, each
compound dataset published bit-exact against h5py and read with zarr and the real tiled client."""

from __future__ import annotations

import shutil
from pathlib import Path

import dask
import h5py
import numpy as np
import pandas as pd
import pytest
import zarr

from publisher.readers.compound import complex_pair, packed, to_complex

from .conftest import Published, fetch_real, run_build
from .realdata import files
from .servers import local_server

#: zarr warns that its structured data type has no Zarr 3 specification yet (docs/pipeline.md)
pytestmark = [pytest.mark.realdata, pytest.mark.filterwarnings("ignore::zarr.errors.UnstableSpecificationWarning")]

SOURCES = [("hyperspy", "**/emd_files/fei_example_dpc_titles.emd"), ("hyperspy", "**/emd_files/fei_example_complex_fft.emd"),
           ("hyperspy", "**/hdf5_files/test_rgba16.hdf5"), ("scanpy", "**/10x_pbmc68k_reduced.h5ad")]


def _compounds(path: Path) -> dict[str, np.ndarray]:
    """Every compound dataset of a file, by HDF5 path, as h5py reads it."""
    found: dict[str, np.ndarray] = {}

    def visit(name: str, obj: object) -> None:  # returns None: a value would stop h5py's visit
        if isinstance(obj, h5py.Dataset) and obj.dtype.names:
            found[name] = obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


def _expected(values: np.ndarray) -> np.ndarray:
    """Published form: complex for a real/imaginary pair, else the packed little-endian layout."""
    pair = complex_pair(values.dtype)
    return to_complex(values, pair) if pair else np.ascontiguousarray(values.astype(packed(values.dtype)))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Published, dict[str, dict[str, np.ndarray]]]:
    folder = tmp_path_factory.mktemp("structured-real")
    sources: dict[str, dict[str, np.ndarray]] = {}
    for package, pattern in SOURCES:
        fetch_real(package)
        (path,) = files(package, pattern)
        shutil.copy(path, folder / path.name)
        sources[path.stem] = _compounds(path)
    return run_build(folder, {"sources": [{"path": str(folder)}]}), sources


def test_every_real_compound_is_published_bit_exact(built: tuple[Published, dict[str, dict[str, np.ndarray]]]) -> None:
    published, sources = built
    nd = 0
    for stem, compounds in sources.items():
        assert compounds, stem
        for h5path, values in compounds.items():
            node = published.node(f"{stem}/{h5path}")
            if values.ndim <= 1:  # tables, sub-array fields as fixed-size list columns (AnnData's obsm/varm)
                assert node["family"] == "table", (stem, h5path)
                continue
            nd += 1
            assert node["family"] == "array", (stem, h5path, node)
            want, got = _expected(values), zarr.open_array(published.url(f"{stem}/{h5path}"), mode="r")[...]
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (stem, h5path)
    assert nd == 2 + 1  # the two Velox complex images and the RGBA stack
    rgba = published.node("test_rgba16/Experiments/Stack of /data")
    assert [f["name"] for f in rgba["structure"]["data_type"]["fields"]] == ["R", "G", "B", "A"]
    assert rgba["structure"]["shape"] == [3, 128, 128]
    fft = published.node("fei_example_complex_fft/Data/Image/127c4de271cd4bbe93cf30a3ba2a9989/Data")
    assert fft["metadata"]["complex_from"] == {"real": "realFloatHalfEven", "imag": "imagFloatHalfEven"}


def test_the_tiled_client_reads_the_real_compounds(built: tuple[Published, dict[str, dict[str, np.ndarray]]]) -> None:
    from tiled.client import from_uri

    published, sources = built
    with local_server(published.store.url) as url:
        client = from_uri(f"{url}/api/v1")
        stack = client["test_rgba16"]["Experiments"]["Stack of "]["data"]  # the trailing space survives the URL
        want = _expected(sources["test_rgba16"]["Experiments/Stack of /data"])
        got = stack.read()
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
        assert stack[1, 10:20, ::7].tobytes() == np.ascontiguousarray(want[1, 10:20, ::7]).tobytes()
        for h5path, values in sources["fei_example_dpc_titles"].items():
            data = client["fei_example_dpc_titles"]
            for part in h5path.split("/"):
                data = data[part]
            assert np.asarray(data.read()).tobytes() == _expected(values).tobytes()
        for name, columns in (("obsm", ["X_pca", "X_umap"]), ("varm", ["PCs"])):  # sub-array fields: fixed-size lists
            with dask.config.set({"dataframe.convert-string": False}):  # else dask turns list cells into their text
                table = client["10x_pbmc68k_reduced"][name].read()
            source = sources["10x_pbmc68k_reduced"][name]
            assert isinstance(table, pd.DataFrame) and list(table.columns) == columns
            for column in columns:
                assert np.stack(table[column].to_numpy()).tobytes() == np.ascontiguousarray(source[column]).tobytes()  # NaN rows too
