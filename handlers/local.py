"""``publish serve``: the Lambda handlers on a laptop.

Each HTTP request becomes the API Gateway HTTP API (payload v2) event Lambda would receive,
goes to the function the route table names, and its answer is written back. The store's files
are served under ``/files/`` too, so zarr, xarray and pyarrow read over HTTP exactly as they
would from S3 (byte ranges included). HTTP itself is uvicorn's (httptools, uvloop): a thin
ASGI adapter. Index lookups of a local store are answered on the event loop (~0.1 ms; of a
remote store, on a pool of their own); searches and distinct values run on another pool and data
work on a third, so no request's work holds up the others (``/healthz`` answers while a slow
search runs). Several worker processes: :mod:`.workers`. CORS as :mod:`.cors` says.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import dataclasses
import functools
import importlib
import logging
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

from publisher.functions import allowed_methods, method_not_allowed, route_for
from publisher.stores import Store

from . import resolver_state
from . import settings as _settings
from .access_log import AccessLog, RedactKeys
from .access_log import configure as access_logger
from .cors import Cors
from .files import Body, error, file_answer
from .http import LOCAL_BODY, LOCAL_BODY_HEADER
from .settings import Settings

FILES = "/files"
#: Index-only answers: on the event loop for a local store (a lookup reads a few KiB), else on a pool of their own.
_INDEX = {"/healthz", "/", "/ui/{path+}", "/api/v1", "/api/v1/", "/api/v1/metadata/{path+}", "/api/v1/openapi.json", "/api/v1/docs"}
#: Work that grows with the catalog and the query: its own threads, never the event loop's.
_SLOW = {"/api/v1/search/{path+}", "/api/v1/search-deep/{path+}", "/api/v1/distinct/{path+}"}


def event_for(method: str, path: str, query: str, headers: dict[str, str], client: str, body: bytes = b"") -> dict[str, Any]:
    """The payload-v2 event API Gateway builds for this request (``path`` still percent-encoded;
    a body base64-encoded, as API Gateway passes binary ones)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered.setdefault("x-forwarded-proto", "http")  # as API Gateway adds it (there: https)
    params = parse_qs(query, keep_blank_values=True)
    cookie = lowered.pop("cookie", "")  # (payload 2.0 passes cookies apart, one per item)
    return {
        **({"cookies": [c.strip() for c in cookie.split(";") if c.strip()]} if cookie else {}),
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "queryStringParameters": {k: ",".join(v) for k, v in params.items()} or None,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": client, "userAgent": lowered.get("user-agent", "")},
            "stage": "$default", "requestId": secrets.token_hex(8), "domainName": lowered.get("host", "localhost"),
            "timeEpoch": int(time.time() * 1000),
        },
        "body": base64.b64encode(body).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


def invoke(handler: Any, event: dict[str, Any], settings: Settings | None = None) -> tuple[int, dict[str, str], bytes]:
    """Call a Lambda handler with these settings (else the environment's); its bytes come back
    directly (see ``http.LOCAL_BODY``), the rest as Lambda returns it."""
    sink: list[bytes] = []
    token, given = LOCAL_BODY.set(sink), _settings.LOCAL.set(settings)
    try:
        with resolver_state.request(event):  # (requests run side by side here: each resolves its own)
            return lambda_answer(handler(event, None), sink)
    finally:
        _settings.LOCAL.reset(given)
        LOCAL_BODY.reset(token)


