"""``publish keys create|list|revoke``: API keys in the store's private area, or with
``--deployed`` in the deployed stack's DynamoDB table, which the deployed functions read (docs/auth.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from ..errors import SkyshelfError
from .common import fail, pipeline_option, target_store

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """``30d`` (s, m, h, d or w from now) or an ISO date or time (UTC unless it says; a bare date
    is that day's start, so ``2027-01-31`` works through the 30th)."""
    now = now or datetime.now(timezone.utc)
    span = re.fullmatch(r"(\d+)\s*([smhdw])", text.strip())
    if span:
        try:
            return now + timedelta(seconds=int(span[1]) * _UNITS[span[2]])
        except (OverflowError, ValueError):  # (past the year 9999: a traceback)
            raise click.BadParameter(f"{text!r} is too far in the future (dates end at 9999-12-31)") from None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a span such as 30d, 12h, 2w nor a date such as 2027-01-31") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _expiry(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = parse_expiry(value)
    if moment <= datetime.now(timezone.utc):
        raise click.BadParameter(f"{value!r} is in the past")
    return moment


def where_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Where the keys are: the store's private area (``publish serve`` reads them there), or the deployment's table."""
    command = click.option("--store", default=None, help="The store (default: the pipeline's output.store).")(command)
    command = click.option("--table", default=None, help="A DynamoDB table of key records (as the deploy makes).")(command)
    command = click.option("--deployed", is_flag=True,
                           help="The deployed stack's key table (deploy.stack_name), which the deployed functions read.")(command)
    return pipeline_option(command)


def _records(config: Path, store: str | None, table: str | None, deployed: bool) -> Any:
    from ..auth.key_records import DynamoKeyRecords, records_of

    if sum(map(bool, (store, table, deployed))) > 1:
        raise click.UsageError("give one of --store, --table and --deployed")
    if deployed:
        from ..config import load_pipeline
        from ..deploy.stack import keys_table

        table = keys_table(load_pipeline(config).deploy)
    if table:
        return DynamoKeyRecords(table)
    target = target_store(config, store)
    if not (target.exists("catalog.json") or target.exists("private/catalog.json") or target.exists("private/auth")):
        # (a mistyped --store: a key made there went where no server reads it, without a word)
        click.echo(f"warning: {target.url} holds no published catalog and no API keys yet: is it the store you meant?", err=True)
    return records_of(target)


@click.group()
def keys() -> None:
    """API keys: the secret is shown once; only a salted hash is kept."""


@keys.command()
@click.option("--tags", required=True, help="Comma-separated access tags the key grants, e.g. A,B.")
@click.option("--scopes", default="read:metadata,read:data", show_default=True,
              help="What it may do: read:metadata (metadata, search) and/or read:data (data, Zarr route, credentials).")
@click.option("--expires", default=None, callback=_expiry, help="When it stops working: 30d, 12h, 2w, or a date (2027-01-31).")
@click.option("--note", default="", help="Who or what it is for (shown by `keys list`).")
@where_options
def create(tags: str, scopes: str, expires: datetime | None, note: str, config: Path, store: str | None, table: str | None,
           deployed: bool) -> None:
    """Make a key; print it (alone on stdout, for KEY=$(publish keys create ...)) once."""
    from ..auth.keys import create_key

    try:
        key, record = create_key(_records(config, store, table, deployed), tags.split(","), expires, note, scopes=scopes.split(","))
    except SkyshelfError as exc:
        fail(exc)
    until = f", expires {record['expires']}" if record["expires"] else ", never expires"
    click.echo(f"API key {record['id']} (tags {', '.join(record['tags'])}; scopes {', '.join(record['scopes'])}{until}). "
               "Keep it now: it is not shown again.", err=True)
    click.echo(key)


@keys.command(name="list")
@where_options
def list_(config: Path, store: str | None, table: str | None, deployed: bool) -> None:
    """Every key: id, state, tags, scopes, created, expires, revoked, note (never a secret)."""
    from ..auth.keys import list_keys

    try:
        records = list_keys(_records(config, store, table, deployed))
    except SkyshelfError as exc:
        fail(exc)
    now = datetime.now(timezone.utc)
    click.echo(f"{'id':<12}  {'state':<7}  {'tags':<20}  {'scopes':<24}  {'created':<20}  {'expires':<20}  {'revoked':<20}  note")
    for r in records:
        expired = r["expires"] and datetime.fromisoformat(r["expires"]) <= now
        state = "revoked" if r["revoked"] else "expired" if expired else "active"
        click.echo(f"{r['id']:<12}  {state:<7}  {','.join(r['tags']):<20}  {','.join(r['scopes']):<24}  {r['created']:<20}  "
                   f"{r['expires'] or '-':<20}  {r['revoked'] or '-':<20}  {r.get('note') or ''}")


@keys.command()
@click.argument("key_id")
@where_options
def revoke(key_id: str, config: Path, store: str | None, table: str | None, deployed: bool) -> None:
    """Revoke KEY_ID: servers refuse it once their cached record is older than its TTL (30 s)."""
    from ..auth.keys import revoke_key

    try:
        record = revoke_key(_records(config, store, table, deployed), key_id)
    except SkyshelfError as exc:
        fail(exc)
    click.echo(f"API key {record['id']} revoked at {record['revoked']}")
