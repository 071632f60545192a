"""Awkward arrays, on the tables function (it ships pyarrow, and awkward with it): Tiled's
``awkward/buffers`` (POST a JSON list of form keys, or GET ``?form_key=``; a zip of the
``{form_key}-{attribute}`` buffers the tiled client rebuilds the array from) and
``awkward/full`` (``format=json|arrow|parquet|zip``; ``slice=start:stop`` of the top-level
entries is ours, as for tables).

Every answer is bounded before it is serialized (``SKYSHELF_MAX_ANSWER_BYTES``); awkward and
pyarrow are imported inside the routes, never at cold start.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from publisher import serializers
from publisher.errors import NotAcceptable
from publisher.structures import AwkwardStructure

from . import common, posted
from .data import answer, check

ZIP = "application/zip"
ADVICE = "ask for fewer fields (form_key=..., or node['field'] in the tiled client) or read the Parquet file itself (format=parquet)"


def _published(app: Any, route: str) -> tuple[Any, str, Any]:
    from publisher.access.awkward import PublishedAwkward

    catalog, path, entry = common.structured_entry(app, f"awkward/{route}", AwkwardStructure, "an awkward array")
    return catalog, path, PublishedAwkward(common.store(), entry.data_url, entry.structure)


def _form_keys(app: Any, params: dict[str, list[str]]) -> list[str]:
    """The POST body's JSON list of form keys, or GET's ``form_key=`` (repeated)."""
    if app.current_event.http_method != "POST":
        return [k for k in params.get("form_key", []) if k]
    return posted.names(app, "awkward/buffers (its form keys)")


def _post_redirect(app: Any, response: Response) -> Response:
    """An answer too large for Lambda is a redirect to its stored copy: a 303 for a POST (the
    client GETs it), where a 307 would repeat the POST at the store."""
    if app.current_event.http_method == "POST" and response.status_code == 307:
        response.status_code = 303
    return response


def buffers(app: Any) -> Response:
    params = common.query(app)
    catalog, path, published = _published(app, "buffers")
    keys = sorted(set(published.check_keys(_form_keys(app, params))))
    chosen = serializers.choose("awkward", common.one(params, "format"), common.header(app, "accept"), ZIP)
    if chosen.media_type != ZIP:
        raise NotAcceptable(f"awkward/buffers answers {ZIP} only (a zip of the form's buffers), not {chosen.media_type}; "
                            "awkward/full gives the array as JSON, Arrow or Parquet")

    what = f"awkward array {path!r}"

    def produce() -> dict[str, Any]:
        # the whole stored array is read and decoded (then the keys' buffers picked): bounded as a whole
        selected = published.buffers(keys, lambda n: check(n, ZIP, what, ADVICE, factor=2.0))
        check(sum(memoryview(b).nbytes for b in selected.values()), ZIP, what, ADVICE, factor=2.0)
        return selected

    return _post_redirect(app, answer(app, "awkward", ZIP, catalog.release, path, {**params, "form_key": keys}, produce))


def full(app: Any) -> Response:
    params = common.query(app)
    catalog, path, published = _published(app, "full")
    chosen = serializers.choose("awkward", common.one(params, "format"), common.header(app, "accept"), "application/json")

    what, factor = f"awkward array {path!r}", 2.0 if chosen.media_type != "application/json" else None
    from .arrays import rows

    selected = rows(params, "an awkward array")  # ours, as for tables: the browse page's first entries

    def produce() -> Any:
        array = published.read(lambda n: check(n, chosen.media_type, what, ADVICE, factor=factor))
        if selected is not None:
            array = array[selected]
        check(int(array.nbytes), chosen.media_type, what, ADVICE, factor=factor)
        return array

    return answer(app, "awkward", "application/json", catalog.release, path, params, produce)


#: Route → function of the app serving it (the tables function's, which passes itself: no import back).
ROUTES = {"/api/v1/awkward/buffers/{path+}": buffers, "/api/v1/awkward/full/{path+}": full}
