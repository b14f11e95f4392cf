"""Figures of a trained variant, drawn from its weights: PNGs and animated GIFs.

A recurrent variant gets the chapter's story of the hidden state: where the corners land in
the hidden space, where the test sequences' states travel step by step over the decision
boundary, where the eight noise-free squares end up, and the journey of the hidden state
through every operation of the cell while it reads the clockwise square A, B, C, D and the
counter-clockwise A, D, C, B, up to the decision boundary where the classifier reads it: as a
grid of panels and as an animation, per direction. A Conv1d variant gets its filters and the
edge features they compute. Both get their loss curves.

Every picture names its variant in its title and carries a description of what it shows (the
report's alt text); pictures are byte-for-byte reproducible and their text is at least 10 px
at 1:1 (see `pipeline.pictures.canvas`). The numbers come from `pipeline.pictures.hidden_space`; this module draws.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter
from matplotlib.transforms import Bbox
from PIL import Image
from torch import nn

from pipeline.library.cells import CellWeights
from pipeline.library.history import History
from pipeline.library.models import ConvClassifier, RecurrentClassifier
from pipeline.library.settings import ModelSpec
from pipeline.library.squares import CORNER_NAMES, LABEL_NAMES, Squares, corner_order
from pipeline.pictures.canvas import (
    MATH_SIZE,
    TITLE_SIZE,
    drawn_image,
    gif_frame,
    new_figure,
    panel_figure,
    render,
    save_gif,
    save_pngs,
    style,
    text_lines_height,
    wrap,
)
from pipeline.pictures.hidden_space import (
    CLOCKWISE_FROM_A,
    INPUT_BLOCKS,
    HiddenSpace,
    Journey,
    Plane,
    Reading,
    boundary_probabilities,
    hidden_space,
    transformed_corners,
)

#: One colour per label, the same in every figure: index = label (see LABEL_NAMES).
LABEL_COLOURS = ("#1f77b4", "#d62728")
#: P(clockwise) from blue (counter-clockwise) to red (clockwise), matching LABEL_COLOURS.
PROBABILITY_CMAP = "RdBu_r"
#: Grid colours of the journey: vertical lines, horizontal lines; neither is a label colour.
GRID_COLOURS = ("#2a9d8f", "#e9a23b")
BOUNDARY_RESOLUTION = 101
NOISE_FREE_PANEL = 4.6  # inches
#: Half-widths a journey panel may have: the chapter's 1.05 (for tanh-bounded operations) and
#: 7.2 (for linear ones), with their halvings and doublings, so that windows compare at a
#: glance; past the last, the content's own half-width plus 5%.
HALF_WIDTHS = (0.15, 0.3, 0.6, 1.05, 1.8, 3.6, 7.2, 14.4, 28.8, 57.6)
#: Journey layout, in inches: the static figure's panels and the gaps that hold their tick
#: labels and titles; the animation's (larger) panels.
JOURNEY_PANEL, JOURNEY_GAPS = 1.18, (0.42, 0.45)
ANIMATION_PANEL = 3.3
#: GIF timing: each operation stays this long; a step's new hidden state longer; the last
#: frame, the state the classifier reads, longest, before the animation starts again.
FRAME_MS, STEP_END_MS, LAST_FRAME_MS = 1000, 2000, 5000


def plot_variant(
    name: str,
    spec: ModelSpec,
    model: nn.Module,
    test: Squares,
    history: History,
    directory: Path,
) -> list[Path]:
    """Write every picture of the trained variant `name` (architecture `spec`) into
    `directory`: the files `figures.picture_names(spec)` lists; their paths, sorted."""
    title = f"{name} ({spec.describe()})"
    directory = Path(directory)
    if spec.recurrent and isinstance(model, RecurrentClassifier):
        return plot_recurrent_variant(title, model, test, history, directory)
    if not spec.recurrent and isinstance(model, ConvClassifier):
        return plot_conv_variant(title, model, test, history, directory)
    expected = "RecurrentClassifier" if spec.recurrent else "ConvClassifier"
    raise TypeError(f"arch {spec.arch} needs a {expected}, got {type(model).__name__}")


def plot_recurrent_variant(
    title: str, model: RecurrentClassifier, test: Squares, history: History, directory: Path
) -> list[Path]:
    """Write the hidden-space figures, the journeys (a PNG and a GIF per direction) and the
    loss curves of a recurrent variant into `directory`; their paths, sorted."""
    space = hidden_space(model, test)
    recurrent = model.recurrent
    with style():
        pictures = _rendered(
            {
                "transformed_inputs.png": _transformed_inputs_figure(
                    model, space.input_planes, title
                ),
                "hidden_states.png": _hidden_states_figure(model, space, test, title),
                "noise_free_states.png": _noise_free_figure(model, space, title),
                "loss_curves.png": _loss_curves_figure(history, title),
            }
        )
        paths = []
        for direction, journeys in zip(_direction_names(recurrent), space.journeys, strict=True):
            suffix = f"_{direction}" if recurrent.bidirectional else ""
            windows = panel_windows(journeys)
            pictures[f"journey{suffix}.png"] = _journey_picture(
                journeys, windows, direction, title, recurrent
            )
            paths.append(directory / f"journey{suffix}.gif")
            frames, description = _journey_animation(journeys, windows, direction, title, recurrent)
            save_gif(frames, paths[-1], description)
        paths += save_pngs(pictures, directory)
    return sorted(paths)


def plot_conv_variant(
    title: str, model: ConvClassifier, test: Squares, history: History, directory: Path
) -> list[Path]:
    """Write the filters, the edge features of the test sequences and the loss curves of a
    Conv1d variant into `directory`; their paths, sorted."""
    with style():
        pictures = _rendered(
            {
                "conv_filters.png": _conv_filters_figure(model, title),
                "conv_edges.png": _conv_edges_figure(model, test, title),
                "loss_curves.png": _loss_curves_figure(history, title),
            }
        )
        return sorted(save_pngs(pictures, directory))


@torch.no_grad()
def edge_features(model: ConvClassifier, points: np.ndarray) -> np.ndarray:
    """ReLU(conv) of sequences (N, L, 2): (N, C, L - 1), one feature per filter and segment.

    Segment t is the pair of points t and t + 1: the edge the filter sees there.
    """
    sequences = torch.as_tensor(points, dtype=torch.float32).transpose(1, 2)
    return torch.relu(model.conv(sequences)).numpy()


# ---------------------------------------------------------------------------
# Figures and pictures, each returned with the description of what it shows.

#: A figure still to draw, and what it shows.
Described = tuple[Figure, str]
#: A picture already drawn (pixels at DPI), and what it shows.
Picture = tuple[Image.Image, str]


def _rendered(figures: dict[str, Described]) -> dict[str, Picture]:
    """Each figure drawn into pixels, by file name, with its description."""
    return {name: (render(figure), description) for name, (figure, description) in figures.items()}


def _colorbar(figure: Figure, mappable: ScalarMappable, beside: Axes, label: str) -> None:
    """A colorbar right of `beside`, in the figure's right margin (about an inch wide)."""
    width = figure.get_figwidth()
    box = beside.get_position()
    bar = figure.add_axes(
        (box.x1 + 0.2 / width, box.y0 + 0.1 * box.height, 0.15 / width, 0.8 * box.height)
    )
    figure.colorbar(mappable, cax=bar, label=label)


