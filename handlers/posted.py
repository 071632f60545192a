"""Names the tiled client POSTs, a JSON list in the body, where repeating them in the URL would
pass its length limit: an awkward form's keys, a wide dataset's variables (``container/full``),
a table's columns (``table/partition``). Taken as the GET's repeated parameters."""

from __future__ import annotations

import base64
import binascii
import json

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from publisher.errors import BadRequest

from .common import query

#: Names a POST body may list (a form has one key per node; a dataset one field per variable).
MAX_POSTED_NAMES = 100_000


def names(app: APIGatewayHttpResolver, what: str) -> list[str]:
    """A POST body's JSON list of names: what the tiled client sends where repeating them in the
    URL would pass its length limit (form keys, a wide dataset's variables, a table's columns)."""
    body = _text(app, what)
    if not body or not body.strip():  # (no body: no names, as a GET without the parameter)
        return []
    try:
        found = json.loads(body)
    except (ValueError, RecursionError) as exc:  # (RecursionError: a body of nested lists, a 500)
        raise BadRequest(f"the body of {what} must be a JSON list of names: {exc or 'nested too deeply'}") from None
    if not isinstance(found, list) or not all(isinstance(n, str) for n in found) or len(found) > MAX_POSTED_NAMES:
        raise BadRequest(f'the body of {what} must be a JSON list of names (strings), e.g. ["a", "b"]')
    return found


def _text(app: APIGatewayHttpResolver, what: str) -> str:
    """The body as text: API Gateway base64-encodes a body it takes for binary. Bytes that are not
    UTF-8 (or not base64, or gzip'd) were a 500 from Powertools' ``decoded_body``; Tiled answers 400."""
    event = app.current_event
    raw = event.body or ""
    coding = (event.headers or {}).get("content-encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        raise BadRequest(f"the body of {what} must be sent as it is (Content-Encoding {coding!r} is not taken)")
    try:
        data = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode("utf-8", "surrogatepass")
        return data.decode("utf-8")
    except (binascii.Error, UnicodeError) as exc:
        raise BadRequest(f"the body of {what} must be a JSON list of names in UTF-8: {exc}") from None


def query_with_posted(app: APIGatewayHttpResolver, name: str, what: str) -> dict[str, list[str]]:
    """:func:`query`, and for a POST its body's names as ``name=`` parameters (as Tiled takes them)."""
    params = query(app)
    if app.current_event.http_method == "POST":
        params = {**params, name: [*params.get(name, []), *names(app, what)]}
    return params
