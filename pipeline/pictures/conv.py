"""conv_filters.png and conv_edges.png: what a Conv1d variant learned, and what it reads.

Drawn from its `ConvSpace` (filters and edge features, computed before drawing).
"""

import numpy as np
from matplotlib.collections import LineCollection

from pipeline.pictures.canvas import panel_figure, render
from pipeline.pictures.conv_space import ConvSpace
from pipeline.pictures.shared import LABEL_COLOURS, Picture, Subject, colorbar, label_handles


def conv_filters(subject: Subject[ConvSpace]) -> Picture:
    """Each filter's kernel as a heat map: rows the coordinates, columns the two points."""
    kernels, biases, title = subject.numbers.kernels, subject.numbers.biases, subject.title
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
    colorbar(figure, image, panels[0, -1], "weight")
    description = (
        f"{title}: the {len(kernels)} learned filter(s) as 2 x 2 heat maps of weights (rows: "
        "the x and y coordinate; columns: point t and point t + 1), each weight and bias printed."
    )
    return render(figure), description


def conv_edges(subject: Subject[ConvSpace]) -> Picture:
    """Per filter: each test sequence's feature on its three segments, coloured by label."""
    space, title = subject.numbers, subject.title
    n_filters, n_segments = space.features.shape[1:]
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
            values = space.features[space.labels == label, index]
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
                for s, w in zip(segments, space.segment_weights[index], strict=True)
            ],
        )
        axes.set_xlim(0.5, n_segments + 0.5)
        axes.set_ylabel(f"ReLU(filter {index + 1})")
        axes.margins(y=0.1)
        axes.grid(axis="y", alpha=0.3)
    figure.legend(handles=label_handles()[:2], loc="lower center", ncols=2, frameon=False)
    description = (
        f"{title}: the edge feature ReLU(filter) of each of the {len(space.labels)} test "
        f"sequences on each of its {n_segments} segments (pairs of consecutive points), red "
        "clockwise, blue counter-clockwise, each segment labelled with the classifier's weight "
        "for it."
    )
    return render(figure), description
