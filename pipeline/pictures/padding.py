"""padding.png: one short test square read by a packed variant and by its padded twin, the
hidden state step by step, per direction; where the packed one stops at the square's last
point, the padded one goes on reading zeros, and each variant's test accuracy.

Drawn from a `PaddingSpace` (states in each direction's plane, computed before drawing).
"""

import html
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from pipeline.library.squares import LABEL_NAMES
from pipeline.pictures.canvas import panel_figure, render
from pipeline.pictures.padding_space import DirectionTrace, PaddingSpace, VariantTrace
from pipeline.pictures.page import figure_html
from pipeline.pictures.shared import LABEL_COLOURS, Picture, Subject

#: The colour of a step that read a padded zero.
PADDING_COLOUR = "#7f7f7f"
PANEL = 3.2  # inches


def padding_picture(subject: Subject[PaddingSpace]) -> Picture:
    """Rows: directions; columns: the packed variant, then the padded one."""
    space = subject.numbers
    square = (
        f"test square {space.seq_id} ({space.length} of {space.padded_length} points, "
        f"{LABEL_NAMES[space.label]})"
    )
    heading = (
        f"{subject.title}: {square} read by each, the last layer's hidden state after each "
        "step in each direction's plane; the classifier reads the starred state"
    )
    scores = "\n".join(_scores(variant, space) for variant in space.variants)
    figure, panels = panel_figure(
        f"{heading}\n{scores}",
        (len(space.variants[0].directions), 2),
        (PANEL, PANEL),
        bottom=1.0,
        gaps=(0.9, 0.9),
    )
    colour = LABEL_COLOURS[space.label]
    for column, variant in enumerate(space.variants):
        for row, direction in enumerate(variant.directions):
            _trace_axes(panels[row, column], variant, direction, space.length, colour)
    figure.legend(handles=_legend(colour), loc="lower center", ncols=4, frameon=False)
    description = (
        f"{heading}. {scores.replace(chr(10), '; ')}. Panels: "
        + "; ".join(
            _panel_words(variant, direction, space.length)
            for variant in space.variants
            for direction in variant.directions
        )
        + "."
    )
    return render(figure), description


def _scores(variant: VariantTrace, space: PaddingSpace) -> str:
    return (
        f"{variant.name} ({'packed' if variant.packed else 'padded, not packed'}): test "
        f"accuracy {variant.accuracy:.1%} of {space.test_count} squares, "
        f"{variant.short_accuracy:.1%} of the {space.short_count} shorter than "
        f"{space.padded_length}; P(clockwise) of this square {variant.probability:.2f}"
    )


def _panel_title(variant: VariantTrace, direction: DirectionTrace, length: int) -> str:
    zeros = int(direction.padding.sum())
    if not zeros:
        order = "then stops" if direction.name == "forward" else "the last first"
        return f"{variant.name}, {direction.name}:\n{length} points, {order}"
    if direction.name == "forward":
        return f"{variant.name}, {direction.name}:\n{length} points, then {zeros} zeros"
    return f"{variant.name}, {direction.name}:\n{zeros} zeros, then {length} points"


def _panel_words(variant: VariantTrace, direction: DirectionTrace, length: int) -> str:
    words = _panel_title(variant, direction, length).replace("\n", " ")
    if direction.padding.any():
        words += f", the zeros move it {direction.moved_by_padding:.2f} in all"
    return words + f", read after step {direction.read}"


def _trace_axes(
    axes: Axes, variant: VariantTrace, direction: DirectionTrace, length: int, colour: str
) -> None:
    """The path of the state from h_0: solid after a real point, dashed after a zero;
    each state numbered by the step that led to it, the state the classifier reads starred."""
    states = direction.states
    for step, zero in enumerate(direction.padding):
        segment = states[step : step + 2]
        axes.plot(
            *segment.T,
            color=PADDING_COLOUR if zero else colour,
            linestyle="--" if zero else "-",
            linewidth=1.2,
        )
    axes.scatter(*states[0], marker="s", s=25, color="black", zorder=3)
    after = states[1:]
    real = ~direction.padding
    axes.scatter(*after[real].T, s=30, color=colour, zorder=3)
    axes.scatter(*after[~real].T, s=30, facecolors="white", edgecolors=PADDING_COLOUR, zorder=3)
    axes.scatter(
        *states[direction.read], marker="*", s=260, facecolors="none", edgecolors="black", zorder=4
    )
    for step, point in enumerate(after, start=1):
        axes.annotate(str(step), point, xytext=(5, 4), textcoords="offset points", fontsize=9)
    limit = 1.1 * direction.plane.extent
    axes.set_xlim(-limit, limit)
    axes.set_ylim(-limit, limit)
    axes.set_aspect("equal")
    axes.set_xlabel(direction.plane.axis_labels[0])
    axes.set_ylabel(direction.plane.axis_labels[1])
    axes.set_title(_panel_title(variant, direction, length))


def _legend(colour: str) -> list[Line2D]:
    return [
        Line2D([], [], marker="s", linestyle="", color="black", label="start: state 0"),
        Line2D([], [], marker="o", color=colour, label="after a real point (step number)"),
        Line2D(
            [],
            [],
            marker="o",
            color=PADDING_COLOUR,
            markerfacecolor="white",
            linestyle="--",
            label="after a padded zero",
        ),
        Line2D(
            [],
            [],
            marker="*",
            markersize=12,
            linestyle="",
            markerfacecolor="none",
            markeredgecolor="black",
            label="the classifier reads",
        ),
    ]


@dataclass(frozen=True)
class Padding:
    """The report's padding section: the (packed, padded twin) pairs and the padding stage's
    folder, which holds <padded twin>/padding.png."""

    pairs: list[tuple[str, str]]
    directory: Path

    def section_html(self, accuracies: dict[str, float]) -> str:
        """Each pair's test accuracies (`accuracies`, by variant) and its picture."""
        parts = ['<section id="padding"><h2>Padding beside packing</h2>']
        for packed, padded in self.pairs:
            sentence = (
                f"{padded} is {packed} with its batches padded but not packed: it reads the "
                "zeros after a short square's last point and is read at the padded end. "
                f"{accuracies[padded]:.2%} test accuracy against {accuracies[packed]:.2%}."
            )
            picture = self.directory / padded / "padding.png"
            caption = "One short test square through both, step by step, with each one's accuracy."
            parts.append(f"<p>{html.escape(sentence)}</p>")
            parts.append(figure_html(picture, caption, f"padding-{padded}"))
        return "".join([*parts, "</section>"])
