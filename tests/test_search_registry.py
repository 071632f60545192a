"""The query registry's plug-in contract: a distribution whose ``skyshelf.queries`` entry point
names one query class adds a query type, answered on rows and on search columns alike; a broken
plug-in, or one taking a built-in name, is a warning, never a broken search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PLUGIN = '''
from dataclasses import dataclass
from typing import Any

from publisher.formats import Entry
from publisher.queries.base import Query
from publisher.queries.sqlite import lookup


@dataclass
class StartsWith(Query):
    """A string value starting with ``prefix``."""

    name = "startswith"
    key: str
    prefix: str

    def on_row(self, entry: Entry) -> bool:
        value = lookup(entry.metadata, self.key)
        return isinstance(value, str) and value.startswith(self.prefix)

    def on_columns(self, cols: Any) -> Any:
        from publisher.queries.columnar import nothing, per_value

        column = cols.column(self.key)
        test = lambda v: isinstance(v, str) and v.startswith(self.prefix)  # noqa: E731
        return per_value(column, test) if column is not None else nothing(cols)


@dataclass
class Replaces(StartsWith):
    """A plug-in may add a name, never take a built-in one."""

    name = "eq"
'''

#: Run in a fresh process with the plug-ins on its path (the registry is read once per process).
PROBE = '''
import json, sys, tempfile, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from publisher.queries.registry import filters_from, names
    known = names()
from publisher.index.columns_read import SearchColumns
from publisher.index.columns_write import write_search
from publisher.index.engine import search
from publisher.formats import Entry
from publisher.index.rows import select
from publisher.stores import Store

rows = [{"path": f"c/k{i}", "key": f"k{i}", "parent": "c", "family": "array", "specs": [], "structure": {}, "data_url": None,
         "source_file": None, "source_path": None, "access_tags": None, "notes": {}, "metadata": {"name": name}}
        for i, name in enumerate(["alpha", "beta", "alps", 3, ["alpine"]])]
entries = [Entry.from_json(row) for row in rows]
queries = filters_from({"filter[startswith][condition][key]": ["name"], "filter[startswith][condition][prefix]": ["al"]})
with tempfile.TemporaryDirectory() as folder:
    write_search(Store(folder), "s", [(row, None) for row in rows])
    count, page = search(SearchColumns.open(Store(folder), "s"), queries, "", 0, 10)
print(json.dumps({"names": known, "warnings": [str(w.message) for w in caught],
                  "rows": [e.key for e in select(entries, queries)], "columns": [e.key for e in page],
                  "eq": [e.key for e in select(entries, filters_from({"filter[eq][condition][key]": ["name"],
                                                                      "filter[eq][condition][value]": ['"beta"']}))]}))
'''


def _distribution(site: Path, name: str, points: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata finds one: a dist-info folder on the path."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[skyshelf.queries]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))


def test_a_plugin_adds_a_query_and_a_broken_one_only_warns(tmp_path: Path) -> None:
    (tmp_path / "startswith_query.py").write_text(PLUGIN)
    _distribution(tmp_path, "skyshelf_startswith", {"startswith": "startswith_query:StartsWith"})
    _distribution(tmp_path, "skyshelf_broken", {"broken": "no_such_module_here:Query", "eq": "startswith_query:Replaces"})
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=root,
                          env={"PYTHONPATH": f"{root}:{tmp_path}", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["names"][-1] == "startswith" and "eq" in found["names"]
    assert any("'broken'" in w and "no_such_module_here" in w for w in found["warnings"]), found["warnings"]
    assert any("'eq' is already registered" in w for w in found["warnings"]), found["warnings"]
    assert found["eq"] == ["k1"]  # still the built-in eq
    assert found["rows"] == found["columns"] == ["k0", "k2"]


def test_the_metadata_package_ships_every_built_in_query() -> None:
    """The Lambda packager ships the modules ``handlers.metadata`` can import (modulefinder): the
    built-in query classes and their column helpers must be among them, or a deployed search
    fails on its first filter."""
    from publisher.deploy.package import our_modules
    from publisher.queries.registry import registry

    shipped = set(our_modules("metadata"))
    modules = {cls.__module__ for cls in registry().values() if cls.__module__.startswith("publisher.")} | {"publisher.queries.columnar"}
    assert {m.replace(".", "/") + ".py" for m in modules} <= shipped
