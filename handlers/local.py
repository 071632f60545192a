"""``publish serve``: the Lambda handlers on a laptop.

Each HTTP request becomes the API Gateway HTTP API (payload v2) event Lambda would receive,
goes to the function the route table names, and its answer is written back. The store's files
are served under ``/files/`` too, so zarr, xarray and pyarrow read over HTTP exactly as they
would from S3 (byte ranges included).
"""

from __future__ import annotations

import base64
import importlib
import os
import secrets
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from publisher.content_types import content_type
from publisher.errors import NotFound

from .routes import route_for

FILES = "/files"


def event_for(method: str, target: str, headers: dict[str, str], client: str) -> dict[str, Any]:
    """The payload-v2 event API Gateway builds for this request."""
    parts = urlsplit(target)
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered.setdefault("x-forwarded-proto", "http")  # as API Gateway adds it (there: https)
    query = parse_qs(parts.query, keep_blank_values=True)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": lowered,
        "queryStringParameters": {k: ",".join(v) for k, v in query.items()} or None,
        "requestContext": {
            "http": {"method": method, "path": parts.path, "protocol": "HTTP/1.1", "sourceIp": client, "userAgent": lowered.get("user-agent", "")},
            "stage": "$default", "requestId": secrets.token_hex(8), "domainName": lowered.get("host", "localhost"),
            "timeEpoch": int(time.time() * 1000),
        },
        "body": None,
        "isBase64Encoded": False,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server_version = "skyshelf"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if os.environ.get("SKYSHELF_ACCESS_LOG"):
            super().log_message(format, *args)

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path == "/":
            self._send(307, {"Location": "/api/v1/", "Content-Length": "0"}, b"", head)
            return
        if path.startswith(FILES + "/"):
            self._file(unquote(path[len(FILES) + 1 :]), head)
            return
        route = route_for("GET", path)
        if route is None:
            body = b'{"detail":"no route for GET %s"}' % path.encode()
            self._send(404, {"Content-Type": "application/json", "Content-Length": str(len(body))}, body, head)
            return
        module = importlib.import_module(f"handlers.{route.module}")
        result = module.lambda_handler(event_for("GET", self.path, dict(self.headers), self.client_address[0]), None)
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        headers["Content-Length"] = str(len(data))
        self._send(int(result["statusCode"]), headers, data, head)

    def _file(self, key: str, head: bool) -> None:
        """A store object, with single byte ranges (what zarr and pyarrow ask for)."""
        store = self.server.store  # type: ignore[attr-defined]
        try:
            data = store.read_bytes(key)
        except NotFound:
            body = b'{"detail":"no such file"}'
            self._send(404, {"Content-Type": "application/json", "Content-Length": str(len(body))}, body, head)
            return
        headers = {"Content-Type": content_type(key), "Accept-Ranges": "bytes",
                   "Cache-Control": "public, max-age=31536000, immutable" if key.startswith("releases/") else "no-cache"}
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and "," not in wanted:
            start_s, _, end_s = wanted[6:].partition("-")
            size = len(data)
            start, end = (size - int(end_s), size - 1) if not start_s else (int(start_s), min(int(end_s) if end_s else size - 1, size - 1))
            if start >= size or start > end:
                self._send(416, {"Content-Range": f"bytes */{size}", "Content-Length": "0"}, b"", head)
                return
            headers.update({"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)})
            self._send(206, headers, data[start : end + 1], head)
            return
        headers["Content-Length"] = str(len(data))
        self._send(200, headers, data, head)

    def _send(self, status: int, headers: dict[str, str], body: bytes, head: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head and status not in (204, 304):
            self.wfile.write(body)


def make_server(store_url: str, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server for ``store_url`` (the handlers read ``SKYSHELF_STORE``, as a Lambda's environment would set it)."""
    from publisher.stores import Store

    os.environ["SKYSHELF_STORE"] = store_url
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    server.store = Store(store_url)  # type: ignore[attr-defined]
    return server
