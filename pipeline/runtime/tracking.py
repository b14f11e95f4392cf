"""MLflow tracking: one run per DVC stage execution. The only module that calls MLflow.

A run is named after its DVC stage (`train@gru`) and records:
- params under names every variant shares (`arch`, `hidden_dim`, `lr`, `seed`, ...,
  and `data.n`, `data.noise`, ... for the data it learned from), so Compare has one
  column per setting; DVC's own dotted params, exactly as dvc.lock has them, as the
  artifact `dvc_params.json`;
- tags: `dvc.stage`, the git commit, `dvc.exp_name` and `dvc.exp_baseline` for runs of
  `dvc exp run`, and `input/<path>` / `output/<path>` holding each file's md5 (the hash
  DVC writes in dvc.lock);
- its Parquet files as dataset inputs whose digest is that md5;
- every output as an artifact at a path shared by every variant (`model/weights.pt`,
  `plots/journey.png`), or above ARTIFACT_LIMIT_BYTES as a reference;
- metrics, and for a training stage the model, loadable with `mlflow.pyfunc`.

The default store is `sqlite:///<repo>/mlflow.db` with artifacts in `mlruns/` beside it,
<repo> being DVC's `DVC_ROOT` (also when `dvc exp run` executes in a temporary copy).
Opening it is serialised across processes by a lock on the database file, so stages that
start together on a fresh store cannot break it; a copied or moved repository re-points
the store's artifact locations to its own `mlruns/`. MLFLOW_TRACKING_URI and
MLFLOW_EXPERIMENT_NAME override the store and the experiment (default `square-sequences`).

A sweep's summary (pipeline/tools/sweep.py) is one more run, `sweep@<name>`, the parent of its
experiments' runs. `python -m pipeline.runtime.tracking ui` opens this store in MLflow's UI.
"""

import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline.library.errors import TrackingError
from pipeline.library.files import md5_of
from pipeline.runtime.params import Params
from pipeline.runtime.stage import Record, Stage, process_exists

#: Set before MLflow talks to anyone: no usage reports from a machine that may be offline,
#: and bounded retries and timeouts, so an unreachable server fails a stage in seconds.
ENVIRONMENT_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
for _key, _value in ENVIRONMENT_DEFAULTS.items():
    os.environ.setdefault(_key, _value)

import mlflow  # noqa: E402 - after the environment above
from mlflow.data.dataset_source_registry import resolve_dataset_source  # noqa: E402
from mlflow.data.meta_dataset import MetaDataset  # noqa: E402
from mlflow.entities import LoggedModelInput, Metric  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

DEFAULT_EXPERIMENT = "square-sequences"
EXPERIMENT_DESCRIPTION = (
    "Noisy squares drawn corner by corner; each run is one DVC stage (`dvc.stage` tag). "
    "Select the `train@*` runs and press Compare: params share names across variants "
    "(arch, hidden_dim, num_layers, bidirectional, lr, seed, data.noise, ...)."
)
#: MLflow 3 opens an experiment of this kind on its runs, not on the GenAI overview.
EXPERIMENT_KIND = "custom_model_development"
#: DVC's variables in runs of `dvc exp run` (temporary or queued), and their tags.
EXPERIMENT_TAGS = {"DVC_EXP_NAME": "dvc.exp_name", "DVC_EXP_BASELINE_REV": "dvc.exp_baseline"}
ARTIFACT_LIMIT_BYTES = 20 * 2**20
CONNECT_TIMEOUT_S = 5
#: Characters MLflow accepts in tag keys; anything else in a path becomes "_".
_TAG_KEY_UNSAFE = re.compile(r"[^\w./ :-]")
_MAX_KEY = 250  # MLflow's longest key

for _noisy in ("mlflow", "alembic", "sqlalchemy"):  # schema checks and retries are not news
    logging.getLogger(_noisy).setLevel(logging.CRITICAL)


