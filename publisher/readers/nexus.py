"""Dimension names for the arrays of a group, so that ``xarray.open_zarr`` opens it labelled.

NXdata groups follow NeXus: ``signal`` and ``axes`` (group attributes, or the older
``signal=1`` / ``axes="x:y"`` dataset attributes) and ``AXISNAME_indices``. Other arrays get
names of their own (``{name}_dim_{i}``). A final pass guarantees that one dimension
name never has two sizes, which xarray would refuse.

An NXdata group whose published children are all arrays is then labelled ``xarray_dataset``
by Tiled's rules, so the tiled client ``read()``s it as ``xarray.open_zarr`` opens it: its
metadata and each array's gain ``attrs`` (the Zarr attributes, kept beside the searchable keys),
an array indexing its own dimension is an ``xarray_coord``, the others ``xarray_data_var``;
subgroups stay children, reached by key, as a NetCDF-4 file's groups. An object an NXdata group
links (hard or soft) is published inside it (:func:`canonical_paths`), the others' paths as links.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ..nodes import ArrayNode, ContainerNode, LinkNode, SkippedNode
from ..structures import XARRAY_COORD, XARRAY_DATA_VAR, XARRAY_DATASET


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [p.strip() for p in re.split(r"[:,\s]+", value) if p.strip()] if (":" in value or "," in value) else [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def unnamed(attrs: dict[str, Any], hidden: set[str]) -> dict[str, Any]:
    """A group's NeXus attributes without the names of its ``hidden`` children (readable by
    others than the group's readers): ``signal`` and ``auxiliary_signals`` leave them out, ``axes``
    says "." (no axis) in their place, their ``AXISNAME_indices`` go. A public NXdata group named
    its private signal to everyone (its metadata, the index, its Zarr attributes)."""
    if not hidden:
        return attrs
    out = {k: v for k, v in attrs.items() if not (k.endswith("_indices") and k.removesuffix("_indices") in hidden)}
    if "signal" in out and set(_names(out["signal"])) & hidden:
        del out["signal"]
    if "auxiliary_signals" in out:
        out["auxiliary_signals"] = [n for n in _names(out["auxiliary_signals"]) if n not in hidden]
    if "axes" in out and set(_names(out["axes"])) & hidden:
        out["axes"] = ["." if n in hidden else n for n in _names(out["axes"])]
    return out


def _ints(value: Any) -> list[int] | None:
    if isinstance(value, int):
        return [value]
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return value
    return None


def _signal(group: ContainerNode, arrays: dict[str, ArrayNode]) -> ArrayNode | None:
    names = _names(group.metadata.get("signal"))
    if names and names[0] in arrays:
        return arrays[names[0]]
    for array in arrays.values():  # NeXus v1: the signal dataset carries signal=1
        if str(array.metadata.get("signal")) == "1":
            return array
    return None


def _nxdata_dims(group: ContainerNode, arrays: dict[str, ArrayNode]) -> None:
    signal = _signal(group, arrays)
    if signal is None or not signal.shape:
        return
    rank = len(signal.shape)
    axes = _names(group.metadata.get("axes")) or _names(signal.metadata.get("axes"))
    axes = (axes + ["."] * rank)[:rank]
    dims = [a if a and a != "." else f"dim_{i}" for i, a in enumerate(axes)]
    for i, axis in enumerate(axes):
        if axis == "." or axis not in arrays:
            continue
        coord = arrays[axis]
        indices = _ints(group.metadata.get(f"{axis}_indices"))
        if len(coord.shape) == 1 and coord.shape[0] == signal.shape[i]:
            coord.dims = [dims[i]]
            continue
        dims[i] = f"{axis}_dim" if dims[i] == axis else dims[i]  # the coordinate cannot index this dimension
        if indices and len(indices) == len(coord.shape) and all(
            0 <= j < rank and signal.shape[j] == n for j, n in zip(indices, coord.shape)
        ):
            coord.dims = None  # set below, once every signal dim has its final name
            coord.notes["_indices"] = indices
    signal.dims = list(dims)
    for name, array in arrays.items():
        if array.dims is None and "_indices" not in array.notes:  # any field may declare AXISNAME_indices
            indices = _ints(group.metadata.get(f"{name}_indices"))
            if indices and len(indices) == len(array.shape) and all(
                0 <= j < rank and signal.shape[j] == n for j, n in zip(indices, array.shape)
            ) and name not in [dims[j] for j in indices]:
                array.notes["_indices"] = indices
        indices = array.notes.pop("_indices", None)
        if indices is not None:
            array.dims = [dims[j] for j in indices]
        elif array.dims is None and tuple(array.shape) == tuple(signal.shape):
            array.dims = list(dims)  # errors and other same-shape fields share the signal's dims
        elif array.dims is None and len(array.shape) == 1 and name in dims and array.shape[0] == signal.shape[dims.index(name)]:
            array.dims = [name]


def assign_dims(group: ContainerNode) -> None:
    """Give every array child of ``group`` dimension names that xarray accepts together."""
    arrays = {c.key: c for c in group.children if isinstance(c, ArrayNode)}
    if "NXdata" in group.specs:
        _nxdata_dims(group, arrays)
    sizes: dict[str, int] = {}
    for name, array in arrays.items():
        dims = array.dims
        consistent = (
            dims is not None
            and len(dims) == len(array.shape)
            and all(sizes.get(d, n) == n for d, n in zip(dims, array.shape))
            and (name not in dims or dims == [name])  # a variable named like a dim must index it
        )
        if not consistent:
            dims = [f"{name}_dim_{i}" for i in range(len(array.shape))]
        array.dims = list(dims)
        for d, n in zip(dims, array.shape):
            sizes[d] = n


def label_dataset(group: ContainerNode) -> None:
    """Label an NXdata group ``xarray_dataset`` when it follows Tiled's rules (see the module)."""
    published = [c for c in group.children if not isinstance(c, (LinkNode, SkippedNode))]
    arrays = [c for c in published if isinstance(c, ArrayNode)]
    groups = [c.key for c in published if isinstance(c, ContainerNode)]
    if "NXdata" not in group.specs or len(arrays) + len(groups) != len(published) or not any(a.shape for a in arrays):
        return  # a table is no variable; only 0-d variables the client cannot read
    if any("coordinates" in (a.attrs if a.attrs is not None else a.metadata) for a in arrays):
        return  # xarray would take coordinates from it: left to open_zarr
    for node in (group, *arrays):
        node.attrs = dict(node.attrs if node.attrs is not None else node.metadata)
        node.metadata["attrs"] = dict(node.attrs)
    for array in arrays:
        array.specs.append(XARRAY_COORD if array.dims == [array.key] else XARRAY_DATA_VAR)
    group.specs.append(XARRAY_DATASET)
    if groups:  # the server inlines the variables, so the client's read() does not meet the groups
        group.notes["xarray_groups"] = groups


