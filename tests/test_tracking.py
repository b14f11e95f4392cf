"""Tracking: one MLflow run per stage execution, in a real SQLite store."""

import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline.library.errors import TrackingError
from pipeline.library.files import md5_of, write_text
from pipeline.library.models import build_model, save_checkpoint
from pipeline.library.settings import ModelSpec
from pipeline.library.squares import extent, generate_squares, write_squares
from pipeline.library.training import LabelledSequences, predict_proba
from pipeline.runtime import host, store, tracking
from pipeline.runtime.params import load_params
from pipeline.runtime.record import LoggedModel, OutputFile, Record, describe_run
from pipeline.stages import evaluate, generate, train

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")


def runs_of(client, experiment: str):
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return client.search_runs([experiment_id], run_view_type=3)


def start(stage, name: str | None, inputs=()) -> tracking.StageRun:
    described = describe_run(stage, name, PARAMS, [Path(path) for path in inputs])
    return tracking.StageRun.start(described, REPO / "pipeline")


def test_a_run_records_shared_params_dvc_params_tags_datasets_and_aligned_artifacts(mlflow_store):
    client, experiment = mlflow_store
    write_text("split/train.parquet", "train\n")
    write_text("split/val.parquet", "val\n")
    write_text(".weights.staged-1.pt", "weights\n")  # staged under another name
    run = start(train.STAGE, "gru", inputs=["split/train.parquet", "split/val.parquet"])
    record = Record()
    record.dataset(Path("split/train.parquet"), "training")
    run.record(
        record,
        [
            OutputFile(
                Path(".weights.staged-1.pt"), Path("models/gru/weights.pt"), "model/weights.pt"
            )
        ],
    )
    run.end("FINISHED")

    [logged] = runs_of(client, experiment)
    assert logged.info.status == "FINISHED"
    assert logged.info.run_name == "train@gru"
    params = logged.data.params
    assert {"arch", "hidden_dim", "num_layers", "bidirectional", "packed", "lr", "seed"} <= set(
        params
    )
    assert {"shuffle_seed", "epochs", "batch_size", "dataset", "device", "cpu_capability"} <= set(
        params
    )
    assert params["arch"] == "gru"
    assert params["data.n"] == str(PARAMS.datasets["fixed"].n)
    assert params["data.split_val"] == str(PARAMS.split.val)
    dvc_params = mlflow.artifacts.load_dict(f"runs:/{logged.info.run_id}/dvc_params.json")
    assert dvc_params == PARAMS.tracked("models.gru", "device", "cpu_capability")
    tags = logged.data.tags
    assert tags["dvc.stage"] == "train@gru"
    assert tags["input/split/train.parquet"] == md5_of("split/train.parquet")
    assert tags["output/models/gru/weights.pt"] == md5_of(".weights.staged-1.pt")
    assert "mlflow.source.git.commit" in tags
    [dataset] = logged.inputs.dataset_inputs
    assert (dataset.dataset.name, dataset.dataset.digest) == (
        "split/train.parquet",
        md5_of("split/train.parquet"),
    )
    assert [item.path for item in client.list_artifacts(logged.info.run_id, "model")] == [
        "model/weights.pt"
    ]


def test_runs_of_dvc_experiments_carry_the_experiment_name_and_baseline(mlflow_store, monkeypatch):
    client, experiment = mlflow_store
    monkeypatch.setenv("DVC_EXP_NAME", "spiky-fern")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "a" * 40)
    start(generate.STAGE, "fixed").end("FINISHED")
    [logged] = runs_of(client, experiment)
    assert logged.data.tags["dvc.exp_name"] == "spiky-fern"
    assert logged.data.tags["dvc.exp_baseline"] == "a" * 40
    assert logged.data.params["dataset"] == "fixed"


def test_the_experiment_opens_on_its_runs_and_describes_itself(mlflow_store):
    client, experiment = mlflow_store
    start(generate.STAGE, "fixed").end("FINISHED")
    tags = client.get_experiment_by_name(experiment).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert "Compare" in tags["mlflow.note.content"]


