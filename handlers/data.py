"""Shared by the array and table Lambdas: pick the serializer, build the answer with caching headers."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from publisher import serializers
from publisher.errors import BadRequest

from . import common


def answer(app: APIGatewayHttpResolver, family: str, default: str, release: str, path: str,
           params: dict[str, list[str]], produce: Any, stored: Any = None, **options: Any) -> Response:
    """Serialize ``produce()`` in the negotiated format; 304 before any data is read.
    ``stored(accepted_encodings)`` may give raw bytes already encoded as ``(body, encoding)``
    (a stored chunk sent as it is); it is asked only for the raw-bytes format."""
    chosen = serializers.choose(family, common.one(params, "format"), common.header(app, "accept"), default)
    etag = common.etag_for(family, release, path, sorted(params.items()), chosen.media_type, common.header(app, "accept-encoding"))
    cached = common.not_modified(app, etag) or common.spilled(etag, chosen.extension, app)
    if cached is not None:
        return cached
    headers = {}
    filename = common.one(params, "filename")
    if filename:
        safe = filename.replace('"', "").replace("\\", "").replace("/", "_")
        headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    ready = stored(common.accepted_encodings(app)) if stored is not None and chosen.media_type == "application/octet-stream" else None
    if ready is not None:
        body, encoding = ready
        return common.respond(app, body, chosen.media_type, etag, headers=headers, encoding=encoding)
    body = serializers.serialize_parts(chosen, produce(), **options)
    return common.respond(app, body, chosen.media_type, etag, headers=headers, redirect_ext=chosen.extension)


def ints(text: str | None, name: str) -> tuple[int, ...]:
    if text is None or text == "":
        return ()
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise BadRequest(f"{name} must be comma-separated integers, got {text!r}") from None
