"""Lambda packages: one zip per handler module, holding only the code it can import and the
wheels it needs, built for Lambda's runtime and architecture.

* Our code: the ``handlers`` and ``publisher`` modules the handler module can reach (stdlib
  ``modulefinder`` follows imports inside functions too), nothing else of ``publisher``.
* Third-party: each function's ``requirements`` (:mod:`publisher.functions`), pinned to the versions installed here, resolved and
  installed by pip for the target (``--platform manylinux...``, ``--only-binary=:all:``); boto3
  is left out (the runtime has it). Tests, ``__pycache__`` and type stubs are stripped; the
  ``dist-info`` folders stay.
* ``.pyc``: compiled with ``unchecked-hash`` invalidation (a zip's timestamps say nothing), by an
  interpreter of the runtime's version when one is on this machine; without one the package has
  none and the report says so.
* The zip is deterministic (sorted names, fixed times), so its SHA-256 names it and an unchanged
  package is never uploaded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from modulefinder import ModuleFinder
from pathlib import Path
from typing import Any

from ..errors import SkyshelfError
from ..functions import BY_NAME, FUNCTIONS
from . import built
from .plugins import copy_plugins

ROOT = Path(__file__).resolve().parents[2]
#: Distributions each function ships, from the function table (their own dependencies follow).
REQUIREMENTS: dict[str, tuple[str, ...]] = {f.name: f.requirements for f in FUNCTIONS}
#: What a traced function's package carries besides its requirements (Powertools' Tracer sends through it).
TRACING_REQUIREMENTS = ("aws-xray-sdk",)
#: Lambda's limit for a function's unzipped code.
LIMIT_BYTES = 250 * 2**20
_PLATFORMS = {
    "x86_64": ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_24_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"],
    "arm64": ["manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_24_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"],
}
_STRIP_DIRS = {"tests", "test", "testing", "__pycache__", "benchmarks"}
_KEEP_TEST_DIRS = {"numpy/testing", "numpy/_core/testing"}  # imported by numpy itself
#: What no handler loads: C headers and sources, Arrow Flight and its S3 filesystem (the
#: handlers read through boto3), extra copies of a library under its link names, the cffi
#: twin of zstandard's C backend.
_PRUNE = (
    "pyarrow/include", "pyarrow/src", "pyarrow/libarrow_flight.so*", "pyarrow/_flight.*", "pyarrow/libarrow_python_flight.so*",
    "pyarrow/libarrow_s3.so*", "pyarrow/_s3fs.*", "pyarrow/libarrow_python.so", "pyarrow/libarrow_python.so.*.*.*",
    "pyarrow/*.pxd", "pyarrow/*.pyx", "pyarrow/includes", "numpy/_core/include", "numpy/_core/lib/pkgconfig",
    "zstandard/_cffi.*", "zstandard/backend_cffi.py", "numcodecs/*.pyx", "numcodecs/*.pxd", "numpy/distutils", "numpy/f2py",
    # Pillow's fonts, colour management, AVIF and WebP: previews are PNG, JPEG and TIFF
    "PIL/_avif.*", "PIL/_imagingft.*", "PIL/_imagingcms.*", "PIL/_imagingtk.*", "PIL/_webp.*", "pillow.libs/libavif*",
    "pillow.libs/libharfbuzz*", "pillow.libs/libfreetype*", "pillow.libs/libbrotli*", "pillow.libs/libwebp*",
    "pillow.libs/libsharpyuv*", "pillow.libs/liblcms2*",
)


class PackagingError(SkyshelfError):
    """A function's package cannot be built or fails its checks."""


@dataclass
class Package:
    function: str
    runtime: str
    architecture: str
    zip_path: Path
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    compiled: bool
    notes: list[str] = field(default_factory=list)
    #: The zip was kept from an earlier build of the same inputs (deploy/built.py).
    reused: bool = False

    @property
    def key(self) -> str:
        """The zip's object key: named by its content, so an unchanged package keeps its key."""
        return f"lambda/{self.function}-{self.sha256[:16]}.zip"

    def to_json(self) -> dict[str, object]:
        return {"function": self.function, "runtime": self.runtime, "architecture": self.architecture, "key": self.key,
                "zipped_bytes": self.zipped_bytes, "unzipped_bytes": self.unzipped_bytes, "files": self.files,
                "compiled": self.compiled, "notes": self.notes, "reused": self.reused}


