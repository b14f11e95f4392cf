"""report: every variant's metrics, curves and pictures on one page, all curves in one file, and
the explorer: a page where a learner draws a square and watches every trained variant read it."""

import json
from dataclasses import replace
from pathlib import Path

from pipeline.library.errors import InputError
from pipeline.library.files import write_text
from pipeline.library.history import read_history, write_curves
from pipeline.library.models import load_checkpoint
from pipeline.library.squares import Squares, read_squares
from pipeline.pictures.accuracy_bars import accuracy_bars
from pipeline.pictures.explorer import Trained, explorer_data, render_explorer
from pipeline.pictures.from_weights import gate_means
from pipeline.pictures.padding import Padding
from pipeline.pictures.padding_space import padding_pairs
from pipeline.pictures.report import (
    EXPLORER_PAGE,
    Scores,
    Variant,
    ablation_pairs,
    ranked,
    render_report,
)
from pipeline.runtime.declaration import Arg, Stage
from pipeline.runtime.stage import Context

STAGE = Stage(
    name="report",
    doc=__doc__,
    item=None,
    # The explorer's planes are computed with torch and NumPy, as plot@ computes them.
    params=("models", "datasets", "split", "cpu_capability"),
    inputs=(
        Arg("metrics", "holds <model>.json and <model>.confusion.json per variant"),
        Arg("plots", "holds <model>/ per variant"),
        Arg("history", "holds <model>/loss.csv and accuracy.csv per variant"),
        Arg("models", "holds <model>/weights.pt and config.json per variant"),
        Arg("split", "holds <dataset>/test.parquet per dataset"),
        Arg("padding", "holds <padded twin>/padding.png per packed variant with a twin"),
    ),
    outputs=(
        Arg(
            "report",
            "where the pages go",
            ("index.html", "accuracy.png", "curves.csv", EXPLORER_PAGE),
        ),
    ),
    uses_torch=True,
)


def read_metrics(path: Path) -> dict:
    """A file written by an evaluate stage: a JSON object of finite numbers (or of lists)."""
    try:
        metrics = json.loads(path.read_text(), parse_constant=_refuse)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (run its evaluate stage first)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise InputError(f"{path}: not a JSON object of finite numbers") from None
    if not isinstance(metrics, dict):
        raise InputError(f"{path}: not a JSON object of finite numbers")
    return metrics


def _refuse(constant: str) -> None:
    raise ValueError(f"{constant} is not a finite number")


def trained_variants(context: Context, variants: list[Variant]) -> list[Trained]:
    """Each variant's checkpoint and its dataset's test split (read once per dataset)."""
    tests: dict[str, Squares] = {}
    trained = []
    for variant in variants:
        dataset = variant.model.dataset
        if dataset not in tests:
            tests[dataset] = read_squares(context.inputs["split"] / dataset / "test.parquet")
        model = load_checkpoint(context.inputs["models"] / variant.name)
        description = variant.spec.describe()
        trained.append(
            Trained(variant.name, description, variant.scores.accuracy, model, tests[dataset])
        )
    return trained


def run(context: Context) -> None:
    params, report = context.params, context.outputs["report"]
    variants = []
    for name, model in params.models.items():
        path = context.inputs["metrics"] / f"{name}.json"
        confusion = path.with_suffix(".confusion.json")
        scores = Scores.from_files(read_metrics(path), read_metrics(confusion), source=str(path))
        dataset, plots_dir = params.dataset(model.dataset), context.inputs["plots"] / name
        variants.append(Variant(name, model, dataset, params.split, scores, plots_dir))
    trained = trained_variants(context, ranked(variants))
    # What the gates did on the test squares, in numbers, for the report's sentences.
    ordered = [
        replace(variant, gates=gate_means(model.model, model.test))
        if variant.spec.recurrent
        else variant
        for variant, model in zip(ranked(variants), trained, strict=True)
    ]
    chart = report / "accuracy.png"
    accuracy_bars([v.name for v in ordered], [v.scores.accuracy for v in ordered], chart)
    write_text(
        report / "index.html",
        render_report(
            ordered,
            ablation_pairs(params.models, params.datasets),
            chart,
            Padding(padding_pairs(params.models), context.inputs["padding"]),
        ),
    )
    # The explorer draws squares: the variants that read them.
    squares = [
        model
        for variant, model in zip(ordered, trained, strict=True)
        if variant.dataset.kind == "squares"
    ]
    write_text(report / EXPLORER_PAGE, render_explorer(explorer_data(squares)))
    histories = {name: read_history(context.inputs["history"] / name) for name in params.models}
    write_curves(histories, report / "curves.csv")
    context.record.metrics = {f"test_accuracy_{v.name}": v.scores.accuracy for v in ordered}
