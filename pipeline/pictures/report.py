"""The comparison report: every variant on one self-contained HTML page.

The page is built from what the other stages wrote (metrics, pictures) and the params that
made them, so it costs little and reruns whenever any variant changes. It holds no wall-clock
times: every DVC-tracked output must be byte-identical across reruns. Each result says which
data it came from (squares, noise, split), so reports of a sweep differ where their data do.
Every picture is embedded at its own pixel size, where its text is at least 10 px (see
`pipeline.pictures.canvas`), with the description it carries as its alt text: no scripts, nothing
fetched.
"""

import base64
import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.library.errors import InputError
from pipeline.library.settings import DatasetParams, ModelParams, ModelSpec, SplitParams
from pipeline.pictures.canvas import description_of, panel_figure, render, save_png, style
from pipeline.pictures.registry import picture_names

MIME_TYPES = {".png": "image/png", ".gif": "image/gif"}
#: The accuracy the chapter's models reach; the bar chart marks it.
TARGET_ACCURACY = 0.97


def pictures_of(spec: ModelSpec, plots_dir: Path, data: str = "squares") -> list[Path]:
    """The pictures plot@<model> writes into `plots_dir` for a variant of `spec` on data of
    kind `data`, in the order the report shows them."""
    return [plots_dir / name for name in picture_names(spec, data)]


#: What an evaluate stage's metrics file holds.
METRIC_KEYS = ("test_accuracy", "test_loss", "parameters")


@dataclass(frozen=True)
class Scores:
    """A variant's results on its test split: accuracy, loss, its parameter count, and the
    confusion matrix (rows: the true class, columns: the predicted one) of its classes."""

    accuracy: float
    loss: float
    parameters: int
    classes: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]

    @classmethod
    def from_files(cls, metrics: Mapping[str, float], confusion: Mapping, source: str) -> "Scores":
        """From an evaluate stage's metrics and confusion files; InputError naming `source`
        and what is missing."""
        missing = [
            key for key in ("test_accuracy", "test_loss", "parameters") if key not in metrics
        ]
        missing += [key for key in ("classes", "confusion") if key not in confusion]
        if missing:
            raise InputError(f"{source}: missing {', '.join(missing)} (rerun its evaluate stage)")
        classes, matrix = tuple(confusion["classes"]), confusion["confusion"]
        if len(matrix) != len(classes) or any(len(row) != len(classes) for row in matrix):
            raise InputError(
                f"{source}: the confusion matrix is not {len(classes)} by {len(classes)}"
            )
        return cls(
            accuracy=float(metrics["test_accuracy"]),
            loss=float(metrics["test_loss"]),
            parameters=int(metrics["parameters"]),
            classes=classes,
            confusion=tuple(tuple(int(count) for count in row) for row in matrix),
        )

    @property
    def correct(self) -> tuple[int, ...]:
        """Per class (index = label), how many test sequences were classified right."""
        return tuple(row[label] for label, row in enumerate(self.confusion))

    @property
    def total(self) -> tuple[int, ...]:
        """Per class, how many test sequences it has."""
        return tuple(sum(row) for row in self.confusion)

    @property
    def majority_share(self) -> float:
        """The accuracy of always answering the test split's larger class."""
        return max(self.total) / sum(self.total)


@dataclass(frozen=True)
class Variant:
    """One trained variant as the report shows it: what it is, the data it learned from (its
    dataset's params and the split), how it scored, and where its pictures are."""

    name: str
    model: ModelParams
    dataset: DatasetParams
    split: SplitParams
    scores: Scores
    plots_dir: Path

    @property
    def spec(self) -> ModelSpec:
        """Its architecture, for the shape of its dataset."""
        return self.model.spec(self.dataset.shape)

    @property
    def pictures(self) -> list[Path]:
        """Every picture of the variant, in the order the page shows them."""
        return pictures_of(self.spec, self.plots_dir, self.dataset.kind)

    @property
    def separation(self) -> Path:
        """The picture of how its test sequences fall on either side of the decision."""
        if self.dataset.kind == "digits":
            return self.plots_dir / "digits_final_states.png"
        name = "hidden_states.png" if self.spec.recurrent else "conv_edges.png"
        return self.plots_dir / name


