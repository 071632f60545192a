"""Stacks of files (``name_pattern`` with ``stack:``): their frames' order, two files of one
frame, and a frame the reader cannot take among frames it reads (a review helper's repros)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from publisher.build import build
from publisher.config import load_pipeline
from publisher.errors import BuildFailed
from publisher.source_keys import frame_order

from .conftest import _published, write_pipeline


def _build(folder: Path, pattern: str, on_error: str = "skip"):  # type: ignore[no-untyped-def]
    config = {"output": {"store": str(folder / "site")}, "on_error": on_error,
              "sources": [{"path": "src", "into": "", "name_pattern": pattern, "stack": "frame"}]}
    try:
        report = build(load_pipeline(write_pipeline(folder, config)), workers=1)
    except BuildFailed as exc:
        return exc.args[0], None
    return report, _published(report, config["output"]["store"], folder)


def test_untyped_frames_stack_in_natural_order(tmp_path: Path) -> None:
    """``{frame}`` (a string): frames 1, 2, 10 stacked 1, 10, 2, as text sorts. Digit runs now
    count as numbers; a typed ``{frame:d}`` keeps its numbers' order."""
    (tmp_path / "src").mkdir()
    for i in (10, 2, 1):
        np.save(tmp_path / "src" / f"s_{i}.npy", np.full((2, 2), i))
    _, published = _build(tmp_path, "{sample}_{frame}.npy")
    node = published.node("s")
    assert node["metadata"]["frame_values"] == ["1", "2", "10"]
    assert zarr.open_array(published.url("s"), mode="r")[:, 0, 0].tolist() == [1, 2, 10]
    assert sorted(["a10", "a2", "b1", "a1b", "a1"], key=frame_order) == ["a1", "a1b", "a2", "a10", "b1"]


def test_two_files_of_one_frame_fail_the_stack_naming_both(tmp_path: Path) -> None:
    """``s_1.npy`` and ``s_01.npy`` are both frame 1 of ``{frame:d}``: one was stacked behind the
    other in the listing's order, silently. The stack fails, naming both; the others publish."""
    (tmp_path / "src").mkdir()
    for name, value in (("s_1", 1), ("s_01", 99), ("s_2", 2), ("t_1", 5), ("t_2", 6)):
        np.save(tmp_path / "src" / f"{name}.npy", np.full((2, 2), value))
    report, published = _build(tmp_path, "{sample}_{frame:d}.npy")
    assert [p.path for p in report.failures] == ["s"], report.failures
    reason = report.failures[0].reason
    assert "s_01.npy" in reason and "s_1.npy" in reason and "frame 1" in reason, reason
    assert published.node("t")["structure"]["shape"] == [2, 2, 2]
    with pytest.raises(KeyError):
        published.node("s")
    assert _build(tmp_path, "{sample}_{frame:d}.npy", on_error="fail")[1] is None  # (the build fails, nothing published)


@pytest.mark.parametrize("broken", [0, 1])
def test_a_frame_the_reader_cannot_take_fails_the_stack(tmp_path: Path, broken: int) -> None:
    """A frame with a garbage ``.npy`` header among good frames was the reader's "unsupported":
    the whole stack skipped, and a build with ``on_error: fail`` succeeded without it. It is a
    failure naming the frame (first or not); a stack all of whose frames the reader cannot take
    is still skipped with the reason."""
    (tmp_path / "src").mkdir()
    for i in range(3):
        np.save(tmp_path / "src" / f"s_{i}.npy", np.zeros((2, 2)))
    (tmp_path / "src" / f"s_{broken}.npy").write_bytes(b"\x93NUMPY garbage")
    report, _ = _build(tmp_path, "{sample}_{frame:d}.npy")
    assert [p.path for p in report.failures] == ["s"] and f"s_{broken}.npy: frame {broken} of the stack" in report.failures[0].reason, \
        (report.failures, report.skipped)
    assert _build(tmp_path, "{sample}_{frame:d}.npy", on_error="fail")[1] is None
    for i in range(3):
        (tmp_path / "src" / f"s_{i}.npy").write_bytes(b"\x93NUMPY garbage")
    report, _ = _build(tmp_path, "{sample}_{frame:d}.npy")
    assert report.failures == [] and [p.path for p in report.skipped] == ["s"], (report.failures, report.skipped)


def test_untyped_twins_fail_and_a_stack_of_one_frame_keeps_its_axis(tmp_path: Path) -> None:
    """``{frame}`` untyped: ``x_1`` and ``x_01`` (one number, frames sorted as numbers) were both
    stacked, three frames for two; a scan of one frame was published without the stack's axis,
    its rank unlike its siblings'."""
    (tmp_path / "src").mkdir()
    for name, value in (("x_1", 1), ("x_01", 99), ("x_2", 2), ("one_1", 7), ("two_1", 5), ("two_2", 6)):
        np.save(tmp_path / "src" / f"{name}.npy", np.full((2, 2), value))
    report, published = _build(tmp_path, "{sample}_{frame}.npy")
    assert [p.path for p in report.failures] == ["x"], report.failures
    assert "'01' and '1' are one number" in report.failures[0].reason or "'1' and '01' are one number" in report.failures[0].reason
    assert published.node("two")["structure"]["shape"] == [2, 2, 2]
    assert published.node("one")["structure"]["shape"] == [1, 2, 2]
    assert zarr.open_array(published.url("one"), mode="r")[:].tolist() == [[[7, 7], [7, 7]]]
