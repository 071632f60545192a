"""Arrays (one Lambda): ``array/full`` with ``slice``, ``array/block`` with ``block``.

numpy and the Zarr chunk reader at import; codecs and image libraries on first use.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from publisher.access.arrays import PublishedArray, published_array
from publisher.errors import BadRequest

from . import common
from .data import answer, ints


def parse_slice(text: str | None) -> tuple[Any, ...]:
    """Tiled's ``slice=0:3,::2,5`` (NumPy basic indexing)."""
    if not text:
        return ()
    out: list[Any] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ":" in part:
                bits = [int(b) if b.strip() else None for b in part.split(":")]
                if len(bits) > 3:
                    raise ValueError
                if len(bits) == 3 and bits[2] == 0:
                    raise BadRequest("slice step cannot be zero")
                out.append(slice(*bits))
            else:
                out.append(int(part))
        except ValueError:
            raise BadRequest(f"slice must look like 0:10,::2,5 (integers, start:stop:step), got {text!r}") from None
    return tuple(out)


def _png_options(params: dict[str, list[str]]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    rescale = common.one(params, "rescale")
    if rescale:
        try:
            lo, hi = (float(v) for v in rescale.split(","))
        except ValueError:
            raise BadRequest(f"rescale must be min,max, got {rescale!r}") from None
        options["rescale"] = (lo, hi)
    if common.one(params, "colormap"):
        options["colormap"] = common.one(params, "colormap")
    if "max_size" in params:
        options["max_size"] = common.integer(params, "max_size", 1024, 1, 16384)
    return options


def _array(path: str) -> tuple[Any, PublishedArray, Any]:
    """(catalog, array, how to present values as the structure advertises them)."""
    catalog = common.catalog()
    entry = catalog.node(path)
    if entry["family"] != "array":
        raise BadRequest(f"{path!r} is a {entry['family']}, not an array")
    data_type = entry["structure"]["data_type"]

    def advertised(data: Any) -> Any:  # variable-length strings go out as the fixed-width unicode the structure names
        if data.dtype.kind == "O" and data_type.get("kind") == "U":
            return data.astype(f"<U{max(data_type['itemsize'] // 4, 1)}")
        return data

    return catalog, published_array(common.store(), entry["data_url"]), advertised


def _check_shape(params: dict[str, list[str]], shape: tuple[int, ...]) -> None:
    expected = common.one(params, "expected_shape")
    if expected == "scalar" and shape != ():
        raise BadRequest(f"expected a scalar, the selection has shape {','.join(map(str, shape))}")
    if expected is not None and expected != "scalar" and ints(expected, "expected_shape") != shape:
        raise BadRequest(f"expected_shape {expected} does not match the shape {','.join(map(str, shape))}")


def full() -> Response:
    path = common.node_path(app, f"{common.API}/array/full")
    params = common.query(app)
    catalog, array, advertised = _array(path)
    sel = parse_slice(common.one(params, "slice"))
    if len(sel) > array.ndim:
        raise BadRequest(f"slice has {len(sel)} dimensions; the array has {array.ndim}")

    def produce() -> Any:
        data = array.read(sel)
        _check_shape(params, data.shape)
        return advertised(data)

    return answer(app, "array", "application/octet-stream", catalog.release, path, params, produce, **_png_options(params))


def block() -> Response:
    path = common.node_path(app, f"{common.API}/array/block")
    params = common.query(app)
    catalog, array, advertised = _array(path)
    index = ints(common.one(params, "block"), "block")
    sel = parse_slice(common.one(params, "slice"))

    def produce() -> Any:
        data = array.block(index)
        if sel:
            data = data[sel]
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

    return answer(app, "array", "application/octet-stream", catalog.release, path, params, produce, stored, **_png_options(params))


app = common.make_app("arrays", {"/api/v1/array/full/{path+}": full, "/api/v1/array/block/{path+}": block})


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
