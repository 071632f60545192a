"""Step one of a build, incremental planning: the release's id, and for each planned item whether
the previous release already holds it (same settings, and the same files by size, mtime and ctime or
else by content hash), so that only what changed is converted again."""

from __future__ import annotations

import os
import secrets
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from ..auth.tags import AccessRules
from ..config.models import Pipeline
from ..fingerprint import file_record, same_content, same_stat, settings_hash, still_referred
from ..formats import FileRecord, ManifestItem
from ..readers import NO_READER
from ..readers import REGISTRY as READERS
from ..scratch import Scratch
from ..stores import Store
from ..work_item import WorkItem
from . import moved
from .journal import resumable
from .manifests import Previous


def new_release_id() -> str:
    """Sortable by time (to the microsecond), unique by a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)


@dataclass
class Fingerprint:
    """What identifies a changed item's input, recorded in the manifest for the next build."""

    settings: str
    metadata: str
    #: The files' records, or (big files) their hashing running beside the conversion.
    files: list[FileRecord] | Future[list[FileRecord]]
    #: Big files: each path and its stat before the conversion read it (:meth:`records`).
    before: list[tuple[Path, os.stat_result]] = field(default_factory=list)
    #: The files that changed while the conversion read them (as shown), known after :meth:`records`.
    changed: list[str] = field(default_factory=list)
    #: Files hashed before the conversion: their paths (their records hold their stat of then).
    paths: list[Path] = field(default_factory=list)

    def records(self) -> list[FileRecord]:
        """The files' records, once the conversion is over. A big file hashed beside the conversion
        that changed meanwhile (a detector still appending) is recorded as it was before, with no
        hash: the next build converts it again. (Its record took the stat and hash the hashing saw:
        when that came after the change, the next build reused what had been read before it.) A
        file hashed before that changed meanwhile, the same (it was converted again next build, but
        said nothing: what was published may be neither its old bytes nor its new ones)."""
        if not isinstance(self.files, Future):
            for i, (path, record) in enumerate(zip(self.paths, self.files, strict=True)):
                try:
                    moved = not same_stat(record, os.stat(path))
                except OSError:
                    moved = True
                if moved:
                    self.files[i] = replace(record, hash=None)
                    self.changed.append(record.path)
            return self.files
        records = self.files.result()
        for i, ((path, was), record) in enumerate(zip(self.before, records, strict=True)):
            try:
                now = os.stat(path)
            except OSError:
                now = None
            if now is None or not same_stat(record, was) or not same_stat(record, now):
                records[i] = replace(record, size=was.st_size, mtime_ns=was.st_mtime_ns, ctime_ns=was.st_ctime_ns, hash=None)
                self.changed.append(record.path)
        return records


