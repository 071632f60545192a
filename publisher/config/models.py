"""The pydantic models of pipeline.yml."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ByteSize, ConfigDict, Field, PrivateAttr, StrictInt, TypeAdapter, ValidationError, ValidationInfo, field_validator, model_serializer, model_validator

from ..functions import BY_NAME
from ..jsonable import to_json
from .access import Access, checked_tags

#: A Lambda function's name, as the function table has them.
FunctionName = Literal[tuple(BY_NAME)]  # type: ignore[valid-type]

_BYTES = TypeAdapter(ByteSize)


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as ``8MiB`` or ``500 kB`` (pydantic's ``ByteSize`` units)."""
    try:
        return int(_BYTES.validate_python(value))
    except ValidationError:
        raise ValueError(f"expected a size such as 8388608, '8MiB' or '500kB', got {value!r}") from None



#: Metadata as JSON holds it: YAML's dates and timestamps as ISO text, .nan and .inf as null,
#: !!binary as text (each passed validation and then failed the build, nothing published).
Metadata = Annotated[dict[str, Any], AfterValidator(to_json)]

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Codec(_Model):
    """Compression for Zarr chunks: ``zstd``, ``gzip:6``, ``{name: zstd, level: 5}``, or any codec the
    codec registry knows (plug-ins included) in Zarr 3's form, ``{name: ..., configuration: {...}}``."""

    name: str = Field(default="zstd", description="zstd | gzip | blosc-lz4 | blosc-zstd | lz4 | none, or a registered codec "
                      "(a `skyshelf.codecs` plug-in; docs/plugins.md).",
                      examples=["zstd", "gzip", "blosc-lz4", "blosc-zstd", "lz4", "none", "blosc"])
    level: StrictInt | None = Field(default=None, description="Compression level; the codec's default when omitted.")
    configuration: dict[str, Any] = Field(default_factory=dict, description="The codec's settings, as its zarr.json entry "
                                          "lists them; over the built-ins' defaults.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            name, _, level = value.partition(":")
            if level.strip() and not level.strip().lstrip("-").isdigit():  # (int()'s "invalid literal for int() with base 10")
                raise ValueError(f"{value!r}: the level after ':' is a whole number (e.g. 'zstd:5'), not {level.strip()!r}")
            return {"name": name.strip(), **({"level": int(level)} if level.strip() else {})}
        return value

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        """A built-in setting's name, or one the codec registry has; else what is known and, for a
        plug-in that failed to load, what to install."""
        from ..registry import NotRegistered
        from ..zarr_layout import CODECS, SETTING_NAMES, codec_names

        if name in SETTING_NAMES:
            return name
        try:
            CODECS.get(name)
        except NotRegistered as exc:
            why = str(exc) if name in CODECS.failed else f"unknown codec {name!r}"
            raise ValueError(f"{why}; known: {', '.join(codec_names())} (a package's `skyshelf.codecs` entry point "
                             "adds more: docs/plugins.md)") from None
        return name

    @model_validator(mode="after")
    def _configuration_fits(self) -> Codec:
        self.spec()  # a setting the codec does not take fails here, at its line of pipeline.yml
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        """Without an empty ``configuration``: the settings hash of a build stays what it was."""
        out = handler(self)
        if not out.get("configuration"):
            out.pop("configuration", None)
        return out

    @property
    def builtin(self) -> bool:
        from ..zarr_layout import SETTING_NAMES

        return self.name in SETTING_NAMES

    def spec(self, itemsize: int = 1) -> dict[str, Any] | None:
        """The v3 ``codecs`` entry this setting writes for items of ``itemsize`` bytes (None: no compression)."""
        from ..zarr_layout import codec_spec

        return codec_spec(self.name, self.level, self.configuration, itemsize)


class Storage(_Model):
    """Object-store settings. Values are names of environment variables, never secrets themselves;
    unset fields fall back to the standard AWS environment and config (AWS_ENDPOINT_URL, AWS_PROFILE, ...)."""

    endpoint_url_env: str | None = Field(default=None, description="Variable holding the S3 endpoint URL.")
    region_env: str | None = Field(default=None, description="Variable holding the region.")
    profile_env: str | None = Field(default=None, description="Variable holding the AWS profile name.")
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None
    session_token_env: str | None = None
    anon: bool = Field(default=False, description="Unsigned (anonymous) requests, for public buckets.")


class Output(_Model):
    store: str = Field(default="./site", description="Where to publish: a local folder (relative to pipeline.yml) or s3://bucket/prefix.")
    storage: Storage = Field(default_factory=Storage)
    zarr_format: Literal[2, 3] = 3
    codec: Codec = Field(default_factory=Codec)
    chunk_target_bytes: int = Field(default=8 * 2**20, description="Target uncompressed chunk size, e.g. 8MiB.")
    table_partition_rows: int = Field(default=5_000_000, gt=0, le=2**40, description="Rows per Parquet partition file.")
    table_row_group_rows: int = Field(default=262_144, gt=0, le=2**31, description="Rows per Parquet row group.")
    pyramid_min_size: StrictInt = Field(default=4096, gt=0, description="Images with a last or second-last dimension at least this long get a "
                                  "multiscale pyramid (rules can force or forbid it).")

    @field_validator("codec")
    @classmethod
    def _plugin_codecs_need_v3(cls, codec: Codec, info: ValidationInfo) -> Codec:
        _v3_only(codec, info.data.get("zarr_format", 3))
        return codec

    @field_validator("chunk_target_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        size = parse_size(value)
        if size < 4096:
            raise ValueError(f"chunk_target_bytes must be at least 4096 bytes, got {size}")
        return size


def _v3_only(codec: Codec | None, zarr_format: int, where: str = "") -> None:
    """Zarr 2 names a compressor by its numcodecs id, which the handlers can only resolve for the
    built-ins; a plug-in codec is recorded by its registry name in Zarr 3's ``zarr.json``."""
    if codec is not None and zarr_format == 2 and not codec.builtin:
        raise ValueError(f"{where}{': ' if where else ''}the plug-in codec {codec.name!r} is written in Zarr 3 only (set output.zarr_format: 3)")


class Source(_Model):
    path: str = Field(description="A file, a folder or a glob, relative to pipeline.yml.")
    into: str | None = Field(default=None, description="Published container path; defaults to the folder part of `path`.")
    type: str | None = Field(default=None, description="Reader name (hdf5, netcdf, tiff, csv, ...); detected when omitted.")
    options: dict[str, Any] = Field(default_factory=dict, description="Reader options, checked by the reader.")
    name_pattern: str | None = Field(
        default=None, description="Typed pattern for metadata in file names, e.g. '{sample}_{temperature:d}K_{scan:05d}.tif'."
    )
    stack: str | None = Field(default=None, description="A name_pattern field that numbers frames: files differing only in it are stacked into one array.")
    sidecars: list[str] = Field(
        default_factory=lambda: ["{name}.json", "{name}.yaml", "{name}.yml", "{stem}.json", "{stem}.yaml", "{stem}.yml"],
        description="Sidecar metadata files tried for each source file ({name}: file name, {stem}: without suffix).",
    )
    metadata: Metadata = Field(default_factory=dict, description="Extra metadata for every node from this source.")
    exclude: list[str] = Field(default_factory=list, description="Globs of files to leave out, matched from the right (*.tmp in any "
                                 "folder); one naming a folder leaves out everything below it; ** crosses folders.")

    @field_validator("exclude")
    @classmethod
    def _excludes_match(cls, value: list[str]) -> list[str]:
        """Patterns that can match (``""`` failed the plan, ValueError: empty pattern; ``/sub``,
        matched from the right, never matched anything, without a word)."""
        for pattern in value:
            if not pattern.strip("/"):
                raise ValueError(f"exclude pattern {pattern!r} is empty")
            if pattern.startswith("/"):
                raise ValueError(f"exclude pattern {pattern!r} starts with '/': patterns are relative to the source folder "
                                 f"(write {pattern.lstrip('/')!r})")
        return value

    @field_validator("into")
    @classmethod
    def _clean_into(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = [p for p in PurePosixPath(value).parts if p not in ("/", ".")]
        if ".." in parts:
            raise ValueError(f"'into' must stay inside the catalog, got {value!r}")
        return "/".join(parts)

    @field_validator("sidecars")
    @classmethod
    def _templates_format(cls, value: list[str]) -> list[str]:
        """Each template formats with {name} and {stem} (``{nme}.json`` was accepted, then raised
        KeyError at the first folder holding a .json file: publisher/sidecars.py)."""
        for template in value:
            try:
                template.format(name="x", stem="x")
            except (KeyError, IndexError, AttributeError, TypeError) as exc:  # ({name[a]}: TypeError, which pydantic lets through)
                raise ValueError(f"sidecar template {template!r} names the field {{{exc.args[0] if exc.args else ''}}}: "
                                 "use {name} (the file's name) or {stem} (without its suffix)") from None
            except ValueError as exc:
                raise ValueError(f"sidecar template {template!r} does not format: {exc} (a brace is written {{{{ or }}}})") from None
        return value

    @field_validator("name_pattern")
    @classmethod
    def _pattern_parses(cls, value: str | None) -> str | None:
        """The pattern as ``parse`` reads it at build time, checked here (a mistake would otherwise
        fail the build, or silently match nothing): fields named, types known."""
        if value is None:
            return None
        import parse

        try:
            compiled = parse.compile(value)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"name_pattern {value!r} does not parse: {exc}") from None
        if compiled.fixed_fields:
            raise ValueError(f"name_pattern {value!r} has an unnamed field ({{}}): each field names a metadata key")
        if not compiled.named_fields:
            raise ValueError(f"name_pattern {value!r} has no {{field}} (a brace left open is read as text): name the parts "
                             "of the file name to publish, e.g. '{sample}_{temperature:d}K.tif'")
        return value

    @model_validator(mode="after")
    def _stack_needs_pattern(self) -> Source:
        if self.stack is not None:
            if self.name_pattern is None:
                raise ValueError("'stack' needs a 'name_pattern' that contains the stacked field")
            if "{" + self.stack not in self.name_pattern:
                raise ValueError(f"'stack' field {self.stack!r} does not appear in name_pattern {self.name_pattern!r}")
        return self


class Rule(_Model):
    """Settings for the nodes whose published path matches ``match`` (``*`` within a segment, ``**`` across)."""

    match: str
    chunks: list[StrictInt | None] | None = Field(default=None, min_length=1, description="Chunk shape; null or -1 keeps a whole dimension.")
    codec: Codec | None = None
    skip: bool = False
    table: bool = Field(default=False, description="Publish this group of equal-length 1-D datasets as one table.")
    sparse: Literal["csr", "csc", "coo"] | None = Field(
        default=None, description="Publish this group (data/indices/indptr, or coordinates and data) as one sparse array of this layout; "
        "AnnData and 10x Genomics groups are detected without a rule.")
    ragged: bool = Field(default=False, description="Publish this group of 1-D datasets of different lengths as one ragged (awkward) array.")
    pyramid: bool | None = Field(default=None, description="Write a multiscale (OME-Zarr) pyramid: true forces, false forbids; "
                                 "default: images whose last two dimensions reach output.pyramid_min_size.")
    labels: bool = Field(default=False, description="A label image or mask: pyramid levels take the nearest value, not the mean.")
    metadata: Metadata = Field(default_factory=dict)
    access_tags: list[str] | None = Field(default=None, description="Who may read the matched nodes and what is below them (docs/auth.md).")

    @field_validator("access_tags")
    @classmethod
    def _access_tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else checked_tags(value, "access_tags")

    @field_validator("chunks")
    @classmethod
    def _chunk_sizes(cls, value: list[StrictInt | None] | None) -> list[StrictInt | None] | None:
        """Each a positive length, or null / -1 for the whole dimension (0 or -2 would fail the build)."""
        bad = [n for n in value or [] if n is not None and n != -1 and n < 1]
        if bad:
            raise ValueError(f"chunk sizes are positive lengths, or null / -1 for a whole dimension; got {bad[0]}")
        return value


class Deploy(_Model):
    """Where and how ``publish deploy`` puts the published store and its handlers on AWS."""

    stack_name: str = Field(default="skyshelf", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,24}$",
                            description="The CloudFormation stack (at most 25 characters: bucket and function names are made from it).")
    bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                               description="The data bucket; default <stack>-data-<account>-<region>.")
    create_bucket: bool = Field(default=True, description="The stack makes the bucket (kept when the stack is destroyed); false: it exists.")
    prefix: str = Field(default="", pattern=r"^([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?$", description="Folder of the store in the bucket.")
    public: bool = Field(default=True, description="Anyone may read the published objects (the bucket policy says so).")
    runtime: Literal["python3.12", "python3.13", "python3.14"] = "python3.13"
    architecture: Literal["x86_64", "arm64"] = Field(default="arm64", description="arm64 (Graviton) costs 20% less per GB-second.")
    memory: dict[FunctionName, int] = Field(default_factory=dict, description="MB per function, 128-10240.")
    log_retention_days: int = 14
    cors_allow_origin: str = "*"
    cloudfront: bool = Field(default=False, description="Put CloudFront in front of the API.")
    artifacts_bucket: str | None = Field(default=None, description="Bucket for the functions' zips; default <stack>-artifacts-<account>-<region>.")
    plugins: list[str] = Field(default_factory=list, description="Plug-in distributions the functions' packages carry, beyond those with skyshelf.* entry points (docs/plugins.md).")
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$",
                                    description="Mail the stack's alarms (5xx rate, throttles, errors) here through an SNS topic; unset: alarms only.")
    server_error_percent: float = Field(default=5, ge=0, le=100, description="The 5xx rate alarm's threshold: percent of the API's answers in 5 minutes.")
    tracing: bool = Field(default=False, description="X-Ray active tracing of the functions (Powertools' Tracer); the packages then carry aws-xray-sdk.")