def test_paths_with_characters_mlflow_refuses_in_keys_are_still_tagged(mlflow_store):
    client, experiment = mlflow_store
    write_text("out@v1+x.txt", "x\n")
    run = start(generate.STAGE, "fixed")
    run.record(Record(), [OutputFile(Path("out@v1+x.txt"), Path("out@v1+x.txt"), "raw.txt")])
    run.end("FINISHED")
    [logged] = runs_of(client, experiment)
    assert logged.data.tags["output/out_v1_x.txt"] == md5_of("out@v1+x.txt")


def test_outputs_above_the_limit_are_logged_as_references(mlflow_store, monkeypatch):
    client, experiment = mlflow_store
    monkeypatch.setattr(tracking.run, "ARTIFACT_LIMIT_BYTES", 4)
    write_text("big.txt", "more than four bytes\n")
    run = start(generate.STAGE, "fixed")
    run.record(Record(), [OutputFile(Path("big.txt"), Path("data/big.txt"), "raw.txt")])
    run.end("FINISHED")
    [logged] = runs_of(client, experiment)
    references = mlflow.artifacts.load_dict(f"runs:/{logged.info.run_id}/references.json")
    assert references == {
        "raw.txt": {"path": "data/big.txt", "md5": md5_of("big.txt"), "bytes": 21}
    }


def test_history_is_logged_one_step_per_epoch(mlflow_store):
    client, experiment = mlflow_store
    run = start(train.STAGE, "gru")
    record = Record(history=[{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5}])
    run.record(record, [])
    run.end("FINISHED")
    [logged] = runs_of(client, experiment)
    history = client.get_metric_history(logged.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.9), (2, 0.5)]


@pytest.fixture
def logged_model(mlflow_store, tmp_path):
    """A train run that logged a real checkpoint, and the test file it can score."""
    client, experiment = mlflow_store
    spec = ModelSpec("lstm", 2, 1, bidirectional=True, packed=True)
    model = build_model(spec, seed=3)
    save_checkpoint(model, spec, tmp_path / "model")
    squares = generate_squares(40, 0.1, seed=19, variable_len=True)
    write_squares(squares, tmp_path / "test.parquet")
    run = start(train.STAGE, "lstm_packed")
    settings = PARAMS.model("lstm_packed").settings() | {"cpu_capability": "avx2"}
    record = Record(model=LoggedModel(tmp_path / "model", settings, extent(squares)))
    weights = tmp_path / "model/weights.pt"
    run.record(record, [OutputFile(weights, weights, "checkpoint/weights.pt")])
    run.end("FINISHED")
    return client, experiment, run, model, squares, tmp_path


def test_the_logged_model_has_a_signature_an_example_its_settings_and_scores_as_the_checkpoint(
    logged_model,
):
    client, _, run, model, squares, tmp_path = logged_model
    model_id = client.get_run(run.run_id).data.tags["model_id"]
    logged = mlflow.get_logged_model(model_id)
    assert logged.params["seed"] == str(PARAMS.model("lstm_packed").seed)
    assert logged.params["lr"] == str(PARAMS.model("lstm_packed").lr)
    assert logged.params["arch"] == "lstm"
    info = mlflow.models.get_model_info(f"runs:/{run.run_id}/model")  # where users look
    assert info.model_id == model_id
    inputs = {column.name: column.required for column in info.signature.inputs.inputs}
    assert inputs == {"points": True, "seq_id": False}  # nothing a client cannot know
    assert info.saved_input_example_info is not None
    served = mlflow.pyfunc.load_model(f"runs:/{run.run_id}/model")
    predicted = served.predict(pd.read_parquet(tmp_path / "test.parquet"))  # {x0, x1} points
    expected = predict_proba(model, LabelledSequences.from_squares(squares)).numpy()
    assert np.array_equal(predicted, expected)
    pairs = pd.DataFrame({"points": [[[-1, -1], [-1, 1], [1, 1]]]})  # integers, [x, y]
    assert served.predict(pairs).shape == (1,)


