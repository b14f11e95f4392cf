"""A trained model on disk: `config.json` (its ModelSpec) and `weights.pt` (its state dict).

Weights are loaded with `torch.load(..., weights_only=True)`: a checkpoint holds
tensors, never code.
"""

import io
import json
import pickle
import warnings
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import InputError
from pipeline.files import atomic_output, write_json
from pipeline.models import build_model
from pipeline.spec import ModelSpec, SpecError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"


def save_checkpoint(model: nn.Module, spec: ModelSpec, directory: Path | str) -> None:
    """Write `config.json` and `weights.pt` into `directory`, each atomically."""
    directory = Path(directory)
    # Saved through a buffer: torch names the archive's records after the file it
    # writes to, and a buffer gives the same name, hence the same bytes, every time.
    buffer = io.BytesIO()
    torch.save({name: tensor.cpu() for name, tensor in model.state_dict().items()}, buffer)
    with atomic_output(directory / WEIGHTS_FILE) as temporary:
        temporary.write_bytes(buffer.getvalue())
    write_json(directory / CONFIG_FILE, spec.to_dict())


def load_checkpoint(directory: Path | str) -> nn.Module:
    """The model saved in `directory`, on the CPU, in evaluation mode.

    Raises InputError, one line naming the file, for anything but a checkpoint we wrote.
    """
    directory = Path(directory)
    config, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    try:
        spec = ModelSpec.from_dict(json.loads(config.read_text()))
    except FileNotFoundError:
        raise InputError(f"{config}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError):
        raise InputError(f"{config}: not a model config (JSON object of a ModelSpec)") from None
    except SpecError as error:
        raise InputError(f"{config}: not a model config ({error.problem})") from None
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it will refuse
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{weights}: file not found") from None
    except pickle.UnpicklingError:
        raise InputError(
            f"{weights}: refused: not a weights-only checkpoint (it holds code)"
        ) from None
    except Exception as error:
        raise InputError(f"{weights}: not a checkpoint ({_first_line(error)})") from None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise InputError(f"{weights}: not a state dict of tensors")
    numbers = sum(tensor.numel() for tensor in state.values())
    if numbers != spec.parameter_count():  # before building: a bad config could ask for TBs
        raise InputError(
            f"{weights}: holds {numbers} numbers, but {config} describes a model of "
            f"{spec.parameter_count()}"
        )
    model = build_model(spec, seed=0)  # its initial weights are replaced below
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise InputError(f"{weights}: not weights for {config} ({_first_line(error)})") from None
    if not all(torch.isfinite(tensor).all() for tensor in model.state_dict().values()):
        raise InputError(f"{weights}: holds NaN or infinite weights")
    return model.eval()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:120] if text else type(error).__name__
