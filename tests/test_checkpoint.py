"""Trained models on disk: weights only, loaded back to the same weights, damage named."""

import pickle

import pytest
import torch

from pipeline.library.errors import InputError
from pipeline.library.models import build_model, load_checkpoint, save_checkpoint
from pipeline.library.settings import ModelSpec

PACKED_LSTM = ModelSpec("lstm", 2, 1, bidirectional=True, packed=True)


def trained_like(architecture: ModelSpec, seed: int = 3):
    """A model with distinct weights (no training needed to tell copies apart)."""
    return build_model(architecture, seed=seed)


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
    with pytest.raises(InputError, match=r"weights\.pt: refused: not a weights-only checkpoint"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "config.json").write_text("[1, 2]"), r"config\.json: not a model config"),
        (lambda d: (d / "config.json").unlink(), r"config\.json: file not found"),
        (
            lambda d: (d / "weights.pt").write_bytes(b"PK\x03\x04 broken"),
            r"weights\.pt: not a checkpoint",
        ),
        (
            lambda d: (d / "config.json").write_text(
                '{"arch": "gru", "hidden_dim": 2, "num_layers": 1, "bidirectional": false, "packed": false}'
            ),
            r"weights\.pt: holds 101 numbers, but .*config\.json describes a model of 39",
        ),
    ],
)
def test_a_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, damage, message):
    save_checkpoint(trained_like(PACKED_LSTM), PACKED_LSTM, tmp_path)
    damage(tmp_path)
    with pytest.raises(InputError, match=message) as raised:
        load_checkpoint(tmp_path)
    assert "\n" not in str(raised.value)
