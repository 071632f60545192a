"""Arrays (one Lambda): ``array/full`` with ``slice``, ``array/block`` with ``block``.

Every answer is estimated from the selection's shape and the format before any data is read,
and refused past ``SKYSHELF_MAX_ANSWER_BYTES`` with advice (``publisher.limits``); an HTML
answer reads only the corner it shows. numpy and the Zarr chunk reader at import; codecs and
image libraries on first use.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote, urlencode

from aws_lambda_powertools.event_handler import Response

from publisher import limits, serializers
from publisher.access.arrays import PublishedArray, level_factors, preview_level, published_array
from publisher.errors import BadRequest
from publisher.formats import Entry
from publisher.structures import ArrayStructure, StructDtype

from . import common, http, zarr
from .data import answer, check
from .grammar import expected_shape, ints, parse_slice

#: The response header naming the range a PNG used (exposed to cross-origin pages by ``cors``).
RESCALE_HEADER = "X-Skyshelf-Rescale"
#: The response header naming the pyramid level a PNG was drawn from (0: the array itself).
LEVEL_HEADER = "X-Skyshelf-Level"


def rows(params: dict[str, list[str]], of: str) -> slice | None:
    """``slice=start:stop:step``: rows of a table or the top-level entries of an awkward array,
    spelled as ``array/full``'s one-dimensional slice (ours: Tiled selects no rows of either)."""
    text = common.one(params, "slice")
    sel = parse_slice(text)
    if not sel:
        return None
    if len(sel) != 1 or not isinstance(sel[0], slice):
        raise BadRequest(f"slice of {of} selects rows as start:stop:step (one dimension, e.g. slice=0:100), got {text!r}")
    return sel[0]


def checked(sel: tuple[Any, ...], shape: tuple[int, ...], of: str = "") -> tuple[Any, ...]:
    """``sel`` checked against ``shape`` before NumPy indexes with it (its IndexError would be a 500)."""
    if len(sel) > len(shape):
        raise BadRequest(f"slice has {len(sel)} dimensions; the data{of} has {len(shape)}")
    for s, n in zip(sel, shape):
        if isinstance(s, int) and not -n <= s < n:
            raise BadRequest(f"slice index {s} is out of range for a dimension of size {n}{of}")
    return sel