class Cluster(_Model):
    """Where ``publish build`` converts: this process (the default), or a Dask cluster (docs/scale.md)."""

    scheduler: str | None = Field(default=None, description="A Dask scheduler's address (tcp://host:8786), or local:N for a LocalCluster of N worker "
                                  "processes started by the build; unset: convert in this process.")
    threads_per_worker: StrictInt = Field(default=1, ge=1, le=256, description="Compression threads per worker process (local:N's), and of the writers a worker keeps for the build, shared by its tasks.")
    processes: int | None = Field(default=None, ge=0, le=1024, description="Without a scheduler: worker processes on this machine that convert the "
                                  "small files (8 MiB or less), off this process's GIL; 0: none. Unset: one per core when the build has 16 files or more.")


    @field_validator("scheduler")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _SCHEDULER.match(value):
            raise ValueError("should be a Dask scheduler's address, tcp://host:8786 (or tls://, ucx://, ws://, wss://; a port from 1 to "
                             "65535, an IPv6 host in brackets), or local:N with N from 1 to 1024")
        return value


#: A scheduler's address a client can use: a host (or [IPv6]) and a port; or local:N.
_SCHEDULER = re.compile(r"^(local:([1-9][0-9]{0,2}|10[01][0-9]|102[0-4])|(tcp|tls|ucx|ws|wss)://(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@]+):"
                        r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))$")