def ablation_pairs(
    models: dict[str, ModelParams], datasets: dict[str, DatasetParams]
) -> list[tuple[str, str]]:
    """(variant, its order ablation) pairs: same settings, same squares, points shuffled.

    A variant trained on a dataset with `shuffle_points: true` is the ablation of the
    variant with otherwise equal settings on the same squares left in order.
    """
    pairs = []
    for ablated, model in models.items():
        shuffled = datasets[model.dataset]
        if shuffled.kind != "squares" or not shuffled.shuffle_points:
            continue
        for base, candidate in models.items():
            ordered = datasets[candidate.dataset]
            if (
                ordered.kind == "squares"
                and not ordered.shuffle_points
                and (ordered.n, ordered.noise, ordered.seed, ordered.variable_len)
                == (shuffled.n, shuffled.noise, shuffled.seed, shuffled.variable_len)
                and _without_dataset(candidate) == _without_dataset(model)
            ):
                pairs.append((base, ablated))
    return pairs


def _without_dataset(model: ModelParams) -> tuple:
    return tuple(value for key, value in vars(model).items() if key != "dataset")


def accuracy_bars(names: list[str], accuracies: list[float], path: Path) -> None:
    """Write a horizontal bar chart of test accuracy per variant, top to bottom as given, with
    each value printed beside its bar and a line at the chapter's 0.97."""
    with style():
        # The left margin holds the longest name (about 0.07 inch a character at 8 points).
        left = 0.3 + 0.07 * max(len(name) for name in names)
        figure, panels = panel_figure(
            "Test accuracy per variant", (1, 1), (5.5, 0.3 * len(names) + 0.2), left=left, heads=0
        )
        axes = panels[0, 0]
        rows = np.arange(len(names))
        axes.barh(rows, accuracies, color="#7a8b99")
        for row, accuracy in zip(rows, accuracies, strict=True):
            axes.text(
                accuracy + 0.01,
                row,
                f"{accuracy:.3f}",
                va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},  # over the 0.97 line
            )
        axes.axvline(TARGET_ACCURACY, color="black", linestyle="--", linewidth=1)
        axes.set_yticks(rows, names)
        axes.set_ylim(len(names) - 0.5, -0.5)  # first name on top
        axes.set_xlim(0, 1.1)  # room right of a perfect score for its value
        axes.set_xticks(np.linspace(0, 1, 6))
        axes.set_xlabel(
            f"test accuracy (dashed: {TARGET_ACCURACY}, what the chapter's models reach)"
        )
        values = ", ".join(
            f"{name} {accuracy:.3f}" for name, accuracy in zip(names, accuracies, strict=True)
        )
        description = (
            f"Test accuracy per variant, best first, as horizontal bars: {values}; a dashed "
            f"line at {TARGET_ACCURACY}, what the chapter's models reach."
        )
        save_png(render(figure), path, description)


def ranked(variants: list[Variant]) -> list[Variant]:
    """Best test accuracy first; ties by lower loss, then by name."""
    return sorted(
        variants, key=lambda variant: (-variant.scores.accuracy, variant.scores.loss, variant.name)
    )


# ---------------------------------------------------------------------------
# The page: one HTML file, pictures embedded at 1:1, no scripts, nothing fetched.

