"""Training throughput at scale: the library's loop against the straightforward one.

One epoch over 100,000 squares, batch 256, hidden size 2, for each architecture, the
same model (`build_model`) and the same arithmetic on every side:
- baseline: the straightforward loop of the chapter: a DataLoader over a per-item
  dataset (TensorDataset; for the packed model the chapter's CustomDataset and
  `pack_collate`), collated batch by batch, `loss.item()` at every step;
- ours: `pipeline.library.training.train`;
- model steps only: the epoch's forward, backward and Adam steps alone, on batches cut
  before the clock starts. Nothing that does the same arithmetic can go below it, so
  baseline / model steps only is the ceiling of any speed-up.
All three start from the same weights and see the same batches; the script checks that
they end with the same weights, bit for bit. torch runs as the train stage runs it: the
kernels pinned to params.yaml's `cpu_capability`, one thread (pipeline/library/numerics.py).

Run from the repository root:  python -m benchmarks.bench_training  (or `make bench`)
"""

import statistics
import time
from collections.abc import Callable

from pipeline.library import numerics
from pipeline.runtime.params import load_params

CPU_CAPABILITY = load_params().cpu_capability
numerics.pin(CPU_CAPABILITY)  # before torch is imported, as in every stage

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from pipeline.library.models import build_model  # noqa: E402
from pipeline.library.settings import ModelSpec  # noqa: E402
from pipeline.library.squares import Squares, generate_squares  # noqa: E402
from pipeline.library.training import LabelledSequences, shuffled_order, train  # noqa: E402
from tests.chapter import CustomDataset, pack_collate  # noqa: E402

N_SEQUENCES = 100_000
BATCH_SIZE = 256
HIDDEN_DIM = 2
LEARNING_RATE = 0.01
MODEL_SEED = 21
SHUFFLE_SEED = 42
REPEATS = 7

#: name: (arch, bidirectional and packed on variable-length squares)
VARIANTS = {
    "rnn": ("rnn", False),
    "gru": ("gru", False),
    "lstm": ("lstm", False),
    "conv1d": ("conv1d", False),
    "lstm_packed": ("lstm", True),
}
SIDES = ("baseline", "ours", "model steps only")


def train_baseline(model: nn.Module, squares: Squares, packed: bool) -> None:
    """One epoch the straightforward way: per-item DataLoader, `loss.item()` every step."""
    if packed:
        points = [p[:length] for p, length in zip(squares.points, squares.lengths, strict=True)]
        dataset = CustomDataset(points, squares.labels)
        loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, collate_fn=pack_collate)
    else:
        data = LabelledSequences.from_squares(squares)
        dataset = TensorDataset(data.features, data.lengths, data.labels)
        loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.BCEWithLogitsLoss()
    torch.manual_seed(SHUFFLE_SEED)
    losses = []
    for *inputs, labels in loader:
        loss = loss_fn(model(*inputs), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())


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


def timed(run: Callable[[], object]) -> float:
    """Seconds that `run()` takes on the wall clock."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def run_variant(arch: str, packed: bool, squares: Squares) -> dict[str, float]:
    """Seconds per side for one epoch of one variant; raises if the final weights differ."""
    width = 1 if arch == "conv1d" else HIDDEN_DIM  # the chapter's conv model has one filter
    baseline, ours, floor = (
        build_model(ModelSpec(arch, width, 1, packed, packed), MODEL_SEED) for _ in SIDES
    )
    floor_run = model_steps_only(floor, LabelledSequences.from_squares(squares))

    def run_baseline() -> None:
        train_baseline(baseline, squares, packed)

    def run_ours() -> None:
        train(
            ours,
            LabelledSequences.from_squares(squares),
            epochs=1,
            batch_size=BATCH_SIZE,
            learning_rate=LEARNING_RATE,
            shuffle_seed=SHUFFLE_SEED,
        )

    seconds = {"baseline": timed(run_baseline), "ours": timed(run_ours)}
    seconds["model steps only"] = timed(floor_run)
    for model in (ours, floor):
        for name, weight in baseline.state_dict().items():
            if not torch.equal(weight, model.state_dict()[name]):
                raise AssertionError(f"{arch}: {name} differs from the baseline's")
    return seconds


def main() -> None:
    numerics.configure_torch(CPU_CAPABILITY)  # one thread, oneDNN and NNPACK off
    squares = {
        packed: generate_squares(N_SEQUENCES, 0.1, seed=13, variable_len=packed)
        for packed in (False, True)
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    # Interleaving the sides, repeat by repeat, exposes all of them to the same machine noise.
    for _ in range(REPEATS):
        for name, (arch, packed) in VARIANTS.items():
            runs[name].append(run_variant(arch, packed, squares[packed]))

    print(
        f"One epoch, {N_SEQUENCES:,} squares, batch {BATCH_SIZE}, hidden {HIDDEN_DIM}, "
        f"torch {torch.__version__}, kernels {CPU_CAPABILITY}, 1 thread; medians of {REPEATS} "
        "interleaved runs, ratios taken run by run; final weights equal on every side.\n"
    )
    print("| variant | baseline s | ours s | speed-up | model steps only s | ceiling |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, variant_runs in runs.items():
        baseline, ours, floor = (
            statistics.median(run[side] for run in variant_runs) for side in SIDES
        )
        speed_up = statistics.median(run["baseline"] / run["ours"] for run in variant_runs)
        ceiling = statistics.median(
            run["baseline"] / run["model steps only"] for run in variant_runs
        )
        print(
            f"| {name} | {baseline:.2f} | {ours:.2f} | {speed_up:.2f}x "
            f"| {floor:.2f} | {ceiling:.2f}x |"
        )


if __name__ == "__main__":
    main()