class Planner:
    """Decides, item by item, between reusing the previous release's record and converting."""

    #: Below this, an item's files are hashed before converting, on its own thread.
    HASH_INLINE_BYTES = 32 * 2**20

    def __init__(self, pipeline: Pipeline, store: Store | None) -> None:
        """``store`` None: no previous release is read (a cluster worker, given each item's old record)."""
        self.pipeline = pipeline
        self.shown = pipeline.path_shower()  # a source path as records and the index publish it
        self.scratch: Scratch | None = None
        self.previous: Previous | None = None
        self.resumed_releases: set[str] = set()  # the interrupted builds whose journaled records were read
        if store is not None:  # the previous release's records, and those of interrupted builds (:mod:`.journal`), on disk
            self.scratch = Scratch("previous")
            self.previous = Previous(self.scratch)
            self.previous.load(store)
            self.previous.load_resumed(resumable(store, self.previous.release, self.resumed_releases))
        self._settings: dict[int, str] = {}
        self._readers_changed: bool | None = None  # (known at the first record of a file no reader read)
        self.access = AccessRules(pipeline.rules, pipeline.access.default)
        out_settings = pipeline.output.model_dump(exclude={"store", "storage"})
        # access settings place data under public or private prefixes: a change converts again
        self.rules_settings = [[r.model_dump() for r in pipeline.rules], out_settings, *([pipeline.access.default] if pipeline.access.default else [])]

    def close(self) -> None:
        if self.scratch is not None:
            self.scratch.close()

    @property
    def previous_release(self) -> str | None:
        return self.previous.release if self.previous else None

    @property
    def resumes(self) -> bool:
        """Whether an interrupted build left records to reuse."""
        return self.previous is not None and self.previous.resumed_count > 0

    def settings(self, item: WorkItem) -> str:
        """What shapes an item's output besides its content (one hash per source), the versions
        of writer and codec plug-ins installed among it. The detected reader is not in it (the
        same content and name detect the same reader); a plug-in reader's version is added to the
        record of what it read (:func:`recorded_settings`), and compared (:meth:`same_settings`)."""
        if item.source_index not in self._settings:
            # ``exclude`` only selects files: another pattern must not convert every other file of
            # the source again (as [], the hash of a source without one is what it always was)
            plugins = self._plugins()  # (none: the hash it always was)
            self._settings[item.source_index] = settings_hash({**item.source.model_dump(), "exclude": []}, self.rules_settings,
                                                              *([plugins] if plugins else []))
        return self._settings[item.source_index]

    def _plugins(self) -> list[str]:
        """The writer plug-ins installed and the codec plug-ins the pipeline names, as
        "<distribution> <version>": an upgraded one converts every item again, as Skyshelf's
        own version does (a reader plug-in's goes only into the records of what it read)."""
        from ..writers.base import WRITERS
        from ..zarr_layout import CODECS

        WRITERS.load_entry_points()
        CODECS.load_entry_points()
        p = self.pipeline
        codecs = {c.name for c in (p.output.codec, *(r.codec for r in p.rules)) if c is not None}
        return sorted({*WRITERS.origins.values(), *(CODECS.origins[n] for n in codecs if n in CODECS.origins)})

    @staticmethod
    def same_settings(recorded: str, settings: str) -> bool:
        """Whether a record's settings are ``settings``: with its plug-in reader's version, when
        one read it, the version installed now (an upgraded reader converts its files again)."""
        base, plugin, origin = recorded.partition("+")
        if base != settings:
            return False
        if plugin:
            READERS.load_entry_points()  # (once a process: the plug-ins' origins)
        return not plugin or origin in READERS.origins.values()

    @staticmethod
    def item_metadata(item: WorkItem) -> str:
        """What the plan adds to an item besides its files (sidecar files' content, file-name fields):
        a changed sidecar changes the published metadata, so it is part of the fingerprint."""
        if not item.metadata and not item.warnings:
            return ""
        # the warnings name files (the item's, its sidecars): by their names in the item's folder, so
        # a moved project or a renamed folder changes no fingerprint (and a moved item is found)
        folder = f"{item.paths[0].parent}{os.sep}" if item.paths else None
        return settings_hash(item.metadata, [w.replace(folder, "") for w in item.warnings] if folder else item.warnings)

    def _stat_matches(self, item: WorkItem, old: ManifestItem | None, settings: str, fields: tuple[str, ...]) -> bool:
        """Same settings, planned metadata and file count as the previous record, and the same path,
        size and (when ``fields`` has it) mtime and ctime per file."""
        if not old or not self.same_settings(old.settings, settings) or len(old.files) != len(item.paths):
            return False
        if old.metadata != self.item_metadata(item):
            return False
        if self.read_now(item, old):
            return False
        mtime = "mtime_ns" in fields  # (path and size always)
        shown = self.shown  # (a manifest written before 2026-12-05 has absolute paths)
        for record, path in zip(old.files, item.paths, strict=True):
            try:
                st = os.stat(path)
            except OSError:
                return False
            if record.size != st.st_size or (mtime and not same_stat(record, st)) or shown(record.path) != shown(path):
                return False
        base = self.pipeline.base_dir  # the files it referred to (a master file's frames): as they were, there or not
        return all(still_referred(record, base / record.path) for record in old.refers)

    def record_for(self, node_path: str) -> ManifestItem | None:
        """What an item is compared with: an interrupted build's record of it, else the previous release's."""
        if self.previous is None:
            return None
        return self.previous.resumed(node_path) or (self.previous.old(node_path) if self.previous.count else None)

    def is_resumed(self, record: ManifestItem) -> bool:
        found = self.previous.resumed(record.node_path) if self.previous else None
        return found is not None and found.data_prefixes == record.data_prefixes

    def read_now(self, item: WorkItem, old: ManifestItem) -> bool:
        """Whether no reader read the file then and one does now (a plug-in installed since): its
        skip is not kept. Looked at only when the readers changed since the previous release (they
        are in :meth:`catalog_settings`): their files' heads are read again then, not every build."""
        if old.entries or not any(p.reason == NO_READER for p in old.skipped):
            return False
        if self._readers_changed is None:
            self._readers_changed = self.previous is None or self.previous.catalog_settings != self.catalog_settings()
        try:
            return self._readers_changed and item.reader is not None
        except OSError:  # gone or unreadable since the plan: converted, which says so
            return True

    def stat_matches(self, item: WorkItem, old: ManifestItem | None) -> bool:
        """Whether ``item`` is ``old`` as it was: the same settings, planned metadata, and files of
        the same size, mtime and ctime (reused without hashing)."""
        return self._stat_matches(item, old, self.settings(item), ("path", "size", "mtime_ns"))

    def unchanged_by_stat(self, item: WorkItem) -> tuple[bool, ManifestItem | None]:
        """(:meth:`stat_matches` against the record it is compared with: an interrupted build's or
        the previous release's; that record)."""
        old = self.record_for(item.node_path)
        if old is None:
            item.moved = self.moved_from(item)
        return self.stat_matches(item, old), old

    def moved_from(self, item: WorkItem) -> list[ManifestItem]:
        """Records at other node paths that ``item`` may be, moved or copied (:mod:`.moved`), each
        re-pathed to the item's: its worker compares their hashes with its file's."""
        if self.previous is None or not self.previous.count or len(item.paths) != 1:
            return []
        try:
            st = os.stat(item.paths[0])
        except OSError:
            return []
        # with its mtime too (mv and cp -p keep it; a new file of the same name and size has its own):
        # a few records, those of the file itself, to hash against (parsed here, carried by the item)
        found = self.previous.like(self.settings(item), self.item_metadata(item), item.paths[0].name, st.st_size, st.st_mtime_ns, moved.CANDIDATES,
                                    item.node_path)
        shown = self.shown(item.paths[0])
        return [moved.moved_to(old, item.node_path, shown) for old in found if moved.portable(self.pipeline, self.access, old, item.node_path)]

    def fingerprint_against(self, item: WorkItem, old: ManifestItem | None, pool: Executor) -> ManifestItem | Fingerprint:
        """On a worker thread (or a cluster worker, which has no manifest): the previous record
        ``old`` (its files' records refreshed) when only the content could tell and it is
        unchanged; else the item's fingerprint, to convert it."""
        settings, metadata = self.settings(item), self.item_metadata(item)
        files: list[FileRecord] | Future[list[FileRecord]]
        shown = self.shown
        if old is None and item.moved:  # moved or copied? its hash tells (and is recorded if not)
            files = [file_record(p, shown(p)) for p in item.paths]
            for record in item.moved:
                if record.files[0].hash == files[0].hash:  # (its settings and metadata are the item's: Previous.like)
                    return replace(record, files=files, seq=-1, refreshed=True)
        elif old is not None and not old.failures and self._stat_matches(item, old, settings, ("path", "size")):  # only the content can tell: hash it first
            # (a recorded failure is tried again once the file was touched: not reused by its hash)
            old_files = {shown(f.path): f for f in old.files}
            files = [file_record(p, shown(p), old_files.get(shown(p))) for p in item.paths]
            if same_content([replace(f, path=shown(f.path)) for f in old.files], files):
                # its new times recorded (a release is published for them: else every later build
                # would hash it again); not in the previous release's order (merged, not replayed)
                return replace(old, files=files, seq=-1, refreshed=True)
        elif sum(os.stat(p).st_size for p in item.paths) < self.HASH_INLINE_BYTES:
            files = [file_record(p, shown(p)) for p in item.paths]
        else:  # surely changed: hash (for the next build) while converting
            before = [(p, os.stat(p)) for p in item.paths]
            return Fingerprint(settings, metadata, pool.submit(lambda: [file_record(p, shown(p)) for p in item.paths]), before)
        return Fingerprint(settings, metadata, files, paths=item.paths)

    @staticmethod
    def recorded_settings(settings: str, reader: type | None) -> str:
        """An item's settings as its record keeps them: ``+<distribution> <version>`` after them
        when a plug-in reader read it."""
        origin = READERS.origins.get(getattr(reader, "name", None))
        return f"{settings}+{origin}" if origin else settings

    def catalog_settings(self) -> str:
        """What the whole catalog depends on, and the readers installed (:meth:`read_now`)."""
        p = self.pipeline
        return settings_hash(p.name, p.description, p.metadata, p.output.zarr_format, *([p.access.model_dump()] if p.access != type(p.access)() else []),
                             sorted(READERS.items()))

    def same_catalog(self) -> bool:
        """The previous release has the same catalog settings, and no interrupted build left records
        (those are new to the catalog): then the same items in the same order change nothing."""
        return (self.previous is not None and self.previous.release is not None and not self.resumes
                and self.previous.catalog_settings == self.catalog_settings())
