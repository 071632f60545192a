"""``publish validate``, ``schema`` and ``build``."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..errors import BuildFailed, SkyshelfError
from .common import EXIT_FAILED, EXIT_PARTIAL, fail, human, pipeline_option, shown


def _quiet_dask() -> None:
    """distributed's INFO lines (a local cluster's scheduler and nannies starting, workers
    registered: a dozen or more a build) left out of the build's output, as without a cluster;
    ``-v`` shows them. Set once distributed is imported: its import sets its loggers' levels."""
    try:
        import distributed  # noqa: F401  (its logging set up now, not later over this)
    except ImportError:  # (the build says what to install)
        return
    logging.getLogger("distributed").setLevel(logging.WARNING)


@click.command()
@pipeline_option
@click.option("--as-tags", "tags", default=None, help="Show what a caller with these tags (comma-separated) would read.")
@click.option("--as-group", "groups", multiple=True, help="... a caller in this identity-provider group (access.groups).")
@click.option("--as-subject", "subject", default=None, help="... a caller with this token subject (access.subjects).")
@click.option("--as-anonymous", "anonymous", is_flag=True, help="... an anonymous caller.")
def validate(config: Path, tags: str | None, groups: tuple[str, ...], subject: str | None, anonymous: bool) -> None:
    """Check a pipeline file (fields, and that every source matches files); with --as-*, list the
    nodes that caller would read once published (a dry run of the access rules)."""
    from ..build.items import ItemTable
    from ..config import load_pipeline
    from ..sources import iter_plan
    from ..work_item import WorkItem

    if anonymous and (tags is not None or groups or subject):
        raise click.UsageError("--as-anonymous is a caller with no identity: it cannot be combined with --as-tags, --as-group "
                               "or --as-subject (which name a signed-in caller)")
    problems: list[WorkItem] = []
    try:
        pipeline = load_pipeline(config)
    except SkyshelfError as exc:
        fail(exc)
    items = ItemTable(pipeline)  # the plan on disk, as a build keeps it: a million files fit
    try:
        try:
            items.fill(iter_plan(pipeline), problems.append)
        except SkyshelfError as exc:
            fail(exc)
        if tags is not None or groups or subject or anonymous:
            _reach(pipeline, [t.strip() for t in (tags or "").split(",") if t.strip()], list(groups), subject)
            return
        failures = [shown(f"{i.paths[0]}: {i.problem[1]}") for i in problems if i.problem[0] == "failure"]  # type: ignore[index]
        notes: list[str] = []
        unreadable: list[str] = []
        more = 0  # (a million files without a reader: the first thousand said, the rest counted)
        for item in items:
            try:
                if item.reader is None:
                    if len(notes) < 1000:
                        notes.append(f"  note: no reader for {shown(item.label)}; it will be skipped")
                    else:
                        more += 1
            except OSError as exc:  # (its type is detected from its first bytes: a build fails that item)
                unreadable.append(shown(f"{pipeline.unrooted(item.label)}: cannot read: {exc.strerror or exc}"))
        if more:
            notes.append(f"  note: ... and {more} more files without a reader")
        failures += unreadable
        if failures and pipeline.on_error == "fail":
            fail(SkyshelfError(f"{config}: {len(failures)} source paths cannot be read (on_error: fail publishes nothing):\n  " + "\n  ".join(failures)))
        click.echo(f"{config}: valid; {len(pipeline.sources)} sources, {len(pipeline.rules)} rules, {len(items)} items to publish")
        for note in notes:
            click.echo(note)
        for item in problems:
            kind, reason = item.problem  # type: ignore[misc]
            click.echo(f"  {'failure' if kind == 'failure' else 'note'}: {shown(item.paths[0])}: {shown(reason)}"
                       + ("; it will be skipped (on_error: skip)" if kind == "failure" else ""))
        for line in unreadable:
            click.echo(f"  failure: {line}; it will be skipped (on_error: skip)")
    finally:
        items.close()


def _reach(pipeline: Any, tags: list[str], groups: list[str], subject: str | None) -> None:
    from ..auth.dryrun import principal_for, reach

    who = principal_for(pipeline, tags, groups, subject)
    found = reach(pipeline, who)
    label = "anonymous" if who.anonymous else f"tags {sorted(who.tags) or 'none'}"
    click.echo(f"{label}: reads {len(found.readable)} of {len(found.readable) + len(found.hidden)} nodes")
    for path in found.readable:
        click.echo(f"  read    {shown(path)}")
    for path in found.blocked:
        click.echo(f"  note: {shown(path)} carries one of these tags but a container above it does not: it stays hidden")
    for path, reason in found.unopened.items():
        click.echo(f"  note: {shown(path)} could not be opened ({shown(reason)}); it would fail or be skipped at build")


@click.command()
def schema() -> None:
    """Print the JSON Schema of pipeline.yml (for editors)."""
    from ..config import pipeline_schema

    click.echo(json.dumps(pipeline_schema(), indent=2))


def _scheduler(value: str | None) -> str | None:
    """The same check as pipeline.yml's ``build.scheduler``."""
    from pydantic import ValidationError

    from ..config.models import Cluster

    try:
        return Cluster(scheduler=value).scheduler
    except ValidationError:
        raise click.BadParameter(f"{value!r} is neither a scheduler address (tcp://host:8786) nor local:N") from None


