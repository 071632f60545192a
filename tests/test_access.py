"""The handlers' lean Zarr reader against numpy: any basic selection, any block, both Zarr formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.access.arrays import PublishedArray
from publisher.errors import BadRequest

from .conftest import Published, run_build

SOURCE = np.arange(7 * 11 * 5, dtype=">i4").reshape(7, 11, 5) * 3 - 100  # big-endian source, odd sizes


@pytest.fixture(scope="module", params=[2, 3])
def published(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Published, PublishedArray]:
    folder = tmp_path_factory.mktemp(f"access-v{request.param}")
    np.save(folder / "cube.npy", SOURCE)
    pub = run_build(folder, {"sources": [{"path": "cube.npy"}], "rules": [{"match": "**", "chunks": [3, 4, 2]}],
                             "output": {"store": str(folder / "site"), "zarr_format": request.param}})
    return pub, PublishedArray(pub.store, pub.node("cube")["data_url"])


def _index(n: int) -> st.SearchStrategy:
    bound = st.integers(-n - 3, n + 3) | st.none()
    return st.integers(-n, n - 1) | st.builds(slice, bound, bound, st.sampled_from([None, 1, 2, 3, -1, -2, -4]))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_basic_selection_equals_numpy(published: tuple[Published, PublishedArray], data: st.DataObject) -> None:
    _, array = published
    sel = tuple(data.draw(_index(n)) for n in SOURCE.shape[: data.draw(st.integers(0, 3))])
    got = array.read(sel)
    assert got.dtype == SOURCE.dtype.newbyteorder("<")
    np.testing.assert_array_equal(got, SOURCE[sel])


def test_blocks_and_bad_requests(published: tuple[Published, PublishedArray]) -> None:
    _, array = published
    assert array.grid() == (3, 3, 3)
    np.testing.assert_array_equal(array.block((2, 2, 2)), SOURCE[6:7, 8:11, 4:5])
    for bad in ((3, 0, 0), (0, 0), (-1, 0, 0)):
        with pytest.raises(BadRequest):
            array.block(bad)
    with pytest.raises(BadRequest):
        array.read((7,))
    with pytest.raises(BadRequest):
        array.read((0, 0, 0, 0))
