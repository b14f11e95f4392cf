"""Every picture a variant gets: its file name, the function that draws it, and for which
kinds of variant; in the order a reader needs them.

One list for the plot stage (what it writes, `write_pictures`), the report (what it shows,
`picture_names`) and the tests. Adding a picture is one drawing function, taking the
variant's `Subject`, and one entry in PICTURES. Nothing here needs torch, so the report
reads the list without importing it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar

from pipeline.library.settings import ModelSpec
from pipeline.pictures.canvas import save_gif, save_png, style
from pipeline.pictures.conv import conv_edges, conv_filters
from pipeline.pictures.curves import loss_curves
from pipeline.pictures.digits import digits_as_read, digits_final_states, digits_per_class
from pipeline.pictures.hidden_states import hidden_states, noise_free_states
from pipeline.pictures.journey import journey_animation, journey_picture
from pipeline.pictures.padding import padding_picture
from pipeline.pictures.shared import Subject
from pipeline.pictures.transformed_inputs import transformed_inputs

#: What a drawing function hands over to be saved: a PNG's image, a GIF's frames.
Pixels = TypeVar("Pixels")

#: Which variants get a picture: sets of the kinds that `kind_of` names.
CONV = frozenset({"conv1d"})
ONE_WAY, TWO_WAY = frozenset({"recurrent"}), frozenset({"bidirectional recurrent"})
RECURRENT = ONE_WAY | TWO_WAY
#: Any variant trained on digits: the squares' pictures (corners, noise-free squares) do
#: not apply, the digits' do.
DIGITS = frozenset({"digits"})
EVERY = CONV | RECURRENT | DIGITS


def kind_of(spec: ModelSpec, data: str = "squares") -> str:
    """The kind of variant `spec` on data of kind `data` describes, as far as its pictures
    go."""
    if data == "digits":
        return "digits"
    (kind,) = CONV if not spec.recurrent else TWO_WAY if spec.bidirectional else ONE_WAY
    return kind  # each of CONV, ONE_WAY, TWO_WAY holds one kind


@dataclass(frozen=True)
class Entry(Generic[Pixels]):
    """One picture: its file name, the kinds of variant that get it, the function that draws
    it from a variant's Subject (its pixels and its description), and how those are saved."""

    file_name: str
    kinds: frozenset[str]
    draw: Callable[[Subject[Any]], tuple[Pixels, str]]
    save: Callable[[Pixels, Path, str], None]

    def write(self, subject: Subject[Any], directory: Path) -> Path:
        """Draw the picture of `subject` and save it in `directory`; its path."""
        pixels, description = self.draw(subject)
        path = directory / self.file_name
        self.save(pixels, path, description)
        return path


PICTURES: tuple[Entry[Any], ...] = (
    Entry("loss_curves.png", EVERY, loss_curves, save_png),
    Entry("hidden_states.png", RECURRENT, hidden_states, save_png),
    Entry("noise_free_states.png", RECURRENT, noise_free_states, save_png),
    Entry("journey.png", ONE_WAY, partial(journey_picture, direction=0), save_png),
    Entry("journey_forward.png", TWO_WAY, partial(journey_picture, direction=0), save_png),
    Entry("journey_backward.png", TWO_WAY, partial(journey_picture, direction=1), save_png),
    Entry("journey.gif", ONE_WAY, partial(journey_animation, direction=0), save_gif),
    Entry("journey_forward.gif", TWO_WAY, partial(journey_animation, direction=0), save_gif),
    Entry("journey_backward.gif", TWO_WAY, partial(journey_animation, direction=1), save_gif),
    Entry("transformed_inputs.png", RECURRENT, transformed_inputs, save_png),
    Entry("conv_filters.png", CONV, conv_filters, save_png),
    Entry("conv_edges.png", CONV, conv_edges, save_png),
    Entry("digits_as_read.png", DIGITS, digits_as_read, save_png),
    Entry("digits_final_states.png", DIGITS, digits_final_states, save_png),
    Entry("digits_per_class.png", DIGITS, digits_per_class, save_png),
)


#: The picture of a packed variant beside its padded twin: the padding stage draws it, since
#: a plot stage sees one variant.
PADDING = Entry("padding.png", RECURRENT, padding_picture, save_png)


def pictures(spec: ModelSpec, data: str = "squares") -> tuple[Entry[Any], ...]:
    """The pictures a variant of `spec` on data of kind `data` gets, in the order a reader
    needs them."""
    kind = kind_of(spec, data)
    return tuple(entry for entry in PICTURES if kind in entry.kinds)


def picture_names(spec: ModelSpec, data: str = "squares") -> tuple[str, ...]:
    """The files plot@<model> writes for a variant of `spec` on data of kind `data`, in the
    order a reader needs them."""
    return tuple(entry.file_name for entry in pictures(spec, data))


def write_pictures(
    spec: ModelSpec, subject: Subject[Any], directory: Path, data: str = "squares"
) -> list[Path]:
    """Draw and save every picture of `spec` on data of kind `data` from `subject` into
    `directory`; their paths, sorted. Under the canvas's style, whatever the user's rc file
    says."""
    with style():
        return sorted(entry.write(subject, directory) for entry in pictures(spec, data))


def write_padding(subject: Subject[Any], directory: Path) -> Path:
    """Draw and save PADDING of `subject` into `directory`, under the canvas's style; its path."""
    with style():
        return PADDING.write(subject, directory)
