"""Opening a tracking store (a local SQLite one, or a server) and the pipeline's experiment.

A local store is opened under its lock (pipeline/runtime/store.py); one made by another
MLflow than the installed one is refused in one line, saying which way to go. MLflow's,
SQLAlchemy's and the network's failures become one TrackingError line.
"""

import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from pipeline.library.errors import TrackingError
from pipeline.runtime import store

#: Set before MLflow talks to anyone: no usage reports from a machine that may be offline,
#: and bounded retries and timeouts, so an unreachable server fails a stage in seconds.
ENVIRONMENT_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


def apply_environment_defaults() -> None:
    """ENVIRONMENT_DEFAULTS where the environment says nothing (a warm process's stage gets
    its client's environment after MLflow was imported)."""
    for key, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(key, value)


apply_environment_defaults()

import mlflow  # noqa: E402 - after the environment above
from mlflow.exceptions import MlflowException  # noqa: E402

# After MLflow's import, which configures its loggers: schema checks and retries are not news.
for _noisy in ("mlflow", "alembic", "sqlalchemy"):
    logging.getLogger(_noisy).setLevel(logging.CRITICAL)

EXPERIMENT_DESCRIPTION = (
    "Noisy squares drawn corner by corner; each run is one DVC stage (`dvc.stage` tag). "
    "Select the `train@*` runs and press Compare: params share names across variants "
    "(arch, hidden_dim, num_layers, bidirectional, lr, seed, data.noise, ...)."
)
#: MLflow 3 opens an experiment of this kind on its runs, not on the GenAI overview.
EXPERIMENT_KIND = "custom_model_development"
T = TypeVar("T")
#: A migration script's revision and the one before it (MLflow's alembic scripts).
MIGRATION = re.compile(
    r"^revision\s*=\s*['\"](?P<revision>\w+)['\"].*?^down_revision\s*=\s*['\"]?(?P<down>\w+)",
    re.MULTILINE | re.DOTALL,
)


def connect(uri: str) -> str:
    """Point MLflow at `uri` and return the experiment's id, creating it if needed."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        store.probe_server(uri, parsed)
    given = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    # MLflow also writes the URI into the environment; keep it as the user left it, so the
    # next run in this process finds its own store (DVC_ROOT may point elsewhere by then).
    if given is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = given
    database = store.local_database(uri)
    if database is None:
        return _experiment_id(None)
    with store.store_lock(database):
        revision = store.check_sqlite_store(database)
        _check_schema(revision, database, uri)
        store.relocate(database)
        experiment_id = _experiment_id(store.local_artifact_root(database))
        if revision is None:  # MLflow created the store just now, with its Default experiment
            store.claim_default_experiment(database)
        return experiment_id


def _check_schema(revision: str | None, database: Path, uri: str) -> None:
    """Refuse, in one line, a store whose schema is not the installed MLflow's."""
    if revision is None:
        return
    versions = Path(mlflow.__file__).parent / "store/db_migrations/versions"
    pairs = [
        (match["revision"], match["down"])
        for file in versions.glob("*.py")
        for match in [MIGRATION.search(file.read_text())]
        if match
    ]
    known = {revision for revision, _ in pairs}
    head = known - {down for _, down in pairs}
    if revision in head:
        return
    if revision not in known:
        raise TrackingError(
            f"{database}: made by a newer MLflow than the {mlflow.__version__} installed here "
            f"(schema {revision}); open it with that MLflow, or move it aside for a new store"
        )
    raise TrackingError(
        f"{database}: made by an older MLflow (schema {revision}); back it up, then upgrade "
        f"it: mlflow db upgrade {uri}"
    )


def _experiment_id(artifact_root: Path | None) -> str:
    name = store.experiment_name()
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        tags = {
            "mlflow.experimentKind": EXPERIMENT_KIND,
            "mlflow.note.content": EXPERIMENT_DESCRIPTION,
        }
        if artifact_root is not None:  # a plain path: MLflow writes file URIs' escapes as is
            tags[store.ARTIFACT_ROOT_TAG] = str(artifact_root)
        try:
            experiment_id = client.create_experiment(
                name,
                artifact_location=str(artifact_root) if artifact_root else None,
                tags=tags,
            )
        except MlflowException:  # another process (on a server) created it a moment ago
            experiment_id = client.get_experiment_by_name(name).experiment_id
        return experiment_id
    return experiment.experiment_id


@contextmanager
def mlflow_errors(uri: str, doing: str) -> Iterator[None]:
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
    if status and status.group(1) in ("401", "403"):
        return (
            f"HTTP {status.group(1)}: the server wants an account it knows; set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
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


def open_experiment(uri: str | None = None) -> str:
    """Open the store at `uri` (default: this repository's) as stages open it; the id of the
    pipeline's experiment in it, created if needed. TrackingError in one line otherwise."""
    uri = uri or store.tracking_uri()
    with mlflow_errors(uri, "cannot open the store"):
        return connect(uri)


def client(uri: str | None = None) -> mlflow.MlflowClient:
    """A client of the store at `uri` (default: this repository's), opened as stages open it.

    Readers must not race the first stage to create a fresh store: MLflow builds its
    schema from whichever process opens an empty database first.
    """
    uri = uri or store.tracking_uri()
    open_experiment(uri)
    return mlflow.MlflowClient(uri)


#: What a store says when another process created the same thing a moment before: a dataset,
#: a model or an experiment, each created on first use (get-or-create is not atomic).
RACE_SIGNS = ("RESOURCE_ALREADY_EXISTS", "UNIQUE constraint failed", "duplicate key value")
RACE_ATTEMPTS = 5


def settled(call: Callable[[], T]) -> T:
    """`call()`; again, a few times, where it lost a get-or-create race to another process.

    Stages started together (`dvc queue start -j 2`, a sweep) log the same new dataset in
    the same second; the loser's request fails though what it wanted now exists."""
    for attempt in range(1, RACE_ATTEMPTS + 1):
        try:
            return call()
        except MlflowException as error:
            text = f"{error.error_code} {error.message}"
            if attempt == RACE_ATTEMPTS or not any(sign in text for sign in RACE_SIGNS):
                raise
            time.sleep(0.05 * attempt)  # let the winner's transaction end
    raise AssertionError("unreachable")
