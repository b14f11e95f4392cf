"""The comparison report: every variant on one self-contained HTML page.

The page is built from what the other stages wrote (metrics, pictures) and the params that
made them, so it costs little and reruns whenever any variant changes. It holds no wall-clock
times: every DVC-tracked output must be byte-identical across reruns. Each result says which
data it came from (squares, noise, split), so reports of a sweep differ where their data do.
Every picture is embedded at its own pixel size, where its text is at least 10 px (see
`pipeline.pictures.canvas`), with the description it carries as its alt text: no scripts, nothing
fetched. Beside links within the page, it links to the explorer written beside it
(`pipeline.pictures.explorer`) and shows the noise sweep's page in place when one exists.
"""

import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.library.errors import InputError
from pipeline.library.settings import DatasetParams, ModelParams, ModelSpec, SplitParams
from pipeline.pictures.padding import Padding
from pipeline.pictures.page import contents_html, figure_html, page_html, table_html
from pipeline.pictures.registry import picture_names

#: The explorer page (pipeline/pictures/explorer.py), written beside the report and linked from it.
EXPLORER_PAGE = "explore.html"


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
    dataset's params and the split), how it scored, where its pictures are, and for a
    recurrent one its gates' means over the test squares, per direction and step (none for an
    RNN: `pipeline.pictures.from_weights.gate_means`)."""

    name: str
    model: ModelParams
    dataset: DatasetParams
    split: SplitParams
    scores: Scores
    plots_dir: Path
    gates: Mapping[str, Mapping[str, list[float]]] | None = None  # per direction, gate, step

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
EXPLORER_LINK = "Draw a square, watch the hidden state"
EXPLORER_TEXT = (
    ": the page beside this one, where you place the points (or add noise to a noise-free "
    "square) and watch every variant read them, step by step; it runs offline."
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


def _confusion(scores: Scores) -> str:
    """The test results per class: each true class's predictions, and how many were right."""
    columns = ("true class", *(f"predicted {name}" for name in scores.classes), "correct")
    rows = []
    for label, (name, predicted) in enumerate(zip(scores.classes, scores.confusion, strict=True)):
        correct, total = predicted[label], sum(predicted)
        share = _percent(correct / total) if total else "no sequences"
        rows.append((name, *map(str, predicted), f"{correct} of {total} ({share})"))
    return table_html(columns, rows, set(columns[1:]))


