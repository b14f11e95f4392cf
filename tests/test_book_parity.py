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
from torch import nn

from pipeline.library.models import build_model
from pipeline.library.settings import ModelSpec
from pipeline.library.squares import Squares, generate_squares
from pipeline.library.training import LabelledSequences, evaluate, train
from tests.chapter import chapter_correct, chapter_loader, chapter_model, chapter_train

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
    return LabelledSequences.from_squares(squares)


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
    packed = case.bidirectional_packed
    model = build_model(ModelSpec(case.arch, case.hidden_dim, 1, packed, packed), seed=MODEL_SEED)
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


def chapter_training(case: ChapterCase) -> tuple[nn.Module, list[list[int]]]:
    """The case trained and scored by the chapter's own code (tests.chapter)."""
    train_squares, test_squares = chapter_squares(case)
    packed = case.bidirectional_packed
    model = chapter_model(case.arch, case.hidden_dim, packed, seed=MODEL_SEED)
    train_loader = chapter_loader(train_squares, case.arch, packed, BATCH_SIZE, shuffle=True)
    val_loader = None
    if test_squares is not None:
        val_loader = chapter_loader(test_squares, case.arch, packed, BATCH_SIZE, shuffle=False)
    chapter_train(model, train_loader, val_loader, EPOCHS, LEARNING_RATE, seed=SHUFFLE_SEED)
    return model, chapter_correct(model, train_loader if val_loader is None else val_loader)


@pytest.mark.slow
@pytest.mark.parametrize("case_name", CASES)
def test_library_weights_equal_the_chapters_dataloader_training(case_name: str) -> None:
    chapter_trained, chapter_scores = chapter_training(CASES[case_name])

    model, _ = library_training(case_name)

    assert chapter_scores == CASES[case_name].expected
    # Both models create their parameters in the same order: recurrent (or conv), then linear.
    for chapter_parameter, parameter in zip(
        chapter_trained.parameters(), model.parameters(), strict=True
    ):
        assert torch.equal(chapter_parameter, parameter)
