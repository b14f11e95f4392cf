"""Drawing time: every picture of each shipped variant, and the report, against their budgets.

The issue's budgets on this 2-core machine: all of one variant's PNGs and its GIF under
10 s, the report under 5 s. The models are built with the shipped params (untrained:
drawing costs the same whatever the weights) and drawn over the default test split;
times are medians of 3 runs in one warm process (imports excluded; a stage process
adds them, see bench_data), torch pinned as in the plot stage (pipeline/library/numerics.py).

Run from the repository root:  python -m benchmarks.bench_plots  (or `make bench`)
"""

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.library import numerics
from pipeline.runtime.params import Params, load_params

PARAMS = load_params()
numerics.pin(PARAMS.cpu_capability)  # before torch is imported, as in every stage

from pipeline.library.history import History  # noqa: E402
from pipeline.library.models import build_model  # noqa: E402
from pipeline.library.split import stratified_split  # noqa: E402
from pipeline.library.squares import LABEL_NAMES, Squares, generate_squares, shuffle_points  # noqa: E402
from pipeline.pictures.plots import plot_variant  # noqa: E402
from pipeline.pictures.report import (  # noqa: E402
    Scores,
    Variant,
    ablation_pairs,
    accuracy_bars,
    render_report,
)

REPEATS = 3
PLOT_BUDGET_S, REPORT_BUDGET_S = 10.0, 5.0


def median_seconds(function: Callable[..., object], *args: object) -> float:
    """Median wall time of `function(*args)` over REPEATS calls."""
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function(*args)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def test_split(params: Params, dataset_name: str) -> Squares:
    """The default test split of a dataset, as the pipeline makes it."""
    dataset, split = params.datasets[dataset_name], params.split
    squares = generate_squares(dataset.n, dataset.noise, dataset.seed, dataset.variable_len)
    if dataset.shuffle_points:
        squares = shuffle_points(squares, dataset.seed)
    return squares.take(stratified_split(squares.labels, split.val, split.test, split.seed).test)


def main() -> None:
    numerics.configure_torch(PARAMS.cpu_capability)  # one thread, oneDNN and NNPACK off
    params = PARAMS
    epochs = np.arange(1, 101)
    history = History(epochs, 1 / epochs, 1 / epochs, 1 - 1 / epochs, 1 - 1 / epochs)
    print(f"Medians of {REPEATS} runs in one warm process.\n")
    print("| what | seconds | budget s | share of budget |")
    print("|---|---:|---:|---:|")
    variants = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, model_params in params.models.items():
            test = test_split(params, model_params.dataset)
            spec = model_params.spec
            model = build_model(spec, model_params.seed).eval()
            directory = Path(scratch) / name
            arguments = (name, spec, model, test, history, directory)
            plot_variant(*arguments)  # warm-up
            seconds = median_seconds(plot_variant, *arguments)
            print(
                f"| plot@{name}: {len(list(directory.iterdir()))} pictures | {seconds:.2f} "
                f"| {PLOT_BUDGET_S:.0f} | {seconds / PLOT_BUDGET_S:.0%} |"
            )
            totals = [int((test.labels == label).sum()) for label in (0, 1)]
            confusion = ((totals[0], 0), (0, totals[1]))
            scores = Scores(1.0, 0.0, spec.parameter_count(), LABEL_NAMES, confusion)
            dataset = params.datasets[model_params.dataset]
            variants.append(Variant(name, model_params, dataset, params.split, scores, directory))

        report = Path(scratch) / "report"
        chart = report / "accuracy.png"
        ablations = ablation_pairs(params.models, params.datasets)

        def build_report() -> None:
            accuracy_bars([variant.name for variant in variants], [1.0] * len(variants), chart)
            (report / "index.html").write_text(render_report(variants, ablations, chart))

        seconds = median_seconds(build_report)
        print(
            f"| report: index.html, accuracy.png | {seconds:.2f} "
            f"| {REPORT_BUDGET_S:.0f} | {seconds / REPORT_BUDGET_S:.0%} |"
        )


if __name__ == "__main__":
    main()
