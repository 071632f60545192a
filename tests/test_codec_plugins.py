"""A third-party codec named in pipeline.yml: the example package (tests/plugins/skyshelf_example)
registers ``example.delta-zlib``, a numcodecs codec of its own, and zarr's ``numcodecs.lz4`` under
``skyshelf.codecs``; a build writes arrays with them, ``zarr.json`` records each by its name and
configuration, and the handlers decode them through the same registry for the real tiled client.
zarr-python reads the codec it knows and refuses the one it does not (docs/plugins.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .servers import publish_serve
from .test_plugins import _env, installed  # noqa: F401 - the installed example package, a fixture

VALUES = {"a": np.linspace(0, 1, 600).reshape(20, 30), "b": np.arange(-300, 300, dtype="<i2").reshape(30, 20)}
PIPELINE = """\
output:
  store: {store}
  codec: {{name: example.delta-zlib, configuration: {{level: 9}}}}
sources:
  - {{path: src, into: ''}}
rules:
  - match: data/b
    chunks: [8, 8]
    codec: numcodecs.lz4
"""


def _publish(cwd: Path, text: str, env: dict[str, str], command: str = "build") -> subprocess.CompletedProcess[str]:
    (cwd / "pipeline.yml").write_text(text)
    return subprocess.run([sys.executable, "-m", "publisher.cli", command, "-c", str(cwd / "pipeline.yml")],
                          capture_output=True, text=True, env=env, cwd=cwd)


def _arrays(site: Path) -> dict[str, Path]:
    """The published Zarr arrays by name."""
    found = {}
    for doc in site.rglob("zarr.json"):
        if json.loads(doc.read_text()).get("node_type") == "array":
            found[doc.parent.name] = doc.parent
    return found


@pytest.mark.filterwarnings("ignore:Numcodecs codecs are not in the Zarr version 3 specification")
def test_a_plugin_codec_from_pipeline_to_the_tiled_client(installed: Path, tmp_path: Path,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import h5py
    import zarr

    (tmp_path / "src").mkdir()
    with h5py.File(tmp_path / "src" / "data.h5", "w") as f:
        for name, values in VALUES.items():
            f[name] = values
    done = _publish(tmp_path, PIPELINE.format(store=tmp_path / "site"), _env(installed))
    assert done.returncode == 0, done.stderr
    arrays = _arrays(tmp_path / "site")
    compressors = {name: json.loads((path / "zarr.json").read_text())["codecs"][1:] for name, path in arrays.items()}
    assert compressors["a"] == [{"name": "example.delta-zlib", "configuration": {"level": 9}}]
    assert compressors["b"] == [{"name": "numcodecs.lz4", "configuration": {"acceleration": 1}}]

    monkeypatch.setenv("PYTHONPATH", _env(installed)["PYTHONPATH"])
    with publish_serve(str(tmp_path / "site"), cwd=tmp_path) as server:
        from tiled.client import from_uri

        client = from_uri(f"{server}/api/v1")
        for name, values in VALUES.items():
            np.testing.assert_array_equal(client["data"][name].read(), values)
        np.testing.assert_array_equal(client["data"]["a"][3:17, 5:29], VALUES["a"][3:17, 5:29])

    # zarr-python decodes the codec it has a class for, and refuses the one it has not
    np.testing.assert_array_equal(zarr.open_array(str(arrays["b"]), mode="r")[:], VALUES["b"])
    with pytest.raises(Exception, match="example.delta-zlib"):
        zarr.open_array(str(arrays["a"]), mode="r")[:]


def test_codec_names_are_checked_against_the_registry(installed: Path, tmp_path: Path) -> None:  # noqa: F811
    """An unknown name lists the known ones, plug-ins included; a plug-in whose library is missing
    says what to install; a configuration the codec refuses, and a plug-in codec in Zarr 2, fail at
    their line of pipeline.yml."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "t.csv").write_text("a\n1\n")
    env = _env(installed)
    head = "sources:\n  - path: src\noutput:\n"
    cases = [
        ("  codec: brotli\n", 4, "output.codec.name", "unknown codec 'brotli'; known: blosc, blosc-lz4, blosc-zstd, example.delta-zlib, "
         "gzip, lz4, none, numcodecs.lz4, zstd"),
        ("  codec: example.missing\n", 4, "output.codec.name", "codec 'example.missing' is unavailable: its plug-in failed to load: "
         "install skyshelf_example_missing_library"),
        ("  codec: {name: example.delta-zlib, configuration: {level: 12}}\n", 4, "output.codec",
         "codec 'example.delta-zlib' refused its configuration {'level': 12}: level must be 0-9, got 12"),
        ("  codec: {name: example.delta-zlib, configuration: {speed: 1}}\n", 4, "output.codec", "unexpected keyword argument 'speed'"),
        ("  zarr_format: 2\n  codec: example.delta-zlib\n", 5, "output.codec", "the plug-in codec 'example.delta-zlib' is written in Zarr 3 only"),
        ("  zarr_format: 2\nrules:\n  - {match: '**', codec: example.delta-zlib}\n", 1, "(top level)",
         "rules.0.codec: the plug-in codec 'example.delta-zlib' is written in Zarr 3 only"),
    ]
    for text, line, field, words in cases:
        done = _publish(tmp_path, head + text, env, "validate")
        assert done.returncode != 0 and f"pipeline.yml:{line}: {field}: " in done.stdout + done.stderr, done.stdout + done.stderr
        assert words in done.stdout + done.stderr, done.stdout + done.stderr
    ok = _publish(tmp_path, head + "  codec: example.delta-zlib:3\n", env, "validate")
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_builtin_codecs_in_the_name_configuration_form() -> None:
    """``{name, configuration}`` over a built-in's defaults writes what zarr's own codec class
    writes; the short forms dump as before, so a build's settings hash is unchanged."""
    from zarr.codecs import BloscCodec, ZstdCodec

    from publisher.config.models import Codec

    assert Codec.model_validate({"name": "zstd", "configuration": {"checksum": True}}).spec(4) == ZstdCodec(level=3, checksum=True).to_dict()
    blosc = Codec.model_validate({"name": "blosc", "configuration": {"cname": "zstd", "clevel": 2, "shuffle": "bitshuffle"}})
    assert blosc.spec(4) == BloscCodec(cname="zstd", clevel=2, shuffle="bitshuffle", typesize=4).to_dict()
    assert Codec.model_validate("gzip:6").model_dump() == {"name": "gzip", "level": 6}
    assert Codec.model_validate({"name": "zstd", "level": 5}).spec() == ZstdCodec(level=5).to_dict()
    with pytest.raises(ValueError, match="codec 'gzip': give the level once"):
        Codec.model_validate({"name": "gzip", "level": 3, "configuration": {"level": 4}})
    with pytest.raises(ValueError, match="codec 'zstd' has no setting 'lvl'; it takes checksum, level"):
        Codec.model_validate({"name": "zstd", "configuration": {"lvl": 4}})
