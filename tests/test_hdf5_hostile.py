"""Hostile but valid HDF5 files a review helper built (the h5py path): memory stays bounded and
time stays in proportion to what a file stores, whatever it declares; what cannot be published is
refused saying why."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from publisher.writers.chunking import run_slabs

from .conftest import run_build


def test_slabs_are_summed_as_they_finish_not_kept_to_the_end() -> None:
    """Every slab's future was kept until the array's end (~1 KB each): 1 GB for the million slabs
    of a 2 KB file declaring 10**12 values. 40,000 slabs now hold what a few in flight do."""
    slabs = [(slice(i, i + 1),) for i in range(40_000)]
    with ThreadPoolExecutor(2) as pool:
        tracemalloc.start()
        try:
            total, longest = run_slabs(pool, threading.Semaphore(4), lambda sel: (8, None), iter(slabs))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert (total, longest) == (8 * 40_000, None)
    assert peak < 4 * 2**20, peak  # (kept to the end: ~40 MB)


def test_a_failing_slab_stops_the_reading_of_more() -> None:
    pulled = 0

    def regions() -> Iterator[tuple[slice, ...]]:
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield (slice(i, i + 1),)

    def write(sel: tuple[slice, ...]) -> tuple[int, int | None]:
        if sel[0].start == 3:
            raise ValueError("a damaged chunk")
        return 1, len(str(sel[0].start))

    with ThreadPoolExecutor(2) as pool, pytest.raises(ValueError, match="a damaged chunk"):
        run_slabs(pool, threading.Semaphore(4), write, regions())
    assert pulled < 100  # (all 10,000 were read before the failure was seen)


def test_the_longest_string_is_the_longest_of_all_slabs() -> None:
    with ThreadPoolExecutor(2) as pool:
        found = run_slabs(pool, threading.Semaphore(2), lambda sel: (1, sel[0].start % 7), ((slice(i, i + 1),) for i in range(100)))
    assert found == (100, 6)


def test_variable_length_attributes_past_the_cap_are_named_not_copied(tmp_path: Path) -> None:
    """A variable-length attribute's stored size is its descriptors' (16 bytes for a 100 MB
    string): it passed the 1 MiB cap and went whole into zarr.json, the manifest and the index."""
    import h5py
    import numpy as np

    (tmp_path / "in").mkdir()
    with h5py.File(tmp_path / "in" / "f.h5", "w", libver="latest") as f:  # (dense attribute storage: past 64 KiB)
        f.attrs["note"] = "x" * (3 * 2**20)
        f.attrs.create("notes", np.array(["y" * 2**20, "z" * 2**20], dtype=object), dtype=h5py.string_dtype())
        seq = np.empty(1, dtype=object)
        seq[0] = np.arange(200_000.0)
        f.attrs.create("seq", seq, dtype=h5py.vlen_dtype("f8"))
        f.attrs["small"] = "kept"
        f.create_dataset("d", data=np.arange(4))
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "h"}]})
    metadata = site.node("h/f")["metadata"]
    for name in ("note", "notes", "seq"):
        assert metadata[name].startswith("<attribute of shape") and "too large for metadata" in metadata[name], name
    assert metadata["small"] == "kept"
    biggest = max(p.stat().st_size for p in Path(site.store.url).rglob("*") if p.is_file())
    assert biggest < 2**20


def test_a_short_array_of_long_strings_is_chunked_by_their_length(tmp_path: Path) -> None:
    """Fewer than 4,096 variable-length strings were sized by a guess of 128 bytes each: 2,000
    strings of 1 MiB were one chunk and one slab of 2 GB (6.7 GB of memory)."""
    import h5py
    import numpy as np
    import zarr

    (tmp_path / "in").mkdir()
    values = np.array([chr(65 + i % 26) * (256 * 2**10) for i in range(200)], dtype=object)
    with h5py.File(tmp_path / "in" / "f.h5", "w") as f:
        f.create_dataset("s", data=values, dtype=h5py.string_dtype(), chunks=(10,))
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "h"}]})
    array = zarr.open_array(site.url("h/f/s"), mode="r")
    assert array.chunks[0] * 256 * 2**10 <= 16 * 2**20, array.chunks  # (one chunk of all 200: 50 MiB)
    assert list(array[195:200]) == list(values[195:200])


def test_ragged_rows_are_read_in_pieces_that_grow_from_a_few(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first piece of a variable-length dataset was 1,024 rows whatever their length: 20 rows
    of 32 MB were read at once (2.8 GB of memory). Now a few rows first, then pieces of about
    PIECE_BYTES (here 1 MB) by the rows seen."""
    import awkward as ak
    import h5py
    import numpy as np

    from publisher.readers import hdf5_ragged

    monkeypatch.setattr(hdf5_ragged, "PIECE_BYTES", 2**20)
    read: list[int] = []
    original = hdf5_ragged._by_bytes

    def counted(read_rows, length):  # type: ignore[no-untyped-def]
        for piece in original(read_rows, length):
            read.append(piece.layout.nbytes)
            yield piece

    monkeypatch.setattr(hdf5_ragged, "_by_bytes", counted)
    (tmp_path / "in").mkdir()
    rows = [np.full(50_000, i, dtype="f8") for i in range(40)]  # 400 KB a row: 16 MB in all
    with h5py.File(tmp_path / "in" / "f.h5", "w") as f:
        f.create_dataset("r", (40,), dtype=h5py.vlen_dtype("f8"))
        for i, row in enumerate(rows):
            f["r"][i] = row
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "h"}]})
    assert read and max(read) <= 16 * 400_000 + 2**16, read  # (the whole dataset, 16 MB, was the first piece)
    assert ak.to_list(ak.from_parquet(site.url("h/f/r"))) == [row.tolist() for row in rows]


