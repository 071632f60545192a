"""Powertools' resolver state, kept per request for ``publish serve``.

A Powertools resolver keeps the request it resolves in shared places: the event in a class
attribute (``BaseRouter.current_event``: one for every resolver and thread) and the matched
route's arguments in the resolver's ``context`` dict (one per function, cleared after each
request). A Lambda process answers one request at a time; ``publish serve`` answers them side by
side in threads, and there a request could read another's path or find its arguments cleared:
``search/tables`` answered the root's search with a 200, a block ``'' is a container, not an
array`` (benchmarks/load.py found it: about one request in 2,000 at 16 clients).

:func:`install` (``publish serve``'s app calls it) puts both behind a context variable: inside
:func:`request` (``handlers.local.invoke`` wraps each call in it) a resolver reads this request's
event and context; outside it (a Lambda, a test calling a handler) they are Powertools' own.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

#: (the proxy event, the routing context) of the request this context answers.
_CURRENT: contextvars.ContextVar[tuple[Any, dict[str, Any]] | None] = contextvars.ContextVar("skyshelf_resolving", default=None)


class _CurrentEvent:
    """``current_event`` of the resolvers: this request's, else the one Powertools set on ``BaseRouter``."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        active = _CURRENT.get()
        if active is not None:
            return active[0]
        from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

        return BaseRouter.__dict__.get("current_event")

    def __set__(self, obj: Any, value: Any) -> None:
        from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

        BaseRouter.current_event = value  # (where Powertools itself puts it)


class _Context:
    """``context`` of the resolvers: this request's dict, else the resolver's own."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        active = _CURRENT.get()
        return active[1] if active is not None else obj.__dict__.setdefault("context", {})

    def __set__(self, obj: Any, value: dict[str, Any]) -> None:
        obj.__dict__["context"] = value


def install() -> None:
    """Resolvers read the event and routing context of the request being answered (idempotent)."""
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

    if not isinstance(ApiGatewayResolver.__dict__.get("context"), _Context):
        ApiGatewayResolver.current_event = _CurrentEvent()  # type: ignore[assignment]
        ApiGatewayResolver.context = _Context()  # type: ignore[assignment]


@contextlib.contextmanager
def request(event: dict[str, Any]) -> Iterator[None]:
    """While a handler answers ``event`` (an HTTP API payload v2 event) in this context."""
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

    token = _CURRENT.set((APIGatewayProxyEventV2(event), {}))
    try:
        yield
    finally:
        _CURRENT.reset(token)
