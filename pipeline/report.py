"""The comparison report: every variant on one page, as self-contained HTML and as Markdown.

The page is built from what the other stages wrote (metrics, curves, journeys), so it
costs little and reruns whenever any variant changes. It holds no wall-clock times:
every DVC-tracked output must be byte-identical across reruns.
"""

import base64
import html
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.figures import panel_figure, save_png, style
from pipeline.params import DatasetParams, ModelParams

MIME_TYPES = {".png": "image/png", ".gif": "image/gif"}


#: The pictures of plot@<model> the report shows: the loss curves; the variant's story (the
#: journey of a hidden state, or the edge features of conv1d); how the classes separate.
PICTURES = {
    "recurrent": ("loss_curves.png", "journey.gif", "hidden_states.png"),
    "conv1d": ("loss_curves.png", "conv_edges.png", "conv_edges.png"),
}


def pictures_of(arch: str, plots_dir: Path) -> tuple[Path, Path, Path]:
    """(loss curves, story, separation) of a variant whose pictures are in `plots_dir`."""
    names = PICTURES["conv1d" if arch == "conv1d" else "recurrent"]
    return tuple(plots_dir / name for name in names)


@dataclass(frozen=True)
class Variant:
    """One trained variant as the report shows it."""

    name: str
    settings: ModelParams
    parameters: int
    accuracy: float
    loss: float
    majority_share: float  # accuracy of always answering the test split's larger class
    plots_dir: Path  # where plot@<name> wrote its pictures

    @property
    def loss_curves(self) -> Path:
        """Training and validation loss and accuracy per epoch."""
        return pictures_of(self.settings.arch, self.plots_dir)[0]

    @property
    def story(self) -> Path:
        """The journey of a hidden state (GIF), or the edge features of conv1d."""
        return pictures_of(self.settings.arch, self.plots_dir)[1]

    @property
    def separation(self) -> Path:
        """How the test sequences fall on either side of the decision boundary."""
        return pictures_of(self.settings.arch, self.plots_dir)[2]

    @property
    def description(self) -> str:
        """The architecture in words: "2-layer bidirectional GRU, packed"."""
        model = self.settings
        if model.arch == "conv1d":
            filters = "filter" if model.hidden_dim == 1 else "filters"
            return f"1D convolution, {model.hidden_dim} {filters} of size 2"
        words = [f"{model.num_layers}-layer" if model.num_layers > 1 else ""]
        words += ["bidirectional" if model.bidirectional else "", model.arch.upper()]
        text = " ".join(word for word in words if word)
        return f"{text}, hidden size {model.hidden_dim}" + (", packed" if model.packed else "")


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
        if not shuffled.shuffle_points:
            continue
        for base, candidate in models.items():
            ordered = datasets[candidate.dataset]
            if (
                not ordered.shuffle_points
                and (ordered.n, ordered.noise, ordered.seed, ordered.variable_len)
                == (shuffled.n, shuffled.noise, shuffled.seed, shuffled.variable_len)
                and _without_dataset(candidate) == _without_dataset(model)
            ):
                pairs.append((base, ablated))
    return pairs


def _without_dataset(model: ModelParams) -> tuple:
    return tuple(value for key, value in vars(model).items() if key != "dataset")


#: The accuracy the chapter's models reach; the bar chart marks it.
TARGET_ACCURACY = 0.97


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
        save_png(figure, path)


def ranked(variants: list[Variant]) -> list[Variant]:
    """Best test accuracy first; ties by lower loss, then by name."""
    return sorted(variants, key=lambda variant: (-variant.accuracy, variant.loss, variant.name))


# ---------------------------------------------------------------------------
# Markdown, with pictures referenced relative to the report's directory.

INTRO = (
    "Each model reads the corners of a noisy square in drawing order and says whether it "
    "was drawn clockwise. The label belongs to the whole sequence, not to any point, and "
    "the order of the points is the only signal: the same four corners in another order "
    "can mean the other direction. A recurrent model folds the sequence into its hidden "
    "state, and the classifier decides from that state alone: the journeys below show the "
    "hidden state travelling until the two directions end up on opposite sides of the "
    "decision boundary."
)
COLUMNS = (
    "variant",
    "architecture",
    "dataset",
    "parameters",
    "epochs",
    "test accuracy",
    "test loss",
)


