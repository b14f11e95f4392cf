"""hidden_states.png and noise_free_states.png: where a recurrent variant's hidden states
lie over the classifier's decision boundary, step by step for the test sequences and at
the end for the eight noise-free squares.

Drawn from its `HiddenSpace` (states, plane and boundary, computed before drawing).
"""

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.library.squares import CORNER_NAMES, corner_order
from pipeline.pictures.canvas import MATH_SIZE, panel_figure, render
from pipeline.pictures.hidden_space import HiddenSpace
from pipeline.pictures.shared import (
    LABEL_COLOURS,
    Picture,
    Subject,
    colorbar,
    label_handles,
    layer_note,
    plain,
)

#: P(clockwise) from blue (counter-clockwise) to red (clockwise), matching LABEL_COLOURS.
PROBABILITY_CMAP = "RdBu_r"
#: The probability's shading over a plane: bands between these levels, at this alpha.
PROBABILITY_LEVELS, PROBABILITY_ALPHA = np.linspace(0, 1, 11), 0.45
NOISE_FREE_PANEL = 4.6  # inches


def hidden_states(subject: Subject[HiddenSpace]) -> Picture:
    """Panel t: the layer's output at point t of every test sequence with at least t points."""
    space, title = subject.numbers, subject.title
    length = space.states.shape[1]
    if space.bidirectional:
        # At point t the backward direction has read the rest of the sequence, not points 1..t.
        what = "output at each point (forward has read up to it, backward from the end back to it)"
        panel_title = "at point {}"
    else:
        what, panel_title = "hidden state after each step", "after step {}"
    heading = (
        f"{layer_note(space)}{what} of every test sequence, over the classifier's decision boundary"
    )
    figure, panels = panel_figure(
        f"{title}: {heading}\n{_plane_note(space)}; the classifier reads each sequence where "
        "it ends (filled)",
        (1, length),
        (2.3, 2.3),
        right=1.2,
        bottom=1.05,
        gaps=(0.25, 0.0),
        sharey=True,
    )
    points = space.plane.project(space.states)  # (N, L, 2)
    for step, axes in enumerate(panels[0]):
        filled = _states_after(axes, space, points, step)
        axes.set_title(f"{panel_title.format(step + 1)} ({space.real[:, step].sum()} sequences)")
        axes.set_xlabel("")
        if step:
            axes.set_ylabel("")
    _row_label(figure, panels[0], space.plane.axis_labels[0])
    colorbar(figure, filled, panels[0, -1], "P(clockwise)")
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
        handles=label_handles([ending, going_on]), loc="lower center", ncols=5, frameon=False
    )
    description = (
        f"{title}: {heading}, one panel per step ({length} panels), the {len(space.labels)} "
        "test sequences coloured by label (red clockwise, blue counter-clockwise), filled "
        "where the sequence ends, over the classifier's probability of clockwise with its 0.5 "
        f"line; {plain(_plane_note(space))}."
    )
    return render(figure), description


def _states_after(axes: Axes, space: HiddenSpace, points: np.ndarray, step: int) -> ScalarMappable:
    """The states after `step` (points (N, L, 2): in the plane) of the sequences that have it,
    over the boundary; each filled where its sequence ends. The boundary's filled contour, for
    a colorbar."""
    present = space.real[:, step]
    ends = (space.lengths == step + 1)[present]
    colours = np.array(LABEL_COLOURS)[space.labels[present]]
    filled = _boundary_axes(axes, space)
    axes.scatter(
        *points[present, step].T,
        s=14,
        linewidths=1,
        edgecolors=colours,
        facecolors=np.where(ends, colours, "none"),
    )
    return filled


def _row_label(figure: Figure, row: Sequence[Axes], label: str) -> None:
    """One x label under a row of panels: a plane's axis names can be wider than a panel."""
    first, last = row[0].get_position(), row[-1].get_position()
    figure.text(
        (first.x0 + last.x1) / 2,
        first.y0 - 0.3 / figure.get_figheight(),
        label,
        ha="center",
        va="top",
        fontsize=MATH_SIZE,
    )


def noise_free_states(subject: Subject[HiddenSpace]) -> Picture:
    """The final states of the 8 noise-free squares, named by corner order and direction."""
    space, title = subject.numbers, subject.title
    points = space.plane.project(space.noise_free_states)
    directions = np.tile([0, 1], len(points) // 2)  # NOISE_FREE: start-major, ccw then cw
    starts = np.repeat(np.arange(len(CORNER_NAMES)), 2)
    orders = ["".join(CORNER_NAMES[i] for i in order) for order in corner_order(starts, directions)]
    heading = f"{layer_note(space)}final hidden states of the 8 noise-free squares"
    figure, panels = panel_figure(
        f"{title}: {heading}\n{_plane_note(space)}",
        (1, 1),
        (NOISE_FREE_PANEL, NOISE_FREE_PANEL),
        right=1.3,
        bottom=1.05,
    )
    axes = panels[0, 0]
    filled = _boundary_axes(axes, space)
    axes.scatter(
        *points.T, c=np.array(LABEL_COLOURS)[directions], s=40, edgecolors="black", zorder=3
    )
    labels = [
        f"{order} {'↻ cw' if direction else '↺ ccw'}"
        for order, direction in zip(orders, directions, strict=True)
    ]
    for point, label, direction, (position, alignment) in zip(
        points,
        labels,
        directions,
        _label_places(points, labels, space.boundary.limit, NOISE_FREE_PANEL),
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
    colorbar(figure, filled, axes, "P(clockwise)")
    figure.legend(handles=label_handles(), loc="lower center", ncols=3, frameon=False)
    description = (
        f"{title}: {heading} (each named by its corners in reading order, e.g. ABCD clockwise, "
        "DCBA counter-clockwise), over the classifier's probability of clockwise with its 0.5 "
        f"line; {plain(_plane_note(space))}."
    )
    return render(figure), description


def _plane_note(space: HiddenSpace) -> str:
    """What plane the hidden states are drawn in; the boundary is exact in either."""
    plane = space.plane
    if plane.explained is None:
        return "hidden space $(h_0, h_1)$"
    what = "[forward, backward] states" if space.bidirectional else "states"
    return (
        f"{len(plane.mean)}-D {what} projected onto the classifier's direction "
        "and their main direction across it (PCA): the boundary is exact"
    )


def _boundary_axes(axes: Axes, space: HiddenSpace) -> ScalarMappable:
    """Draw P(clockwise) over the plane with its 0.5 line; the filled contour, for a colorbar."""
    boundary = space.boundary
    coordinates, probabilities, limit = boundary.coordinates, boundary.probabilities, boundary.limit
    filled = axes.contourf(
        coordinates,
        coordinates,
        probabilities,
        levels=PROBABILITY_LEVELS,
        cmap=PROBABILITY_CMAP,
        alpha=PROBABILITY_ALPHA,
    )
    if probabilities.min() < 0.5 < probabilities.max():
        axes.contour(
            coordinates, coordinates, probabilities, levels=[0.5], colors="black", linewidths=1
        )
    axes.set_xlim(-limit, limit)
    axes.set_ylim(-limit, limit)
    axes.set_aspect("equal")
    x_label, y_label = space.plane.axis_labels
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    return filled


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
