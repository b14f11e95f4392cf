"""Tracking: one MLflow run per stage execution, in a real SQLite store."""

import socket
import subprocess
import time
from pathlib import Path

import pytest

from pipeline import tracking
from pipeline.errors import TrackingError
from pipeline.files import md5_of, write_text


def runs_of(client, experiment: str):
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return client.search_runs([experiment_id], run_view_type=3)


def test_finished_stage_records_params_tags_datasets_and_artifacts(mlflow_store):
    client, experiment = mlflow_store
    write_text("in.txt", "input\n")
    params = {
        "datasets.fixed.n": 8,
        "datasets.fixed.noise": 0.1,
        "datasets.fixed.variable_len": False,
    }
    with tracking.stage_run("generate@fixed", params, ["in.txt"], ["out/a.txt", "b.txt"]) as run:
        write_text("out/a.txt", "output\n")
        write_text("b.txt", "beside\n")
        run.log_dataset("in.txt", context="source")

    [record] = runs_of(client, experiment)
    assert record.info.status == "FINISHED"
    assert record.info.run_name == "generate@fixed"
    assert record.data.params == {key: str(value) for key, value in params.items()}
    tags = record.data.tags
    assert tags["dvc.stage"] == "generate@fixed"
    assert tags["input/in.txt"] == md5_of("in.txt")
    assert tags["output/out/a.txt"] == md5_of("out/a.txt")
    assert "mlflow.source.git.commit" in tags
    [dataset] = record.inputs.dataset_inputs
    assert dataset.dataset.name == "in.txt"
    assert dataset.dataset.digest == md5_of("in.txt")
    assert [tag.value for tag in dataset.tags if tag.key == "mlflow.data.context"] == ["source"]
    assert [item.path for item in client.list_artifacts(record.info.run_id, "out")] == ["out/a.txt"]
    assert "b.txt" in [item.path for item in client.list_artifacts(record.info.run_id)]


def test_failing_stage_ends_failed_and_reraises(mlflow_store):
    client, experiment = mlflow_store
    with pytest.raises(ValueError, match="boom"), tracking.stage_run("split@fixed", {}, [], []):
        raise ValueError("boom")
    assert [run.info.status for run in runs_of(client, experiment)] == ["FAILED"]


def test_interrupted_stage_ends_killed(mlflow_store):
    client, experiment = mlflow_store
    with pytest.raises(KeyboardInterrupt), tracking.stage_run("train@gru", {}, [], []):
        raise KeyboardInterrupt
    assert [run.info.status for run in runs_of(client, experiment)] == ["KILLED"]


def test_files_outside_the_working_directory_are_named_by_their_absolute_path(
    mlflow_store, tmp_path_factory
):
    client, experiment = mlflow_store
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "out.txt"
    with tracking.stage_run("report", {}, [], [elsewhere]):
        write_text(elsewhere, "outside\n")
    [record] = runs_of(client, experiment)
    name = elsewhere.as_posix().lstrip("/")
    assert record.data.tags[f"output/{name}"] == md5_of(elsewhere)
    assert [
        item.path for item in client.list_artifacts(record.info.run_id, str(Path(name).parent))
    ] == [name]


def test_stage_that_forgets_an_output_fails(mlflow_store):
    client, experiment = mlflow_store
    with (
        pytest.raises(RuntimeError, match=r"without writing missing\.txt"),
        tracking.stage_run("plot@gru", {}, [], ["missing.txt"]),
    ):
        pass
    assert [run.info.status for run in runs_of(client, experiment)] == ["FAILED"]


def test_outputs_above_the_limit_are_logged_as_references(mlflow_store, monkeypatch):
    client, experiment = mlflow_store
    monkeypatch.setattr(tracking, "ARTIFACT_LIMIT_BYTES", 4)
    with tracking.stage_run("generate@big", {}, [], ["big.txt"]):
        write_text("big.txt", "more than four bytes\n")
    [record] = runs_of(client, experiment)
    references = client.download_artifacts(record.info.run_id, "references.json", ".")
    assert md5_of("big.txt") in Path(references).read_text()
    assert [item.path for item in client.list_artifacts(record.info.run_id)] == ["references.json"]


def test_history_is_logged_one_step_per_epoch(mlflow_store):
    client, experiment = mlflow_store
    rows = [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.5}, {"epoch": 3, "loss": 0.25}]
    with tracking.stage_run("train@gru", {}, [], []) as run:
        run.log_history(rows, step_key="epoch")
    [record] = runs_of(client, experiment)
    history = client.get_metric_history(record.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.9), (2, 0.5), (3, 0.25)]


def test_metrics_are_linked_to_the_run_that_wrote_the_model_file(mlflow_store):
    client, experiment = mlflow_store
    with tracking.stage_run("train@gru", {}, [], ["model/weights.pt"]):
        write_text("model/weights.pt", "weights\n")
    with tracking.stage_run("evaluate@gru", {}, ["model/weights.pt"], []) as run:
        run.log_metrics({"test_accuracy": 0.98}, model_file="model/weights.pt")
    evaluation, training = runs_of(client, experiment)  # newest first
    assert evaluation.data.tags["training_run_id"] == training.info.run_id
    assert evaluation.data.metrics == {"test_accuracy": 0.98}


def test_unreachable_tracking_server_fails_fast_naming_the_uri(monkeypatch, tmp_path):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with (
        pytest.raises(TrackingError, match=f"^MLflow tracking server at {uri} is not reachable"),
        tracking.stage_run("generate@fixed", {}, [], []),
    ):
        pass
    assert time.monotonic() - started < 30


def test_default_store_is_the_dvc_root_database(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'repo' / 'mlflow.db'}"
    monkeypatch.delenv("DVC_ROOT")
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_a_run_abandoned_by_a_killed_process_is_marked_killed_by_the_next_run(mlflow_store):
    client, experiment = mlflow_store
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid now belongs to no process, like a SIGKILLed stage's
    experiment_id = client.create_experiment(experiment)
    abandoned = client.create_run(
        experiment_id,
        run_name="train@gru",
        tags={"dvc.stage": "train@gru", "host": socket.gethostname(), "pid": str(finished.pid)},
    )
    other_stage = client.create_run(
        experiment_id, tags={"dvc.stage": "train@lstm", "host": socket.gethostname(), "pid": "1"}
    )
    with tracking.stage_run("train@gru", {}, [], []):
        pass
    assert client.get_run(abandoned.info.run_id).info.status == "KILLED"
    assert client.get_run(other_stage.info.run_id).info.status == "RUNNING"
