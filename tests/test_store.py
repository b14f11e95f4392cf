"""The tracking store: garbage, half-built, of another MLflow, read-only, unsupported,
unreachable or full, each is one line naming it; a copied or moved store keeps its
artifacts beside itself; what a user chose is never moved."""

import http.server
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
from conftest import FRESH
from mlflow import MlflowClient
from support import (
    GENERATE,
    TRAIN,
    error_line,
    md5,
    names_in,
    small_params,
    store_runs,
)


def test_a_garbage_store_is_one_line_naming_it(workdir):
    workdir.database.write_bytes(os.urandom(8192))
    before = md5(workdir.database)
    line = error_line(workdir.run(*GENERATE))
    assert str(workdir.database) in line
    assert md5(workdir.database) == before
    assert not (workdir.root / GENERATE[2]).exists()


def half_built_store(database: Path, whole: Path, how: str) -> None:
    database.unlink(missing_ok=True)
    if how == "an alembic temporary table":
        shutil.copy(whole, database)
        with sqlite3.connect(database) as connection:
            connection.execute("create table _alembic_tmp_metrics (key varchar(250))")
    else:  # a schema without its version table
        with sqlite3.connect(database) as connection:
            connection.execute("create table experiments (experiment_id integer primary key)")
            connection.execute("create table runs (run_uuid varchar(32) primary key)")


@pytest.mark.parametrize("how", ["an alembic temporary table", "no alembic_version"])
def test_a_half_built_store_says_how_to_recover_and_the_advice_works(workdir, empty_store, how):
    half_built_store(workdir.database, empty_store, how)
    before = md5(workdir.database)
    line = error_line(workdir.run(*GENERATE))
    assert "half-built" in line, line
    broken = Path(f"{workdir.database}.broken")
    assert f"mv {workdir.database} {broken}" in line, line
    assert md5(workdir.database) == before
    assert not (workdir.root / GENERATE[2]).exists()

    workdir.database.rename(broken)  # the advice, followed
    workdir.succeed(*GENERATE)
    assert [run.status for run in workdir.runs()] == ["FINISHED"]


def test_a_store_of_a_newer_mlflow_says_to_open_it_with_that_mlflow(workdir):
    with sqlite3.connect(workdir.database) as connection:
        connection.execute("update alembic_version set version_num = 'ffffffffffff'")
    line = error_line(workdir.run(*GENERATE))
    assert line == (
        f"error: {workdir.database}: made by a newer MLflow than the {mlflow.__version__} "
        "installed here (schema ffffffffffff); open it with that MLflow, or move it aside for "
        "a new store"
    )
    assert not (workdir.root / GENERATE[2]).exists()


def test_a_store_of_an_older_mlflow_says_how_to_upgrade_it(workdir):
    older = "0a8213491aaa"  # one of MLflow's first schema revisions
    with sqlite3.connect(workdir.database) as connection:
        connection.execute(f"update alembic_version set version_num = '{older}'")
    line = error_line(workdir.run(*GENERATE))
    assert line == (
        f"error: {workdir.database}: made by an older MLflow (schema {older}); back it up, "
        f"then upgrade it: mlflow db upgrade sqlite:///{workdir.database}"
    )


def test_an_empty_store_file_is_created_in_place(make_workdir):
    workdir = make_workdir(store=FRESH)
    workdir.database.touch()
    workdir.succeed(*GENERATE)
    assert [run.status for run in workdir.runs()] == ["FINISHED"]


@pytest.mark.parametrize("uri", ["bogus://somewhere", "ftp://127.0.0.1/store"])
def test_an_unsupported_tracking_uri_is_one_line_naming_it(workdir, uri):
    before = workdir.files()
    line = error_line(workdir.run(*GENERATE, env={"MLFLOW_TRACKING_URI": uri}))
    assert uri in line
    assert workdir.files() == before


class NotMlflow(http.server.BaseHTTPRequestHandler):
    """A web server that is not MLflow: every request gets a 404 HTML page."""

    PAGE = b"<html><body><h1>Not Found</h1><p>NOT-AN-MLFLOW-PAGE</p></body></html>"

    def _answer(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.PAGE)))
        self.end_headers()
        self.wfile.write(self.PAGE)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer  # noqa: N815 - http.server's names

    def log_message(self, *args: object) -> None:
        pass


