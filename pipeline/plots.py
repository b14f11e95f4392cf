"""Figures of a trained variant, drawn from its weights: PNGs and one animated GIF.

A recurrent variant gets the chapter's story of the hidden state: where the corners land in
the hidden space, where the test sequences' states travel step by step over the decision
boundary, where the eight noise-free squares end up, and the journey of one hidden state
through every operation of the cell, as a grid of figures and as an animation. A Conv1d
variant gets its filters and the edge features they compute. Both get their loss curves.

Pictures are byte-for-byte reproducible (see `pipeline.figures`). The numbers come from
`pipeline.journey`; this module draws.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image
from torch import nn

from pipeline.cells import CellWeights
from pipeline.figures import gif_frame, panel_figure, save_gif, save_pngs, style, wrap
from pipeline.journey import (
    CLOCKWISE_FROM_A,
    INPUT_BLOCKS,
    HiddenSpace,
    Journey,
    Plane,
    boundary_probabilities,
    hidden_space,
    transformed_corners,
)
from pipeline.models import ConvClassifier, RecurrentClassifier
from pipeline.squares import CORNER_NAMES, Squares, corner_order

if TYPE_CHECKING:  # only its fields are read: the report stage needs no history module
    from pipeline.history import History

#: One colour per label, the same in every figure: 0 = counter-clockwise, 1 = clockwise.
LABEL_COLOURS = ("#1f77b4", "#d62728")
LABEL_NAMES = ("counter-clockwise", "clockwise")
#: P(clockwise) from blue (counter-clockwise) to red (clockwise), matching LABEL_COLOURS.
PROBABILITY_CMAP = "RdBu_r"
JOURNEY_TITLE_SIZE = 10
#: GIF timing: each operation stays this long; the new hidden state of a step stays longer.
FRAME_MS, STEP_END_MS = 900, 1800
#: Grid colours of the journey: vertical lines, horizontal lines; neither is a label colour.
GRID_COLOURS = ("#2a9d8f", "#e9a23b")
BOUNDARY_RESOLUTION = 101
NOISE_FREE_PANEL = 4.6  # inches
#: What a journey panel shows, for a caption.
JOURNEY_KEY = (
    "grid: the whole hidden plane, moved by each operation (dashed: where it started the step); "
    "dot: the actual hidden state; line: its path so far"
)


def plot_variant(
    model: RecurrentClassifier | ConvClassifier, test: Squares, history: "History", directory: Path
) -> list[Path]:
    """Write every figure of a trained variant into `directory`; their paths, sorted.

    Dispatches on the model: see plot_recurrent_variant and plot_conv_variant.
    """
    if isinstance(model, RecurrentClassifier):
        return plot_recurrent_variant(model, test, history, directory)
    if isinstance(model, ConvClassifier):
        return plot_conv_variant(model, test, history, directory)
    raise TypeError(f"expected a RecurrentClassifier or ConvClassifier, got {type(model).__name__}")


def plot_recurrent_variant(
    model: RecurrentClassifier, test: Squares, history: "History", directory: Path
) -> list[Path]:
    """Write the hidden-space figures, the journey (a PNG per direction, one GIF) and the loss
    curves of a recurrent variant into `directory`; their paths, sorted."""
    space = hidden_space(model, test)
    recurrent = model.recurrent
    name = _describe(model)
    directory = Path(directory)
    with style():
        figures = {
            "transformed_inputs.png": _transformed_inputs_figure(model, space.input_planes, name),
            "hidden_states.png": _hidden_states_figure(model, space, test, name),
            "noise_free_states.png": _noise_free_figure(model, space, name),
            "loss_curves.png": _loss_curves_figure(history, name),
        }
        for journey, direction in zip(space.journeys, _direction_names(recurrent), strict=True):
            suffix = f"_{direction}" if recurrent.bidirectional else ""
            figures[f"journey{suffix}.png"] = _journey_figure(journey, direction, name, recurrent)
        paths = save_pngs(figures, directory)
        paths.append(directory / "journey.gif")
        save_gif(_journey_frames(space.journeys, name, recurrent), paths[-1])
    return sorted(paths)


def plot_conv_variant(
    model: ConvClassifier, test: Squares, history: "History", directory: Path
) -> list[Path]:
    """Write the filters, the edge features of the test sequences and the loss curves of a
    Conv1d variant into `directory`; their paths, sorted."""
    channels = model.conv.out_channels
    name = f"Conv1d ({channels} filter{'s' * (channels > 1)})"
    directory = Path(directory)
    with style():
        figures = {
            "conv_filters.png": _conv_filters_figure(model, name),
            "conv_edges.png": _conv_edges_figure(model, test, name),
            "loss_curves.png": _loss_curves_figure(history, name),
        }
        return sorted(save_pngs(figures, directory))


@torch.no_grad()
def edge_features(model: ConvClassifier, points: np.ndarray) -> np.ndarray:
    """ReLU(conv) of sequences (N, L, 2): (N, C, L - 1), one feature per filter and segment.

    Segment t is the pair of points t and t + 1: the edge the filter sees there.
    """
    sequences = torch.as_tensor(points, dtype=torch.float32).transpose(1, 2)
    return torch.relu(model.conv(sequences)).numpy()


# ---------------------------------------------------------------------------
# Figures, layout and saving.


def _colorbar(figure: Figure, mappable: ScalarMappable, beside: Axes, label: str) -> None:
    """A colorbar right of `beside`, in the figure's right margin (about an inch wide)."""
    width = figure.get_figwidth()
    box = beside.get_position()
    bar = figure.add_axes(
        (box.x1 + 0.2 / width, box.y0 + 0.1 * box.height, 0.15 / width, 0.8 * box.height)
    )
    figure.colorbar(mappable, cax=bar, label=label)


