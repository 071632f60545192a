"""Compound datasets that are a real/imaginary pair become complex arrays, of any rank (issue 15):
bit-exact against the source halves, readable with zarr and through the real tiled client."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from publisher.readers.compound import complex_pair

from .conftest import ROOT, run_build
from .servers import publish_serve

rng = np.random.default_rng(15)


def _pairs() -> dict[str, np.ndarray]:
    """name → structured source array (fields as writers name them, with NaN, -0.0, inf, denormals)."""
    out = {}
    for name, fields, base, shape in [("emd", ("realFloat", "imagFloat"), "<f4", (3, 4, 5)),   # FEI/Thermo Velox EMD
                                      ("big", ("real", "imag"), ">f8", (6, 7)),                # big-endian doubles
                                      ("line", ("re", "im"), "<f8", (9,))]:
        values = np.zeros(shape, dtype=[(fields[0], base), (fields[1], base)])
        values[fields[0]] = rng.normal(size=shape)
        values[fields[1]] = rng.normal(size=shape)
        flat = values.reshape(-1)
        flat[0] = (np.nan, -0.0)
        flat[1] = (np.inf, np.finfo(base).tiny / 2)
        out[name] = values
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, dict[str, np.ndarray]]:
    folder: Path = tmp_path_factory.mktemp("complex-compound")
    sources = _pairs()
    with h5py.File(folder / "waves.h5", "w") as f:
        for name, values in sources.items():
            f.create_dataset(name, data=values, chunks=True if values.ndim > 1 else None)
        f.create_dataset("pair_of_ints", data=np.zeros(3, dtype=[("real", "<i4"), ("imag", "<i4")]))  # not floats: a table
    return run_build(folder, {"sources": [{"path": str(folder / "waves.h5")}]}), sources


def _halves(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = values.dtype.names
    return np.ascontiguousarray(values[a]).astype(values[a].dtype.newbyteorder("<")), np.ascontiguousarray(values[b]).astype(values[b].dtype.newbyteorder("<"))


def _same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def test_a_real_imaginary_compound_of_any_rank_is_a_complex_array(built: tuple[object, dict[str, np.ndarray]]) -> None:
    published, sources = built
    for name, values in sources.items():
        node = published.node(f"waves/{name}")  # type: ignore[attr-defined]
        assert node["family"] == "array", (name, node["family"])
        array = zarr.open_array(published.url(f"waves/{name}"), mode="r")[...]  # type: ignore[attr-defined]
        real, imag = _halves(values)
        assert array.dtype == np.dtype("c8" if real.itemsize == 4 else "c16")
        _same_bits(np.ascontiguousarray(array.real), real)  # bit-exact: NaN, -0.0, inf and denormals kept
        _same_bits(np.ascontiguousarray(array.imag), imag)
        assert node["metadata"]["complex_from"] == dict(zip(("real", "imag"), values.dtype.names, strict=True))
    assert published.node("waves/pair_of_ints")["family"] == "table"  # type: ignore[attr-defined]


def test_the_tiled_client_reads_the_complex_values(built: tuple[object, dict[str, np.ndarray]]) -> None:
    from tiled.client import from_uri

    published, sources = built
    with publish_serve(published.store.url, cwd=ROOT) as url:  # type: ignore[attr-defined]
        client = from_uri(f"{url}/api/v1")
        for name, values in sources.items():
            got = client["waves"][name].read()
            real, imag = _halves(values)
            _same_bits(np.ascontiguousarray(np.asarray(got).real), real)
            _same_bits(np.ascontiguousarray(np.asarray(got).imag), imag)


@pytest.mark.parametrize(("fields", "found"), [
    ([("r", "<f4"), ("i", "<f4")], True), ([("REAL", ">f8"), ("Imag", ">f8")], True), ([("realFloat", "<f4"), ("imagFloat", "<f4")], True),
    ([("real", "<f4"), ("imag", "<f8")], False), ([("real", "<i4"), ("imag", "<i4")], False), ([("x", "<f4"), ("y", "<f4")], False),
    ([("real", "<f2"), ("imag", "<f2")], False), ([("real", "<f4"), ("imag", "<f4"), ("w", "<f4")], False),
    ([("realFloatHalfEven", "<f4"), ("imagFloatHalfEven", "<f4")], True), ([("realA", "<f4"), ("imagB", "<f4")], False),
    ([("imag", "<f8"), ("real", "<f8")], True), ([("Real", "<f4"), ("real", "<f4")], False),
])
def test_which_compounds_are_pairs(fields: list[tuple[str, str]], found: bool) -> None:
    assert (complex_pair(np.dtype(fields)) is not None) is found