TITLE = "Sequence classification of noisy squares"
INTRO = (
    "Each model reads the corners of a noisy square in drawing order and says whether it "
    "was drawn clockwise. The label belongs to the whole sequence, not to any point, and "
    "the order of the points is the only signal: the same four corners in another order "
    "can mean the other direction. A recurrent model folds the sequence into its hidden "
    "state, and the classifier decides from that state alone. For each recurrent variant, "
    "the pictures below show the hidden state of every test sequence after each step over "
    "the decision boundary, where the eight noise-free squares end, and the journey of the "
    "hidden state through every operation of the cell (as panels and as an animation, for "
    "each direction of a bidirectional model) while it reads the clockwise square A, B, C, D "
    "and the counter-clockwise square A, D, C, B, with the decision boundary where the "
    "classifier reads the state: a variant that tells the two apart ends them on opposite "
    "sides, and its P(clockwise) is printed there."
)
COLUMNS = (
    "variant",
    "architecture",
    "dataset",
    "sequences",
    "noise",
    "split % train / val / test",
    "epochs",
    "parameters",
    "test accuracy",
    "test loss",
)
NUMERIC = set(COLUMNS[3:])  # right-aligned: every column after the dataset's name
#: What each kind of picture is, for its caption; the alt text is the picture's own description.
CAPTIONS = {
    "loss_curves": "Loss and accuracy per epoch, training and validation.",
    "hidden_states": "The hidden state of every test sequence after each step, over the "
    "decision boundary.",
    "noise_free_states": "Where the eight noise-free squares end, over the decision boundary.",
    "journey": "The journey of the hidden state through each operation of the cell, for the "
    "clockwise square A, B, C, D and the counter-clockwise square A, D, C, B.",
    "transformed_inputs": "The corners after the input transform, per gate block.",
    "conv_filters": "The learned filters.",
    "conv_edges": "The edge feature of every test sequence on each segment.",
    "digits_as_read": "A few test digits as images, and as the sequence the variant reads.",
    "digits_final_states": "What the classifier reads for every test image, in its first two "
    "principal components, by digit.",
    "digits_per_class": "Test accuracy per digit, and the confusion matrix.",
}
#: What the page adds when digits are among the variants' data.
DIGITS_INTRO = (
    "The digits variants read scikit-learn's 8x8 greyscale digits as sequences: by rows (8 "
    "steps of 8 pixels), pixel by pixel (64 steps), in one fixed permutation of the pixels, "
    "or in a new random order for each image. Every order keeps every pixel; only the order "
    "changes, and with it what a recurrent model can learn."
)
STYLE = """
body { font-family: sans-serif; margin: 2rem auto; padding: 0 1rem; max-width: 82rem; color: #222; }
p, ul { max-width: 52rem; line-height: 1.45; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.7rem; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
section { margin-top: 3rem; border-top: 2px solid #ccc; }
figure { margin: 1.5rem 0; overflow-x: auto; }
figcaption { margin-bottom: 0.4rem; font-size: 0.95rem; }
img { max-width: none; display: block; }
.pictures { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
"""


def _percent(value: float) -> str:
    return f"{value:.2%}"


def _split_text(split: SplitParams) -> str:
    """The split's shares in percent: "60 / 20 / 20"."""
    return " / ".join(
        f"{100 * share:.3g}" for share in (1 - split.val - split.test, split.val, split.test)
    )


def _row(variant: Variant) -> tuple[str, ...]:
    scores = variant.scores
    return (
        variant.name,
        variant.spec.describe(),
        variant.model.dataset,
        str(variant.dataset.n),
        f"{variant.dataset.noise:g}" if variant.dataset.kind == "squares" else "",
        _split_text(variant.split),
        str(variant.model.epochs),
        str(scores.parameters),
        _percent(scores.accuracy),
        f"{scores.loss:.4f}",
    )


def _data_text(variant: Variant) -> str:
    """Where a variant's results come from, in words."""
    dataset, split = variant.dataset, variant.split
    if dataset.kind == "squares":
        lengths = "2 to 4 points each" if dataset.variable_len else "4 points each"
        order = ", the points of each square shuffled" if dataset.shuffle_points else ""
        what, unit = f"{dataset.n} squares, noise {dataset.noise:g}, {lengths}{order}", "squares"
    else:
        what, unit = dataset.describe(), "images"
    return (
        f"dataset {variant.model.dataset}: {what} (seed {dataset.seed}); split "
        f"{_split_text(split)} % train / validation / test (seed {split.seed}): "
        f"{sum(variant.scores.total)} test {unit}"
    )


def _caption(picture: Path) -> str:
    """What a picture is, from its file name: journey_backward.gif -> the journey's caption,
    backward direction, animated."""
    stem, notes = picture.stem, []
    for direction in ("forward", "backward"):
        if stem.endswith(f"_{direction}"):
            stem = stem.removesuffix(f"_{direction}")
            notes.append(f"{direction.capitalize()} direction.")
    if picture.suffix == ".gif":
        notes.append("Animated: one frame per operation, the formula as its title.")
    return " ".join([CAPTIONS[stem], *notes])


def _figure(picture: Path, caption: str, anchor: str) -> str:
    """A picture embedded at its own size (1:1), its description as alt text, and a caption;
    `anchor` is its id in the page (never a path: the page's bytes must not depend on one)."""
    with Image.open(picture) as image:
        width, height = image.size
    data = base64.b64encode(picture.read_bytes()).decode("ascii")
    return (
        f'<figure id="{html.escape(anchor)}">'
        f"<figcaption>{html.escape(caption)}</figcaption>"
        f'<img alt="{html.escape(description_of(picture))}" width="{width}" height="{height}" '
        f'src="data:{MIME_TYPES[picture.suffix]};base64,{data}"></figure>'
    )


