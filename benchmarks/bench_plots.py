"""Drawing time: every picture of each shipped variant, and the report, against their budgets.

The issue's budgets on this 2-core machine: all of one variant's PNGs and its GIF under
10 s, the report under 5 s. The models are built with the shipped params (untrained:
drawing costs the same whatever the weights) and drawn over the default test split, in
one warm process (imports excluded; a stage process adds them, see bench_data), torch
pinned as in the plot stage (pipeline/library/numerics.py).

Timing (benchmarks/timing.py): every variant's pictures and the report are the sides of
one interleaving: each warmed up once, untimed, then --repeats rounds of all of them,
every other round in reverse order; medians and spread. The share of the budget is the
median as printed over the budget.

Run from the repository root:  python -m benchmarks.bench_plots [--repeats N] [--quick]
"""

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.timing import Side, arguments, header, interleave, print_runs_table, repeats_of
from pipeline.library import numerics
from pipeline.runtime.params import Params, load_params

PARAMS = load_params()
numerics.pin(PARAMS.cpu_capability)  # before torch is imported, as in every stage

from pipeline.library.history import History  # noqa: E402
from pipeline.library.models import build_model  # noqa: E402
from pipeline.library.split import stratified_split  # noqa: E402
from pipeline.library.squares import (  # noqa: E402
    Squares,
    shape_of,
)
from pipeline.pictures.accuracy_bars import accuracy_bars  # noqa: E402
from pipeline.pictures.plots import plot_variant  # noqa: E402
from pipeline.pictures.report import (  # noqa: E402
    Scores,
    Variant,
    ablation_pairs,
    render_report,
)
from pipeline.stages.generate import sequences_of  # noqa: E402

REPEATS = 3
PLOT_BUDGET_S, REPORT_BUDGET_S = 10.0, 5.0


def test_split(params: Params, dataset_name: str) -> Squares:
    """The default test split of a dataset, as the pipeline makes it."""
    dataset, split = params.datasets[dataset_name], params.split
    squares = sequences_of(dataset)
    return squares.take(stratified_split(squares.labels, split.val, split.test, split.seed).test)


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], default_repeats=REPEATS, quick_repeats=1)
    repeats = repeats_of(parser.parse_args())
    numerics.configure_torch(PARAMS.cpu_capability)  # one thread, oneDNN and NNPACK off
    params = PARAMS
    epochs = np.arange(1, 101)
    history = History(epochs, 1 / epochs, 1 / epochs, 1 - 1 / epochs, 1 - 1 / epochs)
    sides: dict[str, Side] = {}
    variants = []
    with tempfile.TemporaryDirectory() as scratch:
        directories = {}
        for name, model_params in params.models.items():
            test = test_split(params, model_params.dataset)
            spec = model_params.spec(shape_of(test))
            model = build_model(spec, model_params.seed).eval()
            directories[name] = directory = Path(scratch) / name
            plot_arguments = (name, spec, model, test, history, directory)
            sides[name] = Side(lambda plot_arguments=plot_arguments: plot_variant(*plot_arguments))
            classes = range(len(test.classes))
            totals = [int((test.labels == label).sum()) for label in classes]
            confusion = tuple(tuple(totals[t] * (t == p) for p in classes) for t in classes)
            scores = Scores(1.0, 0.0, spec.parameter_count(), test.classes, confusion)
            dataset = params.datasets[model_params.dataset]
            variants.append(Variant(name, model_params, dataset, params.split, scores, directory))

        report = Path(scratch) / "report"
        chart = report / "accuracy.png"
        ablations = ablation_pairs(params.models, params.datasets)

        def build_report() -> None:
            accuracy_bars([variant.name for variant in variants], [1.0] * len(variants), chart)
            (report / "index.html").write_text(render_report(variants, ablations, chart))

        sides["report"] = Side(build_report)
        runs = interleave(sides, repeats)
        pictures = {name: len(list(path.iterdir())) for name, path in directories.items()}

    title = "Pictures: each variant's plots and the report, against budgets"
    print(header(title, repeats, PARAMS.cpu_capability))
    print("| what | seconds | budget s | share of budget |")
    print("|---|---:|---:|---:|")
    for name, count in pictures.items():
        median = runs.summary(name).median
        print(
            f"| plot@{name}: {count} pictures | {runs.cell(name)} "
            f"| {PLOT_BUDGET_S:.0f} | {median / PLOT_BUDGET_S:.0%} |"
        )
    median = runs.summary("report").median
    print(
        f"| report: index.html, accuracy.png | {runs.cell('report')} "
        f"| {REPORT_BUDGET_S:.0f} | {median / REPORT_BUDGET_S:.0%} |"
    )
    print_runs_table(runs, title="what")


if __name__ == "__main__":
    main()
