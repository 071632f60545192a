"""HDF5 and NeXus: groups → containers, datasets → arrays, 1-D compound datasets → tables, N-D ones → structured arrays.

Links: a hard-linked object is published once at its canonical path (the first in
h5py's visit order) and every other path is recorded as an alias; soft links resolve
the same way; dangling soft links, missing external files and virtual datasets whose
sources are missing are recorded in the parent's notes and never materialised.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import SourceError, UnsupportedError
from ..jsonable import attrs_to_json, decode_bytes, to_json
from ..nodes import ArrayNode, ContainerNode, LinkNode, Node, SkippedNode, TableNode, batch_rows
from .base import Reader, register_reader, sampled_string_width
from .compound import complex_pair, packed, repacked, to_complex
from .hdf5_direct import DirectChunks, NotDirect, unwritten
from .hdf5_groups import interpret_dataset, interpret_group
from .hdf5_sources import external_problem, in_other_files, link_target, missing_virtual_sources, other_files
from .nexus import assign_dims, canonical_paths, label_dataset
from .whole_chunks import DecodedChunks, decoded_once

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Scalars and strings up to this many characters are also copied into the parent's metadata.
SHORT_STRING = 256


class HDF5Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunk_cache_bytes: int = Field(default=64 * 2**20, description="HDF5 chunk cache per dataset.")
    copy_scalars_to_parent: bool = True


def _decode(value: Any) -> Any:
    value = to_json(value)
    return value[0] if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str) else value


def _filter_problem(ds: Any) -> str | None:
    """Name a filter of the dataset that this HDF5 library cannot decode, if any."""
    import h5py

    plist = ds.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, _flags, _values, name = plist.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            return f"compression filter {label or '?'} (id {code}) is not available in this HDF5 (hdf5plugin has no decoder for it)"
    return None


def _clean_strings(arr: np.ndarray) -> np.ndarray:
    """Bytes decoded as UTF-8 where valid, else Latin-1 (the rule for attributes too)."""
    clean = np.vectorize(lambda v: decode_bytes(v) if isinstance(v, bytes) else str(v), otypes=[object])
    return np.asarray(clean(arr), dtype=object).reshape(arr.shape) if arr.size else arr.astype(object)


#: Groups nested deeper than this in one file are refused.
MAX_GROUP_DEPTH = 200


class _Walker:
    def __init__(self, f: Any, path: Path, options: HDF5Options, lock: threading.Lock, reader: Reader | None = None) -> None:
        self.f = f
        self.reader = reader  # told when the file refers to others (:attr:`Reader.others`)
        self.options = options
        self.lock = lock
        #: Big chunks decoded once for the reads that cut them (readers/whole_chunks.py).
        self.chunks_decoded = DecodedChunks()
        self.published: dict[tuple[int, int], Node] = {}
        #: Alias paths met before the object they point to was published.
        self.pending: dict[tuple[int, int], list[LinkNode]] = {}

        self.canonical = canonical_paths(f, self._identity)

    def refers(self, *paths: Path) -> None:
        """The file refers to others, ``paths`` (what they hold is part of what it publishes: the
        build records them, and converts it again when one of them changes)."""
        if self.reader is not None:
            self.reader.others = True
            self.reader.referred = {*self.reader.referred, *paths}

    def reads(self, ds: Any) -> None:
        """A dataset whose values are published: :meth:`refers` when its raw data is in other files
        (external storage) or it is a view of datasets in other files (virtual). Interpreters of
        groups that read their datasets themselves (``hdf5_ragged``) call it too."""
        if in_other_files(ds):
            self.refers(*other_files(ds))

    @staticmethod
    def _identity(obj: Any) -> tuple[int, int]:
        import h5py

        info = h5py.h5o.get_info(obj.id)
        return (info.fileno, info.addr)

    # -- groups -------------------------------------------------------------------------
    def group(self, group: Any, key: str, h5path: str) -> Node:
        import h5py

        if h5path.count("/") > MAX_GROUP_DEPTH:  # (each level a frame here and in the writers: 2,000 ended in a bare RecursionError)
            raise SourceError(f"groups nested more than {MAX_GROUP_DEPTH} deep (at {h5path[:100]}...): not published")
        special = interpret_group(self, group, key, h5path) if h5path else None
        if special is not None:  # a sparse matrix, an awkward array, ... (readers/hdf5_groups.py)
            self._publish(self._identity(group), special)
            return special
        node = ContainerNode(key=key, metadata=attrs_to_json(group.attrs), source_path=h5path, in_file=True)
        nx_class = node.metadata.get("NX_class")
        if isinstance(nx_class, list) and len(nx_class) == 1:
            nx_class = node.metadata["NX_class"] = nx_class[0]
        if isinstance(nx_class, str) and nx_class:
            node.specs.append(nx_class)
        self._publish(self._identity(group), node)
        for name in group:
            child_path = f"{h5path.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                candidates, problem = link_target(group, link.filename)
                self.refers(*candidates)
                target = {"file": link.filename, "path": link.path}
                if problem is not None:  # missing (not looked for in the build's current folder), or a FIFO: not followed
                    node.notes.setdefault("external_links", {})[name] = {**target, "missing": True} if problem == "missing" else {**target, "not_read": problem}
                    node.warn(f"{child_path}: external link to {link.filename}:{link.path} whose file is {problem}")
                    continue
                node.notes.setdefault("external_links", {})[name] = target
            try:
                obj = group[name]
                if isinstance(link, h5py.ExternalLink):  # the file HDF5 opened (one of those, or found by HDF5_EXT_PREFIX)
                    self.refers(Path(obj.file.filename))
            except (KeyError, OSError, RuntimeError) as exc:  # (RuntimeError: a loop of soft links, "too many links")
                what = "soft link" if isinstance(link, h5py.SoftLink) else "link"
                target = getattr(link, "path", "?")
                node.notes.setdefault("dangling_links", {})[name] = {"target": target, "reason": str(exc)}
                node.warn(f"{child_path}: dangling {what} to {target}")
                continue
            ident = self._identity(obj)
            canonical = self.canonical.get(ident)
            if ident in self.published or (canonical is not None and canonical != child_path):
                # Published (or to be published) elsewhere: record the alias, not a second copy.
                link_node = LinkNode(key=name, source_path=child_path, target_path=canonical or self.published[ident].source_path)
                node.children.append(link_node)
                self._add_alias(ident, link_node)
                continue
            child = self.group(obj, name, child_path) if isinstance(obj, h5py.Group) else self.dataset(obj, name, child_path)
            node.children.append(child)
            if isinstance(obj, h5py.Dataset) and not isinstance(child, SkippedNode):
                self._publish(ident, child)
                self._copy_small_value(node, child)
        assign_dims(node)
        label_dataset(node)
        return node

    def _publish(self, ident: tuple[int, int], node: Node) -> None:
        self.published[ident] = node
        for link in self.pending.pop(ident, []):
            link.target = node
            node.notes.setdefault("aliases", []).append(link.source_path)

    def _add_alias(self, ident: tuple[int, int], link: LinkNode) -> None:
        target = self.published.get(ident)
        if target is not None:
            link.target = target
            target.notes.setdefault("aliases", []).append(link.source_path)
        else:
            self.pending.setdefault(ident, []).append(link)

    def _copy_small_value(self, parent: ContainerNode, child: Node) -> None:
        """Scalars and short strings are copied into the parent's metadata, so search finds them."""
        if not self.options.copy_scalars_to_parent or not isinstance(child, ArrayNode) or child.key in parent.metadata:
            return
        if int(np.prod(child.shape, dtype=np.int64)) != 1:
            return
        value = child.read(tuple(slice(None) for _ in child.shape))  # type: ignore[misc]
        value = _decode(value.reshape(-1)[0] if value.ndim else value[()])
        if isinstance(value, str) and len(value) > SHORT_STRING:
            return
        parent.metadata[child.key] = value
        parent.copied.add(child.key)

    def _reopener(self, ds: Any) -> Any:
        """Open the dataset again when a block is read: handles kept open for every node of a
        big file (thousands of them) would each hold HDF5 caches until the file closes."""
        f, name = ds.file, ds.name
        if f == self.f:  # (the same file: its one File object kept, not one a dataset, ~2.5 KB each with its HDF5 id)
            f = self.f
        return lambda: f[name]

    # -- datasets -----------------------------------------------------------------------
    def dataset(self, ds: Any, key: str, h5path: str) -> Node:
        import h5py

        def skip(reason: str, **notes: Any) -> SkippedNode:
            return SkippedNode(key=key, source_path=h5path, reason=reason, notes=notes)

        try:
            dtype = ds.dtype
        except Exception as exc:  # e.g. H5T_TIME, which h5py cannot map
            return skip(f"datatype not supported by h5py: {exc}")
        metadata = attrs_to_json(ds.attrs)
        if ds.shape is None:
            return skip("empty (null) dataspace: the dataset holds no value", attributes=metadata)
        self.reads(ds)
        problem = external_problem(ds)
        if problem:
            return skip(problem, shape=list(ds.shape), dtype=str(dtype), attributes=metadata)
        if ds.is_virtual:
            missing = missing_virtual_sources(ds)
            if missing:
                return skip(
                    "virtual dataset whose source files are missing or not HDF5 "
                    f"({', '.join(sorted({m['file'] + (' (' + m['reason'] + ')' if 'reason' in m else '') for m in missing}))})",
                    virtual_sources=missing,
                    shape=list(ds.shape),
                    dtype=str(dtype),
                    attributes=metadata,
                )
        elif ds.chunks is not None:
            problem = _filter_problem(ds)
            if problem:
                return skip(problem, shape=list(ds.shape), dtype=str(dtype))
        pair = complex_pair(dtype)
        if pair is not None:
            return self._complex(ds, key, h5path, metadata, pair)
        if dtype.names:
            return self._compound(ds, key, h5path, metadata)
        string_info = h5py.check_string_dtype(dtype)
        base = dtype.subdtype[0] if dtype.subdtype else dtype
        reopen, ndim = self._reopener(ds), ds.ndim
        extra_shape = dtype.subdtype[1] if dtype.subdtype else ()
        shape = tuple(ds.shape) + tuple(extra_shape)
        lock = self.lock
        if string_info is not None or base.kind == "S":

            def read_str(sel: tuple[slice, ...]) -> np.ndarray:
                with lock:  # raw bytes: files often declare ASCII but hold UTF-8, so decode here
                    raw = reopen()[sel[:ndim]] if sel else reopen()[()]
                return _clean_strings(np.asarray(raw, dtype=object))

            fixed = string_info is None or string_info.length is not None
            return ArrayNode(key=key, metadata=metadata, source_path=h5path, dtype=np.dtype(object), shape=shape, read=read_str,
                             string_width=base.itemsize if fixed else sampled_string_width(read_str, shape))
        special = interpret_dataset(self, ds, key, h5path, metadata)
        if special is not None:  # variable-length sequences, ... (readers/hdf5_groups.py)
            return special
        if h5py.check_vlen_dtype(dtype) is not None:
            return skip("variable-length sequences (ragged arrays) are not supported", dtype=str(dtype))
        if h5py.check_ref_dtype(dtype) is not None:
            return skip("HDF5 object/region references are not supported", dtype=str(dtype))
        if base.kind not in "biufc" or (base.kind == "f" and base.itemsize > 8) or base.itemsize > 16:
            return skip(f"datatype {dtype} has no Zarr equivalent")
        enum = h5py.check_enum_dtype(dtype)
        if enum is not None:
            metadata.setdefault("enum", {str(k): int(v) for k, v in enum.items()})
        native = base.newbyteorder("<") if base.byteorder == ">" else base  # big-endian sources become little-endian
        direct = DirectChunks.for_dataset(ds, lock, reopen)

        def read(sel: tuple[slice, ...]) -> np.ndarray:
            if direct is not None and sel:
                with contextlib.suppress(NotDirect):
                    return np.asarray(direct.read(sel), dtype=native, order="C")  # decoded outside the h5py lock
            with lock:
                data = reopen()[sel[:ndim]] if ndim else reopen()[()]
            return np.asarray(data, dtype=native, order="C")

        try:
            fill = ds.fillvalue if not dtype.subdtype else None
        except RuntimeError:  # "fill value is undefined" in some old files
            fill = None
        return ArrayNode(
            key=key,
            metadata=metadata,
            source_path=h5path,
            dtype=native,
            shape=shape,
            read=decoded_once(read, shape, ds.chunks, native.itemsize, self.chunks_decoded, h5path) if not extra_shape else read,
            source_chunks=(tuple(ds.chunks) + tuple(extra_shape)) if ds.chunks else None,
            # (as numpy has it: zarr writes NaN and infinities as "NaN", "-Infinity"; JSON's null became 0)
            fill_value=(fill.item() if isinstance(fill, np.generic) else fill) if fill is not None and native.kind != "c" else None,
            constant=unwritten(ds, lock, reopen, native) if not extra_shape else None,
        )

    def _complex(self, ds: Any, key: str, h5path: str, metadata: dict[str, Any], pair: tuple[str, str, np.dtype]) -> Node:
        """A real/imaginary compound of any rank as a complex array (publisher/readers/compound.py)."""
        reopen, ndim, lock = self._reopener(ds), ds.ndim, self.lock

        def read(sel: tuple[slice, ...]) -> np.ndarray:
            with lock:
                data = reopen()[sel[:ndim]] if ndim else reopen()[()]
            return to_complex(np.asarray(data), pair)

        metadata.setdefault("complex_from", {"real": pair[0], "imag": pair[1]})
        return ArrayNode(key=key, metadata=metadata, source_path=h5path, dtype=pair[2], shape=tuple(ds.shape), read=read,
                         source_chunks=tuple(ds.chunks) if ds.chunks else None)

    def _structured(self, ds: Any, key: str, h5path: str, metadata: dict[str, Any]) -> Node:
        """An N-D compound as a structured array (Tiled's ``StructDtype``), packed and little-endian
        (readers/compound.py): nested compounds and sub-array fields included, values bit-exact."""
        try:
            dtype = packed(ds.dtype)
        except ValueError as exc:
            return SkippedNode(key=key, source_path=h5path, reason=f"compound dataset of rank {ds.ndim} with a {exc}")
        reopen, lock = self._reopener(ds), self.lock

        def read(sel: tuple[slice, ...]) -> np.ndarray:
            with lock:
                data = reopen()[sel] if sel else reopen()[()]
            return repacked(np.asarray(data), dtype)

        try:
            fill = repacked(np.asarray(ds.fillvalue).reshape(-1)[:1], dtype)[0]
        except (RuntimeError, TypeError, ValueError):  # undefined in some old files
            fill = np.zeros((), dtype)[()]
        return ArrayNode(key=key, metadata=metadata, source_path=h5path, dtype=dtype, shape=tuple(ds.shape), read=read,
                         source_chunks=tuple(ds.chunks) if ds.chunks else None, fill_value=fill)

    def _compound(self, ds: Any, key: str, h5path: str, metadata: dict[str, Any]) -> Node:
        from .tables import sampled_row_bytes, structured_to_batch

        if ds.ndim > 1:
            return self._structured(ds, key, h5path, metadata)
        n = int(ds.shape[0]) if ds.ndim else 1
        try:
            with self.lock:
                rows = batch_rows(sampled_row_bytes(lambda a, b: ds[a:b], n, ds.dtype) if ds.ndim else ds.dtype.itemsize)
                head = ds[: min(1000, rows)] if ds.ndim else ds[()].reshape(1)
            schema = structured_to_batch(np.asarray(head)).schema  # from real rows: object fields need values
        except UnsupportedError as exc:
            return SkippedNode(key=key, source_path=h5path, reason=str(exc))
        lock = self.lock
        reopen, ndim = self._reopener(ds), ds.ndim

        def batches() -> Iterator[Any]:
            for start in range(0, n, rows):
                with lock:
                    block = reopen()[start : start + rows] if ndim else reopen()[()].reshape(1)
                yield structured_to_batch(np.asarray(block))

        return TableNode(key=key, metadata=metadata, source_path=h5path, schema=schema, batches=batches, num_rows=n)