def repository_root() -> Path:
    """The repository whose mlflow.db is the default store (DVC_ROOT, else cwd)."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else the repository root's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repository_root() / 'mlflow.db'}"


# ---------------------------------------------------------------------------
# What a run logs, by stage.


def shared_params(stage: Stage, name: str | None, params: Params) -> dict[str, Any]:
    """The run's params under names that every variant shares."""
    if stage.item == "models":
        model = params.model(name)
        values = model.settings() | {
            "device": params.device,
            "cpu_capability": params.cpu_capability,
        }
        return values | _data_params(params, model.dataset, with_split=True)
    if stage.item == "datasets":
        return {"dataset": name} | _data_params(params, name, with_split=stage.name != "generate")
    split = {f"data.split_{key}": value for key, value in vars(params.split).items()}
    return {"variants": ",".join(params.models), **split}


def _data_params(params: Params, dataset: str, with_split: bool) -> dict[str, Any]:
    values = {f"data.{key}": value for key, value in vars(params.dataset(dataset)).items()}
    if with_split:
        values |= {f"data.split_{key}": value for key, value in vars(params.split).items()}
    return values


def _stage_tags(stage: Stage, name: str | None, params: Params) -> dict[str, str]:
    tags = {"dvc.stage": stage.run_name(name)}
    if stage.item == "models":
        model = params.model(name)
        tags |= {"variant": name, "arch": model.spec.arch, "dataset": model.dataset}
    elif stage.item == "datasets":
        tags["dataset"] = name
    for variable, tag in EXPERIMENT_TAGS.items():
        if os.environ.get(variable):
            tags[tag] = os.environ[variable]
    return tags


# ---------------------------------------------------------------------------
# The run.


