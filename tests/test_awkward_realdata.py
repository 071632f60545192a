"""Ragged data in real third-party files (issue 15, tests/realdata.py): AnnData ``awkward-array``
groups (scirpy), 2-D vlen int64 (hyperspy), PyTables VLARRAYs (vlen int32, vlen of ``|S2``,
big-endian ``>u4``; vlen of HDF5 time types skipped with its reason), ISIS HIFI muon events
(NXevent_data, mneueventlib's sdist), each read back through
the real tiled client and equal to the source read with h5py and awkward."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest

from .conftest import Published, fetch_real, run_build
from .servers import local_server

pytestmark = pytest.mark.realdata

#: source name → (package, file under its unpacked folder)
FILES = {
    "j_gene": ("scirpy", "scirpy/tests/data/clonotypes_test_data/j_gene_test_data.h5ad"),
    "wu2020": ("scirpy", "scirpy/tests/data/wu2020_200.h5mu"),
    "future": ("hyperspy", "hyperspy/tests/io/hdf5_files/future.hspy"),
    "flavored": ("tables", "tables/tests/flavored_vlarrays-format1.6.h5"),
    "endian": ("tables", "tables/tests/vlunicode_endian.h5"),
    "time": ("tables", "tables/tests/time-table-vlarray-1_x.h5"),
    "hifi": ("mneueventlib", "mneueventlib-0.4.0/tests/test_data/HIFI00195790.nxs"),
}
MARKERS = "Experiments/__unnamed__/metadata/Markers/Points/kwargs"
#: published path → (source name, HDF5 path)
AWKWARD = {
    "j_gene_test_data/obsm/airr": ("j_gene", "obsm/airr"),
    "j_gene_test_data/obsm/chain_indices": ("j_gene", "obsm/chain_indices"),
    "wu2020_200/mod/airr/obsm/airr": ("wu2020", "mod/airr/obsm/airr"),
    f"future/{MARKERS}/offsets": ("future", f"{MARKERS}/offsets"),
    "flavored_vlarrays-format1.6/vlarray1": ("flavored", "vlarray1"),
    "flavored_vlarrays-format1.6/vlarray2": ("flavored", "vlarray2"),
    "vlunicode_endian/vlunicode_big": ("endian", "vlunicode_big"),
    "vlunicode_endian/vlunicode_little": ("endian", "vlunicode_little"),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Published, dict[str, Path]]:
    paths = {name: fetch_real(package) / rel for name, (package, rel) in FILES.items()}
    folder = tmp_path_factory.mktemp("awkward-real")
    sources = [{"path": str(p), "into": ""} for p in paths.values()]
    return run_build(folder, {"sources": sources}), paths


def _source(path: Path, h5path: str) -> list:
    """The source as lists, read with h5py (and awkward for AnnData's buffers)."""
    with h5py.File(path, "r") as f:
        obj = f[h5path]
        if isinstance(obj, h5py.Group):
            return ak.from_buffers(obj.attrs["form"], int(obj.attrs["length"]), {k: v[()] for k, v in obj.items()}).tolist()
        base = np.dtype(h5py.check_vlen_dtype(obj.dtype))
        values = obj[()]
    def element(v: np.ndarray) -> list:
        v = v.view(base) if base.byteorder == ">" else v  # h5py gives a big-endian vlen's bytes labelled native
        return [x.decode() for x in v.tolist()] if base.kind == "S" else v.astype(base.newbyteorder("=")).tolist()
    return np.frompyfunc(element, 1, 1)(values).tolist()


def _same(got: ak.Array, want: list) -> None:
    assert json.dumps(ak.to_list(got), sort_keys=True, default=str) == json.dumps(want, sort_keys=True, default=str)


def test_real_ragged_sources_read_back_through_the_tiled_client(built: tuple[Published, dict[str, Path]]) -> None:
    from tiled.client import from_uri

    published, paths = built
    with local_server(published.store.url) as url:
        client = from_uri(f"{url}/api/v1")
        for path, (name, h5path) in AWKWARD.items():
            assert published.node(path)["family"] == "awkward", path
            _same(client[path].read(), _source(paths[name], h5path))
            _same(ak.from_parquet(published.url(path)), _source(paths[name], h5path))  # the stored file, read directly
        airr = client["j_gene_test_data/obsm/airr"]
        _same(airr["j_call"], [[chain["j_call"] for chain in cell] for cell in _source(paths["j_gene"], "obsm/airr")])
        assert airr.structure().length == 18


def test_big_endian_vlen_equals_its_little_endian_twin(built: tuple[Published, dict[str, Path]]) -> None:
    """PyTables stores the same 8 code points as >u4 and <u4: both publish the same values."""
    published, _ = built
    big, little = (ak.from_parquet(published.url(f"vlunicode_endian/vlunicode_{k}")) for k in ("big", "little"))
    assert big.tolist() == little.tolist() and "".join(map(chr, little[0].tolist())).startswith("para")


def test_vlen_of_time_types_is_skipped_with_its_reason(built: tuple[Published, dict[str, Path]]) -> None:
    published, _ = built
    reasons = {p.path: p.reason for p in published.report.skipped if p.source.endswith("time-table-vlarray-1_x.h5")}
    assert reasons and all("TypeTimeID" in r or "not supported by h5py" in r for r in reasons.values()), reasons


def test_real_event_data_is_published_per_pulse(built: tuple[Published, dict[str, Path]], tmp_path: Path) -> None:
    """ISIS HIFI's NXevent_data (unsigned event_index, extra per-pulse and per-event fields): the
    group keeps its datasets and gains events_by_pulse, each pulse's events cut at event_index,
    equal to the source through the tiled client and read directly with ak.from_parquet."""
    from tiled.client import from_uri

    published, paths = built
    group = "raw_data_1/detector_1_events"
    with h5py.File(paths["hifi"], "r") as f:
        ds = {k: v[()] for k, v in f[group].items()}
    n_events, starts = len(ds["event_id"]), [int(i) for i in ds["event_index"]]
    stops = [*starts[1:], n_events]
    per_event = [k for k, v in ds.items() if len(v) == n_events and k != "event_index"]
    per_pulse = [k for k, v in ds.items() if len(v) == len(starts) and k != "event_index"]
    assert {"event_id", "event_time_offset", "pulse_height"} <= set(per_event) and "event_time_zero" in per_pulse
    want = [{**{k: ds[k][p].item() for k in per_pulse},
             "events": [{k: ds[k][e].item() for k in per_event} for e in range(a, b)]} for p, (a, b) in enumerate(zip(starts, stops))]
    path = f"HIFI00195790/{group}/events_by_pulse"
    assert sum(len(p["events"]) for p in want) == n_events == 64147 and len(want) == 88
    assert all(published.node(f"HIFI00195790/{group}/{k}")["family"] == "array" for k in ds)  # the datasets stay
    _same(ak.from_parquet(published.url(path)), want)
    with local_server(published.store.url) as url:
        node = from_uri(f"{url}/api/v1")[path]
        _same(node.read(), want)
        _same(node["events"], [p["events"] for p in want])  # the client reads one field
