"""Shared fixtures: a real MLflow SQLite store, and copies of this repo to run DVC in."""

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
_experiment_numbers = itertools.count()


@pytest.fixture(scope="session")
def mlflow_database(tmp_path_factory) -> str:
    """A SQLite tracking URI shared by the session (creating one costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def mlflow_store(mlflow_database, tmp_path, monkeypatch):
    """A fresh experiment in the session's store, with the test running in tmp_path.

    Yields an MlflowClient and the experiment's name.
    """
    from mlflow import MlflowClient

    experiment = f"test-{next(_experiment_numbers)}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_database)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(tracking_uri=mlflow_database)
    yield client, experiment


class PipelineRepo:
    """A copy of this repository in a fresh git repo, for running the real DVC pipeline."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid",
        }
        for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DVC_ROOT"):
            self.env.pop(variable, None)

    def run(
        self, *command: str, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess:
        """Run a command in the copy; raise with its output if it fails and `check`."""
        result = subprocess.run(
            command, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def write_params(self, params: dict) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def use_small_params(self, models: tuple[str, ...] | None = None) -> dict:
        """Small, fast settings (and optionally fewer models): the pipeline in seconds."""
        params = self.params()
        for dataset in params["datasets"].values():
            dataset["n"] = 96
        kept = models if models is not None else tuple(params["models"])
        params["models"] = {name: params["models"][name] for name in kept}
        for model in params["models"].values():
            model["epochs"] = 2
        self.write_params(params)
        return params

    def lock(self) -> dict:
        return yaml.safe_load((self.root / "dvc.lock").read_text())

    def mlflow_runs(self) -> list:
        """Every run in the copy's default store, oldest first."""
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{self.root / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("square-sequences")
        if experiment is None:
            return []
        runs = client.search_runs([experiment.experiment_id], run_view_type=3, max_results=10_000)
        return sorted(runs, key=lambda run: run.info.start_time)


@pytest.fixture
def pipeline_repo(tmp_path) -> PipelineRepo:
    """This repository's tracked and new files, copied into a fresh git repo (no outputs)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    root = tmp_path / "repo"
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    repo = PipelineRepo(root)
    repo.run("git", "init", "--quiet")
    repo.run("git", "add", "--all")
    repo.run("git", "commit", "--quiet", "-m", "copy")
    return repo
