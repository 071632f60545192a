"""Deploy, inspect and destroy a Skyshelf stack with boto3: packages up by content hash, the
stack created or updated through a change set, then the release uploaded.

Every AWS client is made from the standard environment (``AWS_PROFILE``, ``AWS_REGION``,
``AWS_ENDPOINT_URL`` ...), so the same command deploys to AWS or to moto's server.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from ..config.models import Deploy
from ..errors import SkyshelfError
from ..functions import modules
from .package import TRACING_REQUIREMENTS, Package, build_package
from .template import keys_table_name, template
from .upload import UploadReport, upload_store

NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


class DeployError(SkyshelfError):
    """AWS refused a step of the deployment; the message names the step and AWS's reason."""


@dataclass
class Target:
    """The resolved names of a deployment."""

    stack: str
    region: str
    account: str
    bucket: str
    artifacts: str
    prefix: str

    @classmethod
    def resolve(cls, settings: Deploy, session: Any, stack: str | None = None, bucket: str | None = None) -> Target:
        name = stack or settings.stack_name
        try:
            account = session.client("sts").get_caller_identity()["Account"]
        except Exception as exc:
            raise DeployError(f"cannot reach AWS with the environment's credentials: {exc}") from exc
        region = session.region_name or "us-east-1"
        lower = name.lower()
        return cls(name, region, account, bucket or settings.bucket or f"{lower}-data-{account}-{region}",
                   settings.artifacts_bucket or f"{lower}-artifacts-{account}-{region}", settings.prefix.strip("/"))


@dataclass
class DeployReport:
    target: Target
    packages: list[Package] = field(default_factory=list)
    packages_uploaded: int = 0
    packages_uploaded_bytes: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    stack_status: str = ""
    upload: UploadReport | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    planned: bool = False

    @property
    def uploaded_bytes(self) -> int:
        return self.packages_uploaded_bytes + (self.upload.uploaded_bytes if self.upload else 0)


def session() -> Any:
    import boto3

    return boto3.Session()


