"""journey*.png and journey*.gif: the journey of the hidden state through every operation of
the cell while it reads the clockwise square A, B, C, D and the counter-clockwise A, D, C,
B, up to the decision boundary where the classifier reads it; per direction, as a grid of
panels and as an animation.

Drawn from one direction's `DirectionJourneys` in the `HiddenSpace` (grids, states, each
panel's window and what the reading panel shows of the decision, computed before drawing);
every panel is a `JourneyPanel`, moved and blitted.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from PIL import Image

from pipeline.library.squares import LABEL_NAMES
from pipeline.pictures.canvas import (
    MATH_SIZE,
    TITLE_SIZE,
    drawn_image,
    gif_frame,
    new_figure,
    text_lines_height,
    wrap,
)
from pipeline.pictures.hidden_space import HiddenSpace
from pipeline.pictures.journey_panel import GRID_COLOURS, SHADE_ALPHA, JourneyPanel
from pipeline.pictures.journeys import DirectionJourneys, Journey
from pipeline.pictures.planes import Plane
from pipeline.pictures.shared import (
    LABEL_COLOURS,
    Animation,
    Picture,
    Subject,
    layer_note,
    plain,
)

#: Journey layout, in inches: the static figure's panels and the gaps that hold their tick
#: labels and titles; the animation's (larger) panels.
JOURNEY_PANEL, JOURNEY_GAPS = 1.18, (0.42, 0.45)
ANIMATION_PANEL = 3.3
#: GIF timing: each operation stays this long; a step's new hidden state longer; the last
#: frame, the state the classifier reads, longest, before the animation starts again.
FRAME_MS, STEP_END_MS, LAST_FRAME_MS = 1000, 2000, 5000
#: The journey legend: its entries, and the height of a row of them (inches, at MATH_SIZE).
LEGEND_ENTRIES, LEGEND_ROW = 9, 0.27
#: Tick labels per axis of a panel, about.
PANEL_TICKS = 3
#: The picture's margins, in inches: left of the panels (for the step labels), right of
#: them, and over each square's block of panels (for its heading).
PICTURE_LEFT, PICTURE_RIGHT, SQUARE_HEAD = 0.95, 0.16, 0.42


@dataclass(frozen=True)
class PictureLayout:
    """Where a journey picture puts things, in inches from its top left corner.

    width, height: the figure's; heading: its title, wrapped; top: where the column heads end
    and the first square begins; bottom: the margin that holds the legend, in legend_columns
    columns; square_tops: where each square's heading starts; rows: per square, the top of
    the row of panels of each step. Panels are JOURNEY_PANEL square; see `column_left`.
    """

    width: float
    height: float
    heading: str
    top: float
    bottom: float
    legend_columns: int
    square_tops: tuple[float, ...]
    rows: tuple[tuple[float, ...], ...]

    def column_left(self, operation: int) -> float:
        """Where the panels of column `operation` start."""
        return PICTURE_LEFT + operation * (JOURNEY_PANEL + JOURNEY_GAPS[0])


def picture_layout(subject: Subject[HiddenSpace], direction: int) -> PictureLayout:
    """The layout of the journey picture of `direction` (0: forward, 1: backward): one block
    of rows (steps) per square, one column per operation, laid out by hand."""
    journeys = subject.numbers.journeys[direction]
    n_steps, n_operations = journeys.journeys[0].states.shape[:2]
    panel, (column_gap, row_gap) = JOURNEY_PANEL, JOURNEY_GAPS
    width = PICTURE_LEFT + n_operations * panel + (n_operations - 1) * column_gap + PICTURE_RIGHT
    heading = _heading(subject, journeys, width)
    top = 0.15 + text_lines_height(heading, TITLE_SIZE) + 0.5  # the column heads: two lines
    block = SQUARE_HEAD + n_steps * panel + (n_steps - 1) * row_gap
    columns = _legend_columns(width)
    bottom = 0.4 + -(-LEGEND_ENTRIES // columns) * LEGEND_ROW
    n_squares = len(journeys.journeys)
    height = top + n_squares * block + (n_squares - 1) * row_gap + bottom
    square_tops, rows = [], []
    y = top
    for _ in range(n_squares):
        square_tops.append(y)
        y += SQUARE_HEAD
        rows.append([])
        for _ in range(n_steps):
            rows[-1].append(y)
            y += panel + row_gap
    return PictureLayout(
        width, height, heading, top, bottom, columns, tuple(square_tops), tuple(map(tuple, rows))
    )


def journey_picture(subject: Subject[HiddenSpace], direction: int) -> Picture:
    """Rows: the steps of each square in turn; columns: the cell's operations; each panel the
    whole plane after that operation. The panels are one JourneyPanel moved from place to
    place and blitted, which costs a fraction of an axes per panel."""
    journeys = subject.numbers.journeys[direction]
    layout = picture_layout(subject, direction)
    width, height = layout.width, layout.height
    figure = new_figure(width, height)
    figure.text(0.5, 1 - 0.1 / height, layout.heading, ha="center", va="top", fontsize=TITLE_SIZE)
    _picture_heads(figure, layout, journeys)
    first = journeys.journeys[0]
    _legend(figure, first.plane, (layout.bottom - 0.35) / 2 / height, layout.legend_columns)
    panel = JourneyPanel(figure, first.plane, first.grids.shape[2] // 2, PANEL_TICKS)
    figure.canvas.draw()
    size = (JOURNEY_PANEL / width, JOURNEY_PANEL / height)
    for journey, windows, verdict, rows in zip(
        journeys.journeys, journeys.windows, journeys.verdicts, layout.rows, strict=True
    ):
        for step, y in enumerate(rows):
            for operation, step_operation in enumerate(journey.operations):
                box = (layout.column_left(operation) / width, 1 - (y + JOURNEY_PANEL) / height)
                panel.place((*box, *size))
                panel.show(journey, verdict, windows[step, operation], step, operation)
                # An explicit y: matplotlib then skips measuring the ticks to place the title.
                gates = _gate_text(journey, step_operation.gate, step)
                panel.axes.set_title(gates, fontsize=9, pad=3, y=1)
                panel.draw()
    what = "journey (one row per step, one column per operation)"
    return drawn_image(figure), _description(subject, journeys, what)


def _picture_heads(figure: Figure, layout: PictureLayout, journeys: DirectionJourneys) -> None:
    """Each column's formula over the panels; each square's heading, in its label's colour,
    over its block; each step's label left of its row."""
    width, height = layout.width, layout.height
    for operation, step_operation in enumerate(journeys.journeys[0].operations):
        figure.text(
            (layout.column_left(operation) + JOURNEY_PANEL / 2) / width,
            1 - (layout.top - 0.05) / height,
            _two_lines(step_operation.formula),
            ha="center",
            va="bottom",
            fontsize=MATH_SIZE,
        )
    for journey, square_top, rows in zip(
        journeys.journeys, layout.square_tops, layout.rows, strict=True
    ):
        figure.text(
            0.1 / width,
            1 - (square_top + 0.05) / height,
            _square_heading(journey, journeys.direction),
            ha="left",
            va="top",
            fontsize=10,
            fontweight="bold",
            color=LABEL_COLOURS[journey.label],
        )
        for step, y in enumerate(rows):
            figure.text(
                (PICTURE_LEFT - 0.45) / width,
                1 - (y + JOURNEY_PANEL / 2) / height,
                f"step {step + 1}\nreads {journey.corners[step]}",
                ha="right",
                va="center",
                fontsize=9,
            )


