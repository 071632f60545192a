"""The template's watch over a deployed stack: CloudWatch alarms on the API's 5xx rate and on each
function's throttles and errors, an optional SNS topic that mails them, and X-Ray tracing when
switched on. Merged into the template by :mod:`.template` (docs/deploy.md "Observability").
"""

from __future__ import annotations

from typing import Any

#: Seconds each alarm's data is summed over, and how many such periods in a row must breach.
PERIOD = 300
EVALUATION_PERIODS = 1
#: Requests in a period below which the 5xx rate alarm stays quiet (one failed request of two is no outage).
MIN_REQUESTS = 10

PARAMETERS: dict[str, Any] = {
    "AlarmEmail": {"Type": "String", "Default": "", "AllowedPattern": r"^$|^[^@\s]+@[^@\s]+$",
                   "Description": "Mail the alarms here (an SNS topic subscription to confirm); empty: alarms without notifications."},
    "ServerErrorPercent": {"Type": "Number", "Default": 5, "MinValue": 0, "MaxValue": 100,
                           "Description": f"Alarm when more than this percentage of the API's answers in {PERIOD // 60} minutes are 5xx."},
    "EnableTracing": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "false",
                      "Description": "X-Ray active tracing of the functions (Powertools' Tracer; the packages then carry aws-xray-sdk)."},
}

CONDITIONS: dict[str, Any] = {
    "MailAlarms": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
    "Traced": {"Fn::Equals": [{"Ref": "EnableTracing"}, "true"]},
}

#: Where an alarm goes when it fires and when it clears.
_ACTIONS = {"Fn::If": ["MailAlarms", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}


def _alarm(description: str, threshold: Any, **metric: Any) -> dict[str, Any]:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": description, "ComparisonOperator": "GreaterThanThreshold", "Threshold": threshold,
        "EvaluationPeriods": EVALUATION_PERIODS, "TreatMissingData": "notBreaching",
        "AlarmActions": _ACTIONS, "OKActions": _ACTIONS, **metric}}


def _function_metric(function: str, name: str) -> dict[str, Any]:
    return {"Namespace": "AWS/Lambda", "MetricName": name, "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
            "Statistic": "Sum", "Period": PERIOD}


def _api_metric(name: str, id_: str) -> dict[str, Any]:
    return {"Id": id_, "ReturnData": False, "MetricStat": {"Stat": "Sum", "Period": PERIOD, "Metric": {
        "Namespace": "AWS/ApiGateway", "MetricName": name, "Dimensions": [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]}}}


def resources(functions: dict[str, str]) -> dict[str, Any]:
    """The alarms (``functions``: each function's logical id by module), the topic and the tracing policy."""
    out: dict[str, Any] = {
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Condition": "MailAlarms", "Properties": {
            "DisplayName": {"Fn::Sub": "${AWS::StackName} alarms"},
            "Subscription": [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]}},
        # API Gateway's own count of 5xx answers (a function's crash or timeout included, which no handler can count)
        "ServerErrorRateAlarm": _alarm(
            {"Fn::Sub": f"${{AWS::StackName}}: more than ${{ServerErrorPercent}}% of the API's answers in {PERIOD // 60} minutes were 5xx"},
            {"Ref": "ServerErrorPercent"},
            Metrics=[_api_metric("5xx", "errors"), _api_metric("Count", "requests"),
                     {"Id": "rate", "Label": "5xx %", "ReturnData": True,
                      "Expression": f"IF(requests >= {MIN_REQUESTS}, 100 * errors / requests, 0)"}]),
        "HandlerTraces": {"Type": "AWS::IAM::Policy", "Condition": "Traced", "Properties": {
            "PolicyName": "skyshelf-traces", "Roles": [{"Ref": "HandlerRole"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"}]}}},
    }
    for module, function in functions.items():
        for metric, what in (("Throttles", "throttled requests (concurrency limit reached)"),
                             ("Errors", "failed invocations (a crash, a timeout or memory exhausted)")):
            out[f"{function.removesuffix('Function')}{metric}Alarm"] = _alarm(
                {"Fn::Sub": f"${{AWS::StackName}}-{module}: {what} in {PERIOD // 60} minutes"}, 0, **_function_metric(function, metric))
    return out


def function_properties() -> dict[str, Any]:
    """What each function gets: X-Ray active tracing and the Tracer's switch when ``EnableTracing``."""
    return {"TracingConfig": {"Mode": {"Fn::If": ["Traced", "Active", "PassThrough"]}}}


#: The Tracer's switch in each function's environment (handlers/settings.py ``tracing``).
TRACING_VARIABLE = {"SKYSHELF_TRACING": {"Fn::If": ["Traced", "true", {"Ref": "AWS::NoValue"}]}}

OUTPUTS: dict[str, Any] = {
    "AlarmTopicArn": {"Condition": "MailAlarms", "Description": "The SNS topic the alarms notify", "Value": {"Ref": "AlarmTopic"}},
}
