"""Ragged HDF5 data as Tiled's ``awkward`` family (registered with :mod:`.hdf5_groups`).

* a variable-length dataset of any rank (vlen numeric, big-endian included, vlen of fixed
  strings, decoded as UTF-8, or of a compound of those, as records): ``shape * var * dtype``;
  a vlen of HDF5 time types stays skipped (h5py cannot map the type, the walker says why);
* an AnnData ``encoding-type=awkward-array`` group: already awkward buffers, read with
  ``ak.from_buffers(form, length, group datasets)``;
* a NeXus ``NXevent_data`` group: kept as a folder of its datasets, plus one awkward child
  :data:`EVENTS_KEY`, one record per pulse (``event_time_zero`` and the pulse's other per-pulse
  values, ``events``: the list of that pulse's events with ``event_time_offset``, ``event_id``
  and every other per-event dataset), cut by ``event_index``;
* a group of 1-D datasets of different lengths under the rule ``ragged: true``
  (:func:`group_as_ragged`): one record of lists.

awkward is imported when the data is read, never at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..nodes import ArrayNode, AwkwardNode, ContainerNode, LinkNode, Node
from ..jsonable import attrs_to_json
from . import awkward_slices
from .hdf5_groups import DATASETS, GROUPS

#: The awkward child added to an ``NXevent_data`` group: its events, one record per pulse.
EVENTS_KEY = "events_by_pulse"
#: Events read and written at once (one Parquet row group): about 16 bytes each in memory.
EVENTS_PER_PIECE = 4_000_000
#: Rows of a variable-length dataset read and written at once (one Parquet row group), at most;
#: fewer when they are long: pieces of about :data:`PIECE_BYTES`, by the rows read so far.
ROWS_PER_PIECE = 65_536
PIECE_BYTES = 32 * 2**20
#: The first piece's rows, to learn how long they are; each next piece at most GROWTH times the
#: last, up to what the rows seen so far say (1,024 rows at first: 20 rows of 32 MB were read at
#: once, 2.8 GB of memory, and 1,024 of them would have been 140 GB).
FIRST_PIECE_ROWS = 16
GROWTH = 8


def _attr_text(value: Any) -> str:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _layout(values: np.ndarray) -> Any:
    """An awkward layout of a NumPy array; fixed-width bytes become UTF-8 strings (as the array
    reader decodes them), big-endian numbers native."""
    import awkward as ak

    if values.dtype.names:  # a compound: a record of its fields
        names = list(values.dtype.names)
        return ak.contents.RecordArray([_layout(np.ascontiguousarray(values[n])) for n in names], names, length=len(values))
    if values.dtype.kind == "S":
        text = [v.decode("utf-8", errors="replace") for v in values.reshape(-1).tolist()]
        flat = ak.to_layout(ak.Array(text) if text else ak.Array(np.empty(0, dtype="U1")))
        return ak.to_layout(ak.unflatten(flat, values.shape[-1], axis=0)) if values.ndim > 1 else flat
    if values.dtype.byteorder == ">":
        values = values.astype(values.dtype.newbyteorder("<"))
    return ak.to_layout(values)


def _element(values: Any, base: np.dtype) -> np.ndarray:
    """One vlen element. h5py (3.16) hands a big-endian vlen's elements over as the file's bytes
    labelled native (PyTables' ``vlunicode_endian.h5``): they are reinterpreted, not converted."""
    values = np.asarray(values)
    if base.byteorder == ">" and values.dtype.byteorder != ">" and values.dtype.itemsize == base.itemsize:
        return values.view(base)
    return values.astype(base, copy=False)


def vlen_to_awkward(values: np.ndarray, base: np.dtype) -> Any:
    """An object array of 1-D arrays (h5py's vlen read) as ``shape * var * base``."""
    import awkward as ak

    flat = values.reshape(-1)
    counts = np.fromiter((len(v) for v in flat), dtype=np.int64, count=flat.size)
    offsets = np.zeros(flat.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    content = np.concatenate([_element(v, base) for v in flat]) if flat.size else np.empty(0, dtype=base)
    layout = ak.contents.ListOffsetArray(ak.index.Index64(offsets), _layout(content))
    for size in reversed(values.shape[1:]):
        layout = ak.contents.RegularArray(layout, size, zeros_length=0)
    return ak.Array(layout)


def _storable(dtype: np.dtype) -> bool:
    """Numbers, fixed strings, and compounds of them (sub-arrays too): what Parquet can hold."""
    if dtype.names:
        return all(_storable(dtype.fields[n][0]) for n in dtype.names)
    base = dtype.subdtype[0] if dtype.subdtype else dtype
    return base.kind in "biuS" or (base.kind == "f" and base.itemsize <= 8)


def _by_bytes(read_rows: Callable[[int, int], Any], length: int) -> Iterator[Any]:
    """Rows ``0:length`` as awkward arrays of about :data:`PIECE_BYTES` each, sized by those read
    so far (65,536 rows of 1,000 values each were half a gigabyte, and the file one piece)."""
    start, rows, seen_rows, seen_bytes = 0, min(FIRST_PIECE_ROWS, ROWS_PER_PIECE), 0, 0
    while True:
        piece = read_rows(start, min(length, start + rows))
        yield piece
        start += rows
        if start >= length:
            return
        seen_rows, seen_bytes = seen_rows + len(piece), seen_bytes + piece.layout.nbytes
        rows = max(1, min(ROWS_PER_PIECE, GROWTH * len(piece), PIECE_BYTES * seen_rows // max(seen_bytes, 1)))


def _vlen_dataset(walker: Any, ds: Any, key: str, h5path: str, metadata: dict[str, Any]) -> Node | None:
    import h5py

    base = h5py.check_vlen_dtype(ds.dtype)
    if base is None or h5py.check_string_dtype(ds.dtype) is not None:
        return None
    base = np.dtype(base)
    if not _storable(base):
        return None  # the walker skips it with its reason
    reopen, lock, shape = walker._reopener(ds), walker.lock, tuple(ds.shape)

    def read(rows: slice = slice(None)) -> Any:
        with lock:
            raw = reopen()[rows] if shape else reopen()[()]
        values = np.empty(raw.shape if shape else (1,), dtype=object)
        if shape:
            values[...] = raw
        else:  # a scalar vlen: one list
            values[0] = raw
        return vlen_to_awkward(values, base)

    def pieces() -> Iterator[Any]:
        if not shape:
            yield read()
            return
        yield from _by_bytes(lambda start, stop: read(slice(start, stop)), shape[0])

    metadata = {**metadata, "ragged_from": {"hdf5": "vlen", "shape": list(shape), "dtype": base.str}}
    return AwkwardNode(key=key, metadata=metadata, source_path=h5path, length=shape[0] if shape else 1, read=read, pieces=pieces)


def _anndata_awkward(walker: Any, group: Any, key: str, h5path: str) -> Node | None:
    import h5py

    attrs = group.attrs
    if _attr_text(attrs.get("encoding-type", "")) != "awkward-array" or "form" not in attrs or "length" not in attrs:
        return None
    if not all(isinstance(group.get(name, getlink=True), h5py.HardLink) and isinstance(group[name], h5py.Dataset) for name in group):
        return None
    form, length = _attr_text(attrs["form"]), int(np.asarray(attrs["length"]).reshape(-1)[0])
    for member in group.values():  # its buffers are read here, not by the walker's dataset()
        walker.reads(member)
    f, name, lock = group.file, group.name, walker.lock

    def read() -> Any:
        import awkward as ak

        with lock:
            container = {k: np.asarray(ds[()]) for k, ds in f[name].items()}
        return ak.from_buffers(form, length, container)

    def read_buffer(buffer: str, start: int, stop: int) -> np.ndarray:
        """Values ``start:stop`` of the buffer, flat (unpacked arrays' buffers may be N-D: a
        NumpyArray's inner shape; ``from_buffers`` reads them flat)."""
        with lock:
            ds = f[name][buffer]
            if ds.ndim <= 1:
                return np.asarray(ds[start:stop])
            per = int(np.prod(ds.shape[1:]))
            if per and start % per == 0 and stop % per == 0:
                return np.asarray(ds[start // per : stop // per]).reshape(-1)
            return np.asarray(ds[()]).reshape(-1)[start:stop]

    def pieces() -> Iterator[Any]:
        """Rows a piece at a time, each buffer read for those rows only (readers/awkward_slices.py);
        a form with a node that cannot be read by range (unions, bit masks): whole."""
        import awkward as ak

        parsed = ak.forms.from_json(form)
        if not length or not awkward_slices.sliceable(parsed):
            yield read()
            return
        yield from _by_bytes(lambda start, stop: ak.Array(awkward_slices.rows(parsed, start, stop, read_buffer)), length)

    metadata = {k: v for k, v in attrs_to_json(attrs).items() if k not in ("form", "length")}
    return AwkwardNode(key=key, metadata=metadata, source_path=h5path, length=length, read=read, pieces=pieces)


#: The NXevent_data fields the NeXus definition gives one value an event.
PER_EVENT = ("event_time_offset", "event_id", "pulse_height")


def _event_data(walker: Any, group: Any, key: str, h5path: str) -> Node | None:
    """The ``NXevent_data`` group as the walker publishes it, plus :data:`EVENTS_KEY`."""
    import h5py

    busy: set[str] = walker.__dict__.setdefault("_event_groups", set())
    if h5path in busy or _attr_text(group.attrs.get("NX_class", "")) != "NXevent_data":
        return None
    datasets = {n: group[n] for n in group if isinstance(group.get(n, getlink=True), h5py.HardLink) and isinstance(group[n], h5py.Dataset)}
    for member in datasets.values():  # (read here, not by the walker's dataset())
        walker.reads(member)
    index, offsets = datasets.get("event_index"), datasets.get("event_time_offset")
    busy.add(h5path)
    try:
        node = walker.group(group, key, h5path)  # the plain folder of datasets (this interpreter steps aside)
    finally:
        busy.discard(h5path)
    if index is None or offsets is None or index.ndim != 1 or offsets.ndim != 1 or not isinstance(node, ContainerNode):
        return node
    if node.child(EVENTS_KEY) is not None:
        node.warn(f"{h5path}: a child is already named {EVENTS_KEY!r}: the events are not published per pulse")
        return node
    n_pulses, n_events = index.shape[0], offsets.shape[0]
    wrong = {n: datasets[n].shape for n in PER_EVENT if n in datasets and datasets[n].shape != (n_events,)}
    if wrong:  # (an event_id of as many values as pulses was published as one a pulse)
        node.warn(f"{h5path}: {', '.join(f'{n} has shape {list(shape)}' for n, shape in wrong.items())}, "
                  f"event_time_offset {n_events} events: the events are not published per pulse")
        return node
    per_pulse = [n for n, d in datasets.items() if d.ndim == 1 and d.shape[0] == n_pulses and n != "event_index" and d.dtype.kind in "biuf"]
    per_event = [n for n, d in datasets.items() if d.ndim == 1 and d.shape[0] == n_events and d.dtype.kind in "biuf"]
    if n_pulses == n_events:  # ambiguous lengths: only the names the definition gives are per event
        per_event = [n for n in per_event if n in PER_EVENT]
        per_pulse = [n for n in per_pulse if n not in per_event]
    if not _index_is_ordered(index, n_events, walker.lock):
        node.warn(f"{h5path}: event_index is not a non-decreasing list of event positions from 0: the events are not published per pulse")
        return node
    f, name, lock = group.file, group.name, walker.lock
    # pulses a piece holds at most: with few events a pulse, the per-pulse values are the piece
    pulse_bytes = 16 + sum(datasets[n].dtype.itemsize for n in per_pulse)
    most_pulses = max(1, PIECE_BYTES // pulse_bytes)

    def bounds(p0: int, p1: int) -> np.ndarray:
        """Where pulses ``p0`` to ``p1`` (included) start in the events; the end for ``n_pulses``."""
        with lock:
            starts = np.asarray(f[name]["event_index"][p0 : min(p1 + 1, n_pulses)], dtype=np.int64)
        return np.append(starts, n_events) if p1 >= n_pulses else starts

    def piece(p0: int, p1: int, cuts: np.ndarray | None = None) -> Any:
        """Pulses ``p0:p1`` with their events (only those rows are read)."""
        import awkward as ak

        cuts = bounds(p0, p1) if cuts is None else cuts
        e0, e1 = int(cuts[0]), int(cuts[-1])
        with lock:
            g = f[name]
            pulse = {n: _layout(np.asarray(g[n][p0:p1])) for n in per_pulse}
            event = {n: _layout(np.asarray(g[n][e0:e1])) for n in per_event}
        events = ak.contents.ListOffsetArray(ak.index.Index64(cuts - e0), ak.contents.RecordArray(list(event.values()), list(event), length=e1 - e0))
        return ak.Array(ak.contents.RecordArray([*pulse.values(), events], [*pulse, "events"], length=p1 - p0))

    def pieces() -> Iterator[Any]:
        """Runs of whole pulses of about :data:`EVENTS_PER_PIECE` events and at most ``most_pulses``
        (at least one pulse); ``event_index`` read a run at a time, never whole."""
        if not n_pulses:
            yield piece(0, 0)
        p0 = 0
        while p0 < n_pulses:
            cuts = bounds(p0, p0 + most_pulses)
            k = max(1, int(np.searchsorted(cuts, cuts[0] + EVENTS_PER_PIECE, side="right")) - 1)
            k = min(k, len(cuts) - 1)
            yield piece(p0, p0 + k, cuts[: k + 1])
            p0 += k

    node.children.append(AwkwardNode(key=EVENTS_KEY, source_path=f"{h5path.rstrip('/')}/{EVENTS_KEY}", length=n_pulses,
                                     read=lambda: piece(0, n_pulses), pieces=pieces,
                                     metadata={"ragged_from": {"nexus": "NXevent_data", "per_pulse": per_pulse, "per_event": per_event}}))
    return node


#: ``event_index`` values checked at once.
INDEX_BLOCK = 2**20


def _index_is_ordered(index: Any, n_events: int, lock: Any) -> bool:
    """``event_index`` starts at 0, never decreases and stays within the events: checked a block
    at a time (read whole, 100 million pulses were 800 MB, kept for the whole build)."""
    last = 0
    for start in range(0, index.shape[0], INDEX_BLOCK):
        with lock:
            block = np.asarray(index[start : start + INDEX_BLOCK], dtype=np.int64)
        if (start == 0 and block[0] != 0) or block[0] < last or np.any(np.diff(block) < 0) or block[-1] > n_events:
            return False
        last = int(block[-1])
    return True


def group_as_ragged(node: ContainerNode) -> AwkwardNode:
    """The rule ``ragged: true``: a group of 1-D datasets (of any lengths) as one record whose
    fields are the datasets' values (``1 * {a: var * int32, b: var * float64}``)."""
    from ..errors import RuleError

    resolved = [c.target if isinstance(c, LinkNode) and isinstance(c.target, ArrayNode) else c for c in node.children]
    bad = [c.key for c in resolved if not isinstance(c, ArrayNode) or len(c.shape) != 1 or c.read is None]
    if bad or not resolved:
        raise RuleError(f"rule 'ragged: true' needs a group of 1-D datasets: {'not 1-D datasets: ' + ', '.join(bad) if bad else 'no datasets'}")
    columns = {c.key: c for c in node.children}

    def read() -> Any:
        import awkward as ak

        fields = []
        for child in resolved:
            assert isinstance(child, ArrayNode) and child.read is not None
            values = np.asarray(child.read((slice(None),)))
            fields.append(ak.to_layout(ak.Array(values.tolist())) if values.dtype.kind == "O" else _layout(values))
        lists = [ak.contents.ListOffsetArray(ak.index.Index64(np.array([0, len(f)], dtype=np.int64)), f) for f in fields]
        return ak.Array(ak.contents.RecordArray(lists, list(columns), length=1))

    metadata = dict(node.metadata)
    metadata["columns"] = {k: c.metadata for k, c in columns.items() if c.metadata}
    return AwkwardNode(key=node.key, metadata=metadata, specs=list(node.specs), source_path=node.source_path, notes=node.notes,
                       length=1, read=read)


GROUPS.extend([_anndata_awkward, _event_data])
DATASETS.append(_vlen_dataset)