def lambda_answer(result: dict[str, Any], sink: list[bytes] | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) from a Lambda proxy result."""
    headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
    if headers.pop(LOCAL_BODY_HEADER, None) and sink:
        data = sink[-1]
    else:
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(values)
    return int(result["statusCode"]), headers, data


class App:
    """The ASGI application: routes to Lambda handlers, ``/files/`` to the store, CORS for both.
    The handlers get ``settings`` (default: the environment's) with ``overrides`` (the server's flags)."""

    def __init__(self, store: Store, cors: Cors | None = None, settings: Settings | None = None, **overrides: Any) -> None:
        resolver_state.install()
        self.store = store
        self.overrides = {"store": store.url, **overrides}
        self.given = settings
        self._settings: tuple[Settings, Settings] | None = None
        self.cors = cors if cors is not None else Cors()
        self.slow = ThreadPoolExecutor(max_workers=4, thread_name_prefix="skyshelf-search")
        self.index = ThreadPoolExecutor(max_workers=4, thread_name_prefix="skyshelf-index")  # remote stores

    @property
    def settings(self) -> Settings:
        """The given settings, else the environment's (read once; tests may reset them), with this server's overrides."""
        base = self.given or _settings.environment()
        if self._settings is None or self._settings[0] is not base:
            self._settings = (base, dataclasses.replace(base, **self.overrides))
        return self._settings[1]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            for pool in (self.slow, self.index):
                pool.shutdown(wait=False, cancel_futures=True)
            await send({"type": "lifespan.shutdown.complete"})
            return
        method = scope["method"]
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        query = scope["query_string"].decode("latin-1")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        request = await _request_body(receive) if method == "POST" else b""
        line = len(method) + len(path) + len(query) + 11  # "GET /p?q HTTP/1.1"
        total = line + sum(len(v) for v in headers.values())
        if total > MAX_REQUEST_LINE_AND_HEADERS:  # the URL's fault (414), or the headers' (431, RFC 6585)
            status, out, body = error(414 if line > MAX_REQUEST_LINE_AND_HEADERS // 2 else 431,
                                      f"the request line and headers take {total} bytes; API Gateway takes at most "
                                      f"{MAX_REQUEST_LINE_AND_HEADERS}: ask for less (fewer filters or fields, a shorter path, "
                                      "shorter headers) or split the request")
        elif method == "OPTIONS":
            status, out, body = self.cors.preflight(origin, ["GET", "HEAD"] if path.startswith(FILES + "/") else allowed_methods(path))
        elif request is None:
            status, out, body = error(413, f"request body larger than {MAX_REQUEST_BODY} bytes (API Gateway's payload limit)")
        else:
            status, out, body = await self.answer("GET" if method == "HEAD" else method, path, query, headers, (scope.get("client") or ("", 0))[0],
                                                  request)
        if method != "OPTIONS":  # (a 414, 431 or 413 too: a page on another origin reads their detail, not a CORS failure)
            for name, value in self.cors.headers(origin).items():
                out[name] = f"{out['Vary']}, {value}" if name == "Vary" and out.get("Vary") else value
        if isinstance(body, bytes) and status not in (204, 304):  # (RFC 9110 8.6: none on a 204; a 304's would be the 200's)
            out["Content-Length"] = str(len(body))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out.items()]})
        if isinstance(body, bytes) or method == "HEAD":
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" or status in (204, 304) or not isinstance(body, bytes) else body})
            return
        await _stream(body, receive, send)

    async def answer(self, method: str, path: str, query: str, headers: dict[str, str], client: str,
                     request: bytes = b"") -> tuple[int, dict[str, str], Body]:
        loop = asyncio.get_running_loop()
        if path.startswith(FILES + "/"):
            if method != "GET":
                return _not_allowed(method, path, ["GET", "HEAD"])
            return await loop.run_in_executor(None, file_answer, self.store, path[len(FILES) + 1 :], headers.get("range"), query)
        route = route_for(method, path)
        if route is None:
            allowed = allowed_methods(path)
            return _not_allowed(method, path, allowed) if allowed and method not in allowed else error(404, f"no route for {method} {path}")
        handler = importlib.import_module(f"handlers.{route.module}").lambda_handler
        event = event_for(method, path, query, headers, client, request)
        if route.path in _INDEX and self.store.is_local and _local_only(route.path, headers):
            return invoke(handler, event, self.settings)
        pool = self.slow if route.path in _SLOW else self.index if route.path in _INDEX else None  # None: data work, the default pool
        context = contextvars.copy_context()
        return await loop.run_in_executor(pool, context.run, invoke, handler, event, self.settings)


async def _stream(body: Any, receive: Any, send: Any) -> None:
    """A big file sent piece by piece, each read when the last is taken, until the client is gone:
    uvicorn's ``send`` to a closed connection returns as if sent, and a client that hung up after
    the headers had the whole object read for nobody (36 MB from S3 or disk each)."""
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    loop = asyncio.get_running_loop()
    try:
        while not gone.is_set() and (piece := await loop.run_in_executor(None, next, body, None)) is not None:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        if not gone.is_set():
            await send({"type": "http.response.body", "body": b""})
    finally:
        watcher.cancel()
        close = getattr(body, "close", None)
        if close is not None:
            await loop.run_in_executor(None, close)  # (its file handle, now: not when collected)


#: Index routes that may ask the identity provider (its discovery document), whoever calls.
_PROVIDER = {"/api/v1", "/api/v1/"}


def _local_only(route: str, headers: dict[str, str]) -> bool:
    """Whether an index answer reads nothing but the local store, so the event loop may make it:
    not one that may wait on the identity provider (its discovery, or the keys a bearer token is
    checked with: 5 s each for a provider that does not answer, every other request held up)."""
    return route not in _PROVIDER and not any(k.lower() == "authorization" and v.strip().lower().startswith("bearer")
                                              for k, v in headers.items())


def _not_allowed(method: str, path: str, allowed: list[str]) -> tuple[int, dict[str, str], bytes]:
    """A 405 that lists the methods the path takes (RFC 9110), as the deployed functions answer."""
    status, out, body = error(405, method_not_allowed(method, path, allowed))
    return status, {**out, "Allow": ", ".join(allowed)}, body


#: API Gateway's HTTP API takes request payloads up to 10 MB: a larger body is refused, as there.
MAX_REQUEST_BODY = 10 * 2**20
#: API Gateway's HTTP API quota on the request line and header values together (not raisable):
#: a longer request is refused here too, with a JSON detail (uvicorn's parser answers a plain 400
#: only past ~100 KB), so what works locally works deployed.
MAX_REQUEST_LINE_AND_HEADERS = 10240


async def _request_body(receive: Any) -> bytes | None:
    """A POST's body (the awkward form keys the tiled client sends), None past :data:`MAX_REQUEST_BODY`."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_REQUEST_BODY:
            return None
        if not message.get("more_body"):
            return body


