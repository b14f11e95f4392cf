"""The logged model as MLflow's own clients use it: `runs:/<run_id>/model`, loaded in a fresh
Python, and `mlflow models serve` answering a JSON body. It takes what a client has (a
square's points, integers welcome, no label, no id), scores exactly as the pipeline does,
and refuses in one line what it was not trained for.
"""

import csv
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from support import wait_for

pytestmark = pytest.mark.slow

LOAD_AND_SCORE = """
import json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
test = pd.read_parquet(sys.argv[2])
points = [[[p["x0"], p["x1"]] for p in square] for square in test["points"]]
print(json.dumps([float(p) for p in model.predict(pd.DataFrame({"points": points}))]))
"""


def training_run_id(repo, variant: str) -> str:
    client = MlflowClient(f"sqlite:///{repo.root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("square-sequences")
    [run] = client.search_runs(
        [experiment.experiment_id],
        f"attributes.run_name = 'train@{variant}' and attributes.status = 'FINISHED'",
    )
    return run.info.run_id


def predictions_csv(repo, variant: str) -> list[float]:
    with (repo.root / f"data/predictions/{variant}.csv").open() as file:
        return [float(row["probability"]) for row in csv.DictReader(file)]


def environment(repo) -> dict[str, str]:
    """A user's shell with the environment activated (`mlflow models serve` runs uvicorn)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {
        **os.environ,
        "PATH": path,
        "MLFLOW_TRACKING_URI": f"sqlite:///{repo.root / 'mlflow.db'}",
    }


@pytest.mark.parametrize(("variant", "dataset"), [("gru", "fixed"), ("lstm_packed", "variable")])
def test_the_model_at_runs_id_model_scores_the_test_split_as_the_pipeline_bit_for_bit(
    reproduced_template, variant, dataset
):
    repo = reproduced_template
    uri = f"runs:/{training_run_id(repo, variant)}/model"
    test = repo.root / f"data/split/{dataset}/test.parquet"
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_SCORE, uri, str(test)],
        cwd=repo.root,
        env=environment(repo),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert json.loads(result.stdout) == predictions_csv(repo, variant)


@pytest.fixture
def served(reproduced_template) -> Iterator[str]:
    """`mlflow models serve` of the gru's logged model on a free port; its address."""
    repo = reproduced_template
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "models", "serve", "--env-manager", "local"),
            *("-m", f"runs:/{training_run_id(repo, 'gru')}/model"),
            *("-h", "127.0.0.1", "-p", str(port)),
        ],
        cwd=repo.root,
        env=environment(repo),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert server.poll() is None, "mlflow models serve exited"
        try:
            return urllib.request.urlopen(f"{address}/ping", timeout=5).status == 200
        except OSError:
            return False

    wait_for(answers, 300, "the served model's /ping")
    yield address
    os.killpg(server.pid, 15)
    server.wait(timeout=60)


def post(address: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{address}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_served_model_scores_a_square_sent_as_json_with_integer_corners_and_no_label(served):
    status, answer = post(
        served, {"dataframe_records": [{"points": [[-1, -1], [-1, 1], [1, 1], [1, -1]]}]}
    )
    assert status == 200, answer
    [probability] = answer["predictions"]
    assert probability > 0.5  # A, B, C, D: clockwise


def test_a_served_model_scores_the_test_split_as_the_pipeline_bit_for_bit(
    served, reproduced_template
):
    import pandas as pd

    test = pd.read_parquet(reproduced_template.root / "data/split/fixed/test.parquet")
    records = [
        {"points": [[p["x0"], p["x1"]] for p in square], "seq_id": int(seq_id)}
        for square, seq_id in zip(test["points"], test["seq_id"], strict=True)
    ]
    status, answer = post(served, {"dataframe_records": records})
    assert status == 200, answer
    assert answer["predictions"] == predictions_csv(reproduced_template, "gru")


REFUSED = {
    "seven points": (
        [[-1, -1], [-1, 1], [1, 1], [1, -1], [-1, -1], [-1, 1], [1, 1]],
        "row 0: 7 points; this model was trained on squares of 4 points",
    ),
    "one point": ([[-1, -1]], "row 0: 1 point; this model was trained on squares of 4 points"),
    "far away": (
        [[-1, -1], [-1, 1], [1, 1], [1e9, -1]],
        "far outside the squares this model was trained on",
    ),
    "not a pair": ([[-1], [-1, 1], [1, 1], [1, -1]], "row 0: points must be a list of [x, y]"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_served_model_refuses_what_it_was_not_trained_for_in_one_line(served, case):
    points, reason = REFUSED[case]
    status, answer = post(served, {"dataframe_records": [{"points": points}]})
    assert status == 400, answer
    assert "stack_trace" not in answer
    last_line = answer["message"].splitlines()[-1]
    assert last_line.startswith("Error: ") and reason in last_line, answer["message"]
    assert "Traceback" not in answer["message"] and str(Path.cwd()) not in answer["message"]
