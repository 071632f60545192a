"""What a deployed function leaves for each request: one structured log line, its CloudWatch
metrics (embedded metric format, printed to stdout, which Lambda sends to CloudWatch Logs) and,
when ``SKYSHELF_TRACING`` is on, an X-Ray trace (docs/deploy.md "Observability").

Only on Lambda (a request with a context): ``publish serve`` calls the same handlers without one
and keeps its own access log. Powertools' ``Metrics`` is imported by the first request, ``Tracer``
(and aws_xray_sdk) only when tracing is on: a cold import of a handler loads neither.

Nothing secret is logged: no header, no query string (``api_key=``), no token; the route is the
route table's pattern, the path only what the URL names (truncated).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from typing import Any

from publisher.access.cache import DECODED
from publisher.functions import event_path, route_for

from . import settings

#: The metrics' CloudWatch namespace; each function's are under its ``service`` dimension (the
#: function's name, ``POWERTOOLS_SERVICE_NAME``), latency also under ``service`` and ``route``.
NAMESPACE = "Skyshelf"
#: Characters of a request's path in its log line (a fuzzer's very long URL is not logged whole).
PATH_CHARS = 200

#: Answers spilled to the store behind a 307 during the request being answered (``http`` counts them).
SPILLS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("skyshelf_spills", default=None)


def spilled() -> None:
    """Count an oversized answer redirected to its spilled copy (written now or before)."""
    tally = SPILLS.get()
    if tally is not None:
        tally[0] += 1


def route_key(event: dict[str, Any]) -> tuple[str, str]:
    """(method, ``"<METHOD> <route pattern>"``) of an event: the route table's pattern, never
    the raw path (bounded: one metric per route); ``$default`` for a path no route has."""
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method") or "GET")
    route = route_for("GET" if method == "HEAD" else method, event_path(event))  # (HEAD is answered as GET is)
    return method, f"{method} {route.path}" if route else "$default"


def body_bytes(result: dict[str, Any]) -> int:
    """Bytes of an answer's body as the client gets them (base64 decoded)."""
    body = result.get("body") or ""
    if not result.get("isBase64Encoded"):
        return len(body.encode()) if isinstance(body, str) else len(body)
    return len(body) * 3 // 4 - (len(body) - len(body.rstrip("=")))


class Observed:
    """``answer(event, context)`` with each Lambda request logged, measured and (optionally) traced."""

    def __init__(self, answer: Callable[[dict[str, Any], Any], dict[str, Any]], log: Any) -> None:
        self.answer = answer
        self.log = log
        self._metrics: Any = None
        self._traced: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None
        self.tracer: Any = None

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if context is None:  # publish serve: not a Lambda
            return self.answer(event, context)
        method, route = route_key(event)
        tally, hits = [0], DECODED.hits
        token = SPILLS.set(tally)
        start = time.perf_counter()
        status, result = 500, None
        try:
            result = self._call()(event, context)
            status = int(result.get("statusCode", 200))
            return result
        finally:
            SPILLS.reset(token)
            latency = round((time.perf_counter() - start) * 1000, 2)
            size = body_bytes(result) if result is not None else 0
            cache_hits = DECODED.hits - hits
            self.log.info("request", route=route, method=method, path=str(event.get("rawPath") or "")[:PATH_CHARS], status=status,
                          latency_ms=latency, bytes=size, cache_hits=cache_hits, spills=tally[0])
            self._measure(route, status, latency, size, cache_hits, tally[0])

    def _call(self) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        """The answer, traced when ``SKYSHELF_TRACING`` is on (decided by the first request)."""
        if self._traced is None:
            self._traced = self.answer
            if settings.current().tracing:
                try:
                    from aws_lambda_powertools import Tracer

                    self.tracer = Tracer(service=self.log.service)
                    self._traced = self.tracer.capture_lambda_handler(self._annotated, capture_response=False)
                except ImportError as exc:  # a package built without aws-xray-sdk: answer untraced
                    self.log.warning("tracing is on but cannot start", error=str(exc))
        return self._traced

    def _annotated(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The answer, its trace annotated with the route and status (searchable in X-Ray)."""
        self.tracer.put_annotation("route", route_key(event)[1])
        result = self.answer(event, context)
        self.tracer.put_annotation("status", int(result.get("statusCode", 200)))
        return result

    def _measure(self, route: str, status: int, latency: float, size: int, cache_hits: int, spills: int) -> None:
        """One EMF document per function (dimension ``service``: requests, latency, bytes, 4xx,
        5xx, cache hits, spills) and one for the route's latency (``service`` and ``route``)."""
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        if self._metrics is None:
            from aws_lambda_powertools import Metrics

            self._metrics = Metrics(namespace=NAMESPACE, service=self.log.service)
        metrics = self._metrics
        for name, unit, value in (("Requests", MetricUnit.Count, 1), ("Latency", MetricUnit.Milliseconds, latency),
                                  ("ResponseBytes", MetricUnit.Bytes, size), ("4xx", MetricUnit.Count, int(400 <= status < 500)),
                                  ("5xx", MetricUnit.Count, int(status >= 500)), ("CacheHits", MetricUnit.Count, cache_hits),
                                  ("Spills", MetricUnit.Count, spills)):
            metrics.add_metric(name=name, unit=unit, value=value)
        metrics.flush_metrics()
        with single_metric(name="Latency", unit=MetricUnit.Milliseconds, value=latency, namespace=NAMESPACE,
                           default_dimensions={"service": self.log.service}) as metric:
            metric.add_dimension(name="route", value=route)
