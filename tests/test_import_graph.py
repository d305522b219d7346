"""No import circles inside reg2rg: every import of one reg2rg module by another, at module level, inside a
function or under ``if TYPE_CHECKING``, read from the source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "reg2rg"


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """{dotted module name: file}; a package is named by its ``__init__.py``."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = [package.name, *path.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The reg2rg modules that ``name`` imports anywhere in its file. ``from p import x`` counts as an import of
    ``p.x`` when that is a module, else of ``p``. Importing ``p.x`` also runs ``p/__init__.py``, but Python
    handles a package whose ``__init__`` imports its own submodules, so that edge is left out."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..data import y
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # import reg2rg.a.b.C -> the module reg2rg.a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """{module: the reg2rg modules it imports} for every module of ``package``."""
    modules = module_names(package)
    return {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search, modules in name order)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once every path from it is explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_holds_module_and_function_level_imports():
    graph = import_graph()
    assert "reg2rg.evaluation.pipeline" in graph["reg2rg.evaluation.report"]  # module level
    assert "reg2rg.data.build" in graph["reg2rg.visualize.study"]  # inside open_study
    assert "reg2rg.data.cache" in graph["reg2rg.visualize.ras"]  # under if TYPE_CHECKING
    assert "reg2rg.evaluation.pipeline" in graph["reg2rg.evaluation"]  # from reg2rg.evaluation import pipeline


def test_find_cycle_reports_the_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_reg2rg_has_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)