@functools.lru_cache(maxsize=16)
def _shower(base: str) -> Callable[[str | os.PathLike[str]], str]:
    """Paths shown relative to ``base`` (pipeline.yml's folder), made once per folder: each folder
    outside it keeps its relative path (``os.path.relpath``: ~40 us a call, per file)."""
    below = os.path.join(base, "")
    folders: dict[str, str] = {}

    def shown(path: str | os.PathLike[str]) -> str:
        text = os.fspath(path)
        if not os.path.isabs(text):
            return text
        if text.startswith(below):
            return text[len(below):].replace(os.sep, "/")
        if below.startswith(os.path.join(text, "")):  # pipeline.yml's folder or one above it
            return Path(os.path.relpath(text, base)).as_posix()
        folder, _, name = text.rpartition(os.sep)
        found = folders.get(folder)
        if found is None:
            if len(folders) > 4096:
                folders.clear()
            found = folders[folder] = Path(os.path.relpath(folder or os.sep, base)).as_posix()
        return f"{found}/{name}" if name else found

    return shown


class Pipeline(_Model):
    version: Literal[1] = 1
    name: str | None = None
    description: str | None = None
    sources: list[Source] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    output: Output = Field(default_factory=Output)
    on_error: Literal["fail", "skip"] = "fail"
    symlinks_outside: Literal["warn", "refuse", "allow"] = Field(
        default="warn", description="Symlinks in a source folder that point outside it: followed with a warning (warn), "
        "skipped (refuse) or followed silently (allow). Symlink loops are always that path's failure.")
    metadata: Metadata = Field(default_factory=dict, description="Metadata of the catalog root.")
    access: Access = Field(default_factory=Access)
    deploy: Deploy = Field(default_factory=Deploy)
    build: Cluster = Field(default_factory=Cluster)

    @model_validator(mode="after")
    def _rule_codecs_need_v3(self) -> Pipeline:
        for i, rule in enumerate(self.rules):
            _v3_only(rule.codec, self.output.zarr_format, f"rules.{i}.codec")
        return self

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _path: Path | None = PrivateAttr(default=None)
    _lines: dict = PrivateAttr(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """The folder that source paths and a relative store are resolved against."""
        return self._base_dir

    def shown(self, path: str | os.PathLike[str]) -> str:
        """A source or store path as published (the index, the build report, the manifest's file
        records): relative to pipeline.yml's folder, never the build host's absolute path (a path
        already relative is as it is)."""
        return _shower(str(self._base_dir))(path)

    def path_shower(self) -> Callable[[str | os.PathLike[str]], str]:
        """:meth:`shown` as a function (a million-file rebuild asks for each file: a slice for paths
        below the folder, no attribute lookups)."""
        return _shower(str(self._base_dir))

    def unrooted(self, text: str) -> str:
        """``text`` (a message) with the build host's paths below pipeline.yml's folder made relative."""
        below = os.path.join(str(self._base_dir), "")
        return text.replace(below, "") if below != os.sep else text

    def line_of(self, *loc: Any) -> str:
        """``file:line`` of a field, for messages about a source or rule found at build time."""
        line = next((self._lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in self._lines), None)
        return f"{self._path}:{line}" if self._path and line else str(self._path or "pipeline")