def _ablation(base: Variant, ablated: Variant) -> str:
    sentence = (
        f"{ablated.name} is {base.name} trained on the same squares with the points of each "
        f"square shuffled: {_percent(ablated.scores.accuracy)} test accuracy against "
        f"{_percent(base.scores.accuracy)}. Always answering the larger class would score "
        f"{_percent(ablated.scores.majority_share)}."
    )
    figures = "".join(
        figure_html(
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
                figure_html(picture, _caption(picture), f"{variant.name}-{picture.name}")
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


#: What each gate does, in the order the sentences name them.
GATE_ROLES = {
    "z": "the update gate z (the share of the previous hidden state kept: h' = (1 - z) n + z h)",
    "r": "the reset gate r (how much of the previous state the candidate n sees)",
    "f": "the forget gate f (the share of the cell state kept: c' = f c + i g)",
    "i": "the input gate i (the share of the candidate g written into the cell state)",
    "o": "the output gate o (how much of tanh(c') the hidden state shows: h' = o tanh(c'))",
}
#: The gates that keep a state, and what the rest of it is (GRU: the new candidate; an
#: LSTM's input gate writes independently of what its forget gate keeps).
KEEPING = {"z": ("hidden state", True), "f": ("cell state", False)}
#: Directions in reading order.
DIRECTION_ORDER = ("forward", "backward")


#: Sequences up to this long get every step's value; longer ones first, mean and last.
LISTED_STEPS = 8


def _steps(values: list[float]) -> str:
    """A gate's means per step in words: "0.27, 0.25 and 0.16 at steps 1 to 3"."""
    if len(values) > LISTED_STEPS:
        mean = sum(values) / len(values)
        return (
            f"{values[0]:.2f} at step 1, {mean:.2f} over all {len(values)} steps and "
            f"{values[-1]:.2f} at the last"
        )
    numbers = [f"{value:.2f}" for value in values]
    listed = ", ".join(numbers[:-1]) + f" and {numbers[-1]}" if len(numbers) > 1 else numbers[0]
    return f"{listed} at steps 1 to {len(numbers)}" if len(numbers) > 1 else f"{listed} at step 1"


def _gate_sentences(variant: Variant) -> str:
    """What each gate of `variant` did on its test sequences, in this build's numbers."""
    assert variant.gates is not None
    items = []
    for direction in sorted(variant.gates, key=DIRECTION_ORDER.index):
        gates = variant.gates[direction]
        where = f" ({direction} direction)" if len(variant.gates) > 1 else ""
        parts = [
            f"{GATE_ROLES[symbol]} averages {_steps(gates[symbol])}"
            for symbol in GATE_ROLES
            if symbol in gates
        ]
        for symbol, (state, rest_is_new) in KEEPING.items():
            later = gates.get(symbol, [])[1:]
            if later:
                kept = sum(later) / len(later)
                rest = f" and writes {1 - kept:.0%} anew" if rest_is_new else ""
                parts.append(
                    f"so from the second step on it keeps {kept:.0%} of its {state} per step" + rest
                )
        items.append(f"{variant.name}{where}: " + "; ".join(parts) + ".")
    return "".join(f"<li>{html.escape(item)}</li>" for item in items)


def _gates_section(gated: list[Variant], plain: list[Variant]) -> str:
    intro = (
        "A gate is a number from 0 to 1 per hidden unit, computed at each step from the point "
        "read and the state so far; it scales what passes. Below, each gate's mean over the "
        "test sequences (and the hidden units) at each step, from this build's weights. At "
        "step 1 the previous state is zero: what a gate keeps of it there changes nothing."
    )
    scores = ", ".join(
        f"{variant.name} {_percent(variant.scores.accuracy)}" for variant in ranked(gated + plain)
    )
    closing = (
        "A plain RNN has no gate: each point enters its state at full weight, through one "
        f"tanh. Test accuracy here: {scores}. On the squares, at one noise level, nearly every "
        "variant is right; the noise sweep below asks where the gates make the difference."
    )
    items = "".join(_gate_sentences(variant) for variant in ranked(gated))
    return (
        f'<section id="gates"><h2>What the gates do</h2><p>{html.escape(intro)}</p>'
        f"<ul>{items}</ul><p>{html.escape(closing)}</p></section>"
    )


#: Where `make sweep` (sweeps/noise.yaml) writes its summary page, from the report's folder.
NOISE_SWEEP_PAGE = "../sweeps/noise/index.html"


def _sweep_section() -> str:
    """The noise sweep's summary page, shown in place when `make sweep` has written it; a
    sentence saying how to get it otherwise. The report's bytes are the same either way: the
    browser loads the page, the report only names it."""
    missing = (
        "No noise sweep in this checkout yet: make sweep runs every fixed-data variant at 8 "
        "noise levels with 3 model seeds each (about 8 minutes on 2 cores), and this section "
        "then shows its picture and table. Opened elsewhere (in MLflow, say), the sweep's page "
        "is data/sweeps/noise/index.html beside the report's folder."
    )
    return (
        '<section id="noise-sweep"><h2>Accuracy against noise</h2>'
        "<p>The chapter trains at one noise level, where nearly every variant is right; the "
        "sweep asks which architecture copes as the corners blur.</p>"
        f'<object data="{NOISE_SWEEP_PAGE}" type="text/html" height="1100">'
        f"<p>{html.escape(missing)}</p></object></section>"
    )


def render_report(
    variants: list[Variant],
    ablations: list[tuple[str, str]],
    chart: Path,
    padding: Padding | None = None,
) -> str:
    """The report as one self-contained HTML page: its contents, the table (each variant
    linked to its section), the accuracy chart (`chart`), the order ablations, padding beside
    packing, what the gates do, the noise sweep where one was run, then every variant's data,
    scores and pictures, best first."""
    by_name = {variant.name: variant for variant in variants}
    order = ranked(variants)
    gated = [variant for variant in order if variant.gates and any(variant.gates.values())]
    plain = [variant for variant in order if variant.model.arch == "rnn"]
    contents = [("results", "Results")]
    contents += [("order", "Order carries the meaning")] if ablations else []
    pairs = padding.pairs if padding is not None else []
    contents += [("padding", "Padding beside packing")] if pairs else []
    contents += [("gates", "What the gates do")] if gated else []
    contents += [("noise-sweep", "Accuracy against noise")]
    contents += [(variant.name, variant.name) for variant in order]
    parts = [
        f"<p>{html.escape(INTRO)}</p>",
        *(
            [f"<p>{html.escape(DIGITS_INTRO)}</p>"]
            if any(variant.dataset.kind == "digits" for variant in variants)
            else []
        ),
        f'<p><a href="{EXPLORER_PAGE}">{html.escape(EXPLORER_LINK)}</a>'
        f"{html.escape(EXPLORER_TEXT)}</p>",
        contents_html(contents),
        '<section id="results"><h2>Results</h2>',
        _data_list(variants),
        table_html(COLUMNS, [_row(variant) for variant in order], NUMERIC, linked="variant"),
        figure_html(chart, "Test accuracy per variant.", "accuracy"),
        "</section>",
    ]
    if ablations:
        parts.append('<section id="order"><h2>Order carries the meaning</h2>')
        parts += [_ablation(by_name[base], by_name[ablated]) for base, ablated in ablations]
        parts.append("</section>")
    if padding is not None and pairs:
        scores = {variant.name: variant.scores.accuracy for variant in variants}
        parts.append(padding.section_html(scores))
    if gated:
        parts.append(_gates_section(gated, plain))
    parts.append(_sweep_section())
    parts += [_variant_section(variant) for variant in order]
    return page_html(TITLE, parts)
