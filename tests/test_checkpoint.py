"""Trained models on disk and in MLflow: weights only, loaded back to the same predictions."""

import pickle

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import tracking
from pipeline.checkpoint import Architecture, load_checkpoint, save_checkpoint
from pipeline.models import build_model
from pipeline.parquet_io import write_squares
from pipeline.squares import generate_squares
from pipeline.training import LabelledSequences, predict_proba

PACKED_LSTM = Architecture("lstm", 2, 1, bidirectional=True, packed=True)


def trained_like(architecture: Architecture, seed: int = 3):
    """A model with distinct weights (no training needed to tell copies apart)."""
    return build_model(**vars(architecture), seed=seed)


def test_checkpoint_round_trip_gives_the_same_weights_and_the_same_bytes(tmp_path):
    model = trained_like(PACKED_LSTM)
    save_checkpoint(model, PACKED_LSTM, tmp_path / "a")
    save_checkpoint(model, PACKED_LSTM, tmp_path / "b")
    assert (tmp_path / "a/weights.pt").read_bytes() == (tmp_path / "b/weights.pt").read_bytes()
    loaded = load_checkpoint(tmp_path / "a")
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert not loaded.training


def test_a_checkpoint_holding_code_is_refused(tmp_path):
    save_checkpoint(trained_like(PACKED_LSTM), PACKED_LSTM, tmp_path)
    # A pickle that would run a function when loaded: weights_only must refuse it.
    (tmp_path / "weights.pt").write_bytes(pickle.dumps(print, protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(tmp_path)


def test_the_mlflow_model_predicts_exactly_what_the_checkpoint_predicts(mlflow_store, tmp_path):
    client, _ = mlflow_store
    model = trained_like(PACKED_LSTM)
    save_checkpoint(model, PACKED_LSTM, tmp_path / "model")
    squares = generate_squares(40, 0.1, seed=19, variable_len=True)
    write_squares(squares, tmp_path / "test.parquet")

    with tracking.stage_run("train@lstm_packed", {}, [], []) as run:
        run.log_model("lstm_packed", tmp_path / "model", vars(PACKED_LSTM))
    model_id = client.get_run(run.run_id).data.tags["model_id"]

    served = mlflow.pyfunc.load_model(f"models:/{model_id}")
    predicted = served.predict(pd.read_parquet(tmp_path / "test.parquet"))
    expected = predict_proba(model, LabelledSequences.from_squares(squares)).numpy()
    assert np.array_equal(predicted, expected)
