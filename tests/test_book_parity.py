"""Exact parity with the sequences chapter of "Deep Learning with PyTorch Step-by-Step".

The chapter's setup: 128 training squares (seed 13) and 128 test squares (seed 19), noise 0.1;
torch.manual_seed(21) right before building each model; Adam(lr=0.01) on BCEWithLogitsLoss;
batches of 16 from DataLoader(shuffle=True); torch.manual_seed(42) right before the first of
100 epochs, each a training pass then a validation pass over the test set; CPU.

The library's build_model + train + evaluate must give the chapter's test results to the
sample, and (slow tests) the very same weights as the chapter's own DataLoader code below.
"""

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_sequence, pad_packed_sequence
from torch.utils.data import DataLoader, Dataset, TensorDataset

from pipeline.models import build_model
from pipeline.squares import Squares, generate_squares
from pipeline.training import LabelledSequences, evaluate, train

NOISE = 0.1
EPOCHS = 100
BATCH_SIZE = 16
LEARNING_RATE = 0.01
MODEL_SEED = 21
SHUFFLE_SEED = 42


@dataclass(frozen=True)
class ChapterCase:
    arch: str
    hidden_dim: int
    bidirectional_packed: bool
    #: [correct, total] for class 0, then for class 1, as the chapter reports them.
    expected: list[list[int]]


