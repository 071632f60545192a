"""Sparse arrays, on the tables function: ``sparse/full`` (``slice=``) and ``sparse/block``
(``block=``), answering what Tiled's ``array/full`` and ``array/block`` answer for a sparse node.

Why the tables function: Tiled's sparse wire format is an Arrow IPC file of COO triplets and
the published blocks are Parquet, so serving needs pyarrow, which the arrays function does not
ship (pyarrow is 166 MiB installed: arrays would go from 86 to ~250 MiB, Lambda's limit; docs/deploy.md).
The node's ``links`` point here (the tiled client follows them), and ``array/full`` /
``array/block`` on a sparse node answer a 307 here (the client follows redirects too).

Dense answers (CSV, PNG) are refused before any read past ``SKYSHELF_MAX_ANSWER_BYTES``, naming
the dense size; every answer is measured again once its nonzeros are read.
"""

from __future__ import annotations

import math
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from publisher import serializers
from publisher.errors import BadRequest
from publisher.structures import SparseStructure

from . import common
from .data import answer, check
from .grammar import ints

ARROW = "application/vnd.apache.arrow.file"
#: Formats that hold the selection dense: their size is known, and bounded, before any read.
DENSE = ("text/csv", "image/png")


def _published(app: APIGatewayHttpResolver, route: str) -> tuple[Any, str, Any, dict[str, Any]]:
    from publisher.access.sparse import PublishedSparse

    catalog, path, entry = common.structured_entry(app, f"sparse/{route}", SparseStructure, "a sparse array")
    return catalog, path, PublishedSparse(common.store(), entry.data_url, entry.structure), (entry.notes or {}).get("sparse", {})


def _advice(path: str, shape: tuple[int, ...]) -> str:
    return (f"ask for less: a slice (slice={','.join(f'0:{min(n, 1000)}' for n in shape)}), one block "
            f"(sparse/block/{path}?block={','.join('0' for _ in shape)}), or the nonzeros alone (format=arrow, parquet or json)")


def _answer(app: APIGatewayHttpResolver, path: str, params: dict[str, list[str]], catalog: Any, shape: tuple[int, ...], itemsize: int, what: str,
            most: int, read: Any) -> Response:
    """``most``: the nonzeros the answer can hold at most (from the build's counts), checked
    before any block is read; the real ones are checked again once read."""
    from publisher.serializers.sparse import COO

    chosen = serializers.choose("sparse", common.one(params, "format"), common.header(app, "accept"), ARROW)
    options: dict[str, Any] = {}
    if chosen.media_type in DENSE:
        if chosen.media_type == "text/csv" and len(shape) > 2:
            raise BadRequest(f"CSV holds at most 2 dimensions; {what} of {path!r} has shape {list(shape)}: slice it")
        check(math.prod(shape) * itemsize, chosen.media_type, f"{what} of {path!r} made dense (shape {list(shape)})", _advice(path, shape))
        if chosen.media_type == "image/png":
            from .arrays import _png_options

            options = _png_options(params)
    else:
        check(most * (8 * len(shape) + itemsize), chosen.media_type, f"the nonzeros of {what} of {path!r} (up to {most})", _advice(path, shape))

    def produce() -> COO:
        coords, data, got = read()
        check(coords.nbytes + data.nbytes, chosen.media_type, f"the nonzeros of {what} of {path!r}", _advice(path, shape))
        return COO(coords, data, got)

    return answer(app, "sparse", ARROW, catalog.release, path, params, produce, **options)


def full(app: APIGatewayHttpResolver) -> Response:
    from .arrays import checked, parse_slice, selected_shape

    params = common.query(app)
    catalog, path, sparse, counts = _published(app, "full")
    sel = checked(parse_slice(common.one(params, "slice")), sparse.shape)
    shape = selected_shape(sel, sparse.shape)
    blocks = sparse.overlapped(sel)
    most = min(math.prod(shape), counts.get("nnz", math.inf), len(blocks) * counts.get("max_block_nnz", math.inf))
    return _answer(app, path, params, catalog, shape, sparse.dtype.itemsize, "the selection", int(most), lambda: sparse.read(sel))


def block(app: APIGatewayHttpResolver) -> Response:
    params = common.query(app)
    catalog, path, sparse, counts = _published(app, "block")
    index = ints(common.one(params, "block"), "block")
    if "slice" in params:
        raise BadRequest("slice= is not supported with block= on a sparse array; slice the array instead (sparse/full?slice=...)")
    if len(index) != sparse.ndim or any(not 0 <= i < len(c) for i, c in zip(index, sparse.chunks)):
        raise BadRequest(f"block {list(index)} is out of range: {path!r} has a grid of {[len(c) for c in sparse.chunks]} blocks")
    shape = tuple(c[i] for c, i in zip(sparse.chunks, index))
    most = min(math.prod(shape), counts.get("max_block_nnz", math.inf))
    return _answer(app, path, params, catalog, shape, sparse.dtype.itemsize, f"block {list(index)}", int(most), lambda: sparse.block(index))


#: Route → function of the app serving it (the tables function's, which passes itself: no import back).
ROUTES = {"/api/v1/sparse/full/{path+}": full, "/api/v1/sparse/block/{path+}": block}
