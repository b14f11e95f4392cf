"""dvc.yaml tells the truth: each stage's code deps are what shapes its bytes, and its params
and paths are the ones its module declares in STAGE.

The rule (dvc.yaml's header): a stage depends on the chapter's library (pipeline/library),
on the pictures (pipeline/pictures) when its module draws, and on its own module. The
runtime and the tools are no dependency: a stage module may import the runtime, but nothing
the runtime holds shapes an output. Imports are read from the source, and checked once
against a real import.
"""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.runtime.declaration import Stage

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
#: The folders whose code can shape a stage's bytes, and what a stage may import besides.
SHAPING = ("pipeline/library", "pipeline/pictures")
NOT_SHAPING = ("pipeline/runtime", "pipeline/stages/__init__.py", "pipeline/__init__.py")


def module_file(module: str) -> str | None:
    """The repo-relative file of a `pipeline` module, or None for anything else."""
    if module != "pipeline" and not module.startswith("pipeline."):
        return None
    path = Path(*module.split("."))
    return (path / "__init__.py" if (REPO / path).is_dir() else path.with_suffix(".py")).as_posix()


def imported_files(file: str) -> set[str]:
    """The project modules that `file` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse((REPO / file).read_text())):
        if isinstance(node, ast.Import):
            found |= {module_file(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(module_file(node.module))
            found |= {module_file(f"{node.module}.{alias.name}") for alias in node.names}
    return {name for name in found if name and (REPO / name).is_file()}


def closure(start: set[str], stop: tuple[str, ...] = ()) -> set[str]:
    """`start` and every project module it imports, transitively; `stop` is not entered."""
    pending, seen = list(start), set()
    while pending:
        file = pending.pop()
        if file not in seen and not file.startswith(stop):
            seen.add(file)
            pending += imported_files(file)
    return seen


def declaration(stage: str) -> Stage:
    return importlib.import_module(f"pipeline.stages.{stage}").STAGE


def shaping_deps(stage: str) -> set[str]:
    """The code deps `stage` must list, by the rule above."""
    module = f"pipeline/stages/{stage}.py"
    reached = closure({module}, stop=NOT_SHAPING) - {module}
    folders = {folder for folder in SHAPING for file in reached if file.startswith(folder + "/")}
    assert reached <= {f for f in reached if f.startswith(SHAPING)}, reached
    return {"pipeline/library", *folders, module}


def definition(stage: str) -> dict:
    return STAGES[stage].get("do", STAGES[stage])


@pytest.mark.parametrize("stage", list(STAGES))
def test_code_deps_are_the_library_the_pictures_where_it_draws_and_its_own_module(stage):
    declared = {dep for dep in definition(stage)["deps"] if dep.startswith("pipeline")}
    assert declared == shaping_deps(stage)


def test_the_library_never_reaches_up_into_what_a_stage_does_not_depend_on():
    """What the library and the pictures import stays inside them: an import of the runtime
    from there would shape bytes that no dependency covers."""
    files = [
        p.relative_to(REPO).as_posix() for folder in SHAPING for p in (REPO / folder).rglob("*.py")
    ]
    outside = {
        f for f in closure(set(files)) if not f.startswith(SHAPING) and f != "pipeline/__init__.py"
    }
    assert outside == set()


def placeholder(template: str) -> str:
    return template.replace("{name}", "${key}")


@pytest.mark.parametrize("stage", list(STAGES))
def test_params_are_the_ones_the_stage_declares(stage):
    assert definition(stage)["params"] == [placeholder(key) for key in declaration(stage).params]


@pytest.mark.parametrize("stage", list(STAGES))
def test_data_deps_and_outs_are_the_paths_the_stage_declares(stage):
    """The command's path arguments, expanded by the declaration, are exactly deps and outs."""
    spec, stage_definition = declaration(stage), definition(stage)
    words = stage_definition["cmd"].split()
    assert words[:4] == ["python", "-m", "pipeline", stage]
    arguments = words[5:] if spec.item else words[4:]
    if spec.item:
        assert words[4] == "${key}"
    assert len(arguments) == len(spec.inputs) + len(spec.outputs)
    values = dict(zip([arg.name for arg in (*spec.inputs, *spec.outputs)], arguments, strict=True))
    inputs = {p.as_posix() for arg in spec.inputs for p in arg.paths(Path(values[arg.name]))}
    outputs = {p.as_posix() for arg in spec.outputs for p in arg.paths(Path(values[arg.name]))}
    data_deps = {dep for dep in stage_definition["deps"] if not dep.startswith("pipeline")}
    declared_outs = set(stage_definition.get("outs", [])) | set(stage_definition.get("metrics", []))
    assert data_deps == inputs
    assert declared_outs == outputs


RUNTIME_IMPORTS = """
import importlib, sys
importlib.import_module(f"pipeline.stages.{sys.argv[1]}")
print(sorted(name for name in sys.modules if name.split(".")[0] == "pipeline"))
print(sorted(name for name in ("torch", "matplotlib", "mlflow") if name in sys.modules))
"""


@pytest.mark.parametrize(
    ("stage", "heavy"), [("generate", []), ("split", []), ("train", ["torch"])]
)
def test_a_real_import_loads_the_modules_read_from_the_source_and_no_heavy_library_unused(
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
    read = closure({f"pipeline/stages/{stage}.py"}) | {"pipeline/__init__.py"}
    packages = {f"{Path(f).parent.as_posix()}/__init__.py" for f in read}
    assert {module_file(name) for name in modules} <= read | packages  # the reader misses nothing
    assert libraries == heavy
