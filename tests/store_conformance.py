"""What every store must do, as one test class (after zarr-python's ``testing/store.py``): a store
implementation's tests subclass :class:`StoreTests` and give a ``store`` fixture, a fresh empty
store per test; the whole contract runs against it."""

from __future__ import annotations

import pytest

from publisher.errors import BadRequest, NotFound
from publisher.stores import Store

DATA = bytes(range(256)) * 40  # 10,240 bytes, each offset recognisable


class StoreTests:
    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("a subclass gives a fresh, empty store")

    def test_round_trip(self, store: Store) -> None:
        store.write_bytes("a/b/data.bin", DATA)
        assert store.read_bytes("a/b/data.bin") == DATA
        store.write_bytes("a/b/data.bin", b"new", atomic=True)
        assert store.read_bytes("a/b/data.bin") == b"new"
        assert store.read_bytes("./a//b/data.bin") == b"new"  # empty and '.' segments mean nothing

    def test_missing_and_bad_keys(self, store: Store) -> None:
        store.write_bytes("a/x", b"1")
        for key in ("nothing", "a/nothing", "a"):  # "a" is a folder, not an object
            with pytest.raises(NotFound):
                store.read_bytes(key)
            assert store.stat(key) is None
        with pytest.raises(NotFound):
            store.read_range("nothing", 0, 4)
        with pytest.raises(NotFound):
            store.read_bytes("a/../../outside")
        with pytest.raises(BadRequest):
            store.read_bytes("a/\x00")
        assert not store.exists("nothing") and store.exists("a/x")

    def test_ranges(self, store: Store) -> None:
        store.write_bytes("r.bin", DATA)
        assert store.read_range("r.bin", 5, 300) == DATA[5:300]
        assert store.read_range("r.bin", 10_000, 20_000) == DATA[10_000:]  # past the end: the rest
        assert store.read_range("r.bin", 20_000, 20_010) == b""  # wholly past the end: nothing
        assert store.read_range("r.bin", 7, 7) == b""
        spans = [(0, 10), (4000, 4100), (9000, 10_240), (100, 101)]
        assert store.read_ranges("r.bin", spans) == [DATA[a:b] for a, b in spans]
        assert store.read_ranges("r.bin", []) == []

    def test_stat_objects_listing_and_size(self, store: Store) -> None:
        store.write_bytes("f/one", b"1")
        store.write_bytes("f/two", b"22")
        store.write_bytes("f/sub/three", b"333")
        size, modified = store.stat("f/two")  # type: ignore[misc]
        assert size == 2 and modified > 1.6e9
        assert sorted((k, n) for k, n, _ in store.objects("f")) == [("f/one", 1), ("f/two", 2)]  # not below
        assert store.objects("none") == []
        assert store.listdir("f") == ["one", "sub", "two"] and store.listdir("none") == []
        assert (store.size("f"), store.size("f/sub/three"), store.size("none")) == (6, 3, 0)

    def test_streaming_write(self, store: Store) -> None:
        with store.open_write("s/streamed.bin") as sink:
            sink.write(DATA[:100])
            sink.write(DATA[100:])
        assert store.read_bytes("s/streamed.bin") == DATA

    def test_move_and_delete(self, store: Store) -> None:
        store.write_bytes("old/a", b"a")
        store.move("old/a", "new/place/a")  # an object (the Parquet writer moves a file into a folder)
        store.write_bytes("new/deep/b", b"b")
        assert store.read_bytes("new/place/a") == b"a" and not store.exists("old/a")
        store.delete_prefix("new")
        assert not store.exists("new/place/a") and not store.exists("new/deep/b") and store.size("new") == 0
        store.write_bytes("new/again", b"x")  # a folder deleted under the store is made again
        assert store.read_bytes("new/again") == b"x"
        store.delete_prefix("missing")  # nothing there: nothing to do

    def test_files_route_reads_ranges(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        """``/files/`` answers a range of an object, and streams a big one, from ranged reads only."""
        from handlers import files

        big = DATA * 3
        store.write_bytes("releases/r/big.bin", big)
        monkeypatch.setattr(files, "PIECE", 4096)

        def whole(key: str) -> bytes:
            raise AssertionError(f"{key} read whole")

        monkeypatch.setattr(store, "read_bytes", whole)
        status, headers, body = files.file_answer(store, "releases/r/big.bin", "bytes=100-5099")
        assert (status, headers["Content-Range"], body) == (206, f"bytes 100-5099/{len(big)}", big[100:5100])
        status, headers, body = files.file_answer(store, "releases/r/big.bin", None)
        assert status == 200 and b"".join(body) == big  # type: ignore[arg-type]
        assert files.file_answer(store, "releases/r/none.bin", None)[0] == 404
