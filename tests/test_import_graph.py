"""No import cycles inside judgelm: every ``import`` of a judgelm module, at module level or
inside a function (``TYPE_CHECKING`` blocks excepted), is an edge, and the graph has no cycle.
A cycle makes a module's import order matter (``from judgelm import __version__`` in a module
that ``judgelm/__init__`` imports) or hides a layering mistake (a value shared by two layers
that import each other)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "judgelm"


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_graph() -> dict[str, set[str]]:
    """``module -> judgelm modules it imports`` (``from pkg import name`` names the submodule
    when ``name`` is one, else the package itself)."""
    modules = _modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        edges: set[str] = set()

        def visit(node: ast.AST, name: str = name, is_package: bool = is_package, edges: set[str] = edges) -> None:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                for child in node.orelse:
                    visit(child)
                return
            if isinstance(node, ast.Import):
                edges.update(o for a in node.names if a.name.startswith("judgelm") and (o := owner(a.name)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                if base.startswith("judgelm"):
                    for a in node.names:
                        target = f"{base}.{a.name}" if f"{base}.{a.name}" in modules else owner(base)
                        if target:
                            edges.add(target)
            for child in ast.iter_child_nodes(node):
                visit(child)

        visit(ast.parse(path.read_text(encoding="utf-8")))
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_the_graph_is_read_correctly():
    graph = import_graph()
    assert "judgelm.scoring.combine" in graph["judgelm.calibration"]  # a module-level import
    assert "judgelm.engine.registry" in graph["judgelm.judge"]  # an import inside a method
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or ())


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("judgelm.scoring.combine", "judgelm.calibration"),  # the Calibration value vs its fitting
        ("judgelm.judge", "judgelm"),  # the version lives in judgelm.version
        ("judgelm.options", "judgelm.serve"),  # JudgeOptions is core, not serve's
    ],
)
def test_named_layers_point_one_way(low, high):
    """The cycles this project had, pinned one by one: ``low`` must not import ``high``."""
    graph = import_graph()
    seen, todo = set(), [low]
    while todo:
        node = todo.pop()
        assert node != high, f"{low} imports {high}"
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))


def test_every_module_imports():
    """Each module imports on its own (the graph check reads source; this runs it)."""
    skip_optional = ("judgelm.scoring.triton_head",)  # needs triton, an optional extra
    for name in sorted(_modules()):
        if name.startswith(skip_optional) or name.endswith("__main__"):
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:  # an optional dependency not installed here
            if "judgelm" in str(e.name or ""):
                raise


def test_importing_judgelm_loads_no_torch():
    """The package's front door stays light (the CLI starts fast; `judgelm prompts` needs no
    model): the engine, scoring and vision import torch only when used."""
    code = "import sys, judgelm, judgelm.cli.flags; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent).returncode == 0
