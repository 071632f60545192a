"""Sparse matrices as Tiled's ``sparse`` family (issue 15): AnnData CSR (modern and legacy
h5sparse), 10x Genomics CSC, COO triplets and groups chosen by the rule ``sparse:``; stored as
one Parquet file of COO triplets per block, served on the tables function and read back by the
real tiled client, by pyarrow directly, and as dense CSV/PNG.

Every expected value is rebuilt from the source with h5py and numpy (data/indices/indptr).
The real files' ``obsm`` groups (AnnData awkward arrays, another part of issue 15) are skipped.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sparse

from publisher.access.sparse import PublishedSparse
from publisher.build import build
from publisher.config import load_pipeline
from publisher.errors import BuildFailed
from publisher.nodes import ArrayNode, ContainerNode, SparseNode
from publisher.readers.sparse import SparseError, fold

from .conftest import Published, fetch_real, run_build, write_pipeline
from .servers import local_server

REAL = {
    "scirpy": ["wu2020_200_v0_11.h5ad", "j_gene_test_data.h5ad"],
    "scanpy": ["10x_pbmc68k_reduced.h5ad"],
    "scanpy-sdist": ["1.2.0/multiple_genomes.h5", "3.0.0/filtered_feature_bc_matrix.h5", "visium_data/1.0.0/filtered_feature_bc_matrix.h5"],
}
#: Published path → (source file, HDF5 group, layout): every real sparse matrix checked here.
MATRICES = {
    "wu2020_200_v0_11/X": ("wu2020_200_v0_11.h5ad", "X", "csr"),
    "j_gene_test_data/uns/cc_nt_normalized_hamming/distances": ("j_gene_test_data.h5ad", "uns/cc_nt_normalized_hamming/distances", "csr"),
    "j_gene_test_data/uns/ir_dist_nt_normalized_hamming/VDJ/distances":
        ("j_gene_test_data.h5ad", "uns/ir_dist_nt_normalized_hamming/VDJ/distances", "csr"),
    "10x_pbmc68k_reduced/raw.X": ("10x_pbmc68k_reduced.h5ad", "raw.X", "csr"),
    "10x_pbmc68k_reduced/uns/neighbors/connectivities": ("10x_pbmc68k_reduced.h5ad", "uns/neighbors/connectivities", "csr"),
    "10x_pbmc68k_reduced/uns/neighbors/distances": ("10x_pbmc68k_reduced.h5ad", "uns/neighbors/distances", "csr"),
    "multiple_genomes/hg19_chr21/data": ("multiple_genomes.h5", "hg19_chr21", "csc"),
    "multiple_genomes/another_genome/data": ("multiple_genomes.h5", "another_genome", "csc"),
    "filtered_feature_bc_matrix/matrix/data": ("filtered_feature_bc_matrix.h5", "matrix", "csc"),
    "visium_filtered_feature_bc_matrix/matrix/data": ("visium_filtered_feature_bc_matrix.h5", "matrix", "csc"),  # 100 x 100
}
BLOCKED = "wu2020_200_v0_11/X"  # published in blocks of 64 rows (a rule), 200 x 30727


def _generated(path: Path) -> None:
    """A COO group (rule ``sparse: coo``), a square unmarked 10x-like group (ambiguous without
    the rule ``sparse: csc``) and a marked group whose indptr fits neither dimension."""
    with h5py.File(path, "w") as f:
        coo = f.create_group("coo")
        coo["row"] = np.array([3, 0, 2, 3], np.int32)
        coo["col"] = np.array([1, 4, 0, 4], np.int64)
        coo["data"] = np.array([1.5, -2.0, np.nan, 7.0])
        coo.attrs["shape"] = [4, 5]
        coo3 = f.create_group("coo3")  # 3-D, Tiled's one 2-D coords member, a shape dataset, big-endian values
        coo3["coords"] = np.array([[1, 0, 1], [2, 0, 1], [3, 0, 0]], np.uint16)
        coo3["data"] = np.array([10, 20, 30], ">i8")
        coo3["shape"] = np.array([2, 3, 4])
        square = f.create_group("square")
        square["data"] = np.array([5, 6, 7], np.int16)
        square["indices"] = np.array([2, 0, 1], np.int64)
        square["indptr"] = np.array([0, 1, 1, 3], np.int64)
        square["shape"] = np.array([3, 3], np.int32)
        square["names"] = np.array([b"AAA", b"CCC", b"GGG"])  # not "barcodes": that would say 10x, so CSC
        bad = f.create_group("bad")
        bad.attrs["encoding-type"], bad.attrs["shape"] = "csr_matrix", [4, 4]
        bad["data"], bad["indices"], bad["indptr"] = np.ones(2), np.array([0, 1]), np.array([0, 1, 2])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Published]:
    folder = tmp_path_factory.mktemp("sparse")
    src = folder / "src"
    src.mkdir()
    for package, names in REAL.items():
        root = fetch_real(package)
        for name in names:
            found = [p for p in root.rglob(Path(name).name) if p.as_posix().endswith(name)]
            shutil.copy(found[0], src / (("visium_" if "visium" in name else "") + Path(name).name))
    _generated(src / "gen.h5")
    rules = [{"match": "**/obsm", "skip": True}, {"match": "**/cell_indices", "skip": True},  # 4901 tiny arrays: time
             {"match": BLOCKED, "chunks": [64, None]},
             {"match": "gen/coo", "sparse": "coo"}, {"match": "gen/coo3", "sparse": "coo"}, {"match": "gen/square", "sparse": "csc"}]
    return src, run_build(folder, {"sources": [{"path": str(src), "into": ""}], "rules": rules})


@pytest.fixture(scope="module")
def api(built: tuple[Path, Published]) -> Iterator[str]:
    with local_server(built[1].store.url) as url:
        yield f"{url}/api/v1"


@pytest.fixture(scope="module")
def client(api: str) -> Any:
    from tiled.client import from_uri

    return from_uri(api)


def source_coo(src: Path, name: str, group: str, layout: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Row-major sorted ``(coords, data, shape)`` of a CSR/CSC group, rebuilt from h5py with numpy."""
    with h5py.File(src / name, "r") as f:
        g = f[group]
        data, indices, indptr = g["data"][()], g["indices"][()].astype(np.int64), g["indptr"][()].astype(np.int64)
        attrs = dict(g.attrs)
        shape = tuple(int(n) for n in (attrs.get("shape", attrs.get("h5sparse_shape")) if "shape" not in g else g["shape"][()]))
    major = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    rows, cols = (major, indices) if layout == "csr" else (indices, major)
    order = np.lexsort((cols, rows))
    return np.stack([rows, cols])[:, order], data[order], shape


