"""Third-party plug-ins, as docs/plugins.md describes them: the tiny package in
tests/plugins/skyshelf_example is installed for real (its entry points discovered by
importlib.metadata), read by a build, served, and fetched in its own media type; its broken
entry point only warns."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from publisher.registry import MissingDependency, NotRegistered, Registry, require

from .servers import publish_serve

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "plugins" / "skyshelf_example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plug-in installed into a folder of its own (uv works offline from its cache; pip otherwise)."""
    target = tmp_path_factory.mktemp("site-packages")
    source = shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("source") / EXAMPLE.name)  # builds leave files beside it
    uv = shutil.which("uv") or next((str(p) for p in [ROOT / ".tools" / "bin" / "uv"] if p.exists()), None)
    if uv:
        command = [uv, "pip", "install", "--quiet", "--no-deps", "--python", sys.executable, "--target", str(target), str(source)]
    else:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)]
    subprocess.run(command, check=True, capture_output=True)
    assert (target / "skyshelf_example-0.1.0.dist-info" / "entry_points.txt").exists()
    return target


def _env(installed: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(ROOT)])}


def test_plugin_reader_and_serializer_end_to_end(installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "settings.kv").write_text("#kv\n# a comment\nbeam = 7.1 keV\ndetector = pilatus\n")
    (tmp_path / "src" / "other.csv").write_text("a\n1\n")
    (tmp_path / "pipeline.yml").write_text(f"output: {{store: {tmp_path / 'site'}}}\nsources:\n  - {{path: src, into: ''}}\n")
    done = subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(tmp_path / "pipeline.yml"), "--json-report"],
                          capture_output=True, text=True, env=_env(installed), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # the broken entry point warned, naming itself and what to install; the build went on
    assert "reader plug-in 'broken'" in done.stderr and "install skyshelf_example_missing_library" in done.stderr, done.stderr
    monkeypatch.setenv("PYTHONPATH", _env(installed)["PYTHONPATH"])
    with publish_serve(str(tmp_path / "site"), cwd=tmp_path) as server:
        from tiled.client import from_uri

        client = from_uri(f"{server}/api/v1")
        frame = client["settings"].read()
        assert frame.to_dict("list") == {"key": ["beam", "detector"], "value": ["7.1 keV", "pilatus"]}
        about = httpx.get(f"{server}/api/v1/").json()
        assert "application/x-ndjson" in about["formats"]["table"] and about["aliases"]["table"]["application/x-ndjson"] == ["ndjson"]
        url = f"{server}/api/v1/table/full/settings"
        for answer in (httpx.get(url, params={"format": "ndjson"}), httpx.get(url, headers={"Accept": "application/x-ndjson"})):
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("application/x-ndjson")
            assert [json.loads(line) for line in answer.text.splitlines()] == [{"key": "beam", "value": "7.1 keV"},
                                                                                {"key": "detector", "value": "pilatus"}]
        assert httpx.get(url, params={"format": "csv"}).text.splitlines()[0] == '"key","value"'  # built-ins unchanged
        assert httpx.get(url, params={"format": "yaml"}).status_code == 406


def test_broken_plugin_warns_and_names_itself(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(installed))
    registry: Registry[object] = Registry("skyshelf.readers", "reader", key_of=lambda ep, cls: ep.name)
    with pytest.warns(UserWarning, match=r"reader plug-in 'broken' = 'skyshelf_example.broken:BrokenReader' \(from skyshelf-example\)"
                      r".*install skyshelf_example_missing_library"):
        found = registry.items()
    assert "kv" in found and "broken" not in found
    with pytest.raises(NotRegistered, match="'broken' is unavailable: its plug-in failed to load: install skyshelf_example_missing_library"):
        registry.get("broken")
    with pytest.raises(NotRegistered, match=r"unknown reader 'nope'; known: kv"):
        registry.get("nope")


def test_a_plugin_cannot_replace_a_builtin(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(installed))
    registry: Registry[object] = Registry("skyshelf.serializers", "serializer")
    registry.register("ndjson")(object())
    with pytest.warns(UserWarning, match="'ndjson' is already registered"):
        registry.load_entry_points()


