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

Timing (benchmarks/timing.py): every (variant, side) warmed up once, untimed (this pays
the one-off import of `torch._dynamo` by the first Adam step outside the clock), then
--repeats rounds of all of them, every other round in reverse order; medians and spread;
the speed-up is the ratio of the medians as printed, with the range within one round.

Run from the repository root:  python -m benchmarks.bench_training [--repeats N] [--quick]
"""

from collections.abc import Callable

from benchmarks.timing import Side, arguments, header, interleave, print_runs_table, repeats_of
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
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, fused=True)  # as ours
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
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, fused=True)
    loss_fn = nn.BCEWithLogitsLoss()

    def run() -> None:
        for features, lengths, labels in batches:
            optimizer.zero_grad()
            loss_fn(model(features, lengths), labels).backward()
            optimizer.step()

    return run


def sides_of(name: str, arch: str, packed: bool, squares: Squares) -> dict[str, Side]:
    """The three sides of one variant, each training a fresh model from the same weights.

    Every run (the warm-ups included) must end with the weights of the variant's first
    run, bit for bit; a difference raises.
    """
    width = 1 if arch == "conv1d" else HIDDEN_DIM  # the chapter's conv model has one filter
    spec = ModelSpec(arch, width, 1, packed, packed)
    reference: dict[str, torch.Tensor] = {}

    def fresh() -> nn.Module:
        return build_model(spec, MODEL_SEED)

    def check(model: nn.Module) -> None:
        weights = {key: value.clone() for key, value in model.state_dict().items()}
        if not reference:
            reference.update(weights)
        for key, weight in weights.items():
            if not torch.equal(weight, reference[key]):
                raise AssertionError(f"{name}: {key} differs between sides")

    def run_baseline(model: nn.Module) -> nn.Module:
        train_baseline(model, squares, packed)
        return model

    def run_ours(model: nn.Module) -> nn.Module:
        train(
            model,
            LabelledSequences.from_squares(squares),
            epochs=1,
            batch_size=BATCH_SIZE,
            learning_rate=LEARNING_RATE,
            shuffle_seed=SHUFFLE_SEED,
        )
        return model

    def prepare_steps() -> tuple[nn.Module, Callable[[], None]]:
        model = fresh()
        return model, model_steps_only(model, LabelledSequences.from_squares(squares))

    def run_steps(prepared: tuple[nn.Module, Callable[[], None]]) -> nn.Module:
        model, steps = prepared
        steps()
        return model

    return {
        f"{name} {SIDES[0]}": Side(run_baseline, prepare=fresh, after=check),
        f"{name} {SIDES[1]}": Side(run_ours, prepare=fresh, after=check),
        f"{name} {SIDES[2]}": Side(run_steps, prepare=prepare_steps, after=check),
    }


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], default_repeats=REPEATS, quick_repeats=3)
    repeats = repeats_of(parser.parse_args())
    numerics.configure_torch(CPU_CAPABILITY)  # one thread, oneDNN and NNPACK off
    squares = {
        packed: generate_squares(N_SEQUENCES, 0.1, seed=13, variable_len=packed)
        for packed in (False, True)
    }
    sides: dict[str, Side] = {}
    for name, (arch, packed) in VARIANTS.items():
        sides |= sides_of(name, arch, packed, squares[packed])
    # All variants' sides in one interleaving: every run of a round sees the same noise.
    runs = interleave(sides, repeats)

    print(header("Training: one epoch, baseline loop against ours", repeats, CPU_CAPABILITY))
    print(
        f"One epoch, {N_SEQUENCES:,} squares, batch {BATCH_SIZE}, hidden {HIDDEN_DIM}, "
        "1 thread, oneDNN and NNPACK off; the same initial weights and batches on every side, "
        "and every run ends with the same weights, bit for bit.\n"
    )
    print(
        "| variant | baseline s | ours s | speed-up (baseline / ours) "
        "| model steps only s | ceiling (baseline / model steps) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in VARIANTS:
        baseline, ours, floor = (f"{name} {side}" for side in SIDES)
        print(
            f"| {name} | {runs.cell(baseline)} | {runs.cell(ours)} "
            f"| {runs.ratio(baseline, ours).cell()} | {runs.cell(floor)} "
            f"| {runs.ratio(baseline, floor).cell()} |"
        )
    print_runs_table(runs, title="variant, side")


if __name__ == "__main__":
    main()