class StageRun:
    """The MLflow run of one stage execution."""

    def __init__(self, run_id: str, experiment_id: str, uri: str, package_dir: Path) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.uri = uri
        self.package_dir = package_dir

    @classmethod
    def start(
        cls,
        *,
        stage: Stage,
        name: str | None,
        params: Params,
        inputs: list[Path],
        package_dir: Path,
    ) -> "StageRun":
        """Start the run of `stage` (for item `name`); log its params, DVC params and tags."""
        run_name = stage.run_name(name)
        for key, value in ENVIRONMENT_DEFAULTS.items():  # the process may have a new environment
            os.environ.setdefault(key, value)
        uri = tracking_uri()
        with _mlflow_errors(uri, "cannot start a run"):
            experiment_id = _connect(uri)
            _end_abandoned_runs(experiment_id, run_name)
            tags = {
                **_stage_tags(stage, name, params),
                "mlflow.source.git.commit": _git_commit(),
                "host": socket.gethostname(),
                "pid": str(os.getpid()),
                **{_tag_key("input", path): md5_of(path) for path in _files(inputs)},
            }
            run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
            mlflow.log_params(shared_params(stage, name, params))
            mlflow.log_dict(params.tracked(*stage.tracked_keys(name)), "dvc_params.json")
        return cls(run.info.run_id, experiment_id, uri, package_dir)

    def record(
        self,
        record: Record,
        outputs: list[tuple[Path, Path, str]],
        final_name: Callable[[Path], Path],
    ) -> None:
        """Log what the body noted and every output (staged file, final file, artifact name)."""
        with _mlflow_errors(self.uri, "cannot record the run"):
            if record.datasets:
                mlflow.log_inputs(
                    datasets=[_dataset(path, final_name(path)) for path, _ in record.datasets],
                    contexts=[context for _, context in record.datasets],
                    tags_list=[None] * len(record.datasets),
                )
            if record.history:
                now = int(time.time() * 1000)
                metrics = [
                    Metric(key, float(value), now, int(row["epoch"]))
                    for row in record.history
                    for key, value in row.items()
                    if key != "epoch" and value is not None
                ]
                mlflow.MlflowClient().log_batch(self.run_id, metrics=metrics)
            if record.model is not None:
                self._log_model(record)
            if record.metrics:
                self._log_metrics(record, final_name)
            self._log_outputs(outputs)

    def end(self, status: str) -> None:
        """End the run FINISHED, FAILED or KILLED."""
        with _mlflow_errors(self.uri, f"cannot end the run {status}"):
            mlflow.end_run(status)

    def _log_model(self, record: Record) -> None:
        """The checkpoint as a pyfunc model: signature, one input example, what made it."""
        import pyarrow.parquet as pq

        from pipeline.runtime.logged_model import load_model_dir

        model = record.model
        example = pq.read_table(model.example_file).slice(0, 1).to_pandas()
        with warnings.catch_warnings():  # MLflow's hint about integer columns is not news
            warnings.simplefilter("ignore", UserWarning)
            probabilities = load_model_dir(model.directory).predict(example)
            signature = mlflow.models.infer_signature(example, probabilities)
        with tempfile.TemporaryDirectory(prefix="model-") as scratch:
            # Logged from a folder of its own: the staged folder's name must not travel.
            files = {f"checkpoint/{file.name}": file for file in model.directory.iterdir()}
            directory = _linked_tree(files, scratch) / "checkpoint"
            self._log_pyfunc(model, directory, example, signature)

    def _log_pyfunc(self, model: Any, directory: Path, example: Any, signature: Any) -> None:
        info = mlflow.pyfunc.log_model(
            name=model.name,
            loader_module="pipeline.runtime.logged_model",
            data_path=str(directory),
            code_paths=[str(self.package_dir)],
            pip_requirements=[
                f"{package}=={version(package).split('+')[0]}"
                for package in ("torch", "numpy", "pandas", "pyarrow")
            ],
            signature=signature,
            input_example=example,
            params={key: str(value) for key, value in model.settings.items()},
        )
        mlflow.set_tag("model_id", info.model_id)

    def _log_metrics(self, record: Record, final_name: Callable[[Path], Path]) -> None:
        """Final metrics, linked to the dataset they were measured on and to the model scored.

        The model is found by content: the training run whose output has the md5 of the
        weights scored. The metrics go on that run too, so comparing training runs in
        `mlflow ui` shows their test accuracy, and the Models tab lists it beside each model.
        """
        model_id = None
        if record.scored_model is not None:
            training_run = self._run_that_wrote(record.scored_model)
            if training_run is not None:
                mlflow.set_tag("training_run_id", training_run.info.run_id)
                model_id = training_run.data.tags.get("model_id")
                if model_id:
                    mlflow.log_input(model=LoggedModelInput(model_id))
                now = int(time.time() * 1000)
                mlflow.MlflowClient().log_batch(
                    training_run.info.run_id,
                    metrics=[
                        Metric(key, float(value), now, 0) for key, value in record.metrics.items()
                    ],
                )
        dataset = None
        if record.metrics_dataset is not None:
            path = record.metrics_dataset
            dataset = _dataset(path, final_name(path))
        mlflow.log_metrics(record.metrics, model_id=model_id, dataset=dataset)

    def _run_that_wrote(self, path: Path) -> Any:
        key = _tag_key("output", path)
        runs = mlflow.MlflowClient().search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{key}` = '{md5_of(path)}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None

    def _log_outputs(self, outputs: list[tuple[Path, Path, str]]) -> None:
        """Tag every output with its md5; log each as an artifact under its shared name."""
        digests = {final: md5_of(staged) for staged, final, _ in outputs}
        mlflow.set_tags({_tag_key("output", final): digest for final, digest in digests.items()})
        references, artifacts = {}, {}
        for staged, final, artifact in outputs:
            size = staged.stat().st_size
            if size > ARTIFACT_LIMIT_BYTES:
                references[artifact] = {"path": _name(final), "md5": digests[final], "bytes": size}
            else:
                artifacts[artifact] = staged
        with tempfile.TemporaryDirectory(prefix="artifacts-") as scratch:
            tree = _linked_tree(artifacts, scratch)
            if references:
                (tree / "references.json").write_text(json.dumps(references, indent=2))
            mlflow.log_artifacts(str(tree))


def _linked_tree(files: dict[str, Path], directory: str) -> Path:
    """`files` laid out under `directory` by their relative names: hard links, else copies."""
    root = Path(directory)
    for name, source in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:  # another file system
            target.write_bytes(source.read_bytes())
    return root


# ---------------------------------------------------------------------------
# The store.


def _connect(uri: str) -> str:
    """Point MLflow at `uri` and return the experiment's id, creating it if needed."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        _probe_server(uri, parsed)
    given = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    # MLflow also writes the URI into the environment; keep it as the user left it, so the
    # next run in this process finds its own store (DVC_ROOT may point elsewhere by then).
    if given is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = given
    if parsed.scheme == "sqlite" and uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        with _store_lock(database):
            _check_sqlite_store(database)
            experiment_id = _experiment_id(_local_artifact_root(database))
            _relocate(database, experiment_id)
        return experiment_id
    return _experiment_id(None)


def _experiment_id(artifact_root: Path | None) -> str:
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(
                name,
                artifact_location=artifact_root.as_uri() if artifact_root else None,
                tags={
                    "mlflow.experimentKind": EXPERIMENT_KIND,
                    "mlflow.note.content": EXPERIMENT_DESCRIPTION,
                },
            )
        except MlflowException:  # another process (on a server) created it a moment ago
            experiment_id = client.get_experiment_by_name(name).experiment_id
        return experiment_id
    return experiment.experiment_id


def _local_artifact_root(database: Path) -> Path:
    """`mlruns/` beside a local database, so the store and its artifacts travel together."""
    return database.resolve().parent / "mlruns"


@contextmanager
def _store_lock(database: Path) -> Iterator[None]:
    """Hold an exclusive lock on the database file while the store is opened.

    MLflow creates and upgrades its schema on first use; two processes doing it at once
    leave a broken store. flock is separate from SQLite's own (fcntl) locks.
    """
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(database, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:
        descriptor = os.open(database, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _check_sqlite_store(database: Path) -> None:
    """Refuse, in one line, a file that is not an MLflow store or one left half-built."""
    if database.stat().st_size == 0:
        return
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            tables = {row[0] for row in connection.execute("select name from sqlite_master")}
    except sqlite3.DatabaseError as error:
        raise TrackingError(f"{database}: not an MLflow store ({error})") from None
    leftovers = sorted(table for table in tables if table.startswith("_alembic_tmp_"))
    if leftovers or (tables and "alembic_version" not in tables):
        what = f"it holds {leftovers[0]}" if leftovers else "it has no schema version"
        raise TrackingError(
            f"{database}: a half-built MLflow store ({what}, left by an interrupted or "
            f"concurrent creation); move it aside to start a new one: mv {database} "
            f"{database}.broken"
        )


def _relocate(database: Path, experiment_id: str) -> None:
    """Point the store's artifact locations at `mlruns/` beside it, if it was copied or moved.

    MLflow stores absolute artifact locations; without this, runs of a copied repository
    would write their artifacts into the original's mlruns/.
    """
    expected = _local_artifact_root(database)
    current = mlflow.MlflowClient().get_experiment(experiment_id).artifact_location
    if current == expected.as_uri() or not current.startswith("file://"):
        return
    moved = Path(urlparse(current).path)
    columns = {
        "experiments": "artifact_location",
        "runs": "artifact_uri",
        "logged_models": "artifact_location",
    }
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("select name from sqlite_master")}
        # Both spellings MLflow stores: URIs, and plain paths (its Default experiment).
        for old, new in ((moved.as_uri(), expected.as_uri()), (str(moved), str(expected))):
            for table, column in columns.items():
                if table in tables:
                    connection.execute(
                        f"update {table} set {column} = ? || substr({column}, ?) "
                        f"where {column} = ? or substr({column}, 1, ?) = ?",
                        (new, len(old) + 1, old, len(old) + 1, old + "/"),
                    )


def _probe_server(uri: str, parsed: Any) -> None:
    """Fail in seconds, in one line, when the server is down or never answers."""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise TrackingError(f"MLflow tracking server at {uri} is not reachable: {reason}") from None
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=CONNECT_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        pass  # it answers; whether it is MLflow the first API call tells
    except (OSError, TimeoutError) as error:
        reason = getattr(error, "reason", None) or type(error).__name__
        raise TrackingError(
            f"MLflow tracking server at {uri} did not answer in {CONNECT_TIMEOUT_S} s ({reason})"
        ) from None


@contextmanager
def _mlflow_errors(uri: str, doing: str) -> Iterator[None]:
    """MLflow's, SQLAlchemy's and the network's failures as one TrackingError line."""
    try:
        yield
    except TrackingError:
        raise
    except MlflowException as error:
        raise TrackingError(f"MLflow at {uri}: {doing} ({_summary(error.message)})") from None
    except OSError as error:
        raise TrackingError(f"MLflow at {uri}: {doing} ({error.strerror or error})") from None
    except sqlite3.Error as error:
        raise TrackingError(f"MLflow at {uri}: {doing} ({_summary(str(error))})") from None
    except Exception as error:
        if type(error).__module__.startswith(("sqlalchemy", "requests", "urllib3")):
            raise TrackingError(f"MLflow at {uri}: {doing} ({_summary(str(error))})") from None
        raise


def _summary(message: str) -> str:
    """An MLflow error message cut to what a person needs: no HTML page, no traceback."""
    status = re.search(r"error code (\d{3})", message)
    if status:
        return f"HTTP {status.group(1)}; is this an MLflow tracking server?"
    # SQLAlchemy wraps the database's own words: "(raised as a result of ...) (sqlite3.
    # OperationalError) attempt to write a readonly database [SQL: ...]"; keep those words.
    driver = re.search(r"\((?:sqlite3|psycopg[\w.]*)\.[\w.]+\) ([^\n\[]+)", message)
    if driver:
        message = driver.group(1)
    first = next((line.strip() for line in message.splitlines() if line.strip()), "unknown error")
    first = re.sub(r"<[^>]+>", " ", first)
    return first if len(first) <= 160 else first[:157] + "..."


def _end_abandoned_runs(experiment_id: str, run_name: str) -> None:
    """Mark KILLED the runs of this stage left RUNNING by a process of this host that is gone.

    A SIGKILL (or a power cut) gives a stage no chance to end its run; the next run of
    the same stage tidies up after it.
    """
    client = mlflow.MlflowClient()
    abandoned = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`dvc.stage` = '{run_name}' and tags.host = '{socket.gethostname()}' "
            "and attributes.status = 'RUNNING'"
        ),
    )
    for run in abandoned:
        pid = int(run.data.tags.get("pid", "0"))
        if pid > 0 and not process_exists(pid):
            client.set_terminated(run.info.run_id, "KILLED")


def _files(paths: list[Path]) -> list[Path]:
    """Every file of `paths`, a directory standing for the files in it."""
    return sorted(
        file
        for path in paths
        for file in ([path] if path.is_file() else path.rglob("*"))
        if file.is_file() and ".staged-" not in file.name
    )


def _name(path: Path | str) -> str:
    """How a file is named in MLflow: relative to the working directory, as in dvc.lock.

    A file elsewhere keeps its absolute path without the leading slash: MLflow takes
    names as relative paths.
    """
    resolved, here = Path(path).resolve(), Path.cwd().resolve()
    if resolved.is_relative_to(here):
        return resolved.relative_to(here).as_posix()
    return resolved.as_posix().lstrip("/")


def _tag_key(prefix: str, path: Path) -> str:
    """`<prefix>/<path>` as a valid MLflow tag key (unsafe characters become '_')."""
    key = _TAG_KEY_UNSAFE.sub("_", f"{prefix}/{_name(path)}")
    if len(key) > _MAX_KEY:
        import hashlib

        key = key[: _MAX_KEY - 9] + "_" + hashlib.md5(key.encode()).hexdigest()[:8]
    return key


def _git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def _dataset(path: Path, final: Path) -> MetaDataset:
    with warnings.catch_warnings():
        # MLflow registers the local source for both "" and "file:" and warns
        # that a plain path matches both; either is the same class.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(_name(final))
    return MetaDataset(source=source, name=_name(final), digest=md5_of(path))


def client(uri: str | None = None) -> mlflow.MlflowClient:
    """A client of the store at `uri` (default: this repository's), opened as stages open it.

    Readers must not race the first stage to create a fresh store: MLflow builds its
    schema from whichever process opens an empty database first.
    """
    uri = uri or tracking_uri()
    with _mlflow_errors(uri, "cannot open the store"):
        _connect(uri)
    return mlflow.MlflowClient(uri)


# ---------------------------------------------------------------------------
# Sweeps (pipeline/tools/sweep.py): a sweep's summary as one run, its experiments' runs as children.


def log_sweep(
    sweep: str,
    settings: dict[str, Any],
    baseline: str,
    experiments: list[str],
    files: list[Path],
    metrics: dict[str, float],
) -> str:
    """Log a sweep's summary as one run, `sweep@<sweep>`, and make it the parent of every run
    of its experiments (found by their `dvc.exp_name` and `dvc.exp_baseline` tags); its id.

    A summary already logged with the same files (tag `sweep.digest`) is not logged again:
    a rerun that changes nothing adds no run, as a DVC stage that does not run adds none.
    """
    uri = tracking_uri()
    digest = hashlib.md5("".join(md5_of(path) for path in files).encode()).hexdigest()
    with _mlflow_errors(uri, f"cannot log sweep {sweep}"):
        experiment_id = _connect(uri)
        client = mlflow.MlflowClient()
        logged = client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`dvc.sweep` = '{sweep}' and tags.`sweep.digest` = '{digest}' "
                "and attributes.status = 'FINISHED'"
            ),
            max_results=1,
        )
        if logged:
            return logged[0].info.run_id
        tags = {
            "dvc.sweep": sweep,
            "dvc.exp_baseline": baseline,
            "sweep.digest": digest,
            "mlflow.source.git.commit": _git_commit(),
        }
        name = f"sweep@{sweep}"
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
            mlflow.log_params(settings)
            mlflow.log_metrics(metrics)
            for path in files:
                mlflow.log_artifact(str(path))
            children = _experiment_runs(client, experiment_id, baseline, set(experiments))
            for child in children:
                client.set_tag(child, "mlflow.parentRunId", run.info.run_id)
            mlflow.set_tag("sweep.children", str(len(children)))
        return run.info.run_id


def _experiment_runs(
    client: Any, experiment_id: str, baseline: str, experiments: set[str]
) -> list[str]:
    """The ids of the runs that stages of these DVC experiments (of `baseline`) logged."""
    found, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`dvc.exp_baseline` = '{baseline}'",
            max_results=1000,
            page_token=token,
        )
        found += [
            run.info.run_id for run in page if run.data.tags.get("dvc.exp_name") in experiments
        ]
        token = page.token
        if not token:
            return found


def main(argv: list[str]) -> int:
    """`python -m pipeline.runtime.tracking ui [port]` (`make ui`): MLflow's UI on this repository's
    store, opened as stages open it, with the link that lands on the experiment's runs."""
    if not argv or argv[0] != "ui":
        print("usage: python -m pipeline.runtime.tracking ui [port]", file=sys.stderr)
        return 2
    port = argv[1] if len(argv) > 1 else "5000"
    uri = tracking_uri()
    try:
        with _mlflow_errors(uri, "cannot open the store"):
            experiment_id = _connect(uri)
    except TrackingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    # One person on this machine: one worker, not MLflow's 4, answers sooner and costs less.
    command += ["--host", "127.0.0.1", "--port", port, "--workers", "1"]
    if uri.startswith("sqlite:///"):
        root = _local_artifact_root(Path(uri.removeprefix("sqlite:///")))
        command += ["--default-artifact-root", str(root)]
    # MLflow 3.17's UI opens experiments on its GenAI overview unless the link says otherwise.
    page = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}?workflowType=machine_learning"
    print(f"MLflow UI for {uri}: open {page} (Ctrl-C stops it)", flush=True)
    os.execvp(command[0], command)  # replaces this process: never returns
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
