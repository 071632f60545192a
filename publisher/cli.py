"""The ``publish`` command line: build, validate, schema, ls.

Exit status: 0 success; 1 failures and nothing published (``on_error: fail``) or a bad
config; 3 published, but some sources or nodes failed (``on_error: skip``).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from .errors import BuildFailed, SkyshelfError

EXIT_FAILED = 1
EXIT_PARTIAL = 3

_pipeline_option = click.option(
    "-c", "--config", "config", default="pipeline.yml", show_default=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The pipeline file.",
)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _fail(exc: SkyshelfError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_FAILED)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="skyshelf")
@click.option("-v", "--verbose", is_flag=True, help="Log details (tracebacks of failures).")
def main(verbose: bool) -> None:
    """Publish scientific data as Zarr + Parquet + a metadata index."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@_pipeline_option
def validate(config: Path) -> None:
    """Check a pipeline file (fields, and that every source matches files)."""
    from .config import load_pipeline
    from .sources import plan

    try:
        pipeline = load_pipeline(config)
        items = plan(pipeline)
    except SkyshelfError as exc:
        _fail(exc)
    problems = [i for i in items if i.problem]
    failures = [f"{i.paths[0]}: {i.problem[1]}" for i in problems if i.problem[0] == "failure"]  # type: ignore[index]
    if failures and pipeline.on_error == "fail":
        _fail(SkyshelfError(f"{config}: {len(failures)} source paths cannot be read (on_error: fail publishes nothing):\n  " + "\n  ".join(failures)))
    items = [i for i in items if not i.problem]
    unknown = [i for i in items if i.reader is None]
    click.echo(f"{config}: valid; {len(pipeline.sources)} sources, {len(pipeline.rules)} rules, {len(items)} items to publish")
    for item in unknown:
        click.echo(f"  note: no reader for {item.label}; it will be skipped")
    for item in problems:
        kind, reason = item.problem  # type: ignore[misc]
        click.echo(f"  {'failure' if kind == 'failure' else 'note'}: {item.paths[0]}: {reason}"
                   + ("; it will be skipped (on_error: skip)" if kind == "failure" else ""))


@main.command()
def schema() -> None:
    """Print the JSON Schema of pipeline.yml (for editors)."""
    from .config import pipeline_schema

    click.echo(json.dumps(pipeline_schema(), indent=2))