def test_test_metrics_are_linked_to_the_model_scored_and_the_test_dataset(logged_model):
    client, _, training_run, _, _, tmp_path = logged_model
    run = start(evaluate.STAGE, "lstm_packed")
    record = Record(
        metrics={"test_accuracy": 0.98},
        metrics_dataset=tmp_path / "test.parquet",
        scored_model=tmp_path / "model/weights.pt",
    )
    run.record(record, [])
    run.end("FINISHED")
    evaluation = client.get_run(run.run_id)
    model_id = client.get_run(training_run.run_id).data.tags["model_id"]
    assert evaluation.data.tags["training_run_id"] == training_run.run_id
    assert client.get_run(training_run.run_id).data.metrics["test_accuracy"] == 0.98
    assert [entry.model_id for entry in evaluation.inputs.model_inputs] == [model_id]
    [metric] = mlflow.get_logged_model(model_id).metrics
    assert (metric.key, metric.value, metric.dataset_digest) == (
        "test_accuracy",
        0.98,
        md5_of(tmp_path / "test.parquet"),
    )


def test_a_copied_or_moved_store_logs_artifacts_beside_itself(tmp_path, monkeypatch):
    original = tmp_path / "a"
    original.mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(original))
    monkeypatch.chdir(original)
    write_text("raw.txt", "a\n")
    first = start(generate.STAGE, "fixed")
    first.record(Record(), [OutputFile(Path("raw.txt"), Path("raw.txt"), "raw.txt")])
    first.end("FINISHED")
    before = sorted((original / "mlruns").rglob("*"))

    copy = tmp_path / "b"
    shutil.copytree(original, copy)
    monkeypatch.setenv("DVC_ROOT", str(copy))
    monkeypatch.chdir(copy)
    second = start(generate.STAGE, "fixed")
    second.record(Record(), [OutputFile(Path("raw.txt"), Path("raw.txt"), "raw.txt")])
    second.end("FINISHED")

    assert sorted((original / "mlruns").rglob("*")) == before  # the original got nothing
    client = mlflow.MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    for run_id in (first.run_id, second.run_id):  # old and new runs: artifacts in the copy
        assert client.get_run(run_id).info.artifact_uri.startswith(str(copy / "mlruns"))
        assert [item.path for item in client.list_artifacts(run_id)] == [
            "dvc_params.json",
            "raw.txt",
        ]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("garbage", "not an MLflow store"),
        ("half-built", "a half-built MLflow store (it holds _alembic_tmp_metrics"),
    ],
)
def test_a_broken_store_is_one_line_saying_what_to_do(tmp_path, monkeypatch, damage, message):
    database = tmp_path / "mlflow.db"
    if damage == "garbage":
        database.write_bytes(b"this is not a database" * 100)
    else:
        with sqlite3.connect(database) as connection:
            connection.execute("create table experiments (id integer)")
            connection.execute("create table _alembic_tmp_metrics (id integer)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrackingError) as raised:
        start(generate.STAGE, "fixed")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_server_that_never_answers_fails_within_seconds_naming_the_uri(monkeypatch, tmp_path):
    with socket.socket() as listener:  # accepts connections (the backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.chdir(tmp_path)
        started = time.monotonic()
        with pytest.raises(
            TrackingError, match=f"^MLflow tracking server at {uri} did not answer in"
        ):
            start(generate.STAGE, "fixed")
    assert time.monotonic() - started < 15


def test_a_web_server_that_is_not_mlflow_is_named_without_its_page(monkeypatch, tmp_path):
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"<html><body><h1>Not Found</h1>" + b"x" * 5000 + b"</body></html>")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    try:
        with pytest.raises(TrackingError) as raised:
            start(generate.STAGE, "fixed")
    finally:
        server.shutdown()
    assert "HTTP 404; is this an MLflow tracking server?" in str(raised.value)
    assert "<" not in str(raised.value)
    assert len(str(raised.value)) < 300


def test_unreachable_tracking_server_fails_fast_naming_the_uri(monkeypatch, tmp_path):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with pytest.raises(TrackingError, match=f"^MLflow tracking server at {uri} is not reachable"):
        start(generate.STAGE, "fixed")
    assert time.monotonic() - started < 30


