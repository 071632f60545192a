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
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

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
        unknown = set(self.kinds) - set(KINDS) - set(PERMANENT) - {"unreachable"}
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
        self.down = False  # after an "unreachable" fault: the port refuses connections, open ones drop every request
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
        site = self._site = web.TCPSite(self._runner, "127.0.0.1", 0)
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
        fault = "unreachable" if self.down else self._choose(request.method, request.path)
        if fault == "unreachable":  # the store gone from the network: connecting is refused from now on
            if not self.down:
                self.down = True
                self._site._server.close()  # type: ignore[union-attr]
            request.transport.abort()  # type: ignore[union-attr]
            raise asyncio.CancelledError
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
def quick_backoff(scale: float = 0.05) -> Iterator[None]:
    """The S3 clients' waits between retries cut to ``scale`` of what they are while the block runs:
    the same retries, decided the same way and as many of them, without their seconds of sleep.
    A fault here is drawn per request, never by time, so how long a client waits changes no
    outcome; the waits were most of the fault tests' time (botocore's "legacy" mode, s3fs's
    default, waits up to 1, 2, 4, 8 s between its five attempts; "standard", boto3's here, up to
    1, 2 s after a 503 SlowDown; obstore from 200 ms up to 3 s, in Rust).

    Neither botocore (nor aiobotocore, which uses its delays) nor s3fs has a setting for its backoff:
    botocore's two delay functions are wrapped, and s3fs's ``asyncio.sleep`` (as botocore 1.4x and
    s3fs 202x have them; without them the tests are only slower). obstore's is Skyshelf's own retry
    configuration (``s3_obstore._RETRY``, read when a client is made), whose retry count and time
    budget stay as they are. :func:`publisher.stores.faults.retrying` (at most 0.7 s) is left alone.
    (No pytest here: :data:`QUICK_CLI` uses it in a process of its own.)"""
    undo: list[Callable[[], None]] = []

    def wrap(owner: object, name: str, wrapper: Callable[[Callable[..., float]], Callable[..., float]]) -> None:
        original = getattr(owner, name, None)
        if original is not None:
            setattr(owner, name, wrapper(original))
            undo.append(lambda: setattr(owner, name, original))

    try:
        from botocore import retryhandler
        from botocore.retries import standard
    except ImportError:
        pass
    else:  # (legacy's is looked up when a client is made: clients made in the block)
        wrap(retryhandler, "delay_exponential", lambda legacy: lambda *args, **kwargs: scale * legacy(*args, **kwargs))
        wrap(standard.ExponentialBackoff, "delay_amount", lambda backoff: lambda self, context: scale * backoff(self, context))
    try:
        from s3fs import core as s3fs_core
    except ImportError:
        pass
    else:  # s3fs's own retries (a SlowDown, a body cut short: 0.1 s growing to 0.8 s) sleep through its module's asyncio
        wrap(s3fs_core, "asyncio", lambda real: _ScaledSleep(real, scale))
    from publisher.stores import s3_obstore

    wait = s3_obstore._RETRY["backoff"]
    s3_obstore._RETRY["backoff"] = {**wait, "init_backoff": wait["init_backoff"] * scale, "max_backoff": wait["max_backoff"] * scale}
    undo.append(lambda: s3_obstore._RETRY.__setitem__("backoff", wait))
    try:
        yield
    finally:
        for step in reversed(undo):
            step()


class _ScaledSleep:
    """A module's ``asyncio`` whose ``sleep`` waits ``scale`` of what it is asked."""

    def __init__(self, real: object, scale: float) -> None:
        self._real, self._scale = real, scale

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def sleep(self, delay: float, *args: object, **kwargs: object) -> object:
        return self._real.sleep(delay * self._scale, *args, **kwargs)  # type: ignore[attr-defined]


#: ``publish`` as ``[*QUICK_CLI, "build", ...]`` runs it (``python -m publisher.cli``), with :func:`quick_backoff`.
QUICK_CLI = [sys.executable, "-c", (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); "
                                    "from tests.faultproxy import quick_backoff; quick = quick_backoff(); quick.__enter__(); "
                                    "from publisher.cli import main; main()")]


@contextlib.contextmanager
def fault_proxy(upstream: str, plan: FaultPlan | None = None) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, plan).start()
    try:
        yield proxy
    finally:
        proxy.stop()