def _direction_names(recurrent: nn.RNNBase) -> tuple[str, ...]:
    return ("forward", "backward") if recurrent.bidirectional else ("forward",)


def _layer_note(recurrent: nn.RNNBase) -> str:
    """Which layer a figure shows, when that is not obvious."""
    layers = recurrent.num_layers
    return f"last layer ({layers} of {layers}), " if layers > 1 else ""


def _plane_note(plane: Plane, recurrent: nn.RNNBase) -> str:
    """What plane the hidden states are drawn in; the boundary is exact in either."""
    if plane.explained is None:
        return "hidden space $(h_0, h_1)$"
    what = "[forward, backward] states" if recurrent.bidirectional else "states"
    return (
        f"{len(plane.mean)}-D {what} projected onto the classifier's direction "
        "and their main direction across it (PCA): the boundary is exact"
    )


def _plain(text: str) -> str:
    """mathtext as plain words for a description: "$W_{ih}x + b_{ih}$" -> "W_ih x + b_ih"."""
    for math, plain in (
        ("$", ""),
        ("{", ""),
        ("}", ""),
        (r"\odot", "⊙"),
        (r"\tanh", "tanh"),
        ("_", ""),
    ):
        text = text.replace(math, plain)
    return " ".join(text.split())


def _boundary_axes(axes: Axes, classifier: nn.Linear, plane: Plane) -> ScalarMappable:
    """Draw P(clockwise) over the plane with its 0.5 line; the filled contour, for a colorbar."""
    limit = 1.1 * plane.extent
    coordinates = np.linspace(-limit, limit, BOUNDARY_RESOLUTION)
    probabilities = boundary_probabilities(classifier, plane, coordinates)
    filled = axes.contourf(
        coordinates,
        coordinates,
        probabilities,
        levels=np.linspace(0, 1, 11),
        cmap=PROBABILITY_CMAP,
        alpha=0.45,
    )
    if probabilities.min() < 0.5 < probabilities.max():
        axes.contour(
            coordinates, coordinates, probabilities, levels=[0.5], colors="black", linewidths=1
        )
    axes.set_xlim(-limit, limit)
    axes.set_ylim(-limit, limit)
    axes.set_aspect("equal")
    x_label, y_label = plane.axis_labels
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    return filled


def _label_handles(extra: Sequence[Line2D] = ()) -> list[Line2D]:
    """Legend entries for the two labels, any extra ones, then the decision boundary."""
    return [
        Line2D([], [], marker="o", linestyle="", color=colour, label=name)
        for colour, name in zip(LABEL_COLOURS[::-1], LABEL_NAMES[::-1], strict=True)
    ] + [*extra, Line2D([], [], color="black", linewidth=1, label="P(clockwise) = 0.5")]


def _transformed_inputs_figure(
    model: RecurrentClassifier, planes: Sequence[Plane], title: str
) -> Described:
    """The corners A, B, C, D, then where W_ih x + b_ih puts them, per gate block and direction."""
    recurrent = model.recurrent
    directions = _direction_names(recurrent)
    blocks = INPUT_BLOCKS[type(recurrent).__name__.lower()]
    layer = "first layer, " if recurrent.num_layers > 1 else ""
    kind = "gate blocks of the " if len(blocks) > 1 else ""
    hidden_dim = len(planes[0].mean)
    where = (
        f"; drawn in the PCA plane of its {hidden_dim}-D hidden states" if hidden_dim > 2 else ""
    )
    what = (
        f"the corners mapped into the hidden space by the {kind}input transform "
        f"$W_{{ih}}x + b_{{ih}}$ ({layer}before any activation{where})"
    )
    figure, panels = panel_figure(
        f"{title}: {what}",
        (len(directions), 1 + len(blocks)),
        (1.7, 1.7),
        gaps=(0.6, 0.8),
    )
    _square_axes(panels[0, 0], CLOCKWISE_FROM_A, "input $x$: the corners", ("$x_0$", "$x_1$"))
    for axes in panels[1:, 0]:
        axes.set_axis_off()
    for row, (direction, plane) in enumerate(zip(directions, planes, strict=True)):
        weights = CellWeights.from_layer(recurrent, 0, reverse=direction == "backward")
        for axes, block, transform in zip(
            panels[row, 1:], blocks, transformed_corners(weights), strict=True
        ):
            block_title = f"{direction}: {block}" if recurrent.bidirectional else block
            corners = plane.project(transform.double().numpy())
            _square_axes(axes, corners, block_title, plane.axis_labels)
    panel_names = ", ".join(_plain(block) for block in blocks)
    description = (
        f"{title}: {_plain(what)}. The first panel is the four corners A, B, C, D of the "
        f"noise-free square joined in clockwise order; the others show where each gate block "
        f"({panel_names}) puts them"
        + (", for the forward and the backward direction" if recurrent.bidirectional else "")
        + "."
    )
    return figure, description


