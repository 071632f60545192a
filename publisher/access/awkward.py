"""A published awkward array: one Parquet file written by ``ak.to_parquet``.

The build publishes the form of the array as :func:`from_parquet_bytes` reads the stored file
back, and the server reads it the same way, so the buffer keys the tiled client asks for
(``{form_key}-{attribute}``) are the keys ``ak.to_buffers`` gives here. awkward and pyarrow
are imported on first use.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..awkward_layout import from_arrow_table, from_parquet_bytes, to_parquet_bytes  # noqa: F401  (re-exported)
from ..errors import BadRequest
from ..stores import Store
from ..structures import AwkwardStructure
from .cache import DECODED


def form_keys(form: dict[str, Any]) -> Iterator[str]:
    """Every ``form_key`` in a form (JSON dict), depth first."""
    if form.get("form_key"):
        yield form["form_key"]
    for name in ("content",):
        if isinstance(form.get(name), dict):
            yield from form_keys(form[name])
    for child in form.get("contents") or []:
        yield from form_keys(child)


def _same_nodes(part: dict[str, Any], whole: dict[str, Any], names: dict[str, str]) -> bool:
    """Whether two forms have the same nodes; collects ``part``'s form key → ``whole``'s."""
    if any(part.get(k) != whole.get(k) for k in ("class", "fields", "primitive", "inner_shape", "size")):
        return False
    if part.get("form_key"):
        names[part["form_key"]] = whole.get("form_key", "")
    if isinstance(part.get("content"), dict) != isinstance(whole.get("content"), dict):
        return False
    if isinstance(part.get("content"), dict) and not _same_nodes(part["content"], whole["content"], names):
        return False
    a, b = part.get("contents") or [], whole.get("contents") or []
    return len(a) == len(b) and all(_same_nodes(x, y, names) for x, y in zip(a, b))


class PublishedAwkward:
    def __init__(self, store: Store, url: str, structure: AwkwardStructure) -> None:
        self.store, self.url, self.structure = store, url, structure

    def read(self, check: Callable[[int], object] | None = None) -> Any:
        """The whole array. ``check(bytes)`` bounds the answer before the work (:meth:`_table`)."""
        return from_arrow_table(self._table(None, check))

    def _table(self, fields: list[str] | None, check: Callable[[int], object] | None) -> Any:
        """The stored Arrow table, or these top-level fields' columns of it, kept by the warm
        process. ``check(bytes)`` sees the stored object's size before it is read, then the
        columns' uncompressed size (Parquet's footer) before they are decoded."""
        import pyarrow.parquet as pq

        # (None: the whole table; a projection, even of no field, keys apart: an empty one under the
        # whole table's key was every later whole read's answer, records without fields)
        key = (self.store.url, self.url + (f"?{','.join(fields)}" if fields is not None else ""))
        table = DECODED.get(key)
        if table is not None:
            if check is not None:
                check(int(table.nbytes))
            return table
        if check is not None:
            check((self.store.stat(self.url) or (0, 0.0))[0])
        parquet = pq.ParquetFile(io.BytesIO(self.store.read_bytes(self.url)))
        if check is not None:
            meta = parquet.metadata
            chunks = (meta.row_group(i).column(j) for i in range(meta.num_row_groups) for j in range(meta.num_columns))
            check(sum(c.total_uncompressed_size for c in chunks if fields is None or c.path_in_schema.split(".")[0] in fields))
        table = parquet.read(columns=fields).combine_chunks()
        DECODED.put(key, table)
        return table

    def check_keys(self, keys: Iterable[str]) -> list[str]:
        """The requested form keys, refused (400) when the form has no such node."""
        keys = list(keys)
        known = set(form_keys(self.structure.form))
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise BadRequest(f"no form key(s) {unknown} in this awkward array's form; its form keys are {sorted(known)}")
        return keys

    def buffers(self, keys: Iterable[str] | None = None, check: Callable[[int], object] | None = None) -> dict[str, Any]:
        """``{form_key}-{attribute}`` → buffer, of the nodes ``keys`` names (all when None).
        Of a record, only the Parquet columns of the fields holding those nodes are read."""
        import awkward as ak

        if keys is None:
            return dict(ak.to_buffers(self.read(check))[2])
        keys = self.check_keys(keys)
        if not keys:  # (a POST of [] or a GET without form_key: no buffers, nothing read)
            return {}
        fields = self._fields_for(set(keys))
        container = self._projected(fields, check) if fields is not None else None
        if container is None:
            container = ak.to_buffers(self.read(check))[2]
        prefixes = tuple(f"{k}-" for k in keys)
        return {name: buffer for name, buffer in container.items() if name.startswith(prefixes)}

    def _fields_for(self, keys: set[str]) -> list[str] | None:
        """The top-level fields whose nodes ``keys`` name, when the array is a record and that is
        not all of them (else None: the whole file is read)."""
        form = self.structure.form
        if form.get("class") != "RecordArray" or not form.get("fields"):
            return None
        needed = [f for f, c in zip(form["fields"], form["contents"]) if keys & set(form_keys(c))]
        return needed if len(needed) < len(form["fields"]) else None

    def _projected(self, fields: list[str], check: Callable[[int], object] | None) -> dict[str, Any] | None:
        """The buffers of these fields' Parquet columns alone, named by the published form's keys
        (awkward numbers a partial read's nodes afresh: the two forms are walked side by side);
        None when the forms do not match node for node."""
        import awkward as ak

        table = self._table(fields, check)
        form, _, container = ak.to_buffers(from_arrow_table(table))
        part, whole = form.to_dict(), self.structure.form
        if part.get("class") != "RecordArray" or part.get("fields") != fields:
            return None
        names: dict[str, str] = {}
        for field, content in zip(fields, part["contents"]):
            if not _same_nodes(content, whole["contents"][whole["fields"].index(field)], names):
                return None
        out = {}
        for name, buffer in container.items():
            node, _, attribute = name.partition("-")
            out[f"{names[node]}-{attribute}"] = buffer
        return out