def _table(columns: tuple[str, ...], rows: list[tuple[str, ...]], numeric: set[str]) -> str:
    header = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="number">{html.escape(cell)}</td>'
            if column in numeric
            else f"<td>{html.escape(cell)}</td>"
            for column, cell in zip(columns, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _confusion(scores: Scores) -> str:
    """The test results per class: each true class's predictions, and how many were right."""
    columns = ("true class", *(f"predicted {name}" for name in scores.classes), "correct")
    rows = []
    for label, (name, predicted) in enumerate(zip(scores.classes, scores.confusion, strict=True)):
        correct, total = predicted[label], sum(predicted)
        share = _percent(correct / total) if total else "no sequences"
        rows.append((name, *map(str, predicted), f"{correct} of {total} ({share})"))
    return _table(columns, rows, set(columns[1:]))


def _ablation(base: Variant, ablated: Variant) -> str:
    sentence = (
        f"{ablated.name} is {base.name} trained on the same squares with the points of each "
        f"square shuffled: {_percent(ablated.scores.accuracy)} test accuracy against "
        f"{_percent(base.scores.accuracy)}. Always answering the larger class would score "
        f"{_percent(ablated.scores.majority_share)}."
    )
    figures = "".join(
        _figure(
            variant.separation,
            f"{variant.name}: {_caption(variant.separation)}",
            f"ablation-{variant.name}",
        )
        for variant in (base, ablated)
    )
    return f"<p>{html.escape(sentence)}</p>{figures}"


def _variant_section(variant: Variant) -> str:
    scores, model = variant.scores, variant.model
    name = html.escape(variant.name)
    trained = (
        f"{variant.spec.describe()}, {scores.parameters} parameters, trained for {model.epochs} "
        f"epochs (batch {model.batch_size}, learning rate {model.lr:g}, seed {model.seed}) on "
        f"{_data_text(variant)}."
    )
    result = (
        f"Test accuracy {_percent(scores.accuracy)} ({sum(scores.correct)} of "
        f"{sum(scores.total)} {'squares' if variant.dataset.kind == 'squares' else 'images'}), "
        f"test loss {scores.loss:.4f}."
    )
    return "".join(
        [
            f'<section id="{name}"><h2>{name}</h2>',
            f"<p>{html.escape(trained)}</p><p>{html.escape(result)}</p>",
            _confusion(scores),
            *(
                _figure(picture, _caption(picture), f"{variant.name}-{picture.name}")
                for picture in variant.pictures
            ),
            "</section>",
        ]
    )


def _data_list(variants: list[Variant]) -> str:
    """Each dataset the variants learned from, once, best variant's first."""
    described: dict[str, str] = {}
    for variant in ranked(variants):
        described.setdefault(variant.model.dataset, _data_text(variant))
    items = "".join(f"<li>{html.escape(text)}</li>" for text in described.values())
    return f"<p>The data each result comes from:</p><ul>{items}</ul>"


def render_report(variants: list[Variant], ablations: list[tuple[str, str]], chart: Path) -> str:
    """The report as one self-contained HTML page: the table, the accuracy chart (`chart`),
    the order ablations, then every variant's data, scores and pictures, best first."""
    by_name = {variant.name: variant for variant in variants}
    order = ranked(variants)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{TITLE}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{TITLE}</h1>",
        f"<p>{html.escape(INTRO)}</p>",
        *(
            [f"<p>{html.escape(DIGITS_INTRO)}</p>"]
            if any(variant.dataset.kind == "digits" for variant in variants)
            else []
        ),
        _data_list(variants),
        _table(COLUMNS, [_row(variant) for variant in order], NUMERIC),
        _figure(chart, "Test accuracy per variant.", "accuracy"),
    ]
    if ablations:
        parts.append("<section><h2>Order carries the meaning</h2>")
        parts += [_ablation(by_name[base], by_name[ablated]) for base, ablated in ablations]
        parts.append("</section>")
    parts += [_variant_section(variant) for variant in order]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
