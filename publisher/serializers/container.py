"""Container serializers: a subtree as HDF5 (groups, datasets) or as Tiled's JSON outline.

What Tiled offers for containers (``tiled/serialization/container.py``): ``application/x-hdf5``
(containers and tables as groups, arrays and table columns as datasets, metadata as
attributes) and ``application/json`` (``{"contents": ..., "metadata": ...}`` per node, no data).
Two differences, on purpose: a table column is its own 1-D dataset (Tiled 0.2.20 writes the
whole table into every column's dataset, and fails on string columns), and metadata that HDF5
attributes cannot hold (nested mappings, mixed lists, None) is written as its JSON text
(Tiled answers 500 for it).

The input is a :class:`Tree` whose leaves load their data only when they are written, so the
HDF5 file is built holding at most one array or table besides the file itself.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from ..access.containers import Tree
from .base import register


def _attrs(target: Any, metadata: dict[str, Any]) -> None:
    """Metadata as HDF5 attributes; what h5py cannot store as it is goes in as JSON text. A
    dataset's ``attrs`` (Tiled's layout for xarray datasets) are the attributes themselves."""
    if isinstance(metadata.get("attrs"), dict):
        metadata = {**metadata["attrs"], **{k: v for k, v in metadata.items() if k != "attrs"}}
    for key, value in metadata.items():
        try:
            if value is None or isinstance(value, dict):
                raise TypeError
            target.attrs[key] = value
        except (TypeError, ValueError):
            target.attrs[key] = json.dumps(value, default=str, separators=(",", ":"))


def _dataset_values(values: Any) -> Any:
    """numpy values h5py can write: unicode and object strings become UTF-8 variable-length strings,
    times their integer ticks."""
    import h5py
    import numpy as np

    if values.dtype.kind == "U" or values.dtype.kind == "O":
        return np.array(["" if v is None else str(v) for v in values.ravel()], dtype=h5py.string_dtype()).reshape(values.shape)
    if values.dtype.kind in "mM":  # HDF5 has no time type: the integer ticks, as for table columns
        return values.astype(np.int64)
    return values


def _column(column: Any) -> Any:
    """A pyarrow column as numpy for HDF5: strings as text, timestamps as their integer ticks."""
    import numpy as np
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return np.array(["" if v is None else v for v in column.to_pylist()], dtype=object)
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type) or pa.types.is_duration(column.type):
        return column.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return column.to_numpy(zero_copy_only=False)


def _awkward_group(group: Any, array: Any) -> None:
    """An awkward array as AnnData writes one (``encoding-type=awkward-array``): its buffers as
    datasets ``{form_key}-{attribute}``, the form (JSON) and length as attributes; Skyshelf's
    reader and ``ak.from_buffers`` read it back."""
    import awkward as ak

    form, length, container = ak.to_buffers(array)
    group.attrs.update({"encoding-type": "awkward-array", "encoding-version": "0.1.0", "form": form.to_json(), "length": length})
    for key, buffer in container.items():
        group.create_dataset(key, data=buffer)


def _sparse_group(group: Any, coords: Any, data: Any, shape: tuple[int, ...]) -> None:
    """A sparse array as AnnData writes a 2-D one (``encoding-type=csr_matrix``: data, indices,
    indptr and a ``shape`` attribute; Skyshelf's reader and anndata read it back), or, in other
    ranks, its COO ``coords (ndim, nnz)`` and ``data`` with a ``shape`` attribute (Tiled's names)."""
    import numpy as np

    group.attrs["shape"] = list(shape)
    if len(shape) == 2:  # coordinates come sorted row-major
        group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0"})
        group.create_dataset("indices", data=coords[1])
        group.create_dataset("indptr", data=np.concatenate([[0], np.cumsum(np.bincount(coords[0], minlength=shape[0]))]))
    else:
        group.create_dataset("coords", data=coords)
    group.create_dataset("data", data=data)


def walk(tree: Tree, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Tree]]:
    """Every node below ``tree`` with its key path, parents before children."""
    for key, child in tree.children.items():
        yield prefix + (key,), child
        if child.family == "container":
            yield from walk(child, prefix + (key,))


@register("container", "application/x-hdf5", ("h5", "hdf5"), ".h5")
def to_hdf5(tree: Tree, **_: Any) -> bytes:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as file:
        _attrs(file, tree.metadata)
        for path, node in walk(tree):
            name = "/".join(path)
            if node.family == "container":
                _attrs(file.create_group(name), node.metadata)
            elif node.family == "array":
                assert node.load is not None
                _attrs(file.create_dataset(name, data=_dataset_values(node.load())), node.metadata)
            elif node.family == "awkward":
                assert node.load is not None
                _awkward_group(file.create_group(name), node.load())
                _attrs(file[name], node.metadata)
            elif node.family == "sparse":
                assert node.load is not None
                group = file.create_group(name)
                _attrs(group, node.metadata)
                _sparse_group(group, *node.load())
            else:  # a table: a group of 1-D column datasets
                assert node.load is not None
                group = file.create_group(name)
                _attrs(group, node.metadata)
                table = node.load()
                for column in table.column_names:
                    group.create_dataset(column, data=_dataset_values(_column(table.column(column))))
                del table
    return buffer.getvalue()


def _outline(tree: Tree) -> dict[str, Any]:
    if tree.family == "table":
        contents = {c: {"contents": {}, "metadata": {}} for c in tree.columns}
    else:
        contents = {k: _outline(v) for k, v in tree.children.items()}
    return {"contents": contents, "metadata": tree.metadata}


@register("container", "application/json", ("json",), ".json")
def to_json(tree: Tree, **_: Any) -> bytes:
    """Tiled's container JSON: each node's ``contents`` and ``metadata``, table columns as
    nodes, no data (ask the arrays and tables for that)."""
    return json.dumps(_outline(tree), separators=(",", ":"), default=str).encode()


@register("container", "application/vnd.apache.arrow.file", ("arrow", "feather"), ".arrow")
def to_arrow(tree: Tree, **_: Any) -> bytes:
    """An ``xarray_dataset``'s chosen variables as the columns of one Arrow table: what the tiled
    client's ``DatasetClient.read`` asks for (``field=``, repeated) for its 1-D variables of one
    length. Each variable is its own column (Tiled's ``to_dataframe`` would multiply variables of
    different dimensions into a product); anything else is a 400."""
    import pyarrow as pa

    from ..errors import BadRequest

    columns: dict[str, Any] = {}
    for key, node in tree.children.items():
        if node.family != "array" or node.load is None:
            raise BadRequest(f"{key!r} is a {node.family}: an Arrow table holds a dataset's arrays only (ask for them with field=)")
        values = node.load()
        if values.ndim > 1:
            raise BadRequest(f"{key!r} has {values.ndim} dimensions: an Arrow table holds 1-D variables (read it with array/full)")
        columns[key] = values.reshape(-1)
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise BadRequest(f"the variables {list(columns)} differ in length ({sorted(lengths)}): ask for variables of one length")
    table = pa.table({k: pa.array(list(v) if v.dtype.kind == "O" else v) for k, v in columns.items()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
