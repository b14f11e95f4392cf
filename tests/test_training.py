import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence
from torch.utils.data import DataLoader, TensorDataset

from pipeline.library.models import build_model
from pipeline.library.settings import ModelSpec
from pipeline.library.squares import Squares, generate_squares
from pipeline.library.training import (
    EpochStats,
    LabelledSequences,
    collate_for,
    collate_packed,
    collate_padded,
    draw_loader_seed,
    evaluate,
    predict_proba,
    resolve_device,
    shuffled_order,
    train,
)


def squares_data(n: int, seed: int, variable_len: bool) -> LabelledSequences:
    squares = generate_squares(n, noise=0.1, seed=seed, variable_len=variable_len)
    return LabelledSequences.from_squares(squares)


class FixedLogits(nn.Module):
    """A model that answers the same logits (N, 1) whatever it is given."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.tensor(logits).view(-1, 1)

    def forward(self, sequences: Tensor, lengths: Tensor) -> Tensor:
        assert len(sequences) == len(lengths) == len(self.logits)
        return self.logits


def dataloader_batches(n: int, batch_size: int, epochs: int, seed: int, validate: bool) -> list:
    """Batch indices of a real DataLoader(shuffle=True) after torch.manual_seed(seed)."""
    train_loader = DataLoader(TensorDataset(torch.arange(n)), batch_size=batch_size, shuffle=True)
    validation_loader = DataLoader(TensorDataset(torch.arange(7)), batch_size=batch_size)
    torch.manual_seed(seed)
    batches = []
    for _ in range(epochs):
        batches += [batch.tolist() for (batch,) in train_loader]
        if validate:
            for _ in validation_loader:
                pass
    return batches


@pytest.mark.parametrize("validate", [False, True])
def test_shuffled_order_gives_the_dataloaders_batches_epoch_after_epoch(validate: bool) -> None:
    expected = dataloader_batches(n=50, batch_size=16, epochs=4, seed=42, validate=validate)

    generator = torch.Generator().manual_seed(42)
    batches = []
    for _ in range(4):
        batches += [batch.tolist() for batch in shuffled_order(generator, 50).split(16)]
        if validate:
            draw_loader_seed(generator)

    assert batches == expected


def test_loader_seeds_from_own_generator_equal_the_global_generators() -> None:
    generator = torch.Generator().manual_seed(42)
    torch.manual_seed(42)

    ours = [draw_loader_seed(generator) for _ in range(3)]

    assert ours == [int(torch.empty((), dtype=torch.int64).random_()) for _ in range(3)]


def test_packing_an_indexed_padded_batch_equals_packing_the_list_of_sequences() -> None:
    data = squares_data(40, seed=13, variable_len=True)
    batch = torch.tensor([5, 17, 3, 30, 8, 22, 11])

    ours = pack_padded_sequence(
        data.features[batch], data.lengths[batch], batch_first=True, enforce_sorted=False
    )

    unpadded = [data.features[i, : data.lengths[i]] for i in batch]
    books = pack_sequence(unpadded, enforce_sorted=False)
    for our_field, book_field in zip(ours, books, strict=True):
        assert torch.equal(our_field, book_field)


def test_the_padded_collate_pads_with_zeros_to_the_batchs_longest_and_keeps_the_lengths() -> None:
    data = squares_data(40, seed=13, variable_len=True)
    for wanted in ([2, 3], [2], [2, 3, 4]):  # the lengths a batch holds
        batch = torch.cat([torch.nonzero(data.lengths == n)[:3, 0] for n in wanted])

        (features, lengths), labels = collate_padded(data, batch)

        assert torch.equal(lengths, data.lengths[batch])
        assert torch.equal(labels, data.labels[batch])
        assert features.shape == (len(batch), max(wanted), 2)
        for row, index in enumerate(batch):
            length = int(data.lengths[index])
            assert torch.equal(features[row, :length], data.features[index, :length])
            assert not features[row, :length].eq(0).all(dim=1).any()  # real points are not zero
            assert features[row, length:].eq(0).all()  # zeros after the end


def test_the_packed_collate_packs_like_the_chapters_pack_collate() -> None:
    data = squares_data(40, seed=13, variable_len=True)
    batch = torch.tensor([5, 17, 3, 30, 8, 22, 11])

    (packed,), labels = collate_packed(data, batch)

    books = pack_sequence(
        [data.features[i, : data.lengths[i]] for i in batch], enforce_sorted=False
    )
    for our_field, book_field in zip(packed, books, strict=True):
        assert torch.equal(our_field, book_field)
    assert torch.equal(labels, data.labels[batch])


def test_each_model_gets_the_collate_of_its_path() -> None:
    def model(arch: str, bidirectional: bool, packed: bool) -> nn.Module:
        return build_model(ModelSpec(arch, 2, 1, bidirectional, packed), seed=0)

    assert collate_for(model("lstm", True, True)) is collate_packed
    assert collate_for(model("lstm", True, False)) is collate_padded
    assert collate_for(model("conv1d", False, False)) is collate_padded


def test_a_padded_model_trains_on_batches_padded_to_their_own_longest() -> None:
    """Sequences of 2 and 3 points, stored 4 wide: a padded model reads one zero after a
    2-point square, not two, exactly as if they had been stored 3 wide."""
    squares = generate_squares(64, noise=0.1, seed=13, variable_len=True)
    short = squares.take(np.flatnonzero(squares.lengths < 4))
    stored_wide = LabelledSequences.from_squares(short)
    stored_narrow = LabelledSequences.from_squares(
        Squares(short.seq_ids, short.points[:, :3], short.lengths, short.labels)
    )
    weights = []
    for data in (stored_wide, stored_narrow):
        model = build_model(ModelSpec("gru", 2, 1, bidirectional=True, packed=False), seed=21)
        train(model, data, epochs=2, batch_size=8, learning_rate=0.01, shuffle_seed=42)
        weights.append(model.state_dict())

    for name, weight in weights[0].items():
        assert torch.equal(weight, weights[1][name]), name


def test_from_squares_converts_like_the_chapter() -> None:
    squares = generate_squares(8, noise=0.1, seed=13, variable_len=True)

    data = LabelledSequences.from_squares(squares)

    assert torch.equal(data.features, torch.as_tensor(squares.points).float())
    assert data.features.dtype == torch.float32
    assert data.lengths.dtype == torch.int64
    assert data.labels.shape == (8, 1)
    assert data.labels.dtype == torch.float32
    assert len(data) == 8


def test_evaluate_counts_rows_as_true_labels_and_columns_as_predictions() -> None:
    data = LabelledSequences.from_squares(
        Squares(np.arange(5), np.zeros((5, 4, 2)), np.full(5, 4), np.array([0, 0, 1, 1, 1]))
    )
    model = FixedLogits([-1.0, 2.0, 3.0, -4.0, 5.0])  # predicts 0, 1, 1, 0, 1

    evaluation = evaluate(model, data)

    assert evaluation.confusion.tolist() == [[1, 1], [1, 2]]
    assert evaluation.accuracy == pytest.approx(3 / 5)
    expected_loss = nn.functional.binary_cross_entropy_with_logits(model.logits, data.labels).item()
    assert evaluation.loss == pytest.approx(expected_loss)


def test_predict_proba_is_the_sigmoid_of_the_logits() -> None:
    data = LabelledSequences.from_squares(
        Squares(np.arange(2), np.zeros((2, 4, 2)), np.full(2, 4), np.array([0, 1]))
    )

    probabilities = predict_proba(FixedLogits([0.0, 2.0]), data)

    torch.testing.assert_close(probabilities, torch.sigmoid(torch.tensor([0.0, 2.0])))


def train_bidirectional_lstm() -> tuple[nn.Module, list[EpochStats]]:
    model = build_model(ModelSpec("lstm", 2, 1, bidirectional=True, packed=True), seed=21)
    history = train(
        model,
        squares_data(64, seed=13, variable_len=True),
        epochs=3,
        batch_size=16,
        learning_rate=0.01,
        shuffle_seed=42,
        validation_data=squares_data(32, seed=19, variable_len=True),
    )
    return model, history


def test_training_twice_gives_identical_weights_and_stats() -> None:
    first_model, first_history = train_bidirectional_lstm()
    second_model, second_history = train_bidirectional_lstm()

    first_weights, second_weights = first_model.state_dict(), second_model.state_dict()
    assert first_weights.keys() == second_weights.keys()
    for name, weight in first_weights.items():
        assert torch.equal(weight, second_weights[name]), name
    assert first_history == second_history


def test_training_leaves_the_global_generator_alone() -> None:
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)

    train_bidirectional_lstm()

    assert torch.equal(torch.rand(3), expected)


def test_pass_loss_is_a_mean_over_samples_not_over_batches() -> None:
    # With a zero learning rate the model never moves, so the training pass sees the same
    # logits as an evaluation; 10 samples in batches of 4 make batch means weigh samples unevenly.
    data = squares_data(10, seed=13, variable_len=False)
    model = build_model(ModelSpec("gru", 2, 1, bidirectional=False, packed=False), seed=21)

    (stats,) = train(model, data, epochs=1, batch_size=4, learning_rate=0.0, shuffle_seed=0)

    evaluation = evaluate(model, data)
    assert stats.train_loss == pytest.approx(evaluation.loss, rel=1e-6)
    assert stats.train_accuracy == pytest.approx(evaluation.accuracy)


def test_without_validation_data_the_history_has_no_validation_figures() -> None:
    model = build_model(ModelSpec("rnn", 2, 1, bidirectional=False, packed=False), seed=21)

    history = train(
        model,
        squares_data(32, seed=13, variable_len=False),
        epochs=2,
        batch_size=16,
        learning_rate=0.01,
        shuffle_seed=42,
    )

    assert [stats.epoch for stats in history] == [1, 2]
    assert all(stats.val_loss is None and stats.val_accuracy is None for stats in history)


def test_resolve_device_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'cuda'"):
        resolve_device("gpu")


def test_resolve_device_auto_picks_cuda_only_when_available() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"

    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_resolve_device_refuses_cuda_without_cuda() -> None:
    with pytest.raises(ValueError, match="this machine has no CUDA"):
        resolve_device("cuda")
