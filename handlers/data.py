"""Shared by the array and table Lambdas: pick the serializer, build the answer with caching headers."""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from publisher import limits, serializers
from publisher.errors import BadRequest

from . import common, http, settings


def check(data_bytes: int, media_type: str, what: str, advice: str, factor: float | None = None) -> int:
    """:func:`publisher.limits.check` against this server's ``SKYSHELF_MAX_ANSWER_BYTES`` (its settings)."""
    return limits.check(data_bytes, media_type, what, advice, settings.current().max_answer_bytes, factor)


def answer(app: APIGatewayHttpResolver, family: str, default: str, release: str, path: str,
           params: dict[str, list[str]], produce: Any, stored: Any = None, after: Any = None, **options: Any) -> Response:
    """Serialize ``produce()`` in the negotiated format; 304 before any data is read.
    ``stored(accepted_encodings)`` may give raw bytes already encoded as ``(body, encoding)``
    (a stored chunk sent as it is); it is asked only for the raw-bytes format. ``after()`` gives
    headers known only once the body is made (the range a PNG used)."""
    chosen = serializers.choose(family, common.one(params, "format"), common.header(app, "accept"), default)
    etag = http.etag_for(family, release, path, sorted(params.items()), chosen.media_type, common.header(app, "accept-encoding"))
    headers = download_headers(chosen, path, params)
    cached = http.not_modified(app, etag) or http.spilled(etag, chosen.extension, app, headers.get("Content-Disposition"))
    if cached is not None:
        return cached
    ready = stored(http.accepted_encodings(app)) if stored is not None and chosen.media_type == "application/octet-stream" else None
    if ready is not None and len(ready[0]) > settings.current().max_body_bytes:
        ready = None  # (sent as it is, it skipped the spill: a deployed function answered past Lambda's 6 MB, a 5xx)
    if ready is not None:
        body, encoding = ready
        return http.respond(app, body, chosen.media_type, etag, headers=headers, encoding=encoding)
    body = serializers.serialize_parts(chosen, produce(), **options)
    if after is not None:
        headers.update(after())
    return http.respond(app, body, chosen.media_type, etag, headers=headers, redirect_ext=chosen.extension)


#: Formats a browser shows itself: their default file name goes with ``inline`` (shown, saved
#: under that name); the others with ``attachment`` (saved at once).
INLINE = {"text/html", "image/png"}
#: Longest file name accepted from ``filename=`` (most file systems' limit, in characters).
MAX_FILENAME = 255


def download_headers(chosen: serializers.Serializer, path: str, params: dict[str, list[str]]) -> dict[str, str]:
    """``Content-Disposition`` for an answer: ``filename=`` as an attachment (as Tiled), else,
    for every format but JSON, a default name made of the node's name, the selection and the
    format's extension (``temperature_log.csv``, ``data_0_5-10.png``), so a browser saves
    something recognisable rather than ``full``."""
    asked = common.one(params, "filename")
    if asked:
        return {"Content-Disposition": content_disposition(asked, "attachment")}
    if chosen.media_type == "application/json":
        return {}
    name = path.rpartition("/")[2] or "catalog"
    for key, label in (("slice", ""), ("block", "block_"), ("partition", "partition_")):
        dims = [d.strip() for d in (common.one(params, key) or "").split(",")]
        while dims and dims[-1] in ("", ":", "::"):  # trailing whole dimensions say nothing
            dims.pop()
        if dims:
            name += "_" + label + "_".join("all" if d in (":", "::") else d.replace(":", "-") for d in dims)
    name = name[:MAX_FILENAME - len(chosen.extension)] + chosen.extension
    return {"Content-Disposition": content_disposition(name, "inline" if chosen.media_type in INLINE else "attachment")}


def content_disposition(name: str, kind: str) -> str:
    """RFC 6266: ``filename="..."`` in printable ASCII (accents dropped, other characters as
    ``_``) and, when that is not the name itself, ``filename*=UTF-8''...`` with the whole name.
    Control and format characters are dropped and path separators become ``_``; an empty or
    overlong name is a 400."""
    clean = "".join("_" if ch in "/\\" else ch for ch in unicodedata.normalize("NFC", name)
                    if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp")).strip()
    if clean in ("", ".", ".."):
        raise BadRequest(f"filename {name!r} holds no usable characters")
    if len(clean) > MAX_FILENAME:
        raise BadRequest(f"filename is {len(clean)} characters long; at most {MAX_FILENAME} are accepted")
    ascii_name = "".join(ch if " " <= ch <= "~" and ch not in '"\\%' else "_"
                         for ch in unicodedata.normalize("NFKD", clean) if not unicodedata.combining(ch))
    if ascii_name == clean:
        return f'{kind}; filename="{clean}"'
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(clean, safe='')}"
