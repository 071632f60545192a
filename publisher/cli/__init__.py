"""The ``publish`` command line, one module per group of commands: building
(:mod:`.build_cmd`), a published store (:mod:`.store_cmd`) and the stack on AWS (:mod:`.deploy_cmd`).

Exit status: 0 success; 1 failures and nothing published (``on_error: fail``) or a bad
config; 3 published, but some sources or nodes failed (``on_error: skip``).
"""

from __future__ import annotations

import logging

import click

from ..errors import SkyshelfError
from ..stores.faults import store_trouble
from .build_cmd import build, schema, validate
from .common import EXIT_FAILED, EXIT_PARTIAL, fail
from .deploy_cmd import deploy, destroy, template_command
from .keys_cmd import keys
from .status_cmd import status
from .store_cmd import gc, ls, releases, rollback, serve


class _Commands(click.Group):
    """The commands, with one edge for errors they did not expect: a store that cannot be reached
    or signed for says what to check, and with ``--verbose`` the traceback is logged as well."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # (`publish releases | head`: the reader left, no store failed)
            _quiet_stdout()
            raise SystemExit(0) from None
        except SkyshelfError as exc:
            fail(exc)
        except Exception as exc:
            trouble = store_trouble(exc)
            if trouble is None:
                raise
            logging.getLogger("publisher.cli").debug("store error", exc_info=True)
            fail(trouble)


def _quiet_stdout() -> None:
    """stdout to /dev/null: the interpreter's final flush of a closed pipe would say so again."""
    import os
    import sys

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="skyshelf")
@click.option("-v", "--verbose", is_flag=True, help="Log details (tracebacks of failures).")
def main(verbose: bool) -> None:
    """Publish scientific data as Zarr + Parquet + a metadata index."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


for _command in (validate, schema, build, ls, releases, rollback, gc, serve, deploy, status, destroy, template_command, keys):
    main.add_command(_command)

__all__ = ["EXIT_FAILED", "EXIT_PARTIAL", "main"]
