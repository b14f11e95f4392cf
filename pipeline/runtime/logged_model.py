"""The logged MLflow model: a trained checkpoint that scores rows of the Parquet schema.

MLflow loads a logged model through `_load_pyfunc` (this module is its `loader_module`),
so `mlflow.pyfunc.load_model(...).predict(dataframe)` gives exactly the probabilities the
checkpoint gives. No stage reads this module: it shapes no DVC output.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
from torch import nn

from pipeline.library.models import load_checkpoint
from pipeline.library.squares import SCHEMA, from_table
from pipeline.library.training import LabelledSequences, predict_proba


class SquareClassifier:
    """A trained model that scores rows of the dataset schema (a pandas DataFrame)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def predict(self, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        """The probability (N,) that each row's square is drawn clockwise."""
        del params  # the model takes no inference params
        table = pa.Table.from_pandas(model_input[SCHEMA.names], schema=SCHEMA, preserve_index=False)
        squares = from_table(table, source="model input")
        return predict_proba(self.model, LabelledSequences.from_squares(squares)).numpy()


def load_model_dir(directory: str) -> SquareClassifier:
    """The model in a checkpoint directory, ready to score DataFrames."""
    return SquareClassifier(load_checkpoint(directory))


def _load_pyfunc(data_path: str) -> SquareClassifier:
    """MLflow's hook: the pyfunc model for a logged checkpoint directory."""
    return load_model_dir(data_path)