class HealthyButSilent(http.server.BaseHTTPRequestHandler):
    """Answers /health; every API call hangs until the test ends."""

    released = threading.Event()

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/health"):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        else:
            self.released.wait(120)

    do_POST = do_PATCH = do_GET  # noqa: N815 - http.server's names

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[Callable[[type], str]]:
    """`http_server(handler)` serves on loopback; its URI."""
    servers = []

    def serve(handler: type) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    HealthyButSilent.released.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_404_from_a_server_that_is_not_mlflow_is_one_line_without_the_page(workdir, http_server):
    uri = http_server(NotMlflow)
    line = error_line(workdir.run(*GENERATE, env={"MLFLOW_TRACKING_URI": uri}))
    assert uri in line
    assert "<" not in line and "NOT-AN-MLFLOW-PAGE" not in line, line
    assert not (workdir.root / GENERATE[2]).exists()


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A socket that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_server_that_never_answers_fails_saying_how_long_it_waited(workdir, silent_listener):
    """Bounded: the stage gives up after its own timeout (a hang would trip the run's)."""
    result = workdir.run(*GENERATE, env={"MLFLOW_TRACKING_URI": silent_listener}, timeout=120)
    line = error_line(result)
    assert line == (
        f"error: MLflow tracking server at {silent_listener} did not answer in 5 s (timed out)"
    ), line
    assert not (workdir.root / GENERATE[2]).exists()


def test_a_server_that_answers_health_but_not_the_api_fails_naming_it(workdir, http_server):
    """Bounded by MLflow's retries as the stage sets them (a hang would trip the timeout)."""
    uri = http_server(HealthyButSilent)
    line = error_line(workdir.run(*GENERATE, env={"MLFLOW_TRACKING_URI": uri}, timeout=120))
    assert line.startswith(f"error: MLflow at {uri}: cannot start a run ("), line
    assert not (workdir.root / GENERATE[2]).exists()


def test_a_full_disk_for_the_output_is_one_line_and_keeps_the_previous_file(
    workdir, small_filesystem
):
    disk = small_filesystem(256)
    output = disk / "fixed.parquet"
    output.write_bytes(b"the previous output")
    workdir.write_params(small_params(**{"datasets.fixed.n": 20_000}))
    line = error_line(workdir.run("generate", "fixed", str(output)))
    assert str(disk) in line, line
    assert "No space left on device" in line, line
    assert output.read_bytes() == b"the previous output"
    assert names_in(disk) == ["fixed.parquet"]
    assert [run.status for run in workdir.runs()] == ["FAILED"]


def test_the_commands_file_size_limit_binds_its_stage(workdir):
    """`ulimit -f` (a user's, a CI runner's) bounds what the stage may write, as it would
    bound a stage run in its own process: one line, no output."""
    workdir.write_params(small_params(**{"datasets.fixed.n": 250_000}))  # about 20 MB
    result = workdir.run(*GENERATE, limits={resource.RLIMIT_FSIZE: 8 << 20})
    written = workdir.root / GENERATE[2]
    size = written.stat().st_size if written.exists() else 0
    assert result.returncode == 1, f"exit {result.returncode}: wrote {size} bytes past the limit"
    assert "too large" in error_line(result).lower()
    assert not written.exists()


def artifact_files(database: Path) -> dict[str, list[Path]]:
    """Each run's artifact files as MLflow (and so `mlflow ui`) finds them."""
    from mlflow import MlflowClient
    from mlflow.utils.file_utils import local_file_uri_to_path

    client = MlflowClient(tracking_uri=f"sqlite:///{database}")

    def listed(run_id: str, path: str | None = None) -> list[str]:
        found = []
        for info in client.list_artifacts(run_id, path):
            found += listed(run_id, info.path) if info.is_dir else [info.path]
        return found

    return {
        run.id: [Path(local_file_uri_to_path(run.artifact_uri)) / p for p in listed(run.id)]
        for run in store_runs(database)
    }


def locations(database: Path, experiment: str = "%") -> list[str]:
    """The artifact locations of the experiments named like `experiment`, their runs and
    logged models."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        ids = [
            row[0]
            for row in connection.execute(
                "select experiment_id from experiments where name like ?", (experiment,)
            )
        ]
        marks = ",".join("?" * len(ids))
        found = []
        for table, column in (
            ("experiments", "artifact_location"),
            ("runs", "artifact_uri"),
            ("logged_models", "artifact_location"),
        ):
            query = f"select {column} from {table} where experiment_id in ({marks})"
            found += [row[0] for row in connection.execute(query, ids)]
    return found


def tree(directory: Path) -> dict[str, int]:
    return (
        {str(p): p.stat().st_mtime_ns for p in directory.rglob("*")} if directory.exists() else {}
    )


def assert_store_lives_in(root: Path) -> None:
    from mlflow.utils.file_utils import local_file_uri_to_path

    database = root / "mlflow.db"
    for location in locations(database, "square-sequences"):
        path = Path(local_file_uri_to_path(location))
        assert path.is_relative_to(root / "mlruns"), f"{location} is outside {root}"
    files = artifact_files(database)
    for run_id, paths in files.items():
        assert paths, f"run {run_id}: MLflow lists no artifacts"
        for path in paths:
            assert path.is_relative_to(root / "mlruns") and path.is_file(), path


@pytest.mark.slow
def test_a_copied_then_moved_repository_logs_beside_its_own_store(make_workdir, tmp_path):
    original = make_workdir("original", store=FRESH)  # made by the stages, as a user's is
    original.write_split()
    original.succeed(*TRAIN)  # a logged model too
    original_tree = tree(original.root / "mlruns")

    copy_root = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(original.root), str(copy_root)], check=True)
    copied = original.at(copy_root)
    copied.succeed(*GENERATE)
    assert [run.status for run in copied.runs()] == ["FINISHED", "FINISHED"]
    assert_store_lives_in(copy_root)
    assert tree(original.root / "mlruns") == original_tree

    moved = tmp_path / "moved here, with a space"
    subprocess.run(["mv", str(copy_root), str(moved)], check=True)
    relocated = original.at(moved)
    relocated.succeed(*GENERATE)
    assert [run.status for run in relocated.runs()] == ["FINISHED"] * 3
    assert_store_lives_in(moved)
    assert not copy_root.exists(), "the next run re-created the old location"
    assert tree(original.root / "mlruns") == original_tree


def test_a_copied_store_points_no_experiment_at_the_original(make_workdir, tmp_path):
    """MLflow's own `Default` experiment too: a run logged there would land in the original."""
    original = make_workdir("original", store=FRESH)
    original.succeed(*GENERATE)
    copy_root = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(original.root), str(copy_root)], check=True)
    original.at(copy_root).succeed(*GENERATE)
    outside = [
        location
        for location in locations(copy_root / "mlflow.db")
        if str(original.root) in location
    ]
    assert outside == [], f"still pointing at the original: {outside}"


