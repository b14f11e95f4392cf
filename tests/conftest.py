"""Shared fixtures: a real MLflow SQLite store, and copies of this repo to run DVC in."""

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.runtime.client import try_connect

REPO = Path(__file__).resolve().parents[1]
_experiment_numbers = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def stage_servers(tmp_path_factory):
    """Stage servers of the test session's own, stopped when it ends.

    Every copy of the repository holds the same package, so the pipeline tests share one
    warm server; tests that need a fresh one set PIPELINE_STAGE_SERVER_DIR themselves.
    """
    directory = tmp_path_factory.getbasetemp() / "stage-servers"
    os.environ["PIPELINE_STAGE_SERVER_DIR"] = str(directory)
    os.environ["PIPELINE_STAGE_SERVER_IDLE_S"] = "300"
    yield directory
    stop_stage_servers(directory)


def stop_stage_servers(directory: Path) -> None:
    """SIGTERM every warm process listening on a socket under `directory` (the process that
    holds a socket is the one the kernel names, SO_PEERCRED, not one a file claims)."""
    for path in directory.rglob("*.sock"):
        connection = try_connect(path)
        if connection is None:
            continue
        with connection:
            credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        with contextlib.suppress(ProcessLookupError):
            os.kill(struct.unpack("3i", credentials)[0], signal.SIGTERM)


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
    """A copy of this repository in a git repo of its own, to run the real DVC pipeline in.

    Commands run with this checkout's .venv first on PATH and no MLflow or DVC variables
    inherited, so the copy's stages log to the copy's own mlflow.db.
    """

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

    def repro(self, *targets: str) -> list[str]:
        """`dvc repro`; the stages it ran, in order."""
        return stages_run(self.run("dvc", "repro", *targets).stdout)

    def commit(self, message: str) -> None:
        self.run("git", "add", "--all")
        self.run("git", "commit", "--quiet", "-m", message)

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def write_params(self, params: dict) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def use_small_params(self, models: tuple[str, ...] | None = None) -> dict:
        """Small, fast settings; with `models`, only those variants and their datasets."""
        params = self.params()
        if models is not None:
            params["models"] = {name: params["models"][name] for name in models}
            used = {model["dataset"] for model in params["models"].values()}
            params["datasets"] = {name: params["datasets"][name] for name in used}
        for dataset in params["datasets"].values():
            dataset["n"] = 96
        for model in params["models"].values():
            model["epochs"] = 2
        self.write_params(params)
        return params

    def lock(self) -> dict:
        return yaml.safe_load((self.root / "dvc.lock").read_text())

    def mlflow_runs(self) -> list:
        """Every run in the copy's default store, oldest first."""
        from pipeline.runtime import tracking

        client = tracking.client(f"sqlite:///{self.root / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("square-sequences")
        if experiment is None:
            return []
        runs = client.search_runs([experiment.experiment_id], run_view_type=3, max_results=10_000)
        return sorted(runs, key=lambda run: run.info.start_time)

    def copy_to(self, destination: Path) -> "PipelineRepo":
        """A copy of this copy (git history, DVC cache and outputs), with an empty MLflow store."""
        shutil.copytree(
            self.root,
            destination,
            symlinks=True,
            ignore=shutil.ignore_patterns("mlflow.db", "mlruns"),
        )
        return PipelineRepo(destination)


def stages_run(dvc_output: str) -> list[str]:
    """The stages that `dvc repro` printed as running, in order."""
    return re.findall(r"^Running stage '([^']+)'", dvc_output, flags=re.MULTILINE)


def copy_of_this_repository(destination: Path) -> PipelineRepo:
    """This checkout's tracked and new files (no outputs) in a fresh git repo, committed."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    repo = PipelineRepo(destination)
    repo.run("git", "init", "--quiet")
    repo.commit("copy")
    return repo


@pytest.fixture
def pipeline_repo(tmp_path) -> PipelineRepo:
    """A fresh copy of this repository: no outputs, no MLflow store."""
    return copy_of_this_repository(tmp_path / "repo")


#: The variants of the reproduced copy: one on each dataset branch, one packed.
SMALL_MODELS = ("gru", "lstm_packed")


@pytest.fixture(scope="session")
def reproduced_template(tmp_path_factory) -> PipelineRepo:
    """A copy with small params, `dvc repro` done once and committed (shared: do not change)."""
    repo = copy_of_this_repository(tmp_path_factory.mktemp("template") / "repo")
    repo.use_small_params(models=SMALL_MODELS)
    (repo.root / "dvc.lock").unlink()  # it records the default params' pipeline
    repo.repro()
    repo.commit("reproduced")
    return repo


@pytest.fixture
def reproduced_repo(reproduced_template, tmp_path) -> PipelineRepo:
    """A private copy of the reproduced template, with an empty MLflow store."""
    return reproduced_template.copy_to(tmp_path / "repo")