def _square_axes(axes: Axes, corners: np.ndarray, title: str, axis_labels: tuple[str, str]) -> None:
    """Four points (4, 2) named A, B, C, D, joined in reading order so turning is visible."""
    closed = np.concatenate([corners, corners[:1]])
    axes.plot(closed[:, 0], closed[:, 1], color="#888888", linewidth=1, zorder=1)
    halfway = 0.55 * (closed[1:] - closed[:-1])  # arrows point along the reading order
    axes.quiver(
        *corners.T,
        *halfway.T,
        angles="xy",
        scale_units="xy",
        scale=1,
        color="#888888",
        width=0.012,
        zorder=1,
    )
    axes.scatter(corners[:, 0], corners[:, 1], color="black", s=18, zorder=2)
    for corner, letter in zip(corners, CORNER_NAMES, strict=True):
        axes.annotate(
            letter,
            corner,
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=10,
            fontweight="bold",
        )
    has_scripts = "_" in title
    axes.set_title(title, fontsize=MATH_SIZE if has_scripts else None)
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    axes.margins(0.25)
    axes.set_aspect("equal", adjustable="datalim")
    axes.xaxis.set_major_locator(MaxNLocator(4))
    axes.yaxis.set_major_locator(MaxNLocator(4))


def _hidden_states_figure(
    model: RecurrentClassifier, space: HiddenSpace, test: Squares, title: str
) -> Described:
    """Panel t: the layer's output at point t of every test sequence with at least t points."""
    length = space.states.shape[1]
    points = space.plane.project(space.states)  # (N, L, 2)
    colours = np.array(LABEL_COLOURS)[test.labels]
    if model.recurrent.bidirectional:
        # At point t the backward direction has read the rest of the sequence, not points 1..t.
        what = "output at each point (forward has read up to it, backward from the end back to it)"
        panel_title = "at point {}"
    else:
        what, panel_title = "hidden state after each step", "after step {}"
    heading = (
        f"{_layer_note(model.recurrent)}{what} of every test sequence, over the "
        "classifier's decision boundary"
    )
    figure, panels = panel_figure(
        f"{title}: {heading}\n{_plane_note(space.plane, model.recurrent)}; the "
        "classifier reads each sequence where it ends (filled)",
        (1, length),
        (2.3, 2.3),
        right=1.2,
        bottom=1.05,
        gaps=(0.25, 0.0),
        sharey=True,
    )
    for step, axes in enumerate(panels[0]):
        present = space.real[:, step]
        ends = (test.lengths == step + 1)[present]
        filled = _boundary_axes(axes, model.classifier, space.plane)
        axes.scatter(
            *points[present, step].T,
            s=14,
            linewidths=1,
            edgecolors=colours[present],
            facecolors=np.where(ends, colours[present], "none"),
        )
        axes.set_title(f"{panel_title.format(step + 1)} ({present.sum()} sequences)")
        axes.set_xlabel("")
        if step:
            axes.set_ylabel("")
    # One x label under the row: a plane's axis names can be wider than a panel.
    first, last = panels[0, 0].get_position(), panels[0, -1].get_position()
    figure.text(
        (first.x0 + last.x1) / 2,
        first.y0 - 0.3 / figure.get_figheight(),
        space.plane.axis_labels[0],
        ha="center",
        va="top",
        fontsize=MATH_SIZE,
    )
    _colorbar(figure, filled, panels[0, -1], "P(clockwise)")
    ending = Line2D([], [], marker="o", linestyle="", color="black", label="sequence ends here")
    going_on = Line2D(
        [],
        [],
        marker="o",
        linestyle="",
        color="black",
        markerfacecolor="none",
        label="sequence goes on",
    )
    figure.legend(
        handles=_label_handles([ending, going_on]), loc="lower center", ncols=5, frameon=False
    )
    description = (
        f"{title}: {heading}, one panel per step ({length} panels), the {len(test)} test "
        "sequences coloured by label (red clockwise, blue counter-clockwise), filled where the "
        "sequence ends, over the classifier's probability of clockwise with its 0.5 line; "
        f"{_plain(_plane_note(space.plane, model.recurrent))}."
    )
    return figure, description


