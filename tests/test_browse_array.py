"""The browse page's array previews (issue 14) in a real chromium: the image shown is the PNG the
API answers for the slice the sliders name, zoom asks for the region (buttons and a dragged
rectangle), log scale and min/max reach the request (a bad min shows the server's detail), a deep
link restores the controls, 1-D arrays plot every point (or a stated stride), scalars and strings
show as text, and it all fits a phone."""

from __future__ import annotations

import io
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from .browser import (Served, assert_no_errors, browser, open_view, page_for, ready_count,  # noqa: F401
                      screenshot, served_demo, served_private, wait_ready)
from .conftest import ROOT, run_build
from .servers import publish_serve

DATA = "scans/scan_0001/entry/data/data"  # 12 × 256 × 256 uint16, dims th, dim_1, dim_2
TH = "scans/scan_0001/entry/data/th"  # 12 float64
SST = "climate/sst/sst"  # 6 × 18 × 36 float64
COLORMAP_FILE = ROOT / "publisher" / "serializers" / "colormaps.npz"


def api_png(base: str, path: str, key: str | None = None, **query: str) -> tuple[np.ndarray, dict[str, str]]:
    """The pixels and headers the API answers for a PNG of ``path`` with ``query`` (and an API key)."""
    q = urllib.parse.urlencode({"format": "image/png", **query})
    headers = {"Authorization": f"Apikey {key}"} if key else {}
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/array/full/{path}?{q}", headers=headers)) as answer:
        return pixels(answer.read()), dict(answer.headers)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlparse(url).query).items()}


def hash_params(page: Any) -> dict[str, str]:
    fragment = urllib.parse.urlparse(page.url).fragment
    return {k: v[0] for k, v in urllib.parse.parse_qs(fragment.partition("?")[2]).items()}


def is_png(path: str, slice_: str | None = None) -> Any:
    """A predicate for ``expect_response``: the PNG of ``path`` (with that slice, when given)."""
    def match(response: Any) -> bool:
        url = response.url
        if f"/array/full/{path}?" not in url or query_of(url).get("format") != "image/png":
            return False
        return slice_ is None or query_of(url).get("slice") == slice_
    return match


def shown_pixels(page: Any) -> np.ndarray:
    """The pixels of the image on screen, read back through a canvas (RGBA)."""
    data = page.evaluate("""() => {
        const img = document.querySelector('img.array-image');
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const c = canvas.getContext('2d');
        c.drawImage(img, 0, 0);
        return [img.naturalHeight, img.naturalWidth, Array.from(c.getImageData(0, 0, canvas.width, canvas.height).data)];
    }""")
    return np.array(data[2], dtype=np.uint8).reshape(data[0], data[1], 4)


