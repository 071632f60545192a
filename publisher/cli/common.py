"""What every ``publish`` command shares: the pipeline option, exit codes, error exit, sizes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from ..errors import SkyshelfError

EXIT_FAILED = 1
EXIT_PARTIAL = 3

pipeline_option = click.option(
    "-c", "--config", "config", default="pipeline.yml", show_default=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The pipeline file.",
)


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def shown(text: object, keep: str = "") -> str:
    """Text for a terminal: its unprintable characters escaped as Python writes them, but those in
    ``keep`` (a file named with a newline showed as two lines; an escape sequence or a bidi
    override in a name drove the terminal or reversed what followed)."""
    text = str(text)
    return text if text.isprintable() else "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def fail(exc: SkyshelfError) -> NoReturn:
    click.echo(f"error: {shown(exc, keep=chr(10))}", err=True)
    sys.exit(EXIT_FAILED)


def target_store(config: Path, store: str | None) -> Any:
    """The ``--store`` given, else the pipeline's, opened with the environment's store settings
    (``SKYSHELF_S3_BACKEND``, ``SKYSHELF_DIRECT_IO``), read here, once per command."""
    from ..content_types import content_type
    from ..settings import BuildSettings
    from ..stores import Store

    if store is not None:
        return Store(store, content_type=content_type, **BuildSettings.from_env().store_options())
    from ..build import resolve_store
    from ..config import load_pipeline

    return resolve_store(load_pipeline(config))