def canonical_paths(f: Any, identity: Callable[[Any], tuple[int, int]]) -> dict[tuple[int, int], str]:
    """Where each hard-linked object of the file ``f`` is published (by its ``identity``): inside
    an NXdata group if one links it, by a hard link or a soft one (so that group opens as a
    complete labelled dataset: NeXus files often soft-link their axes from the instrument's
    groups), else its first path."""
    from h5py import h5l

    names: list[str] = []
    soft: list[str] = []

    def visit(name: bytes, info: Any) -> None:
        # (h5py's visititems_links looks each name up again from the root, level by level: 12 s
        # for a file of 1,000 nested groups, O(depth²); the links' own info says their kind)
        text = f._d(name)
        if info.type == h5l.TYPE_HARD:
            names.append(text)
        elif info.type == h5l.TYPE_SOFT:
            soft.append(text)

    f.id.links.visit(visit, info=True)
    paths: dict[tuple[int, int], list[str]] = {}
    for name in names:  # resolved after the visit: h5py cannot open objects inside its callback
        with contextlib.suppress(KeyError, OSError, RuntimeError):
            paths.setdefault(identity(f[name]), []).append("/" + name)
    linked: dict[tuple[int, int], list[str]] = {}  # soft links from NXdata groups, by what they reach
    for name in soft:
        with contextlib.suppress(KeyError, OSError, RuntimeError):  # (dangling, or a loop: said where the group is read)
            if _is_nxdata(f, "/" + name.rpartition("/")[0]):
                linked.setdefault(identity(f[name]), []).append("/" + name)
    canonical = {}
    for ident, candidates in paths.items():
        in_nxdata = [p for p in candidates if _is_nxdata(f, p.rpartition("/")[0] or "/")] or linked.get(ident, [])
        canonical[ident] = (in_nxdata or candidates)[0]
    return canonical


def _is_nxdata(f: Any, group_path: str) -> bool:
    value = f[group_path].attrs.get("NX_class")
    value = value.reshape(-1)[0] if isinstance(value, np.ndarray) and value.size else value
    return (value.decode(errors="replace") if isinstance(value, bytes) else str(value)) == "NXdata"
