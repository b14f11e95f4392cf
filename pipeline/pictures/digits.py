"""The pictures of a variant trained on digits: order gives an image its meaning.

digits_as_read.png: a few test digits as images, and below each the same digit as the
sequence the variant reads, step after step laid out 8 to a line: for `rows` and `pixels`
the image again, for a permuted or shuffled order noise to the eye (the pixels are all
there, only their order changed). digits_final_states.png: what the classifier reads (the
hidden state after the last step; conv1d: its rectified features) for every test image, in
the plane of its first two principal components, coloured by digit. digits_per_class.png:
the test accuracy of each digit beside the confusion matrix.

Numbers first (`pipeline.pictures.from_weights.digits_space`), then drawing; the principal
components come from an SVD in float64 with each component's sign fixed, so the same
weights give the same bytes.
"""

from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.lines import Line2D

from pipeline.pictures.canvas import panel_figure, render
from pipeline.pictures.shared import Picture, Subject

#: How many test digits digits_as_read.png shows: the first test image of digits 0, 1, ...
SHOWN = 6
#: One colour per digit.
DIGIT_COLOURS = colormaps["tab10"]


@dataclass(frozen=True)
class DigitsSpace:
    """What the digits pictures draw, computed from the weights before any drawing.

    order: the reading order; images (K, 8, 8) and read (K, 8, 8): SHOWN test digits as
    images and as read, step t at line t // 8, column t % 8; shown_labels (K,); plane (N, 2):
    every test image's final state in its first two principal components, explained (2,):
    their shares of the variance; labels, predicted (N,); classes; confusion (C, C).
    """

    order: str
    images: np.ndarray
    read: np.ndarray
    shown_labels: np.ndarray
    plane: np.ndarray
    explained: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    classes: tuple[str, ...]
    confusion: np.ndarray


def principal_plane(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) states projected on their first two principal components (N, 2), and the
    share of the variance each explains (2,). A component's sign is chosen so that its
    largest loading is positive: the same states always give the same picture."""
    centred = states - states.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    components = components[:2]
    if len(components) < 2:  # a single number per image: the second axis is flat
        components = np.vstack([components, np.zeros_like(components)])
        singular = np.append(singular, 0.0)
    largest = np.argmax(np.abs(components), axis=1)
    components *= np.where(components[np.arange(2), largest] < 0, -1.0, 1.0)[:, None]
    variance = singular**2
    explained = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    return centred @ components.T, explained


def digits_as_read(subject: Subject[DigitsSpace]) -> Picture:
    """A few digits as images (top) and as the sequence the variant reads (bottom)."""
    space = subject.numbers
    words = space.order.replace("_", " ")
    figure, panels = panel_figure(
        f"{subject.title}: digits as images, and as the sequence it reads ({words})",
        (2, len(space.images)),
        (0.9, 0.9),
        left=1.3,
        gaps=(0.15, 0.45),
        heads=0.25,
    )
    for column, (image, read, label) in enumerate(
        zip(space.images, space.read, space.shown_labels, strict=True)
    ):
        for row, pixels in enumerate((image, read)):
            axes = panels[row, column]
            axes.imshow(pixels, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
        panels[0, column].set_title(f"digit {space.classes[label]}")
    panels[0, 0].set_ylabel("image")
    panels[1, 0].set_ylabel("as read:\nstep t at\nline t // 8")
    readable = space.order in ("rows", "pixels")
    description = (
        f"{subject.title}: the first test image of each digit 0 to {len(space.images) - 1} "
        f"(top) and the same image as the sequence the variant reads in order {words}, "
        "step after step, 8 steps to a line (bottom): "
        + (
            "the order is the image's own, so the sequence looks like the image."
            if readable
            else "the pixels are all there but in another order, so the eye sees noise."
        )
    )
    return render(figure), description


def digits_final_states(subject: Subject[DigitsSpace]) -> Picture:
    """Every test image's final state in its first two principal components, by digit."""
    space = subject.numbers
    figure, panels = panel_figure(
        f"{subject.title}: final state of every test image, first two principal components",
        (1, 1),
        (4.2, 3.6),
        right=1.2,
    )
    axes = panels[0, 0]
    for label, name in enumerate(space.classes):
        chosen = space.labels == label
        axes.scatter(*space.plane[chosen].T, s=8, color=DIGIT_COLOURS(label), label=name)
    axes.set_xlabel(f"principal component 1 ({space.explained[0]:.0%} of the variance)")
    axes.set_ylabel(f"component 2 ({space.explained[1]:.0%})")
    axes.grid(alpha=0.3)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=DIGIT_COLOURS(label), label=name)
        for label, name in enumerate(space.classes)
    ]
    axes.legend(handles=handles, title="digit", loc="upper left", bbox_to_anchor=(1.02, 1))
    description = (
        f"{subject.title}: what the classifier reads for each of the {len(space.labels)} test "
        f"images, projected on its first two principal components "
        f"({space.explained[0]:.0%} and {space.explained[1]:.0%} of the variance), one colour "
        "per digit: digits the model tells apart form separate clusters."
    )
    return render(figure), description


def digits_per_class(subject: Subject[DigitsSpace]) -> Picture:
    """The test accuracy of each digit, beside the confusion matrix with its counts."""
    space = subject.numbers
    totals = space.confusion.sum(axis=1)
    accuracy = np.divide(
        np.diag(space.confusion), totals, out=np.zeros(len(totals)), where=totals > 0
    )
    figure, panels = panel_figure(
        f"{subject.title}: test results per digit", (1, 2), (3.6, 3.4), gaps=(1.0, 0.0)
    )
    bars, matrix = panels[0]
    positions = np.arange(len(space.classes))
    bars.bar(positions, accuracy, color=[DIGIT_COLOURS(label) for label in positions])
    chance = 1 / len(space.classes)
    bars.axhline(chance, color="black", linestyle="--", linewidth=1)
    bars.set_xticks(positions, space.classes)
    bars.set_ylim(0, 1.05)
    bars.set_xlabel("digit")
    bars.set_ylabel(f"test accuracy (dashed: chance, {chance:.0%})")
    matrix.imshow(space.confusion, cmap="Blues")
    for (true, guess), count in np.ndenumerate(space.confusion):
        if count:
            colour = "white" if count > space.confusion.max() / 2 else "black"
            matrix.text(guess, true, str(count), ha="center", va="center", color=colour)
    matrix.set_xticks(positions, space.classes)
    matrix.set_yticks(positions, space.classes)
    matrix.set_xlabel("predicted digit")
    matrix.set_ylabel("true digit")
    values = ", ".join(
        f"{name} {share:.0%}" for name, share in zip(space.classes, accuracy, strict=True)
    )
    description = (
        f"{subject.title}: test accuracy per digit ({values}; chance {chance:.0%}) and the "
        "confusion matrix, true digit by row, predicted by column, with its counts."
    )
    return render(figure), description
