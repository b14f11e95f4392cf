"""The chapter's own code, transcribed: its generator, models, datasets, collate and loop.

Not used by the pipeline. It is the reference the library is held to: the parity tests
check that `build_model` + `train` end with the very same weights as this code, and the
benchmarks use it as the straightforward baseline (a square at a time; a DataLoader over
a per-item dataset, collated batch by batch, `loss.item()` at every step, as `StepByStep`
does).
"""

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_sequence, pad_packed_sequence
from torch.utils.data import DataLoader, Dataset, TensorDataset

from pipeline.library.squares import Squares


def generate_sequences(
    n: int = 128, variable_len: bool = False, seed: int = 13
) -> tuple[list[np.ndarray], np.ndarray]:
    """The chapter's square generator, square by square: (list of (length, 2) arrays, labels)."""
    basic_corners = np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]])
    np.random.seed(seed)
    bases = np.random.randint(4, size=n)
    lengths = np.random.randint(3, size=n) + 2 if variable_len else [4] * n
    directions = np.random.randint(2, size=n)
    points = [
        basic_corners[[(b + i) % 4 for i in range(4)]][slice(None, None, d * 2 - 1)][:length]
        + np.random.randn(length, 2) * 0.1
        for b, d, length in zip(bases, directions, lengths, strict=True)
    ]
    return points, directions


class SquareModel(nn.Module):
    """SquareModel, SquareModelGRU and SquareModelLSTM: the last step's output, then linear."""

    def __init__(self, layer_class: type[nn.RNNBase], hidden_dim: int) -> None:
        super().__init__()
        self.basic_rnn = layer_class(2, hidden_dim, batch_first=True)
        self.classifier = nn.Linear(hidden_dim, 1)

    def forward(self, X: Tensor) -> Tensor:
        batch_first_output, _ = self.basic_rnn(X)
        last_output = batch_first_output[:, -1]
        return self.classifier(last_output).view(-1, 1)


class SquareModelPacked(nn.Module):
    """SquareModelPacked: a bidirectional LSTM over a PackedSequence, read at each end."""

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


def conv_model() -> nn.Sequential:
    """The chapter's Conv1d model, for sequences (N, F, L)."""
    model = nn.Sequential()
    model.add_module("conv1d", nn.Conv1d(in_channels=2, out_channels=1, kernel_size=2))
    model.add_module("relu", nn.ReLU())
    model.add_module("flatten", nn.Flatten())
    model.add_module("output", nn.Linear(3, 1))
    return model


class CustomDataset(Dataset):
    """One unpadded (length, 2) float tensor and its (1,) label per item."""

    def __init__(self, x: list[np.ndarray], y: np.ndarray) -> None:
        self.x = [torch.as_tensor(s).float() for s in x]
        self.y = torch.as_tensor(y).float().view(-1, 1)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.y[index]

    def __len__(self) -> int:
        return len(self.x)


def pack_collate(batch: list[tuple[Tensor, Tensor]]) -> tuple[PackedSequence, Tensor]:
    """A batch of unpadded sequences as one PackedSequence, with its labels (B, 1)."""
    X = [item[0] for item in batch]
    y = [item[1] for item in batch]
    return pack_sequence(X, enforce_sorted=False), torch.as_tensor(y).view(-1, 1)


def chapter_model(arch: str, hidden_dim: int, packed: bool, seed: int) -> nn.Module:
    """The chapter's model for `arch`, built right after `torch.manual_seed(seed)`."""
    torch.manual_seed(seed)
    if arch == "conv1d":
        return conv_model()
    if packed:
        return SquareModelPacked(hidden_dim)
    return SquareModel({"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[arch], hidden_dim)


def chapter_loader(
    squares: Squares, arch: str, packed: bool, batch_size: int, shuffle: bool
) -> DataLoader:
    """A DataLoader over `squares` the way the chapter builds it for that model."""
    if packed:
        points = [p[:length] for p, length in zip(squares.points, squares.lengths, strict=True)]
        dataset = CustomDataset(points, squares.labels)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=pack_collate)
    features = torch.as_tensor(squares.points).float()
    if arch == "conv1d":
        features = features.permute(0, 2, 1)  # Conv1d wants (N, F, L)
    labels = torch.as_tensor(squares.labels).view(-1, 1).float()
    return DataLoader(TensorDataset(features, labels), batch_size=batch_size, shuffle=shuffle)


def chapter_train(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    epochs: int,
    lr: float,
    seed: int,
) -> list[float]:
    """StepByStep.train(epochs): Adam, BCEWithLogitsLoss, `torch.manual_seed(seed)` first.

    Returns every mini-batch's training loss, read with `loss.item()` step by step.
    """
    loss_fn = nn.BCEWithLogitsLoss()
    # The chapter's Adam, fused as the pipeline's is (pipeline/library/training.py): the
    # default takes its square root from MKL's VML, which rounds differently on Intel and
    # AMD processors; the arithmetic of the step is otherwise the same.
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    torch.manual_seed(seed)
    losses = []
    for _ in range(epochs):
        model.train()
        for x_batch, y_batch in train_loader:
            loss = loss_fn(model(x_batch), y_batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        if val_loader is not None:
            with torch.no_grad():
                model.eval()
                for x_batch, y_batch in val_loader:
                    loss_fn(model(x_batch), y_batch)
    return losses


def chapter_correct(model: nn.Module, loader: DataLoader) -> list[list[int]]:
    """StepByStep.loader_apply(loader, correct): [correct, total] for class 0, then 1."""
    correct = torch.zeros(2, 2, dtype=torch.int64)
    model.eval()
    with torch.no_grad():
        for x_batch, y_batch in loader:
            predicted = (torch.sigmoid(model(x_batch)) > 0.5).long()
            for label in (0, 1):
                correct[label, 0] += (predicted[y_batch == label] == label).sum()
                correct[label, 1] += (y_batch == label).sum()
    return correct.tolist()
