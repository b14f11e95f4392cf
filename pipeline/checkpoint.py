"""A trained model on disk: `config.json` (its architecture) and `weights.pt` (its state dict).

Weights are loaded with `torch.load(..., weights_only=True)`: a checkpoint holds
tensors, never code. MLflow loads a logged model through `_load_pyfunc`, so the
model it returns predicts from rows in the dataset schema, exactly as here.
"""

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import nn

from pipeline.files import atomic_output, write_json
from pipeline.models import build_model
from pipeline.parquet_io import SCHEMA, from_table
from pipeline.training import LabelledSequences, predict_proba

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"


@dataclass(frozen=True)
class Architecture:
    """What it takes to rebuild a model before loading its weights."""

    arch: str
    hidden_dim: int
    num_layers: int
    bidirectional: bool
    packed: bool

    def build(self) -> nn.Module:
        """A model of this architecture (its initial weights are to be replaced)."""
        return build_model(
            self.arch, self.hidden_dim, self.num_layers, self.bidirectional, self.packed, seed=0
        )


def save_checkpoint(model: nn.Module, architecture: Architecture, directory: Path | str) -> None:
    """Write `config.json` and `weights.pt` into `directory`, each atomically."""
    directory = Path(directory)
    # Saved through a buffer: torch names the archive's records after the file it
    # writes to, and a buffer gives the same name, hence the same bytes, every time.
    buffer = io.BytesIO()
    torch.save({name: tensor.cpu() for name, tensor in model.state_dict().items()}, buffer)
    with atomic_output(directory / WEIGHTS_FILE) as temporary:
        temporary.write_bytes(buffer.getvalue())
    write_json(directory / CONFIG_FILE, asdict(architecture))


def load_checkpoint(directory: Path | str) -> nn.Module:
    """The model saved in `directory`, on the CPU, in evaluation mode."""
    directory = Path(directory)
    architecture = Architecture(**json.loads((directory / CONFIG_FILE).read_text()))
    model = architecture.build()
    state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


class SquareClassifier:
    """A trained model that scores rows of the dataset schema (a pandas DataFrame)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def predict(self, model_input: pd.DataFrame) -> np.ndarray:
        """The probability (N,) that each row's square is drawn clockwise."""
        table = pa.Table.from_pandas(model_input[SCHEMA.names], schema=SCHEMA, preserve_index=False)
        squares = from_table(table, source="model input")
        return predict_proba(self.model, LabelledSequences.from_squares(squares)).numpy()


def _load_pyfunc(data_path: str) -> SquareClassifier:
    """MLflow's hook: the pyfunc model for a logged checkpoint directory."""
    return SquareClassifier(load_checkpoint(data_path))
