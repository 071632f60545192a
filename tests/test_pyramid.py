"""Multiscale pyramids (issue 15): images past ``output.pyramid_min_size`` get OME-Zarr 0.5 levels,
validated with ome-zarr-models and checked against numpy on the source; the image itself reads as
before (tiled client, zarr, xarray) and PNG previews draw from the nearest level."""

from __future__ import annotations

import io
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest
import tifffile
import zarr

from .conftest import run_build
from .servers import local_server

rng = np.random.default_rng(15)
MIN_SIZE = 128  # stop size: 32


def _sources() -> dict[str, np.ndarray]:
    floats = rng.normal(100, 30, (150, 141)).astype("f4")
    floats[3, 4] = np.nan  # one NaN in a 2x2 block: left out of the mean
    floats[10:12, 20:22] = np.nan  # a whole block of NaN: stays NaN
    return {
        # > 16 MiB: several slabs through the writer's threads; odd rule chunks (made even)
        "big": rng.integers(0, 65535, (2101, 4100), dtype="u2"),
        "signed": rng.integers(-30000, 30000, (131, 257), dtype="i2"),
        "wide": rng.integers(-(2**62), 2**62, (130, 300), dtype="i8"),
        "floats": floats,
        "labels": rng.integers(0, 7, (140, 133), dtype="u1"),
        "mask": rng.random((140, 130)) > 0.5,
        # > 16 MiB too, chunked by frame: slabs and level bands split along the leading dimension
        "stack": rng.integers(0, 65535, (4, 1030, 2101), dtype="u2"),
        "small": rng.integers(0, 255, (100, 100), dtype="u1"),
        "forbidden": rng.integers(0, 255, (200, 200), dtype="u1"),
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, np.ndarray]]:
    folder: Path = tmp_path_factory.mktemp("pyramid")
    sources = _sources()
    with h5py.File(folder / "f.h5", "w") as f:
        for name, values in sources.items():
            f.create_dataset(name if name != "labels" else "seg/cells", data=values, chunks=True)
        f.create_dataset("odd/zarr.json", data=np.arange(3))  # (a name the Zarr group's document has: the build failed)
        # an image before a labels group, and one beside a dataset named as its levels (each got a pyramid: the group invalid)
        f.create_dataset("crowd/img", data=sources["signed"])
        f.create_dataset("crowd/labels/cells", data=sources["labels"])
        f.create_dataset("named/img", data=sources["signed"])
        f.create_dataset("named/img.levels", data=np.arange(3))
        f.create_dataset("odd/kept", data=np.arange(3))
    tifffile.imwrite(folder / "t.tif", sources["signed"])
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (300, 520, 3), dtype="u1")).save(folder / "photo.png")
    published = run_build(folder, {
        "sources": [{"path": str(folder / "f.h5")}, {"path": str(folder / "t.tif")}, {"path": str(folder / "photo.png")}],
        "on_error": "skip",
        "output": {"store": str(folder / "site"), "pyramid_min_size": MIN_SIZE},
        "rules": [{"match": "f/big", "chunks": [333, 511]}, {"match": "f/stack", "chunks": [1, 400, 700]}, {"match": "f/seg/cells", "labels": True},
                  {"match": "f/forbidden", "pyramid": False},
                  # metadata naming another node's arrays as levels (a sidecar or source attribute could): never followed
                  {"match": "f/small", "metadata": {"pyramid": {"type": "mean", "levels": [{"path": "small", "shape": [100, 100]},
                                                                                      {"path": "../big", "shape": [50, 50]}]}}}],
    })
    return published, sources


