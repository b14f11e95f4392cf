"""MLflow tracking: one run per DVC stage execution. The only module that calls MLflow.

A stage wraps its work in `stage_run`. The run is named after the DVC stage
(`train@gru`) and records:
- params: exactly the params DVC tracks for the stage, under the same dotted names;
- tags: `dvc.stage`, the git commit, and `input/<path>` / `output/<path>` holding
  each file's md5 (the hash DVC writes in dvc.lock);
- the stage's Parquet files as MLflow dataset inputs whose digest is that md5;
- every output as an artifact, or above ARTIFACT_LIMIT_BYTES as a reference;
- metrics, and for a training stage the model, loadable with `mlflow.pyfunc`.
A stage that raises ends its run FAILED; one interrupted (Ctrl-C, SIGTERM) KILLED.

The default store is `sqlite:///<repo>/mlflow.db` with artifacts in
`<repo>/mlruns`, where <repo> is DVC's `DVC_ROOT`: the repository root, also
when `dvc exp run` executes in a temporary copy, so no run vanishes with it.
MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME override the store and the
experiment (default `square-sequences`).
"""

import logging
import os
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

# Before MLflow is imported: no usage reports from a machine that may be offline,
# and bounded retries so that an unreachable server fails a stage in seconds.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

import mlflow
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from pipeline.errors import InputError, TrackingError
from pipeline.files import md5_of

DEFAULT_EXPERIMENT = "square-sequences"
ARTIFACT_LIMIT_BYTES = 20 * 2**20
PACKAGE_DIR = Path(__file__).resolve().parent
CONNECT_TIMEOUT_S = 5

