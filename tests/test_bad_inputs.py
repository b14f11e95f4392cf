"""Bad inputs get one line naming the file, exit status 1, and nothing written: non-finite
data, damaged checkpoints, splits, curves and metrics; metrics are always finite."""

import math
import os
import random
import resource
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import (
    EVALUATE,
    EVALUATE_OUTPUTS,
    GENERATE,
    PLOT,
    REPORT,
    SPLIT,
    TRAIN,
    TRAIN_OUTPUTS,
    error_line,
    small_params,
)

from pipeline.library.squares import generate_squares, read_squares, write_squares


def damaged_point(path: Path, value: float) -> None:
    """Rewrite a Parquet file of squares with one coordinate set to `value`."""
    squares = read_squares(path)
    squares.points[len(squares.points) // 2, 1, 0] = value
    write_squares(squares, path)


@pytest.mark.parametrize(
    ("part", "value"),
    [("train", math.nan), ("train", math.inf), ("train", 1e39), ("val", -math.inf)],
    ids=["train nan", "train inf", "train 1e39 (beyond float32)", "val -inf"],
)
def test_a_split_with_a_non_finite_point_is_refused_naming_the_file(workdir, part, value):
    workdir.write_split()
    damaged = workdir.root / f"data/split/fixed/{part}.parquet"
    damaged_point(damaged, value)
    line = error_line(workdir.run(*TRAIN))
    assert f"data/split/fixed/{part}.parquet" in line
    assert "NaN, infinite or too large" in line
    assert workdir.digests(TRAIN_OUTPUTS) == dict.fromkeys(TRAIN_OUTPUTS)
    assert workdir.leftovers() == []
    assert [run.status for run in workdir.runs()] == ["FAILED"]


def test_a_raw_file_with_a_nan_point_is_refused_by_split(workdir):
    workdir.succeed(*GENERATE)
    damaged_point(workdir.root / "data/raw/fixed.parquet", math.nan)
    line = error_line(workdir.run(*SPLIT))
    assert "data/raw/fixed.parquet" in line
    assert not any(path.startswith("data/split") for path in workdir.files())
    assert [run.status for run in workdir.runs()] == ["FINISHED", "FAILED"]


def test_a_learning_rate_that_cannot_learn_is_refused_naming_the_key(workdir):
    """1e30 trained to a finite loss of 1e29 (garbage), 3e38 crashed inside Adam: refused."""
    workdir.write_params(small_params(**{"models.gru.lr": 1e30}))
    workdir.write_split()
    result = workdir.run(*TRAIN)
    history = workdir.root / "data/history/gru/loss.csv"
    observed = history.read_text() if history.exists() else "no loss.csv"
    assert result.returncode == 1, f"exit {result.returncode}; loss.csv:\n{observed}"
    line = error_line(result)
    assert "models.gru.lr" in line
    assert workdir.digests(TRAIN_OUTPUTS) == dict.fromkeys(TRAIN_OUTPUTS)
    assert workdir.runs() == []  # refused before a run starts


def metrics_are_strict_json(path: Path) -> dict:
    import json

    def refuse(constant: str) -> None:
        raise ValueError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_the_logged_model_keeps_no_temporary_name(template):
    """Artifact paths are shared by every run; a staged directory's name is not."""
    models = [p for p in (template.root / "mlruns/models").rglob("*") if p.is_file()]
    assert models, "no logged model"
    staged = sorted({str(p.relative_to(template.root)) for p in models if ".staged-" in str(p)})
    assert staged == [], staged


def test_metrics_of_a_clean_run_are_finite_strict_json(template):
    metrics = metrics_are_strict_json(template.root / "data/metrics/gru.json")
    assert all(math.isfinite(value) for value in metrics.values())


def scaled_weights(directory: Path, value: float) -> None:
    """Set every weight of a checkpoint to `value` (finite weights, non-finite outputs)."""
    import torch

    path = directory / "weights.pt"
    state = torch.load(path, weights_only=True)
    torch.save({name: torch.full_like(tensor, value) for name, tensor in state.items()}, path)


@pytest.mark.parametrize("value", [math.nan, 3e38], ids=["nan weights", "huge weights"])
def test_a_model_whose_outputs_are_not_finite_writes_no_metrics(make_workdir, template, value):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    for path in EVALUATE_OUTPUTS:
        (workdir.root / path).unlink()
    scaled_weights(workdir.root / "data/models/gru", value)
    line = error_line(workdir.run(*EVALUATE))
    assert "data/models/gru/weights.pt" in line
    assert workdir.digests(EVALUATE_OUTPUTS) == dict.fromkeys(EVALUATE_OUTPUTS)
    assert [run.status for run in workdir.runs()] == ["FAILED"]


class CodeRunningPickle:
    """Unpickling this runs `touch <marker>`: weights-only loading must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def break_checkpoint(directory: Path, damage: str, marker: Path) -> str:
    """Damage a checkpoint in `directory`; the file the message must name."""
    import pickle

    import torch

    weights, config = directory / "weights.pt", directory / "config.json"
    if damage == "weights missing":
        weights.unlink()
    elif damage == "weights garbage":
        weights.write_bytes(random.Random(10).randbytes(4096))
    elif damage == "weights a bare pickle STOP":
        weights.write_bytes(b".")
    elif damage == "weights empty":
        weights.write_bytes(b"")
    elif damage == "code-running pickle (torch archive)":
        torch.save({"weights": CodeRunningPickle(marker)}, weights)
    elif damage == "code-running pickle (plain)":
        weights.write_bytes(pickle.dumps(CodeRunningPickle(marker)))
    elif damage == "weights of another model":
        torch.save({"other.weight": torch.zeros(3, 3)}, weights)
    elif damage == "config garbage":
        config.write_text("{not json")
        return "config.json"
    elif damage == "config a list":
        config.write_text("[1, 2]\n")
        return "config.json"
    elif damage == "config unknown arch":
        config.write_text(config.read_text().replace('"gru"', '"transformer"'))
        return "config.json"
    elif damage == "config wider than the weights":
        config.write_text(config.read_text().replace('"hidden_dim": 2', '"hidden_dim": 3'))
    elif damage == "config huge hidden_dim":
        config.write_text(config.read_text().replace('"hidden_dim": 2', '"hidden_dim": 1000000'))
        return "config.json"
    elif damage == "config not UTF-8":
        config.write_bytes(b"\xff\xfe{}")
        return "config.json"
    return "weights.pt"


CHECKPOINT_DAMAGE = (
    "weights missing",
    "weights garbage",
    "weights a bare pickle STOP",
    "weights empty",
    "code-running pickle (torch archive)",
    "code-running pickle (plain)",
    "weights of another model",
    "config garbage",
    "config a list",
    "config unknown arch",
    "config wider than the weights",
    "config huge hidden_dim",
    "config not UTF-8",
)


@pytest.mark.parametrize("damage", CHECKPOINT_DAMAGE)
def test_a_bad_checkpoint_is_one_line_naming_the_file(make_workdir, template, damage):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    for path in EVALUATE_OUTPUTS:
        (workdir.root / path).unlink()
    marker = workdir.root / "pickle-ran-code"
    named = break_checkpoint(workdir.root / "data/models/gru", damage, marker)
    # 4 GiB: a stage that tries to build a model of a million hidden units fails fast.
    result = workdir.run(*EVALUATE, limits={resource.RLIMIT_AS: 4 << 30})
    line = error_line(result)
    assert f"data/models/gru/{named}" in line, line
    assert not marker.exists(), "loading the checkpoint ran its code"
    assert workdir.digests(EVALUATE_OUTPUTS) == dict.fromkeys(EVALUATE_OUTPUTS)
    assert workdir.leftovers() == []
    assert [run.status for run in workdir.runs()] in ([], ["FAILED"])


def empty_squares_file(path: Path) -> None:
    pq.write_table(pq.read_table(path).slice(0, 0), path)


@pytest.mark.parametrize(
    ("emptied", "args", "outputs"),
    [
        ("data/split/fixed/train.parquet", TRAIN, TRAIN_OUTPUTS),
        ("data/split/fixed/val.parquet", TRAIN, TRAIN_OUTPUTS),
        ("data/split/fixed/test.parquet", EVALUATE, EVALUATE_OUTPUTS),
    ],
    ids=["train", "val", "test"],
)
def test_a_split_with_no_rows_is_one_line_naming_it(make_workdir, template, emptied, args, outputs):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    for path in outputs:
        (workdir.root / path).unlink()
    empty_squares_file(workdir.root / emptied)
    line = error_line(workdir.run(*args))
    assert emptied in line, line
    assert workdir.digests(outputs) == dict.fromkeys(outputs)


def test_a_raw_file_too_small_to_split_is_refused_naming_it(workdir):
    squares = generate_squares(3, 0.1, 13, False)
    write_squares(squares, workdir.root / "data/raw/fixed.parquet")
    result = workdir.run(*SPLIT)
    line = error_line(result)
    assert "data/raw/fixed.parquet" in line, line
    assert not any(path.startswith("data/split") for path in workdir.files())


HISTORY_DAMAGE = {
    "garbage": b"this is not a csv\n\x01\x02",
    "wrong header": b"a,b,c\n1,0.5,0.5\n",
    "empty": b"",
    "a nan loss": b"epoch,train,val\n1,nan,0.5\n2,0.4,0.5\n",
    "a missing column": b"epoch,train,val\n1,0.5\n",
    "not UTF-8": b"epoch,train,val\n1,0.5,\xff\n",
}


@pytest.mark.parametrize("damage", HISTORY_DAMAGE)
def test_a_malformed_history_file_is_one_line_naming_it(make_workdir, template, damage):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    shutil.rmtree(workdir.root / "data/plots/gru")
    (workdir.root / "data/history/gru/loss.csv").write_bytes(HISTORY_DAMAGE[damage])
    line = error_line(workdir.run(*PLOT))
    assert "data/history/gru/loss.csv" in line, line
    assert not (workdir.root / "data/plots/gru").exists()
    assert workdir.leftovers() == []


METRICS_DAMAGE = {
    "not JSON": "{",
    "a list": "[1, 2]",
    "a missing key": '{"test_accuracy": 0.5}',
    "a NaN value": None,  # the template's metrics with test_loss NaN
    "not UTF-8": b"\xff\xfe",
}


@pytest.mark.parametrize("damage", METRICS_DAMAGE)
def test_a_malformed_metrics_file_is_one_line_naming_it(make_workdir, template, damage):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    metrics = workdir.root / "data/metrics/gru.json"
    content = METRICS_DAMAGE[damage]
    if content is None:
        text = metrics.read_text()
        loss = metrics_are_strict_json(metrics)["test_loss"]
        content = text.replace(f'"test_loss": {loss!r}', '"test_loss": NaN')
        assert content != text
    if isinstance(content, str):
        content = content.encode()
    metrics.write_bytes(content)
    line = error_line(workdir.run(*REPORT))
    assert "data/metrics/gru.json" in line, line
    assert not (workdir.root / "data/report").exists()