CASES = {
    "rnn": ChapterCase("rnn", 2, False, [[50, 53], [75, 75]]),
    "gru": ChapterCase("gru", 2, False, [[53, 53], [75, 75]]),
    "lstm": ChapterCase("lstm", 2, False, [[53, 53], [75, 75]]),
    "conv1d": ChapterCase("conv1d", 1, False, [[53, 53], [75, 75]]),
    # Trained on variable-length squares without a validation pass, scored on its training set.
    "packed bidirectional lstm": ChapterCase("lstm", 2, True, [[66, 66], [62, 62]]),
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run on one thread: CPU kernels that split work by core count may round differently."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def chapter_squares(case: ChapterCase) -> tuple[Squares, Squares | None]:
    """The case's training squares and, for the fixed-length cases, the test squares."""
    if case.bidirectional_packed:
        return generate_squares(128, NOISE, seed=13, variable_len=True), None
    train_squares = generate_squares(128, NOISE, seed=13, variable_len=False)
    return train_squares, generate_squares(128, NOISE, seed=19, variable_len=False)


def as_labelled(squares: Squares) -> LabelledSequences:
    return LabelledSequences.from_arrays(squares.points, squares.lengths, squares.labels)


def correct_per_class(confusion: np.ndarray) -> list[list[int]]:
    """[correct, total] per true class from a (2, 2) confusion matrix."""
    return [[int(confusion[label, label]), int(confusion[label].sum())] for label in (0, 1)]


@functools.cache
def library_training(case_name: str) -> tuple[nn.Module, list[list[int]]]:
    """The case trained with the library; the final model and its chapter-style scores."""
    case = CASES[case_name]
    train_squares, test_squares = chapter_squares(case)
    train_data = as_labelled(train_squares)
    test_data = None if test_squares is None else as_labelled(test_squares)
    model = build_model(
        case.arch,
        case.hidden_dim,
        num_layers=1,
        bidirectional=case.bidirectional_packed,
        packed=case.bidirectional_packed,
        seed=MODEL_SEED,
    )
    train(
        model,
        train_data,
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        shuffle_seed=SHUFFLE_SEED,
        validation_data=test_data,
    )
    scored_on = train_data if test_data is None else test_data
    return model, correct_per_class(evaluate(model, scored_on).confusion)


@pytest.mark.parametrize("case_name", CASES)
def test_library_reproduces_the_chapters_results(case_name: str) -> None:
    _, correct = library_training(case_name)

    assert correct == CASES[case_name].expected


# The chapter's own code, transcribed: its models, datasets, collate function and loop.


class BookSquareModel(nn.Module):
    """The chapter's SquareModel / SquareModelGRU / SquareModelLSTM: last step, then linear."""

    def __init__(self, layer_class: type[nn.RNNBase], hidden_dim: int) -> None:
        super().__init__()
        self.basic_rnn = layer_class(2, hidden_dim, batch_first=True)
        self.classifier = nn.Linear(hidden_dim, 1)

    def forward(self, X: Tensor) -> Tensor:
        batch_first_output, _ = self.basic_rnn(X)
        last_output = batch_first_output[:, -1]
        return self.classifier(last_output).view(-1, 1)


class BookSquareModelPacked(nn.Module):
    """The chapter's SquareModelPacked: a bidirectional LSTM over a PackedSequence."""

    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.basic_rnn = nn.LSTM(2, hidden_dim, bidirectional=True)
        self.classifier = nn.Linear(2 * hidden_dim, 1)

    def forward(self, X: PackedSequence) -> Tensor:
        rnn_out, _ = self.basic_rnn(X)
        batch_first_output, seq_sizes = pad_packed_sequence(rnn_out, batch_first=True)
        seq_idx = torch.arange(seq_sizes.size(0))
        last_output = batch_first_output[seq_idx, seq_sizes - 1]
        return self.classifier(last_output).view(-1, 1)


class Permute(nn.Module):
    def forward(self, X: Tensor) -> Tensor:
        return X.permute(0, 2, 1)


def book_conv_model() -> nn.Sequential:
    model = nn.Sequential()
    model.add_module("transpose", Permute())
    model.add_module("conv1d", nn.Conv1d(in_channels=2, out_channels=1, kernel_size=2))
    model.add_module("relu", nn.ReLU())
    model.add_module("flatten", nn.Flatten())
    model.add_module("output", nn.Linear(3, 1))
    return model


class CustomDataset(Dataset):
    def __init__(self, x: list[np.ndarray], y: np.ndarray) -> None:
        self.x = [torch.as_tensor(s).float() for s in x]
        self.y = torch.as_tensor(y).float().view(-1, 1)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.y[index]

    def __len__(self) -> int:
        return len(self.x)


def pack_collate(batch: list[tuple[Tensor, Tensor]]) -> tuple[PackedSequence, Tensor]:
    X = [item[0] for item in batch]
    y = [item[1] for item in batch]
    return pack_sequence(X, enforce_sorted=False), torch.as_tensor(y).view(-1, 1)


def book_model(case: ChapterCase) -> nn.Module:
    torch.manual_seed(MODEL_SEED)
    if case.arch == "conv1d":
        return book_conv_model()
    if case.bidirectional_packed:
        return BookSquareModelPacked(case.hidden_dim)
    layer_class = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[case.arch]
    return BookSquareModel(layer_class, case.hidden_dim)


def book_loaders(case: ChapterCase) -> tuple[DataLoader, DataLoader | None]:
    train_squares, test_squares = chapter_squares(case)
    if case.bidirectional_packed:
        var_points = [
            points[:length]
            for points, length in zip(train_squares.points, train_squares.lengths, strict=True)
        ]
        train_var_data = CustomDataset(var_points, train_squares.labels)
        loader = DataLoader(
            train_var_data, batch_size=BATCH_SIZE, shuffle=True, collate_fn=pack_collate
        )
        return loader, None
    train_data = TensorDataset(
        torch.as_tensor(train_squares.points).float(),
        torch.as_tensor(train_squares.labels).view(-1, 1).float(),
    )
    test_data = TensorDataset(
        torch.as_tensor(test_squares.points).float(),
        torch.as_tensor(test_squares.labels).view(-1, 1).float(),
    )
    return (
        DataLoader(train_data, batch_size=BATCH_SIZE, shuffle=True),
        DataLoader(test_data, batch_size=BATCH_SIZE),
    )


def book_training(case: ChapterCase) -> tuple[nn.Module, list[list[int]]]:
    """StepByStep.train(100) and loader_apply(..., correct), as the chapter runs them."""
    model = book_model(case)
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    train_loader, val_loader = book_loaders(case)
    torch.manual_seed(SHUFFLE_SEED)
    for _ in range(EPOCHS):
        model.train()
        for x_batch, y_batch in train_loader:
            loss = loss_fn(model(x_batch), y_batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        if val_loader is not None:
            with torch.no_grad():
                model.eval()
                for x_batch, y_batch in val_loader:
                    loss_fn(model(x_batch), y_batch)

    scored_on = train_loader if val_loader is None else val_loader
    correct = torch.zeros(2, 2, dtype=torch.int64)
    model.eval()
    with torch.no_grad():
        for x_batch, y_batch in scored_on:
            predicted = (torch.sigmoid(model(x_batch)) > 0.5).long()
            for label in (0, 1):
                correct[label, 0] += (predicted[y_batch == label] == label).sum()
                correct[label, 1] += (y_batch == label).sum()
    return model, correct.tolist()


@pytest.mark.slow
@pytest.mark.parametrize("case_name", CASES)
def test_library_weights_equal_the_chapters_dataloader_training(case_name: str) -> None:
    book_model_trained, book_correct = book_training(CASES[case_name])

    model, _ = library_training(case_name)

    assert book_correct == CASES[case_name].expected
    # Both models create their parameters in the same order: recurrent (or conv), then linear.
    for book_parameter, parameter in zip(
        book_model_trained.parameters(), model.parameters(), strict=True
    ):
        assert torch.equal(book_parameter, parameter)
