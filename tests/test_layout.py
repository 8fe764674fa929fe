"""The package's layout holds: no import cycle, and each side imports only what is below it.

    cli                       the command line: every side
    server   worker           the HTTP server; the worker runner
    storage  client           the stores; the HTTP client
    core                      models, errors, config, validation, limits, codec, ids, clock, logs

Read from the source (every import, at module level or inside a function), not from what
happens to be loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tornado_queue

PACKAGE = Path(tornado_queue.__file__).parent
SIDES = {"cli": 3, "server": 2, "worker": 2, "storage": 1, "client": 1}
"""A module may import its own side and the core; beyond that, only sides listed lower."""
MAY_IMPORT = {
    "cli": {"server", "worker", "client", "storage"},
    "server": {"storage"},
    "worker": {"client"},
    "storage": set(),
    "client": set(),
    "core": set(),
}
OUTSIDE = {"tornado_queue.testing", "tornado_queue.__main__"}
"""Test support (real processes) and the `python -m` entry: not part of any side."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The package's modules that `name` imports (a `from X import y` names X.y when that is
    a module, else X)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return {each for each in found if each in MODULES and each != name}


def side(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in SIDES) else "core"


GRAPH = {name: imports_of(name) for name in MODULES if name not in OUTSIDE}


def test_the_package_has_no_import_cycle():
    visiting: list[str] = []
    done: set[str] = set()
    cycles = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycles.append([*visiting[visiting.index(name) :], name])
            return
        visiting.append(name)
        for imported in sorted(GRAPH.get(name, ())):
            if imported != "tornado_queue":  # the package's __init__ holds only its version
                visit(imported)
        visiting.pop()
        done.add(name)

    for name in sorted(GRAPH):
        visit(name)
    assert not cycles, " ; ".join(" -> ".join(cycle) for cycle in cycles)


def test_each_side_imports_only_the_core_and_the_sides_below_it():
    wrong = [
        f"{name} imports {imported}"
        for name, imported_names in GRAPH.items()
        for imported in imported_names
        if side(imported) not in {"core", side(name)} | MAY_IMPORT[side(name)]
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_the_sides_are_where_the_layout_says():
    sides = {side(name) for name in GRAPH}
    assert sides == {"core", *SIDES}
    assert side("tornado_queue.server.handlers.tasks") == "server"
    assert side("tornado_queue.config") == "core"