def _row(variant: Variant) -> tuple[str, ...]:
    return (
        variant.name,
        variant.description,
        variant.settings.dataset,
        str(variant.parameters),
        str(variant.settings.epochs),
        f"{variant.accuracy:.2%}",
        f"{variant.loss:.4f}",
    )


def _ablation_sentence(base: Variant, ablated: Variant) -> str:
    return (
        f"`{ablated.name}` is `{base.name}` trained on the same squares with the points of "
        f"each square shuffled: {ablated.accuracy:.2%} test accuracy against "
        f"{base.accuracy:.2%}. Always answering the larger class would score "
        f"{ablated.majority_share:.2%}."
    )


def render_markdown(
    variants: list[Variant], ablations: list[tuple[str, str]], chart: Path, directory: Path
) -> str:
    """The report as Markdown for a file in `directory`, pictures linked relatively."""
    by_name = {variant.name: variant for variant in variants}
    lines = ["# Sequence classification of noisy squares", "", INTRO, ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_row(variant)) + " |" for variant in ranked(variants)]
    lines += ["", f"![Test accuracy per variant]({_relative(chart, directory)})", ""]
    if ablations:
        lines += ["## Order carries the meaning", ""]
        for base, ablated in ablations:
            lines += [_ablation_sentence(by_name[base], by_name[ablated]), ""]
            lines += [
                f"![How {name} separates the classes]"
                f"({_relative(by_name[name].separation, directory)})"
                for name in (base, ablated)
            ]
            lines.append("")
    for variant in ranked(variants):
        lines += [
            f"## {variant.name}",
            "",
            variant.description + f", trained on `{variant.settings.dataset}`.",
            "",
        ]
        lines += [
            f"![Loss and accuracy of {variant.name}]({_relative(variant.loss_curves, directory)})",
            "",
        ]
        lines += [
            f"![Hidden states of {variant.name}]({_relative(variant.story, directory)})",
            "",
        ]
    return "\n".join(lines)


def _relative(path: Path, directory: Path) -> str:
    return Path(os.path.relpath(path, directory)).as_posix()


# ---------------------------------------------------------------------------
# HTML: one file, pictures embedded, no scripts, nothing fetched.

STYLE = """
body { font-family: sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.8rem; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
section { margin-top: 2.5rem; }
figure { margin: 0; }
.pictures { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
"""


def _embedded(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:{MIME_TYPES[path.suffix]};base64,{data}">'


def render_html(variants: list[Variant], ablations: list[tuple[str, str]], chart: Path) -> str:
    """The report as one self-contained HTML page: every picture embedded."""
    by_name = {variant.name: variant for variant in variants}
    numeric = {"parameters", "epochs", "test accuracy", "test loss"}
    header = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="number">{html.escape(cell)}</td>'
            if column in numeric
            else f"<td>{html.escape(cell)}</td>"
            for column, cell in zip(COLUMNS, _row(variant), strict=True)
        )
        + "</tr>"
        for variant in ranked(variants)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Sequence classification of noisy squares</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Sequence classification of noisy squares</h1>",
        f"<p>{html.escape(INTRO)}</p>",
        f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>",
        _embedded(chart, "Test accuracy per variant"),
    ]
    if ablations:
        parts.append("<section><h2>Order carries the meaning</h2>")
        for base, ablated in ablations:
            sentence = html.escape(_ablation_sentence(by_name[base], by_name[ablated]))
            parts.append(f"<p>{sentence.replace('`', '')}</p>")
            parts.append('<div class="pictures">')
            parts += [
                f"<figure><figcaption><code>{html.escape(name)}</code></figcaption>"
                f"{_embedded(by_name[name].separation, f'How {name} separates the classes')}"
                "</figure>"
                for name in (base, ablated)
            ]
            parts.append("</div>")
        parts.append("</section>")
    for variant in ranked(variants):
        name, dataset = html.escape(variant.name), html.escape(variant.settings.dataset)
        parts += [
            f'<section id="{name}"><h2>{name}</h2>',
            f"<p>{html.escape(variant.description)}, trained on <code>{dataset}</code>: "
            f"{variant.accuracy:.2%} test accuracy.</p>",
            '<div class="pictures">',
            _embedded(variant.loss_curves, f"Loss and accuracy of {variant.name}"),
            _embedded(variant.story, f"Hidden states of {variant.name}"),
            "</div></section>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
