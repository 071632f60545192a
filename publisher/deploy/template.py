"""The CloudFormation template, generated from the function table (:mod:`publisher.functions`):
one Lambda function per row (its memory and timeout), one HTTP API route per route. ``infra/template.yaml`` is
this template written out (``publish template``; a test keeps the two equal).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from handlers import cors

from .. import spills
from ..functions import BY_NAME, ROUTES, modules
from . import alarms

#: Lambda's Python runtimes that can still be created (python3.11's creation ended on 2026-07-31).
RUNTIMES = ("python3.12", "python3.13", "python3.14")
DEFAULT_RUNTIME = "python3.13"
#: Where handlers may write: oversized answers spilled for a redirect (``handlers.http.spill``),
#: anonymous callers' and (under ``private/``) signed-in callers'.
EXPORTS_PREFIX = f"{spills.PREFIX}/"
PRIVATE_EXPORTS_PREFIX = f"{spills.PRIVATE_PREFIX}/"
#: What anyone may read when the bucket is public: the public view (a catalog without private
#: nodes has everything there). Never ``private/`` (the full view, private data, keys, private spills).
PUBLIC_KEYS = ("catalog.json", "releases/*")
#: The route whose function exchanges a caller's credentials for scoped S3 ones (handlers/credentials.py).
CREDENTIALS_ROUTE = "/api/v1/auth/credentials"
#: API Gateway's access log line (JSON; $context variables of HTTP APIs).
ACCESS_LOG_FORMAT = json.dumps({"requestId": "$context.requestId", "time": "$context.requestTimeEpoch", "ip": "$context.identity.sourceIp",
                                "method": "$context.httpMethod", "route": "$context.routeKey", "status": "$context.status",
                                "integrationStatus": "$context.integrationStatus", "integrationError": "$context.integrationErrorMessage",
                                "latencyMs": "$context.responseLatency", "bytes": "$context.responseLength"}, separators=(",", ":"))
#: ``${StorePrefix}/`` as S3 keys start (nothing at the bucket's root), for ``s3:prefix`` conditions.
KEY_PREFIX = {"Fn::If": ["AtRoot", "", {"Fn::Sub": "${StorePrefix}/"}]}


def _cap(name: str) -> str:
    return name[:1].upper() + name[1:]


def _route_keys(path: str) -> list[str]:
    """API Gateway route keys for one route: a greedy ``{path+}`` needs at least one segment,
    so the bare prefix (the root node) gets a route of its own. Paths ending in ``/`` (the root
    node as the tiled client asks for it, ``/api/v1/``) are left to the ``$default`` route; ``/``
    (the browse page) has its own."""
    if path.endswith("/{path+}"):
        return [path, path[: -len("/{path+}")]]
    return [] if path.endswith("/") and path != "/" else [path]


#: The store's address in a public bucket (anonymous HTTPS reads of the public view).
PUBLIC_URL = "https://${BucketName}.s3.${AWS::Region}.${AWS::URLSuffix}${StorePath}"


def _function(module: str) -> dict[str, Any]:
    name = _cap(module)
    credentials = any(r.module == module and r.path == CREDENTIALS_ROUTE for r in ROUTES)
    return {
        "Type": "AWS::Lambda::Function",
        "DependsOn": [f"{name}LogGroup"],
        "Properties": {
            "FunctionName": {"Fn::Sub": f"${{AWS::StackName}}-{module}"},
            "Description": f"Skyshelf {module} handler (handlers/{module}.py)",
            "Handler": BY_NAME[module].handler,
            "Runtime": {"Ref": "Runtime"},
            "Architectures": [{"Ref": "Architecture"}],
            "MemorySize": {"Ref": f"{name}Memory"},
            "Timeout": BY_NAME[module].timeout,
            "Role": {"Fn::GetAtt": ["HandlerRole", "Arn"]},
            "Code": {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": f"{name}CodeKey"}},
            **alarms.function_properties(),
            "Environment": {"Variables": {
                "SKYSHELF_STORE": {"Fn::Sub": "s3://${BucketName}${StorePath}"},
                "SKYSHELF_S3_BACKEND": BY_NAME[module].s3_backend,
                # the function's name: its log lines' service and its metrics' service dimension (one stack's apart from another's)
                "POWERTOOLS_SERVICE_NAME": {"Fn::Sub": f"${{AWS::StackName}}-{module}"},
                **alarms.TRACING_VARIABLE,
                "PYTHONDONTWRITEBYTECODE": "1",
                "SKYSHELF_KEYS_TABLE": {"Ref": "KeysTable"},  # API key records (publish keys --deployed)
                **({"SKYSHELF_CREDENTIALS_ROLE_ARN": {"Fn::GetAtt": ["CredentialsRole", "Arn"]}} if credentials else {}),
                # data_sources' addresses (include_data_sources=true): the public bucket's URL, when it is public
                **({"SKYSHELF_DIRECT_URL": {"Fn::If": ["Public", {"Fn::Sub": PUBLIC_URL}, {"Ref": "AWS::NoValue"}]}}
                   if module == "metadata" else {}),
            }},
        },
    }


def keys_table_name(stack: str) -> str:
    """The stack's API key table: named after the stack, so ``publish keys --deployed`` finds it from the pipeline alone."""
    return f"{stack}-api-keys"


