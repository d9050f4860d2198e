"""The design card, checked: no import cycle among prmh's modules, no built-in plugin reaching
into the command line or the engine's private names, no module over 400 lines and no function
over 60. ``python tests/test_architecture.py`` prints the line counts and the import graph of
the core."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGES = {"harness": "prmh", "plugins": "prmh.plugins"}
CORE = ("hookspecs", "registry", "types", "store", "records", "engine")


def modules() -> dict[str, Path]:
    """Every prmh module by dotted name."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def imports(path: Path, known: set[str]) -> set[tuple[str, str]]:
    """(module imported, name) for every import of prmh, at module level or in a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {(a.name, "") for a in node.names if a.name.startswith("prmh")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prmh"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add((sub, "") if sub in known else (node.module, a.name))
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {m: {i for i, _ in imports(p, known) if i in known} for m, p in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def test_no_import_cycle():
    edges = graph()
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    for name in edges:
        edges[name] = {m for m in edges[name] if not m.startswith(name + ".")}
    assert cycles(edges) == []


def test_no_plugin_imports_the_cli_or_engine_internals():
    found = modules()
    known = set(found)
    for name, path in found.items():
        if not name.startswith("prmh.plugins"):
            continue
        for module, attr in imports(path, known):
            assert not module.startswith("prmh.cli"), f"{name} imports {module}"
            assert not attr.startswith("_"), f"{name} imports the private {module}.{attr}"
        text = path.read_text()
        assert "prmh.cli" not in text, f"{name} reaches into the command line"
        assert "from prmh.engine." not in text, f"{name} reaches into the engine's modules"


def test_modules_and_functions_stay_small():
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        assert len(path.read_text().splitlines()) <= 400, f"{name} is over 400 lines"
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"{name}.{node.name} is {length} lines"


def core_lines() -> dict[str, int]:
    lines = {}
    for name, path in modules().items():
        short = name.removeprefix("prmh.")
        if short.split(".")[0] in CORE:
            lines[name] = len(path.read_text().splitlines())
    return lines


def test_the_core_stays_under_2000_lines():
    assert sum(core_lines().values()) <= 2000, core_lines()


if __name__ == "__main__":
    for name, count in sorted(core_lines().items()):
        print(f"{count:5d}  {name}")
    print(f"{sum(core_lines().values()):5d}  core in all")
    print()
    for name, targets in sorted(graph().items()):
        if not name.startswith("prmh.plugins"):
            inside = sorted(t.removeprefix("prmh.") for t in targets if t != name)
            print(f"{name.removeprefix('prmh.') or 'prmh'} -> {', '.join(inside) or '-'}")
