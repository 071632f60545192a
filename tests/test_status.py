"""The stack's watch: the template's alarms (5xx rate, throttles, errors, an optional mail topic,
X-Ray when switched on), rendered and checked; and ``publish status`` reading the last hour from
CloudWatch on moto's server (known datapoints in, the printed numbers checked), with one line of
error when CloudWatch cannot be reached or no credentials are found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from publisher.cli import main
from publisher.deploy.template import template
from publisher.functions import modules

from .servers import free_port, moto_server
from .test_s3 import environ

ROOT = Path(__file__).resolve().parents[1]
STACK = "sky-status"


def test_template_alarms_on_5xx_rate_throttles_and_errors() -> None:
    t = template()
    resources = t["Resources"]
    alarms = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == {"ServerErrorRateAlarm", *(f"{m.capitalize()}{what}Alarm" for m in modules() for what in ("Throttles", "Errors"))}
    rate = alarms["ServerErrorRateAlarm"]
    queries = {q["Id"]: q for q in rate["Metrics"]}
    assert queries["errors"]["MetricStat"]["Metric"]["MetricName"] == "5xx" and queries["requests"]["MetricStat"]["Metric"]["MetricName"] == "Count"
    assert all(q["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}] for q in (queries["errors"], queries["requests"]))
    assert "100 * errors / requests" in queries["rate"]["Expression"] and queries["rate"]["ReturnData"] is True
    assert rate["Threshold"] == {"Ref": "ServerErrorPercent"} and rate["ComparisonOperator"] == "GreaterThanThreshold"
    for m in modules():
        for what in ("Throttles", "Errors"):
            alarm = alarms[f"{m.capitalize()}{what}Alarm"]
            assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Threshold"]) == ("AWS/Lambda", what, "Sum", 0)
            assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": f"{m.capitalize()}Function"}}]
    actions = {"Fn::If": ["MailAlarms", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}
    assert all(a["AlarmActions"] == a["OKActions"] == actions and a["TreatMissingData"] == "notBreaching" for a in alarms.values())
    topic = resources["AlarmTopic"]
    assert topic["Condition"] == "MailAlarms" and topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]
    assert t["Parameters"]["AlarmEmail"]["Default"] == "" and t["Parameters"]["EnableTracing"]["Default"] == "false"
    # tracing: off unless EnableTracing; then X-Ray active, the Tracer's switch set, and the role may send traces
    for m in modules():
        function = resources[f"{m.capitalize()}Function"]["Properties"]
        assert function["TracingConfig"] == {"Mode": {"Fn::If": ["Traced", "Active", "PassThrough"]}}
        variables = function["Environment"]["Variables"]
        assert variables["SKYSHELF_TRACING"] == {"Fn::If": ["Traced", "true", {"Ref": "AWS::NoValue"}]}
        assert variables["POWERTOOLS_SERVICE_NAME"] == {"Fn::Sub": f"${{AWS::StackName}}-{m}"}  # the metrics' service: the function's name
    traces = resources["HandlerTraces"]
    assert traces["Condition"] == "Traced" and traces["Properties"]["Roles"] == [{"Ref": "HandlerRole"}]
    assert traces["Properties"]["PolicyDocument"]["Statement"][0]["Action"] == ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]


def test_deploy_parameters_carry_the_alarm_settings() -> None:
    from publisher.config.models import Deploy
    from publisher.deploy.stack import Target, parameters

    target = Target(STACK, "us-east-1", "123456789012", "data", "code", "")
    given = {p["ParameterKey"]: p["ParameterValue"] for p in parameters(Deploy(alarm_email="ops@example.org", tracing=True, server_error_percent=2.5), target, [])}
    assert (given["AlarmEmail"], given["EnableTracing"], given["ServerErrorPercent"]) == ("ops@example.org", "true", "2.5")
    default = {p["ParameterKey"]: p["ParameterValue"] for p in parameters(Deploy(), target, [])}
    assert (default["AlarmEmail"], default["EnableTracing"], default["ServerErrorPercent"]) == ("", "false", "5")
    assert set(given) <= set(template()["Parameters"])


# -- publish status against moto's server ------------------------------------------------------
@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with moto_server(tmp_path_factory.mktemp("moto-status")) as server, environ({**server.env(), "AWS_REGION": "us-east-1"}):
        yield {**server.env(), "AWS_REGION": "us-east-1"}


def _pipeline(folder: Path) -> Path:
    config = {"sources": [{"path": "data"}], "output": {"store": str(folder / "site")}, "deploy": {"stack_name": STACK}}
    (folder / "pipeline.yml").write_text(json.dumps(config))
    return folder / "pipeline.yml"


def _put(cloudwatch: object, namespace: str, name: str, dimensions: dict[str, str], values: list[float], unit: str = "Count") -> None:
    when = datetime.now(UTC) - timedelta(minutes=10)
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[  # type: ignore[attr-defined]
        {"MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()], "Timestamp": when, "Value": v, "Unit": unit}
        for v in values])


def test_status_prints_the_last_hour_from_cloudwatch(aws: dict[str, str], tmp_path: Path) -> None:
    import boto3

    boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(
        {"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": f"{STACK}-probe"}}}}))
    cw = boto3.client("cloudwatch")
    meta, arrays = f"{STACK}-metadata", f"{STACK}-arrays"
    # what the handlers' EMF documents become: per function (service) and per route (service, route)
    _put(cw, "Skyshelf", "Requests", {"service": meta}, [1] * 12)
    _put(cw, "Skyshelf", "4xx", {"service": meta}, [1, 1, 0, 0])
    _put(cw, "Skyshelf", "5xx", {"service": meta}, [1, 0])
    _put(cw, "Skyshelf", "CacheHits", {"service": meta}, [3])
    _put(cw, "Skyshelf", "Latency", {"service": meta}, [10, 20, 30], unit="Milliseconds")
    _put(cw, "Skyshelf", "Latency", {"service": meta, "route": "GET /api/v1/metadata/{path+}"}, [10, 20, 30], unit="Milliseconds")
    _put(cw, "Skyshelf", "Requests", {"service": arrays}, [1] * 4)
    _put(cw, "Skyshelf", "Spills", {"service": arrays}, [1])
    _put(cw, "Skyshelf", "Requests", {"service": "other-stack-metadata"}, [1] * 100)  # another stack's: not counted
    # Lambda's own (moto takes them as any namespace)
    _put(cw, "AWS/Lambda", "Errors", {"FunctionName": meta}, [1])
    _put(cw, "AWS/Lambda", "Throttles", {"FunctionName": meta}, [2, 1])

    pipeline = _pipeline(tmp_path)
    shown = CliRunner().invoke(main, ["status", "-c", str(pipeline)], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    rows = {line.split()[0]: line.split()[1:] for line in shown.output.splitlines() if line.startswith(f"  {STACK}-")}
    # requests, 4xx, 5xx, errors, throttles, p50, p99 (moto computes no percentiles), cache hits, spills
    assert rows[meta] == ["12", "2", "1", "1", "3", "-", "-", "3", "0"], shown.output
    assert rows[arrays] == ["4", "0", "0", "0", "0", "-", "-", "0", "1"]
    assert rows[f"{STACK}-tables"] == ["0", "0", "0", "0", "0", "-", "-", "0", "0"]
    assert f"stack {STACK} (us-east-1): CREATE_COMPLETE" in shown.output and "last 1 h (CloudWatch):" in shown.output

    as_json = CliRunner().invoke(main, ["status", "-c", str(pipeline), "--json"], catch_exceptions=False)
    functions = {f["function"]: f for f in json.loads(as_json.stdout)["functions"]}
    assert functions[meta]["requests"] == 12 and functions[meta]["throttles"] == 3 and functions[arrays]["spills"] == 1


def _run(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-m", "publisher.cli", "status", "-c", "pipeline.yml"], cwd=cwd, env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=False)


def test_status_errors_are_one_line(aws: dict[str, str], tmp_path: Path) -> None:
    _pipeline(tmp_path)
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = _run({**aws, "AWS_ENDPOINT_URL_CLOUDWATCH": closed}, tmp_path)  # the stack answers, CloudWatch does not
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    (line,) = unreachable.stderr.strip().splitlines()
    assert line.startswith("error: cannot read CloudWatch metrics:") and closed in line
    nobody = _run({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": aws["AWS_ENDPOINT_URL"], "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                   "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}, tmp_path)
    assert nobody.returncode == 1 and "Traceback" not in nobody.stderr
    (line,) = nobody.stderr.strip().splitlines()
    assert line == "error: cannot reach AWS with the environment's credentials: Unable to locate credentials"
