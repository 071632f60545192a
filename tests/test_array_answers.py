"""Array answers a person gets from ``publish serve`` (issue 11): selections that cannot be drawn
are 4xx, downloads carry usable file names, previews show the data (robust contrast, fills
transparent, HTML a readable corner with links), text formats keep each dtype's precision,
and every whole answer is bounded before it is built."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest
from PIL import Image

from .conftest import Published, run_build, served
from .test_build_demo import demo_config

FRAME = "scans/scan_0001/entry/data/data"  # 12 x 256 x 256 uint16, a dead row of 65535 at y=100
#: What a browser sends for a link it opens.
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def _probe_file(folder: Path) -> Path:
    """Arrays the demo lacks: a float field with NaN and a CF fill, float32 values, an empty array."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:40, 0:60]
    field = (20 + 10 * xx / 59 + 0 * yy).astype("f4")  # 20..30 left to right
    field[:5] = np.nan
    field[-5:] = -999.0
    with h5py.File(folder / "probe.h5", "w") as f:
        f.create_dataset("field", data=field).attrs["_FillValue"] = np.float32(-999.0)
        f.create_dataset("f32", data=np.array([10.2, 0.1, 1e-7, 3.4e38, -2.5], dtype="f4"))
        f.create_dataset("empty", data=np.zeros((0, 5), dtype="f8"))
        f.create_dataset("c64", data=np.array([10.2 - 0.1j], dtype="c8"))
    return folder


@pytest.fixture(scope="module")
def demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder = tmp_path_factory.mktemp("array-answers")
    config = demo_config(demo_dir)
    config["sources"].append({"path": str(_probe_file(folder / "probe") / "probe.h5"), "into": "probe"})
    return run_build(folder, config)


@pytest.fixture(scope="module")
def api(demo: Published) -> Iterator[str]:
    with served(demo.store.url) as url:
        yield f"{url}/api/v1"


@pytest.fixture(scope="module")
def frame(demo_dir: Path) -> np.ndarray:
    with h5py.File(demo_dir / "scans" / "scan_0001.nxs") as f:
        return f["entry/data/data"][()]