logging.getLogger("uvicorn.access").addFilter(RedactKeys())  # (its line is off: ours, handlers/access_log.py, says more)

#: uvicorn's options for every ``publish serve`` process (its access log off: :func:`logged` writes ours).
UVICORN: dict[str, Any] = {"log_level": "warning", "access_log": False, "http": "httptools", "loop": "auto", "lifespan": "on",
                           "timeout_keep_alive": 30,
                           "timeout_graceful_shutdown": 5}  # (Ctrl+C with a download stalled: the server stayed up, a second one a traceback)


#: Seconds a connection may take to send a request's line and headers (from its first byte, or
#: from the connection when nothing came yet).
HEADER_SECONDS = 30.0
#: Seconds a client may take no answer bytes while some wait to be sent (nginx's send_timeout):
#: then the connection is dropped, with the file handle and the piece it held.
SEND_SECONDS = 60.0


def uvicorn_options() -> dict[str, Any]:
    """:data:`UVICORN` with the HTTP protocol that gives up on a request never sent whole."""
    return {**UVICORN, "http": _deadline_protocol()}


@functools.cache
def _deadline_protocol() -> type:
    """uvicorn's httptools protocol with a deadline for a request's line and headers, and one for
    a client that stops reading an answer: uvicorn has neither (its keep-alive timer starts after a
    response), so a connection that never sent a whole request was held for good, and a few
    hundred of them took the process's file handles (a slowloris); one that stopped reading a
    download held its file and ~4 MiB for good (100 of them: 200 handles and 400 MB).
    Hand-written: uvicorn 0.55 offers no such timeouts."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class DeadlineProtocol(HttpToolsProtocol):  # type: ignore[misc]
        _deadline: asyncio.TimerHandle | None = None
        _stalled: asyncio.TimerHandle | None = None

        def pause_writing(self) -> None:  # the transport's buffer is full: the client has not read it yet
            super().pause_writing()
            if self._stalled is None:
                self._watch_stall(self.transport.get_write_buffer_size())

        def _watch_stall(self, waiting: int) -> None:
            self._stalled = self.loop.call_later(SEND_SECONDS, self._stall_check, waiting)

        def _stall_check(self, waiting: int) -> None:
            """Dropped if it read nothing for SEND_SECONDS; a slow reader that read some goes on."""
            now = self.transport.get_write_buffer_size()
            if now < waiting:
                self._watch_stall(now)
            else:
                self._stalled = None
                self.transport.abort()  # (close would wait for the buffer to be read)

        def resume_writing(self) -> None:  # it read
            if self._stalled is not None:
                self._stalled.cancel()
                self._stalled = None
            super().resume_writing()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(HEADER_SECONDS, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._stalled is not None:
                self._stalled.cancel()
                self._stalled = None
            super().connection_lost(exc)

    return DeadlineProtocol


def logged(app: App, settings: Settings) -> Any:
    """``app`` with the access log (handlers/access_log.py) when the settings turn it on."""
    return AccessLog(app, access_logger()) if settings.access_log else app


class LocalServer:
    """uvicorn serving :class:`App` on ``host:port`` (port 0: a free one), in this thread or a
    background one (``publish serve --workers N``: :mod:`.workers`)."""

    def __init__(self, store_url: str, host: str = "127.0.0.1", port: int = 8000, cors: Cors | None = None) -> None:
        import uvicorn

        base = _settings.environment()
        self.store = Store(store_url, backend=base.s3_backend, direct_io=base.direct_io)
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        config = uvicorn.Config(logged(App(self.store, cors), base), **uvicorn_options())
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self) -> LocalServer:
        self.thread = threading.Thread(target=self.serve_forever, name="skyshelf-serve", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.sock.close()