def test_a_contiguous_dataset_never_written_is_its_fill_value_unread(tmp_path: Path) -> None:
    """A contiguous dataset whose space was never allocated is its fill value throughout: it was
    read and compressed whole (10**11 bytes of a 1.4 KB file: 74 s). Published as the same values."""
    import h5py
    import numpy as np
    import zarr

    from publisher.readers.hdf5 import HDF5Options, HDF5Reader

    (tmp_path / "in").mkdir()
    with h5py.File(tmp_path / "in" / "f.h5", "w") as f:
        f.create_dataset("empty", shape=(300, 400), dtype="f4", fillvalue=7.5)  # (contiguous, allocated late: never)
        f.create_dataset("written", data=np.arange(12.0).reshape(3, 4))
        f.create_dataset("zeros", shape=(5,), dtype="i2")
    with HDF5Reader().open(tmp_path / "in" / "f.h5", "f", HDF5Options()) as root:
        nodes = {c.key: c for c in root.children}
        assert nodes["empty"].constant is not None and nodes["empty"].constant((slice(0, 10), slice(0, 10))) == np.float32(7.5)
        assert nodes["written"].constant is None
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "h"}]})
    empty = zarr.open_array(site.url("h/f/empty"), mode="r")[...]
    assert empty.shape == (300, 400) and (empty == np.float32(7.5)).all()
    assert (zarr.open_array(site.url("h/f/zeros"), mode="r")[...] == 0).all()
    assert (zarr.open_array(site.url("h/f/written"), mode="r")[...] == np.arange(12.0).reshape(3, 4)).all()


def test_groups_nested_past_the_bound_fail_their_file_saying_so(tmp_path: Path) -> None:
    """2,000 nested groups ended in a bare RecursionError, after 53 s; the file's failure now says
    why, and the other files publish."""
    import h5py
    import numpy as np

    (tmp_path / "in").mkdir()
    with h5py.File(tmp_path / "in" / "deep.h5", "w") as f:
        f.create_group("/".join(["g"] * 1000))
    with h5py.File(tmp_path / "in" / "fine.h5", "w") as f:
        f.create_dataset("a/b/c", data=np.arange(3))
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "h"}], "on_error": "skip"})
    (failure,) = site.report.failures
    assert failure.path == "h/deep" and "groups nested more than 200 deep" in failure.reason and "Recursion" not in failure.reason
    assert site.node("h/fine/a/b/c")


