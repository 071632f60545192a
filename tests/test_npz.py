"""NumPy .npz files (``np.savez``, ``np.savez_compressed``), which were skipped as "no reader for
this file type" (a review helper): a container of their arrays, each as ``np.load`` reads it; an
object array's member skipped unread (pickle is never loaded); a damaged file fails naming it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from publisher.build import build
from publisher.config import load_pipeline
from publisher.errors import BuildFailed

from .conftest import run_build, write_pipeline

ARRAYS = {
    "a": np.arange(12).reshape(3, 4),
    "text": np.array(["x", "h\u00e9llo"]),
    "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "big_endian": np.arange(5, dtype=">i4"),
    "scalar": np.float32(3.5),
    "wide": np.random.default_rng(0).random((300, 700)),  # (several chunks' regions read where they lie)
}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_each_array_of_an_npz_is_published_as_numpy_reads_it(tmp_path: Path, save: object) -> None:
    (tmp_path / "data").mkdir()
    save(tmp_path / "data" / "run.npz", **ARRAYS, bad=np.array([{"k": 1}], dtype=object))  # type: ignore[operator]
    published = run_build(tmp_path, {"sources": [{"path": "data", "into": ""}], "output": {"store": str(tmp_path / "site"), "chunk_target_bytes": 2**18}})
    with np.load(tmp_path / "data" / "run.npz", allow_pickle=False) as loaded:
        for name in ARRAYS:
            published_array = zarr.open_array(published.url(f"run/{name}"), mode="r")[...]
            assert published_array.shape == loaded[name].shape and np.array_equal(published_array, loaded[name]), name
    assert published.node("run")["notes"]["skipped"]["bad"]["reason"].endswith("object arrays in .npy need pickle, which is never loaded")


def test_a_damaged_npz_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "whole.npz", a=np.arange(1000))
    (tmp_path / "data" / "cut.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:500])
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "data", "into": ""}], "output": {"store": str(tmp_path / "site")}}))
    with pytest.raises(BuildFailed) as failed:
        build(pipeline, workers=2)
    (failure,) = failed.value.args[0].failures
    assert "data/cut.npz: not a readable .npz file" in failure.reason, failure


def test_a_compressed_member_too_big_to_hold_whole_is_skipped_saying_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compressed member is decompressed whole: a 5 MB .npz holding 5 GiB of zeros took 5 GB
    (a zip bomb, with a warning). Past the bound it is skipped, saying why; the others publish."""
    from publisher.readers import npz

    monkeypatch.setattr(npz, "MAX_WHOLE_BYTES", 2**20)
    (tmp_path / "src").mkdir()
    np.savez_compressed(tmp_path / "src" / "b.npz", big=np.zeros(2**18, dtype="<f8"), small=np.arange(4))
    config = {"output": {"store": str(tmp_path / "site")}, "on_error": "skip", "sources": [{"path": "src", "into": ""}]}
    report = build(load_pipeline(write_pipeline(tmp_path, config)), workers=1)
    skipped = {p.path: p.reason for p in report.skipped}
    assert "GiB decompressed" in skipped.get("b/big", ""), report.skipped
    assert "np.savez (uncompressed" in skipped["b/big"] and "b/small" not in skipped