def _mean(x: np.ndarray, f: int = 2) -> np.ndarray:
    """The reference: each f x f block's exact mean (Python integers / float64), round half up."""
    h, w = x.shape[-2] // f * f, x.shape[-1] // f * f
    blocks = [x[..., i:h:f, j:w:f] for i in range(f) for j in range(f)]
    if x.dtype.kind in "iu":
        wide = np.int64 if x.dtype.itemsize <= 4 else object  # 64-bit values: Python integers
        total = sum(b.astype(wide) for b in blocks)
        return ((total + f * f // 2) // (f * f)).astype(x.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": a block of NaN alone
        return np.nanmean(np.stack([b.astype("f8") for b in blocks]), axis=0).astype(x.dtype)


def _nearest(x: np.ndarray, f: int = 2) -> np.ndarray:
    h, w = x.shape[-2] // f * f, x.shape[-1] // f * f
    return x[..., 0:h:f, 0:w:f]


def _group(published: Any, path: str) -> zarr.Group:
    return zarr.open_group(published.url(path).rpartition("/")[0], mode="r")


@pytest.mark.parametrize("name,path,method", [("big", "f/big", "mean"), ("signed", "f/signed", "mean"), ("wide", "f/wide", "mean"),
                                              ("floats", "f/floats", "mean"), ("labels", "f/seg/cells", "nearest"),
                                              ("mask", "f/mask", "nearest"), ("stack", "f/stack", "mean"), ("signed", "t", "mean")])
def test_levels_are_valid_ome_zarr_and_match_numpy(built: tuple[Any, dict[str, np.ndarray]], name: str, path: str, method: str) -> None:
    from ome_zarr_models.v05.image import Image

    published, sources = built
    image = Image.from_zarr(_group(published, path))  # raises when the metadata is not OME-Zarr 0.5
    key = path.rpartition("/")[2]
    (multiscale,) = [m for m in image.ome_attributes.multiscales if m.name == key]
    advertised = published.node(path)["metadata"]["pyramid"]
    assert advertised["type"] == multiscale.type == method
    assert [level["path"] for level in advertised["levels"]] == [d.path for d in multiscale.datasets]
    assert multiscale.datasets[0].path == key  # level 0 is the image's own array, stored once
    want, group = sources[name], _group(published, path)
    assert len(advertised["levels"]) >= 3
    factors = [1, 4] + [2 ** (k + 1) for k in range(2, len(advertised["levels"]))]  # level 1 is 4x4, then 2x2 each
    assert published.node(path)["notes"]["pyramid_factors"] == factors
    for k, level in enumerate(advertised["levels"]):
        got = group[level["path"]][...]
        assert list(got.shape) == level["shape"] and got.dtype == want.dtype
        assert group[level["path"]].metadata.dimension_names == tuple(a.name for a in multiscale.axes)
        if want.dtype.kind == "f":  # summed in their own dtype: within a few ulps of the float64 mean; NaN where all four are
            np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=f"{path} level {k}")
        else:  # integers exact
            np.testing.assert_array_equal(got, want, err_msg=f"{path} level {k}")
        assert multiscale.datasets[k].coordinateTransformations[0].scale[-2:] == [float(factors[k])] * 2
        # a block mean's centre; a nearest level keeps each block's top-left pixel: no shift (it was (f-1)/2 off)
        assert multiscale.datasets[k].coordinateTransformations[1].translation[-2:] == [(factors[k] - 1) / 2 if method == "mean" else 0.0] * 2
        want = (_nearest if method == "nearest" else _mean)(want, 4 if k == 0 else 2)
    assert max(advertised["levels"][-1]["shape"][-2:]) <= MIN_SIZE // 4 < max(advertised["levels"][-2]["shape"][-2:])


def test_axes_of_a_stack_leave_the_leading_dimension_unscaled(built: tuple[Any, dict[str, np.ndarray]]) -> None:
    published, _ = built
    ome = _group(published, "f/stack").attrs["ome"]
    (stack,) = [m for m in ome["multiscales"] if m["name"] == "stack"]
    assert [a.get("type") for a in stack["axes"]] == [None, "space", "space"]
    assert stack["datasets"][2]["coordinateTransformations"] == [{"type": "scale", "scale": [1.0, 8.0, 8.0]},
                                                                 {"type": "translation", "translation": [0.0, 3.5, 3.5]}]


def test_a_colour_image_gets_no_pyramid_and_previews_in_colour(built: tuple[Any, dict[str, np.ndarray]]) -> None:
    """A (y, x, band) image: its x and channels were reduced together (300x520x3 -> 300x260x1,
    colours averaged), and its preview of that level a 400. OME-Zarr wants channels before space:
    no pyramid; the preview is the image downsampled, in colour."""
    published, _ = built
    assert published.node("photo")["structure"]["shape"] == [300, 520, 3] and "pyramid" not in published.node("photo")["metadata"]
    with local_server(published.store.url) as url:
        answer = httpx.get(f"{url}/api/v1/array/full/photo", params={"format": "png", "max_size": "200"})
        assert answer.status_code == 200, answer.text


def test_images_whose_group_has_no_room_get_no_pyramid(built: tuple[Any, dict[str, np.ndarray]]) -> None:
    published, sources = built
    for path in ("f/crowd/img", "f/named/img"):
        assert "pyramid" not in published.node(path)["metadata"], path
        np.testing.assert_array_equal(_group(published, path)["img"][...], sources["signed"])
    assert _group(published, "f/named/img")["img.levels"][...].tolist() == [0, 1, 2]


def test_a_dataset_named_as_a_zarr_document_is_skipped(built: tuple[Any, dict[str, np.ndarray]]) -> None:
    published, _ = built
    (skipped,) = [p for p in published.report.skipped if p.path == "f/odd/zarr.json"]
    assert "name of a Zarr group's metadata document" in skipped.reason
    assert published.node("f/odd/kept")["structure"]["shape"] == [3] and not published.report.failures


def test_small_or_forbidden_images_get_no_pyramid(built: tuple[Any, dict[str, np.ndarray]]) -> None:
    published, _ = built
    assert "pyramid" not in published.node("f/forbidden")["metadata"]
    for path in ("f/small", "f/forbidden"):
        assert "pyramid_levels" not in published.node(path)["notes"]
        assert f"{path.rpartition('/')[2]}.levels" not in _group(published, path)


def test_the_image_reads_as_before(built: tuple[Any, dict[str, np.ndarray]]) -> None:
    """zarr at the node's data_url, xarray on the file's group, the tiled client: level 0, unchanged."""
    import xarray as xr
    from tiled.client import from_uri

    published, sources = built
    np.testing.assert_array_equal(zarr.open_array(published.url("f/big"), mode="r")[...], sources["big"])
    dataset = xr.open_zarr(published.url("f/big").rpartition("/")[0])
    assert sorted(dataset.data_vars) == sorted(n for n in sources if n != "labels")
    np.testing.assert_array_equal(dataset["floats"].values, sources["floats"])
    with local_server(published.store.url) as url:
        client = from_uri(f"{url}/api/v1")
        np.testing.assert_array_equal(client["f"]["signed"].read(), sources["signed"])
        np.testing.assert_array_equal(client["t"].read(), sources["signed"])
        assert client["f"]["big"].structure().shape == sources["big"].shape


def _png(url: str, query: str) -> tuple[str | None, tuple[int, int]]:
    from PIL import Image

    with urllib.request.urlopen(f"{url}?{query}") as response:
        return response.headers.get("X-Skyshelf-Level"), Image.open(io.BytesIO(response.read())).size


def test_a_png_preview_reads_the_nearest_level_at_least_its_size(built: tuple[Any, dict[str, np.ndarray]]) -> None:
    published, _ = built
    with local_server(published.store.url) as url:
        big = f"{url}/api/v1/array/full/f/big"
        # level 1 (525 x 1025, 4x4 of level 0) is the coarsest at least 1000 a side; the PNG halves it again to fit
        assert _png(big, "format=png&max_size=1000") == ("1", (512, 262))
        assert _png(big, "format=png&max_size=100") == ("4", (64, 32))  # level 4 (32x): 65 x 128
        assert _png(big, "format=png&max_size=100&slice=0:800,0:800") == ("2", (100, 100))  # 800 px: level 2 (8x) holds 100
        # a stepped selection (the browse page's ::16): the level the steps skip, same pixel count
        assert _png(big, "format=png&max_size=100&slice=0:2100:4,0:4100:4")[0] == "1"
        assert _png(big, "format=png&slice=0:2048:16,0:4096:16") == ("3", (256, 128))
        assert _png(big, "format=png&slice=0:2048:16,0:4096:8") == ("2", (512, 128))  # the largest factor dividing both
        assert _png(big, "format=png&slice=::3,::3")[0] == "0"  # no level samples every third pixel
        assert _png(big, "format=png&slice=::2,::2")[0] == "0"  # nor every second one (level 1 is 4x)
        assert _png(big, "format=png&slice=1:2101:4,0:4100:4") == ("1", (512, 262))  # then shrunk to PNG_MAX_SIZE
        assert _png(big, "format=png&slice=::4,::4")[0] == "0"  # row 2100 lies in level 1's floored-off edge
        assert _png(f"{url}/api/v1/array/full/f/stack", "format=png&max_size=100&slice=2")[0] == "3"  # a frame: 64 x 131
        # no pyramid (metadata claiming one is not followed): the image itself, no header
        assert _png(f"{url}/api/v1/array/full/f/small", "format=png&max_size=50") == (None, (50, 50))


def test_level_factors_trust_only_a_well_formed_note() -> None:
    """The PNG preview's factors: the build's note when well formed, else 2**k (stores built when
    every level halved the one below)."""
    from publisher.access.arrays import level_factors, preview_level

    assert level_factors(4, [1, 4, 8, 16]) == [1, 4, 8, 16]
    for bad in (None, [1, 4, 8], [1, 3, 8, 16], [2, 4, 8, 16], [1, 8, 4, 16], [1, 4.0, 8, 16], [1, True, 8, 16], "1,4,8,16"):
        assert level_factors(4, bad) == [1, 2, 4, 8]
    assert preview_level("s/a", [1, 4, 8], (4000, 4000), (slice(None, None, 8),) * 2, 1024) == ("s/a.levels/2", (slice(0, 500),) * 2, 2)
    assert preview_level("s/a", [1, 2, 4], (4000, 4000), (slice(None, None, 8),) * 2, 1024)[2] == 2  # an older store: 4x is level 2


def test_the_zarr_route_serves_the_image_group_and_its_levels(built: tuple[Any, dict[str, np.ndarray]]) -> None:
    """Through ``/api/v1/zarr/v3``: the file's group is an OME-Zarr image (validated over HTTP),
    a level reads back, and the image node itself is still an array."""
    from ome_zarr_models.v05.image import Image

    published, sources = built
    with local_server(published.store.url) as url:
        api = f"{url}/api/v1/zarr/v3"
        group = zarr.open_group(f"{api}/f", mode="r")
        image = Image.from_zarr(group)
        assert "big" in [m.name for m in image.ome_attributes.multiscales]
        np.testing.assert_array_equal(group["signed.levels/1"][...], _mean(sources["signed"], 4))
        np.testing.assert_array_equal(zarr.open_array(f"{api}/f/signed", mode="r")[...], sources["signed"])


def test_zarr_2_output_gets_no_pyramid(tmp_path: Path) -> None:
    """OME-Zarr 0.5 is Zarr 3: a Zarr 2 build publishes the image alone, even when a rule asks."""
    values = rng.integers(0, 255, (300, 260), dtype="u1")
    with h5py.File(tmp_path / "v2.h5", "w") as f:
        f.create_dataset("image", data=values)
    published = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "v2.h5")}],
                                     "output": {"store": str(tmp_path / "site"), "zarr_format": 2, "pyramid_min_size": MIN_SIZE},
                                     "rules": [{"match": "**", "pyramid": True}]})
    assert "pyramid" not in published.node("v2/image")["metadata"]
    np.testing.assert_array_equal(zarr.open_array(published.url("v2/image"), mode="r")[...], values)