def test_a_virtual_dataset_is_read_only_where_its_sources_map(tmp_path: Path) -> None:
    """A virtual dataset's regions no source maps are its fill value, unread: a 2 KB file
    declaring 10**12 values around 3 bytes of source was read and compressed whole (past 40 s)."""
    import h5py
    import numpy as np
    import zarr

    from publisher.readers.hdf5 import HDF5Options, HDF5Reader

    (tmp_path / "in").mkdir()
    with h5py.File(tmp_path / "in" / "src.h5", "w") as f:
        f["d"] = np.array([1, 2, 3], dtype="u1")
    layout = h5py.VirtualLayout(shape=(4000, 2000), dtype="u1")
    layout[1500:1503, 7] = h5py.VirtualSource(tmp_path / "in" / "src.h5", "d", shape=(3,))
    with h5py.File(tmp_path / "in" / "v.h5", "w") as f:
        f.create_virtual_dataset("v", layout, fillvalue=9)
        stacked = h5py.VirtualLayout(shape=(2, 3), dtype="u1")  # covered by its sources: read as ever
        for i in range(2):
            stacked[i] = h5py.VirtualSource(tmp_path / "in" / "src.h5", "d", shape=(3,))
        f.create_virtual_dataset("stack", stacked, fillvalue=0)
    with HDF5Reader().open(tmp_path / "in" / "v.h5", "v", HDF5Options()) as root:
        nodes = {c.key: c for c in root.children}
        v = nodes["v"]
        assert v.constant is not None and v.constant((slice(0, 1000), slice(0, 2000))) == 9
        assert v.constant((slice(1000, 2000), slice(0, 2000))) is None and nodes["stack"].constant is None
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "h"}]})
    published = zarr.open_array(site.url("h/v/v"), mode="r")
    assert published[1499:1504, 7].tolist() == [9, 1, 2, 3, 9] and (published[:1000] == 9).all() and (published[2000:] == 9).all()
    assert zarr.open_array(site.url("h/v/stack"), mode="r")[...].tolist() == [[1, 2, 3], [1, 2, 3]]


def test_a_virtual_dataset_whose_source_is_no_hdf5_file_names_it(tmp_path: Path) -> None:
    """A virtual dataset mapping a file that is no HDF5 file failed as HDF5's "file signature not
    found", naming neither that file nor why; it is skipped as one whose sources are missing."""
    import h5py
    import numpy as np

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("not HDF5 at all\n" * 100)
    layout = h5py.VirtualLayout(shape=(3,), dtype="f8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "in" / "notes.txt"), "d", shape=(3,))
    with h5py.File(tmp_path / "in" / "v.h5", "w") as f:
        f.create_virtual_dataset("v", layout)
        f["ok"] = np.arange(2)
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": "h"}], "on_error": "skip"})
    (skipped,) = [p for p in site.report.skipped if p.path == "h/v/v"]
    assert "notes.txt (not an HDF5 file)" in skipped.reason, skipped.reason
    assert site.node("h/v/ok")


def test_a_name_longer_than_a_store_holds_is_skipped_alone(tmp_path: Path) -> None:
    """HDF5 takes names of any length: a group of a 260-byte name failed its whole file on a local
    store ("File name too long"), the datasets beside it unpublished; each is skipped by name."""
    import h5py
    import numpy as np
    import zarr

    (tmp_path / "src").mkdir()
    with h5py.File(tmp_path / "src" / "f.h5", "w") as f:
        f["ok"] = np.arange(3)
        f["\u00fc" * 200] = np.arange(2)
        f["g" * 260 + "/v"] = np.arange(2)
        f["k" * 247] = np.arange(4)  # (the longest a node may have: it and ".parquet" fit a file name)
    (tmp_path / "src" / f"{'c' * 248}.csv").write_text("a\n1\n")  # a file's name, too (it failed: "File name too long")
    published = run_build(tmp_path, {"sources": [{"path": "src", "into": ""}], "on_error": "fail"})
    skipped = published.problems("skipped")
    assert skipped == {f"f/{'g' * 260}": f"{'g' * 100!r} cannot name a node: it is 260 bytes long (UTF-8), more than the 247 a node's "
                                         "name may have (a folder's name in a store)",
                       f"f/{'ü' * 200}": f"{'ü' * 100!r} cannot name a node: it is 400 bytes long (UTF-8), more than the 247 a node's "
                                         "name may have (a folder's name in a store)",
                       "c" * 248: f"{'c' * 100!r} cannot name a node: it is 248 bytes long (UTF-8), more than the 247 a node's "
                                  "name may have (a folder's name in a store)"}, skipped
    assert zarr.open_array(published.url("f/ok"), mode="r")[:].tolist() == [0, 1, 2]
    assert zarr.open_array(published.url(f"f/{'k' * 247}"), mode="r")[:].tolist() == [0, 1, 2, 3]