def selected_shape(sel: tuple[Any, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape ``array[sel]`` has, without reading it (integers drop their dimension)."""
    full = sel + (slice(None),) * (len(shape) - len(sel))
    return tuple(len(range(*s.indices(n))) for s, n in zip(full, shape) if isinstance(s, slice))


def narrowed(sel: tuple[Any, ...], shape: tuple[int, ...], window: tuple[slice, ...]) -> tuple[Any, ...]:
    """``sel`` followed by ``window`` (a selection in ``array[sel]``'s own indices) as one selection
    of the array, so only the window is read."""
    full, steps, out = sel + (slice(None),) * (len(shape) - len(sel)), iter(window), []
    for s, n in zip(full, shape):
        if isinstance(s, slice):
            r = range(*s.indices(n))[next(steps, slice(None))]
            # an empty range may start at -1 (a descending one), which a slice reads as the last index
            s = slice(r.start, r.stop if r.stop >= 0 else None, r.step) if r else slice(0, 0)
        out.append(s)
    return tuple(out)


def _fills(entry: Entry, array: PublishedArray) -> tuple[float, ...]:
    """Values that mean "no data", which a PNG leaves out of its scale and draws transparent:
    CF's ``_FillValue`` and ``missing_value``, and a Zarr fill value someone chose (not the
    default 0, which is a real value in a detector frame)."""
    metadata = entry.metadata or {}
    found = [metadata.get("_FillValue"), metadata.get("missing_value"), array.fill if array.fill not in (0, False, "") else None]
    out = []
    for value in found:
        for v in value if isinstance(value, list) else [value]:
            try:
                out.append(float(v))
            except (TypeError, ValueError):
                continue
    return tuple(out)


def _png_options(params: dict[str, list[str]]) -> dict[str, Any]:
    """``rescale=min,max``, ``colormap=``, ``scale=linear|log`` and ``max_size=``, checked before
    any data is read (a 400 naming the bad one, whatever the format); ``report`` collects the
    range a PNG used (:func:`rescale_header`)."""
    from publisher.serializers.png import png_check

    options: dict[str, Any] = {"report": {}}
    rescale = common.one(params, "rescale")
    if rescale:
        try:
            lo, hi = (float(v) for v in rescale.split(","))
        except ValueError:
            raise BadRequest(f"rescale must be min,max (two numbers), got {rescale!r}") from None
        options["rescale"] = (lo, hi)
    for name in ("colormap", "scale"):
        if common.one(params, name):  # empty: the default, as for rescale
            options[name] = common.one(params, name)
    if "max_size" in params:
        options["max_size"] = common.integer(params, "max_size", 1024, 1, 16384)
    png_check(**options)
    return options


def rescale_header(options: dict[str, Any]) -> dict[str, str]:
    """``X-Skyshelf-Rescale: min,max``: the range a PNG answer mapped onto its colormap (the
    automatic one when none was asked), so a page can show it."""
    used = options["report"].get("rescale")
    return {RESCALE_HEADER: used} if used else {}


def _array(path: str) -> tuple[Any, Entry, PublishedArray, Any]:
    """(catalog, entry, array, how to present values as the structure advertises them)."""
    catalog = common.catalog()
    entry = catalog.entry(path)
    if not isinstance(entry.structure, ArrayStructure):
        raise BadRequest(f"{path!r} is a {entry.family}, not an array")
    data_type = entry.structure.data_type
    struct = data_type.to_numpy_dtype() if isinstance(data_type, StructDtype) else None

    def advertised(data: Any) -> Any:  # variable-length strings go out as the fixed-width unicode the structure names
        if not hasattr(data, "dtype"):  # one element of a text array: Python's str (it had no dtype: a 500)
            import numpy as np

            data = np.asarray(data)
        if struct is not None and data.dtype != struct:  # Zarr holds a sub-array field as raw bytes: same layout
            return data.view(struct)
        if data_type.kind == "U" and (data.dtype.kind == "O" or (data.dtype.kind == "U" and data.dtype.itemsize != data_type.itemsize)):
            import numpy as np  # (asarray: a numpy str scalar's astype kept its own width, 4 bytes for 'a' of a <U3 array)

            return np.asarray(data, dtype=f"<U{max(data_type.itemsize // 4, 1)}")
        return data

    return catalog, entry, published_array(common.store(), entry.data_url), advertised


def _bound(entry: Entry, path: str, shape: tuple[int, ...], media_type: str, what: str) -> None:
    """Refuse before reading when the answer would take too much memory to build."""
    structure = entry.structure
    itemsize = max(structure.data_type.itemsize or 8, 1)
    first = [c[0] if c else 0 for c in structure.chunks or []]  # the first chunk, as an example
    advice = (f"ask for less: a slice (e.g. slice={','.join(f'0:{c}' for c in first)}), one block at a time "
              f"(array/block/{quote(path, safe='/')}?block={','.join('0' for _ in first)}), "
              "or a compact binary format (format=application/octet-stream or format=npy)")
    check(math.prod(shape) * itemsize, media_type, f"{what} of {path!r} (shape {list(shape)})", advice,
          factor=limits.array_factor(media_type, itemsize))


def _links(path: str, params: dict[str, list[str]], shape: tuple[int, ...], kind: str) -> dict[str, str]:
    """The selection in the formats that hold it whole (the HTML answer's links)."""
    keep = [(k, v) for k, values in params.items() if k not in ("format", "filename") for v in values]
    url = f"{common.base_url(app)}/array/full/{quote(path, safe='/')}?"
    image = kind in "biuf" and math.prod(shape) > 0 and len(shape) >= 1
    names = (["csv"] if len(shape) <= 2 else []) + ["json", "npy"]
    names += (["png"] if image and all(n == 1 for n in shape[:-2]) else []) + (["tiff"] if image else [])
    return {name: url + urlencode([*keep, ("format", name)]) for name in names}


def _preview(chosen: serializers.Serializer, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
    """The window an HTML answer shows (in the selection's indices), or None for other formats."""
    from publisher.serializers.array import html_window

    return html_window(len(shape)) if chosen.media_type == "text/html" else None


def _check_shape(params: dict[str, list[str]], shape: tuple[int, ...]) -> None:
    expected = expected_shape(common.one(params, "expected_shape"))
    if expected == () and shape != ():
        raise BadRequest(f"expected a scalar, the selection has shape {','.join(map(str, shape))}")
    if expected is not None and expected != shape:
        raise BadRequest(f"expected_shape {common.one(params, 'expected_shape')} does not match the shape {','.join(map(str, shape))}")


def _negotiate(params: dict[str, list[str]]) -> serializers.Serializer:
    return serializers.choose("array", common.one(params, "format"), common.header(app, "accept"), "application/octet-stream")


def _sparse_elsewhere(route: str, path: str, params: dict[str, list[str]]) -> Response | None:
    """A sparse node is served by the tables function (it needs pyarrow, which this function
    does not ship): a 307 to ``sparse/<route>`` with the same query (the tiled client follows it)."""
    if common.catalog().entry(path).family != "sparse":
        return None
    query = urlencode([(k, v) for k, values in params.items() for v in values])
    location = f"{common.base_url(app)}/sparse/{route}/{quote(path, safe='/')}" + (f"?{query}" if query else "")
    return Response(307, "application/json", json.dumps({"detail": f"{path!r} is a sparse array: follow Location"}), {"Location": location})


def full() -> Response:
    path = common.node_path(app, f"{common.API}/array/full")
    params = common.query(app)
    moved = _sparse_elsewhere("full", path, params)
    if moved is not None:
        return moved
    catalog, entry, array, advertised = _array(path)
    sel = parse_slice(common.one(params, "slice"))
    if len(sel) > array.ndim:
        raise BadRequest(f"slice has {len(sel)} dimensions; the array has {array.ndim}")
    chosen, shape = _negotiate(params), selected_shape(sel, array.shape)
    window = _preview(chosen, shape)
    options = _png_options(params)
    source, read_sel, level = _png_level(entry, array, sel, options) if chosen.media_type == "image/png" else (array, sel, {})
    if window is not None:
        _bound(entry, path, selected_shape(window, shape), chosen.media_type, "the shown part of the selection")
        options.update(shape=shape, links=_links(path, params, shape, array.dtype.kind))
    else:
        _bound(entry, path, selected_shape(read_sel, source.shape), chosen.media_type, "the selection")
        options["fill"] = _fills(entry, array)

    def produce() -> Any:
        _check_shape(params, shape)
        return advertised(source.read(read_sel) if window is None else array.read(narrowed(sel, array.shape, window)))

    return answer(app, "array", "application/octet-stream", catalog.release, path, params, produce,
                  after=lambda: {**rescale_header(options), **level}, **options)


def _png_level(entry: Entry, array: PublishedArray, sel: tuple[Any, ...], options: dict[str, Any]) -> tuple[PublishedArray, tuple[Any, ...], dict[str, str]]:
    """A PNG of an image with a pyramid reads the coarsest level still at least ``max_size``
    over the selection (``publisher.access.arrays.preview_level``), named in ``X-Skyshelf-Level``."""
    from publisher.serializers.png import PNG_MAX_SIZE

    notes = entry.notes or {}
    levels = notes.get("pyramid_levels")  # the build's own notes, not source metadata
    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 2:
        return array, sel, {}
    factors = level_factors(levels, notes.get("pyramid_factors"))
    url, within, k = preview_level(entry.data_url or "", factors, array.shape, sel, options.get("max_size") or PNG_MAX_SIZE)
    return (array if k == 0 else published_array(common.store(), url)), within, {LEVEL_HEADER: str(k)}


def block() -> Response:
    path = common.node_path(app, f"{common.API}/array/block")
    params = common.query(app)
    moved = _sparse_elsewhere("block", path, params)
    if moved is not None:
        return moved
    catalog, entry, array, advertised = _array(path)
    index = ints(common.one(params, "block"), "block")
    sel = parse_slice(common.one(params, "slice"))
    chosen = _negotiate(params)
    if len(index) == array.ndim:
        edges = tuple(max(0, min(c, n - i * c)) for i, c, n in zip(index, array.chunks, array.shape))
        _bound(entry, path, selected_shape(sel, edges) if len(sel) <= len(edges) else edges, chosen.media_type, f"block {list(index)}")
    options = {**_png_options(params), "fill": _fills(entry, array)}

    def produce() -> Any:
        data = array.block(index)
        if sel:
            data = advertised(data[checked(sel, data.shape, f" of block {list(index)}")])  # (one element of text: a str, no shape)
        _check_shape(params, data.shape)
        return advertised(data)

    def stored(accepted: set[str]) -> tuple[bytes, str] | None:
        """An interior chunk whose stored bytes already are the answer (see ``PublishedArray.stored_block``)."""
        if sel or array.dtype.kind in "OU":
            return None
        ready = array.stored_block(index, accepted)
        if ready is not None:
            _check_shape(params, array.chunks)
        return ready

    return answer(app, "array", "application/octet-stream", catalog.release, path, params, produce, stored,
                  after=lambda: rescale_header(options), **options)


app = common.make_app("arrays", {"/api/v1/array/full/{path+}": full, "/api/v1/array/block/{path+}": block,
                                 "/api/v1/zarr/v3/{path+}": lambda: zarr.serve(app)})


lambda_handler = common.entry_point(app)