for _noisy in ("mlflow", "alembic"):  # schema checks and run links are not news
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def repository_root() -> Path:
    """The repository whose mlflow.db is the default store (DVC_ROOT, else cwd)."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else the repository root's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repository_root() / 'mlflow.db'}"


class StageRun:
    """The MLflow run of one stage execution; what a stage may record."""

    def __init__(self, run_id: str, experiment_id: str) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id

    def log_dataset(self, path: Path | str, context: str) -> None:
        """Record a Parquet file as a dataset input, its digest the file's md5."""
        mlflow.log_input(_dataset(path), context=context)

    def log_metrics(
        self, metrics: Mapping[str, float], model_file: Path | str | None = None
    ) -> None:
        """Log final metrics; with `model_file`, also on the model trained into it.

        The model is found by content: the training run whose output has the
        same md5 as `model_file`. So `mlflow ui` lists test metrics beside each
        logged model, and the run is tagged with the training run's id.
        """
        model_id = None
        if model_file is not None:
            training_run = self._run_that_wrote(Path(model_file))
            if training_run is not None:
                mlflow.set_tag("training_run_id", training_run.info.run_id)
                model_id = training_run.data.tags.get("model_id")
        mlflow.log_metrics(dict(metrics), model_id=model_id)

    def log_history(self, rows: Sequence[Mapping[str, float]], step_key: str) -> None:
        """Log one row of metrics per step (an epoch), `step_key` giving the step."""
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, int(row[step_key]))
            for row in rows
            for key, value in row.items()
            if key != step_key
        ]
        mlflow.MlflowClient().log_batch(self.run_id, metrics=metrics)

    def log_model(self, name: str, model_dir: Path | str, params: Mapping[str, Any]) -> None:
        """Log a trained model directory as an MLflow pyfunc model called `name`.

        MLflow loads it through `pipeline.checkpoint` (weights only, no pickle);
        the package travels with it, so `mlflow.pyfunc.load_model` works anywhere
        the requirements are installed. The run's tag `model_id` names it.
        """
        info = mlflow.pyfunc.log_model(
            name=name,
            loader_module="pipeline.checkpoint",
            data_path=str(model_dir),
            code_paths=[str(PACKAGE_DIR)],
            pip_requirements=[
                f"{name}=={version(name).split('+')[0]}"
                for name in ("torch", "numpy", "pandas", "pyarrow")
            ],
            params={key: str(value) for key, value in params.items()},
        )
        mlflow.set_tag("model_id", info.model_id)

    def _run_that_wrote(self, path: Path) -> Any:
        key = f"output/{_name(path)}"
        runs = mlflow.MlflowClient().search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{key}` = '{md5_of(path)}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None


@contextmanager
def stage_run(
    stage: str,
    params: Mapping[str, Any],
    inputs: Sequence[Path | str],
    outputs: Sequence[Path | str],
    tags: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """Run the body as the MLflow run of DVC stage `stage`.

    On entry: params, tags and the md5 of every input are logged. On normal
    exit every output must exist; each file (a directory: each file in it) is
    tagged with its md5 and logged as an artifact. The run ends FINISHED, FAILED
    (an exception) or KILLED (Ctrl-C or SIGTERM, which the CLI turns into
    KeyboardInterrupt).
    """
    for path in inputs:
        if not Path(path).is_file():
            raise InputError(f"{path}: file not found (is the stage that writes it done?)")
    uri = tracking_uri()
    experiment_id = _connect(uri)
    _end_abandoned_runs(experiment_id, stage)
    try:
        run = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=stage,
            tags={
                "dvc.stage": stage,
                "mlflow.source.git.commit": _git_commit(),
                "host": socket.gethostname(),
                "pid": str(os.getpid()),
                **(tags or {}),
                **{f"input/{_name(path)}": md5_of(path) for path in inputs},
            },
        )
    except MlflowException as error:
        raise TrackingError(f"MLflow at {uri}: cannot start a run ({error.message})") from None
    try:
        mlflow.log_params(dict(params))
        yield StageRun(run.info.run_id, experiment_id)
        _log_outputs(outputs)
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def _connect(uri: str) -> str:
    """Point MLflow at `uri` and return the experiment's id, creating it if needed."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise TrackingError(
                f"MLflow tracking server at {uri} is not reachable: {reason}"
            ) from None
    mlflow.set_tracking_uri(uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    client = mlflow.MlflowClient()
    try:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        artifacts = None if parsed.scheme in ("http", "https") else _local_artifact_root(uri)
        try:
            return client.create_experiment(name, artifact_location=artifacts)
        except MlflowException:  # another stage created it a moment ago
            return client.get_experiment_by_name(name).experiment_id
    except MlflowException as error:
        raise TrackingError(f"MLflow at {uri}: {error.message}") from None


def _end_abandoned_runs(experiment_id: str, stage: str) -> None:
    """Mark KILLED the runs of `stage` left RUNNING by a process of this host that is gone.

    A SIGKILL (or a power cut) gives a stage no chance to end its run; the next
    run of the same stage tidies up after it.
    """
    client = mlflow.MlflowClient()
    abandoned = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`dvc.stage` = '{stage}' and tags.host = '{socket.gethostname()}' "
            "and attributes.status = 'RUNNING'"
        ),
    )
    for run in abandoned:
        if not _process_exists(int(run.data.tags.get("pid", "0"))):
            client.set_terminated(run.info.run_id, "KILLED")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return pid > 0


def _local_artifact_root(uri: str) -> str:
    """`mlruns/` beside a local database, so the store and its artifacts stay together."""
    database = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    root = database.parent if database else repository_root()
    return (root / "mlruns").as_uri()


def _name(path: Path | str) -> str:
    """How a file is named in MLflow: relative to the working directory, as in dvc.lock.

    A file elsewhere keeps its absolute path without the leading slash: MLflow takes
    names as relative paths (`output/<name>`, artifact folders).
    """
    resolved, here = Path(path).resolve(), Path.cwd().resolve()
    if resolved.is_relative_to(here):
        return resolved.relative_to(here).as_posix()
    return resolved.as_posix().lstrip("/")


def _git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def _dataset(path: Path | str) -> MetaDataset:
    path = Path(path)
    with warnings.catch_warnings():
        # MLflow registers the local source for both "" and "file:" and warns
        # that a plain path matches both; either is the same class.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(path.as_posix())
    return MetaDataset(source=source, name=_name(path), digest=md5_of(path))


def _log_outputs(outputs: Sequence[Path | str]) -> None:
    """Tag every output file with its md5 and log it as an artifact (a directory: its files)."""
    missing = [str(path) for path in outputs if not Path(path).exists()]
    if missing:
        raise RuntimeError(f"stage finished without writing {', '.join(missing)}")
    files = sorted(
        file
        for output in map(Path, outputs)
        for file in ([output] if output.is_file() else output.rglob("*"))
        if file.is_file()
    )
    digests = {_name(file): (file, md5_of(file)) for file in files}
    mlflow.set_tags({f"output/{name}": digest for name, (_, digest) in digests.items()})
    references = {}
    for name, (file, digest) in digests.items():
        if file.stat().st_size <= ARTIFACT_LIMIT_BYTES:
            folder = Path(name).parent.as_posix()
            mlflow.log_artifact(str(file), artifact_path=None if folder == "." else folder)
        else:
            references[name] = {"md5": digest, "bytes": file.stat().st_size}
    if references:
        mlflow.log_dict(references, "references.json")
