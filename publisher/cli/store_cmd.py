"""``publish ls``, ``releases``, ``rollback``, ``gc`` and ``serve``: a published store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import DamagedCatalog, SkyshelfError
from ..formats import Entry
from ..structures import ArrayStructure, TableStructure
from .common import EXIT_FAILED, fail, pipeline_option, shown, target_store

if TYPE_CHECKING:
    from ..catalog import Catalog


def _describe(entry: Entry) -> str:
    s = entry.structure
    if isinstance(s, ArrayStructure):
        return f"{s.data_type.kind}{s.data_type.itemsize} {s.shape}"
    if isinstance(s, TableStructure):
        return f"{s.row_count} rows × {len(s.columns)} cols"
    if entry.family == "container":
        return f"{s.count} children"
    shape = getattr(s, "shape", None)  # (a sparse array's; an awkward array's length: each had no count, the listing stopped)
    return f"{entry.family} {tuple(shape) if shape is not None else getattr(s, 'length', '')}".rstrip()


@click.command(name="ls")
@click.argument("path", default="")
@pipeline_option
@click.option("--store", default=None, help="The store to list (default: the pipeline's output.store).")
@click.option("-l", "--long", "long_", is_flag=True, help="Show family, shape/rows and data URL.")
@click.option("-r", "--recursive", is_flag=True)
@click.option("--public", is_flag=True, help="Only what anyone reads (catalog.json's view); default: every node, private ones marked.")
def ls(path: str, config: Path, store: str | None, long_: bool, recursive: bool, public: bool) -> None:
    """List the published tree under PATH: every node, those not public marked with their access
    tags (the full view the store keeps under private/; --public: what anyone reads)."""
    from ..catalog import Catalog

    try:
        target = target_store(config, store)
        # the full view: a data manager listing their own store saw nothing of its private nodes
        catalog = Catalog.open(target) if public else Catalog.open_full(target)
        top = catalog.entry(path)

        # a stack of listings, not recursion: a tree may be deeper than Python's recursion limit;
        # a node that is no container lists itself, as ls of a file does (it printed nothing)
        stack = [iter(catalog.entries(path.strip("/")) if top.family == "container" else [top])]
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
                continue
            line = "  " * (len(stack) - 1) + shown(entry.key) + ("/" if entry.family == "container" else "")
            if long_:
                line = f"{line:<50} {entry.family:<9} {_describe(entry):<28} {entry.data_url or ''}"
            if entry.access_tags is not None and "public" not in entry.access_tags:
                line += f"  [private: {', '.join(entry.access_tags) or 'nobody'}]"
            click.echo(line)
            if recursive and entry.family == "container":
                stack.append(iter(catalog.entries(entry.path)))
    except SkyshelfError as exc:
        fail(exc)


@click.command()
@pipeline_option
@click.option("--store", default=None, help="The store (default: the pipeline's output.store).")
def releases(config: Path, store: str | None) -> None:
    """List the releases in the store, oldest first; * marks the current one."""
    from ..release_docs import current_release
    from ..releases import list_releases

    try:
        target = target_store(config, store)
        try:
            current_release(target)
        except DamagedCatalog as exc:  # (said, and the releases listed, one to roll back to; unreadable: an error)
            click.echo(f"warning: {exc}", err=True)
        found = list_releases(target, damaged=True)
        for r in found:
            click.echo(f"{'*' if r.current else ' '} {r.id}  {r.state}")
        if not found:  # (a mistyped store looked like an empty one: nothing printed, exit 0)
            click.echo(f"warning: no releases in {target.url}: nothing has been published there (is it the store you meant?)", err=True)
    except SkyshelfError as exc:
        fail(exc)


@click.command()
@click.argument("release")
@pipeline_option
@click.option("--store", default=None, help="The store (default: the pipeline's output.store).")
@click.option("--wait", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Seconds to wait for a build of the same store to finish (else fail at once).")
def rollback(release: str, config: Path, store: str | None, wait: float) -> None:
    """Switch the catalog back to RELEASE."""
    from ..releases import rollback as do_rollback

    try:
        do_rollback(target_store(config, store), release, wait)
    except SkyshelfError as exc:
        fail(exc)
    click.echo(f"catalog now points at release {release}")


@click.command()
@pipeline_option
@click.option("--store", default=None, help="The store (default: the pipeline's output.store).")
@click.option("--keep", type=click.IntRange(min=1), default=3, show_default=True, help="Newest complete releases to keep.")
@click.option("--abandoned-after", type=click.FloatRange(min=0), default=30, show_default=True,
              help="Minutes without a heartbeat after which an unfinished build older than the current release is abandoned.")
@click.option("--wait", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Seconds to wait for a rollback or another gc of the same store to finish (else fail at once).")
def gc(config: Path, store: str | None, keep: int, abandoned_after: float, wait: float) -> None:
    """Delete releases older than the current one beyond the newest KEEP, except data that a kept
    release or a running build still uses."""
    from handlers.settings import Settings  # SKYSHELF_SPILL_MAX_AGE, as the handlers read it

    from .. import spills
    from ..releases import gc as do_gc

    try:
        max_age = Settings.from_env().spill_max_age
        target = target_store(config, store)
        result = do_gc(target, keep, abandoned_after * 60, wait)
        old_answers = spills.collect(target, older_than=max_age)  # spilled answers past their age
    except SkyshelfError as exc:
        fail(exc)
    click.echo(f"kept {len(result['kept'])} releases; deleted {len(result['deleted'])} prefixes")
    if not result["kept"]:
        click.echo(f"warning: no releases in {target.url}: nothing has been published there (is it the store you meant?)", err=True)
    for prefix in result["deleted"]:
        click.echo(f"  - {prefix}")
    for problem in result["problems"]:
        click.echo(f"  ! {problem}", err=True)
    if old_answers:
        click.echo(f"deleted {len(old_answers)} spilled answers older than {max_age:.0f} s")


@click.command()
@pipeline_option
@click.option("--store", default=None, help="The store to serve (default: the pipeline's output.store): a folder or s3:// URL.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--cors-origin", default="*", show_default=True,
              help="Origins browsers may read the API and /files/ from: *, comma-separated origins, or none.")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Worker processes sharing the port (default: one per usable core, at most 8; 1: a single process).")
def serve(config: Path, store: str | None, host: str, port: int, cors_origin: str, workers: int | None) -> None:
    """Serve the published catalog with the Lambda handlers (Tiled's HTTP API) and its files."""
    from handlers.cors import Cors
    from handlers.local import LocalServer  # the handlers sit above the library: imported only here
    from handlers.workers import Workers, default_workers

    workers = workers or default_workers()
    try:
        target = target_store(config, store)
        from ..catalog import Catalog

        catalog = Catalog.open(target)
        # Both read the settings: a malformed one fails here.
        server = (LocalServer(target.url, host, port, Cors.parse(cors_origin)) if workers == 1
                  else Workers(target.url, host, port, Cors.parse(cors_origin), workers))
    except SkyshelfError as exc:
        fail(exc)
    except OSError as exc:  # the address: taken, or not this host's
        click.echo(f"error: cannot serve on {host}:{port}: {exc.strerror or exc} (choose another with --port)", err=True)
        sys.exit(EXIT_FAILED)
    url = server.url
    click.echo(f"Serving {target.url} (release {catalog.release}) at {url}" + (f" with {workers} worker processes" if workers > 1 else ""))
    click.echo(f"  browse:   {url}/   (the browse page: find, preview and download in a web browser)")
    click.echo(f"  docs:     {url}/api/v1/docs")
    click.echo(f"  tiled:    from tiled.client import from_uri; c = from_uri('{url}/api/v1')  (pip install 'tiled[client]')")
    hint = _xarray_hint(catalog)
    if hint:
        file_zarr, group = hint
        click.echo(f"  xarray:   import xarray; ds = xarray.open_zarr('{url}/files/{file_zarr}'" + (f", group='{group}')" if group else ")"))
    click.echo("Press Ctrl+C to stop.")
    if isinstance(server, Workers):
        server.serve_forever(lambda pids: click.echo(f"Ready: {len(pids)} workers (pids {', '.join(map(str, pids))})."))
    else:
        server.serve_forever()


def _xarray_hint(catalog: Catalog, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """(file's Zarr URL, group) of the first array with named dimensions, looked for a few levels deep."""
    for entry in catalog.entries(path, 0, 50):
        dims = (entry.structure.dims if isinstance(entry.structure, ArrayStructure) else None) or []
        if dims and not all(d.startswith("dim_") for d in dims) and entry.data_url and ".zarr" in entry.data_url:
            file_zarr, _, inner = entry.data_url.partition(".zarr")
            return file_zarr + ".zarr", inner.strip("/").rpartition("/")[0]
        if entry.family == "container" and depth < 5:
            found = _xarray_hint(catalog, entry.path, depth + 1)
            if found:
                return found
    return None