class _Progress:
    """Rich progress bars: items overall, plus the array being written."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        # refreshed by the build's events, not by a thread of rich's: a build forks its worker
        # processes only while it has no other thread (publisher.build.processes)
        self.progress = Progress(TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=console, transient=True, disable=not console.is_terminal, auto_refresh=False)
        self.items: Any = None
        self._shown = 0.0

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "cluster":  # printed whether or not bars are shown: the data manager opens it
            self.progress.console.print(f"building on a Dask cluster of {info['workers']} workers; Dask dashboard: {info['dashboard']}",
                                        markup=False, highlight=False, soft_wrap=True)
        elif event == "no-workers":  # a remote cluster may scale to none and back: the build waits, and says so
            self.progress.console.print(f"the Dask cluster {info['scheduler']} has had no worker for {info['seconds']:.0f} s; waiting for "
                                        f"workers (each needs Skyshelf {info['version']}: one without it closes at its first task, "
                                        "'Failed to deserialize' in its log)", markup=False, highlight=False, soft_wrap=True)
        elif event == "start":
            self.items = self.progress.add_task(f"release {info['release']}", total=info["items"])
        elif event == "item" and self.items is not None:
            self.progress.update(self.items, description=shown(info["path"][-50:]))
        elif event == "done" and self.items is not None:
            self.progress.advance(self.items)
        elif event == "reused" and self.items is not None:  # a no-change build: every item at once
            self.progress.advance(self.items, info["count"])
        if time.monotonic() - self._shown > 0.1:  # ten times a second at most, as rich's own thread would
            self._shown = time.monotonic()
            self.progress.refresh()


@click.command()
@pipeline_option
@click.option("--store", default=None, help="Override output.store (a folder or URL).")
@click.option("--workers", type=click.IntRange(min=1, max=1024), default=None,
              help="Threads for compression and writing (default: all cores); worker processes for small files, at most one per core.")
@click.option("--scheduler", default=None, callback=lambda ctx, param, value: _scheduler(value), help="Convert on a Dask cluster: its scheduler's address (tcp://host:8786), or local:N "
              "to start N worker processes here (default: build.scheduler, else this process).")
@click.option("--json-report", is_flag=True, help="Print the build report as JSON.")
@click.option("--wait", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Seconds to wait for another build or rollback of the same store to finish (else fail at once).")
def build(config: Path, store: str | None, workers: int | None, scheduler: str | None, json_report: bool, wait: float) -> None:
    """Convert the sources into Zarr + Parquet + the index and publish a release."""
    from rich.console import Console

    from ..build import build as run_build
    from ..config import load_pipeline

    console = Console(stderr=True)
    try:
        pipeline = load_pipeline(config)
        progress = _Progress(console)
        if (scheduler or pipeline.build.scheduler) and not click.get_current_context().find_root().params.get("verbose"):
            _quiet_dask()
        with progress.progress:
            report = run_build(pipeline, store=store, progress=progress, workers=workers, scheduler=scheduler, wait=wait)
    except BuildFailed as exc:
        report = exc.args[0]
        _summary(console, report, json_report)
        console.print(f"[red]build failed: {len(report.failures)} failures; nothing was published (on_error: fail)[/red]")
        sys.exit(EXIT_FAILED)
    except SkyshelfError as exc:
        fail(exc)
    _summary(console, report, json_report)
    if report.unchanged:
        console.print(f"[green]nothing changed: release {report.release} stands; nothing was written[/green]")
        if report.failures:
            sys.exit(EXIT_PARTIAL)
        return
    if report.failures:
        console.print(f"[yellow]published release {report.release} with {len(report.failures)} failures (on_error: skip)[/yellow]")
        sys.exit(EXIT_PARTIAL)
    console.print(f"published release {report.release} to {shown(report.store)}", style="green", markup=False, highlight=False, soft_wrap=True)


def _summary(console: Any, report: Any, as_json: bool) -> None:
    from rich.table import Table

    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
        return
    table = Table(title="build summary", show_header=False)
    nodes = report.nodes
    table.add_row("nodes", f"{sum(nodes.values())} ({nodes['container']} containers, {nodes['array']} arrays, {nodes['table']} tables)")
    table.add_row("bytes in / out", f"{human(report.bytes_in)} / {human(report.bytes_out)}")
    resumed = f", {report.resumed} of them finished by an interrupted build" if report.resumed else ""
    unpublished = f" ({report.unpublished} of them published nothing: failed or skipped, below)" if report.unpublished else ""
    table.add_row("items", f"{report.converted} converted{unpublished}, {report.reused} unchanged (reused){resumed}")
    table.add_row("time", f"{report.seconds:.1f} s")
    table.add_row("warnings / skipped / failures", f"{len(report.warnings)} / {len(report.skipped)} / {len(report.failures)}")
    console.print(table)
    for title, problems, style in (("skipped", report.skipped, "yellow"), ("warnings", report.warnings, "dim"), ("failures", report.failures, "red")):
        if problems:
            console.print(f"[{style}]{title}:[/{style}]")
            for p in problems[:50]:
                console.print(f"  {shown(p)}", style=style, markup=False, highlight=False, soft_wrap=True)
            if len(problems) > 50:
                console.print(f"  ... and {len(problems) - 50} more (see build-report.json)")
