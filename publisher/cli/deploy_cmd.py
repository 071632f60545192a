"""``publish deploy``, ``destroy`` and ``template``: the stack on AWS (``status``: :mod:`.status_cmd`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import SkyshelfError
from .common import fail, human, pipeline_option


def deploy_settings(config: Path) -> tuple[Any, Path]:
    """(the pipeline's deploy section, its local store folder)."""
    from ..build import resolve_store
    from ..config import load_pipeline

    try:
        pipeline = load_pipeline(config)
        store = resolve_store(pipeline)
    except SkyshelfError as exc:
        fail(exc)
    if not store.is_local:
        fail(SkyshelfError(f"publish deploy uploads a local build; output.store is {store.url}"))
    return pipeline.deploy, Path(store.root)


@click.command()
@pipeline_option
@click.option("--stack-name", default=None, help="Override deploy.stack_name.")
@click.option("--bucket", default=None, help="Override deploy.bucket (the data bucket).")
@click.option("--plan", is_flag=True, help="Show what would be uploaded and what the stack would change; change nothing.")
@click.option("--json-report", is_flag=True, help="Print the deploy report as JSON.")
@click.option("--wait", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Seconds to wait for a build, gc or rollback of the store to finish before its upload (else fail at once).")
def deploy(config: Path, stack_name: str | None, bucket: str | None, plan: bool, json_report: bool, wait: float) -> None:
    """Put the published store and its handlers on AWS (CloudFormation; AWS_* environment)."""
    from ..deploy.stack import deploy as run

    settings, folder = deploy_settings(config)
    try:
        report = run(settings, folder, stack_name, bucket, plan, progress=lambda m: click.echo(f"... {m}", err=True), wait=wait)
    except SkyshelfError as exc:
        fail(exc)
    t = report.target
    upload = report.upload
    if json_report:
        click.echo(json.dumps({
            "stack": t.stack, "region": t.region, "bucket": t.bucket, "prefix": t.prefix, "planned": report.planned,
            "packages": [p.to_json() for p in report.packages], "packages_uploaded": report.packages_uploaded,
            "changes": report.changes, "stack_status": report.stack_status, "outputs": report.outputs,
            "uploaded": upload.uploaded if upload else None, "uploaded_bytes": report.uploaded_bytes,
            "unchanged": upload.unchanged if upload else None}, indent=1, default=str))
        return
    verb = "would upload" if plan else "uploaded"
    for p in report.packages:
        notes = [*p.notes, *(["zip reused: its inputs are unchanged"] if p.reused else [])]
        said = f"  ({'; '.join(notes)})" if notes else ""
        click.echo(f"package {p.function:<9} {human(p.unzipped_bytes):>9} unzipped, {human(p.zipped_bytes):>9} zipped{said}")
    click.echo(f"packages: {verb} {report.packages_uploaded} ({human(report.packages_uploaded_bytes)})")
    if report.changes:
        click.echo(f"stack {t.stack}: {len(report.changes)} change(s)" + (" planned" if plan else ""))
        for c in report.changes:
            click.echo(f"  {c.get('Action', '?'):<7} {c.get('LogicalResourceId', '?'):<32} {c.get('ResourceType', '')}")
    else:
        click.echo(f"stack {t.stack}: no changes")
    if upload is not None:
        click.echo(f"data: {verb} {upload.uploaded} objects ({human(upload.uploaded_bytes)}), {upload.unchanged} unchanged")
    if plan:
        return
    out = report.outputs
    api = out.get("ApiUrl")
    click.echo(f"API:  {api or '(the stack reports no outputs)'}")
    click.echo(f"data: {out.get('DataUrl') or f's3://{t.bucket}/{t.prefix}'}")
    if out.get("CloudFrontUrl"):
        click.echo(f"CDN:  {out['CloudFrontUrl']}")
    if api:
        click.echo(f"tiled: from tiled.client import from_uri; c = from_uri('{api}')")


@click.command()
@pipeline_option
@click.option("--stack-name", default=None, help="Override deploy.stack_name.")
@click.option("--delete-data", is_flag=True, help="Also delete the published objects (and the bucket, if the stack made it).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def destroy(config: Path, stack_name: str | None, delete_data: bool, yes: bool) -> None:
    """Delete the stack; the data stays unless --delete-data."""
    from ..deploy.stack import destroy as run

    settings, _ = deploy_settings(config)
    name = stack_name or settings.stack_name
    if not yes:
        click.confirm(f"Delete stack {name}" + (" AND its published data" if delete_data else "") + "?", abort=True)
    try:
        done = run(settings, stack_name, delete_data, progress=lambda m: click.echo(f"... {m}", err=True))
    except SkyshelfError as exc:
        fail(exc)
    click.echo(f"stack {done['stack']}: {'deleted' if done['stack_deleted'] else 'was not deployed'}; "
               f"{done['objects_deleted']} objects deleted from {done['bucket']}" + ("" if delete_data else " (data kept)"))


@click.command(name="template")
def template_command() -> None:
    """Print the CloudFormation template (infra/template.yaml is this)."""
    from ..deploy.template import template_yaml

    click.echo(template_yaml(), nl=False)
