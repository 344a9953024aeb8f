"""The house's rule, kept true: every package imports only downward, and no modules import each other in a circle.

Imports are read with ``ast`` from every module of both packages, lazy imports inside functions included. The layers
(docs/architecture.md) from the bottom up; a package may import its own modules and any package of a lower layer,
never one of its own layer or above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGES = ("diffusiondrive_ros", "nas_compression")
LAYERS: tuple[tuple[str, ...], ...] = (
    ("diffusiondrive_ros.contract",),
    ("diffusiondrive_ros.geometry", "diffusiondrive_ros.resources", "diffusiondrive_ros.files"),
    ("diffusiondrive_ros.model",),
    ("diffusiondrive_ros.runtime",),
    ("diffusiondrive_ros.data", "diffusiondrive_ros.pdm"),
    ("diffusiondrive_ros.nodes", "diffusiondrive_ros.sim"),
    ("diffusiondrive_ros.evaluation",),
    ("diffusiondrive_ros.train",),
    ("nas_compression.space",),
    ("nas_compression.quant",),
    ("nas_compression.measure",),
    ("nas_compression.tasks",),
    ("nas_compression.strategies",),
    ("nas_compression.experiments",),
    ("nas_compression.deploy",),
    ("diffusiondrive_ros.commands", "diffusiondrive_ros.cli", "nas_compression.cli"),
)
ROOTS = set(PACKAGES)  # the packages' own __init__ (version, docstring): importable from anywhere


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def imports_of(path: Path, module: str) -> list[tuple[str, int]]:
    """(imported project module, line) for every import statement of a file, at any depth."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for name in targets:
            if name.split(".")[0] in PACKAGES:
                out.append((name, node.lineno))
    return out


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import names (``from pkg import mod`` names a module, ``from mod import f`` its module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def unit_of(module: str) -> tuple[int, str] | None:
    """(layer index, unit prefix) of a module; None for the package roots."""
    for i, layer in enumerate(LAYERS):
        for unit in layer:
            if module == unit or module.startswith(unit + "."):
                return i, unit
    return None


def import_graph(root: Path) -> tuple[dict[str, Path], dict[str, set[tuple[str, int]]]]:
    modules = project_modules(root)
    graph: dict[str, set[tuple[str, int]]] = {}
    for module, path in modules.items():
        edges = set()
        for name, line in imports_of(path, module):
            target = resolve(name, modules)
            if target is not None and target != module:
                edges.add((target, line))
        graph[module] = edges
    return modules, graph


def test_every_module_belongs_to_a_layer(repo_root):
    modules, _ = import_graph(repo_root)
    unplaced = sorted(m for m in modules if m not in ROOTS and unit_of(m) is None)
    assert not unplaced, f"modules outside every layer of LAYERS (docs/architecture.md): {unplaced}"


def test_imports_only_run_downward(repo_root):
    modules, graph = import_graph(repo_root)
    upward = []
    for module, edges in graph.items():
        here = unit_of(module)
        if here is None:
            continue
        for target, line in sorted(edges):
            there = unit_of(target)
            if there is None or there[1] == here[1]:
                continue
            if there[0] >= here[0]:
                upward.append(f"{modules[module].relative_to(repo_root)}:{line}: {module} -> {target} "
                              f"(layer {here[0]} {here[1]} imports layer {there[0]} {there[1]})")
    assert not upward, "imports that run up or sideways:\n" + "\n".join(upward)


def test_no_circular_imports_between_modules(repo_root):
    """Tarjan's strongly connected components over the module graph: every component must be one module."""
    _, graph = import_graph(repo_root)
    adjacency = {m: sorted({t for t, _ in edges}) for m, edges in graph.items()}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def connect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in adjacency.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in adjacency:
        if module not in index:
            connect(module)
    assert not cycles, f"modules that import each other in a circle: {cycles}"


@pytest.mark.parametrize("source, expected", [
    ("from ..sim.closed_loop import drive",
     ["diffusiondrive_ros.sim.closed_loop", "diffusiondrive_ros.sim.closed_loop.drive"]),
    ("from . import shards", ["diffusiondrive_ros.data", "diffusiondrive_ros.data.shards"]),
])
def test_the_checker_reads_relative_and_lazy_imports(tmp_path, source, expected, repo_root):
    """The checker itself: relative imports resolve from the importing module, imports inside functions count."""
    path = repo_root / "diffusiondrive_ros" / "data" / "_probe.py"
    code = f"def lazy():\n    {source}\n"
    probe = tmp_path / "probe.py"
    probe.write_text(code)
    names = [name for name, _ in imports_of(probe, "diffusiondrive_ros.data._probe")]
    assert names == expected, path
