"""One panel of a journey, drawn again and again: the hidden plane after one operation of
one step, wherever the journey picture or its animation needs it.

A journey picture has dozens of panels and its animation dozens of frames; making an axes
for each would cost more than all the rest. So a `JourneyPanel` is one pair of axes whose
artists are made once and updated, moved from place to place and blitted, and whose frame
(`StampedFrame`: spines, ticks, tick labels) is drawn once per window and then stamped.
"""

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from pipeline.pictures.journeys import Journey, Verdict
from pipeline.pictures.planes import Plane
from pipeline.pictures.shared import LABEL_COLOURS

#: Grid colours of the journey: vertical lines, horizontal lines; neither is a label colour.
GRID_COLOURS = ("#2a9d8f", "#e9a23b")
#: Opacity of the label colour that shades each side of the decision boundary.
SHADE_ALPHA = 0.2


class StampedFrame:
    """An axes that shows only a window's frame: spines, ticks and tick labels.

    Tick labels cost about a millisecond each to draw, and windows repeat (all the
    tanh-bounded columns are the chapter's ±1.05): the frame of a window is drawn once, then
    stamped as pixels wherever the window recurs.
    """

    def __init__(self, figure: Figure, ticks: int) -> None:
        """ticks: about how many tick labels each axis gets."""
        self.axes = figure.add_axes((0, 0, 1, 1))
        self.axes.set_animated(True)  # left out of full draws: drawn by `draw` only
        self.stamps: dict[bytes, tuple[list, tuple[float, float]]] = {}
        self.window = np.zeros((2, 2))
        for axis in (self.axes.xaxis, self.axes.yaxis):
            axis.set_major_locator(MaxNLocator(nbins=ticks, steps=[1, 2, 2.5, 5, 10]))
        self.axes.tick_params(length=2.5, pad=1.5)

    def show(self, window: np.ndarray) -> None:
        """Frame `window`, [[x0, x1], [y0, y1]], at the next `draw`."""
        self.window = window
        self.axes.set_xlim(*window[0])
        self.axes.set_ylim(*window[1])

    def draw(self) -> None:
        """Draw the frame onto the figure's canvas, or stamp it if this window was drawn before."""
        figure, canvas = self.axes.figure, self.axes.figure.canvas
        corner = (self.axes.bbox.x0, -self.axes.bbox.y1)  # pixels; Agg's rows go down
        key = self.window.tobytes()
        if key in self.stamps:
            regions, (x, y) = self.stamps[key]
            shift = (round(corner[0] - x), round(corner[1] - y))
            for region in regions:
                x1, y1, x2, y2 = region.get_extents()
                canvas.restore_region(region, (x1, y1, x2, y2), (x1 + shift[0], y1 + shift[1]))
        else:
            figure.draw_artist(self.axes)
            bounds = _frame_bounds(self.axes, canvas.get_renderer())
            self.stamps[key] = ([canvas.copy_from_bbox(box) for box in bounds], corner)


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