def journey_animation(subject: Subject[HiddenSpace], direction: int) -> Animation:
    """One frame per operation of every step, the squares side by side, each panel at its
    column's scale in the journey picture; the frames (with their milliseconds) and the
    description. One figure: what stays is drawn once, what changes is blitted per frame."""
    journeys = subject.numbers.journeys[direction]
    n_steps, n_operations = journeys.journeys[0].states.shape[:2]
    what = (
        f"animation of the journey ({n_steps * n_operations} frames, one per operation of each "
        "step, with the operation's formula as the title; the last frame is held "
        f"{LAST_FRAME_MS / 1000:g} s)"
    )
    return _frames(subject, journeys), _description(subject, journeys, what)


@dataclass(frozen=True)
class _AnimationFigure:
    """The animation's one figure, drawn but for what changes from frame to frame: the step
    and the formula (each its own Text, so that matplotlib parses each formula once), and
    the panels, one per square."""

    figure: Figure
    step: Text
    formula: Text
    panels: tuple[JourneyPanel, ...]


def _animation_figure(
    subject: Subject[HiddenSpace], journeys: DirectionJourneys
) -> _AnimationFigure:
    """The squares' panels side by side under the heading and the changing formula, with
    each square's heading over its panel and the legend under them."""
    panel, gap, left, right = ANIMATION_PANEL, 0.8, 0.55, 0.3
    n_squares = len(journeys.journeys)
    width = left + n_squares * panel + (n_squares - 1) * gap + right
    heading = _heading(subject, journeys, width)
    heads = 0.7  # over each panel: its square (up to two lines), then what it reads, the gates
    top = 0.15 + text_lines_height(heading, TITLE_SIZE) + 0.45 + heads
    columns = _legend_columns(width)
    bottom = 0.45 + -(-LEGEND_ENTRIES // columns) * LEGEND_ROW
    height = top + panel + bottom
    figure = new_figure(width, height)
    figure.text(0.5, 1 - 0.1 / height, heading, ha="center", va="top", fontsize=TITLE_SIZE)
    formula_y = 1 - (top - heads - 0.05) / height
    step = figure.text(0.5, formula_y, "", ha="right", va="bottom", fontsize=14)
    formula = figure.text(0.5, formula_y, "", ha="left", va="bottom", fontsize=14)
    panels = []
    for index, journey in enumerate(journeys.journeys):
        x = left + index * (panel + gap)
        panels.append(JourneyPanel(figure, journey.plane, journey.grids.shape[2] // 2, PANEL_TICKS))
        panels[-1].place((x / width, bottom / height, panel / width, panel / height))
        figure.text(
            (x + panel / 2) / width,
            (bottom + panel + heads - 0.05) / height,
            _square_heading(journey, journeys.direction, separator="\n"),
            ha="center",
            va="top",
            fontsize=10,
            color=LABEL_COLOURS[journey.label],
        )
    _legend(figure, journeys.journeys[0].plane, (bottom - 0.4) / 2 / height, columns)
    for text in (step, formula):
        text.set_animated(True)
    return _AnimationFigure(figure, step, formula, tuple(panels))


def _frames(
    subject: Subject[HiddenSpace], journeys: DirectionJourneys
) -> Iterator[tuple[Image.Image, int]]:
    """Each frame of the animation, with how many milliseconds it stays."""
    animation = _animation_figure(subject, journeys)
    figure = animation.figure
    figure.canvas.draw()
    background = figure.canvas.copy_from_bbox(figure.bbox)
    operations = journeys.journeys[0].operations
    n_steps, n_operations = journeys.journeys[0].states.shape[:2]
    for step in range(n_steps):
        for operation, step_operation in enumerate(operations):
            animation.step.set_text(f"step {step + 1} of {n_steps}:  ")
            animation.formula.set_text(step_operation.formula)
            for panel, journey, windows, verdict in zip(
                animation.panels,
                journeys.journeys,
                journeys.windows,
                journeys.verdicts,
                strict=True,
            ):
                panel.show(journey, verdict, windows[step, operation], step, operation)
                gates = _gate_text(journey, step_operation.gate, step)
                panel.axes.set_title(
                    f"reads {journey.corners[step]}" + (f";  {gates}" if gates else ""),
                    fontsize=10,
                    y=1,
                )
            figure.canvas.restore_region(background)
            for text in (animation.step, animation.formula):
                figure.draw_artist(text)
            for panel in animation.panels:
                panel.draw()
            yield gif_frame(figure), _milliseconds(step, operation, n_steps, n_operations)


def _milliseconds(step: int, operation: int, n_steps: int, n_operations: int) -> int:
    """How long a frame stays: the last longest, a step's new hidden state longer than the rest."""
    if (step, operation) == (n_steps - 1, n_operations - 1):
        return LAST_FRAME_MS
    if operation == n_operations - 1:
        return STEP_END_MS
    return FRAME_MS


# ---------------------------------------------------------------------------
# The words of a journey: heading, column heads, gate values, legend, description.


def _heading(subject: Subject[HiddenSpace], journeys: DirectionJourneys, width: float) -> str:
    """The title of a journey figure `width` inches wide, wrapped to fit."""
    note = _journey_note(subject.numbers, journeys)
    return wrap(f"{subject.title}: journey of the hidden state, {note}", width - 0.2, TITLE_SIZE)


def _journey_note(space: HiddenSpace, journeys: DirectionJourneys) -> str:
    """Which layer and direction the journeys are, what they read, in which plane."""
    notes = [f"{layer_note(space)}{journeys.direction} direction"]
    first = journeys.journeys[0]
    notes.append(f"the classifier reads it after step {first.reading.step + 1}")
    if space.kind == "lstm":
        notes.append("every grid point shares the actual cell state $c$")
    plane = first.plane
    if plane.explained is not None:
        notes.append(
            f"grid in the PCA plane of the {len(plane.mean)}-D hidden states (approximate)"
        )
    return "; ".join(notes)


def _square_heading(journey: Journey, direction: str, separator: str = ", ") -> str:
    """The square a journey reads, and (after `separator`) in which order this direction
    reads it if that is backwards."""
    drawn = journey.corners[::-1] if direction == "backward" else journey.corners
    heading = f"{LABEL_NAMES[journey.label]} square {', '.join(drawn)}"
    if direction == "backward":
        heading += f"{separator}read backwards: {', '.join(journey.corners)}"
    return heading


def _two_lines(formula: str) -> str:
    """A one-piece mathtext formula "$a = b$" as "$a =$" over "$b$", to fit a column head."""
    if formula.count("$") == 2 and formula.startswith("$") and " = " in formula:
        name, value = formula[1:-1].split(" = ", 1)
        return f"${name} =$\n${value}$"
    return formula


def _gate_text(journey: Journey, gate: str | None, step: int) -> str:
    """The values of `gate` at the actual hidden state of `step`, e.g. "r = (0.12, 0.95)"."""
    if gate is None:
        return ""
    values = ", ".join(f"{value:.2f}" for value in journey.gates[gate][step])
    return f"{gate} = ({values})"


def _legend_columns(width: float) -> int:
    """How many legend entries fit side by side in `width` inches (about 3.1 inches each)."""
    return max(1, min(3, int(width // 3.1)))


def _legend(figure: Figure, plane: Plane, y: float, ncols: int) -> None:
    """What the journey's lines, dot, dashes and shading are, centred at height `y` (0..1)."""
    names = plane.axis_names
    edge = f"{-plane.extent:.3g}"
    handles = [
        Line2D([], [], color=GRID_COLOURS[0], linewidth=1, label=f"grid: {names[0]} constant"),
        Line2D([], [], color=GRID_COLOURS[1], linewidth=1, label=f"grid: {names[1]} constant"),
        Line2D(
            [], [], color="#555555", linewidth=2, label=f"thick: {names[0]} or {names[1]} = {edge}"
        ),
        Line2D([], [], color="#999999", linestyle="--", label="dashed: the grid before the step"),
        Line2D(
            [],
            [],
            marker="o",
            markersize=6,
            color="black",
            markeredgecolor="white",
            linestyle="",
            label="the actual hidden state",
        ),
        Line2D([], [], color="black", alpha=0.6, label="its path so far"),
        Line2D([], [], color="black", linewidth=1.2, label="decision boundary"),
        *(
            Patch(facecolor=colour, alpha=SHADE_ALPHA, label=f"read as {name}")
            for colour, name in zip(LABEL_COLOURS[::-1], LABEL_NAMES[::-1], strict=True)
        ),
    ]
    figure.legend(
        handles=handles,
        loc="center",
        bbox_to_anchor=(0.5, y),
        ncols=ncols,
        frameon=False,
        fontsize=MATH_SIZE,
        columnspacing=1.5,
    )


def _description(subject: Subject[HiddenSpace], journeys: DirectionJourneys, what: str) -> str:
    """The description of a journey picture: which squares, which operations, how to read it."""
    direction, first = journeys.direction, journeys.journeys[0]
    squares = " and ".join(
        f"the {_square_heading(journey, direction)}" for journey in journeys.journeys
    )
    operations = ", ".join(plain(operation.formula) for operation in first.operations)
    gates = sorted({op.gate for op in first.operations if op.gate is not None})
    return (
        f"{subject.title}: {what} of the hidden state, {layer_note(subject.numbers)}{direction} "
        f"direction, for {squares}: how each operation of the cell ({operations}) moves the "
        "whole hidden plane, drawn as a grid, with the actual hidden state as a dot and its "
        "path so far. Every panel has tick labels; one scale per operation. "
        + (f"The values of the gates ({', '.join(gates)}) are in the titles. " if gates else "")
        + f"After step {first.reading.step + 1}, where the classifier reads this direction, the "
        "decision boundary splits the panel into the side read as clockwise (red) and the "
        "side read as counter-clockwise (blue), and the classifier's P(clockwise) is printed."
    )
