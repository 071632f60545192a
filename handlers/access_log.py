"""``publish serve``'s access log: one line per request, written once its answer is sent.

A small ASGI middleware, because uvicorn's own line has neither the time taken nor the bytes
sent (and its logger followed ``log_level="warning"``, so it wrote nothing). A line::

    2026-12-05 17:10:40,123 127.0.0.1:51234 "GET /api/v1/metadata/scans?api_key=*** HTTP/1.1" 200 1587 B 3.2 ms pid 4242

method, path and query (an ``api_key=`` value written as ``***``: secrets are never logged),
status, body bytes sent, milliseconds from the request to its last byte, and the worker process
that answered (``publish serve --workers``). Each line is one ``write`` to stderr, so the
workers' lines do not interleave.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any
from urllib.parse import unquote_plus

LOGGER = "skyshelf.access"

def redact(text: str) -> str:
    """``text`` (a path and query, or a query) with every ``api_key`` value written as ``***``,
    the names read as the server reads them (percent-decoded: ``?api%5Fkey=`` is a key the server
    accepts, and a pattern of the literal name logged it in clear)."""
    head, mark, query = text.partition("?")
    if not mark:
        if "=" not in text:
            return text
        head, query = "", text
    pairs = query.split("&")
    for i, pair in enumerate(pairs):
        name, equals, _ = pair.partition("=")
        if equals and unquote_plus(name).strip().lower() == "api_key":
            pairs[i] = f"{name}=***"
    return f"{head}{mark}{'&'.join(pairs)}"


class RedactKeys(logging.Filter):
    """An access log record's ``api_key=`` values written as ``***`` (uvicorn's line has the path
    and query among its arguments; ours is redacted as it is made, and filtered again)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def configure() -> logging.Logger:
    """The access logger, writing to stderr (once per process: each worker configures its own)."""
    log = logging.getLogger(LOGGER)
    log.setLevel(logging.INFO)
    if not any(isinstance(f, RedactKeys) for f in log.filters):
        log.addFilter(RedactKeys())
    if not any(getattr(h, "_skyshelf", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        handler._skyshelf = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.propagate = False  # (not again through the root logger's handlers: Powertools' JSON lines)
    return log


class AccessLog:
    """ASGI middleware: the request's line once its answer is sent (or the client went away)."""

    def __init__(self, app: Any, log: logging.Logger | None = None) -> None:
        self.app = app
        self.log = log or logging.getLogger(LOGGER)
        self.pid = os.getpid()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        answer = {"status": 0, "bytes": 0}

        async def counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            path = scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?", 1)[0]
            query = scope.get("query_string", b"").decode("latin-1")
            client = scope.get("client") or ("-", 0)
            self.log.info('%s:%s "%s %s HTTP/%s" %s %d B %.1f ms pid %d', client[0], client[1], scope["method"],
                          redact(f"{path}?{query}" if query else path), scope.get("http_version", "1.1"),
                          answer["status"] or "-", answer["bytes"], (time.perf_counter() - start) * 1000, self.pid)
