"""A fault-injecting HTTP proxy in front of a real S3 server, for tests: every client (s3fs, boto3,
obstore) is pointed at it and it forwards to the server, except that a chosen share of requests
gets a fault instead: a ``503 SlowDown``, a ``500 InternalError``, a connection reset before any
answer, a body cut off halfway through its announced ``Content-Length``, a slow answer, or one
byte flipped in the body a request sends (an upload) or, for a GET of a whole object, in the body
it receives (S3 gives no checksum of a range, so a flipped range is not a fault a client can see).

Hand-written (an aiohttp server and client, ~150 lines): toxiproxy and mitmproxy cut connections,
but neither answers S3's throttling XML nor truncates a body while keeping its announced length.
Signatures stay valid because the ``Host`` header is forwarded as the client signed it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aiohttp import ClientSession, ClientTimeout, web

#: Faults by name; a plan picks one (or none) per request.
KINDS = ("slowdown", "error500", "reset", "truncate", "slow", "corrupt")
#: Answers no retry mends, for checking they are not taken for passing faults (never drawn unless named).
PERMANENT = {"forbidden": ("AccessDenied", "Access Denied", 403), "notimplemented": ("NotImplemented", "A header you provided implies functionality that is not implemented", 501)}
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "trailer", "upgrade", "proxy-connection"}
_ERROR = """<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-{n}</RequestId></Error>"""


@dataclass
class FaultPlan:
    """Which requests fail and how: each request (after ``skip`` of them) fails with probability
    ``rate``, by a kind drawn from ``kinds``, from a seeded generator so a run can be repeated.
    ``where`` limits faults to requests it accepts (method, path); ``slow_seconds`` is a slow answer's delay.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = KINDS
    seed: int = 0
    skip: int = 0
    slow_seconds: float = 0.5
    where: Callable[[str, str], bool] = lambda method, path: True
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS) - set(PERMANENT)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {KINDS}")
        self._random = random.Random(self.seed)

    def pick(self, n: int, method: str, path: str) -> str | None:
        if n < self.skip or not self.where(method, path) or self._random.random() >= self.rate:
            return None
        return self._random.choice(self.kinds)


class FaultProxy:
    """The proxy on a free loopback port (``endpoint``), in a thread of its own; ``injected``
    counts the faults it gave by kind, ``requests`` every request it saw."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.plan = plan or FaultPlan()
        self.injected: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self.endpoint = ""

    # -- control ----------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def set_plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self.plan = plan

    @property
    def faults(self) -> int:
        return sum(self.injected.values())

    # -- serving ----------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.run_until_complete(self._session.close())

    async def _start(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=300), auto_decompress=False)
        app = web.Application(client_max_size=1 << 34)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.endpoint = f"http://127.0.0.1:{port}"

    def answer_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """The headers of a forwarded answer (a subclass may change them: another store's ways)."""
        return headers

    def _choose(self, method: str, path: str) -> str | None:
        with self._lock:
            n = self.requests
            self.requests += 1
            fault = self.plan.pick(n, method, path)
            if fault:
                self.injected[fault] += 1
            return fault

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._choose(request.method, request.path)
        if fault in PERMANENT:
            code, message, status = PERMANENT[fault]
            return web.Response(status=status, text=_ERROR.format(code=code, message=message, n=self.requests), content_type="application/xml")
        if fault in ("slowdown", "error500"):
            code, message, status = (("SlowDown", "Please reduce your request rate.", 503) if fault == "slowdown"
                                     else ("InternalError", "We encountered an internal error. Please try again.", 500))
            return web.Response(status=status, text=_ERROR.format(code=code, message=message, n=self.requests),
                                content_type="application/xml")
        if fault == "reset":
            request.transport.abort()  # type: ignore[union-attr]  # nothing answered: the connection just drops
            raise asyncio.CancelledError
        if fault == "slow":
            await asyncio.sleep(self.plan.slow_seconds)
        if fault == "corrupt" and request.method == "PUT" and len(body) > 1:
            body = _flip(body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP or k.lower() == "host"}
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers, data=body,
                                         allow_redirects=False) as answer:
            payload = await answer.read()
            out = self.answer_headers({k: v for k, v in answer.headers.items() if k.lower() not in _HOP})
        # only whole objects' bodies are altered: a range has no checksum S3 could give, and a
        # listing's XML none at all (TLS guards those in transit; a flipped byte in it is a parse error)
        if fault == "corrupt" and request.method == "GET" and not request.query_string and answer.status == 200 and len(payload) > 1:
            payload = _flip(payload)
        if fault == "truncate" and len(payload) > 1:
            response = web.StreamResponse(status=answer.status, headers=out)
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            request.transport.abort()  # type: ignore[union-attr]  # the rest never comes
            raise asyncio.CancelledError
        if request.method == "HEAD":  # the object's length, which a HEAD answer announces and never sends
            response = web.StreamResponse(status=answer.status, headers=out)
            if "Content-Length" in answer.headers:
                response.content_length = int(answer.headers["Content-Length"])
            await response.prepare(request)
            await response.write_eof()
            return response
        return web.Response(status=answer.status, body=payload, headers=out)


def _flip(body: bytes) -> bytes:
    """One bit of the middle byte flipped: what a faulty network card or memory does."""
    middle = len(body) // 2
    return body[:middle] + bytes([body[middle] ^ 0x10]) + body[middle + 1:]


@contextlib.contextmanager
def fault_proxy(upstream: str, plan: FaultPlan | None = None) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, plan).start()
    try:
        yield proxy
    finally:
        proxy.stop()