def _expected(built: tuple[Path, Published], path: str) -> sparse.COO:
    coords, data, shape = source_coo(built[0], *MATRICES[path])
    return sparse.COO(coords, data, shape)


def _same(served: sparse.COO, expected: sparse.COO) -> None:
    assert served.shape == expected.shape
    np.testing.assert_array_equal(served.coords, expected.coords)
    assert served.data.dtype == expected.data.dtype
    np.testing.assert_array_equal(served.data, expected.data)


def _arrow(body: bytes) -> dict[str, np.ndarray]:
    table = pa.ipc.open_file(pa.py_buffer(body)).read_all()
    return {name: table.column(name).to_numpy() for name in table.column_names}


# 1. every real matrix: the structure and the tiled client's values ---------------------------------
def test_every_real_matrix_is_sparse_and_reads_back_equal(built: tuple[Path, Published], client: Any) -> None:
    _, pub = built
    for path in MATRICES:
        node = pub.node(path)
        expected = _expected(built, path)
        assert node["family"] == "sparse", path
        assert node["structure"]["shape"] == list(expected.shape) and node["structure"]["layout"] == "COO"
        assert node["structure"]["data_type"]["kind"] == expected.data.dtype.kind, path
        _same(client[path].read(), expected)
    # the scirpy distances: an int32 shape attribute and uint8 values
    assert pub.node("j_gene_test_data/uns/cc_nt_normalized_hamming/distances")["structure"]["data_type"]["itemsize"] == 1


def test_10x_groups_keep_barcodes_and_features_beside_the_matrix(built: tuple[Path, Published], client: Any) -> None:
    _, pub = built
    for group, members in (("multiple_genomes/hg19_chr21", {"data", "barcodes", "genes", "gene_names"}),
                           ("multiple_genomes/another_genome", {"data", "barcodes", "genes", "gene_names", "scalar_dataset"}),
                           ("filtered_feature_bc_matrix/matrix", {"data", "barcodes", "features"})):
        assert set(client[group]) == members, group
        assert pub.node(group)["notes"]["sparse"]["data"]["layout"] == "csc"
    # the shape is (features, barcodes): one row per feature, one column per barcode
    matrix = client["filtered_feature_bc_matrix/matrix"]
    assert matrix["data"].shape == (len(matrix["features/id"].read()), len(matrix["barcodes"].read())) == (507, 1107)