class _OursOnly(ModuleFinder):
    """Follows imports within ``handlers`` and ``publisher`` only (third-party code is the
    requirements' business, and scanning it would take long)."""

    def find_module(self, name, path, parent=None):  # type: ignore[no-untyped-def]
        if parent is None and name not in ("handlers", "publisher", "__init__"):
            raise ImportError(name)
        return super().find_module(name, path, parent)


def our_modules(function: str) -> list[str]:
    """The ``handlers`` and ``publisher`` modules ``handlers.<function>`` can import, as files
    relative to the repository (packages' ``__init__.py`` included)."""
    finder = _OursOnly(path=[str(ROOT)])
    finder.import_hook(f"handlers.{function}")
    finder.import_hook(f"handlers.{function}", fromlist=["lambda_handler"])
    for name in _registry_builtins(finder):
        finder.import_hook(name)
    files = set()
    for name, module in finder.modules.items():
        if name.split(".")[0] in ("handlers", "publisher") and module.__file__:
            files.add(str(Path(module.__file__).resolve().relative_to(ROOT)))
    data = [str(p.relative_to(ROOT)) for p in (ROOT / "publisher").rglob("*") if p.suffix in (".npz",) and "serializers" in p.parts]
    if "publisher.browse" in finder.modules:  # the browse page, served when a release has no copy of its own
        from publisher.browse import STATIC, files as assets

        data += [str((STATIC / name).relative_to(ROOT)) for name in assets()]
    return sorted(files | set(data))


def _registry_builtins(finder: ModuleFinder) -> list[str]:
    """The built-in modules of the plug-in registries the found modules hold (a registry imports
    them by name on first use, which ``modulefinder`` cannot see), until none is new."""
    import importlib

    from ..registry import Registry

    seen: set[str] = set()
    while True:
        new = []
        for name in sorted(n for n in finder.modules if n.startswith("publisher")):
            for value in vars(importlib.import_module(name)).values():
                if isinstance(value, Registry):
                    new += [m for m in value._builtins if m not in seen and m not in finder.modules]
        if not new:
            return sorted(seen)
        for module in new:
            seen.add(module)
            finder.import_hook(module)


def _pins(function: str, extras: tuple[str, ...] = ()) -> list[str]:
    """The function's requirements (and ``extras``) pinned to the versions installed here (what the tests ran)."""
    out = []
    for name in (*REQUIREMENTS[function], *extras):
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return out


