import io

import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

from pipeline.library.models import (
    ConvClassifier,
    RecurrentClassifier,
    build_model,
    count_parameters,
)
from pipeline.library.settings import ModelSpec

TOLERANCE = {"rtol": 0, "atol": 1e-6}

# Three sequences of 4, 2 and 3 points, zero-padded to (3, 4, 2).
SEQUENCES = torch.tensor(
    [
        [[-1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [1.0, -1.0]],
        [[1.0, 1.0], [-1.0, 1.0], [0.0, 0.0], [0.0, 0.0]],
        [[1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]],
    ]
)
LENGTHS = torch.tensor([4, 2, 3])


def state_dict_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
@torch.no_grad()
def test_packed_output_equals_each_sequence_alone(arch: str) -> None:
    model = build_model(ModelSpec(arch, 3, 2, bidirectional=True, packed=True), seed=0).eval()

    batch_logits = model(SEQUENCES, LENGTHS)

    for sequence, length, logit in zip(SEQUENCES, LENGTHS, batch_logits, strict=True):
        alone = sequence[None, :length]  # (1, length, F): no padding at all
        torch.testing.assert_close(model(alone, length[None]), logit[None], **TOLERANCE)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
@torch.no_grad()
def test_a_padded_model_reads_the_zeros_where_the_packed_one_stops(
    arch: str, bidirectional: bool
) -> None:
    packed_model = build_model(ModelSpec(arch, 3, 2, bidirectional, packed=True), seed=0).eval()
    padded_model = build_model(ModelSpec(arch, 3, 2, bidirectional, packed=False), seed=1).eval()
    padded_model.load_state_dict(packed_model.state_dict())  # the same weights

    padded_logits = padded_model(SEQUENCES, LENGTHS)
    packed_logits = packed_model(SEQUENCES, LENGTHS)

    full = SEQUENCES.shape[1] == LENGTHS
    torch.testing.assert_close(padded_logits[full], packed_logits[full], **TOLERANCE)
    assert ((padded_logits[~full] - packed_logits[~full]).abs() > 1e-4).all()
    # Padded, a short sequence is read as if its zeros were points: packed over every step.
    every_step = torch.full_like(LENGTHS, SEQUENCES.shape[1])
    torch.testing.assert_close(padded_logits, packed_model(SEQUENCES, every_step), **TOLERANCE)


@torch.no_grad()
def test_model_accepts_a_packed_sequence_like_the_books_collate() -> None:
    model = build_model(ModelSpec("lstm", 2, 1, bidirectional=True, packed=True), seed=0).eval()
    unpadded = [sequence[:length] for sequence, length in zip(SEQUENCES, LENGTHS, strict=True)]

    logits = model(pack_sequence(unpadded, enforce_sorted=False))

    torch.testing.assert_close(logits, model(SEQUENCES, LENGTHS), **TOLERANCE)


def test_model_returns_one_logit_per_sequence() -> None:
    model = build_model(ModelSpec("gru", 2, 1, bidirectional=False, packed=False), seed=0)

    assert model(SEQUENCES, LENGTHS).shape == (3, 1)


def test_conv_model_is_the_chapters_conv1d_then_linear() -> None:
    model = build_model(ModelSpec("conv1d", 1, 1, bidirectional=False, packed=False), seed=0)

    assert isinstance(model, ConvClassifier)
    assert model.conv.weight.shape == (1, 2, 2)  # 1 filter over 2 features x 2 steps
    assert model.classifier.weight.shape == (1, 3)  # 3 pairs of consecutive points
    assert count_parameters(model) == 4 + 1 + 3 + 1
    assert model(SEQUENCES, torch.full((3,), 4)).shape == (3, 1)


def test_conv_model_with_several_filters_flattens_filters_and_positions() -> None:
    model = ConvClassifier(channels=5)

    assert model.classifier.in_features == 5 * 3
    assert model(SEQUENCES, None).shape == (3, 1)


def test_conv_model_refuses_variable_lengths() -> None:
    model = build_model(ModelSpec("conv1d", 1, 1, bidirectional=False, packed=False), seed=0)

    with pytest.raises(ValueError, match="4 points"):
        model(SEQUENCES, LENGTHS)


def test_recurrent_layer_is_initialised_before_the_classifier() -> None:
    torch.manual_seed(21)
    expected_recurrent = torch.nn.GRU(2, 2, batch_first=True)
    expected_linear = torch.nn.Linear(2, 1)

    model = build_model(ModelSpec("gru", 2, 1, bidirectional=False, packed=False), seed=21)

    assert isinstance(model, RecurrentClassifier)
    for expected, actual in zip(
        [*expected_recurrent.parameters(), *expected_linear.parameters()],
        model.parameters(),
        strict=True,
    ):
        assert torch.equal(expected, actual)


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm", "conv1d"])
def test_same_seed_gives_identical_weights_and_another_seed_does_not(arch: str) -> None:
    recurrent = arch != "conv1d"
    settings = {"hidden_dim": 2, "num_layers": 1, "bidirectional": recurrent, "packed": recurrent}

    first, second = (
        build_model(ModelSpec(arch, **settings), seed=7),
        build_model(ModelSpec(arch, **settings), seed=7),
    )
    other = build_model(ModelSpec(arch, **settings), seed=8)

    assert state_dict_bytes(first) == state_dict_bytes(second)
    assert state_dict_bytes(first) != state_dict_bytes(other)


def test_build_model_leaves_the_global_generator_alone() -> None:
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)

    build_model(ModelSpec("lstm", 2, 1, bidirectional=False, packed=False), seed=21)

    assert torch.equal(torch.rand(3), expected)


def test_state_dict_round_trips_through_weights_only_load() -> None:
    model = build_model(ModelSpec("lstm", 2, 2, bidirectional=True, packed=True), seed=1)
    loaded = build_model(ModelSpec("lstm", 2, 2, bidirectional=True, packed=True), seed=2)

    loaded.load_state_dict(torch.load(io.BytesIO(state_dict_bytes(model)), weights_only=True))

    with torch.no_grad():
        assert torch.equal(loaded(SEQUENCES, LENGTHS), model(SEQUENCES, LENGTHS))


def test_count_parameters_of_a_one_layer_rnn() -> None:
    model = build_model(ModelSpec("rnn", 2, 1, bidirectional=False, packed=False), seed=0)

    # W_ih (2x2) + W_hh (2x2) + two biases (2 each) + linear (2 weights + 1 bias)
    assert count_parameters(model) == 4 + 4 + 2 + 2 + 2 + 1


@pytest.mark.parametrize(
    ("arch", "num_layers", "bidirectional", "match"),
    [
        ("transformer", 1, False, "arch must be one of"),
        ("conv1d", 2, False, "num_layers must be 1 for arch conv1d"),
        ("conv1d", 1, True, "bidirectional must be false for arch conv1d"),
    ],
)
def test_build_model_refuses_unknown_or_unsupported_settings(
    arch: str, num_layers: int, bidirectional: bool, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        build_model(ModelSpec(arch, 2, num_layers, bidirectional, packed=False), seed=0)


def test_padded_input_without_lengths_is_refused() -> None:
    model = build_model(ModelSpec("rnn", 2, 1, bidirectional=False, packed=False), seed=0)

    with pytest.raises(ValueError, match="lengths"):
        model(SEQUENCES)
