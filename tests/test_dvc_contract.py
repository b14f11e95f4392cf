"""dvc.yaml tells the truth: each stage lists, as code deps, exactly the modules it imports.

The import graph of the package is read from the source (every project import is at the
top of its module), then checked once against a real import, so the check is fast for
every stage and still proven faithful.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
ENTRY = ("pipeline/__init__.py", "pipeline/__main__.py", "pipeline/stages/__init__.py")


def module_file(module: str) -> str | None:
    """The repo-relative file of a `pipeline` module, or None for anything else."""
    if module != "pipeline" and not module.startswith("pipeline."):
        return None
    path = Path(*module.split("."))
    return (path / "__init__.py" if (REPO / path).is_dir() else path.with_suffix(".py")).as_posix()


def imported_files(file: str) -> set[str]:
    """The project modules that `file` imports (`import pipeline.x`, `from pipeline.x import y`)."""
    found = set()
    for node in ast.walk(ast.parse((REPO / file).read_text())):
        if isinstance(node, ast.Import):
            found |= {module_file(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(module_file(node.module))
            found |= {module_file(f"{node.module}.{alias.name}") for alias in node.names}
    return {name for name in found if name and (REPO / name).is_file()}


def stage_imports(stage: str) -> set[str]:
    """Every project module `python -m pipeline <stage>` imports, transitively."""
    pending, seen = [*ENTRY, f"pipeline/stages/{stage}.py"], set()
    while pending:
        file = pending.pop()
        if file not in seen:
            seen.add(file)
            pending += imported_files(file)
    return seen


def declared_code(stage: str) -> set[str]:
    definition = STAGES[stage].get("do", STAGES[stage])
    return {dep for dep in definition["deps"] if dep.startswith("pipeline/")}


@pytest.mark.parametrize("stage", list(STAGES))
def test_code_deps_are_exactly_the_imported_modules(stage):
    assert declared_code(stage) == stage_imports(stage)


RUNTIME_IMPORTS = """
import importlib, sys
import pipeline.__main__
importlib.import_module(f"pipeline.stages.{sys.argv[1]}")
print(sorted(name for name in sys.modules if name.split(".")[0] == "pipeline"))
print(sorted(name for name in ("torch", "matplotlib") if name in sys.modules))
"""


@pytest.mark.parametrize(
    ("stage", "heavy"), [("generate", []), ("split", []), ("train", ["torch"])]
)
def test_a_real_import_loads_the_same_modules_and_no_heavy_library_a_stage_does_not_need(
    stage, heavy
):
    result = subprocess.run(
        [sys.executable, "-c", RUNTIME_IMPORTS, stage],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    modules, libraries = (ast.literal_eval(line) for line in result.stdout.splitlines())
    assert {module_file(name) for name in modules} == stage_imports(stage)
    assert libraries == heavy