def _python_for(runtime: str) -> str | None:
    """An interpreter of the runtime's version on this machine, if any: this one, one of
    pyenv's, or ``python3.13`` (...) on the PATH that really runs."""
    version = runtime.removeprefix("python")
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True)
    found = shutil.which(f"python{version}")
    for python in [*map(str, candidates), *([found] if found else [])]:
        if subprocess.run([python, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return python
    return None


def _install(function: str, runtime: str, architecture: str, target: Path, pins: list[str]) -> None:
    version = runtime.removeprefix("python")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
               "--target", str(target), "--implementation", "cp", "--python-version", version, "--only-binary=:all:", "--upgrade"]
    for platform in _PLATFORMS[architecture]:
        command += ["--platform", platform]
    done = subprocess.run([*command, *pins], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PackagingError(f"pip could not install {function}'s requirements for {runtime}/{architecture}: {done.stderr.strip()[-1500:]}")
    for name in ("boto3", "botocore", "s3transfer"):  # the runtime's own
        for path in target.glob(f"{name}*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _strip_tool(architecture: str) -> str | None:
    """GNU strip for the architecture (llvm-strip breaks numpy's patched modules)."""
    import platform

    native = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
    if native == architecture:
        return shutil.which("strip")
    return shutil.which({"arm64": "aarch64-linux-gnu-strip", "x86_64": "x86_64-linux-gnu-strip"}[architecture])


def _strip(target: Path, architecture: str) -> None:
    """Leave out what a handler never loads, and the debug symbols of shared libraries
    (zstandard's C backend goes from 11.6 to 1 MB), with the architecture's GNU strip when this
    machine has it (``binutils-aarch64-linux-gnu`` for arm64 here)."""
    for pattern in _PRUNE:
        for path in target.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    stripper = _strip_tool(architecture)
    if stripper:
        # not the libraries auditwheel vendored (``*.libs``): patchelf rewrote them, and strip breaks them
        libraries = [str(p) for p in target.rglob("*.so*") if p.is_file() and not p.parent.name.endswith(".libs")]
        for start in range(0, len(libraries), 200):
            subprocess.run([stripper, "--strip-debug", *libraries[start : start + 200]], capture_output=True, check=False)
    for path in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        rel = path.relative_to(target).as_posix()
        if path.is_dir() and path.name in _STRIP_DIRS and not any(rel == keep or rel.startswith(keep + "/") for keep in _KEEP_TEST_DIRS):
            if ".dist-info" not in rel:
                shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and (path.suffix in (".pyi", ".pyc") or path.name == "py.typed"):
            path.unlink()


def _swagger_ui(stage: Path) -> None:
    """The docs page's Swagger UI files, copied from the installed swagger-ui-bundle with its tiny
    ``__init__`` (the page needs only these: not its Jinja2, source maps or other bundles)."""
    from swagger_ui_bundle import swagger_ui_path

    from handlers.openapi import SWAGGER_FILES

    folder = Path(str(swagger_ui_path))
    package = folder.parents[1]
    target = stage / package.name
    (target / folder.relative_to(package)).mkdir(parents=True, exist_ok=True)
    shutil.copy2(package / "__init__.py", target / "__init__.py")
    for name in SWAGGER_FILES:
        shutil.copy2(folder / name, target / folder.relative_to(package) / name)


def _zip(source: Path, destination: Path) -> tuple[str, int, int]:
    """A deterministic zip of ``source``: (sha256, unzipped bytes, files)."""
    names = sorted(p for p in source.rglob("*") if p.is_file())
    total = 0
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in names:
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            total += len(data)
            zf.writestr(info, data)
    return hashlib.sha256(destination.read_bytes()).hexdigest(), total, len(names)


def default_cache() -> Path:
    """A packaging tool's own cache folder, read by the CLI-side packager (never by a handler or the build)."""
    return Path(os.environ.get("SKYSHELF_PACKAGE_CACHE", Path.home() / ".cache" / "skyshelf" / "packages"))


def deps_folder(function: str, runtime: str, architecture: str, extras: tuple[str, ...], cache: Path) -> Path:
    """Where the function's third-party part for ``runtime`` and ``architecture`` is kept, named by its pins."""
    pins = _pins(function, extras)
    return cache / hashlib.sha256(json.dumps([runtime, architecture, pins]).encode()).hexdigest()[:20]


def build_package(function: str, runtime: str, architecture: str, out: Path, cache: Path | None = None,
                  plugins: tuple[str, ...] = (), extras: tuple[str, ...] = (), reuse: bool = True) -> Package:
    """Build ``out/<function>.zip`` for Lambda's ``runtime`` and ``architecture``; check its size.
    ``extras``: distributions to ship besides the function's requirements (aws-xray-sdk when traced).
    ``reuse``: copy the zip kept from a build of the same inputs, if any (deploy/built.py)."""
    if function not in REQUIREMENTS:
        raise PackagingError(f"no handler module {function!r}; functions are {sorted(REQUIREMENTS)}")
    if architecture not in _PLATFORMS:
        raise PackagingError(f"architecture must be one of {sorted(_PLATFORMS)}, got {architecture!r}")
    cache = cache or default_cache()
    pins = _pins(function, extras)
    deps = deps_folder(function, runtime, architecture, extras, cache)
    if not (deps / ".complete").exists():  # third-party part: made once per pins, runtime and architecture
        shutil.rmtree(deps, ignore_errors=True)
        deps.mkdir(parents=True)
        _install(function, runtime, architecture, deps, pins)
        _strip(deps, architecture)
        (deps / ".complete").write_text(json.dumps(pins))
    ours = out / f"{function}.ours"  # our part first: it names the zip (deploy/built.py)
    shutil.rmtree(ours, ignore_errors=True)
    ours.mkdir(parents=True)
    try:
        for rel in our_modules(function):
            (ours / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, ours / rel)
        if function == "metadata":
            _swagger_ui(ours)
        notes = copy_plugins(ours, plugins)  # plug-in distributions (skyshelf.* entry points, or named), dist-info included
        python = _python_for(runtime)
        if python is None:
            notes.append(f"no {runtime} interpreter here: no .pyc (Lambda compiles on import, a slower cold start)")
        key = built.fingerprint(ours, deps, python)
        zip_path = out / f"{function}.zip"
        recorded = built.reuse(cache / "built", function, key, zip_path) if reuse else None
        reused = recorded is not None
        if recorded is None:
            recorded = _assemble(function, deps, ours, python, zip_path)
            built.keep(cache / "built", function, key, zip_path, recorded)
    finally:
        shutil.rmtree(ours, ignore_errors=True)
    package = Package(function, runtime, architecture, zip_path, recorded["sha256"], zip_path.stat().st_size,
                      recorded["unzipped"], recorded["files"], python is not None, notes, reused)
    if package.unzipped_bytes > LIMIT_BYTES:
        raise PackagingError(f"{function}'s package is {package.unzipped_bytes / 2**20:.0f} MiB unzipped, past Lambda's 250 MiB")
    target = BY_NAME[function].target_bytes
    if target is not None and package.unzipped_bytes > target:
        package.notes.append(f"{package.unzipped_bytes / 2**20:.0f} MiB unzipped, past the {target / 2**20:.0f} MiB aimed at")
    return package


def _assemble(function: str, deps: Path, ours: Path, python: str | None, zip_path: Path) -> dict[str, Any]:
    """Stage the third-party part and ours over it, compile, zip: what the zip is."""
    stage = zip_path.with_suffix(".d")
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(deps, stage, ignore=shutil.ignore_patterns(".complete"))
    shutil.copytree(ours, stage, dirs_exist_ok=True)
    if python is not None:
        # file names as Lambda will have them (/var/task/...): tracebacks point there, and the bytes
        # do not depend on where this build ran
        done = subprocess.run([python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                               "-s", str(stage), "-p", "/var/task", str(stage)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PackagingError(f"compiling {function}'s package failed: {done.stdout[-1000:]}{done.stderr[-1000:]}")
    sha, unzipped, files = _zip(stage, zip_path)
    shutil.rmtree(stage)
    return {"sha256": sha, "unzipped": unzipped, "files": files}


@contextlib.contextmanager
def unpacked(package: Package) -> Iterator[Path]:
    """The package's zip unpacked into a folder of its own (where Lambda unpacks it: /var/task),
    removed when the context ends: for :func:`smoke_test` to answer several events from."""
    task = Path(tempfile.mkdtemp(prefix=f"lambda-{package.function}-"))
    try:
        with zipfile.ZipFile(package.zip_path) as zf:
            zf.extractall(task)
        yield task
    finally:
        shutil.rmtree(task, ignore_errors=True)


def smoke_test(package: Package, event: dict[str, object] | None = None, env: dict[str, str] | None = None,
               task: Path | None = None) -> dict[str, object] | None:
    """Import the handler from its zip in a clean interpreter of the runtime's version (no site
    packages, no environment but ``env``), and, given an API Gateway event, answer it. ``task``:
    the zip as :func:`unpacked` unpacked it (unpacking ~200 MB took 1.5-3 s an event), else it is
    unpacked for this event alone; the interpreter writes nothing there (``-B``: as Lambda's
    read-only /var/task, each event finds the folder as unpacked)."""
    python = _python_for(package.runtime)
    if python is None:
        raise PackagingError(f"no {package.runtime} interpreter on this machine to import {package.function}'s package with")
    if task is None:
        with unpacked(package) as folder:
            return smoke_test(package, event, env, folder)
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(task)!r}]\n"
        f"import handlers.{package.function} as h\n"
        "heavy = [m for m in ('h5py', 'pandas', 'xarray', 'zarr', 's3fs', 'fsspec') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "event = json.loads(sys.stdin.read() or 'null')\n"
        "print(json.dumps(h.lambda_handler(event, None) if event else None), flush=True)\n"
        # then gone, as a Lambda environment goes (frozen, then killed), never through the
        # interpreter's own finalization: there pyarrow's thread pools can still be torn down
        # with a worker alive, std::terminate (SIGABRT) after the answer was given, one run in
        # many (apache/arrow#34314); the test is whether the package imports and answers
        "import os; os._exit(0)\n"
    )
    done = subprocess.run([python, "-I", "-S", "-B", "-c", code], input=json.dumps(event), capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", **(env or {})}, check=False)
    if done.returncode != 0:
        raise PackagingError(f"{package.function}'s package does not import or answer cleanly: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
