"""Padding beside packing: the numbers padding.png draws, its bytes, and the padding stage.

The picture follows one short test square through a packed variant and its padded twin; its
numbers are checked against the models themselves, never against the words it writes.
"""

import numpy as np
import pytest
import torch
from support import PADDING, SHIPPED, error_line, small_params

from pipeline.library.models import build_model
from pipeline.library.settings import ModelParams, ModelSpec
from pipeline.library.squares import generate_squares
from pipeline.library.training import LabelledSequences, predict_proba
from pipeline.pictures.from_weights import padding_space
from pipeline.pictures.padding_space import padding_pairs
from pipeline.pictures.plots import plot_padding

TEST = generate_squares(60, noise=0.1, seed=17, variable_len=True)


def twins(seed: int = 21) -> tuple[tuple[str, torch.nn.Module], tuple[str, torch.nn.Module]]:
    """A packed bidirectional LSTM and its padded twin, with the same weights."""
    packed = build_model(ModelSpec("lstm", 2, 1, bidirectional=True, packed=True), seed=seed)
    padded = build_model(ModelSpec("lstm", 2, 1, bidirectional=True, packed=False), seed=seed)
    padded.load_state_dict(packed.state_dict())
    return ("packed", packed.eval()), ("padded", padded.eval())


def accuracy(model: torch.nn.Module, indices: np.ndarray) -> float:
    squares = TEST.take(indices)
    predicted = predict_proba(model, LabelledSequences.from_squares(squares)).numpy() > 0.5
    return float(np.mean(predicted == squares.labels.astype(bool)))


def test_the_padded_state_goes_on_through_the_zeros_where_the_packed_one_stops():
    space = padding_space(*twins(), TEST)

    length, padded_length = space.length, space.padded_length
    assert length == TEST.lengths.min() < padded_length
    assert np.array_equal(space.points, TEST.points[TEST.seq_ids == space.seq_id][0, :length])
    packed_trace, padded_trace = space.variants
    for direction in packed_trace.directions:  # packed: the real points only
        assert len(direction.steps) == length and not direction.padding.any()
        assert direction.moved_by_padding == 0
    forward, backward = padded_trace.directions
    assert np.array_equal(forward.padding, np.arange(padded_length) >= length)
    assert np.array_equal(backward.padding, np.arange(padded_length)[::-1] >= length)
    # The same weights: forward, both read the same states up to the last real point...
    np.testing.assert_array_equal(forward.states[: length + 1], packed_trace.directions[0].states)
    # ...then the zeros move the padded one on, and it is read there, at the padded end.
    assert forward.moved_by_padding > 0.01 and backward.moved_by_padding > 0.01
    assert (forward.read, packed_trace.directions[0].read) == (padded_length, length)
    assert backward.read == packed_trace.directions[1].read == 1  # its first step read


def test_the_read_states_and_accuracies_are_the_models_own():
    pair = twins()
    space = padding_space(*pair, TEST)
    square = int(np.flatnonzero(TEST.seq_ids == space.seq_id)[0])
    short = np.flatnonzero(TEST.lengths < TEST.points.shape[1])

    assert space.short_count == len(short) and space.test_count == len(TEST)
    for (_, model), trace in zip(pair, space.variants, strict=True):
        read = np.concatenate(
            [d.plane.lift(d.states[d.read]) for d in trace.directions]
        )  # what the classifier reads, back in the hidden space
        with torch.no_grad():
            logit = model.classifier(torch.as_tensor(read, dtype=torch.float32))
        probability = float(predict_proba(model, LabelledSequences.from_squares(TEST))[square])
        assert float(torch.sigmoid(logit)) == pytest.approx(probability, abs=1e-6)
        assert trace.probability == probability
        assert trace.accuracy == accuracy(model, np.arange(len(TEST)))
        assert trace.short_accuracy == accuracy(model, short)


def test_the_picture_has_the_same_bytes_from_the_same_models_and_others_from_others(tmp_path):
    first = plot_padding(*twins(), TEST, tmp_path / "first").read_bytes()
    again = plot_padding(*twins(), TEST, tmp_path / "again").read_bytes()
    other = plot_padding(*twins(seed=5), TEST, tmp_path / "other").read_bytes()

    assert first == again
    assert first != other


def test_a_test_split_without_short_squares_is_refused():
    fixed = generate_squares(20, noise=0.1, seed=13, variable_len=False)
    with pytest.raises(ValueError, match="no square shorter"):
        padding_space(*twins(), fixed)


def test_the_padded_twin_is_the_packed_variant_but_for_packed():
    packed = ModelParams(**SHIPPED["models"]["lstm_packed"])
    twin = packed.model_copy(update={"packed": False})
    other_seed = twin.model_copy(update={"seed": 5})

    assert padding_pairs({"p": packed, "t": twin, "o": other_seed}) == [("p", "t")]
    assert padding_pairs({"p": packed, "o": other_seed}) == []
    assert padding_pairs(
        {name: ModelParams(**values) for name, values in SHIPPED["models"].items()}
    ) == [("lstm_packed", "lstm_padded")]


def variable_params() -> dict:
    """Small params with a packed LSTM and its padded twin on variable-length squares."""
    params = small_params()
    variable = {**SHIPPED["datasets"]["variable"], "n": 96}
    packed = {**SHIPPED["models"]["lstm_packed"], "epochs": 2}
    return {
        **params,
        "datasets": {"variable": variable},
        "models": {"p": packed, "t": {**packed, "packed": False}},
    }


def test_the_stage_draws_each_pair_and_refuses_a_twin_trained_otherwise(workdir):
    workdir.write_params(variable_params())
    workdir.succeed("generate", "variable", "data/raw/variable.parquet")
    workdir.succeed("split", "variable", "data/raw/variable.parquet", "data/split/variable")
    for name in ("p", "t"):
        workdir.succeed(
            "train", name, "data/split/variable", f"data/models/{name}", f"data/history/{name}"
        )

    workdir.succeed(*PADDING)
    assert {f for f in workdir.files() if f.startswith("data/padding/")} == {
        "data/padding/t/padding.png"
    }

    # The twin's folder now holds the packed model: not what params.yaml describes.
    for file in ("weights.pt", "config.json"):
        (workdir.root / "data/models/t" / file).write_bytes(
            (workdir.root / "data/models/p" / file).read_bytes()
        )
    before = (workdir.root / "data/padding/t/padding.png").read_bytes()
    line = error_line(workdir.run(*PADDING))
    assert "data/models/t/config.json" in line
    assert (workdir.root / "data/padding/t/padding.png").read_bytes() == before