class _Progress:
    """Rich progress bars: items overall, plus the array being written."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=console, transient=True, disable=not console.is_terminal)
        self.items: Any = None

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "start":
            self.items = self.progress.add_task(f"release {info['release']}", total=info["items"])
        elif event == "item" and self.items is not None:
            self.progress.update(self.items, description=info["path"][-50:])
        elif event == "done" and self.items is not None:
            self.progress.advance(self.items)


@main.command()
@_pipeline_option
@click.option("--store", default=None, help="Override output.store (a folder or URL).")
@click.option("--workers", type=int, default=None, help="Threads for compression and writing (default: all cores).")
@click.option("--json-report", is_flag=True, help="Print the build report as JSON.")
def build(config: Path, store: str | None, workers: int | None, json_report: bool) -> None:
    """Convert the sources into Zarr + Parquet + the index and publish a release."""
    from rich.console import Console

    from .build import build as run_build
    from .config import load_pipeline

    console = Console(stderr=True)
    try:
        pipeline = load_pipeline(config)
        progress = _Progress(console)
        with progress.progress:
            report = run_build(pipeline, store=store, progress=progress, workers=workers)
    except BuildFailed as exc:
        report = exc.args[0]
        _summary(console, report, json_report)
        console.print(f"[red]build failed: {len(report.failures)} failures; nothing was published (on_error: fail)[/red]")
        sys.exit(EXIT_FAILED)
    except SkyshelfError as exc:
        _fail(exc)
    _summary(console, report, json_report)
    if report.unchanged:
        console.print(f"[green]nothing changed: release {report.release} stands; nothing was written[/green]")
        if report.failures:
            sys.exit(EXIT_PARTIAL)
        return
    if report.failures:
        console.print(f"[yellow]published release {report.release} with {len(report.failures)} failures (on_error: skip)[/yellow]")
        sys.exit(EXIT_PARTIAL)
    console.print(f"[green]published release {report.release} to {report.store}[/green]")


def _summary(console: Any, report: Any, as_json: bool) -> None:
    from rich.table import Table

    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
        return
    table = Table(title="build summary", show_header=False)
    nodes = report.nodes
    table.add_row("nodes", f"{sum(nodes.values())} ({nodes['container']} containers, {nodes['array']} arrays, {nodes['table']} tables)")
    table.add_row("bytes in / out", f"{_human(report.bytes_in)} / {_human(report.bytes_out)}")
    table.add_row("items", f"{report.converted} converted, {report.reused} unchanged (reused)")
    table.add_row("time", f"{report.seconds:.1f} s")
    table.add_row("warnings / skipped / failures", f"{len(report.warnings)} / {len(report.skipped)} / {len(report.failures)}")
    console.print(table)
    for title, problems, style in (("skipped", report.skipped, "yellow"), ("warnings", report.warnings, "dim"), ("failures", report.failures, "red")):
        if problems:
            console.print(f"[{style}]{title}:[/{style}]")
            for p in problems[:50]:
                console.print(f"  {p}", style=style, markup=False, highlight=False, soft_wrap=True)
            if len(problems) > 50:
                console.print(f"  ... and {len(problems) - 50} more (see build-report.json)")


def _describe(entry: dict[str, Any]) -> str:
    s = entry["structure"]
    if entry["family"] == "array":
        return f"{s['data_type']['kind']}{s['data_type']['itemsize']} {s['shape']}"
    if entry["family"] == "table":
        return f"{s['row_count']} rows × {len(s['columns'])} cols"
    return f"{s['count']} children"


@main.command(name="ls")
@click.argument("path", default="")
@_pipeline_option
@click.option("--store", default=None, help="The store to list (default: the pipeline's output.store).")
@click.option("-l", "--long", "long_", is_flag=True, help="Show family, shape/rows and data URL.")
@click.option("-r", "--recursive", is_flag=True)
def ls(path: str, config: Path, store: str | None, long_: bool, recursive: bool) -> None:
    """List the published tree under PATH."""
    from .catalog import Catalog

    try:
        catalog = Catalog.open(_target_store(config, store))
        catalog.node(path)

        def show(p: str, depth: int) -> None:
            for entry in catalog.children(p):
                line = "  " * depth + entry["key"] + ("/" if entry["family"] == "container" else "")
                if long_:
                    line = f"{line:<50} {entry['family']:<9} {_describe(entry):<28} {entry['data_url'] or ''}"
                click.echo(line)
                if recursive and entry["family"] == "container":
                    show(entry["path"], depth + 1)

        show(path.strip("/"), 0)
    except SkyshelfError as exc:
        _fail(exc)


def _target_store(config: Path, store: str | None) -> Any:
    from .stores import Store

    if store is not None:
        return Store(store)
    from .build import resolve_store
    from .config import load_pipeline

    return resolve_store(load_pipeline(config))


@main.command()
@_pipeline_option
@click.option("--store", default=None, help="The store (default: the pipeline's output.store).")
def releases(config: Path, store: str | None) -> None:
    """List the releases in the store, oldest first; * marks the current one."""
    from .releases import list_releases

    try:
        for r in list_releases(_target_store(config, store)):
            click.echo(f"{'*' if r.current else ' '} {r.id}  {r.state}")
    except SkyshelfError as exc:
        _fail(exc)


@main.command()
@click.argument("release")
@_pipeline_option
@click.option("--store", default=None, help="The store (default: the pipeline's output.store).")
def rollback(release: str, config: Path, store: str | None) -> None:
    """Switch the catalog back to RELEASE."""
    from .releases import rollback as do_rollback

    try:
        do_rollback(_target_store(config, store), release)
    except SkyshelfError as exc:
        _fail(exc)
    click.echo(f"catalog now points at release {release}")


@main.command()
@_pipeline_option
@click.option("--store", default=None, help="The store (default: the pipeline's output.store).")
@click.option("--keep", type=click.IntRange(min=1), default=3, show_default=True, help="Newest complete releases to keep.")
@click.option("--abandoned-after", type=click.FloatRange(min=0), default=30, show_default=True,
              help="Minutes without a heartbeat after which an unfinished build older than the current release is abandoned.")
def gc(config: Path, store: str | None, keep: int, abandoned_after: float) -> None:
    """Delete releases older than the current one beyond the newest KEEP, except data that a kept
    release or a running build still uses."""
    from . import spills
    from .releases import gc as do_gc

    try:
        target = _target_store(config, store)
        result = do_gc(target, keep, abandoned_after * 60)
        old_answers = spills.collect(target, older_than=spills.max_age())  # spilled answers past their age
    except SkyshelfError as exc:
        _fail(exc)
    click.echo(f"kept {len(result['kept'])} releases; deleted {len(result['deleted'])} prefixes")
    for prefix in result["deleted"]:
        click.echo(f"  - {prefix}")
    for problem in result["problems"]:
        click.echo(f"  ! {problem}", err=True)
    if old_answers:
        click.echo(f"deleted {len(old_answers)} spilled answers older than {spills.max_age():.0f} s")


@main.command()
@_pipeline_option
@click.option("--store", default=None, help="The store to serve (default: the pipeline's output.store): a folder or s3:// URL.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--cors-origin", default="*", show_default=True,
              help="Origins browsers may read the API and /files/ from: *, comma-separated origins, or none.")
def serve(config: Path, store: str | None, host: str, port: int, cors_origin: str) -> None:
    """Serve the published catalog with the Lambda handlers (Tiled's HTTP API) and its files."""
    from handlers.cors import Cors
    from handlers.local import LocalServer  # the handlers sit above the library: imported only here

    try:
        target = _target_store(config, store)
        from .catalog import Catalog

        catalog = Catalog.open(target)
    except SkyshelfError as exc:
        _fail(exc)
    server = LocalServer(target.url, host, port, Cors.parse(cors_origin))
    url = server.url
    click.echo(f"Serving {target.url} (release {catalog.release}) at {url}")
    click.echo(f"  browser:  {url}/api/v1/search/")
    click.echo(f"  docs:     {url}/api/v1/docs")
    click.echo(f"  tiled:    from tiled.client import from_uri; c = from_uri('{url}/api/v1')")
    hint = _xarray_hint(catalog)
    if hint:
        file_zarr, group = hint
        click.echo(f"  xarray:   import xarray; ds = xarray.open_zarr('{url}/files/{file_zarr}'" + (f", group='{group}')" if group else ")"))
    click.echo("Press Ctrl+C to stop.")
    server.serve_forever()


def _deploy_settings(config: Path) -> tuple[Any, Path]:
    """(the pipeline's deploy section, its local store folder)."""
    from .build import resolve_store
    from .config import load_pipeline

    try:
        pipeline = load_pipeline(config)
        store = resolve_store(pipeline)
    except SkyshelfError as exc:
        _fail(exc)
    if not store.is_local:
        _fail(SkyshelfError(f"publish deploy uploads a local build; output.store is {store.url}"))
    return pipeline.deploy, Path(store.root)


@main.command()
@_pipeline_option
@click.option("--stack-name", default=None, help="Override deploy.stack_name.")
@click.option("--bucket", default=None, help="Override deploy.bucket (the data bucket).")
@click.option("--plan", is_flag=True, help="Show what would be uploaded and what the stack would change; change nothing.")
@click.option("--json-report", is_flag=True, help="Print the deploy report as JSON.")
def deploy(config: Path, stack_name: str | None, bucket: str | None, plan: bool, json_report: bool) -> None:
    """Put the published store and its handlers on AWS (CloudFormation; AWS_* environment)."""
    from .deploy.stack import deploy as run

    settings, folder = _deploy_settings(config)
    try:
        report = run(settings, folder, stack_name, bucket, plan, progress=lambda m: click.echo(f"... {m}", err=True))
    except SkyshelfError as exc:
        _fail(exc)
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
        notes = f"  ({'; '.join(p.notes)})" if p.notes else ""
        click.echo(f"package {p.function:<9} {_human(p.unzipped_bytes):>9} unzipped, {_human(p.zipped_bytes):>9} zipped{notes}")
    click.echo(f"packages: {verb} {report.packages_uploaded} ({_human(report.packages_uploaded_bytes)})")
    if report.changes:
        click.echo(f"stack {t.stack}: {len(report.changes)} change(s)" + (" planned" if plan else ""))
        for c in report.changes:
            click.echo(f"  {c.get('Action', '?'):<7} {c.get('LogicalResourceId', '?'):<32} {c.get('ResourceType', '')}")
    else:
        click.echo(f"stack {t.stack}: no changes")
    if upload is not None:
        click.echo(f"data: {verb} {upload.uploaded} objects ({_human(upload.uploaded_bytes)}), {upload.unchanged} unchanged")
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


@main.command()
@_pipeline_option
@click.option("--stack-name", default=None, help="Override deploy.stack_name.")
def status(config: Path, stack_name: str | None) -> None:
    """The deployed stack's state, URLs and current release."""
    from .deploy.stack import status as run

    settings, _ = _deploy_settings(config)
    try:
        state = run(settings, stack_name)
    except SkyshelfError as exc:
        _fail(exc)
    click.echo(f"stack {state['stack']} ({state['region']}): {state['status']}")
    if state.get("updated"):
        click.echo(f"updated: {state['updated']}")
    click.echo(f"bucket: {state['bucket']}  release: {state['release'] or '(none uploaded)'}")
    for key, value in sorted(state["outputs"].items()):
        click.echo(f"{key}: {value}")


@main.command()
@_pipeline_option
@click.option("--stack-name", default=None, help="Override deploy.stack_name.")
@click.option("--delete-data", is_flag=True, help="Also delete the published objects (and the bucket, if the stack made it).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def destroy(config: Path, stack_name: str | None, delete_data: bool, yes: bool) -> None:
    """Delete the stack; the data stays unless --delete-data."""
    from .deploy.stack import destroy as run

    settings, _ = _deploy_settings(config)
    name = stack_name or settings.stack_name
    if not yes:
        click.confirm(f"Delete stack {name}" + (" AND its published data" if delete_data else "") + "?", abort=True)
    try:
        done = run(settings, stack_name, delete_data, progress=lambda m: click.echo(f"... {m}", err=True))
    except SkyshelfError as exc:
        _fail(exc)
    click.echo(f"stack {done['stack']}: {'deleted' if done['stack_deleted'] else 'was not deployed'}; "
               f"{done['objects_deleted']} objects deleted from {done['bucket']}" + ("" if delete_data else " (data kept)"))


@main.command(name="template")
def template_command() -> None:
    """Print the CloudFormation template (infra/template.yaml is this)."""
    from .deploy.template import template_yaml

    click.echo(template_yaml(), nl=False)


def _xarray_hint(catalog: Any, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """(file's Zarr URL, group) of the first array with named dimensions, looked for a few levels deep."""
    for entry in catalog.children(path, 0, 50):
        dims = (entry.get("structure") or {}).get("dims") or []
        if entry["family"] == "array" and dims and not all(d.startswith("dim_") for d in dims) and ".zarr" in (entry["data_url"] or ""):
            file_zarr, _, inner = entry["data_url"].partition(".zarr")
            return file_zarr + ".zarr", inner.strip("/").rpartition("/")[0]
        if entry["family"] == "container" and depth < 5:
            found = _xarray_hint(catalog, entry["path"], depth + 1)
            if found:
                return found
    return None


if __name__ == "__main__":
    main()