def test_default_store_is_the_dvc_root_database(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))
    monkeypatch.chdir(tmp_path)
    assert store.tracking_uri() == f"sqlite:///{tmp_path / 'repo' / 'mlflow.db'}"
    monkeypatch.delenv("DVC_ROOT")
    assert store.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_a_run_abandoned_by_a_killed_process_is_marked_killed_by_the_next_run(mlflow_store):
    client, experiment = mlflow_store
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid now belongs to no process, like a SIGKILLed stage's
    start(generate.STAGE, "variable").end("FINISHED")  # creates the experiment
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    here = host.place()
    alive = {"pid": str(os.getpid()), "pid.started": host.started()}
    runs = {
        "gone": {"dvc.stage": "generate@fixed", **here, "pid": str(finished.pid)},
        # Our own pid, but another process's start time: the pid was reused.
        "reused pid": {"dvc.stage": "generate@fixed", **here, **alive, "pid.started": "1"},
        "alive": {"dvc.stage": "generate@fixed", **here, **alive},
        "another stage": {"dvc.stage": "generate@variable", **here, "pid": str(finished.pid)},
        # The same host name, another PID namespace: its pid says nothing here.
        "another namespace": {
            "dvc.stage": "generate@fixed",
            **here,
            "host.pid_namespace": "pid:[1]",
            "pid": str(finished.pid),
        },
    }
    ids = {
        what: client.create_run(experiment_id, tags=tags).info.run_id for what, tags in runs.items()
    }
    start(generate.STAGE, "fixed").end("FINISHED")
    statuses = {what: client.get_run(run_id).info.status for what, run_id in ids.items()}
    assert statuses == {
        "gone": "KILLED",
        "reused pid": "KILLED",
        "alive": "RUNNING",
        "another stage": "RUNNING",
        "another namespace": "RUNNING",
    }


@pytest.mark.slow
def test_make_ui_serves_the_store_on_its_port_and_prints_the_link_to_its_runs(
    tmp_path, monkeypatch
):
    """`make ui PORT=<port>`: the link to the experiment's runs, then MLflow's UI on the
    store there, as two processes: MLflow's command and its one uvicorn worker (no job
    runner and its consumers: seven more processes, 1.3 GB)."""
    import signal
    import urllib.request

    import psutil

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    start(generate.STAGE, "fixed").end("FINISHED")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ui = subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(REPO), "ui", f"PORT={port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # make, the UI and its worker: stopped together
    )
    try:
        # printed once the store is open, before the server starts (after make's echo)
        link = next((line for line in ui.stdout if "MLflow UI for" in line), "no link")
        experiment = mlflow.MlflowClient(
            f"sqlite:///{tmp_path / 'mlflow.db'}"
        ).get_experiment_by_name("square-sequences")
        assert f"127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs?" in link
        assert "workflowType=machine_learning" in link
        while True:  # until the server answers (an observable event, polled)
            assert ui.poll() is None, "make ui exited"
            try:
                answer = urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name"
                    "?experiment_name=square-sequences"
                ).read()
                break
            except OSError:
                time.sleep(0.2)
        assert experiment.experiment_id.encode() in answer
        under_make = psutil.Process(ui.pid).children(recursive=True)
        modules = sorted(process.cmdline()[2] for process in under_make)  # python -m <module>
        assert modules == ["mlflow", "uvicorn"], [process.cmdline() for process in under_make]
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait()


def test_make_ui_refuses_a_taken_port_in_one_line_before_printing_a_link(tmp_path):
    """MLflow would start, fail to listen, print nothing useful and exit 0: the link printed
    first would open whatever holds the port."""
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pipeline.tools.ui", str(port)],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO), "DVC_ROOT": str(tmp_path)},
            capture_output=True,
            text=True,
        )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: port {port} on 127.0.0.1 is taken (Address already in use): stop what uses "
        "it, or choose another: make ui PORT=<port>\n"
    )
    assert not (tmp_path / "mlflow.db").exists()