def _call(step: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except (ClientError, BotoCoreError, WaiterError) as exc:
        raise DeployError(f"{step}: {exc}") from exc


def _found(step: str, fn: Callable[..., Any], **kwargs: Any) -> bool:
    """Whether a HEAD finds its bucket or object: False on a 404, a DeployError on any other refusal."""
    try:
        fn(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NoSuchKey", "NotFound"):
            return False
        raise DeployError(f"{step}: {exc}") from exc
    return True


def _ensure_bucket(s3: Any, name: str, region: str) -> None:
    """A private bucket (the artifacts'), made when missing."""
    if _found(f"bucket {name}", s3.head_bucket, Bucket=name):
        return
    kwargs: dict[str, Any] = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    _call(f"creating bucket {name}", s3.create_bucket, Bucket=name, **kwargs)
    _call(f"blocking public access to {name}", s3.put_public_access_block, Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})


def _stack(cf: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cf.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise DeployError(f"describing stack {name}: {exc}") from exc
    stack = stacks[0] if stacks else None
    if stack and stack["StackStatus"] == "REVIEW_IN_PROGRESS":  # only a change set was ever made: no stack yet
        return None
    return stack


def _clear_failed_create(cf: Any, name: str, progress: Callable[[str], None]) -> None:
    """A stack whose first creation failed (``ROLLBACK_COMPLETE``) can only be deleted: do that,
    so this deploy creates it afresh instead of failing on every attempt."""
    stack = _stack(cf, name)
    if stack and stack["StackStatus"] == "ROLLBACK_COMPLETE":
        progress(f"stack {name} failed to create before ({stack.get('StackStatusReason', 'see its events')}): deleting it first")
        _call("deleting the failed stack", cf.delete_stack, StackName=name)
        _call("waiting for the failed stack to go", cf.get_waiter("stack_delete_complete").wait, StackName=stack["StackId"],
              WaiterConfig={"Delay": 5, "MaxAttempts": 360})


def parameters(settings: Deploy, target: Target, packages: list[Package]) -> list[dict[str, str]]:
    values = {
        "BucketName": target.bucket, "CreateBucket": str(settings.create_bucket).lower(), "StorePrefix": target.prefix,
        "PublicRead": str(settings.public).lower(), "CodeBucket": target.artifacts, "Runtime": settings.runtime,
        "Architecture": settings.architecture, "LogRetentionDays": str(settings.log_retention_days),
        "CorsAllowOrigin": settings.cors_allow_origin, "EnableCloudFront": str(settings.cloudfront).lower(),
        "AlarmEmail": settings.alarm_email or "", "ServerErrorPercent": f"{settings.server_error_percent:g}",
        "EnableTracing": str(settings.tracing).lower(),
    }
    for p in packages:
        values[f"{p.function.capitalize()}CodeKey"] = p.key
    for function, mb in settings.memory.items():
        values[f"{function.capitalize()}Memory"] = str(mb)
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def _change_set(cf: Any, target: Target, params: list[dict[str, str]]) -> tuple[str | None, list[dict[str, Any]], str]:
    """Create a change set; (its id or None when nothing would change, its changes, CREATE/UPDATE)."""
    kind = "UPDATE" if _stack(cf, target.stack) else "CREATE"
    body = json.dumps(template(), separators=(",", ":"))
    name = f"skyshelf-{int(time.time() * 1000)}"
    try:
        made = cf.create_change_set(StackName=target.stack, ChangeSetName=name, ChangeSetType=kind, TemplateBody=body,
                                    Parameters=params, Capabilities=["CAPABILITY_IAM"], Tags=[{"Key": "skyshelf:stack", "Value": target.stack}])
    except ClientError as exc:
        if any(text in str(exc) for text in NO_CHANGES):
            return None, [], kind
        raise DeployError(f"creating a change set for stack {target.stack}: {exc}") from exc
    change_set = made["Id"]
    try:
        cf.get_waiter("change_set_create_complete").wait(ChangeSetName=change_set, StackName=target.stack, WaiterConfig={"Delay": 2, "MaxAttempts": 300})
    except WaiterError:
        pass  # FAILED: read why below
    described = _call("describing the change set", cf.describe_change_set, ChangeSetName=change_set, StackName=target.stack)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        _call("deleting an empty change set", cf.delete_change_set, ChangeSetName=change_set, StackName=target.stack)
        if any(text in reason for text in NO_CHANGES):
            return None, [], kind
        raise DeployError(f"the change set for stack {target.stack} failed: {reason}")
    changes = [c["ResourceChange"] for c in described.get("Changes", []) if c.get("Type") == "Resource"]
    return change_set, changes, kind


def outputs(cf: Any, name: str) -> dict[str, str]:
    stack = _stack(cf, name)
    return {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs") or []}


def deploy(settings: Deploy, store: Path, stack: str | None = None, bucket: str | None = None, plan: bool = False,
           progress: Callable[[str], None] = lambda _: None, wait: float = 0.0) -> DeployReport:
    """Put ``store`` (a local folder built by ``publish build``) and the handlers on AWS.
    With ``plan``, change nothing: report what would be uploaded and what the stack would change.
    ``wait``: seconds to wait for a build, gc or rollback of the folder to finish (its locks are
    held while the release is uploaded)."""
    if not (store / "catalog.json").exists():
        raise DeployError(f"{store} holds no published catalog (catalog.json): run publish build first")
    if not plan:
        with _quiet(store, wait):  # (a busy folder fails now, not after minutes of CloudFormation; held again to upload)
            pass
    aws = session()
    target = Target.resolve(settings, aws, stack, bucket)
    with tempfile.TemporaryDirectory(prefix="skyshelf-packages-") as out:
        return _deploy(settings, store, aws, target, Path(out), plan, progress, wait)


@contextlib.contextmanager
def _quiet(folder: Path, wait: float) -> Iterator[None]:
    """The folder's gc lock, then its build lock, held (as a rollback holds them): the upload lists
    the folder first and sends its entry points last, and a build switching meanwhile made the
    bucket's catalog name a release none of whose objects were sent; a gc could delete them."""
    from ..store_lock import GC_LOCK_KEY, exclusive
    from ..stores.local import LocalStore

    local, deadline = LocalStore(str(folder)), time.monotonic() + wait
    with (exclusive(local, "publish deploy", wait, key=GC_LOCK_KEY),
          exclusive(local, "publish deploy", max(0.0, deadline - time.monotonic()))):
        yield


def _deploy(settings: Deploy, store: Path, aws: Any, target: Target, out: Path, plan: bool, progress: Callable[[str], None],
            wait: float = 0.0) -> DeployReport:
    from botocore.config import Config

    report = DeployReport(target, planned=plan)
    s3, cf = aws.client("s3", config=Config(max_pool_connections=64)), aws.client("cloudformation")
    if not plan:
        _clear_failed_create(cf, target.stack, progress)

    progress("packaging the handlers")
    extras = TRACING_REQUIREMENTS if settings.tracing else ()
    report.packages = [build_package(f, settings.runtime, settings.architecture, out, plugins=tuple(settings.plugins), extras=extras)
                       for f in modules()]
    if not plan:
        _ensure_bucket(s3, target.artifacts, target.region)
    for package in report.packages:
        if not _found(f"package {package.key}", s3.head_object, Bucket=target.artifacts, Key=package.key):
            if not plan:
                _call(f"uploading {package.key}", s3.upload_file, str(package.zip_path), target.artifacts, package.key)
            report.packages_uploaded += 1
            report.packages_uploaded_bytes += package.zipped_bytes

    progress("preparing the change set")
    change_set, report.changes, kind = _change_set(cf, target, parameters(settings, target, report.packages))
    if plan:
        if change_set:
            _call("deleting the planning change set", cf.delete_change_set, ChangeSetName=change_set, StackName=target.stack)
            if kind == "CREATE":
                _call("deleting the planning stack", cf.delete_stack, StackName=target.stack)
        report.upload = upload_store(s3, store, target.bucket, target.prefix, dry_run=True) if _found("bucket", s3.head_bucket, Bucket=target.bucket) else None
        return report
    if change_set:
        progress(f"executing the change set ({len(report.changes)} changes)")
        _call("executing the change set", cf.execute_change_set, ChangeSetName=change_set, StackName=target.stack)
        waiter = "stack_create_complete" if kind == "CREATE" else "stack_update_complete"
        _call(f"waiting for stack {target.stack}", cf.get_waiter(waiter).wait, StackName=target.stack, WaiterConfig={"Delay": 5, "MaxAttempts": 360})
    if not settings.create_bucket:
        _call(f"reading bucket {target.bucket}", s3.head_bucket, Bucket=target.bucket)
    progress("uploading the release")
    with _quiet(store, wait):
        report.upload = upload_store(s3, store, target.bucket, target.prefix)
    stack_now = _stack(cf, target.stack)
    report.stack_status = stack_now["StackStatus"] if stack_now else "?"
    report.outputs = outputs(cf, target.stack)
    return report


def status(settings: Deploy, stack: str | None = None) -> dict[str, Any]:
    """The stack's state, its outputs and the release its bucket serves."""
    aws = session()
    target = Target.resolve(settings, aws, stack)
    cf, s3 = aws.client("cloudformation"), aws.client("s3")
    found = _stack(cf, target.stack)
    out: dict[str, Any] = {"stack": target.stack, "region": target.region, "status": found["StackStatus"] if found else "not deployed",
                           "outputs": outputs(cf, target.stack) if found else {}, "bucket": target.bucket, "release": None}
    if found:
        out["updated"] = str(found.get("LastUpdatedTime") or found.get("CreationTime"))
        key = f"{target.prefix}/catalog.json" if target.prefix else "catalog.json"
        try:
            out["release"] = json.loads(s3.get_object(Bucket=target.bucket, Key=key)["Body"].read())["release"]
        except Exception:  # noqa: BLE001 - no catalog uploaded yet, or not readable
            out["release"] = None
    return out


def keys_table(settings: Deploy, stack: str | None = None) -> str:
    """The name of the deployed stack's API key table, for ``publish keys --deployed``."""
    name = stack or settings.stack_name
    try:
        found = _stack(session().client("cloudformation"), name)
    except BotoCoreError as exc:  # no credentials, no endpoint: say so, not a traceback
        raise DeployError(f"reading stack {name}: {exc}") from None
    if found is None:
        raise DeployError(f"stack {name} is not deployed: run publish deploy first (or give --store for the store's own keys)")
    return keys_table_name(name)


def destroy(settings: Deploy, stack: str | None = None, delete_data: bool = False, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Delete the stack (functions, API, roles, logs). The data bucket is kept unless
    ``delete_data``: then the published objects under the prefix go too, and the bucket if the
    stack made it and it is left empty."""
    aws = session()
    target = Target.resolve(settings, aws, stack)
    cf, s3 = aws.client("cloudformation"), aws.client("s3")
    found = _stack(cf, target.stack)
    if found:
        progress(f"deleting stack {target.stack}")
        _call("deleting the stack", cf.delete_stack, StackName=target.stack)
        _call(f"waiting for stack {target.stack} to go", cf.get_waiter("stack_delete_complete").wait, StackName=found["StackId"],
              WaiterConfig={"Delay": 5, "MaxAttempts": 360})
    deleted = 0
    if delete_data and _found(f"bucket {target.bucket}", s3.head_bucket, Bucket=target.bucket):
        progress(f"deleting the published objects in s3://{target.bucket}/{target.prefix}")
        base = f"{target.prefix}/" if target.prefix else ""
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=base):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                _call("deleting objects", s3.delete_objects, Bucket=target.bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        if settings.create_bucket and not s3.list_objects_v2(Bucket=target.bucket, MaxKeys=1).get("KeyCount"):
            _call(f"deleting bucket {target.bucket}", s3.delete_bucket, Bucket=target.bucket)
    return {"stack": target.stack, "stack_deleted": bool(found), "objects_deleted": deleted, "bucket": target.bucket}