def _describe(model: RecurrentClassifier) -> str:
    """The variant for a title, e.g. "GRU (2 layers, bidirectional, packed)"."""
    recurrent = model.recurrent
    traits = [f"{recurrent.num_layers} layers"] if recurrent.num_layers > 1 else []
    traits += ["bidirectional"] * recurrent.bidirectional + ["packed"] * model.packed
    kind = type(recurrent).__name__.upper()
    return f"{kind} ({', '.join(traits)})" if traits else kind


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
    model: RecurrentClassifier, planes: Sequence[Plane], name: str
) -> Figure:
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
    figure, panels = panel_figure(
        f"{name}: the corners mapped into the hidden space by the {kind}input transform "
        f"$W_{{ih}}x + b_{{ih}}$ ({layer}before any activation{where})",
        (len(directions), 1 + len(blocks)),
        (2.2, 2.2),
    )
    _square_axes(panels[0, 0], CLOCKWISE_FROM_A, "input $x$: the corners", ("$x_0$", "$x_1$"))
    for axes in panels[1:, 0]:
        axes.set_axis_off()
    for row, (direction, plane) in enumerate(zip(directions, planes, strict=True)):
        weights = CellWeights.from_layer(recurrent, 0, reverse=direction == "backward")
        for axes, block, transform in zip(
            panels[row, 1:], blocks, transformed_corners(weights), strict=True
        ):
            title = f"{direction}: {block}" if recurrent.bidirectional else block
            corners = plane.project(transform.double().numpy())
            _square_axes(axes, corners, title, plane.axis_labels)
    return figure


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
    axes.set_title(title)
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    axes.margins(0.25)
    axes.set_aspect("equal", adjustable="datalim")


def _hidden_states_figure(
    model: RecurrentClassifier, space: HiddenSpace, test: Squares, name: str
) -> Figure:
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
    figure, panels = panel_figure(
        f"{name}: {_layer_note(model.recurrent)}{what} of every test sequence, over the "
        f"classifier's decision boundary\n{_plane_note(space.plane, model.recurrent)}; the "
        "classifier reads each sequence where it ends (filled)",
        (1, length),
        (2.8, 2.8),
        right=1.2,
        bottom=0.95,
        gaps=(0.25, 0.0),
        sharey=True,
    )
    for step, axes in enumerate(panels[0]):
        present = space.real[:, step]
        ends = (test.lengths == step + 1)[present]
        filled = _boundary_axes(axes, model.classifier, space.plane)
        axes.scatter(
            *points[present, step].T,
            s=16,
            linewidths=1,
            edgecolors=colours[present],
            facecolors=np.where(ends, colours[present], "none"),
        )
        axes.set_title(f"{panel_title.format(step + 1)} ({present.sum()} sequences)")
        if step:
            axes.set_ylabel("")
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
    return figure


