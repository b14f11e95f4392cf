"""Training throughput at scale: our loop against a plain DataLoader loop, side by side.

One epoch over 100,000 squares, batch 256, hidden size 2, for each architecture. The baseline
is the straightforward way: a DataLoader over a per-item dataset, collated batch by batch,
with loss.item() every step. Ours is pipeline.training.train. A third run, "model steps only",
does just the epoch's forward, backward and Adam steps on batches cut beforehand: no loop can
go below it while doing the same arithmetic, so baseline / model-steps-only is the ceiling of
any speed-up. All three start from the same weights and batches, and must end with the same
weights; the script checks.

Run from the repository root:  PYTHONPATH=. .venv/bin/python benchmarks/bench_training.py
"""

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_sequence
from torch.utils.data import DataLoader, Dataset, TensorDataset

from pipeline.models import build_model
from pipeline.squares import generate_squares
from pipeline.training import LabelledSequences, shuffled_order, train

N_SEQUENCES = 100_000
BATCH_SIZE = 256
HIDDEN_DIM = 2
LEARNING_RATE = 0.01
MODEL_SEED = 21
SHUFFLE_SEED = 42
REPEATS = 7
#: Every run uses one thread: the setting that makes CPU training reproducible anywhere.
TORCH_THREADS = 1

#: name: (arch, bidirectional and packed, variable-length sequences)
VARIANTS = {
    "rnn": ("rnn", False, False),
    "gru": ("gru", False, False),
    "lstm": ("lstm", False, False),
    "conv1d": ("conv1d", False, False),
    "bilstm packed": ("lstm", True, True),
}
SIDES = ("baseline", "ours", "model steps only")


class VariableLengthSequences(Dataset):
    """A per-item dataset: one unpadded (length, F) tensor and its (1,) label per item."""

    def __init__(self, data: LabelledSequences) -> None:
        self.sequences = [
            features[:length]
            for features, length in zip(data.features, data.lengths.tolist(), strict=True)
        ]
        self.labels = data.labels

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.sequences[index], self.labels[index]


def pack_collate(items: list[tuple[Tensor, Tensor]]) -> tuple[PackedSequence, Tensor]:
    """A batch of unpadded sequences as one PackedSequence, with labels (B, 1): the book's."""
    sequences = [sequence for sequence, _ in items]
    labels = [label for _, label in items]
    return pack_sequence(sequences, enforce_sorted=False), torch.as_tensor(labels).view(-1, 1)


def train_baseline(model: nn.Module, data: LabelledSequences, packed: bool) -> None:
    """One epoch the plain way: per-item DataLoader, loss.item() at every step."""
    if packed:
        dataset = VariableLengthSequences(data)
        loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, collate_fn=pack_collate)
    else:
        dataset = TensorDataset(data.features, data.lengths, data.labels)
        loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.BCEWithLogitsLoss()
    torch.manual_seed(SHUFFLE_SEED)
    model.train()
    batch_losses = []
    for *inputs, labels in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(*inputs), labels)
        loss.backward()
        optimizer.step()
        batch_losses.append(loss.item())


def train_ours(model: nn.Module, data: LabelledSequences) -> None:
    """One epoch with pipeline.training.train; a packed model packs each batch itself."""
    train(
        model,
        data,
        epochs=1,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        shuffle_seed=SHUFFLE_SEED,
    )


def model_steps_only(model: nn.Module, data: LabelledSequences) -> Callable[[], None]:
    """A run of the epoch's optimiser steps alone, its batches cut before the clock starts."""
    order = shuffled_order(torch.Generator().manual_seed(SHUFFLE_SEED), len(data))
    batches = [
        (data.features[batch], data.lengths[batch], data.labels[batch])
        for batch in order.split(BATCH_SIZE)
    ]
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, foreach=True)
    loss_fn = nn.BCEWithLogitsLoss()

    def run() -> None:
        for features, lengths, labels in batches:
            optimizer.zero_grad()
            loss_fn(model(features, lengths), labels).backward()
            optimizer.step()

    return run


def timed(run: Callable[[], None]) -> float:
    """Seconds that `run()` takes on the wall clock."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def squares_data(variable_len: bool) -> LabelledSequences:
    """The benchmark's 100,000 noisy squares as tensors."""
    squares = generate_squares(N_SEQUENCES, 0.1, seed=13, variable_len=variable_len)
    return LabelledSequences.from_arrays(squares.points, squares.lengths, squares.labels)


def run_variant(arch: str, packed: bool, data: LabelledSequences) -> dict[str, float]:
    """Seconds per side for one epoch of one variant; raises if the final weights differ."""
    models = {
        side: build_model(arch, HIDDEN_DIM, 1, packed, packed, seed=MODEL_SEED) for side in SIDES
    }
    floor_run = model_steps_only(models["model steps only"], data)
    seconds = {
        "baseline": timed(lambda: train_baseline(models["baseline"], data, packed)),
        "ours": timed(lambda: train_ours(models["ours"], data)),
        "model steps only": timed(floor_run),
    }
    baseline_weights = models["baseline"].state_dict()
    for side in SIDES[1:]:
        for name, weight in models[side].state_dict().items():
            if not torch.equal(weight, baseline_weights[name]):
                raise AssertionError(f"{arch}: {side} ends with another {name} than the baseline")
    return seconds


def main() -> None:
    torch.set_num_threads(TORCH_THREADS)
    datasets = {variable_len: squares_data(variable_len) for variable_len in (False, True)}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    # Interleaving the sides, repeat by repeat, exposes all of them to the same machine noise.
    for _ in range(REPEATS):
        for name, (arch, packed, variable_len) in VARIANTS.items():
            runs[name].append(run_variant(arch, packed, datasets[variable_len]))

    print(
        f"One epoch, {N_SEQUENCES:,} sequences, batch {BATCH_SIZE}, hidden {HIDDEN_DIM}, "
        f"torch {torch.__version__}, {TORCH_THREADS} torch thread(s), best of {REPEATS} "
        "interleaved runs; final weights of all sides equal (torch.equal).\n"
    )
    print("| variant | baseline s | ours s | speed-up | model steps only s | ceiling |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, variant_runs in runs.items():
        # Best, not median: on a shared machine, interference only ever adds time.
        best = {side: min(run[side] for run in variant_runs) for side in SIDES}
        baseline, ours, floor = best["baseline"], best["ours"], best["model steps only"]
        print(
            f"| {name} | {baseline:.2f} | {ours:.2f} | {baseline / ours:.1f}x "
            f"| {floor:.2f} | {baseline / floor:.1f}x |"
        )


if __name__ == "__main__":
    main()