def test_missing_library_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(MissingDependency, match=r"install pillow to read images \(no module named 'PIL'\)"):
        with _blocked("PIL"):
            require(["PIL"], "read images")
    # a module missing inside an installed package (a misspelt entry point): "install json" would change nothing
    with pytest.raises(MissingDependency, match=r"cannot read maps: json is installed but has no module 'json\.nope'"):
        require(["json.nope"], "read maps")
    # a built-in reader whose library is missing: the file's failure says what to install
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "t.csv").write_text("a\n1\n")
    (tmp_path / "pipeline.yml").write_text(f"output: {{store: {tmp_path / 'site'}}}\nsources:\n  - {{path: src, into: ''}}\n")
    code = ("import sys; sys.modules['pandas'] = None\n"
            "from publisher.cli import main; main(['build', '-c', sys.argv[1], '--json-report'])")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "pipeline.yml")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0
    assert "install pandas to read csv files (the 'csv' reader)" in done.stdout + done.stderr, done.stdout + done.stderr


class _blocked:
    """``import name`` fails inside the block, as when the library is not installed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.saved = {k: v for k, v in sys.modules.items() if k == self.name or k.startswith(self.name + ".")}
        for k in self.saved:
            del sys.modules[k]
        sys.modules[self.name] = None  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        del sys.modules[self.name]
        sys.modules.update(self.saved)


def test_packages_carry_the_plugins(installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Lambda packages get the plug-in distributions, dist-info included: a clean interpreter
    with only the package's files finds the plug-in's serializer through its entry point."""
    from publisher.deploy.plugins import copy_plugins, plugin_distributions

    monkeypatch.syspath_prepend(str(installed))
    assert [d.metadata["Name"] for d in plugin_distributions()] == ["skyshelf-example"]
    with pytest.raises(Exception, match="'no-such-plugin' is not installed here"):
        plugin_distributions(["no-such-plugin"])
    notes = copy_plugins(tmp_path)
    assert len(notes) == 1 and notes[0].startswith("plug-in skyshelf-example 0.1.0: "), notes
    assert (tmp_path / "skyshelf_example" / "serializer.py").is_file()
    assert (tmp_path / "skyshelf_example-0.1.0.dist-info" / "entry_points.txt").is_file()
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
            "from publisher import serializers\n"
            "print(serializers.choose('table', 'ndjson', None, 'text/csv').media_type)")
    done = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path), str(ROOT)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "application/x-ndjson"


