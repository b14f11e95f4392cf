"""The GitHub workflows: valid for GitHub (its published schema), and running what the README
says each runs."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"


def steps(workflow: str) -> list[str]:
    """The `run` scripts of every job of a workflow, in order."""
    jobs = yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"]
    return [step["run"] for job in jobs.values() for step in job["steps"] if "run" in step]


@pytest.mark.parametrize("workflow", sorted(path.name for path in WORKFLOWS.glob("*.yml")))
def test_every_workflow_is_valid_for_github(workflow):
    schema = ("--builtin-schema", "vendor.github-workflows")
    checked = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, str(WORKFLOWS / workflow)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_test_workflow_runs_ci_and_the_weekly_one_proves_the_lock():
    assert steps("test.yml") == [".ci/run"]
    assert "make test" in (WORKFLOWS.parents[1] / ".ci" / "run").read_text()
    reproduce = steps("reproduce.yml")
    assert reproduce[:2] == ["make repro", "git diff --exit-code dvc.lock"]
    on = yaml.safe_load((WORKFLOWS / "reproduce.yml").read_text())[True]  # YAML 1.1: `on`
    assert set(on) == {"schedule", "workflow_dispatch"}
