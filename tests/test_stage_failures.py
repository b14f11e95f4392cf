"""Stages fail cleanly: non-zero exit, one line naming the file or key, nothing half-written."""

import copy
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from params_editing import drop_key, set_key

from pipeline.library.split import stratified_split
from pipeline.library.squares import generate_squares, write_squares

REPO = Path(__file__).resolve().parents[1]
SHIPPED = yaml.safe_load((REPO / "params.yaml").read_text())


def run_stage(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m pipeline ...` in `workdir`, with this checkout's package importable."""
    environment = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def files_in(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}


BAD_PARAMS = {
    "yaml syntax error": ("datasets: {fixed: [1, 2\n", "not valid YAML at line"),
    "missing section": (drop_key(SHIPPED, "split"), "split is missing"),
    "wrong type": (
        set_key(SHIPPED, "datasets.fixed.n", "1024"),
        "datasets.fixed.n must be an integer from 1 to 500000000, got '1024'",
    ),
    "negative size": (
        set_key(SHIPPED, "datasets.fixed.n", -1),
        "datasets.fixed.n must be an integer from 1 to 500000000",
    ),
    "zero size": (
        set_key(SHIPPED, "datasets.fixed.n", 0),
        "datasets.fixed.n must be an integer from 1 to 500000000",
    ),
    "non-finite noise": (
        set_key(SHIPPED, "datasets.fixed.noise", float("inf")),
        "datasets.fixed.noise must be a finite number from 0 to 1e+06",
    ),
    "fraction out of range": (
        set_key(SHIPPED, "split.test", 1.5),
        "split.test must be a number in (0, 1)",
    ),
    "fractions summing to 1": (
        set_key(SHIPPED, "split.val", 0.8),
        "split.val + split.test must be < 1",
    ),
    "unknown arch": (
        set_key(SHIPPED, "models.gru.arch", "mamba"),
        "models.gru.arch must be one of rnn, gru, lstm, conv1d",
    ),
    "unknown dataset": (
        set_key(SHIPPED, "models.gru.dataset", "circles"),
        "models.gru.dataset must name a key of datasets",
    ),
    "hidden size 0": (
        set_key(SHIPPED, "models.gru.hidden_dim", 0),
        "models.gru.hidden_dim must be an integer >= 1, got 0",
    ),
    "epochs 0": (
        set_key(SHIPPED, "models.gru.epochs", 0),
        "models.gru.epochs must be an integer >= 1, got 0",
    ),
    "unknown key": (
        set_key(SHIPPED, "models.gru.dropout", 0.5),
        "models.gru.dropout is not a known key",
    ),
    "unknown stage name": (SHIPPED, "datasets.circles is missing"),
}


@pytest.mark.parametrize("case", BAD_PARAMS)
def test_bad_params_exit_non_zero_with_one_line_and_write_nothing(tmp_path, case):
    params, message = BAD_PARAMS[case]
    text = params if isinstance(params, str) else yaml.safe_dump(params)
    (tmp_path / "params.yaml").write_text(text)
    dataset = "circles" if case == "unknown stage name" else "fixed"
    result = run_stage(tmp_path, "generate", dataset, "data/raw/out.parquet")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [result.stderr.strip()]  # exactly one line
    assert result.stderr.startswith("error: params.yaml: ")
    assert message in result.stderr
    assert files_in(tmp_path) == {"params.yaml"}  # no output, no MLflow store


@pytest.fixture
def split_workdir(tmp_path, mlflow_database):
    """A directory with params.yaml and the fixed dataset's split files (small)."""
    params = copy.deepcopy(SHIPPED)
    params["datasets"]["fixed"]["n"] = 40
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    squares = generate_squares(40, 0.1, seed=13, variable_len=False)
    parts = stratified_split(squares.labels, 0.2, 0.2, seed=42).parts()
    for part, rows in parts.items():
        write_squares(squares.take(rows), tmp_path / f"split/{part}.parquet")
    return tmp_path, {
        "MLFLOW_TRACKING_URI": mlflow_database,
        "MLFLOW_EXPERIMENT_NAME": f"failures-{tmp_path.name}",
    }


def mlflow_statuses(uri: str, experiment: str) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return (
        []
        if found is None
        else [run.info.status for run in client.search_runs([found.experiment_id], run_view_type=3)]
    )


def test_batch_size_larger_than_the_training_split_is_a_params_error(split_workdir):
    workdir, env = split_workdir
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["models"]["gru"]["batch_size"] = 500
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    before = files_in(workdir)
    result = run_stage(workdir, "train", "gru", "split", "models/gru", "history/gru", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: params.yaml: models.gru.batch_size must be at most the training split's size "
        "26 (split/train.parquet), got 500"
    )
    assert files_in(workdir) == before
    # Checked before the run starts: MLflow records nothing.
    assert mlflow_statuses(env["MLFLOW_TRACKING_URI"], env["MLFLOW_EXPERIMENT_NAME"]) == []


@pytest.mark.parametrize(
    ("damage", "message", "statuses"),
    [
        ("delete", "split/train.parquet: not found", []),
        ("truncate", "split/train.parquet: not a readable Parquet file", []),
        ("wrong schema", "split/train.parquet: expected columns", ["FAILED"]),
    ],
)
def test_bad_parquet_input_is_named_and_nothing_is_written(
    split_workdir, damage, message, statuses
):
    workdir, env = split_workdir
    train_file = workdir / "split/train.parquet"
    if damage == "delete":
        train_file.unlink()
    elif damage == "truncate":
        train_file.write_bytes(train_file.read_bytes()[:200])
    else:
        pq.write_table(pa.table({"x": [1.0] * 30}), train_file)  # enough rows for a batch
    before = files_in(workdir)
    result = run_stage(workdir, "train", "gru", "split", "models/gru", "history/gru", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {message}")
    assert len(result.stderr.splitlines()) == 1
    assert files_in(workdir) == before
    assert mlflow_statuses(env["MLFLOW_TRACKING_URI"], env["MLFLOW_EXPERIMENT_NAME"]) == statuses


def test_an_unreachable_tracking_server_fails_naming_the_uri(split_workdir):
    workdir, _ = split_workdir
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{probe.getsockname()[1]}"
    before = files_in(workdir)
    result = run_stage(
        workdir, "generate", "fixed", "raw/fixed.parquet", env={"MLFLOW_TRACKING_URI": uri}
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        f"error: MLflow tracking server at {uri} is not reachable"
    )
    assert files_in(workdir) == before
