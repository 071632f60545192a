"""The pydantic models of pipeline.yml."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, field_validator, model_validator

from ..functions import BY_NAME

#: A Lambda function's name, as the function table has them.
FunctionName = Literal[tuple(BY_NAME)]  # type: ignore[valid-type]

_BYTES = TypeAdapter(ByteSize)


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as ``8MiB`` or ``500 kB`` (pydantic's ``ByteSize`` units)."""
    try:
        return int(_BYTES.validate_python(value))
    except ValidationError:
        raise ValueError(f"expected a size such as 8388608, '8MiB' or '500kB', got {value!r}") from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


CodecName = Literal["zstd", "gzip", "blosc-lz4", "blosc-zstd", "lz4", "none"]


class Codec(_Model):
    """Compression for Zarr chunks. Written as ``zstd``, ``gzip:6`` or ``{name: zstd, level: 5}``."""

    name: CodecName = "zstd"
    level: int | None = Field(default=None, description="Compression level; the codec's default when omitted.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            name, _, level = value.partition(":")
            return {"name": name.strip(), **({"level": int(level)} if level.strip() else {})}
        return value


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
    table_partition_rows: int = Field(default=5_000_000, gt=0, description="Rows per Parquet partition file.")
    table_row_group_rows: int = Field(default=262_144, gt=0, description="Rows per Parquet row group.")

    @field_validator("chunk_target_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        size = parse_size(value)
        if size < 4096:
            raise ValueError(f"chunk_target_bytes must be at least 4096 bytes, got {size}")
        return size


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
    metadata: dict[str, Any] = Field(default_factory=dict, description="Extra metadata for every node from this source.")
    exclude: list[str] = Field(default_factory=list, description="Globs of files to leave out.")

    @field_validator("into")
    @classmethod
    def _clean_into(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = [p for p in PurePosixPath(value).parts if p not in ("/", ".")]
        if ".." in parts:
            raise ValueError(f"'into' must stay inside the catalog, got {value!r}")
        return "/".join(parts)

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
    chunks: list[int | None] | None = Field(default=None, description="Chunk shape; null or -1 keeps a whole dimension.")
    codec: Codec | None = None
    skip: bool = False
    table: bool = Field(default=False, description="Publish this group of equal-length 1-D datasets as one table.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    access_tags: list[str] | None = None


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
    metadata: dict[str, Any] = Field(default_factory=dict, description="Metadata of the catalog root.")
    deploy: Deploy = Field(default_factory=Deploy)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _path: Path | None = PrivateAttr(default=None)
    _lines: dict = PrivateAttr(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """The folder that source paths and a relative store are resolved against."""
        return self._base_dir

    def line_of(self, *loc: Any) -> str:
        """``file:line`` of a field, for messages about a source or rule found at build time."""
        line = next((self._lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in self._lines), None)
        return f"{self._path}:{line}" if self._path and line else str(self._path or "pipeline")
