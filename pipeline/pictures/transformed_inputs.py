"""transformed_inputs.png: what a recurrent variant's first layer makes of the four corners
before any activation, one panel per gate block of its input transform W_ih x + b_ih.

Drawn from its `HiddenSpace` (the corners already transformed and projected).
"""

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from pipeline.library.squares import CORNER_NAMES
from pipeline.pictures.canvas import MATH_SIZE, panel_figure, render
from pipeline.pictures.hidden_space import CLOCKWISE_FROM_A, INPUT_BLOCKS, HiddenSpace
from pipeline.pictures.shared import Picture, Subject, plain


def transformed_inputs(subject: Subject[HiddenSpace]) -> Picture:
    """The corners A, B, C, D, then where W_ih x + b_ih puts them, per gate block and direction."""
    space, title = subject.numbers, subject.title
    blocks = INPUT_BLOCKS[space.kind]
    layer = "first layer, " if space.layers > 1 else ""
    kind = "gate blocks of the " if len(blocks) > 1 else ""
    hidden_dim = len(space.input_planes[0].mean)
    where = (
        f"; drawn in the PCA plane of its {hidden_dim}-D hidden states" if hidden_dim > 2 else ""
    )
    what = (
        f"the corners mapped into the hidden space by the {kind}input transform "
        f"$W_{{ih}}x + b_{{ih}}$ ({layer}before any activation{where})"
    )
    figure, panels = panel_figure(
        f"{title}: {what}",
        (len(space.directions), 1 + len(blocks)),
        (1.7, 1.7),
        gaps=(0.6, 0.8),
    )
    _square_axes(panels[0, 0], CLOCKWISE_FROM_A, "input $x$: the corners", ("$x_0$", "$x_1$"))
    for axes in panels[1:, 0]:
        axes.set_axis_off()
    for row, (direction, plane, corners_per_block) in enumerate(
        zip(space.directions, space.input_planes, space.input_corners, strict=True)
    ):
        for axes, block, corners in zip(panels[row, 1:], blocks, corners_per_block, strict=True):
            block_title = f"{direction}: {block}" if space.bidirectional else block
            _square_axes(axes, corners, block_title, plane.axis_labels)
    panel_names = ", ".join(plain(block) for block in blocks)
    description = (
        f"{title}: {plain(what)}. The first panel is the four corners A, B, C, D of the "
        f"noise-free square joined in clockwise order; the others show where each gate block "
        f"({panel_names}) puts them"
        + (", for the forward and the backward direction" if space.bidirectional else "")
        + "."
    )
    return render(figure), description


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
