"""What the browse page (issue 14) asks of the HTTP API beyond Tiled's: PNG previews on a log
scale that say which range they used, facets counted over a whole subtree (as deep search finds
it, private nodes left out), and bounded first-rows and strided reads for table and plot previews.
Every answer is compared with numpy on the same data read from the store with zarr or pyarrow."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest
import zarr
from PIL import Image

from .conftest import Published, run_build
from .test_build_demo import demo_config

FRAME = "scans/scan_0001/entry/data/data"  # 12 x 256 x 256 uint16, Poisson counts, a dead row of 65535
FIELD = "probe/probe/field"  # float32 with negatives, zeros, NaN and a _FillValue


def _probe_file(folder: Path) -> Path:
    """A float field the log scale must cope with: negatives, zeros, NaN and a CF fill."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:40, 0:60]
    field = (10.0 ** (xx / 59 * 4) * (1 + yy / 100)).astype("f4")  # 1 .. ~1.4e4, four decades left to right
    field[:, :3] = 0.0
    field[:, 3:6] = -5.0
    field[0] = np.nan
    field[-1] = -999.0
    with h5py.File(folder / "probe.h5", "w") as f:
        f.create_dataset("field", data=field).attrs["_FillValue"] = np.float32(-999.0)
    return folder


@pytest.fixture(scope="module")
def demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder = tmp_path_factory.mktemp("browse-api")
    config = demo_config(demo_dir)
    config["sources"].append({"path": str(_probe_file(folder / "probe") / "probe.h5"), "into": "probe"})
    return run_build(folder, config)


@pytest.fixture(scope="module")
def api(demo: Published) -> Iterator[str]:
    from handlers.local import LocalServer

    srv = LocalServer(demo.store.url, "127.0.0.1", 0).start()
    yield f"{srv.url}/api/v1"
    srv.stop()


def _stored(demo: Published, path: str) -> zarr.Array:
    return zarr.open_array(demo.url(path), mode="r")


def _image(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def _range(response: httpx.Response) -> tuple[float, float]:
    lo, hi = (float(v) for v in response.headers["x-skyshelf-rescale"].split(","))
    return lo, hi


def _reference(values: np.ndarray, lo: float, hi: float, log: bool) -> np.ndarray:
    """What the PNG's gray levels should be: numpy's own mapping of the values (<= 0 on a log
    scale is below the range: black)."""
    v = values.astype("f8")
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), -np.inf)
        lo, hi = np.log10(lo), np.log10(hi)
    with np.errstate(invalid="ignore"):
        index = np.clip((v - lo) / (hi - lo) * 255, 0, 255)
    return np.where(np.isfinite(v), index, 0).round().astype("u1")


def _refused(response: httpx.Response, *words: str) -> str:
    assert response.status_code == 400, response.headers
    detail = response.json()["detail"]
    assert all(w in detail for w in words), detail
    return detail


# 1. PNG scale and the range used -------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["linear", "log"])
def test_png_of_a_detector_frame_is_numpy_on_the_stored_values(api: str, demo: Published, scale: str) -> None:
    frame = _stored(demo, FRAME)[3, 40:200, 10:250]
    response = httpx.get(f"{api}/array/full/{FRAME}?slice=3,40:200,10:250&format=png&scale={scale}")
    lo, hi = _range(response)
    shown = frame[frame > 0] if scale == "log" else frame.ravel()
    assert (lo, hi) == tuple(float(v) for v in np.percentile(shown, (0.5, 99.5), method="inverted_cdf"))
    np.testing.assert_array_equal(_image(response), _reference(frame, lo, hi, scale == "log"))
    if scale == "log":  # a log scale spreads the background: more gray levels below the peak's half-height
        linear = _image(httpx.get(f"{api}/array/full/{FRAME}?slice=3,40:200,10:250&format=png"))
        assert len(np.unique(_image(response)[frame < 2000])) > 2 * len(np.unique(linear[frame < 2000]))


def test_png_log_scale_of_floats_with_zeros_negatives_and_fills(api: str, demo: Published) -> None:
    field = _stored(demo, FIELD)[...]
    response = httpx.get(f"{api}/array/full/{FIELD}?format=png&scale=log&colormap=gray")
    image = _image(response)
    gray, alpha = image[..., 0], image[..., 1]
    assert (alpha[0] == 0).all() and (alpha[-1] == 0).all() and (alpha[1:-1] == 255).all()  # NaN, fill: transparent
    assert (gray[1:-1, :6] == 0).all()  # zeros and negatives: below the range, the lowest colour (not transparent)
    inner = field[1:-1]
    lo, hi = np.percentile(inner[inner > 0], (0.5, 99.5), method="inverted_cdf")  # the positive values only
    # float32 data's bounds as float32's shortest text (2.8320613, not 2.832061290740967), integral ones as integers
    assert response.headers["x-skyshelf-rescale"] == f"{str(np.float32(lo))},{int(hi)}" and hi == int(hi)
    np.testing.assert_array_equal(gray[1:-1], _reference(inner, lo, hi, True))
    # an explicit range is used as given (data units) and echoed
    given = httpx.get(f"{api}/array/full/{FIELD}?format=png&scale=log&rescale=10,1000")
    assert given.headers["x-skyshelf-rescale"] == "10,1000"
    np.testing.assert_array_equal(_image(given)[1:-1, :, 0], _reference(inner, 10, 1000, True))
    # linear, downsampled: the range of the block means is reported too
    small = httpx.get(f"{api}/array/full/{FIELD}?format=png&max_size=20")
    assert _image(small).shape[:2] == (13, 20) and len(_range(small)) == 2


def test_png_range_header_is_readable_across_origins(api: str) -> None:
    response = httpx.get(f"{api}/array/full/{FRAME}?slice=0&format=png", headers={"Origin": "https://elsewhere.example"})
    assert "x-skyshelf-rescale" in response.headers["access-control-expose-headers"].lower()
    block = httpx.get(f"{api}/array/block/{FRAME}?block=0,0,0&format=png&scale=log")
    assert block.status_code == 200 and len(_range(block)) == 2


@pytest.mark.parametrize(("query", "words"), [
    ("scale=logarithmic", ("scale", "'linear'", "'log'")),
    ("colormap=rainbow", ("colormap", "viridis")),
    ("rescale=1", ("rescale", "min,max")),
    ("rescale=a,b", ("rescale",)),
    ("rescale=1,2,3", ("rescale",)),
    ("rescale=nan,1", ("rescale", "finite")),
    ("rescale=5,1", ("rescale", "min <= max")),
    ("rescale=0,100&scale=log", ("rescale", "above 0", "scale=log")),
    ("max_size=0", ("max_size",)),
    ("max_size=big", ("max_size", "integer")),
    ("max_size=100000", ("max_size",)),
])
@pytest.mark.parametrize("route", [f"array/full/{FRAME}?slice=0&format=png", f"array/block/{FRAME}?block=0,0,0&format=png"])
def test_bad_image_parameters_are_400_naming_them(api: str, route: str, query: str, words: tuple[str, ...]) -> None:
    _refused(httpx.get(f"{api}/{route}&{query}"), *words)