def test_slices_and_blocks_through_the_tiled_client(built: tuple[Path, Published], client: Any) -> None:
    expected = _expected(built, BLOCKED)
    node = client[BLOCKED]
    assert node.chunks == ((64, 64, 64, 8), (30727,))
    _same(node[10:150, 100:20000], expected[10:150, 100:20000])
    _same(node[190:, :], expected[190:, :])
    _same(node[5, 100:3000], expected[5, 100:3000])
    block = node.read_block((1, 0))  # block-local coordinates (Tiled's client gives it the full shape)
    local = expected[64:128, :]
    np.testing.assert_array_equal(block.coords, local.coords)
    np.testing.assert_array_equal(block.data, local.data)
    _same(client["10x_pbmc68k_reduced/raw.X"][:, 700:], _expected(built, "10x_pbmc68k_reduced/raw.X")[:, 700:])


def test_a_selection_reads_only_the_blocks_it_overlaps(built: tuple[Path, Published]) -> None:
    from publisher.structures import SparseStructure

    _, pub = built
    entry = pub.catalog.entry(BLOCKED)
    assert isinstance(entry.structure, SparseStructure)
    published = PublishedSparse(pub.store, entry.data_url, entry.structure)
    coords, data, shape = published.read((slice(70, 130), slice(0, 10)))
    assert published.blocks_read == [(1, 0), (2, 0)] and shape == (60, 10)
    published.blocks_read.clear()
    published.block((3, 0))
    assert published.blocks_read == [(3, 0)]


def test_reading_a_region_reads_only_its_source_rows() -> None:
    """``read_coo`` of a CSR group reads ``data``/``indices`` only between indptr[r0] and indptr[r1]."""
    indptr = np.array([0, 2, 2, 5, 6], np.int64)
    indices = np.array([0, 3, 1, 2, 3, 0], np.int32)
    data = np.arange(6, dtype=np.float32) + 1
    reads: list[tuple[str, slice]] = []

    def member(key: str, values: np.ndarray) -> ArrayNode:
        def read(sel: tuple[slice, ...]) -> np.ndarray:
            reads.append((key, sel[0]))
            return values[sel]

        return ArrayNode(key=key, dtype=values.dtype, shape=values.shape, read=read)

    group = ContainerNode(key="m", metadata={"encoding-type": "csr_matrix", "shape": [4, 4]},
                          children=[member("data", data), member("indices", indices), member("indptr", indptr)])
    node = fold(group)
    assert isinstance(node, SparseNode) and node.shape == (4, 4) and node.nnz == 6
    reads.clear()
    assert node.read_coo is not None
    coords, values = node.read_coo((slice(2, 3), slice(1, 4)))
    assert {k: (s.start, s.stop) for k, s in reads if k != "indptr"} == {"data": (2, 5), "indices": (2, 5)}
    np.testing.assert_array_equal(coords, [[0, 0, 0], [0, 1, 2]])
    np.testing.assert_array_equal(values, [3, 4, 5])


def test_a_tall_matrix_is_cut_by_rows_and_its_indptr_read_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """``indptr`` was read whole and kept, and blocks cut by nonzeros alone: 26 million rows with a
    nonzero in every 64th were one block (a build grew by ~640 MB). Now a block spans at most
    ``MAJOR_PER_BLOCK`` rows and ``indptr`` is read a block at a time; the blocks cut by nonzeros
    are those the whole ``indptr`` gives, and a falling ``indptr`` is still refused."""
    from publisher.readers import sparse as sparse_reader

    monkeypatch.setattr(sparse_reader, "MAJOR_PER_BLOCK", 1000)
    monkeypatch.setattr(sparse_reader, "INDPTR_BLOCK", 333)
    monkeypatch.setattr(sparse_reader, "BLOCK_NNZ", 50)
    rows, cols = 5000, 40
    counts = np.where(np.arange(rows) % 64 == 0, 1, 0)
    counts[2000:2010] = 30  # a dense run: blocks cut by nonzeros there
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    nnz = int(indptr[-1])
    indices = (np.arange(nnz) % cols).astype(np.int32)
    data = np.arange(nnz, dtype=np.float32)
    member = lambda key, values: ArrayNode(key=key, dtype=values.dtype, shape=values.shape, read=lambda sel: values[sel])  # noqa: E731
    group = ContainerNode(key="m", metadata={"encoding-type": "csr_matrix", "shape": [rows, cols]},
                          children=[member("data", data), member("indices", indices), member("indptr", indptr)])
    node = fold(group)
    assert isinstance(node, SparseNode) and node.grid is not None
    assert node.grid == sparse_reader._grid((rows, cols), indptr, 0) and max(node.grid[0]) <= 1000 and sum(node.grid[0]) == rows
    assert node.chunks[0] <= 1000
    assert node.read_coo is not None
    coords, values = node.read_coo((slice(1990, 2020), slice(0, cols)))
    assert np.array_equal(np.sort(values), data[indptr[1990]:indptr[2020]]) and coords[0].min() == 10  # (rows from 2000)
    falling = indptr.copy()
    falling[400] = falling[399] - 1 if falling[399] else -1  # across a block border (333 entries a block)
    bad = ContainerNode(key="m", metadata={"encoding-type": "csr_matrix", "shape": [rows, cols]},
                        children=[member("data", data), member("indices", indices), member("indptr", falling)])
    with pytest.raises(SparseError, match="falls somewhere"):
        fold(bad)