@pytest.mark.filterwarnings("ignore:Numcodecs codecs are not in the Zarr version 3 specification")
def test_plugin_codec_decodes_for_the_handlers(installed: Path, tmp_path: Path) -> None:
    """A Zarr array compressed with a codec Skyshelf does not know is served once a plug-in names it."""
    import numpy as np
    import zarr
    from zarr.codecs.numcodecs import LZ4

    values = np.arange(600, dtype="<f8").reshape(20, 30)
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=values.shape, chunks=(8, 8), dtype=values.dtype,
                              compressors=[LZ4()])
    array[:] = values
    code = ("import sys, numpy as np\n"
            "from publisher.access.arrays import published_array\n"
            "from publisher.stores import Store\n"
            "a = published_array(Store(sys.argv[1]), 'a.zarr')\n"
            "np.save(sys.stdout.buffer, a.read((slice(3, 17), slice(5, 29))))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, env=_env(installed), cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode()
    import io

    np.testing.assert_array_equal(np.load(io.BytesIO(done.stdout)), values[3:17, 5:29])
    without = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert "Zarr codec 'numcodecs.lz4' is not served" in without.stderr


def test_lambda_packages_ship_the_builtin_serializers() -> None:
    """The registries import their built-ins with import statements, which the packager follows."""
    from publisher.deploy.package import our_modules

    for function in ("arrays", "tables"):
        files = set(our_modules(function))
        assert {"publisher/serializers/array.py", "publisher/serializers/png.py", "publisher/serializers/container.py", "publisher/serializers/table.py",
                "publisher/zarr_layout.py", "publisher/registry.py"} <= files, function


def test_pipeline_names_more_plugins_for_the_packages(tmp_path: Path) -> None:
    """``deploy.plugins`` in pipeline.yml adds distributions without skyshelf.* entry points."""
    from publisher.config import load_pipeline
    from publisher.deploy.plugins import copy_plugins

    (tmp_path / "pipeline.yml").write_text("sources: [{path: data}]\ndeploy:\n  plugins: [parse]\n")
    pipeline = load_pipeline(tmp_path / "pipeline.yml")
    assert pipeline.deploy.plugins == ["parse"]
    notes = copy_plugins(tmp_path / "stage", pipeline.deploy.plugins)
    assert any(n.startswith("plug-in parse ") for n in notes), notes
    assert (tmp_path / "stage" / "parse" / "__init__.py").is_file()


def test_one_scan_of_the_installed_distributions_serves_every_registry(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading several registries' plug-ins walks the installed distributions once (a build loads
    four before it forks its workers), and again only once ``sys.path`` changed."""
    import importlib.metadata

    import publisher.registry as registry_module

    scans = []
    real = importlib.metadata.entry_points

    def counted(*args: Any, **kwargs: Any) -> Any:
        scans.append(args or kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", counted)
    monkeypatch.setattr(registry_module, "_scanned", None)
    for group in ("skyshelf.readers", "skyshelf.writers", "skyshelf.codecs"):
        Registry(group, group).load_entry_points()
    assert len(scans) == 1
    monkeypatch.syspath_prepend(str(installed))
    readers: Registry[Any] = Registry("skyshelf.readers", "reader", key_of=lambda ep, cls: cls.name)
    with pytest.warns(UserWarning, match="'broken'"):  # (the example's broken plug-in, as ever)
        assert "kv" in readers.items()  # the distribution that appeared on sys.path is found
    assert len(scans) == 2


def test_a_file_skipped_for_want_of_a_reader_is_read_once_its_plugin_is_installed(installed: Path, tmp_path: Path) -> None:
    """A file no reader detected is skipped, and the skip recorded; installing the plug-in that
    reads it has the next build read it (the recorded skip was reused: it stayed out)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "settings.kv").write_text("#kv\nbeam = 7.1 keV\n")
    (tmp_path / "src" / "other.csv").write_text("a\n1\n")
    (tmp_path / "pipeline.yml").write_text(f"output: {{store: {tmp_path / 'site'}}}\nsources:\n  - {{path: src, into: ''}}\n")
    command = [sys.executable, "-m", "publisher.cli", "build", "-c", str(tmp_path / "pipeline.yml"), "--json-report"]
    without = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, check=True)
    assert [p["path"] for p in json.loads(without.stdout)["skipped"]] == ["settings"]
    with_it = subprocess.run(command, capture_output=True, text=True, env=_env(installed), cwd=tmp_path, check=True)
    report = json.loads(with_it.stdout)
    assert report["converted"] == 1 and not report["skipped"], report


def test_a_dask_worker_without_a_readers_plugin_stops_the_build_naming_it(installed: Path, tmp_path: Path) -> None:
    """The client has a reader plug-in its Dask workers lack: they skipped its files as of no
    reader (recorded: reused by the next build, on workers that have it). Now the check of the
    workers names the worker and the reader, before anything is converted."""
    import distributed

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "settings.kv").write_text("#kv\nbeam = 7.1 keV\n")
    (tmp_path / "pipeline.yml").write_text(f"output: {{store: {tmp_path / 'site'}}}\nsources:\n  - {{path: src, into: ''}}\n")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as cluster:
        done = subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(tmp_path / "pipeline.yml"), "--scheduler",
                               cluster.scheduler_address], capture_output=True, text=True, env=_env(installed), cwd=tmp_path, check=False)
    assert done.returncode != 0
    assert re.search(r"the Dask worker tcp://\S+ of tcp://\S+ has no kv reader, which this client has", done.stderr), done.stderr
    assert not (tmp_path / "site" / "catalog.json").exists()


