"""``GET /api/v1/auth/credentials``: short-lived S3 credentials for a signed-in caller, scoped to
exactly what its tags reach, so s3fs, zarr, pyarrow and DuckDB read private data straight from
the bucket.

STS ``AssumeRole`` of the deploy's credentials role with an inline session policy: the effective
permissions are the intersection of the role's (read ``private/``) and the session policy's,
which grants ``s3:GetObject`` on ``private/<class>/*`` for each access class whose chain of tag
sets the caller may read (the build lists the classes in the private catalog's ``access``), on
the public keys, and ``s3:ListBucket`` only under the same prefixes. ``?node=<path>`` (repeatable)
adds where those nodes' data are (``urls``: ``s3://`` URLs of Zarr hierarchies and Parquet files). A GET (API Gateway routes
it like every read; the answer is ``no-store``). boto3 (the Lambda runtime's) is imported by
the first request.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from publisher.auth.principal import Principal
from publisher.errors import BadRequest, NotFound, StoreError, Unauthorized
from publisher.stores.s3_objects import split_root

from . import common, settings

#: AWS's limit on an inline session policy (it is packed, but JSON without spaces is a safe bound).
MAX_POLICY_CHARS = 2048
#: What STS takes as DurationSeconds. The role's MaxSessionDuration may allow less, and on Lambda
#: AWS allows at most 3600: the function's own role assumes the credentials role (role chaining).
#: STS's refusal is the caller's 400, saying so.
MIN_SECONDS, MAX_SECONDS = 900, 43200
#: STS's codes for a DurationSeconds past what it allows (AWS; SeaweedFS's STS).
_TOO_LONG = ("ValidationError", "InvalidParameterValue")

_lock = threading.Lock()
_clients: dict[tuple[settings.Settings, str], Any] = {}


def readable_prefixes(caller: Principal, access: dict[str, Any], root: str = "") -> list[str]:
    """The key prefixes the caller may read directly: each readable access class's private
    prefix, then the public view (``releases/`` and ``catalog.json``), all under the store's
    ``root`` in the bucket."""
    classes: dict[str, list[list[str]]] = access.get("classes") or {}
    own = sorted(name for name, chain in classes.items() if caller.can_read_chain(chain))
    return [f"{root}private/{name}/" for name in own] + [f"{root}releases/", f"{root}catalog.json"]


def session_policy(bucket: str, prefixes: list[str], partition: str = "aws") -> str:
    """The session policy (compact JSON): GetObject on each prefix (a key, when it does not end in
    ``/``), ListBucket where the listed prefix is under one of them."""
    patterns = [p + "*" if p.endswith("/") else p for p in prefixes]
    arn = f"arn:{partition}:s3:::{bucket}"
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": [f"{arn}/{p}" for p in patterns]},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": arn,
         "Condition": {"StringLike": {"s3:prefix": [p for p in patterns if p.endswith("*")]}}}]}
    return json.dumps(document, separators=(",", ":"))


def _session_name(caller: Principal) -> str:
    """STS's RoleSessionName ([\\w+=,.@-], 2 to 64 characters): who asked, for CloudTrail."""
    return re.sub(r"[^\w+=,.@-]", "-", f"skyshelf-{caller.kind}-{caller.name or 'caller'}")[:64]


def _client(service: str, current: settings.Settings) -> Any:
    """A boto3 client, made once per settings (the environment's AWS settings are read then)."""
    with _lock:
        found = _clients.get((current, service))
    if found is None:
        import boto3

        endpoint = current.sts_endpoint_url if service == "sts" else None
        found = boto3.client(service, **({"endpoint_url": endpoint} if endpoint else {}))
        with _lock:
            _clients[(current, service)] = found
    return found


def credentials(app: APIGatewayHttpResolver) -> Response:
    view = common.catalog()
    caller = view.principal
    if caller.anonymous:
        raise Unauthorized("scoped S3 credentials are for signed-in callers: send an API key or a token")
    current, store = settings.current(), common.store()
    if not store.is_s3:
        raise NotFound("no S3 credentials here: the store is a folder (read private nodes through /api/v1/zarr/v3/...)")
    if not current.credentials_role_arn:
        raise NotFound("scoped S3 credentials are not enabled on this server (SKYSHELF_CREDENTIALS_ROLE_ARN is unset)")
    params = common.query(app)
    seconds = common.integer(params, "duration", current.credentials_seconds, MIN_SECONDS, MAX_SECONDS)
    bucket, root = split_root(store.url)
    root = f"{root.strip('/')}/" if root.strip("/") else ""
    urls = {}
    for node in params.get("node", []):  # where nodes' data are (read through the caller's view: hidden is missing)
        entry = view.entry(node)
        if not entry.data_url:
            raise NotFound(f"{entry.path!r} has no data of its own (a folder): ask for the nodes in it")
        urls[entry.path] = f"s3://{bucket}/{root}{entry.data_url}"
    prefixes = readable_prefixes(caller, view.info.access or {}, root)
    partition = current.credentials_role_arn.split(":")[1] if current.credentials_role_arn.count(":") >= 5 else "aws"
    policy = session_policy(bucket, prefixes, partition)
    if len(policy) > MAX_POLICY_CHARS:
        raise BadRequest(f"your tags reach {len(prefixes) - 2} access classes: a session policy of {len(policy)} characters is past "
                         f"STS's {MAX_POLICY_CHARS}; read through /api/v1/zarr/v3/... or use a key with fewer tags")
    sts = _client("sts", current)
    try:
        granted = sts.assume_role(RoleArn=current.credentials_role_arn, RoleSessionName=_session_name(caller),
                                  Policy=policy, DurationSeconds=seconds)["Credentials"]
    except Exception as exc:  # botocore's ClientError, an unreachable endpoint
        error = getattr(exc, "response", {}).get("Error", {})
        code = error.get("Code", type(exc).__name__)
        if code in _TOO_LONG and "duration" in str(error.get("Message", "")).lower():
            raise BadRequest(f"duration={seconds} is longer than these credentials may last: {error.get('Message')} "
                             f"(on AWS Lambda at most 3600)") from None
        common.log.warning("STS refused", role=current.credentials_role_arn, code=code, error=str(exc))
        raise StoreError(f"STS refused to grant the credentials ({code})") from None  # (the role's ARN, its account: the log's)
    s3 = _client("s3", current)
    body = {"AccessKeyId": granted["AccessKeyId"], "SecretAccessKey": granted["SecretAccessKey"],
            "SessionToken": granted["SessionToken"], "Expiration": granted["Expiration"].isoformat(),
            "bucket": bucket, "prefixes": prefixes, "region": s3.meta.region_name, "endpoint_url": s3.meta.endpoint_url,
            **({"urls": urls} if urls else {})}
    return Response(200, "application/json", json.dumps(body), {"Cache-Control": "no-store", "Vary": "Authorization"})