def test_a_coo_matrix_of_no_rows_with_nonzeros_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nonzeros in a matrix of 0 rows are all out of range: a SparseError naming the group, not the
    ZeroDivisionError of binning 0 rows (for more than ``BLOCK_NNZ`` nonzeros)."""
    from publisher.readers import sparse as sparse_reader

    monkeypatch.setattr(sparse_reader, "BLOCK_NNZ", 5)
    values = np.arange(20, dtype=np.float32)
    member = lambda key, v: ArrayNode(key=key, dtype=v.dtype, shape=v.shape, read=lambda sel: v[sel])
    group = ContainerNode(key="m", source_path="/m", children=[member("data", values), member("row", np.zeros(20, np.int64)),
                                                               member("col", np.arange(20, dtype=np.int64))])
    with pytest.raises(SparseError, match="/m: a coordinate is out of range for the shape \\[0, 30\\]"):
        fold(group, "coo", [0, 30])


# 2. the wire: Tiled's routes, the redirect from array/..., Arrow IPC file ------------------------------
def test_array_routes_redirect_to_the_sparse_routes(api: str, built: tuple[Path, Published], client: Any) -> None:
    path = "multiple_genomes/hg19_chr21/data"
    moved = httpx.get(f"{api}/array/full/{path}?slice=0:100,2:5", headers={"Accept": "application/vnd.apache.arrow.file"})
    assert moved.status_code == 307 and moved.headers["location"].endswith(f"/api/v1/sparse/full/{path}?slice=0%3A100%2C2%3A5")
    followed = httpx.get(f"{api}/array/full/{path}?slice=0:100,2:5", follow_redirects=True,
                         headers={"Accept": "application/vnd.apache.arrow.file"})
    assert followed.headers["content-type"] == "application/vnd.apache.arrow.file"
    expected = _expected(built, path)[0:100, 2:5]
    columns = _arrow(followed.content)
    np.testing.assert_array_equal(np.stack([columns["dim0"], columns["dim1"]]), expected.coords)
    np.testing.assert_array_equal(columns["data"], expected.data)
    # the tiled client's own HTTP client follows the 307 (as it would links naming array/full)
    block = client.context.http_client.get(f"{api}/array/block/{BLOCKED}", params={"block": "2,0"},
                                           headers={"Accept": "application/vnd.apache.arrow.file"})
    assert block.status_code == 200 and block.history[0].status_code == 307 and _arrow(block.content)["dim0"].max() < 64
    links = httpx.get(f"{api}/metadata/{path}").json()["data"]["links"]
    assert links["full"].endswith(f"/sparse/full/{path}") and links["block"].endswith(f"/sparse/block/{path}?block={{0}},{{1}}")


def test_steps_and_integers_as_numpy_indexes(api: str, built: tuple[Path, Published]) -> None:
    """The tiled client sends no steps; the route takes NumPy's basic indexing all the same."""
    expected = _expected(built, BLOCKED)
    for query, want in (("5,::7", expected[5, ::7]), ("150:10:-3,30000:", expected[150:10:-3, 30000:]), ("-1,-5:", expected[-1, -5:])):
        columns = _arrow(httpx.get(f"{api}/sparse/full/{BLOCKED}?slice={query}").content)
        got = np.stack([columns[f"dim{i}"] for i in range(want.ndim)]) if want.ndim else np.empty((0, 0))
        np.testing.assert_array_equal(sparse.COO(got, columns["data"], want.shape).todense(), want.todense(), err_msg=query)