def _noise_free_figure(model: RecurrentClassifier, space: HiddenSpace, name: str) -> Figure:
    """The final states of the 8 noise-free squares, named by corner order and direction."""
    points = space.plane.project(space.noise_free_states)
    directions = np.tile([0, 1], len(points) // 2)  # NOISE_FREE: start-major, ccw then cw
    starts = np.repeat(np.arange(len(CORNER_NAMES)), 2)
    orders = ["".join(CORNER_NAMES[i] for i in order) for order in corner_order(starts, directions)]
    figure, panels = panel_figure(
        f"{name}: {_layer_note(model.recurrent)}final hidden states of the 8 noise-free "
        f"squares\n{_plane_note(space.plane, model.recurrent)}",
        (1, 1),
        (NOISE_FREE_PANEL, NOISE_FREE_PANEL),
        right=1.2,
        bottom=0.95,
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
    return figure


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


class _JourneyPanel:
    """One axes showing the hidden plane after one operation: the moved grid, the square it
    started as (dashed), the actual state, and in hidden-state columns the path so far.

    Artists are made once and updated, so one panel can be every frame of the animation.
    """

    def __init__(self, axes: Axes, journey: Journey, limits: np.ndarray) -> None:
        self.journey = journey
        extent = journey.plane.extent
        n_lines = journey.grids.shape[2] // 2
        colours = [GRID_COLOURS[0]] * n_lines + [GRID_COLOURS[1]] * n_lines
        # The first line of each family (x = -extent, y = -extent) is thicker: it shows flips.
        widths = ([1.6] + [0.6] * (n_lines - 1)) * 2
        self.grid = LineCollection([], colors=colours, linewidths=widths)
        axes.add_collection(self.grid)
        axes.plot(
            extent * np.array([-1, -1, 1, 1, -1]),
            extent * np.array([-1, 1, 1, -1, -1]),
            color="#999999",
            linestyle="--",
            linewidth=0.8,
        )
        (self.path,) = axes.plot([], [], color="black", linewidth=1, alpha=0.6)
        (self.state,) = axes.plot(
            [], [], marker="o", markersize=7, color="black", markeredgecolor="white", linestyle=""
        )
        axes.set_xlim(limits[0])
        axes.set_ylim(limits[1])
        axes.set_aspect("equal")
        axes.set_xticks([])
        axes.set_yticks([])

    @property
    def moving(self) -> tuple[Artist, ...]:
        """The artists that change from one operation to the next."""
        return self.grid, self.path, self.state

    def show(self, step: int, operation: int) -> None:
        """Draw the plane of `step` after `operation` (0: the state read in)."""
        self.grid.set_segments(list(self.journey.grids[step, operation]))
        self.state.set_data(*self.journey.states[step, operation, :, None])
        last = len(self.journey.operations) - 1
        if operation in (0, last):
            # Hidden-state columns: the states so far, ending at the one shown.
            path = self.journey.states[: step + 1, 0]
            if operation == last:
                path = np.concatenate([path, self.journey.states[step, last:]])
            self.path.set_data(*path.T)
        else:
            self.path.set_data([], [])


def _limits(journey: Journey, operations: slice = slice(None)) -> np.ndarray:
    """[[x0, x1], [y0, y1]]: a square view of the journey's `operations` over all steps, with
    the plane's square [-extent, extent]^2 always in view for scale."""
    extent = journey.plane.extent
    points = np.concatenate(
        [
            journey.grids[:, operations].reshape(-1, 2),
            journey.states[:, operations].reshape(-1, 2),
            [[-extent, -extent], [extent, extent]],
        ]
    )
    low, high = points.min(axis=0), points.max(axis=0)
    centre, half = (low + high) / 2, 1.08 * (high - low).max() / 2
    return np.stack([centre - half, centre + half], axis=1)


def _journey_title(journey: Journey, direction: str, recurrent: nn.RNNBase) -> str:
    """Which layer and direction a journey is, what it reads and in which plane it is drawn."""
    notes = [f"{_layer_note(recurrent)}{direction} direction reads {', '.join(journey.corners)}"]
    if direction == "backward":
        notes.append("the classifier reads this direction after its first step")
    if isinstance(recurrent, nn.LSTM):
        notes.append("every grid point shares the actual cell state $c$")
    if journey.plane.explained is not None:
        notes.append(
            f"grid in the PCA plane of the {len(journey.plane.mean)}-D hidden states (approximate)"
        )
    return "; ".join(notes)


def _journey_figure(journey: Journey, direction: str, name: str, recurrent: nn.RNNBase) -> Figure:
    """Rows: steps; columns: operations; each panel the whole plane after that operation."""
    n_steps, n_operations = journey.states.shape[:2]
    figure, panels = panel_figure(
        f"Journey of a hidden state: {name}, {_journey_title(journey, direction, recurrent)}\n"
        f"{JOURNEY_KEY}",
        (n_steps, n_operations),
        (1.6, 1.6),
        left=0.35,
        right=0.1,
        bottom=0.1,
        gaps=(0.1, 0.1),
        title_size=JOURNEY_TITLE_SIZE,
    )
    for operation in range(n_operations):
        # One scale per column: the same operation compares across steps.
        limits = _limits(journey, slice(operation, operation + 1))
        for step in range(n_steps):
            _JourneyPanel(panels[step, operation], journey, limits).show(step, operation)
        panels[0, operation].set_title(journey.operations[operation], fontsize=8)
    for step, corner in enumerate(journey.corners):
        panels[step, 0].set_ylabel(f"step {step + 1}: reads {corner}")
    return figure


def _journey_frames(
    journeys: Sequence[Journey], name: str, recurrent: nn.RNNBase
) -> Iterator[tuple[Image.Image, int]]:
    """One frame per operation of every step, all directions side by side; one figure reused."""
    n_steps, n_operations = journeys[0].states.shape[:2]

    def caption(step: int, operation: int) -> str:
        reads = " / ".join(journey.corners[step] for journey in journeys)
        return (
            f"Journey of a hidden state: {name}\nstep {step + 1} of {n_steps}, reads {reads}: "
            f"{journeys[0].operations[operation]}"
        )

    figure, axes = panel_figure(
        caption(0, 0),
        (1, len(journeys)),
        (4.4, 4.4),
        left=0.2,
        right=0.2,
        bottom=0.5,
        gaps=(0.3, 0.0),
        heads=0.5,  # panel titles of up to three lines
        title_size=JOURNEY_TITLE_SIZE,
    )
    panels = []
    for panel_axes, journey, direction in zip(
        axes[0], journeys, _direction_names(recurrent), strict=True
    ):
        title = _journey_title(journey, direction, recurrent).replace("; ", ";\n")
        panel_axes.set_title(title, fontsize=8)
        # One scale for the whole animation, so that motion is motion.
        panels.append(_JourneyPanel(panel_axes, journey, _limits(journey)))
    key = wrap(JOURNEY_KEY, figure.get_figwidth(), 8)
    figure.text(0.5, 0.1 / figure.get_figheight(), key, ha="center", fontsize=8)
    title = figure.suptitle(caption(0, 0), fontsize=JOURNEY_TITLE_SIZE)  # the same Text, back
    # Blitting: what stays is drawn once; each frame redraws only what moves over it.
    moving = [title, *(artist for panel in panels for artist in panel.moving)]
    for artist in moving:
        artist.set_animated(True)
    canvas = figure.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(figure.bbox)
    for step in range(n_steps):
        for operation in range(n_operations):
            for panel in panels:
                panel.show(step, operation)
            title.set_text(caption(step, operation))
            canvas.restore_region(background)
            for artist in moving:
                figure.draw_artist(artist)
            last = operation == n_operations - 1
            yield gif_frame(canvas), STEP_END_MS if last else FRAME_MS


def _loss_curves_figure(history: "History", name: str) -> Figure:
    """Loss and accuracy per epoch, training against validation."""
    figure, panels = panel_figure(
        f"{name}: loss and accuracy per epoch", (1, 2), (3.2, 2.4), gaps=(0.9, 0.0)
    )
    loss, accuracy = panels[0]
    for axes, train, val, label, corner in (
        (loss, history.train_loss, history.val_loss, "loss (binary cross-entropy)", "upper right"),
        (accuracy, history.train_accuracy, history.val_accuracy, "accuracy", "lower right"),
    ):
        axes.plot(history.epochs, train, label="training", color="#444444")
        axes.plot(history.epochs, val, label="validation", color="#e07b00")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(loc=corner)  # fixed: "best" would put it elsewhere in each variant
    loss.set_yscale("log")
    accuracy.set_ylim(0, 1.02)
    return figure


def _conv_filters_figure(model: ConvClassifier, name: str) -> Figure:
    """Each filter's kernel as a heat map: rows the coordinates, columns the two points."""
    kernels = model.conv.weight.detach().double().numpy()  # (C, 2, 2): filter, feature, tap
    biases = model.conv.bias.detach().double().numpy()
    limit = np.abs(kernels).max()
    figure, panels = panel_figure(
        f"{name}: learned filters over two consecutive points (kernel size 2); "
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
    return figure


def _conv_edges_figure(model: ConvClassifier, test: Squares, name: str) -> Figure:
    """Per filter: each test sequence's feature on its three segments, coloured by label."""
    features = edge_features(model, test.points)  # (N, C, L - 1)
    n_filters, n_segments = features.shape[1:]
    # Classifier weight of each (filter, segment), as flatten orders the features.
    weights = model.classifier.weight.detach().double().numpy().reshape(n_filters, n_segments)
    figure, panels = panel_figure(
        f"{name}: edge feature of every test sequence on each segment (the classifier weighs "
        "each segment's feature by the weight under it)",
        (1, n_filters),
        (4.6, 2.6),
        bottom=0.75,
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
    panels[0, 0].legend(handles=_label_handles()[:2], loc="upper left")
    return figure