def same_image(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal pixels (colour where opaque; a transparent pixel's colour is not kept by a canvas)."""
    return a.shape == b.shape and bool((a[..., 3] == b[..., 3]).all() and (a[a[..., 3] > 0] == b[b[..., 3] > 0]).all())


def wait_image(page: Any, slice_: str) -> None:
    page.wait_for_function("s => { const i = document.querySelector('img.array-image');"
                           " return i && i.dataset.slice === s && !document.querySelector('#view[aria-busy]'); }",
                           arg=slice_, timeout=20_000)


@pytest.fixture
def page(browser: Any, served_demo: Served) -> Iterator[Any]:  # noqa: F811
    one = page_for(browser, served_demo.url)
    yield one
    one.context.close()


@pytest.fixture(scope="module")
def long_arrays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A catalog with arrays larger than the page shows at once: ``long`` (5000 values, a NaN
    gap), ``tall`` (3000 × 40), ``thin`` (1 × 3000), ``names`` (1500 strings)."""
    import h5py

    folder = tmp_path_factory.mktemp("browse-array-long")
    with h5py.File(folder / "big.h5", "w") as f:
        long = np.sin(np.arange(5000) / 100.0)
        long[30:36] = np.nan
        f.create_dataset("long", data=long)
        f.create_dataset("tall", data=np.arange(3000 * 40, dtype="f4").reshape(3000, 40))
        f.create_dataset("thin", data=np.arange(3000, dtype="i2").reshape(1, 3000))
        f.create_dataset("names", data=np.array([f"n{i}" for i in range(1500)], dtype=h5py.string_dtype()))
    published = run_build(folder, {"sources": [{"path": str(folder / "big.h5"), "into": "big"}]})
    with publish_serve(published.store.url, cwd=ROOT) as url:
        yield url


def test_slider_by_keyboard_shows_that_slice(page: Any, served_demo: Served) -> None:  # noqa: F811
    with page.expect_response(is_png(DATA, "0,:,:")) as first:
        open_view(page, DATA)
    wait_image(page, "0,:,:")
    assert (pixels(first.value.body()) == api_png(served_demo.url, DATA, slice="0,:,:", colormap="gray")[0]).all()
    # min/max show the range the server used for the automatic scaling
    lo, hi = api_png(served_demo.url, DATA, slice="0,:,:")[1]["x-skyshelf-rescale"].split(",")
    assert float(page.get_by_label("Min").input_value()) == pytest.approx(float(lo))
    assert float(page.get_by_label("Max").input_value()) == pytest.approx(float(hi))

    slider = page.get_by_role("slider")
    slider.focus()
    with page.expect_response(is_png(DATA, "3,:,:")) as third:
        for _ in range(3):
            slider.press("ArrowRight")
    wait_image(page, "3,:,:")
    expected = api_png(served_demo.url, DATA, slice="3,:,:", colormap="gray")[0]
    assert (pixels(third.value.body()) == expected).all()
    assert same_image(shown_pixels(page), expected)  # the image on screen, not an older one
    assert not (expected == api_png(served_demo.url, DATA, slice="0,:,:", colormap="gray")[0]).all()
    assert hash_params(page)["slice"] == "3,:,:"
    assert page.locator(".dim output").inner_text() == "3"
    assert "th" in page.locator("label.dim").inner_text()
    assert page.locator(".slice-text").inner_text() == "3,:,:"

    # a fast run of keys ends on the last slice's image (the newest request wins)
    for _ in range(8):
        slider.press("ArrowRight")
    wait_image(page, "11,:,:")
    assert same_image(shown_pixels(page), api_png(served_demo.url, DATA, slice="11,:,:", colormap="gray")[0])

    # dragged by the mouse across every index: it ends on the index where it was let go
    box = slider.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    for i in range(10, -1, -1):
        page.mouse.move(box["x"] + 2 + (box["width"] - 4) * i / 11, box["y"] + box["height"] / 2)
    page.mouse.up()
    wait_image(page, "0,:,:")
    assert same_image(shown_pixels(page), api_png(served_demo.url, DATA, slice="0,:,:", colormap="gray")[0])
    assert hash_params(page)["slice"] == "0,:,:"
    screenshot(page, "array-preview")
    assert_no_errors(page)


def test_zoom_by_buttons_and_by_drag(page: Any) -> None:
    open_view(page, DATA, params={"slice": "2,:,:"})
    wait_image(page, "2,:,:")
    with page.expect_response(is_png(DATA)) as zoomed:
        page.get_by_role("button", name="Zoom in ×2").press("Enter")  # by keyboard
    assert query_of(zoomed.value.url)["slice"] == "2,64:192,64:192"
    wait_image(page, "2,64:192,64:192")
    assert hash_params(page)["slice"] == "2,64:192,64:192"
    with page.expect_response(is_png(DATA)) as panned:
        page.get_by_role("button", name="Pan right").click()
    assert query_of(panned.value.url)["slice"] == "2,64:192,128:256"
    with page.expect_response(is_png(DATA)) as edge:  # at the right edge: it stays inside the array
        page.get_by_role("button", name="Pan right").click()
    assert query_of(edge.value.url)["slice"] == "2,64:192,128:256"
    with page.expect_response(is_png(DATA)) as keyed:
        page.locator("img.array-image").focus()
        page.keyboard.press("ArrowUp")
    assert query_of(keyed.value.url)["slice"] == "2,0:128,128:256"
    wait_image(page, "2,0:128,128:256")
    with page.expect_response(is_png(DATA)) as out:
        page.get_by_role("button", name="Zoom out").click()
    assert query_of(out.value.url)["slice"] == "2,:,:"
    wait_image(page, "2,:,:")

    # a rectangle dragged from a quarter of the way in to the middle of the image
    box = page.locator("img.array-image").bounding_box()
    x, y, w, hgt = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + w / 4, y + hgt / 4)
    page.mouse.down()
    page.mouse.move(x + w * 0.4, y + hgt * 0.4)
    page.mouse.move(x + w * 3 / 4, y + hgt / 2)
    with page.expect_response(is_png(DATA)) as dragged:
        page.mouse.up()
    index, rows, cols = query_of(dragged.value.url)["slice"].split(",")
    assert index == "2"
    (r0, r1), (c0, c1) = (map(int, rows.split(":")), map(int, cols.split(":")))
    for got, want in ((r0, 64), (r1, 128), (c0, 64), (c1, 192)):
        assert abs(got - want) <= 2, (rows, cols)
    wait_image(page, f"2,{rows},{cols}")
    shown = shown_pixels(page)
    assert shown.shape[:2] == (r1 - r0, c1 - c0)  # a new slice of the region, not a scaled bitmap

    with page.expect_response(is_png(DATA, "2,:,:")):
        page.get_by_role("button", name="Reset zoom").click()
    assert_no_errors(page)


def test_large_region_is_asked_for_with_a_step(browser: Any, long_arrays: str) -> None:  # noqa: F811
    page = page_for(browser, long_arrays)
    with page.expect_response(is_png("big/big/tall")) as first:
        open_view(page, "big/big/tall")
    # 3000 rows: one in 3 to stay near 1024 pixels; the 40 columns each side has its own step
    assert query_of(first.value.url)["slice"] == "::3,:"
    assert pixels(first.value.body()).shape[:2] == (1000, 40)
    wait_image(page, "::3,:")
    box = page.locator("img.array-image").bounding_box()
    assert box["width"] / box["height"] == pytest.approx(1 / 4, rel=0.05)  # at most 1:4, not a 40:3000 sliver
    with page.expect_response(is_png("big/big/thin")) as thin:  # one row: zoom keeps it, narrows the columns
        open_view(page, "big/big/thin")
    assert query_of(thin.value.url)["slice"] == ":,::3"
    wait_image(page, ":,::3")
    with page.expect_response(is_png("big/big/thin")) as zoomed:
        page.get_by_role("button", name="Zoom in ×2").click()
    assert query_of(zoomed.value.url)["slice"] == ":,750:2250:2" and zoomed.value.status == 200
    assert_no_errors(page)
    page.context.close()


def test_colormap_log_scale_and_min_max(page: Any, served_demo: Served) -> None:  # noqa: F811
    open_view(page, SST)
    wait_image(page, "0,:,:")
    # the select offers exactly the colormaps the server knows (its 400 lists them)
    try:
        urllib.request.urlopen(f"{served_demo.url}/api/v1/array/full/{SST}?format=image/png&colormap=nope")
        raise AssertionError("an unknown colormap was accepted")
    except urllib.error.HTTPError as error:
        known = json.loads(error.read())["detail"]
    options = page.get_by_label("Colormap").locator("option").all_inner_texts()
    assert sorted(options) == sorted(re.findall(r"'(\w+)'", known.split("choose one of")[1]))

    with page.expect_response(is_png(SST)) as coloured:
        page.get_by_label("Colormap").select_option("magma")
    assert query_of(coloured.value.url)["colormap"] == "magma"
    with page.expect_response(is_png(SST)) as logged:
        page.get_by_label("Scale").select_option("log")
    assert query_of(logged.value.url)["scale"] == "log"
    assert "rescale" not in query_of(logged.value.url)  # automatic range until one is typed
    wait_image(page, "0,:,:")
    assert same_image(shown_pixels(page), api_png(served_demo.url, SST, slice="0,:,:", colormap="magma", scale="log")[0])

    with page.expect_response(is_png(SST)) as one_bound:  # the other bound stays as shown (automatic)
        page.get_by_label("Max").fill("25")
        page.get_by_label("Max").press("Enter")
    automatic_lo = page.get_by_label("Min").input_value()
    assert query_of(one_bound.value.url)["rescale"] == f"{automatic_lo},25"
    with page.expect_response(is_png(SST)) as bad:
        page.get_by_label("Min").fill("0")
        page.get_by_label("Min").press("Enter")
    assert bad.value.status == 400
    assert query_of(bad.value.url)["rescale"] == "0,25"
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "min must be above 0 with scale=log" in alert.inner_text()
    assert hash_params(page)["min"] == "0" and hash_params(page)["scale"] == "log"

    with page.expect_response(is_png(SST)) as good:
        page.get_by_label("Min").fill("5")
        page.get_by_label("Min").press("Enter")
    assert good.value.status == 200 and query_of(good.value.url)["rescale"] == "5,25"
    page.wait_for_function("() => !document.querySelector('.array-error [role=alert]')")
    with page.expect_response(is_png(SST)) as automatic:
        page.get_by_role("button", name="Automatic range").click()
    assert "rescale" not in query_of(automatic.value.url)
    assert "min" not in hash_params(page)
    assert_no_errors(page, allow=[r"status of 400"])


def test_deep_link_restores_the_view(page: Any, served_demo: Served) -> None:  # noqa: F811
    params = {"slice": "5,10:100,20:200", "cmap": "viridis", "scale": "log", "min": "50", "max": "3000"}
    with page.expect_response(is_png(DATA)) as first:
        open_view(page, DATA, params=params)
    query = query_of(first.value.url)
    assert (query["slice"], query["colormap"], query["scale"], query["rescale"]) == ("5,10:100,20:200", "viridis", "log", "50,3000")
    wait_image(page, "5,10:100,20:200")
    assert page.get_by_role("slider").input_value() == "5"
    assert page.get_by_label("Colormap").input_value() == "viridis"
    assert page.get_by_label("Scale").input_value() == "log"
    assert page.get_by_label("Min").input_value() == "50"
    assert page.get_by_label("Max").input_value() == "3000"
    expected = api_png(served_demo.url, DATA, slice="5,10:100,20:200", colormap="viridis", scale="log", rescale="50,3000")[0]
    assert same_image(shown_pixels(page), expected)
    # the address after a change is itself a link to the same view
    page.get_by_role("slider").press("ArrowLeft")
    wait_image(page, "4,10:100,20:200")
    assert hash_params(page) == {**params, "slice": "4,10:100,20:200"}
    assert_no_errors(page)


def test_colour_bar_is_the_colormaps(page: Any) -> None:
    """array.js's colour-bar stops are colormaps.npz's (16 evenly spaced entries of each), and the
    bar under the image shows the colormap and range of the image on screen."""
    source = (ROOT / "publisher" / "browse" / "static" / "array.js").read_text()
    stops = dict(re.findall(r"^  (\w+): '([0-9a-f]+)',$", source, flags=re.M))
    with np.load(COLORMAP_FILE) as maps:
        assert sorted(stops) == sorted(maps.files)
        for name in maps.files:
            want = maps[name][np.linspace(0, 255, 16).round().astype(int)]
            assert bytes.fromhex(stops[name]) == want.astype("u1").tobytes(), name
    open_view(page, DATA, params={"cmap": "hot", "min": "100", "max": "2000"})
    wait_image(page, "0,:,:")
    assert page.locator(".bar-lo").inner_text() == "100" and page.locator(".bar-hi").inner_text() == "2000"
    assert "hot" in page.locator(".colorbar-labels").inner_text()
    background = page.locator(".colorbar").evaluate("e => getComputedStyle(e).backgroundImage")
    assert background.startswith("linear-gradient") and "rgb(11, 0, 0)" in background  # hot's first stop
    assert_no_errors(page)


def polyline_points(page: Any) -> int:
    return int(page.evaluate("""() => [...document.querySelectorAll('.array-plot svg .series polyline')]
        .reduce((n, p) => n + p.points.numberOfItems, 0)
        + document.querySelectorAll('.array-plot svg .series circle').length"""))


def test_1d_plot_has_every_point(page: Any, served_demo: Served) -> None:  # noqa: F811
    open_view(page, TH)
    plot = page.get_by_role("img", name=re.compile("12 points"))
    assert plot.get_attribute("data-points") == "12"
    assert polyline_points(page) == 12
    assert page.locator(".array-plot svg .markers circle").count() == 12  # few points: each marked
    assert "All 12 values" in page.locator(".array-plot figcaption").inner_text()
    screenshot(page, "array-1d")
    assert_no_errors(page)


def test_line_plot_takes_numbers_dates_or_nothing_as_x(browser: Any, served_demo: Served) -> None:  # noqa: F811
    """plot.js's linePlot (also table.js's): x as numbers, as date strings (labelled as dates, a
    date-time without offset taken as UTC wherever the browser is), or the index when x is text;
    a null y is a gap."""
    page = page_for(browser, served_demo.url, timezone_id="America/Los_Angeles")
    open_view(page, TH)
    drawn = page.evaluate("""async () => {
        const { linePlot } = await import('/ui/plot.js');
        const one = (ys, xs) => {
            const svg = linePlot(ys, { xs, xLabel: 'x', yLabel: 'y' });
            return { points: svg.dataset.points, label: svg.getAttribute('aria-label'), role: svg.getAttribute('role'),
                     lines: svg.querySelectorAll('.series polyline').length,
                     ticks: [...svg.querySelectorAll('text')].map((t) => t.textContent) };
        };
        return {
            numbers: one([1, 4, 9, 16], [10, 20, 30, 40]),
            dates: one([1, 2, null, 4, 5], ['2026-01-01T00:00:00', '2026-01-02T00:00:00', '2026-01-03T00:00:00',
                                            '2026-01-04T00:00:00', '2026-01-08T00:00:00']),
            words: one([3, 1, 2], ['a', 'b', 'c']),
            times: one([1, 2, 3], ['2026-01-01T10:00:00.000000000', '2026-01-01T10:10:00.000000000', '2026-01-01T10:20:00.000000000']),
        };
    }""")
    assert drawn["numbers"]["points"] == "4" and drawn["numbers"]["role"] == "img"
    assert "from 10 to 40" in drawn["numbers"]["label"] and "20" in drawn["numbers"]["ticks"]
    assert drawn["dates"]["points"] == "4" and drawn["dates"]["lines"] == 2  # the null splits the line
    assert "from 2026-01-01 to 2026-01-08" in drawn["dates"]["label"]
    assert any(re.fullmatch(r"2026-01-0\d", t) for t in drawn["dates"]["ticks"])
    assert "from 0 to 2" in drawn["words"]["label"]  # text x: plotted against the index
    assert "from 2026-01-01 10:00 to 2026-01-01 10:20" in drawn["times"]["label"]  # UTC, not Los Angeles
    assert "2026-01-01 10:05" in drawn["times"]["ticks"]
    assert_no_errors(page)
    page.context.close()


def test_long_1d_is_strided_and_says_so(browser: Any, long_arrays: str) -> None:  # noqa: F811
    page = page_for(browser, long_arrays)
    with page.expect_response(lambda r: "/array/full/big/big/long?" in r.url) as answer:
        open_view(page, "big/big/long")
    assert query_of(answer.value.url)["slice"] == "::3"
    assert len(json.loads(answer.value.body())) == 1667
    assert polyline_points(page) == 1667 - 2  # values 30..35 are NaN: indices 30 and 33 leave a gap
    assert page.locator(".array-plot svg .series polyline").count() == 2
    assert page.locator(".array-plot svg .markers").count() == 0  # too many to mark
    assert "One value in 3 of 5,000" in page.locator(".array-plot figcaption").inner_text()

    open_view(page, "big/big/names")  # 1500 strings: the first 1000 as text, saying so
    text = json.loads(page.locator("pre.array-text").inner_text())
    assert text[:2] == ["n0", "n1"] and len(text) == 1000
    assert "first 1,000 of 1,500" in page.locator(".note").inner_text()
    assert_no_errors(page)
    page.context.close()


def test_1d_zoom_is_a_new_slice_and_a_deep_link(browser: Any, long_arrays: str) -> None:  # noqa: F811
    """Zooming a 1-D plot asks for that range (strided only while it is over 2000 values), writes
    it to the address, and the address opens the same range."""
    page = page_for(browser, long_arrays)
    open_view(page, "big/big/long")
    with page.expect_response(lambda r: "/array/full/big/big/long?" in r.url) as half:
        page.get_by_role("button", name="Zoom in ×2").press("Enter")  # by keyboard
    assert query_of(half.value.url)["slice"] == "1250:3750:2"  # 2500 values: still one in 2
    page.wait_for_function("() => document.querySelector('.array-plot')?.dataset.slice === '1250:3750:2'")
    assert polyline_points(page) == 1250
    with page.expect_response(lambda r: "/array/full/big/big/long?" in r.url) as quarter:
        page.get_by_role("button", name="Zoom in ×2").click()
    assert query_of(quarter.value.url)["slice"] == "1875:3125"  # 1250 values: every one
    with page.expect_response(lambda r: "/array/full/big/big/long?" in r.url) as panned:
        page.get_by_role("button", name="Pan right").click()
    assert query_of(panned.value.url)["slice"] == "2500:3750"
    page.wait_for_function("() => document.querySelector('.array-plot')?.dataset.slice === '2500:3750'")
    assert hash_params(page)["slice"] == "2500:3750"
    assert json.loads(panned.value.body()) == pytest.approx(np.sin(np.arange(2500, 3750) / 100.0).tolist())
    assert "Values 2,500 to 3,749 of 5,000" in page.locator(".array-plot figcaption").inner_text()

    page.reload()  # the address is a link to the same range
    wait_ready(page, "big/big/long")
    assert page.locator(".slice-text").inner_text() == "2500:3750" and polyline_points(page) == 1250
    with page.expect_response(lambda r: "/array/full/big/big/long?" in r.url) as reset:
        page.get_by_role("button", name="Reset zoom").click()
    assert query_of(reset.value.url)["slice"] == "::3" and "slice" not in hash_params(page)

    held: list[Any] = []  # a range on its way shows as loading until its answer is drawn
    page.route("**/array/full/big/big/long?*", lambda route: held.append(route))
    page.get_by_role("button", name="Zoom in ×2").click()
    page.wait_for_function("() => document.querySelector('.array-plot.busy') && document.querySelector('#view[aria-busy]')")
    while not held:
        page.wait_for_timeout(20)
    held[0].continue_()
    page.wait_for_function("() => !document.querySelector('.array-plot.busy')"
                           " && document.querySelector('.array-plot').dataset.slice === '1250:3750:2'")
    assert_no_errors(page)
    page.context.close()


def test_scalars_and_strings_show_as_text(page: Any) -> None:
    open_view(page, "scans/scan_0001/entry/title")
    assert page.locator("pre.array-text").inner_text() == "NaCl powder at 300 K"
    open_view(page, "scans/scan_0001/entry/sample/temperature")
    assert page.locator("pre.array-text").inner_text() == "300"
    open_view(page, "climate/sst/time")
    assert json.loads(page.locator("pre.array-text").inner_text())[0].startswith("2026-01-01")
    assert_no_errors(page)


def test_fits_a_phone(browser: Any, served_demo: Served) -> None:  # noqa: F811
    page = page_for(browser, served_demo.url, viewport={"width": 390, "height": 844})
    open_view(page, SST, params={"cmap": "viridis"})
    wait_image(page, "0,:,:")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator("img.array-image").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["width"] > 300
    screenshot(page, "array-phone")
    assert_no_errors(page)
    page.context.close()


def test_1d_plot_is_readable_on_a_phone(browser: Any, served_demo: Served) -> None:  # noqa: F811
    """The plot is drawn at the width it is shown, so its labels keep their size at 390 px."""
    page = page_for(browser, served_demo.url, viewport={"width": 390, "height": 844})
    open_view(page, TH)
    heights = page.evaluate("[...document.querySelectorAll('.array-plot svg text')].map(t => t.getBoundingClientRect().height)")
    assert heights and min(heights) >= 11, heights  # 11 px labels (a 640-wide drawing shrunk: about 7)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "array-1d-phone")
    assert_no_errors(page)
    page.context.close()


def test_a_private_image_is_fetched_with_the_key(browser: Any, served_private: Served) -> None:  # noqa: F811
    """An <img src> cannot carry the Authorization header: the page fetches the PNG with it."""
    page = page_for(browser, served_private.url)
    open_view(page)
    before = ready_count(page)
    page.fill("#apikey-input", served_private.keys["a"])
    page.locator("#auth button[type=submit]").click()  # "Sign in" (keys are this catalog's only credentials)
    wait_ready(page, after=before)
    path = "sec_alpha/sec_alpha_img"
    with page.expect_request(is_png(path)) as asked:
        open_view(page, path)
    assert asked.value.headers.get("authorization") == f"Apikey {served_private.keys['a']}"
    wait_image(page, ":,:")
    expected = api_png(served_private.url, path, served_private.keys["a"], slice=":,:", colormap="gray")[0]
    assert same_image(shown_pixels(page), expected)
    assert_no_errors(page)
    page.context.close()
