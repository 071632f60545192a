"""Writers: structures → Zarr (arrays, groups) and Parquet (tables), one per structure family.

The build asks :data:`WRITERS` for the writer of a node's family (``array``, ``table``); a
new family's writer registers with ``@register("family")`` or through the ``skyshelf.writers``
entry point group. A writer is made once per build from a :class:`WriteContext` and answers
:meth:`Writer.write` with the structure it wrote, as the index publishes it.
"""

from __future__ import annotations

from .base import WRITERS, WriteContext, Writer, Written, register, writers_for


def _builtins() -> None:
    from . import awkward_parquet, parquet_table, sparse_parquet, zarr_array  # noqa: F401  (they register themselves)


WRITERS.builtins = _builtins

__all__ = ["WRITERS", "WriteContext", "Writer", "Written", "register", "writers_for"]
