"""The import graph of rsgeo and of the QGIS plugin has no cycle, and the layers stay apart.

Built from the source (the AST of every module, imports inside functions
included: a lazy import is still a dependency), so no import runs here.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"rsgeo": ROOT / "rsgeo", "rsgeo_qgis": ROOT / "qgis_plugin" / "rsgeo_qgis"}


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` (links followed)."""
    out = {}
    for path in sorted(package.rglob("*.py")) + sorted((package / "definitions").glob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported_names(name: str, path: Path, known: set[str] | None = None) -> set[str]:
    """Every module name ``path`` imports (absolute; relative imports resolved).

    ``from pkg import sub`` depends on ``pkg.sub`` and, unless every name is a
    submodule in ``known``, on ``pkg`` itself (its ``__init__``'s content).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            subs = {f"{module}.{a.name}" for a in node.names}
            found.update(subs)
            if known is None or not subs <= known:
                found.add(module)
    return found


def graph(package: str) -> dict[str, set[str]]:
    mods = modules(PACKAGES[package])
    known = set(mods)
    return {name: {d for d in imported_names(name, path, known) if d in mods and d != name} for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), plus self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in g.get(v, ()):
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def packages_of(g: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """The graph with modules merged into their package ``depth`` levels down (rsgeo.zoo, rsgeo.cli ...)."""
    def top(m: str) -> str:
        return ".".join(m.split(".")[:depth])

    out: dict[str, set[str]] = {}
    for v, ds in g.items():
        out.setdefault(top(v), set()).update(top(d) for d in ds if top(d) != top(v))
    return out


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert cycles({"a": {"a"}}) == [["a"]]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_module_imports_itself_back(package: str) -> None:
    g = graph(package)
    assert len(g) > 10  # the graph was really built
    assert cycles(g) == []


def test_no_subpackage_of_rsgeo_imports_another_back() -> None:
    """E.g. encoders/ never imports zoo/ (the zoo builds encoders), cluster/ never the pipeline."""
    assert cycles(packages_of(graph("rsgeo"), 2)) == []


def test_the_shared_definitions_import_only_the_standard_library_and_each_other() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in sorted((PACKAGES["rsgeo"] / "definitions").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: another definitions module
                    continue
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= stdlib, f"{path.name} imports {roots - stdlib}"


def test_the_plugin_uses_the_librarys_definitions_not_a_copy() -> None:
    plugin = PACKAGES["rsgeo_qgis"] / "definitions"
    library = PACKAGES["rsgeo"] / "definitions"
    assert plugin.resolve() == library.resolve(), "qgis_plugin/rsgeo_qgis/definitions must link to rsgeo/definitions"


def test_the_library_never_imports_qgis_and_the_plugin_imports_rsgeo_only_in_process() -> None:
    for name, path in modules(PACKAGES["rsgeo"]).items():
        roots = {m.split(".")[0] for m in imported_names(name, path)}
        assert not roots & {"qgis", "PyQt5", "PyQt6"}, f"{name} imports QGIS"
    allowed = {"rsgeo_qgis.runner", "rsgeo_qgis.backend", "rsgeo_qgis.worker_client"}  # the in-process backend
    for name, path in modules(PACKAGES["rsgeo_qgis"]).items():
        roots = {m.split(".")[0] for m in imported_names(name, path)}
        if "rsgeo" in roots:
            assert name in allowed, f"{name} imports rsgeo; QGIS's Python usually cannot"
