"""``publish status``: the deployed stack's state and URLs, the release its bucket serves, and
what its functions did in the last hour (CloudWatch: requests, 4xx, 5xx, errors, throttles,
latency p50/p99, cache hits, spills; docs/deploy.md "Observability")."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import SkyshelfError
from .common import fail, pipeline_option
from .deploy_cmd import deploy_settings

_COLUMNS = (("requests", "requests"), ("4xx", "client_errors"), ("5xx", "server_errors"), ("errors", "errors"),
            ("throttles", "throttles"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"), ("cache hits", "cache_hits"), ("spills", "spills"))


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


@click.command()
@pipeline_option
@click.option("--stack-name", default=None, help="Override deploy.stack_name.")
@click.option("--hours", default=1.0, show_default=True, type=click.FloatRange(min=1 / 60, max=24 * 14),
              help="How far back the functions' numbers go.")
@click.option("--json", "as_json", is_flag=True, help="Print the state and numbers as JSON.")
def status(config: Path, stack_name: str | None, hours: float, as_json: bool) -> None:
    """The deployed stack's state, URLs and current release, and its functions' last hour."""
    from ..deploy.activity import stack_activity
    from ..deploy.stack import status as state_of

    settings, _ = deploy_settings(config)
    try:
        state = state_of(settings, stack_name)
        numbers = stack_activity(settings, state["stack"], hours) if state["status"] != "not deployed" else []
    except SkyshelfError as exc:
        fail(exc)
    if as_json:
        click.echo(json.dumps({**state, "hours": hours, "functions": [n.to_json() for n in numbers]}, indent=1, default=str))
        return
    click.echo(f"stack {state['stack']} ({state['region']}): {state['status']}")
    if state.get("updated"):
        click.echo(f"updated: {state['updated']}")
    click.echo(f"bucket: {state['bucket']}  release: {state['release'] or '(none uploaded)'}")
    for key, value in sorted(state["outputs"].items()):
        click.echo(f"{key}: {value}")
    if not numbers:
        return
    width = max(len(n.function) for n in numbers)
    click.echo(f"last {_cell(hours)} h (CloudWatch):")
    click.echo("  " + "function".ljust(width) + "".join(f"  {title:>10}" for title, _ in _COLUMNS))
    for n in numbers:
        click.echo("  " + n.function.ljust(width) + "".join(f"  {_cell(getattr(n, field)):>10}" for _, field in _COLUMNS))
