"""The package map (docs/PACKAGE_MAP.md) as a rule: every module imports only its own layer or
lower ones, the module import graph has no cycle, and the top level holds only the entry points.

Imports are read from the source (AST), function-level ones included, so a lazy import
cannot hide an upward dependency; imports under ``if TYPE_CHECKING:`` are annotations only
and are skipped.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bench"
# Lower number = lower layer. A module may import its own layer and those below it.
LAYERS: dict[str, int] = {
    "core": 0,
    "datasets": 1, "align": 1, "fr": 1, "diffusion": 1,
    "methods": 2,
    "stats": 3, "pipeline": 3,
    "results": 4, "report": 4,
    "cli": 5, "api": 5, "demo": 5, "__main__": 5,
}
TOP_LEVEL_MODULES = {"__init__", "__main__", "cli", "api", "demo"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The bench modules that ``path`` imports (a ``from pkg import sub`` counts as ``pkg.sub``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "bench")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "bench":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {m for m in found if m in modules and m != name}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else 0  # "bench" itself (__version__) is the floor


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def test_every_module_imports() -> None:
    for name in _modules():
        if name.startswith("bench.pipeline.executors.ray") or name == "bench.__main__":
            continue  # ray is an optional extra; __main__ runs the CLI on import
        importlib.import_module(name)


def test_top_level_holds_only_entry_points() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= TOP_LEVEL_MODULES, sorted(top - TOP_LEVEL_MODULES)
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} <= set(LAYERS)


def test_no_module_imports_a_higher_layer(graph: dict[str, set[str]]) -> None:
    upward = sorted(f"{m} ({_layer(m)}) imports {d} ({_layer(d)})" for m, deps in graph.items() for d in deps
                    if _layer(d) > _layer(m))
    assert not upward, "\n".join(upward)


def test_import_graph_has_no_cycle(graph: dict[str, set[str]]) -> None:
    # Package __init__ files that only document are leaves; a cycle through real modules is the fault.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_layer_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The scan itself can fail: a core module importing the pipeline is reported."""
    pkg = tmp_path / "bench"
    (pkg / "core").mkdir(parents=True)
    (pkg / "pipeline").mkdir()
    for f in (pkg / "__init__.py", pkg / "core" / "__init__.py", pkg / "pipeline" / "__init__.py",
              pkg / "pipeline" / "runner.py"):
        f.write_text("")
    (pkg / "core" / "paths.py").write_text("def f():\n    from bench.pipeline import runner\n")
    modules = {"bench.core.paths": pkg / "core" / "paths.py", "bench.pipeline.runner": pkg / "pipeline" / "runner.py"}
    deps = _imports(pkg / "core" / "paths.py", "bench.core.paths", modules)
    assert deps == {"bench.pipeline.runner"}
    assert _layer("bench.pipeline.runner") > _layer("bench.core.paths")
