"""dvc.yaml tells the truth: each stage lists, as code deps, exactly the modules it imports."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]

LIST_IMPORTED = """
import importlib, sys
import pipeline.__main__
importlib.import_module(f"pipeline.stages.{sys.argv[1]}")
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None) or ""
    if module.__name__ == "pipeline" or module.__name__.startswith("pipeline."):
        print(path)
"""


def imported_modules(stage: str) -> set[str]:
    """The project's modules that `python -m pipeline <stage>` imports, repo-relative."""
    result = subprocess.run(
        [sys.executable, "-c", LIST_IMPORTED, stage],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return {Path(line).relative_to(REPO).as_posix() for line in result.stdout.split()}


def declared_code(stage: dict) -> set[str]:
    definition = stage.get("do", stage)
    return {dep for dep in definition["deps"] if dep.startswith("pipeline/")}


@pytest.mark.parametrize("stage", list(STAGES))
def test_code_deps_are_exactly_the_imported_modules(stage):
    assert declared_code(STAGES[stage]) == imported_modules(stage)


def test_data_stages_do_not_import_torch_or_matplotlib():
    for stage in ("generate", "split"):
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys, pipeline.__main__, pipeline.stages.{stage}; "
                "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == "[]", stage