def test_a_no_change_rebuild_does_not_read_the_files_no_reader_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a reader reads them now is asked only when the readers changed since the previous
    release (they are in its catalog settings): each no-change rebuild opened every such file."""
    from publisher import readers
    from publisher.build import build
    from publisher.build.plan import Planner
    from publisher.config import load_pipeline
    from publisher.formats import ManifestItem, Problem
    from publisher.sources import plan

    (tmp_path / "src").mkdir()
    for i in range(20):
        (tmp_path / "src" / f"run{i}.log").write_text("not a format\n")
    (tmp_path / "src" / "a.csv").write_text("a\n1\n")
    (tmp_path / "pipeline.yml").write_text(f"output: {{store: {tmp_path / 'site'}}}\nsources:\n  - {{path: src, into: ''}}\n")
    pipeline = load_pipeline(tmp_path / "pipeline.yml")
    assert len(build(pipeline, workers=1).skipped) == 20
    seen: list[Path] = []
    detect = readers.detect
    monkeypatch.setattr("publisher.work_item.detect", lambda path: seen.append(path) or detect(path))
    assert build(pipeline, workers=1).unchanged and seen == []
    # with the readers changed (no previous release here), a file gone since the plan is converted, not a crash
    item = next(i for i in plan(pipeline) if i.paths[0].suffix == ".log")
    item.paths[0].unlink()
    old = ManifestItem(item.node_path, "", "", [], [], [], skipped=[Problem(item.node_path, readers.NO_READER)])
    assert Planner(pipeline, None).read_now(item, old)


def test_a_dask_worker_without_a_readers_plugin_that_joins_later_converts_nothing(installed: Path, tmp_path: Path) -> None:
    """A worker that joins after the build checked the workers (an adaptive cluster scaling up
    from an older image) is checked by the build's first task on it: it lacks the client's kv
    reader, and the build stops naming it (its files were skipped as of no reader)."""
    import threading

    import distributed

    (tmp_path / "src").mkdir()
    for i in range(3):
        (tmp_path / "src" / f"settings{i}.kv").write_text("#kv\nbeam = 7.1 keV\n")
    (tmp_path / "pipeline.yml").write_text(f"output: {{store: {tmp_path / 'site'}}}\nsources:\n  - {{path: src, into: ''}}\n")
    with distributed.LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as cluster:
        client = subprocess.Popen([sys.executable, "-m", "publisher.cli", "build", "-c", str(tmp_path / "pipeline.yml"), "--scheduler",
                                   cluster.scheduler_address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(installed),
                                  cwd=tmp_path)
        for _ in range(600):  # its tasks sent, no worker yet
            if cluster.scheduler.tasks or client.poll() is not None:
                break
            threading.Event().wait(0.1)
        cluster.scale(1)
        _, stderr = client.communicate(timeout=180)
    assert client.returncode != 0
    assert re.search(r"the Dask worker tcp://\S+ has no kv reader, which the build's client has", stderr), stderr
    assert not (tmp_path / "site" / "catalog.json").exists()


KV_READER = """
import contextlib
from publisher.nodes import TableNode
from publisher.readers import Reader


class KeyValueReader(Reader):
    name, extensions, magic, requires = "kv_t", (".kv",), (b"#kv",), ("pyarrow",)

    @contextlib.contextmanager
    def open(self, path, key, options):
        import pyarrow as pa

        table = pa.table({"line": path.read_text().splitlines()})
        yield TableNode(key=key, metadata={}, schema=table.schema, batches=lambda: iter(table.to_batches()), num_rows=table.num_rows)
"""


def test_an_upgraded_plugin_converts_what_it_read_again(tmp_path: Path) -> None:
    """A reader plug-in's version is in the record of each file it read, as Skyshelf's own is in
    every record: upgraded, it converts its files again (their old output was reused, its fix
    never published, until a file changed); the files other readers read stay reused."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.kv").write_text("#kv\ncolor = red\n")
    (tmp_path / "data" / "b.csv").write_text("x\n1\n")
    (tmp_path / "pipeline.yml").write_text(f"output: {{store: {tmp_path / 'site'}}}\nsources:\n  - {{path: data, into: ''}}\n")
    counts = []
    for version in ("1.0", "1.0", "1.1"):
        lib = tmp_path / f"lib-{version}"
        if not lib.exists():
            (lib / "kvplug_t").mkdir(parents=True)
            (lib / "kvplug_t" / "__init__.py").write_text(KV_READER)
            info = lib / f"kvplug_t-{version}.dist-info"
            info.mkdir()
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: kvplug_t\nVersion: {version}\n")
            (info / "entry_points.txt").write_text("[skyshelf.readers]\nkv_t = kvplug_t:KeyValueReader\n")
        done = subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(tmp_path / "pipeline.yml"), "--json-report"],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(lib), str(ROOT)])},
                              cwd=tmp_path, check=True)
        report = json.loads(done.stdout)
        counts.append((report["converted"], report["reused"]))
    assert counts == [(2, 0), (0, 2), (1, 1)]
