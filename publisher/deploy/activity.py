"""What a deployed stack's functions did lately, read from CloudWatch with ``GetMetricData``: the
handlers' own metrics (namespace ``Skyshelf``, dimension ``service`` = the function's name:
requests, 4xx, 5xx, cache hits, spills, latency percentiles; ``handlers/observe.py``) and
Lambda's (``AWS/Lambda``: errors and throttles, which no handler sees). For ``publish status``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import SkyshelfError

#: The handlers' metrics' namespace (handlers.observe.NAMESPACE; not imported: the CLI stays off the handlers).
NAMESPACE = "Skyshelf"
#: (field, namespace, metric, dimension naming the function): summed over the window.
COUNTS = (
    ("requests", NAMESPACE, "Requests", "service"),
    ("client_errors", NAMESPACE, "4xx", "service"),
    ("server_errors", NAMESPACE, "5xx", "service"),
    ("cache_hits", NAMESPACE, "CacheHits", "service"),
    ("spills", NAMESPACE, "Spills", "service"),
    ("invocations", "AWS/Lambda", "Invocations", "FunctionName"),
    ("errors", "AWS/Lambda", "Errors", "FunctionName"),
    ("throttles", "AWS/Lambda", "Throttles", "FunctionName"),
)
#: Latency percentiles (ms, as the handler measured it), when CloudWatch has them.
PERCENTILES = (("p50_ms", "p50"), ("p99_ms", "p99"))


class MetricsUnavailable(SkyshelfError):
    """CloudWatch could not be read (unreachable, no credentials, refused): one line says why."""


@dataclass
class Activity:
    """One function's numbers over the window (0 when CloudWatch has no datapoint: nothing happened)."""

    function: str
    requests: float = 0
    client_errors: float = 0
    server_errors: float = 0
    cache_hits: float = 0
    spills: float = 0
    invocations: float = 0
    errors: float = 0
    throttles: float = 0
    p50_ms: float | None = None
    p99_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def client(session: Any) -> Any:
    """A CloudWatch client that gives up quickly (a status line, not a minute of retries)."""
    from botocore.config import Config

    return session.client("cloudwatch", config=Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"}))


def _query(id_: str, namespace: str, metric: str, dimension: str, function: str, stat: str, period: int) -> dict[str, Any]:
    return {"Id": id_, "ReturnData": True, "MetricStat": {"Stat": stat, "Period": period, "Metric": {
        "Namespace": namespace, "MetricName": metric, "Dimensions": [{"Name": dimension, "Value": function}]}}}


def _results(cloudwatch: Any, queries: list[dict[str, Any]], start: datetime, end: datetime) -> dict[str, list[float]]:
    """Each query's values (every page, 500 queries a call, as CloudWatch allows)."""
    from botocore.exceptions import BotoCoreError, ClientError

    values: dict[str, list[float]] = {}
    try:
        for first in range(0, len(queries), 500):
            token: dict[str, str] = {}
            while True:
                page = cloudwatch.get_metric_data(MetricDataQueries=queries[first : first + 500], StartTime=start, EndTime=end, **token)
                for result in page.get("MetricDataResults", []):
                    values.setdefault(result["Id"], []).extend(v for v in result.get("Values", []) if v is not None)
                if not page.get("NextToken"):
                    break
                token = {"NextToken": page["NextToken"]}
    except (BotoCoreError, ClientError) as exc:
        raise MetricsUnavailable(f"cannot read CloudWatch metrics: {' '.join(str(exc).split())}") from None
    return values


def activity(cloudwatch: Any, functions: list[str], hours: float = 1, now: datetime | None = None) -> list[Activity]:
    """Each function's requests, 4xx, 5xx, cache hits, spills, errors and throttles over the
    last ``hours`` (one period: the whole window), and its latency p50/p99 when CloudWatch can
    give them (a percentile it cannot compute is left out: None)."""
    end = (now or datetime.now(UTC)).replace(microsecond=0)
    period = max(60, int(hours * 3600) // 60 * 60)
    start = end - timedelta(seconds=period)
    queries = [_query(f"q{i}x{j}", namespace, metric, dimension, name, "Sum", period)
               for i, name in enumerate(functions) for j, (_, namespace, metric, dimension) in enumerate(COUNTS)]
    values = _results(cloudwatch, queries, start, end)
    out = [Activity(name, **{field: sum(values.get(f"q{i}x{j}", [])) for j, (field, *_) in enumerate(COUNTS)})
           for i, name in enumerate(functions)]
    latency = [_query(f"l{i}x{j}", NAMESPACE, "Latency", "service", name, stat, period)
               for i, name in enumerate(functions) for j, (_, stat) in enumerate(PERCENTILES)]
    try:
        percentiles = _results(cloudwatch, latency, start, end)
    except MetricsUnavailable:  # a CloudWatch without percentiles (moto's server): the counts stand
        percentiles = {}
    for i, numbers in enumerate(out):
        for j, (field, _) in enumerate(PERCENTILES):
            found = percentiles.get(f"l{i}x{j}")
            setattr(numbers, field, max(found) if found else None)
    return out


def stack_activity(settings: Any, stack: str | None = None, hours: float = 1) -> list[Activity]:
    """:func:`activity` of a deployed stack's functions (named as the template names them:
    ``<stack>-<module>``), with the environment's AWS settings."""
    from ..functions import modules
    from .stack import session

    name = stack or settings.stack_name
    return activity(client(session()), [f"{name}-{m}" for m in modules()], hours)