class JourneyPanel:
    """The hidden plane after one operation of one step: the moved grid, the square it started
    as (dashed), the actual state, in hidden-state columns the path so far, and where the
    classifier reads the state, the two sides of the decision boundary and P(clockwise).

    Two axes, both blitted: `frame` (a StampedFrame) and `axes` (the rest, over it). A panel
    shows one journey panel after another, here or elsewhere (`place`, `show`, `draw`).
    """

    def __init__(self, figure: Figure, plane: Plane, n_lines: int, ticks: int) -> None:
        """plane: where the journeys are drawn; n_lines: grid lines per family; ticks: about
        how many tick labels each axis gets."""
        self.frame = StampedFrame(figure, ticks)
        self.axes = axes = figure.add_axes((0, 0, 1, 1), frameon=False)
        axes.set_axis_off()
        axes.set_animated(True)  # left out of full draws: drawn by `draw` only
        # Made in drawing order where zorders tie: the boundary under the dashed square.
        self.sides, self.boundary, self.probability = _decision_artists(axes)
        self.grid, self.path, self.state = _plane_artists(axes, plane, n_lines)

    def place(self, box: tuple[float, float, float, float]) -> None:
        """Put the panel at `box`: (left, bottom, width, height) in figure fractions."""
        self.frame.axes.set_position(box)
        self.axes.set_position(box)

    def show(
        self, journey: Journey, verdict: Verdict, window: np.ndarray, step: int, operation: int
    ) -> None:
        """Set up `journey`'s plane of `step` after `operation` (0: the state read in) in
        `window`, [[x0, x1], [y0, y1]], for `draw`; `verdict` shows where the classifier reads."""
        self.frame.show(window)
        self.axes.set_xlim(*window[0])
        self.axes.set_ylim(*window[1])
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
        read_here = (step, operation) == journey.reading_panel
        for patch, polygon in zip(
            self.sides, (verdict.counter_clockwise, verdict.clockwise), strict=True
        ):
            patch.set_visible(read_here and len(polygon) > 2)
            if patch.get_visible():
                patch.set_xy(polygon)
        self.boundary.set_data(*(verdict.boundary.T if read_here else ([], [])))
        self.probability.set_text(_probability_text(verdict.probability) if read_here else "")
        # On the side of the panel away from the state, so that it never hides the state.
        state_y = journey.states[step, operation, 1]
        low_half = state_y < window[1].mean()
        self.probability.set_y(0.96 if low_half else 0.04)
        self.probability.set_verticalalignment("top" if low_half else "bottom")

    def draw(self) -> None:
        """Draw the panel as `show` set it up onto the figure's canvas: the frame, then the
        plane over it."""
        self.frame.draw()
        self.axes.figure.draw_artist(self.axes)


def _decision_artists(axes: Axes) -> tuple[list[Polygon], Line2D, Text]:
    """The two sides of the decision boundary (counter-clockwise, clockwise), shaded in their
    label's colour; the boundary; P(clockwise) in a box. Empty until a panel shows them."""
    sides = [
        axes.add_patch(
            Polygon(
                np.zeros((3, 2)), facecolor=colour, alpha=SHADE_ALPHA, edgecolor="none", zorder=0
            )
        )
        for colour in LABEL_COLOURS
    ]
    (boundary,) = axes.plot([], [], color="black", linewidth=1.2, zorder=1)
    probability = axes.text(
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
    return sides, boundary, probability


def _plane_artists(axes: Axes, plane: Plane, n_lines: int) -> tuple[LineCollection, Line2D, Line2D]:
    """The moved grid (n_lines per family), the square it started as (dashed, fixed), the
    path so far and the actual state. Empty until a panel shows them."""
    colours = [GRID_COLOURS[0]] * n_lines + [GRID_COLOURS[1]] * n_lines
    # The first line of each family (x = -extent, y = -extent) is thicker: it shows flips.
    widths = ([1.6] + [0.6] * (n_lines - 1)) * 2
    grid = LineCollection([], colors=colours, linewidths=widths, zorder=2)
    axes.add_collection(grid)
    axes.plot(
        plane.extent * np.array([-1, -1, 1, 1, -1]),
        plane.extent * np.array([-1, 1, 1, -1, -1]),
        color="#999999",
        linestyle="--",
        linewidth=0.8,
        zorder=1,
    )
    (path,) = axes.plot([], [], color="black", linewidth=1, alpha=0.6, zorder=3)
    (state,) = axes.plot(
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
    return grid, path, state


def _probability_text(probability: float) -> str:
    """P(clockwise) as the classifier reads it, to two places, or past them."""
    if probability > 0.995:
        return "P(clockwise) > 0.99"
    if probability < 0.005:
        return "P(clockwise) < 0.01"
    return f"P(clockwise) = {probability:.2f}"
