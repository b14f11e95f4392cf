"""The training loop: Adam on cross-entropy over shuffled mini-batches.

Two classes: one logit per sequence and binary cross-entropy (the chapter); more: one logit
per class and cross-entropy. The model's outputs say which (`Shape.outputs`), and the labels
come in the form its loss takes (`LabelledSequences.from_squares`).

Each epoch is a training pass over the shuffled training set, then, when a validation set is
given, a validation pass. Batches are the very batches torch's DataLoader(shuffle=True) would
draw after torch.manual_seed(shuffle_seed), but they come from the loop's own generator and are
cut out of tensors built once, so nothing global is touched. The collate step, which makes one
batch of sequences of different lengths into what the model reads, is `collate_padded` or
`collate_packed`, as the model is padded or packed.

Reproducibility: on CPU the same model, data and settings give the same bytes of weights.
torch's CPU kernels may split work across threads differently on machines with other core
counts, so a caller that wants the same bytes everywhere calls torch.set_num_threads(1) first.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from pipeline.library.squares import Squares


@dataclass(frozen=True)
class LabelledSequences:
    """Padded sequences with their lengths and labels, as tensors ready for a model.

    features: (N, L, F) float32, zero beyond each length.
    lengths: (N,) int64.
    labels: two classes: (N, 1) float32, 1.0 = class 1 (clockwise); more: (N,) int64.
    """

    features: Tensor
    lengths: Tensor
    labels: Tensor

    @classmethod
    def from_squares(cls, squares: Squares) -> Self:
        """The squares' padded points, lengths and labels as tensors.

        float64 points become float32 the way the chapter converts them: as_tensor, then float().
        """
        labels = torch.as_tensor(squares.labels)
        return cls(
            features=torch.as_tensor(squares.points).float(),
            lengths=torch.as_tensor(squares.lengths, dtype=torch.int64),
            labels=labels.float().view(-1, 1) if len(squares.classes) == 2 else labels.long(),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> Self:
        """The same sequences on `device`.

        Lengths move too: models read outputs at lengths - 1 on the device.
        """
        return type(self)(self.features.to(device), self.lengths.to(device), self.labels.to(device))


#: What a collate step hands over: the model's inputs, and the batch's labels (B, 1).
Batch = tuple[tuple[Tensor] | tuple[Tensor, Tensor] | tuple[PackedSequence], Tensor]


def collate_padded(data: LabelledSequences, batch: Tensor) -> Batch:
    """The collate step of padding: the sequences at `batch` as one tensor (B, T, F), each
    followed by zeros up to the batch's longest length T, with their lengths (B,) kept.

    What torch's pad_sequence makes of the batch's sequences. A model that is not packed
    reads every step of it, the zeros after a short sequence's end included.
    """
    features = data.features.index_select(0, batch)
    lengths = data.lengths.index_select(0, batch)
    longest = int(lengths.max())  # the data are padded to their longest: trim to the batch's
    return (features[:, :longest], lengths), data.labels.index_select(0, batch)


def collate_packed(data: LabelledSequences, batch: Tensor) -> Batch:
    """The collate step of packing: the sequences at `batch` as one PackedSequence, which
    holds each sequence's real steps only, so a recurrent layer stops at each one's end.

    What the chapter's pack_collate (pack_sequence of the batch's sequences) makes.
    """
    (features, lengths), labels = collate_padded(data, batch)
    packed = pack_padded_sequence(features, lengths.cpu(), batch_first=True, enforce_sorted=False)
    return (packed,), labels


def collate_for(model: nn.Module) -> Callable[[LabelledSequences, Tensor], Batch]:
    """The collate step of `model`: packing for a packed recurrent model, padding otherwise."""
    return collate_packed if getattr(model, "packed", False) else collate_padded


class TrainingDivergedError(ValueError):
    """The training loss stopped being a finite number (too large a learning rate, usually)."""


@dataclass(frozen=True)
class EpochStats:
    """One epoch's losses (means over samples) and accuracies; val_* are None without validation.

    The training figures come from each batch's logits before that batch's update step.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None


@dataclass(frozen=True)
class Evaluation:
    """A model's mean loss, accuracy and confusion counts on a set of sequences.

    confusion: (C, C) int64, rows = true class, columns = predicted class.
    """

    loss: float
    accuracy: float
    confusion: np.ndarray