def test_one_element_dense_and_the_cli_listing(api: str, built: tuple[Path, Published]) -> None:
    """A selection of one element (every index an integer) made dense for CSV was a 500 (np.add.at
    into a 0-d array); ``publish ls -l`` stopped at a sparse node (no ``count``)."""
    from click.testing import CliRunner

    from publisher.cli import main

    expected = _expected(built, BLOCKED)
    answer = httpx.get(f"{api}/sparse/full/{BLOCKED}?slice=5,3&format=csv")
    assert answer.status_code == 200 and float(answer.text.strip() or 0) == float(expected[5, 3])
    _, pub = built
    listing = CliRunner().invoke(main, ["ls", "-l", "--store", pub.store.url, BLOCKED.rpartition("/")[0]])
    assert listing.exit_code == 0 and f"sparse {tuple(expected.shape)}" in listing.output, listing.output


def test_bad_requests_name_the_problem(api: str) -> None:
    for url, words in ((f"sparse/block/{BLOCKED}?block=4,0", "out of range"), (f"sparse/block/{BLOCKED}?block=0", "out of range"),
                       (f"sparse/full/{BLOCKED}?slice=0:2,0:2,1", "dimensions"), (f"sparse/full/{BLOCKED}?slice=200", "out of range"),
                       ("sparse/full/multiple_genomes/hg19_chr21/barcodes", "not a sparse array")):
        answer = httpx.get(f"{api}/{url}")
        assert answer.status_code == 400 and words in answer.json()["detail"], (url, answer.text)


# 3. stored for direct readers ---------------------------------------------------------------------------
def test_direct_pyarrow_read_of_the_published_blocks(built: tuple[Path, Published]) -> None:
    _, pub = built
    for path in (BLOCKED, "filtered_feature_bc_matrix/matrix/data"):
        # docs/catalog.md's direct read: the block files of a node read as one table of global triplets
        table = pq.read_table(pub.url(path))
        shape = json.loads(table.schema.metadata[b"skyshelf"])["shape"]
        matrix = sparse.COO(np.stack([table["dim0"], table["dim1"]]), table["data"].to_numpy(), shape=tuple(shape))
        _same(matrix, _expected(built, path))
    assert sorted(p.name for p in Path(pub.url(BLOCKED)).iterdir()) == [f"block-{i}.0.parquet" for i in range(4)]


# 4. exports: the triplets as Tiled, dense CSV/PNG of small selections, a 400 past the limit -------------
def test_exports(api: str, built: tuple[Path, Published], monkeypatch: pytest.MonkeyPatch) -> None:
    path = "10x_pbmc68k_reduced/uns/neighbors/distances"
    expected = _expected(built, path)
    triplets = httpx.get(f"{api}/sparse/full/{path}?slice=0:50,0:60&format=json").json()
    window = expected[0:50, 0:60]
    assert triplets["dim0"] == window.coords[0].tolist() and triplets["dim1"] == window.coords[1].tolist()
    np.testing.assert_allclose(triplets["data"], window.data)
    parquet = pq.read_table(io.BytesIO(httpx.get(f"{api}/sparse/full/{path}?format=parquet").content))
    np.testing.assert_array_equal(parquet["data"].to_numpy(), expected.data)
    csv = httpx.get(f"{api}/sparse/full/{path}?slice=0:50,0:60&format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    np.testing.assert_allclose(np.loadtxt(io.StringIO(csv.text), delimiter=","), window.todense())
    png = httpx.get(f"{api}/sparse/full/{path}?format=png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(io.BytesIO(png.content)).size == (700, 700)
    monkeypatch.setenv("SKYSHELF_MAX_ANSWER_BYTES", str(2**20))
    refused = httpx.get(f"{api}/sparse/full/{path}?format=csv")
    detail = refused.json()["detail"]
    assert refused.status_code == 400 and "[700, 700]" in detail and "SKYSHELF_MAX_ANSWER_BYTES" in detail and "1.0 MiB" in detail, detail
    assert httpx.get(f"{api}/sparse/full/{path}?slice=0:100,0:100&format=csv").status_code == 200
    assert httpx.get(f"{api}/sparse/full/{path}?format=arrow").status_code == 200  # the nonzeros alone fit
    # nonzeros past the limit: refused from the build's counts (198,277 nonzeros, 20 bytes each), before reading
    assert built[1].node(BLOCKED)["notes"]["sparse"]["nnz"] == 198277
    monkeypatch.setenv("SKYSHELF_MAX_ANSWER_BYTES", str(4 * 2**20))  # arrow: 2 working bytes per byte
    detail = httpx.get(f"{api}/sparse/full/{BLOCKED}?format=arrow").json()["detail"]
    assert "up to 198277" in detail and "SKYSHELF_MAX_ANSWER_BYTES" in detail, detail
    assert httpx.get(f"{api}/sparse/full/{BLOCKED}?slice=0:20").status_code == 200  # one block's worth


# 5. rules and broken groups -------------------------------------------------------------------------------
def test_coo_group_by_rule(built: tuple[Path, Published], client: Any) -> None:
    coo = client["gen/coo"].read()
    assert coo.shape == (4, 5)
    dense = np.zeros((4, 5))
    dense[[3, 0, 2, 3], [1, 4, 0, 4]] = [1.5, -2.0, np.nan, 7.0]
    np.testing.assert_array_equal(coo.todense(), dense)
    cube = client["gen/coo3"]
    expected = np.zeros((2, 3, 4), np.int64)
    expected[1, 2, 3], expected[0, 0, 0], expected[1, 1, 0] = 10, 20, 30
    np.testing.assert_array_equal(cube.read().todense(), expected)
    np.testing.assert_array_equal(cube[1, 1:, :].todense(), expected[1, 1:, :])

def test_square_group_needs_the_rule(built: tuple[Path, Published], client: Any, tmp_path: Path) -> None:
    square = client["gen/square"]
    assert set(square) == {"data", "names"}
    np.testing.assert_array_equal(square["data"].read().todense(), [[0, 0, 6], [0, 0, 7], [5, 0, 0]])
    # without the rule: a group of arrays and a warning naming the ambiguity
    shutil.copy(built[0] / "gen.h5", tmp_path / "gen.h5")
    plain = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "gen.h5"), "into": ""}], "on_error": "skip"})
    assert plain.node("gen/square")["family"] == "container" and plain.node("gen/square/indptr")["family"] == "array"
    warning = plain.problems("warnings")["gen/square"]
    assert "cannot tell CSR from CSC" in warning and "sparse: csr" in warning, warning