def _refused(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json" and "Traceback" not in response.text
    return response.json()["detail"]


# 1. selections that cannot be drawn ---------------------------------------------------------
@pytest.mark.parametrize(("query", "words"), [
    (f"array/full/{FRAME}?slice=0,5:2&format=png", "empty"),
    (f"array/full/{FRAME}?slice=0,300:400&format=png", "empty"),
    (f"array/full/{FRAME}?slice=0,5:2&format=tiff", "empty"),
    (f"array/full/{FRAME}?slice=0,:,0:0&format=png&colormap=viridis", "empty"),
    (f"array/block/{FRAME}?block=0,0,0&slice=0,5:2&format=png", "empty"),
    ("array/full/probe/probe/empty?format=png", "empty"),
    ("array/full/probe/probe/empty?format=tiff", "empty"),
    (f"array/full/{FRAME}?slice=0,5,5&format=tiff", "single value"),
    (f"array/full/{FRAME}?slice=0,0:9:0", "step cannot be zero"),
    (f"array/block/{FRAME}?block=0,0,0&slice=5", "out of range"),
    (f"array/full/{FRAME}?slice=0,1:2:3:4", "slice must look like"),
    ("column/full/tables/temperature_log/setpoint?slice=9999", "out of range"),
    ("column/full/tables/temperature_log/setpoint?slice=1,2", "dimensions"),
])
def test_selections_that_cannot_be_answered_are_4xx(api: str, query: str, words: str) -> None:
    assert words in _refused(httpx.get(f"{api}/{query}"))


def test_empty_and_reversed_selections_answer_as_numpy(api: str, frame: np.ndarray) -> None:
    assert httpx.get(f"{api}/array/full/{FRAME}?slice=0,5:2&format=json").json() == []
    assert httpx.get(f"{api}/array/full/probe/probe/empty?format=json").json() == []
    raw = httpx.get(f"{api}/array/full/probe/probe/empty")
    assert raw.status_code == 200 and raw.content == b""
    assert np.load(io.BytesIO(httpx.get(f"{api}/array/full/probe/probe/empty?format=npy").content)).shape == (0, 5)
    got = httpx.get(f"{api}/array/full/{FRAME}?slice=-1,::-7,200:10:-9&format=json").json()
    assert got == frame[-1, ::-7, 200:10:-9].tolist()  # negative steps as Tiled (NumPy) reads them


# 2. and 3. file names ---------------------------------------------------------------------------
def _filename(response: httpx.Response) -> tuple[str, str | None]:
    """(disposition, file name) as Werkzeug (Flask's HTTP layer) reads Content-Disposition,
    ``filename*`` (RFC 6266/8187) preferred to ``filename``."""
    from werkzeug.http import parse_options_header

    disposition, params = parse_options_header(response.headers["content-disposition"])
    return disposition, params.get("filename")


def test_a_non_latin_filename_is_sent_as_rfc_6266_filename_star(api: str) -> None:
    response = httpx.get(f"{api}/array/full/{FRAME}?slice=0&format=json&filename=%E2%82%AC%20d%C3%A9j%C3%A0.json")
    assert response.status_code == 200, response.text
    header = response.headers["content-disposition"]
    assert header.isascii() and 'filename="_ deja.json"' in header  # an ASCII fallback for old clients
    assert _filename(response) == ("attachment", "€ déjà.json")


@pytest.mark.parametrize(("asked", "saved"), [("a%0Db%2Fc.png", "ab_c.png"), ("..%2F..%2Fetc%2Fpasswd", ".._.._etc_passwd"),
                                              ("x%E2%80%AEgnp.exe", "xgnp.exe"), ('q%22uote%5C.png', 'q"uote_.png')])
def test_filenames_lose_path_separators_and_control_characters(api: str, asked: str, saved: str) -> None:
    response = httpx.get(f"{api}/array/full/{FRAME}?slice=0&format=png&filename={asked}")
    assert response.status_code == 200 and _filename(response) == ("attachment", saved)
    assert "\r" not in response.headers["content-disposition"] and "/" not in response.headers["content-disposition"]


@pytest.mark.parametrize("asked", ["%0D%0A", "%2E%2E", "x" * 300])
def test_unusable_filenames_are_400(api: str, asked: str) -> None:
    assert "filename" in _refused(httpx.get(f"{api}/array/full/{FRAME}?slice=0&format=csv&filename={asked}"))


@pytest.mark.parametrize(("query", "disposition", "name"), [
    ("table/full/tables/temperature_log?format=csv", "attachment", "temperature_log.csv"),
    ("table/partition/tables/temperature_log?partition=0&format=xlsx", "attachment", "temperature_log_partition_0.xlsx"),
    (f"array/full/{FRAME}?slice=0,5:10&format=png", "inline", "data_0_5-10.png"),
    (f"array/full/{FRAME}?slice=3,:,:&format=tiff", "attachment", "data_3.tiff"),
    (f"array/full/{FRAME}?slice=:,7&format=npy", "attachment", "data_all_7.npy"),
    (f"array/block/{FRAME}?block=2,0,0", "attachment", "data_block_2_0_0.bin"),
    (f"array/full/{FRAME}?slice=0", "attachment", "data_0.bin"),
    (f"array/full/{FRAME}?format=html", "inline", "data.html"),
    ("container/full/scans/scan_0001/entry/sample?format=h5", "attachment", "sample.h5"),
])
def test_downloads_get_a_default_file_name(api: str, query: str, disposition: str, name: str) -> None:
    response = httpx.get(f"{api}/{query}")
    assert response.status_code == 200, response.text
    assert _filename(response) == (disposition, name)


def test_json_answers_name_no_file(api: str) -> None:
    assert "content-disposition" not in httpx.get(f"{api}/array/full/{FRAME}?slice=0,0&format=json").headers
    assert "content-disposition" not in httpx.get(f"{api}/table/full/tables/temperature_log?format=json").headers


# 4. previews -------------------------------------------------------------------------------------
def test_default_png_contrast_is_robust_to_a_saturated_row(api: str, frame: np.ndarray) -> None:
    image = np.asarray(Image.open(io.BytesIO(httpx.get(f"{api}/array/full/{FRAME}?slice=0&format=png").content)))
    assert image.shape == frame.shape[1:]
    assert (image[100] == 255).all()  # the dead row is white, as before
    rest = np.delete(image, 100, axis=0)
    assert np.percentile(rest, 99.9) >= 200  # ... but no longer the only bright thing: the peak is
    peak = np.unravel_index(np.argmax(np.delete(frame[0], 100, axis=0)), rest.shape)
    assert rest[peak] == 255
    # an explicit rescale still wins: the old min-max look on request
    dark = np.asarray(Image.open(io.BytesIO(httpx.get(f"{api}/array/full/{FRAME}?slice=0&format=png&rescale=0,65535").content)))
    assert np.delete(dark, 100, axis=0).max() <= round(frame[0][frame[0] < 65535].max() / 65535 * 255)


def test_png_of_a_field_with_nan_and_fill_shows_the_field(api: str) -> None:
    response = httpx.get(f"{api}/array/full/probe/probe/field?format=png")
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "LA"
    gray, alpha = np.asarray(image)[..., 0], np.asarray(image)[..., 1]
    assert (alpha[:5] == 0).all() and (alpha[-5:] == 0).all() and (alpha[5:-5] == 255).all()  # NaN and _FillValue transparent
    shown = gray[5:-5]
    assert shown[:, 0].max() <= 5 and shown[:, -1].min() >= 250  # 20..30 spans black to white, not squeezed by -999
    viridis = Image.open(io.BytesIO(httpx.get(f"{api}/array/full/probe/probe/field?format=png&colormap=viridis&max_size=16").content))
    assert viridis.mode == "RGBA" and max(viridis.size) <= 16
    # the demo's CF-packed sea surface temperature: its land mask (the first two latitudes) is the fill
    sst = np.asarray(Image.open(io.BytesIO(httpx.get(f"{api}/array/full/climate/sst/sst?slice=0&format=png").content)))
    assert (sst[:2, :, 1] == 0).all() and (sst[2:, :, 1] == 255).all()
    assert sst[2:, :, 0].min() <= 10 and sst[2:, :, 0].max() >= 245


# 5. HTML ------------------------------------------------------------------------------------------
def test_html_in_a_browser_is_a_readable_corner_with_links(api: str, frame: np.ndarray) -> None:
    response = httpx.get(f"{api}/array/full/{FRAME}", headers={"Accept": BROWSER})
    assert response.headers["content-type"] == "text/html"
    assert len(response.content) < 64 * 1024
    page = response.text
    assert "12 × 256 × 256" in page and "first 100 of 256 rows and 20 of 256 columns" in page
    assert page.count("<tr>") == 101 and f"<td>{frame[0, 99, 19]}</td></tr>" in page
    assert "format=npy" in page and "format=png" not in page  # a 3-D stack is no image (a 400); one frame is
    sliced = httpx.get(f"{api}/array/full/{FRAME}?slice=2,::-1&format=html")
    assert f"<td>{frame[2, 255, 0]}</td>" in sliced.text.split("<tr>")[2]
    csv_link = sliced.text.split('<a href="')[1].split('"')[0].replace("&amp;", "&")
    assert "format=csv" in csv_link and "slice=2%2C%3A%3A-1" in csv_link and "format=png" in sliced.text
    np.testing.assert_array_equal(np.loadtxt(io.StringIO(httpx.get(csv_link).text), delimiter=",", dtype="u2"), frame[2, ::-1])


# 6. precision ---------------------------------------------------------------------------------------
def test_float32_text_is_its_shortest_round_trip_form(api: str, demo_dir: Path) -> None:
    expected = np.array([10.2, 0.1, 1e-7, 3.4e38, -2.5], dtype="f4")
    csv = httpx.get(f"{api}/array/full/probe/probe/f32?format=csv").text
    assert csv.split() == ["10.2", "0.1", "1e-07", "3.4e+38", "-2.5"]
    np.testing.assert_array_equal(np.loadtxt(io.StringIO(csv), dtype="f4"), expected)
    assert httpx.get(f"{api}/array/full/probe/probe/f32?format=json").text == "[10.2,0.1,1e-07,3.4e+38,-2.5]"
    assert httpx.get(f"{api}/array/full/probe/probe/c64?format=json").json() == [[10.2, -0.1]]
    assert "<td>10.2</td>" in httpx.get(f"{api}/array/full/probe/probe/f32?format=html").text


# 7. bounded answers -----------------------------------------------------------------------------------
def test_array_answers_are_refused_past_the_limit_with_advice(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYSHELF_MAX_ANSWER_BYTES", str(8 * 2**20))  # the frame stack is 1.5 MiB of uint16
    for query in (f"full/{FRAME}?format=json", f"full/{FRAME}?slice=0:4&format=json", f"full/{FRAME}?format=png&slice=0:12"):
        detail = _refused(httpx.get(f"{api}/array/{query}"))
        assert "SKYSHELF_MAX_ANSWER_BYTES" in detail and "slice=0:1,0:256,0:256" in detail and "block=0,0,0" in detail, detail
    assert "SKYSHELF_MAX_ANSWER_BYTES" in _refused(httpx.get(f"{api}/array/full/{FRAME}?slice=0:6,:,:&format=csv"))
    # what fits is answered: raw bytes, one frame as JSON or CSV, one block, the HTML corner
    assert len(httpx.get(f"{api}/array/full/{FRAME}").content) == 12 * 256 * 256 * 2
    assert len(httpx.get(f"{api}/array/full/{FRAME}?slice=0&format=json").json()) == 256
    assert httpx.get(f"{api}/array/full/{FRAME}?slice=0&format=csv").status_code == 200
    assert len(httpx.get(f"{api}/array/block/{FRAME}?block=3,0,0&format=json").json()) == 1
    assert httpx.get(f"{api}/array/full/{FRAME}", headers={"Accept": BROWSER}).status_code == 200
    monkeypatch.setenv("SKYSHELF_MAX_ANSWER_BYTES", str(2**20))
    assert "block [3, 0, 0]" in _refused(httpx.get(f"{api}/array/block/{FRAME}?block=3,0,0&format=json"))
    body = json.loads(httpx.get(f"{api}/array/full/{FRAME}?slice=0,0:4,0:4&format=json").content)
    assert np.asarray(body).shape == (4, 4)
