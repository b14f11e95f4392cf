"""What several picture families share: the subject they draw, the label colours, the
colourbar and legend entries, and the words that go with them.

Every picture is drawn from a `Subject`: its variant's title, training history and numbers,
all computed before the first figure is made (see `pipeline.pictures.from_weights`), so that
drawing only places what it is handed.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from pipeline.library.history import History
from pipeline.library.squares import LABEL_NAMES
from pipeline.pictures.hidden_space import HiddenSpace

#: One colour per label, the same in every figure: index = label (see LABEL_NAMES).
LABEL_COLOURS = ("#1f77b4", "#d62728")

#: A picture drawn into pixels at DPI, and what it shows (its description, the alt text).
Picture = tuple[Image.Image, str]
#: An animation: its frames with their milliseconds, and what it shows.
Animation = tuple[Iterator[tuple[Image.Image, int]], str]

#: The numbers a family of pictures draws: a HiddenSpace, a ConvSpace.
Numbers = TypeVar("Numbers", covariant=True)


@dataclass(frozen=True)
class Subject(Generic[Numbers]):
    """What the pictures of one trained variant are drawn from.

    title: the variant's name and architecture, which every picture starts with; history: its
    training curves (None in a picture of two variants); numbers: what its kind of variant
    draws, computed before any drawing; loss: the loss it trained on, in words.
    """

    title: str
    history: History | None
    numbers: Numbers
    loss: str = "binary cross-entropy"


def colorbar(figure: Figure, mappable: ScalarMappable, beside: Axes, label: str) -> None:
    """A colorbar right of `beside`, in the figure's right margin (about an inch wide)."""
    width = figure.get_figwidth()
    box = beside.get_position()
    bar = figure.add_axes(
        (box.x1 + 0.2 / width, box.y0 + 0.1 * box.height, 0.15 / width, 0.8 * box.height)
    )
    figure.colorbar(mappable, cax=bar, label=label)


def label_handles(extra: Sequence[Line2D] = ()) -> list[Line2D]:
    """Legend entries for the two labels, any extra ones, then the decision boundary."""
    return [
        Line2D([], [], marker="o", linestyle="", color=colour, label=name)
        for colour, name in zip(LABEL_COLOURS[::-1], LABEL_NAMES[::-1], strict=True)
    ] + [*extra, Line2D([], [], color="black", linewidth=1, label="P(clockwise) = 0.5")]


def layer_note(space: HiddenSpace) -> str:
    """Which layer a figure shows, when that is not obvious."""
    return f"last layer ({space.layers} of {space.layers}), " if space.layers > 1 else ""


def plain(text: str) -> str:
    """mathtext as plain words for a description: "$W_{ih}x + b_{ih}$" -> "W_ih x + b_ih"."""
    for math, words in (
        ("$", ""),
        ("{", ""),
        ("}", ""),
        (r"\odot", "⊙"),
        (r"\tanh", "tanh"),
        ("_", ""),
    ):
        text = text.replace(math, words)
    return " ".join(text.split())
