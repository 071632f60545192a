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


#: Characters that reorder what follows them on a terminal (bidi embeddings, overrides, isolates, marks).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def shown(text: object, keep: str = "") -> str:
    """Text for a terminal: its control characters, line separators and bidi controls escaped as
    Python writes them, but those in ``keep`` (a file named with a newline showed as two lines; an
    escape sequence or a bidi override in a name drove the terminal or reversed what followed).
    Other characters Python calls unprintable stay (a zero-width joiner in an emoji, a Persian
    zero-width non-joiner, a no-break space: names as their owners wrote them)."""
    import unicodedata

    text = str(text)
    if text.isprintable():
        return text
    return "".join(repr(c)[1:-1] if c not in keep and (c in _BIDI or unicodedata.category(c) in ("Cc", "Zl", "Zp")) else c
                   for c in text)


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