def test_an_experiment_a_user_placed_elsewhere_keeps_its_place_and_its_artifacts(
    make_workdir, tmp_path
):
    """A user's own experiment, its artifacts on another disk, used by a stage: nothing of
    it is re-pointed, here or after the repository moves."""
    workdir = make_workdir("repo", store=FRESH)
    workdir.succeed(*GENERATE)
    other_disk = tmp_path / "other-disk"
    client = MlflowClient(f"sqlite:///{workdir.database}")
    experiment_id = client.create_experiment("custom", artifact_location=str(other_disk))
    earlier = client.create_run(experiment_id)
    note = tmp_path / "note.txt"
    note.write_text("an earlier run's artifact\n")
    client.log_artifact(earlier.info.run_id, str(note))
    client.set_terminated(earlier.info.run_id)
    workdir.succeed(*GENERATE, env={"MLFLOW_EXPERIMENT_NAME": "custom"})
    moved = workdir.at(tmp_path / "moved")
    shutil.move(workdir.root, moved.root)
    moved.succeed(*GENERATE, env={"MLFLOW_EXPERIMENT_NAME": "custom"})
    client = MlflowClient(f"sqlite:///{moved.database}")
    assert client.get_experiment(experiment_id).artifact_location == str(other_disk)
    assert client.get_run(earlier.info.run_id).info.artifact_uri.startswith(str(other_disk))
    assert [item.path for item in client.list_artifacts(earlier.info.run_id)] == ["note.txt"]
    assert all(run.artifact_uri.startswith(str(other_disk)) for run in moved.runs()[1:])


@pytest.mark.parametrize("name", ["h#sh", "sp ace", "nön"])
def test_a_repository_at_a_path_uris_must_escape_keeps_its_store_and_artifacts_there(
    make_workdir, tmp_path, name
):
    workdir = make_workdir(f"{name}/repo", store=FRESH)
    workdir.succeed(*GENERATE)
    assert [run.status for run in workdir.runs()] == ["FINISHED"]
    [run] = workdir.runs()
    artifacts = Path(run.artifact_uri)
    assert artifacts.is_relative_to(workdir.root / "mlruns"), run.artifact_uri
    assert (artifacts / "raw.parquet").is_file()
    strays = {path.name for path in tmp_path.iterdir()} - {name, "servers"}
    assert strays == set(), f"the store wrote outside the repository: {strays}"


@pytest.mark.parametrize(
    "name", ["q?uery", "p%41th", os.fsdecode(b"lat\xe9")], ids=["query", "percent", "latin-1"]
)
def test_a_repository_at_a_path_mlflow_cannot_keep_a_store_under_is_one_line(make_workdir, name):
    workdir = make_workdir(f"{name}/repo", store=FRESH)
    line = error_line(workdir.run(*GENERATE))
    assert "move the repository or set MLFLOW_TRACKING_URI" in line, line
    assert not workdir.database.exists()
    assert not (workdir.root / GENERATE[2]).exists()


def test_a_run_that_cannot_record_its_artifacts_ends_failed(workdir):
    workdir.succeed(*GENERATE)
    mlruns = workdir.root / "mlruns"
    subprocess.run(["chattr", "+i", str(mlruns)], check=True)
    try:
        line = error_line(workdir.run(*GENERATE))
    finally:
        subprocess.run(["chattr", "-i", str(mlruns)], check=True)
    assert "cannot start a run" in line, line
    assert [run.status for run in workdir.runs()] == ["FINISHED", "FAILED"]
