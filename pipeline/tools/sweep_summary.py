"""A sweep's results as numbers, a table, a page and a picture: no DVC, no MLflow, no paths
it was not given.

A sweep runs every variant at each value of one param, once per model seed. Its summary says,
per value and variant, the mean test accuracy over the seeds and how far the seeds spread
(standard deviation, lowest, highest), so that a difference between architectures is shown
with its spread rather than as one lucky run. The picture draws test accuracy against the
swept value, one line per variant (the mean) over a band (lowest to highest).
"""

import html
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from pipeline.library.files import write_csv, write_text
from pipeline.pictures.canvas import panel_figure, render, save_png, style
from pipeline.pictures.page import figure_html, page_html, table_html

#: One marker per line, so the picture also reads in grey.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
CHANCE = 0.5  # two balanced classes


@dataclass(frozen=True)
class Result:
    """The test accuracy of one variant in one experiment of the sweep."""

    experiment: str
    value: float
    seed: int
    variant: str
    test_accuracy: float


@dataclass(frozen=True)
class AccuracySpread:
    """One value and variant over its seeds: mean, sample standard deviation (None for a
    single seed), lowest and highest test accuracy."""

    value: float
    variant: str
    seeds: int
    mean: float
    std: float | None
    low: float
    high: float


def summarize(results: Iterable[Result], variants: Sequence[str]) -> list[AccuracySpread]:
    """One AccuracySpread per (value, variant) present in `results`: values ascending,
    variants in the given order."""
    order = {variant: index for index, variant in enumerate(variants)}

    def key(result: Result) -> tuple[float, int]:
        return result.value, order[result.variant]

    points = []
    for (value, variant_index), group in groupby(sorted(results, key=key), key=key):
        accuracies = [result.test_accuracy for result in group]
        points.append(
            AccuracySpread(
                value=value,
                variant=variants[variant_index],
                seeds=len(accuracies),
                mean=mean(accuracies),
                std=statistics.stdev(accuracies) if len(accuracies) > 1 else None,
                low=min(accuracies),
                high=max(accuracies),
            )
        )
    return points


def mean(values: Sequence[float]) -> float:
    """The mean, correctly rounded (fsum): the same bits from any order of the values."""
    return math.fsum(values) / len(values)


def write_spreads_csv(points: Sequence[AccuracySpread], param: str, path: Path) -> None:
    """The summary table: one row per value and variant; floats with every digit."""
    columns = (param, "variant", "seeds", "mean_test_accuracy", "std_test_accuracy")
    columns += ("min_test_accuracy", "max_test_accuracy")
    rows = [
        (p.value, p.variant, p.seeds, p.mean, "" if p.std is None else p.std, p.low, p.high)
        for p in points
    ]
    write_csv(path, columns, rows)


def write_results_csv(
    results: Sequence[Result], param: str, revs: dict[str, str], path: Path
) -> None:
    """Every experiment's test accuracy per variant, with the experiment's commit: what the
    summary was computed from."""
    rows = [
        (r.experiment, r.value, r.seed, r.variant, r.test_accuracy, revs[r.experiment])
        for r in sorted(results, key=lambda r: (r.value, r.seed, r.variant))
    ]
    write_csv(path, ("experiment", param, "seed", "variant", "test_accuracy", "rev"), rows)


def cell(point: AccuracySpread | None) -> str:
    """A table cell: mean (lowest-highest) to three decimals; one seed: its accuracy."""
    if point is None:
        return "-"
    if point.seeds == 1:
        return f"{point.mean:.3f}"
    return f"{point.mean:.3f} ({point.low:.3f}-{point.high:.3f})"


def table_rows(points: Sequence[AccuracySpread], variants: Sequence[str]) -> list[tuple[str, ...]]:
    """Per value (ascending), the value and each variant's `cell`."""
    by_key = {(p.value, p.variant): p for p in points}
    values = sorted({p.value for p in points})
    return [
        (repr(value), *(cell(by_key.get((value, variant))) for variant in variants))
        for value in values
    ]


def markdown_table(points: Sequence[AccuracySpread], param: str, variants: Sequence[str]) -> str:
    """Values as rows, variants as columns, each cell `cell(point)`."""
    lines = [
        f"| {param} | " + " | ".join(variants) + " |",
        "|---:|" + "---:|" * len(variants),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(points, variants)]
    return "\n".join(lines) + "\n"


def write_html_page(
    path: Path,
    title: str,
    picture: Path,
    points: Sequence[AccuracySpread],
    param: str,
    variants: Sequence[str],
) -> None:
    """The summary as one self-contained HTML page (the report shows it in place): the
    picture, embedded, and the table of `cell`s."""
    columns = (param, *variants)
    note = (
        "Each cell: the mean test accuracy over the model seeds (lowest-highest); "
        "README.md beside this page says which experiments and settings."
    )
    body = [
        figure_html(picture, f"Test accuracy against {param}.", "accuracy"),
        f"<p>{html.escape(note)}</p>",
        table_html(columns, table_rows(points, variants), set(columns)),
    ]
    write_text(path, page_html(title, body))


def draw_accuracy(
    points: Sequence[AccuracySpread], param: str, variants: Sequence[str], title: str, path: Path
) -> None:
    """Write the picture: test accuracy against `param`, one line per variant (the mean over
    seeds, with a marker per value) over a band from the lowest to the highest seed; a dotted
    line at chance."""
    with style():
        figure, panels = panel_figure(title, (1, 1), (6.0, 4.0), right=1.9, bottom=0.7)
        axes = panels[0, 0]
        lowest = min(p.low for p in points)
        for index, variant in enumerate(variants):
            line = [p for p in points if p.variant == variant]
            if not line:
                continue
            values = [p.value for p in line]
            color = f"C{index % 10}"
            axes.fill_between(
                values, [p.low for p in line], [p.high for p in line], color=color, alpha=0.15,
                linewidth=0,
            )  # fmt: skip
            axes.plot(
                values, [p.mean for p in line], color=color, marker=MARKERS[index % len(MARKERS)],
                markersize=5, linewidth=1.5, label=variant,
            )  # fmt: skip
        axes.axhline(CHANCE, color="gray", linestyle=":", linewidth=1)
        axes.set_ylim(min(CHANCE, lowest) - 0.03, 1.02)
        axes.set_xlabel(param)
        axes.set_ylabel("test accuracy")
        axes.grid(alpha=0.3)
        axes.legend(title="variant", loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0)
        save_png(render(figure), path, describe(points, param, variants))


def describe(points: Sequence[AccuracySpread], param: str, variants: Sequence[str]) -> str:
    """What the picture shows, in words (its alt text): each line from its first value to its
    last."""
    ends = []
    for variant in variants:
        line = [p for p in points if p.variant == variant]
        if line:
            first, last = line[0], line[-1]
            ends.append(
                f"{variant} {first.mean:.3f} at {first.value:g} "
                f"to {last.mean:.3f} at {last.value:g}"
            )
    return (
        f"Test accuracy against {param}, one line per variant: the mean over the seeds, over a "
        f"band from the lowest to the highest seed; a dotted line at chance ({CHANCE}). "
        + "; ".join(ends)
        + "."
    )


def write_page(path: Path, title: str, intro: str, sections: Sequence[tuple[str, str]]) -> None:
    """A Markdown page: `title`, `intro`, then each (heading, body) section."""
    parts = [f"# {title}\n", intro.rstrip() + "\n"]
    parts += [f"## {heading}\n\n{body.rstrip()}\n" for heading, body in sections]
    write_text(path, "\n".join(parts))