@register_reader
class HDF5Reader(Reader):
    name = "hdf5"
    alone = True  # (external links, virtual datasets of other files and external storage say so: ``others``)
    requires = ("h5py", "hdf5plugin")
    extensions = (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5", ".nexus", ".nx", ".hdf5plugin", ".h5ad", ".h5mu", ".emd", ".hspy")
    magic = (HDF5_MAGIC,)
    Options = HDF5Options

    @classmethod
    def magic_matches(cls, head: bytes) -> bool:
        """The superblock may follow a user block of 512 * 2**k bytes (MuData's .h5mu starts with a
        512-byte text header), so the signature is looked for at each such offset within ``head``."""
        return any(head[at : at + len(HDF5_MAGIC)] == HDF5_MAGIC for at in (0, 512, 1024, 2048))

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: HDF5Options) -> Iterator[Node]:  # type: ignore[override]
        import h5py
        import hdf5plugin  # noqa: F401  (registers bitshuffle, LZ4, Blosc, Zstd, ... filters)

        try:
            # default slot count: a large one costs every open dataset its own big hash table
            f = h5py.File(path, "r", rdcc_nbytes=options.chunk_cache_bytes, locking=False)
        except OSError as exc:
            raise SourceError(f"{path}: not a readable HDF5 file: {exc}") from exc
        try:
            walker = _Walker(f, path, options, threading.Lock(), self)
            root = walker.group(f, key, "")
            root.source_path = ""
            yield root
        finally:
            f.close()


os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
