"""The data stages under real DVC and MLflow, in a temporary copy of the repo."""

import numpy as np
import pytest

from pipeline.parquet_io import read_squares
from pipeline.squares import generate_squares

pytestmark = pytest.mark.slow


def flat_lock_params(stage: dict) -> dict[str, str]:
    """A dvc.lock stage's params as MLflow stores them: dotted names, string values."""
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            flat[prefix] = str(value)

    for values in stage.get("params", {}).values():  # keyed by params file
        walk("", values)
    return flat


def test_data_stages_write_the_datasets_and_one_mlflow_run_each(pipeline_repo):
    pipeline_repo.use_small_params()
    pipeline_repo.run("dvc", "repro", "split")

    params = pipeline_repo.params()
    for name, dataset in params["datasets"].items():
        raw = read_squares(pipeline_repo.root / f"data/raw/{name}.parquet")
        assert len(raw) == dataset["n"]
        expected = generate_squares(
            dataset["n"], dataset["noise"], dataset["seed"], dataset["variable_len"]
        )
        assert np.array_equal(raw.labels, expected.labels)
        parts = [
            read_squares(pipeline_repo.root / f"data/split/{name}/{part}.parquet")
            for part in ("train", "val", "test")
        ]
        ids = np.concatenate([part.seq_ids for part in parts])
        assert sorted(ids.tolist()) == list(range(dataset["n"]))

    lock = pipeline_repo.lock()["stages"]
    runs = pipeline_repo.mlflow_runs()
    assert sorted(run.info.run_name for run in runs) == sorted(lock)
    for run in runs:
        stage = lock[run.info.run_name]
        assert run.info.status == "FINISHED"
        assert run.data.params == flat_lock_params(stage)
        assert run.data.tags["dvc.stage"] == run.info.run_name
        for out in stage["outs"]:
            assert run.data.tags[f"output/{out['path']}"] == out["md5"]
        for dep in stage["deps"]:
            if dep["path"].startswith("data/"):
                assert run.data.tags[f"input/{dep['path']}"] == dep["md5"]
        assert (
            run.data.tags["mlflow.source.git.commit"]
            == pipeline_repo.run("git", "rev-parse", "HEAD").stdout.strip()
        )

    again = pipeline_repo.run("dvc", "repro", "split")
    assert "Running stage" not in again.stdout
    assert len(pipeline_repo.mlflow_runs()) == len(runs)


def test_changing_one_dataset_reruns_only_its_branch(pipeline_repo):
    params = pipeline_repo.use_small_params()
    pipeline_repo.run("dvc", "repro", "split")
    before = len(pipeline_repo.mlflow_runs())

    params["datasets"]["variable"]["noise"] = 0.2
    pipeline_repo.write_params(params)
    result = pipeline_repo.run("dvc", "repro", "split")
    ran = sorted(
        line.split("'")[1]
        for line in result.stdout.splitlines()
        if line.startswith("Running stage")
    )
    assert ran == ["generate@variable", "split@variable"]
    assert sorted(run.info.run_name for run in pipeline_repo.mlflow_runs()[before:]) == ran
