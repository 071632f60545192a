"""The shape docs/architecture.md promises, checked on the source: small modules, no import
cycle (imports inside functions included), and imports that point down the layers: sources →
readers → structures → writers → store + index → handlers → serializers."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("publisher", "handlers")
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (``publisher.x.y`` may be a module or a name in ``publisher.x``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> Iterator[tuple[str, int]]:
    """Every project module ``module`` imports, anywhere in its body, with the line."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                target = _resolve(name)
                if target and target != module:
                    yield target, node.lineno


GRAPH = {module: sorted({target for target, _ in imports(module)}) for module in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines: split it (at most {MAX_LINES})"


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), a package's own
    ``__init__`` re-exporting its submodules excepted: that edge is how packages are made."""
    def edges(module: str) -> list[str]:
        return [t for t in GRAPH[module] if not t.startswith(module + ".")]

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in edges(module):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    assert _cycles() == [], "modules that import each other (directly or round a loop, lazy imports included)"


#: (importer prefix, forbidden prefixes): each layer only looks down. The CLI and the deployer
#: are the top: they start, package and describe the handlers, so they alone may import them.
TOP = ("publisher.cli", "publisher.deploy")
RULES = [
    ("publisher", ("handlers",)),
    ("publisher.structures", ("publisher.readers", "publisher.writers", "publisher.build", "publisher.access",
                              "publisher.serializers", "publisher.index", "publisher.stores", "publisher.cli", "publisher.deploy")),
    ("publisher.readers", ("publisher.writers", "publisher.build", "publisher.access", "publisher.serializers",
                           "publisher.index", "publisher.cli", "publisher.deploy")),
    ("publisher.writers", ("publisher.build", "publisher.access", "publisher.serializers", "publisher.readers",
                           "publisher.cli", "publisher.deploy")),
    ("publisher.stores", ("publisher.readers", "publisher.writers", "publisher.build", "publisher.access",
                          "publisher.serializers", "publisher.content_types", "publisher.index", "publisher.cli", "publisher.deploy")),
    ("publisher.serializers", ("publisher.readers", "publisher.writers", "publisher.build", "publisher.cli", "publisher.deploy")),
    ("publisher.access", ("publisher.readers", "publisher.writers", "publisher.build", "publisher.cli", "publisher.deploy")),
    ("publisher.index", ("publisher.readers", "publisher.build", "publisher.access", "publisher.serializers",
                         "publisher.cli", "publisher.deploy")),
    ("handlers", ("publisher.readers", "publisher.writers", "publisher.build", "publisher.cli", "publisher.deploy")),
]


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize(("layer", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_imports_point_down(layer: str, forbidden: tuple[str, ...]) -> None:
    importers = [m for m in MODULES if _under(m, layer) and not (layer == "publisher" and any(_under(m, top) for top in TOP))]
    wrong = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {t}" for m in importers
             for t, line in imports(m) if any(_under(t, f) for f in forbidden)]
    assert wrong == []


def test_the_checks_see_a_cycle_and_a_lazy_import() -> None:
    """The graph is read from real import statements: a cycle made here is found."""
    saved = dict(GRAPH)
    try:
        GRAPH["publisher.structures"] = [*GRAPH["publisher.structures"], "publisher.errors"]
        GRAPH["publisher.errors"] = [*GRAPH["publisher.errors"], "publisher.structures"]
        assert ["publisher.errors", "publisher.structures"] in _cycles()
    finally:
        GRAPH.clear()
        GRAPH.update(saved)
    assert any(t == "publisher.errors" for t, _ in imports("handlers.common"))
    assert any(t == "handlers.local" for t, _ in imports("publisher.cli.store_cmd"))  # lazy, inside a function
