"""The layout shows the architecture: five packages in layers, no cycles, readable modules.

pipeline/library (the chapter's library) < pipeline/pictures < pipeline/runtime (runs and
records a stage) < pipeline/stages < pipeline/tools (what no stage runs), and the command
line on top (pipeline/__main__.py). A module imports only from its own layer or below.
Imports are read from the source, at the top of a module and inside functions alike.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pipeline"
LAYERS = ("library", "pictures", "runtime", "stages", "tools")
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """A module's layer: its package's place in LAYERS; the package's own files on top."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    if module == "pipeline":
        return -1  # the package marker: empty, imported by everything
    return len(LAYERS)  # pipeline/__main__.py: the command line


def imports(module: str) -> set[str]:
    """The pipeline modules `module` imports (a `from package import name` counts the name's
    module where it is one)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports(module) for module in MODULES}


def test_every_package_of_the_layout_exists_and_nothing_else_sits_beside_them():
    entries = {path.name for path in PACKAGE.iterdir() if path.name != "__pycache__"}
    assert entries == {*LAYERS, "__init__.py", "__main__.py"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_nothing_from_a_higher_layer(module):
    higher = sorted(name for name in GRAPH[module] if layer(name) > layer(module))
    assert higher == [], f"{module} (layer {layer(module)}) imports {higher}"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's components of more than one module: each is an import cycle."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return components


def test_no_two_modules_import_each_other_even_through_others():
    assert strongly_connected(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_longer_than_a_reader_takes_in(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(REPO)} has {lines} lines"