def resolve_device(name: str) -> torch.device:
    """The torch device for "auto", "cpu" or "cuda"; "auto" picks CUDA when it is available.

    Asking for "cuda" on a machine without it is an error, not a silent fallback.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("is 'cuda' but this machine has no CUDA; use cpu or auto")
    return torch.device(name)


def draw_loader_seed(generator: torch.Generator) -> int:
    """One 64-bit seed drawn from `generator` the way DataLoader and RandomSampler draw theirs.

    Consuming the generator exactly like them is what keeps our batches equal to theirs.
    """
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


def shuffled_order(generator: torch.Generator, n: int) -> Tensor:
    """The sample order (n,) of one epoch of DataLoader(shuffle=True), drawn from `generator`.

    Equal to the DataLoader's order when `generator` stands where the global generator would.
    """
    # Iterating a DataLoader first draws a base seed for its workers (even with no workers),
    # then its RandomSampler draws the seed of a fresh generator that makes the permutation.
    draw_loader_seed(generator)
    sampler_seed = draw_loader_seed(generator)
    return torch.randperm(n, generator=torch.Generator().manual_seed(sampler_seed))


def predicted_labels(logits: Tensor) -> Tensor:
    """Predicted labels in the labels' form: one logit (N, 1): float 0/1, sigmoid(logit) > 0.5;
    one per class (N, C): the class of the largest, (N,) int64.

    The first is the chapter's rule; it differs from logit > 0 only where sigmoid rounds to 0.5.
    """
    if logits.shape[1] == 1:
        return (torch.sigmoid(logits) > 0.5).float()
    return logits.argmax(dim=1)


def loss_function(outputs: int) -> nn.Module:
    """The loss of a model with `outputs` logits: binary cross-entropy for one, else
    cross-entropy."""
    return nn.BCEWithLogitsLoss() if outputs == 1 else nn.CrossEntropyLoss()


@torch.no_grad()
def predict_logits(model: nn.Module, data: LabelledSequences) -> Tensor:
    """The model's logits (N, O) for every sequence of `data`, in evaluation mode.

    The whole set goes through in one batch, as padded as its tensors are (to the set's longest
    sequence): a padded model reads each sequence at that one padded end.
    """
    model.eval()
    return model(data.features, data.lengths)


def predict_proba(model: nn.Module, data: LabelledSequences) -> Tensor:
    """Two classes: the probability (N,) of class 1 (a square drawn clockwise), sigmoid of the
    logit. More: each class's probability (N, C), softmax of the logits."""
    logits = predict_logits(model, data)
    if logits.shape[1] > 1:
        return torch.softmax(logits, dim=1)
    return torch.sigmoid(logits).view(-1)


def _loss_and_accuracy(logits: Tensor, labels: Tensor) -> tuple[float, float]:
    """Mean (binary) cross-entropy and accuracy of logits (N, O) against labels.

    One synchronisation for both numbers.
    """
    if logits.shape[1] == 1:
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
    else:
        loss = nn.functional.cross_entropy(logits, labels)
    accuracy = (predicted_labels(logits) == labels).float().mean()
    loss, accuracy = torch.stack([loss, accuracy]).tolist()
    return loss, accuracy


def evaluate(model: nn.Module, data: LabelledSequences) -> Evaluation:
    """Mean (binary) cross-entropy, accuracy and confusion counts of `model` on `data`.

    Predicted label: sigmoid(logit) > 0.5 for one logit, the largest logit's class for more.
    """
    logits = predict_logits(model, data)
    loss, accuracy = _loss_and_accuracy(logits, data.labels)
    classes = max(2, logits.shape[1])
    true = data.labels.view(-1).long()
    predicted = predicted_labels(logits).view(-1).long()
    confusion = torch.bincount(classes * true + predicted, minlength=classes**2)
    confusion = confusion.view(classes, classes)
    return Evaluation(loss=loss, accuracy=accuracy, confusion=confusion.cpu().numpy())


def train(
    model: nn.Module,
    train_data: LabelledSequences,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    shuffle_seed: int,
    validation_data: LabelledSequences | None = None,
    device: torch.device | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> list[EpochStats]:
    """Train `model` in place with Adam on `loss_function`; one EpochStats per epoch.

    `device` defaults to the CPU; the data moves there once, before the first epoch.
    `on_epoch` hears of each epoch as it ends (a progress line).
    """
    device = device or torch.device("cpu")
    model.to(device)
    train_data = train_data.to(device)
    if validation_data is not None:
        validation_data = validation_data.to(device)
    # Fused: one kernel for the whole step, whose square root is the processor's exact one.
    # torch's other Adam paths take it from MKL's VML, whose portable branch starts from an
    # approximation (rsqrtps) that Intel and AMD processors compute differently, so the same
    # training gave other bytes on each (tests/test_numerics.py shows both).
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True)
    loss_fn: nn.Module | None = None  # chosen by the model's first outputs
    shuffle_generator = torch.Generator().manual_seed(shuffle_seed)
    collate = collate_for(model)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = shuffled_order(shuffle_generator, len(train_data)).to(device)
        # Each batch's logits are kept, in pass order, to score the pass once at its end:
        # one copy per step instead of a loss and accuracy sum per step.
        pass_logits: Tensor | None = None
        for start in range(0, len(train_data), batch_size):
            inputs, labels = collate(train_data, order[start : start + batch_size])

            optimizer.zero_grad()
            logits = model(*inputs)
            if loss_fn is None:
                loss_fn = loss_function(logits.shape[1])
            if pass_logits is None:
                pass_logits = torch.empty(len(train_data), logits.shape[1], device=device)
            loss = loss_fn(logits, labels)
            loss.backward()
            optimizer.step()

            pass_logits[start : start + batch_size] = logits.detach()
        if pass_logits is None:
            raise ValueError("no training sequences")
        train_loss, train_accuracy = _loss_and_accuracy(
            pass_logits, train_data.labels.index_select(0, order)
        )
        if not math.isfinite(train_loss):
            raise TrainingDivergedError(f"the training loss became {train_loss} in epoch {epoch}")

        val_loss = val_accuracy = None
        if validation_data is not None:
            # A DataLoader draws a base seed each time it is iterated, even an unshuffled
            # validation loader; drawing it too keeps the next epoch's batches in step.
            draw_loader_seed(shuffle_generator)
            validation = evaluate(model, validation_data)
            val_loss, val_accuracy = validation.loss, validation.accuracy

        history.append(EpochStats(epoch, train_loss, train_accuracy, val_loss, val_accuracy))
        if on_epoch is not None:
            on_epoch(history[-1])
    return history