def _noise_free_figure(model: RecurrentClassifier, space: HiddenSpace, title: str) -> Described:
    """The final states of the 8 noise-free squares, named by corner order and direction."""
    points = space.plane.project(space.noise_free_states)
    directions = np.tile([0, 1], len(points) // 2)  # NOISE_FREE: start-major, ccw then cw
    starts = np.repeat(np.arange(len(CORNER_NAMES)), 2)
    orders = ["".join(CORNER_NAMES[i] for i in order) for order in corner_order(starts, directions)]
    heading = f"{_layer_note(model.recurrent)}final hidden states of the 8 noise-free squares"
    figure, panels = panel_figure(
        f"{title}: {heading}\n{_plane_note(space.plane, model.recurrent)}",
        (1, 1),
        (NOISE_FREE_PANEL, NOISE_FREE_PANEL),
        right=1.3,
        bottom=1.05,
    )
    axes = panels[0, 0]
    filled = _boundary_axes(axes, model.classifier, space.plane)
    axes.scatter(
        *points.T, c=np.array(LABEL_COLOURS)[directions], s=40, edgecolors="black", zorder=3
    )
    labels = [
        f"{order} {'↻ cw' if direction else '↺ ccw'}"
        for order, direction in zip(orders, directions, strict=True)
    ]
    limit = 1.1 * space.plane.extent
    for point, label, direction, (position, alignment) in zip(
        points,
        labels,
        directions,
        _label_places(points, labels, limit, NOISE_FREE_PANEL),
        strict=True,
    ):
        axes.annotate(
            label,
            point,
            xytext=position,
            ha=alignment,
            va="center",
            color=LABEL_COLOURS[direction],
            fontweight="bold",
            arrowprops={"arrowstyle": "-", "color": "#555555", "lw": 0.6},
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
        )
    _colorbar(figure, filled, axes, "P(clockwise)")
    figure.legend(handles=_label_handles(), loc="lower center", ncols=3, frameon=False)
    description = (
        f"{title}: {heading} (each named by its corners in reading order, e.g. ABCD clockwise, "
        "DCBA counter-clockwise), over the classifier's probability of clockwise with its 0.5 "
        f"line; {_plain(_plane_note(space.plane, model.recurrent))}."
    )
    return figure, description


def _label_places(
    points: np.ndarray, labels: Sequence[str], limit: float, size: float
) -> list[tuple[np.ndarray, str]]:
    """Where each label of points (k, 2) goes, and its alignment, in a square view of
    [-limit, limit]^2 drawn `size` inches wide: the nearest free spot around its point.

    Greedy, in order: each label takes the first candidate (close ones first, eight directions)
    that stays in view and overlaps no point and no label placed before it; failing that, the
    last candidate. Label sizes are estimated from their length.
    """
    inches = (points + limit) * size / (2 * limit)
    radii = (0.25, 0.55, 0.85, 1.15)
    angles = np.deg2rad([0, 180, 45, 135, 315, 225, 90, 270])
    offsets = [r * np.array([np.cos(a), np.sin(a)]) for r in radii for a in angles]
    half_height = 0.1
    taken = [np.concatenate([p - 0.06, p + 0.06]) for p in inches]  # boxes: x0, y0, x1, y1
    places = []
    for point, label in zip(inches, labels, strict=True):
        width = 0.095 * len(label)  # 9-point bold DejaVu Sans and its box, about
        for offset in offsets:
            anchor = point + offset
            side = float(np.sign(np.round(offset[0], 6)))  # -1: left of the point, 0: above/below
            x0 = anchor[0] - width * (1 - side) / 2
            box = np.array([x0, anchor[1] - half_height, x0 + width, anchor[1] + half_height])
            inside = box[0] >= 0 and box[1] >= 0 and box[2] <= size and box[3] <= size
            free = all(
                box[0] > other[2] or box[2] < other[0] or box[1] > other[3] or box[3] < other[1]
                for other in taken
            )
            if inside and free:
                break
        taken.append(box)
        alignment = {-1.0: "right", 0.0: "center", 1.0: "left"}[side]
        places.append((anchor * 2 * limit / size - limit, alignment))
    return places


# ---------------------------------------------------------------------------
# The journey of a hidden state: a panel per step and operation, for each square.


def _rung(half: float) -> float:
    """The smallest of HALF_WIDTHS that holds `half`; past the last, `half` plus 5%."""
    return next((rung for rung in HALF_WIDTHS if rung >= half), 1.05 * half)


def panel_windows(journeys: Sequence[Journey]) -> np.ndarray:
    """The view [[x0, x1], [y0, y1]] of every panel (S, L, O, 2, 2) of one direction's journeys.

    A column (an operation) has one size over every step and square, so an operation compares
    at one scale: the smallest of HALF_WIDTHS that holds every panel's content (the moved grid
    and the actual state), so the moved square fills its panels. A window is centred on the
    origin, as the chapter's are, where that holds its content; elsewhere on the nearest
    multiple of its half-width over two that does (so its bounds are round, and windows
    recur), or else on the content.
    """
    content = np.stack(
        [
            np.concatenate(
                [
                    journey.grids.reshape(*journey.grids.shape[:2], -1, 2),
                    journey.states[:, :, None],
                ],
                axis=2,
            )
            for journey in journeys
        ]
    )  # (S, L, O, P, 2)
    low, high = content.min(axis=3), content.max(axis=3)  # (S, L, O, 2)
    halves = np.array([_rung(half) for half in ((high - low) / 2).max(axis=(0, 1, 3))])
    halves = halves[None, None, :, None]
    at_origin = ((-halves <= low) & (high <= halves)).all(axis=-1, keepdims=True)
    centres = (low + high) / 2
    rounded = np.round(centres / (halves / 2)) * (halves / 2)
    rounded_fits = (rounded - halves <= low) & (high <= rounded + halves)
    centres = np.where(at_origin, 0.0, np.where(rounded_fits, rounded, centres))
    return np.stack([centres - halves, centres + halves], axis=-1)


def _sides(window: np.ndarray, reading: Reading) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The window [[x0, x1], [y0, y1]] cut by the decision boundary: the counter-clockwise and
    the clockwise side as polygons (k, 2), possibly empty, and the boundary's segment (2, 2),
    or (0, 2) when it misses the window. Exact: the boundary is a line in the plane."""
    (x0, x1), (y0, y1) = window
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    logits = reading.logit(corners)
    sides, crossings = [], []
    for sign in (-1.0, 1.0):  # keep the corners where sign * logit >= 0, and the crossings
        polygon = []
        for here in range(4):
            there = (here + 1) % 4
            value, next_value = sign * logits[here], sign * logits[there]
            if value >= 0:
                polygon.append(corners[here])
            if (value >= 0) != (next_value >= 0):
                share = value / (value - next_value)
                polygon.append(corners[here] + share * (corners[there] - corners[here]))
                if sign > 0:
                    crossings.append(polygon[-1])
        sides.append(np.array(polygon).reshape(-1, 2))
    return sides[0], sides[1], np.array(crossings).reshape(-1, 2)


def _gate_text(journey: Journey, gate: str | None, step: int) -> str:
    """The values of `gate` at the actual hidden state of `step`, e.g. "r = (0.12, 0.95)"."""
    if gate is None:
        return ""
    values = ", ".join(f"{value:.2f}" for value in journey.gates[gate][step])
    return f"{gate} = ({values})"


def _probability_text(journey: Journey, step: int) -> str:
    """P(clockwise) as the classifier reads it from the actual state after `step`."""
    logit = float(journey.reading.logit(journey.states[step, -1]))
    probability = 1 / (1 + np.exp(-logit))
    if probability > 0.995:
        return "P(clockwise) > 0.99"
    if probability < 0.005:
        return "P(clockwise) < 0.01"
    return f"P(clockwise) = {probability:.2f}"


class _JourneyPanel:
    """One axes showing the hidden plane after one operation of one step: the moved grid, the
    square it started as (dashed), the actual state, in hidden-state columns the path so far,
    and where the classifier reads the state, the two sides of the decision boundary.

    Two axes, both blitted: `frame` (spines, ticks, tick labels) and `axes` (the rest, over
    it). Artists are made once and updated, so a panel can show one journey panel after
    another, here or elsewhere (`place`). Tick labels cost about a millisecond each to draw,
    and windows repeat (all the tanh-bounded columns are the chapter's ±1.05): the frame of a
    window is drawn once, then stamped as pixels wherever the window recurs.
    """

    def __init__(self, figure: Figure, plane: Plane, n_lines: int, ticks: int) -> None:
        """plane: where the journeys are drawn; n_lines: grid lines per family; ticks: about
        how many tick labels each axis gets."""
        self.frame = figure.add_axes((0, 0, 1, 1))
        self.axes = axes = figure.add_axes((0, 0, 1, 1), frameon=False)
        axes.set_axis_off()
        for artist in (self.frame, axes):
            artist.set_animated(True)  # left out of full draws: drawn by `draw` only
        self.stamps: dict[bytes, tuple[list, tuple[float, float]]] = {}
        self.window = np.zeros((2, 2))
        extent = plane.extent
        colours = [GRID_COLOURS[0]] * n_lines + [GRID_COLOURS[1]] * n_lines
        # The first line of each family (x = -extent, y = -extent) is thicker: it shows flips.
        widths = ([1.6] + [0.6] * (n_lines - 1)) * 2
        self.sides = [
            axes.add_patch(
                Polygon(np.zeros((3, 2)), facecolor=colour, alpha=0.2, edgecolor="none", zorder=0)
            )
            for colour in LABEL_COLOURS
        ]
        (self.boundary,) = axes.plot([], [], color="black", linewidth=1.2, zorder=1)
        self.grid = LineCollection([], colors=colours, linewidths=widths, zorder=2)
        axes.add_collection(self.grid)
        axes.plot(
            extent * np.array([-1, -1, 1, 1, -1]),
            extent * np.array([-1, 1, 1, -1, -1]),
            color="#999999",
            linestyle="--",
            linewidth=0.8,
            zorder=1,
        )
        (self.path,) = axes.plot([], [], color="black", linewidth=1, alpha=0.6, zorder=3)
        (self.state,) = axes.plot(
            [],
            [],
            marker="o",
            markersize=6,
            color="black",
            markeredgecolor="white",
            linestyle="",
            zorder=4,
            clip_on=False,  # a state on the window's edge stays whole
        )
        self.probability = axes.text(
            0.5,
            0.96,
            "",
            transform=axes.transAxes,
            ha="center",
            va="top",
            fontsize=8,
            zorder=5,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
        )
        for axis in (self.frame.xaxis, self.frame.yaxis):
            axis.set_major_locator(MaxNLocator(nbins=ticks, steps=[1, 2, 2.5, 5, 10]))
        self.frame.tick_params(length=2.5, pad=1.5)

    def place(self, box: tuple[float, float, float, float]) -> None:
        """Put the panel at `box`: (left, bottom, width, height) in figure fractions."""
        self.frame.set_position(box)
        self.axes.set_position(box)

    def show(self, journey: Journey, window: np.ndarray, step: int, operation: int) -> None:
        """Set up `journey`'s plane of `step` after `operation` (0: the state read in) in
        `window`, [[x0, x1], [y0, y1]], for `draw`."""
        self.window = window
        for axes in (self.frame, self.axes):
            axes.set_xlim(*window[0])
            axes.set_ylim(*window[1])
        self.grid.set_segments(list(journey.grids[step, operation]))
        self.state.set_data(*journey.states[step, operation, :, None])
        last = len(journey.operations) - 1
        if operation in (0, last):
            # Hidden-state columns: the states so far, ending at the one shown.
            path = journey.states[: step + 1, 0]
            if operation == last:
                path = np.concatenate([path, journey.states[step, last:]])
            self.path.set_data(*path.T)
        else:
            self.path.set_data([], [])
        read_here = (step, operation) == (journey.reading.step, last)
        counter_clockwise, clockwise, segment = _sides(window, journey.reading)
        for patch, polygon in zip(self.sides, (counter_clockwise, clockwise), strict=True):
            patch.set_visible(read_here and len(polygon) > 2)
            if len(polygon) > 2:
                patch.set_xy(polygon)
        self.boundary.set_data(*(segment.T if read_here else ([], [])))
        self.probability.set_text(_probability_text(journey, step) if read_here else "")
        # On the side of the panel away from the state, so that it never hides the state.
        state_y = journey.states[step, operation, 1]
        low_half = state_y < window[1].mean()
        self.probability.set_y(0.96 if low_half else 0.04)
        self.probability.set_verticalalignment("top" if low_half else "bottom")

    def draw(self) -> None:
        """Draw the panel as `show` set it up onto the figure's canvas: the frame (stamped if
        this window was drawn before), then the plane over it."""
        figure, canvas = self.frame.figure, self.frame.figure.canvas
        corner = (self.frame.bbox.x0, -self.frame.bbox.y1)  # pixels; Agg's rows go down
        key = self.window.tobytes()
        if key in self.stamps:
            regions, (x, y) = self.stamps[key]
            shift = (round(corner[0] - x), round(corner[1] - y))
            for region in regions:
                x1, y1, x2, y2 = region.get_extents()
                canvas.restore_region(region, (x1, y1, x2, y2), (x1 + shift[0], y1 + shift[1]))
        else:
            figure.draw_artist(self.frame)
            bounds = _frame_bounds(self.frame, canvas.get_renderer())
            self.stamps[key] = ([canvas.copy_from_bbox(box) for box in bounds], corner)
        figure.draw_artist(self.axes)


def _frame_bounds(axes: Axes, renderer: RendererBase) -> list[Bbox]:
    """Where a drawn axes' frame lies, in pixels: the box with its x tick labels under it, and
    the box with its y tick labels beside it. Two rectangles, not their union: the corner
    between them may hold a neighbour's tick label."""
    bounds = []
    for axis in (axes.xaxis, axes.yaxis):
        low, high = sorted(axis.get_view_interval())
        # The ticks drawn are the first of majorTicks, one per location in view.
        labels = [
            tick.label1.get_window_extent(renderer)
            for tick, location in zip(axis.majorTicks, axis.get_majorticklocs(), strict=False)
            if low <= location <= high
        ]
        bounds.append(Bbox.union([axes.bbox, *labels]).padded(3))
    return bounds


def _journey_note(journeys: Sequence[Journey], direction: str, recurrent: nn.RNNBase) -> str:
    """Which layer and direction the journeys are, what they read, in which plane."""
    notes = [f"{_layer_note(recurrent)}{direction} direction"]
    reading = journeys[0].reading
    notes.append(f"the classifier reads it after step {reading.step + 1}")
    if isinstance(recurrent, nn.LSTM):
        notes.append("every grid point shares the actual cell state $c$")
    plane = journeys[0].plane
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


def _journey_legend(figure: Figure, plane: Plane, y: float, ncols: int) -> None:
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
            Patch(facecolor=colour, alpha=0.2, label=f"read as {name}")
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


#: The journey legend: its entries, and the height of a row of them (inches, at MATH_SIZE).
LEGEND_ENTRIES, LEGEND_ROW = 9, 0.27


def _legend_columns(width: float) -> int:
    """How many legend entries fit side by side in `width` inches (about 3.1 inches each)."""
    return max(1, min(3, int(width // 3.1)))


def _two_lines(formula: str) -> str:
    """A one-piece mathtext formula "$a = b$" as "$a =$" over "$b$", to fit a column head."""
    if formula.count("$") == 2 and formula.startswith("$") and " = " in formula:
        name, value = formula[1:-1].split(" = ", 1)
        return f"${name} =$\n${value}$"
    return formula


def _journey_description(
    title: str, journeys: Sequence[Journey], direction: str, recurrent: nn.RNNBase, what: str
) -> str:
    """The description of a journey picture: which squares, which operations, how to read it."""
    squares = " and ".join(f"the {_square_heading(journey, direction)}" for journey in journeys)
    operations = ", ".join(_plain(operation.formula) for operation in journeys[0].operations)
    gates = sorted({op.gate for op in journeys[0].operations if op.gate is not None})
    reading = journeys[0].reading
    return (
        f"{title}: {what} of the hidden state, {_layer_note(recurrent)}{direction} direction, "
        f"for {squares}: how each operation of the cell ({operations}) moves the whole hidden "
        "plane, drawn as a grid, with the actual hidden state as a dot and its path so far. "
        "Every panel has tick labels; one scale per operation. "
        + (f"The values of the gates ({', '.join(gates)}) are in the titles. " if gates else "")
        + f"After step {reading.step + 1}, where the classifier reads this direction, the "
        "decision boundary splits the panel into the side read as clockwise (red) and the "
        "side read as counter-clockwise (blue), and the classifier's P(clockwise) is printed."
    )


def _journey_picture(
    journeys: Sequence[Journey],
    windows: np.ndarray,
    direction: str,
    title: str,
    recurrent: nn.RNNBase,
) -> Picture:
    """Rows: the steps of each square in turn; columns: the cell's operations; each panel the
    whole plane after that operation. Laid out in inches, by hand; the panels are one axes
    moved from place to place and blitted, which costs a fraction of an axes per panel."""
    n_steps, n_operations = journeys[0].states.shape[:2]
    panel, (column_gap, row_gap) = JOURNEY_PANEL, JOURNEY_GAPS
    left, right, block_head = 0.95, 0.16, 0.42
    width = left + n_operations * panel + (n_operations - 1) * column_gap + right
    heading = wrap(
        f"{title}: journey of the hidden state, {_journey_note(journeys, direction, recurrent)}",
        width - 0.2,
        TITLE_SIZE,
    )
    top = 0.15 + text_lines_height(heading, TITLE_SIZE) + 0.5  # the column heads: two lines
    block = block_head + n_steps * panel + (n_steps - 1) * row_gap
    ncols = _legend_columns(width)
    bottom = 0.4 + -(-LEGEND_ENTRIES // ncols) * LEGEND_ROW
    height = top + len(journeys) * block + (len(journeys) - 1) * row_gap + bottom
    figure = new_figure(width, height)
    figure.text(0.5, 1 - 0.1 / height, heading, ha="center", va="top", fontsize=TITLE_SIZE)

    def column_x(operation: int) -> float:
        return left + operation * (panel + column_gap)

    for operation, step_operation in enumerate(journeys[0].operations):
        figure.text(
            (column_x(operation) + panel / 2) / width,
            1 - (top - 0.05) / height,
            _two_lines(step_operation.formula),
            ha="center",
            va="bottom",
            fontsize=MATH_SIZE,
        )
    places = []  # (journey, its windows, step, top of the row in inches)
    y = top
    for journey, square_windows in zip(journeys, windows, strict=True):
        figure.text(
            0.1 / width,
            1 - (y + 0.05) / height,
            _square_heading(journey, direction),
            ha="left",
            va="top",
            fontsize=10,
            fontweight="bold",
            color=LABEL_COLOURS[journey.label],
        )
        y += block_head
        for step in range(n_steps):
            figure.text(
                (left - 0.45) / width,
                1 - (y + panel / 2) / height,
                f"step {step + 1}\nreads {journey.corners[step]}",
                ha="right",
                va="center",
                fontsize=9,
            )
            places.append((journey, square_windows, step, y))
            y += panel + row_gap
    _journey_legend(figure, journeys[0].plane, (bottom - 0.35) / 2 / height, ncols)
    journey_panel = _JourneyPanel(figure, journeys[0].plane, journeys[0].grids.shape[2] // 2, 3)
    figure.canvas.draw()
    for journey, square_windows, step, y in places:
        for operation, step_operation in enumerate(journey.operations):
            box = (column_x(operation) / width, 1 - (y + panel) / height)
            journey_panel.place((*box, panel / width, panel / height))
            journey_panel.show(journey, square_windows[step, operation], step, operation)
            # An explicit y: matplotlib then skips measuring the ticks to place the title.
            gates = _gate_text(journey, step_operation.gate, step)
            journey_panel.axes.set_title(gates, fontsize=9, pad=3, y=1)
            journey_panel.draw()
    what = "journey (one row per step, one column per operation)"
    return drawn_image(figure), _journey_description(title, journeys, direction, recurrent, what)


def _journey_animation(
    journeys: Sequence[Journey],
    windows: np.ndarray,
    direction: str,
    title: str,
    recurrent: nn.RNNBase,
) -> tuple[Iterator[tuple[Image.Image, int]], str]:
    """One frame per operation of every step, the squares side by side, each panel at its
    column's scale in the journey picture; the frames (with their milliseconds) and the
    description. One figure: what stays is drawn once, what changes is blitted per frame."""
    n_steps, n_operations = journeys[0].states.shape[:2]
    panel, gap, left, right = ANIMATION_PANEL, 0.8, 0.55, 0.3
    width = left + len(journeys) * panel + (len(journeys) - 1) * gap + right
    heading = wrap(
        f"{title}: journey of the hidden state, {_journey_note(journeys, direction, recurrent)}",
        width - 0.2,
        TITLE_SIZE,
    )
    heads = 0.7  # over each panel: its square (up to two lines), then what it reads, the gates
    top = 0.15 + text_lines_height(heading, TITLE_SIZE) + 0.45 + heads
    ncols = _legend_columns(width)
    bottom = 0.45 + -(-LEGEND_ENTRIES // ncols) * LEGEND_ROW
    height = top + panel + bottom
    figure = new_figure(width, height)
    figure.text(0.5, 1 - 0.1 / height, heading, ha="center", va="top", fontsize=TITLE_SIZE)
    # What changes from frame to frame: the step, the formula (its own Text, so that
    # matplotlib parses each formula once), and under each square's name, what it reads.
    formula_y = 1 - (top - heads - 0.05) / height
    step_text = figure.text(0.5, formula_y, "", ha="right", va="bottom", fontsize=14)
    formula = figure.text(0.5, formula_y, "", ha="left", va="bottom", fontsize=14)
    panels = []
    for index, journey in enumerate(journeys):
        x = left + index * (panel + gap)
        panels.append(_JourneyPanel(figure, journey.plane, journey.grids.shape[2] // 2, 3))
        panels[-1].place((x / width, bottom / height, panel / width, panel / height))
        figure.text(
            (x + panel / 2) / width,
            (bottom + panel + heads - 0.05) / height,
            _square_heading(journey, direction, separator="\n"),
            ha="center",
            va="top",
            fontsize=10,
            color=LABEL_COLOURS[journey.label],
        )
    _journey_legend(figure, journeys[0].plane, (bottom - 0.4) / 2 / height, ncols)
    for text in (step_text, formula):
        text.set_animated(True)
    figure.canvas.draw()
    background = figure.canvas.copy_from_bbox(figure.bbox)

    def frames() -> Iterator[tuple[Image.Image, int]]:
        for step in range(n_steps):
            for operation in range(n_operations):
                step_operation = journeys[0].operations[operation]
                step_text.set_text(f"step {step + 1} of {n_steps}:  ")
                formula.set_text(step_operation.formula)
                for journey_panel, journey, square_windows in zip(
                    panels, journeys, windows, strict=True
                ):
                    journey_panel.show(journey, square_windows[step, operation], step, operation)
                    gates = _gate_text(journey, step_operation.gate, step)
                    journey_panel.axes.set_title(
                        f"reads {journey.corners[step]}" + (f";  {gates}" if gates else ""),
                        fontsize=10,
                        y=1,
                    )
                if (step, operation) == (n_steps - 1, n_operations - 1):
                    milliseconds = LAST_FRAME_MS
                elif operation == n_operations - 1:
                    milliseconds = STEP_END_MS
                else:
                    milliseconds = FRAME_MS
                figure.canvas.restore_region(background)
                for text in (step_text, formula):
                    figure.draw_artist(text)
                for journey_panel in panels:
                    journey_panel.draw()
                yield gif_frame(figure), milliseconds

    what = (
        f"animation of the journey ({n_steps * n_operations} frames, one per operation of each "
        "step, with the operation's formula as the title; the last frame is held "
        f"{LAST_FRAME_MS / 1000:g} s)"
    )
    return frames(), _journey_description(title, journeys, direction, recurrent, what)


# ---------------------------------------------------------------------------
# Curves and the convolution's pictures.


def _loss_curves_figure(history: History, title: str) -> Described:
    """Loss and accuracy per epoch, training against validation; one legend under both."""
    figure, panels = panel_figure(
        f"{title}: loss and accuracy per epoch",
        (1, 2),
        (3.2, 2.4),
        left=0.85,
        bottom=1.0,
        gaps=(0.95, 0.0),
        heads=0.1,
    )
    loss, accuracy = panels[0]
    for axes, train, val, label in (
        (loss, history.train_loss, history.val_loss, "loss (binary cross-entropy)"),
        (accuracy, history.train_accuracy, history.val_accuracy, "accuracy"),
    ):
        axes.plot(history.epochs, train, color="#444444")
        axes.plot(history.epochs, val, color="#e07b00")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
    loss.set_yscale("log")
    # Plain numbers (0.001, 0.7), not powers of ten; within one decade, every minor tick too.
    plain = FuncFormatter(lambda value, _: f"{value:.3g}")
    loss.yaxis.set_major_formatter(plain)
    losses = np.concatenate([history.train_loss, history.val_loss])
    within_a_decade = np.log10(losses.max() / losses.min()) < 1
    loss.yaxis.set_minor_formatter(plain if within_a_decade else NullFormatter())
    accuracy.set_ylim(0, 1.02)
    figure.legend(
        handles=[
            Line2D([], [], color="#444444", label="training"),
            Line2D([], [], color="#e07b00", label="validation"),
        ],
        loc="lower center",
        ncols=2,
        frameon=False,
    )
    description = (
        f"{title}: training (grey) and validation (orange) loss, on a log scale, and accuracy "
        f"over {len(history.epochs)} epochs."
    )
    return figure, description


def _conv_filters_figure(model: ConvClassifier, title: str) -> Described:
    """Each filter's kernel as a heat map: rows the coordinates, columns the two points."""
    kernels = model.conv.weight.detach().double().numpy()  # (C, 2, 2): filter, feature, tap
    biases = model.conv.bias.detach().double().numpy()
    limit = np.abs(kernels).max()
    figure, panels = panel_figure(
        f"{title}: learned filters over two consecutive points (kernel size 2); "
        "feature = ReLU(sum of weight · coordinate + bias)",
        (1, len(kernels)),
        (2.4, 2.4),
        left=0.5,
        right=1.2,
        gaps=(0.6, 0.0),
    )
    for index, (axes, kernel, bias) in enumerate(zip(panels[0], kernels, biases, strict=True)):
        image = axes.imshow(kernel, cmap="PuOr", vmin=-limit, vmax=limit)
        for (row, column), weight in np.ndenumerate(kernel):
            dark = abs(weight) > 0.6 * limit  # white text where the colour is deep
            axes.text(
                column,
                row,
                f"{weight:+.2f}",
                ha="center",
                va="center",
                fontsize=10,
                color="white" if dark else "black",
            )
        axes.set_xticks([0, 1], ["point t", "point t + 1"])
        axes.set_yticks([0, 1], ["x", "y"])
        axes.set_title(f"filter {index + 1}: bias {bias:+.2f}")
    _colorbar(figure, image, panels[0, -1], "weight")
    description = (
        f"{title}: the {len(kernels)} learned filter(s) as 2 x 2 heat maps of weights (rows: "
        "the x and y coordinate; columns: point t and point t + 1), each weight and bias printed."
    )
    return figure, description


def _conv_edges_figure(model: ConvClassifier, test: Squares, title: str) -> Described:
    """Per filter: each test sequence's feature on its three segments, coloured by label."""
    features = edge_features(model, test.points)  # (N, C, L - 1)
    n_filters, n_segments = features.shape[1:]
    # Classifier weight of each (filter, segment), as flatten orders the features.
    weights = model.classifier.weight.detach().double().numpy().reshape(n_filters, n_segments)
    figure, panels = panel_figure(
        f"{title}: edge feature of every test sequence on each segment (the classifier weighs "
        "each segment's feature by the weight under it)",
        (1, n_filters),
        (4.6, 2.6),
        bottom=1.05,
        gaps=(0.8, 0.0),
    )
    segments = np.arange(1, n_segments + 1)
    for index, axes in enumerate(panels[0]):
        for label in (0, 1):
            # Each label a little to its side, so neither hides the other.
            shift = 0.08 * (2 * label - 1)
            values = features[test.labels == label, index]
            lines = np.stack(np.broadcast_arrays(segments + shift, values), axis=-1)
            axes.add_collection(
                LineCollection(lines, colors=LABEL_COLOURS[label], alpha=0.08, linewidths=0.8)
            )
            axes.scatter(
                np.broadcast_to(segments + shift, values.shape),
                values,
                s=8,
                color=LABEL_COLOURS[label],
                alpha=0.6,
            )
        axes.set_xticks(
            segments,
            [
                f"points {s}→{s + 1}\nweight {w:+.2f}"
                for s, w in zip(segments, weights[index], strict=True)
            ],
        )
        axes.set_xlim(0.5, n_segments + 0.5)
        axes.set_ylabel(f"ReLU(filter {index + 1})")
        axes.margins(y=0.1)
        axes.grid(axis="y", alpha=0.3)
    figure.legend(handles=_label_handles()[:2], loc="lower center", ncols=2, frameon=False)
    description = (
        f"{title}: the edge feature ReLU(filter) of each of the {len(test)} test sequences on "
        f"each of its {n_segments} segments (pairs of consecutive points), red clockwise, blue "
        "counter-clockwise, each segment labelled with the classifier's weight for it."
    )
    return figure, description