def test_inconsistent_groups_are_skipped_or_refused(built: tuple[Path, Published], tmp_path: Path) -> None:
    reason = built[1].problems("skipped")["gen/bad"]
    assert "indptr has 3 entries" in reason and "needs 5" in reason, reason
    with pytest.raises(SparseError, match="data has 2 values but indices has 3"):
        fold(ContainerNode(key="g", metadata={"h5sparse_format": "csr", "h5sparse_shape": [1, 3]}, children=[
            ArrayNode(key="data", shape=(2,), read=lambda s: np.ones(2)),
            ArrayNode(key="indices", dtype=np.dtype("i4"), shape=(3,), read=lambda s: np.zeros(3, "i4")),
            ArrayNode(key="indptr", dtype=np.dtype("i4"), shape=(2,), read=lambda s: np.array([0, 2], "i4")[s])]))
    # an index past the matrix: the build fails on that node, naming it, rather than publishing wrong data
    with h5py.File(tmp_path / "oob.h5", "w") as f:
        g = f.create_group("m")
        g.attrs["encoding-type"], g.attrs["shape"] = "csr_matrix", [2, 3]
        g["data"], g["indices"], g["indptr"] = np.ones(2), np.array([0, 9]), np.array([0, 1, 2])
    pipeline = load_pipeline(write_pipeline(tmp_path, {"output": {"store": str(tmp_path / "site")},
                                                        "sources": [{"path": str(tmp_path / "oob.h5"), "into": ""}]}))
    with pytest.raises(BuildFailed) as failed:
        build(pipeline, workers=1)
    failures = {p.path: p.reason for p in failed.value.args[0].failures}
    assert "index (9) is out of range for 3 columns" in failures["oob/m"], failures
    # a rule that contradicts the marker is refused
    rules = [{"match": "oob/m", "sparse": "csc"}]
    pipeline = load_pipeline(write_pipeline(tmp_path, {"output": {"store": str(tmp_path / "site2")}, "rules": rules,
                                                        "sources": [{"path": str(tmp_path / "oob.h5"), "into": ""}]}))
    with pytest.raises(BuildFailed) as failed:
        build(pipeline, workers=1)
    assert "recognised as CSR, not CSC" in str([p.reason for p in failed.value.args[0].failures])