def test_levels_hold_a_few_chunks_whatever_the_width(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image stored in tiles is read in squares of chunks in Z order, so each level holds a few
    chunks in progress however wide the image is (a chunk row of level 1 here is 32 chunks); one
    stored in rows as wide as it is read in rows (a level then holds what a chunk row needs). Both give the
    levels numpy gives."""
    from publisher.writers import pyramid

    made: list[Any] = []

    class Recorded(pyramid._Level):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(pyramid, "_Level", Recorded)
    values = rng.integers(0, 255, (1024, 32768), dtype="u1")
    with h5py.File(tmp_path / "wide.h5", "w") as f:
        f.create_dataset("tiled", data=values, chunks=(256, 256))
        f.create_dataset("rows", data=values, chunks=(64, 32768))
    published = run_build(tmp_path, {"sources": [{"path": str(tmp_path / "wide.h5")}],
                                     "output": {"store": str(tmp_path / "site"), "pyramid_min_size": 512},
                                     "rules": [{"match": "**", "chunks": [256, 256]}]})
    for name in ("tiled", "rows"):
        group = _group(published, f"wide/{name}")
        want = values
        for k, level in enumerate(published.node(f"wide/{name}")["metadata"]["pyramid"]["levels"]):
            np.testing.assert_array_equal(group[level["path"]][...], want, err_msg=f"{name} level {k}")
            want = _mean(want, 4 if k == 0 else 2)
    chunk = 256 * 256
    tiled = [level for level in made if "/tiled.levels/" in level.path]
    assert len(tiled) >= 3 and len(made) == 2 * len(tiled)
    assert max(level.most for level in tiled) <= 8 * chunk  # a few chunks per level (a chunk row of level 1: 32)


def test_an_ome_tiffs_physical_sizes_are_its_axes_units_and_scales(tmp_path: Path) -> None:
    """PhysicalSizeX/Y/Z and TimeIncrement of an OME-TIFF: the axes' units and each level's scale
    (pixel factor times the size) and shift; they were dropped (anisotropic voxels drawn as cubes)."""
    from ome_zarr_models.v05.image import Image

    (tmp_path / "src").mkdir()
    data = (np.arange(2 * 3 * 2 * 300 * 260) % 65535).astype("u2").reshape(2, 3, 2, 300, 260)
    tifffile.imwrite(tmp_path / "src" / "cells.ome.tif", data, ome=True, metadata={
        "axes": "TCZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25, "PhysicalSizeZ": 2.0, "PhysicalSizeZUnit": "nm", "TimeIncrement": 1.0})
    published = run_build(tmp_path, {"sources": [{"path": "src", "into": ""}], "output": {"store": str(tmp_path / "site"), "pyramid_min_size": MIN_SIZE}})
    path = "cells.ome"
    assert published.node(path)["metadata"]["physical_sizes"]["z"] == {"size": 2.0, "unit": "nanometer"}
    image = Image.from_zarr(_group(published, path))
    (multiscale,) = image.ome_attributes.multiscales
    assert [(a.name, a.unit) for a in multiscale.axes] == [("time", "second"), ("channel", None), ("z", "nanometer"), ("y", "micrometer"),
                                                           ("x", "micrometer")]
    level0, level1 = multiscale.datasets[:2]
    assert level0.coordinateTransformations[0].scale == [1.0, 1.0, 2.0, 0.25, 0.5]
    assert level1.coordinateTransformations[0].scale == [1.0, 1.0, 2.0, 1.0, 2.0]
    assert level1.coordinateTransformations[1].translation == [0.0, 0.0, 0.0, 0.375, 0.75]
    # sizes a rule states, in units their axes do not take (a channel has none; "furlong" is no UDUNITS unit): left out
    (tmp_path / "rule").mkdir()
    tifffile.imwrite(tmp_path / "rule" / "plain.tif", data[0, 0, 0])
    stated = {"y": {"size": 3.0, "unit": "furlong"}, "x": {"size": 2.0, "unit": "second"}}
    ruled = run_build(tmp_path / "rule", {"sources": [{"path": str(tmp_path / "rule" / "plain.tif"), "into": ""}], "rules": [
        {"match": "plain", "metadata": {"physical_sizes": stated}}], "output": {"store": str(tmp_path / "rule" / "site"), "pyramid_min_size": MIN_SIZE}})
    (plain,) = Image.from_zarr(_group(ruled, "plain")).ome_attributes.multiscales
    assert [a.unit for a in plain.axes] == [None, None] and plain.datasets[0].coordinateTransformations[0].scale == [1.0, 1.0]