def template() -> dict[str, Any]:
    """The whole template as a dictionary (CloudFormation's JSON form)."""
    mods = modules()
    parameters: dict[str, Any] = {
        "BucketName": {"Type": "String", "Description": "The data bucket (made by this stack when CreateBucket is true)."},
        "CreateBucket": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "true",
                         "Description": "Make the data bucket in this stack (kept when the stack is deleted), or use an existing one."},
        "StorePrefix": {"Type": "String", "Default": "", "Description": "Folder of the published store in the bucket, e.g. demo (empty: the bucket's root)."},
        "PublicRead": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "true",
                       "Description": "Anyone may read the published objects (the bucket policy says so); false: only the handlers."},
        "CodeBucket": {"Type": "String", "Description": "Bucket holding the functions' zip files (publish deploy's artifacts bucket)."},
        "Runtime": {"Type": "String", "AllowedValues": list(RUNTIMES), "Default": DEFAULT_RUNTIME,
                    "Description": "Lambda's Python runtime (the packages are built for it)."},
        "Architecture": {"Type": "String", "AllowedValues": ["x86_64", "arm64"], "Default": "x86_64"},
        "LogRetentionDays": {"Type": "Number", "Default": 14,
                             "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]},
        "CorsAllowOrigin": {"Type": "String", "Default": "*", "Description": "Origin browsers may call the API from."},
        "EnableCloudFront": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "false",
                             "Description": "Put a CloudFront distribution in front of the API."},
        **alarms.PARAMETERS,
    }
    for m in mods:
        parameters[f"{_cap(m)}CodeKey"] = {"Type": "String", "Description": f"Key of the {m} function's zip in CodeBucket (named by its content hash)."}
        parameters[f"{_cap(m)}Memory"] = {"Type": "Number", "Default": BY_NAME[m].memory, "MinValue": 128, "MaxValue": 10240}

    resources: dict[str, Any] = {
        "DataBucket": {
            "Type": "AWS::S3::Bucket", "Condition": "MakeBucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BucketName": {"Ref": "BucketName"},
                "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                                                   "BlockPublicPolicy": {"Fn::If": ["Public", False, True]},
                                                   "RestrictPublicBuckets": {"Fn::If": ["Public", False, True]}},
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                # browsers on other origins read the files directly, and follow redirects to spilled answers
                "CorsConfiguration": {"CorsRules": [{"AllowedMethods": ["GET", "HEAD"], "AllowedOrigins": [{"Ref": "CorsAllowOrigin"}],
                                                     "AllowedHeaders": ["*"], "ExposedHeaders": list(cors.EXPOSE_HEADERS),
                                                     "MaxAge": cors.MAX_AGE}]},
                # spilled answers: handlers write them again past spills.MAX_AGE, so none is redirected to as it expires
                "LifecycleConfiguration": {"Rules": [
                    {"Id": rule, "Status": "Enabled", "ExpirationInDays": spills.EXPIRY_DAYS,
                     "Prefix": {"Fn::If": ["AtRoot", prefix, {"Fn::Sub": f"${{StorePrefix}}/{prefix}"}]}}
                    for rule, prefix in (("expire-spilled-answers", EXPORTS_PREFIX), ("expire-private-spilled-answers", PRIVATE_EXPORTS_PREFIX))]
                    # multipart uploads cut short (a spill past its function's time, a deploy's big upload stopped) are billed until aborted
                    + [{"Id": "abort-incomplete-uploads", "Status": "Enabled", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]},
            },
        },
        "DataBucketPolicy": {
            "Type": "AWS::S3::BucketPolicy", "Condition": "MakeBucket",
            "Properties": {"Bucket": {"Ref": "DataBucket"}, "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                 "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}, {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/*"}],
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
                {"Fn::If": ["Public", {"Sid": "PublicReadOfThePublicView", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                       "Resource": [{"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{BucketName}}${{StorePath}}/{key}"}
                                                    for key in PUBLIC_KEYS]}, {"Ref": "AWS::NoValue"}]},
            ]}},
        },
        "HandlerRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": "Skyshelf handlers: read the published store, write only spilled answers, write their own logs.",
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
                "Policies": [{"PolicyName": "skyshelf-handlers", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Sid": "ReadPublished", "Effect": "Allow", "Action": "s3:GetObject",
                     "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}${StorePath}/*"}},
                    {"Sid": "ListPublished", "Effect": "Allow", "Action": "s3:ListBucket",
                     "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}},
                    {"Sid": "WriteSpilledAnswers", "Effect": "Allow", "Action": "s3:PutObject",
                     "Resource": [{"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{BucketName}}${{StorePath}}/{prefix}*"}
                                  for prefix in (EXPORTS_PREFIX, PRIVATE_EXPORTS_PREFIX)]},
                    {"Sid": "ReadApiKeys", "Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["KeysTable", "Arn"]}},
                    {"Sid": "OwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                     "Resource": [{"Fn::Sub": f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/aws/lambda/${{AWS::StackName}}-{m}:*"}
                                  for m in mods]},
                ]}}],
            },
        },
        # API key records (publisher/auth/key_records.py): a salted hash each, read one item per
        # key; deleted with the stack (its keys mean nothing without it: failing closed)
        "KeysTable": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete", "Properties": {
            "TableName": {"Fn::Sub": keys_table_name("${AWS::StackName}")}, "BillingMode": "PAY_PER_REQUEST", "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], "SSESpecification": {"SSEEnabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}}},
        **_credentials_role(),
        "HttpApi": {
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {
                "Name": {"Ref": "AWS::StackName"}, "ProtocolType": "HTTP",
                "Description": "Tiled's HTTP API (/api/v1) over a Skyshelf store",
                # API Gateway answers preflights and adds the headers itself (handlers.cors is the same policy locally)
                "CorsConfiguration": {"AllowOrigins": [{"Ref": "CorsAllowOrigin"}], "AllowMethods": list(cors.METHODS),
                                      "AllowHeaders": [h.lower() for h in cors.ALLOW_HEADERS],
                                      "ExposeHeaders": [h.lower() for h in cors.EXPOSE_HEADERS], "MaxAge": cors.MAX_AGE},
            },
        },
        # API Gateway's own line per request: what never reached a function (its 429s, 413s, the 504
        # at 30 s, a crashed function's 502) is logged nowhere else. No path, query or headers (a
        # private node's name, an api_key): the route and the request id, which the function's lines carry
        "ApiAccessLogGroup": {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
                              "Properties": {"LogGroupName": {"Fn::Sub": "/aws/apigateway/${AWS::StackName}-access"},
                                             "RetentionInDays": {"Ref": "LogRetentionDays"}}},
        "DefaultStage": {"Type": "AWS::ApiGatewayV2::Stage",
                         "Properties": {"ApiId": {"Ref": "HttpApi"}, "StageName": "$default", "AutoDeploy": True,
                                        "DefaultRouteSettings": {"ThrottlingBurstLimit": 500, "ThrottlingRateLimit": 1000},
                                        "AccessLogSettings": {"DestinationArn": {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]},
                                                              "Format": ACCESS_LOG_FORMAT}}},
    }
    for m in mods:
        name = _cap(m)
        resources[f"{name}LogGroup"] = {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
                                        "Properties": {"LogGroupName": {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{m}"},
                                                       "RetentionInDays": {"Ref": "LogRetentionDays"}}}
        resources[f"{name}Function"] = _function(m)
        resources[f"{name}Integration"] = {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
            "ApiId": {"Ref": "HttpApi"}, "IntegrationType": "AWS_PROXY", "PayloadFormatVersion": "2.0", "TimeoutInMillis": 30000,
            "IntegrationUri": {"Fn::GetAtt": [f"{name}Function", "Arn"]}}}
        resources[f"{name}Permission"] = {"Type": "AWS::Lambda::Permission", "Properties": {
            "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": f"{name}Function"}, "Principal": "apigateway.amazonaws.com",
            "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/*"}}}
    seen: set[str] = set()
    for route in ROUTES:
        # HEAD wherever GET (HTTP APIs route HEAD on its own: to $default, whose function answered
        # 405 while its Allow header listed HEAD); the entry point answers it as GET, without the body
        for method, path in itertools.product(("GET", "HEAD") if route.method == "GET" else (route.method,), _route_keys(route.path)):
            key = f"{method} {path}"
            if key in seen:
                continue
            seen.add(key)
            logical = "Route" + "".join(ch for ch in _cap(method.lower()) + path.title() if ch.isalnum())
            resources[logical] = {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
                "ApiId": {"Ref": "HttpApi"}, "RouteKey": key, "Target": {"Fn::Sub": f"integrations/${{{_cap(route.module)}Integration}}"}}}
    # everything else (the root with a trailing slash, unknown paths): the metadata function, whose
    # resolver answers those it knows and 404s the rest
    resources["RouteDefault"] = {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
        "ApiId": {"Ref": "HttpApi"}, "RouteKey": "$default", "Target": {"Fn::Sub": "integrations/${MetadataIntegration}"}}}
    resources.update(_cloudfront())
    resources.update(alarms.resources({m: f"{_cap(m)}Function" for m in mods}))
    return _with_store_path({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Skyshelf: a published store served by stateless Lambda handlers behind an HTTP API (Tiled's /api/v1).",
        "Parameters": parameters,
        "Conditions": {
            "MakeBucket": {"Fn::Equals": [{"Ref": "CreateBucket"}, "true"]},
            "Public": {"Fn::Equals": [{"Ref": "PublicRead"}, "true"]},
            "UseCloudFront": {"Fn::Equals": [{"Ref": "EnableCloudFront"}, "true"]},
            "AtRoot": {"Fn::Equals": [{"Ref": "StorePrefix"}, ""]},
            **alarms.CONDITIONS,
        },
        "Resources": resources,
        "Outputs": {
            "ApiUrl": {"Description": "The API (give the tiled client this)",
                       "Value": {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api/v1"}},
            "DataUrl": {"Description": "The published store over HTTPS (zarr, xarray, pandas read it directly)",
                        "Value": {"Fn::Sub": PUBLIC_URL}},
            "StoreUrl": {"Description": "The published store as an S3 URL", "Value": {"Fn::Sub": "s3://${BucketName}${StorePath}"}},
            "CloudFrontUrl": {"Condition": "UseCloudFront", "Description": "The API through CloudFront",
                              "Value": {"Fn::Sub": "https://${Distribution.DomainName}/api/v1"}},
            "KeysTable": {"Description": "The API keys' table (publish keys --deployed)", "Value": {"Ref": "KeysTable"}},
            **{f"{_cap(m)}FunctionName": {"Value": {"Ref": f"{_cap(m)}Function"}} for m in mods},
            **alarms.OUTPUTS,
        },
    })


def _credentials_role() -> dict[str, Any]:
    """The role ``/auth/credentials`` assumes for a signed-in caller (handlers/credentials.py): it
    may read the private data and the public view, and each AssumeRole narrows it with a session
    policy to the prefixes the caller's tags reach. Only the handlers' role may assume it."""
    bucket = "arn:${AWS::Partition}:s3:::${BucketName}"
    readable = ["private/*", *PUBLIC_KEYS]
    return {
        "CredentialsRole": {"Type": "AWS::IAM::Role", "Properties": {
            "Description": "Skyshelf scoped direct reads: assumed by the handlers with a session policy per caller.",
            "MaxSessionDuration": 43200,
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": {"Fn::GetAtt": ["HandlerRole", "Arn"]}}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "skyshelf-direct-reads", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Sid": "ReadPrivateAndPublic", "Effect": "Allow", "Action": "s3:GetObject",
                 "Resource": [{"Fn::Sub": f"{bucket}${{StorePath}}/{key}"} for key in readable]},
                {"Sid": "ListPrivateAndPublic", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": {"Fn::Sub": bucket},
                 "Condition": {"StringLike": {"s3:prefix": [{"Fn::Join": ["", [KEY_PREFIX, key]]} for key in readable if key.endswith("*")]}}},
            ]}}]}},
        "HandlerAssumesCredentialsRole": {"Type": "AWS::IAM::Policy", "Properties": {
            "PolicyName": "skyshelf-assume-credentials-role", "Roles": [{"Ref": "HandlerRole"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": {"Fn::GetAtt": ["CredentialsRole", "Arn"]}}]}}},
    }


#: ``${StorePath}`` in a Sub: nothing at the bucket's root, else ``/`` and the prefix.
STORE_PATH = {"Fn::If": ["AtRoot", "", {"Fn::Sub": "/${StorePrefix}"}]}


def _with_store_path(node: Any) -> Any:
    """Give every ``Fn::Sub`` that names ``${StorePath}`` its value (Sub's variable-map form)."""
    if isinstance(node, dict):
        sub = node.get("Fn::Sub")
        if len(node) == 1 and isinstance(sub, str) and "${StorePath}" in sub:
            return {"Fn::Sub": [sub, {"StorePath": STORE_PATH}]}
        return {k: _with_store_path(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_store_path(v) for v in node]
    return node


def _cloudfront() -> dict[str, Any]:
    """CloudFront in front of the API (optional): the cache key is what answers vary on: the
    path, every query parameter, ``Accept``, ``Origin`` (CORS), ``Authorization`` and the
    compression the client accepts."""
    return {
        "ApiCachePolicy": {"Type": "AWS::CloudFront::CachePolicy", "Condition": "UseCloudFront", "Properties": {"CachePolicyConfig": {
            "Name": {"Fn::Sub": "${AWS::StackName}-api"}, "DefaultTTL": 30, "MinTTL": 0, "MaxTTL": 86400,
            "ParametersInCacheKeyAndForwardedToOrigin": {
                "EnableAcceptEncodingGzip": True, "EnableAcceptEncodingBrotli": True,
                "QueryStringsConfig": {"QueryStringBehavior": "all"},
                # Origin: API Gateway adds CORS headers only for requests that carry one
                # Authorization: CloudFront forwards it only when it is in the cache key (without it every caller
                # would reach the API anonymous, and be served anonymous answers); signed-in answers are private, never kept
                "HeadersConfig": {"HeaderBehavior": "whitelist", "Headers": ["Accept", "Origin", "Authorization"]},
                "CookiesConfig": {"CookieBehavior": "none"}}}}},
        "Distribution": {"Type": "AWS::CloudFront::Distribution", "Condition": "UseCloudFront", "Properties": {"DistributionConfig": {
            "Enabled": True, "Comment": {"Fn::Sub": "${AWS::StackName}: Skyshelf API"}, "HttpVersion": "http2and3", "PriceClass": "PriceClass_100",
            "Origins": [{"Id": "api", "DomainName": {"Fn::Sub": "${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"},
                         "CustomOriginConfig": {"OriginProtocolPolicy": "https-only", "OriginSSLProtocols": ["TLSv1.2"]}}],
            "DefaultCacheBehavior": {"TargetOriginId": "api", "ViewerProtocolPolicy": "redirect-to-https",
                                     # CloudFront forwards POST (awkward/buffers) only with all seven methods; PUT, PATCH and DELETE have no route (404)
                                     "AllowedMethods": ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"],
                                     "CachedMethods": ["GET", "HEAD"], "Compress": True,
                                     "CachePolicyId": {"Ref": "ApiCachePolicy"},
                                     # every viewer header but Host, which API Gateway needs to be its own
                                     "OriginRequestPolicyId": "b689b0a8-53d0-40ab-baf2-68738e2966ac"}}}},
    }


def template_yaml() -> str:
    """The template as YAML, as ``infra/template.yaml`` holds it."""
    import yaml

    header = "# Generated by `publish template` from publisher/functions.py and publisher/deploy/template.py: edit those, not this.\n"
    class _NoAliases(yaml.SafeDumper):
        """CloudFormation rejects YAML aliases: a value used twice is written out twice."""

        def ignore_aliases(self, data: object) -> bool:
            return True

    return header + yaml.dump(template(), Dumper=_NoAliases, sort_keys=False, width=140)