def test_large_matrices_are_cut_along_their_compressed_axis(built: tuple[Path, Published], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of about BLOCK_NNZ nonzeros: rows for CSR, columns for CSC (each block reads one run of the source)."""
    import publisher.readers.sparse as readers_sparse

    monkeypatch.setattr(readers_sparse, "BLOCK_NNZ", 5000)
    for name in ("wu2020_200_v0_11.h5ad", "filtered_feature_bc_matrix.h5"):
        shutil.copy(built[0] / name, tmp_path / name)
    rules = [{"match": "**/obsm", "skip": True}, {"match": "*/obs", "skip": True}, {"match": "*/var", "skip": True}]
    pub = run_build(tmp_path, {"sources": [{"path": str(tmp_path), "into": ""}], "rules": rules})
    csr, csc = pub.node("wu2020_200_v0_11/X")["structure"]["chunks"], pub.node("filtered_feature_bc_matrix/matrix/data")["structure"]["chunks"]
    assert csr[0] == [6] * 33 + [2] and csr[1] == [30727]  # 198,277 nonzeros in 200 rows: 6 rows a block
    assert csc[0] == [507] and csc[1] == [232] * 4 + [179]  # 23,866 in 1,107 columns: 232 columns a block
    for path in ("wu2020_200_v0_11/X", "filtered_feature_bc_matrix/matrix/data"):
        table = pq.read_table(pub.url(path))
        assert table.num_rows == pub.node(path)["notes"]["sparse"]["nnz"]
        _same(sparse.COO(np.stack([table["dim0"], table["dim1"]]), table["data"].to_numpy(), shape=_expected(built, path).shape),
              _expected(built, path))


def test_a_block_deleted_before_the_switch_fails_the_build(built: tuple[Path, Published], tmp_path: Path) -> None:
    """The build's check expects every block file (empty blocks too), as it expects every Zarr chunk."""
    from publisher.errors import StoreError
    from publisher.stores import Store

    shutil.copy(built[0] / "gen.h5", tmp_path / "gen.h5")
    config = {"output": {"store": str(tmp_path / "site")}, "sources": [{"path": str(tmp_path / "gen.h5"), "into": ""}],
              "rules": [{"match": "gen/coo", "sparse": "coo", "chunks": [2, None]}], "on_error": "skip"}
    store, started = Store(str(tmp_path / "site")), {}

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "start":
            started["release"] = info["release"]
        if event == "done" and info["path"] == "gen":
            store.delete_prefix(f"releases/{started['release']}/data/gen/coo/block-1.0.parquet")

    with pytest.raises(StoreError, match=r"is incomplete.*gen/coo/block-1\.0\.parquet"):
        build(load_pipeline(write_pipeline(tmp_path, config)), progress=progress, workers=1)


def test_container_export_holds_sparse_children(api: str, built: tuple[Path, Published], tmp_path: Path) -> None:
    """container/full as HDF5 writes a 2-D sparse child as AnnData's csr_matrix group (read back
    here with the same numpy rebuild as the sources); the JSON outline lists it."""
    answer = httpx.get(f"{api}/container/full/filtered_feature_bc_matrix/matrix?format=h5")
    assert answer.status_code == 200, answer.text
    (tmp_path / "export.h5").write_bytes(answer.content)
    coords, data, shape = source_coo(tmp_path, "export.h5", "data", "csr")
    _same(sparse.COO(coords, data, shape), _expected(built, "filtered_feature_bc_matrix/matrix/data"))
    outline = httpx.get(f"{api}/container/full/filtered_feature_bc_matrix/matrix?format=json").json()
    assert set(outline["contents"]) == {"data", "barcodes", "features"}


def test_data_sources_name_every_block_and_zarr_route_points_to_sparse(api: str, built: tuple[Path, Published]) -> None:
    """include_data_sources: Tiled's sparse data source (one asset per block file, parameter
    data_uris), each readable directly; the Zarr route names the sparse route instead."""
    body = httpx.get(f"{api}/metadata/{BLOCKED}?include_data_sources=true").json()
    (source,) = body["data"]["attributes"]["data_sources"]
    assert source["mimetype"] == "application/x-parquet;structure=sparse"
    assert [(a["parameter"], a["num"]) for a in source["assets"]] == [("data_uris", i) for i in range(4)]
    block = pq.read_table(io.BytesIO(httpx.get(source["assets"][1]["data_uri"], follow_redirects=True).content))
    assert block["dim0"].to_numpy().min() >= 64 and block["dim0"].to_numpy().max() < 128  # global coordinates
    refused = httpx.get(f"{api}/zarr/v3/{BLOCKED}/zarr.json")
    assert refused.status_code == 404 and f"/api/v1/sparse/full/{BLOCKED}" in refused.json()["detail"]


def test_interpreters_are_ready_for_every_thread_of_a_fresh_process(tmp_path: Path) -> None:
    """A build reads files on several threads: each of them, from the very first file, reads
    AnnData's sparse matrix as sparse and its ragged array as awkward (the interpreters were once
    marked loaded before they were, and threads that came meanwhile published folders and skips)."""
    import ast
    import subprocess
    import sys

    path = tmp_path / "m.h5ad"
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs["encoding-type"], g.attrs["encoding-version"], g.attrs["shape"] = "csr_matrix", "0.1.0", np.array([3, 4])
        g["data"], g["indices"], g["indptr"] = np.array([1.0, 2.0]), np.array([1, 3], "<i4"), np.array([0, 1, 1, 2], "<i4")
        v = f.create_dataset("v", (2,), dtype=h5py.vlen_dtype(np.dtype("<i8")))
        v[0], v[1] = [1, 2], [3]
    code = f"""
import importlib, threading, time
from pathlib import Path
from publisher.readers.hdf5 import HDF5Options, HDF5Reader
real = importlib.import_module
def slow(name, *args):  # loading the interpreters takes a while (a cold disk, a busy host)
    time.sleep(0.2)
    return real(name, *args)
importlib.import_module = slow
barrier, found = threading.Barrier(8), []
def read():
    barrier.wait()
    with HDF5Reader().open(Path({str(path)!r}), "m", HDF5Options()) as root:
        found.append(sorted((c.key, type(c).__name__) for c in root.children))
threads = [threading.Thread(target=read) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(repr(found))
"""
    for _ in range(2):  # fresh processes: the interpreters not loaded yet
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        found = ast.literal_eval(done.stdout.strip().splitlines()[-1])
        assert len(found) == 8 and all(f == [("X", "SparseNode"), ("v", "AwkwardNode")] for f in found), found


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_skewed_matrices_are_cut_into_blocks_of_even_nonzeros(tmp_path: Path, layout: str) -> None:
    """Nonzeros crowded into a few rows: blocks even in rows put them all in one block, read and
    written at once (20 million nonzeros in 1,000 of 100,000 rows grew a build by 1.5 GB). Cut by the
    nonzeros instead, no block holds much more than ``BLOCK_NNZ`` (1,000,000), and the matrix reads
    back whole and by slices, through the catalog's reader as through pyarrow."""
    from publisher.readers.sparse import BLOCK_NNZ

    rows, cols, dense_rows = 20_000, 3_000, range(5_000, 6_000)  # 3 million nonzeros in 1,000 of 20,000 rows
    r = np.repeat(np.array(dense_rows, np.int64), cols)
    c = np.tile(np.arange(cols, dtype=np.int64), len(dense_rows))
    sparse_r = np.arange(0, rows, 7, dtype=np.int64)  # and a few everywhere else
    r, c = np.concatenate([r, sparse_r]), np.concatenate([c, sparse_r % cols])
    order = np.lexsort((c, r))
    r, c = r[order], c[order]
    keep = np.concatenate([[True], (r[1:] != r[:-1]) | (c[1:] != c[:-1])])
    r, c = r[keep], c[keep]
    values = (r * 31 + c).astype("f4")
    with h5py.File(tmp_path / "skewed.h5", "w") as f:
        g = f.create_group("m")
        if layout == "csr":
            g.attrs["encoding-type"], g.attrs["shape"] = "csr_matrix", [rows, cols]
            g["data"], g["indices"] = values, c.astype(np.int32)
            g["indptr"] = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=rows))]).astype(np.int64)
        else:
            g.attrs["shape"] = [rows, cols]
            g["row"], g["col"], g["data"] = r[::-1], c[::-1], values[::-1]  # (unsorted, as COO may be)
    pub = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "skewed.h5"), "into": ""}],
                               "rules": [{"match": "skewed/m", "sparse": "coo"}] if layout == "coo" else []})
    node = pub.node("skewed/m")
    blocks = node["structure"]["chunks"][0]
    assert sum(blocks) == rows and node["structure"]["chunks"][1] == [cols] and len(blocks) > 3
    assert node["notes"]["sparse"]["max_block_nnz"] <= BLOCK_NNZ + cols  # (a cut lands after the row that crosses it)
    table = pq.read_table(pub.url("skewed/m"))  # the directory of blocks: the whole matrix, global coordinates
    got = np.lexsort((table["dim1"].to_numpy(), table["dim0"].to_numpy()))
    np.testing.assert_array_equal(table["dim0"].to_numpy()[got], r)
    np.testing.assert_array_equal(table["dim1"].to_numpy()[got], c)
    np.testing.assert_array_equal(table["data"].to_numpy()[got], values)
    from publisher.structures import SparseStructure

    entry = pub.catalog.entry("skewed/m")
    assert isinstance(entry.structure, SparseStructure)
    _, data, shape = PublishedSparse(pub.store, entry.data_url, entry.structure).read((slice(4990, 5010), slice(10, 20)))
    inside = (r >= 4990) & (r < 5010) & (c >= 10) & (c < 20)
    assert shape == (20, 10) and data.size == inside.sum() and np.array_equal(np.sort(data), np.sort(values[inside]))
