"""The published formats, defined once: ``catalog.json``, a release's manifest and build report,
and the rows of the node index.

The build writes them, ``publish releases``/``gc``/``rollback`` and the catalog read them. Plain
dataclasses over the standard library and :mod:`publisher.structures` (a Lambda handler reads
``catalog.json`` and index rows at cold start); ``to_json`` writes the keys, in the order, that
earlier releases hold, so an incremental build reads its predecessor's manifest as it wrote it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .index.layout import INDEX_COLUMNS, JSON_COLUMNS  # noqa: F401 (the index's columns: a published format too)
from .structures import ArrayStructure, ContainerStructure, StructureFamily, TableStructure, structure_from_json

CATALOG_KEY = "catalog.json"
#: A catalog with access rules: the full catalog (every node, the manifest, the report), never public.
PRIVATE_CATALOG_KEY = "private/catalog.json"
CATALOG_FORMAT = "skyshelf-catalog"
CATALOG_VERSION = 1
#: A release's own objects, beside its data: ``releases/<id>/<name>``.
MANIFEST = "manifest.json"
BUILD_REPORT = "build-report.json"

#: The name of an access class's private prefix (:func:`publisher.auth.principal.chain_id`).
ACCESS_CLASS = re.compile(r"[0-9a-f]{16}")
_ROOT = re.compile(r"^((?:private/(?:[0-9a-f]{16}/)?)?releases/([^/]+))(?:/|$)")


def release_root(key: str) -> str | None:
    """The release folder a key lives in: ``releases/<id>``, ``private/releases/<id>`` (a catalog
    with access rules: its full index, manifest and report) or ``private/<class>/releases/<id>``
    (the data of one access class); None for anything else."""
    found = _ROOT.match(key)
    return found.group(1) if found else None


def release_of(key: str) -> str | None:
    """The release id a key belongs to (see :func:`release_root`)."""
    found = _ROOT.match(key)
    return found.group(2) if found else None


Structure = ArrayStructure | TableStructure | ContainerStructure


class Entry:
    """One node of the index: what the build writes and a catalog read returns.

    ``structure`` is the :mod:`publisher.structures` object the build made. Read back from the
    index, it is parsed on first use: an answer that sends it on as JSON (a search page of 100
    rows) takes :meth:`structure_json`, the row's own dict, and skips the parse (measured at half
    again the time to build the page).
    """

    __slots__ = ("path", "key", "family", "specs", "metadata", "_structure", "_structure_json", "data_url",
                 "source_file", "source_path", "access_tags", "notes")

    def __init__(self, path: str, key: str, family: str, specs: list[str], metadata: dict[str, Any],
                 structure: Structure | dict[str, Any], data_url: str | None, source_file: str | None,
                 source_path: str | None, access_tags: list[str] | None = None, notes: dict[str, Any] | None = None) -> None:
        self.path, self.key, self.family, self.specs, self.metadata = path, key, family, specs, metadata
        self.structure = structure  # type: ignore[assignment]
        self.data_url, self.source_file, self.source_path = data_url, source_file, source_path
        self.access_tags = access_tags
        self.notes: dict[str, Any] = {} if notes is None else notes

    @property
    def structure(self) -> Structure:
        if self._structure is None:
            self._structure = structure_from_json(self.family, self._structure_json)
        return self._structure

    @structure.setter
    def structure(self, value: Structure | dict[str, Any]) -> None:
        if isinstance(value, dict):
            self._structure, self._structure_json = None, value
        else:
            self._structure, self._structure_json = value, None

    def structure_json(self) -> dict[str, Any]:
        """The structure as the index holds it, without parsing it when it was read as JSON."""
        return self._structure.to_json() if self._structure is not None else self._structure_json  # type: ignore[return-value]

    @property
    def parent(self) -> str | None:
        if self.path == "":
            return None
        return self.path.rpartition("/")[0]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        """An index row (``parent`` is derived from ``path``; the columns after ``metadata`` may be absent)."""
        get = data.get
        return cls(data["path"], data["key"], data["family"], data["specs"], data["metadata"], get("structure") or {},
                   get("data_url"), get("source_file"), get("source_path"), get("access_tags"), get("notes"))

    def to_json(self) -> dict[str, Any]:
        """The index row, its columns in :data:`INDEX_COLUMNS` order."""
        return {
            "path": self.path, "key": self.key, "parent": self.parent, "family": self.family,
            "specs": self.specs, "metadata": self.metadata, "structure": self.structure_json(),
            "data_url": self.data_url, "source_file": self.source_file, "source_path": self.source_path,
            "access_tags": self.access_tags, "notes": self.notes,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaces

    def __repr__(self) -> str:
        return f"Entry(path={self.path!r}, family={self.family!r}, key={self.key!r})"


@dataclass
class Problem:
    """A warning, skipped node or failure of a build, where it happened and why."""

    path: str
    reason: str
    source: str | None = None

    def __str__(self) -> str:
        where = f" ({self.source})" if self.source else ""
        return f"{self.path or '/'}{where}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "source": self.source}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Problem:
        return cls(**data)


def _problems(data: list[dict[str, Any]]) -> list[Problem]:
    return [Problem.from_json(p) for p in data]


@dataclass
class BuildReport:
    """``releases/<id>/build-report.json``, and what ``publish build`` prints."""

    release: str
    store: str
    published: bool = False
    nodes: dict[str, int] = field(default_factory=lambda: {f.value: 0 for f in StructureFamily})
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    warnings: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    failures: list[Problem] = field(default_factory=list)
    #: Items (files or stacks) converted in this build, and reused unchanged from the previous release.
    converted: int = 0
    reused: int = 0
    #: Of those converted, items that published no node (failed, skipped, or every node left out by a rule).
    unpublished: int = 0
    #: Of those reused, items an interrupted build had finished (its journal), not the previous release.
    resumed: int = 0
    #: True when nothing changed: no release was written and the catalog still points at ``release``.
    unchanged: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release, "store": self.store, "published": self.published, "nodes": self.nodes,
            "converted": self.converted, "unpublished": self.unpublished, "reused": self.reused, "resumed": self.resumed, "unchanged": self.unchanged,
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "seconds": round(self.seconds, 3),
            **{k: [p.to_json() for p in getattr(self, k)] for k in ("warnings", "skipped", "failures")},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildReport:
        problems = {k: _problems(data.get(k, [])) for k in ("warnings", "skipped", "failures")}
        return cls(**{**data, **problems})


@dataclass(frozen=True)
class FileRecord:
    """One source file as a manifest remembers it: unchanged when size, mtime and ctime match, or
    else when its content hash (xxh3-128, :func:`publisher.fingerprint.content_hash`) does. The
    ctime (the inode's change time, which no tool sets) moves when a file is renamed or its
    times are set back: two frames of one size written in the same clock tick, their names
    swapped, kept their sizes and mtimes and were published under each other's names."""

    path: str
    size: int
    mtime_ns: int
    hash: str | None = None
    ctime_ns: int | None = None  #: (None in a manifest written before 2026-12-06: its files are hashed once)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns, "ctime_ns": self.ctime_ns, "hash": self.hash}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileRecord:
        return cls(data["path"], data["size"], data["mtime_ns"], data.get("hash"), data.get("ctime_ns"))


@dataclass
class ManifestItem:
    """One planned item (a file or a stack) of a release: its fingerprint, what it published and
    the data prefixes it uses (``publish gc`` keeps those of kept releases)."""

    node_path: str
    settings: str  #: hash of the source's and rules' settings
    metadata: str  #: hash of what the plan added (sidecars, file-name fields); "" when nothing
    files: list[FileRecord]
    entries: list[dict[str, Any]]  #: its index rows, as :meth:`Entry.to_json`
    data_prefixes: list[str]
    warnings: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    #: The file's own failures (a corrupt file), reported again while it is unchanged rather than
    #: read again: a broken file made every build of a large tree publish a release (``on_error: skip``).
    failures: list[Problem] = field(default_factory=list)
    #: Other files its conversion read or looked for (an HDF5 file's external links and virtual or
    #: external sources), by stat: the item is converted again when one changes.
    refers: list[FileRecord] = field(default_factory=list)
    #: Its conversion read its one file alone (:attr:`publisher.readers.base.Reader.alone`): it may
    #: be taken for the same file moved or copied elsewhere (:mod:`publisher.build.moved`).
    alone: bool = False
    #: Its place in the manifest it was read from (-1: a new record), not part of it.
    seq: int = field(default=-1, compare=False, repr=False)
    #: A previous record whose files' sizes and times were refreshed (touched, same content), not part of it.
    refreshed: bool = field(default=False, compare=False, repr=False)
    _text: str | None = field(default=None, init=False, compare=False, repr=False)

    def text(self) -> str:
        """Its compact JSON (:meth:`to_json`), made once: the worker that converted the item makes
        it, so the build's own process, which merges every item, only writes it."""
        if self._text is None:
            self._text = json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)
        return self._text

    def to_json(self) -> dict[str, Any]:
        return {
            "node_path": self.node_path, "settings": self.settings, "metadata": self.metadata, "files": [f.to_json() for f in self.files],
            # (before the entries: a record with them is not taken as unchanged from its text, reuse.unchanged_text)
            **({"refers": [f.to_json() for f in self.refers]} if self.refers else {}),
            # ("alone" before the prefixes: a record without problems still ends as reuse.AsBefore reads it as text)
            "entries": self.entries, **({"alone": True} if self.alone else {}), "data_prefixes": self.data_prefixes,
            "warnings": [p.to_json() for p in self.warnings], "skipped": [p.to_json() for p in self.skipped],
            **({"failures": [p.to_json() for p in self.failures]} if self.failures else {}),  # (else the text of a record without)
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ManifestItem:
        return cls(data["node_path"], data["settings"], data.get("metadata", ""), [FileRecord.from_json(f) for f in data["files"]], data["entries"],
                   data["data_prefixes"], _problems(data["warnings"]), _problems(data["skipped"]), _problems(data.get("failures", [])),
                   [FileRecord.from_json(f) for f in data.get("refers", [])], data.get("alone") is True)


@dataclass
class Manifest:
    """``releases/<id>/manifest.json``: the items of a release, in plan order."""

    release: str
    catalog_settings: str
    items: list[ManifestItem]
    #: The items' index rows counted by family (what a build that changes nothing reports); None
    #: in a manifest written before 2026-12-05
    nodes: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        nodes = {"nodes": self.nodes} if self.nodes is not None else {}
        return {"release": self.release, "catalog_settings": self.catalog_settings, **nodes, "items": [i.to_json() for i in self.items]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(data.get("release", ""), data.get("catalog_settings", ""), [ManifestItem.from_json(i) for i in data["items"]], data.get("nodes"))

    def data_prefixes(self) -> set[str]:
        return {p for item in self.items for p in item.data_prefixes}


#: ``catalog.json``'s own fields, in the order written; the index's fields (``index``,
#: ``index_json``, ``node_count``, from the index writer) follow them.
_CATALOG_FIELDS = ("format", "version", "release", "created", "name", "zarr_format", "report", "manifest")


@dataclass
class CatalogDocument:
    """``catalog.json`` (and each release's copy of it): which release is published, where its
    index, manifest and report are."""

    release: str
    index: dict[str, Any]  #: the index writer's fields: ``index`` (Parquet key), ``index_json``, ``node_count``
    created: str | None = None
    name: str | None = None
    zarr_format: int = 3
    report: str | None = None
    manifest: str | None = None
    format: str = CATALOG_FORMAT
    version: int = CATALOG_VERSION
    #: In a catalog with access rules, the private catalog's ``access`` section: what untagged
    #: nodes are, group and subject → tags, the token issuer (``pipeline.yml``'s, no secrets).
    access: dict[str, Any] | None = None

    @property
    def index_key(self) -> str:
        return self.index["index"]

    @property
    def index_json(self) -> dict[str, Any]:
        return self.index["index_json"]

    @property
    def node_count(self) -> int | None:
        return self.index.get("node_count")

    def to_json(self) -> dict[str, Any]:
        access = {} if self.access is None else {"access": self.access}
        return {**{name: getattr(self, name) for name in _CATALOG_FIELDS}, **access, **self.index}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CatalogDocument:
        own = {name: data[name] for name in (*_CATALOG_FIELDS, "access") if name in data}
        return cls(index={k: v for k, v in data.items() if k not in _CATALOG_FIELDS and k != "access"}, **own)
