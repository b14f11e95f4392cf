"""Where the tracking store is, and opening a local one safely: plain SQLite, no MLflow.

The default store is `<repo>/mlflow.db` with artifacts in `mlruns/` beside it, <repo>
being DVC's `DVC_ROOT` (also when `dvc exp run` executes in a temporary copy), else the
working directory; MLFLOW_TRACKING_URI overrides it. Its URI is escaped, so any path that
MLflow can keep artifacts under works (`#`, spaces, any UTF-8), and one line refuses a path
it cannot name (`?`, `%`, bytes that are not UTF-8). Opening a local store is
serialised across processes by a lock on the database file, and a file that is not a
whole MLflow store is refused in one line. A store that moved (a copied repository, a
downloaded CI store) has the artifact locations the pipeline gave its experiments
re-pointed at its own `mlruns/`; a location a user chose is never touched. A server is
probed before use, so that one that is down fails a stage in seconds.
"""

import fcntl
import os
import socket
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import ParseResult, quote

from pipeline.library.errors import TrackingError

CONNECT_TIMEOUT_S = 5
DEFAULT_EXPERIMENT = "square-sequences"
SQLITE_PREFIX = "sqlite:///"
#: Characters a store's path cannot hold (see `sqlite_uri`).
UNNAMEABLE = "?%"
#: The tag on each experiment the pipeline creates in a local store: the artifact location
#: it gave it. Relocation touches those experiments only, and only where the tag still holds.
ARTIFACT_ROOT_TAG = "pipeline.artifact_root"
#: Where MLflow keeps what it stores, by table: what relocation rewrites.
LOCATIONS = {"runs": "artifact_uri", "logged_models": "artifact_location"}


def experiment_name() -> str:
    """The MLflow experiment stages log to: MLFLOW_EXPERIMENT_NAME, else DEFAULT_EXPERIMENT."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def sweeps_experiment_name() -> str:
    """Where a sweep's experiments log, apart from the pipeline's own runs, so that hundreds
    of sweep runs do not push those out of the UI's first page."""
    return f"{experiment_name()}-sweeps"


def repository_root() -> Path:
    """The repository whose mlflow.db is the default store (DVC_ROOT, else cwd)."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else the repository root's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or sqlite_uri(repository_root() / "mlflow.db")


def sqlite_uri(database: Path) -> str:
    """The URI of a local store at `database`; TrackingError for a path it cannot name.

    SQLAlchemy reads `?` as the start of options and unescapes `%`, and MLflow unescapes `%`
    in artifact paths but creates the store's directory from the URI as written: so the
    path goes in as it is (spaces, `#` and any UTF-8 are fine), and one with `?`, `%` or
    bytes that are not UTF-8 is refused rather than half-escaped.
    """
    text = str(database)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "surrogateescape")
        raise TrackingError(
            f"{shown!r}: the path is not UTF-8, and MLflow cannot keep a store there; move "
            "the repository or set MLFLOW_TRACKING_URI"
        ) from None
    awkward = sorted(set(text) & set(UNNAMEABLE))
    if awkward:
        raise TrackingError(
            f"{text}: MLflow cannot keep a store at a path with {' or '.join(awkward)}; move the "
            "repository or set MLFLOW_TRACKING_URI"
        )
    return SQLITE_PREFIX + text


def local_database(uri: str) -> Path | None:
    """The database file of a local SQLite store's URI, or None for any other store."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    return Path(uri.removeprefix(SQLITE_PREFIX).split("?")[0])


def local_artifact_root(database: Path) -> Path:
    """`mlruns/` beside a local database, so the store and its artifacts travel together."""
    return database.resolve().parent / "mlruns"


@contextmanager
def store_lock(database: Path) -> Iterator[None]:
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


def check_sqlite_store(database: Path) -> str | None:
    """The schema revision of the store at `database` (None for a new, empty one); refuse,
    in one line, a file that is not an MLflow store or one left half-built."""
    if database.stat().st_size == 0:
        return None
    try:
        with sqlite3.connect(f"file:{quote(str(database))}?mode=ro", uri=True) as connection:
            tables = {row[0] for row in connection.execute("select name from sqlite_master")}
            revision = None
            if "alembic_version" in tables:
                revision = connection.execute("select version_num from alembic_version").fetchone()
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
    return revision[0] if revision else None


def relocate(database: Path) -> None:
    """Point the artifact locations the pipeline gave this store's experiments at `mlruns/`
    beside the store, if the store was copied or moved, and those of their runs and models.

    MLflow stores absolute artifact locations; without this, runs of a copied repository
    would write their artifacts into the original's mlruns/. A location not given by the
    pipeline, or changed by someone since, is left as it is.
    """
    expected = str(local_artifact_root(database))
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("select name from sqlite_master")}
        if "experiment_tags" not in tables:
            return
        moved = connection.execute(
            "select e.experiment_id, t.value from experiments e join experiment_tags t "
            "on t.experiment_id = e.experiment_id where t.key = ? and t.value != ? and "
            "(e.artifact_location = t.value or substr(e.artifact_location, 1, length(t.value) "
            "+ 1) = t.value || '/')",
            (ARTIFACT_ROOT_TAG, expected),
        ).fetchall()
        for experiment_id, old in moved:
            for table, column in {"experiments": "artifact_location", **LOCATIONS}.items():
                if table in tables:
                    connection.execute(
                        f"update {table} set {column} = ? || substr({column}, ?) "
                        f"where experiment_id = ? and ({column} = ? or substr({column}, 1, ?) = ?)",
                        (expected, len(old) + 1, experiment_id, old, len(old) + 1, old + "/"),
                    )
            connection.execute(
                "update experiment_tags set value = ? where experiment_id = ? and key = ?",
                (expected, experiment_id, ARTIFACT_ROOT_TAG),
            )


def claim_default_experiment(database: Path) -> None:
    """In a store just created here, give MLflow's own `Default` experiment a location under
    `mlruns/` beside the store, marked as the pipeline's: it moves with the store."""
    root = str(local_artifact_root(database))
    with sqlite3.connect(database) as connection:
        connection.execute(
            "update experiments set artifact_location = ? where experiment_id = 0", (f"{root}/0",)
        )
        connection.execute(
            "insert or replace into experiment_tags (key, value, experiment_id) values (?, ?, 0)",
            (ARTIFACT_ROOT_TAG, root),
        )


def probe_server(uri: str, parsed: ParseResult) -> None:
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
    except OSError as error:  # TimeoutError is one: raised bare or as a URLError's reason
        reason = getattr(error, "reason", None) or error
        # Whether the wait ran out in the request or in the reply, say it the same way.
        reason = "timed out" if isinstance(reason, TimeoutError) else str(reason) or "no reply"
        raise TrackingError(
            f"MLflow tracking server at {uri} did not answer in {CONNECT_TIMEOUT_S} s ({reason})"
        ) from None
