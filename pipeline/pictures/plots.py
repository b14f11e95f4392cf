"""The pictures of a trained variant, drawn from its weights: PNGs and animated GIFs.

A recurrent variant gets the chapter's story of the hidden state: where the corners land in
the hidden space, where the test sequences' states travel step by step over the decision
boundary, where the eight noise-free squares end up, and the journey of the hidden state
through every operation of the cell, as a grid of panels and as an animation, per direction.
A Conv1d variant gets its filters and the edge features they compute. A variant trained on
digits gets the digits' pictures instead (`pipeline.pictures.digits`). All get their loss
curves.

Numbers first, then drawing: everything a picture shows is computed from the weights up front
(`pipeline.pictures.from_weights`), then each picture the registry lists for the variant
(`pipeline.pictures.registry`) is drawn from those numbers. Every picture names its variant
in its title and carries a description of what it shows (the report's alt text); pictures
are byte-for-byte reproducible and their text is at least 10 px at 1:1 (see
`pipeline.pictures.canvas`).
"""

from pathlib import Path

from torch import nn

from pipeline.library.history import History
from pipeline.library.models import ConvClassifier, RecurrentClassifier
from pipeline.library.settings import ModelSpec
from pipeline.library.squares import Squares
from pipeline.pictures.digits_numbers import digits_space
from pipeline.pictures.from_weights import conv_space, hidden_space, padding_space
from pipeline.pictures.registry import write_padding, write_pictures
from pipeline.pictures.shared import Subject


def plot_variant(
    name: str,
    spec: ModelSpec,
    model: nn.Module,
    test: Squares,
    history: History,
    directory: Path,
) -> list[Path]:
    """Write every picture of the trained variant `name` (architecture `spec`) into
    `directory`: the files `registry.picture_names(spec, test.kind)` lists; their paths,
    sorted."""
    if isinstance(model, RecurrentClassifier | ConvClassifier) and test.kind == "digits":
        numbers = digits_space(model, test)
    elif spec.recurrent and isinstance(model, RecurrentClassifier):
        numbers = hidden_space(model, test)
    elif not spec.recurrent and isinstance(model, ConvClassifier):
        numbers = conv_space(model, test)
    else:
        expected = "RecurrentClassifier" if spec.recurrent else "ConvClassifier"
        raise TypeError(f"arch {spec.arch} needs a {expected}, got {type(model).__name__}")
    loss = "binary cross-entropy" if spec.shape.outputs == 1 else "cross-entropy"
    subject = Subject(f"{name} ({spec.describe()})", history, numbers, loss)
    return write_pictures(spec, subject, Path(directory), test.kind)


def plot_padding(
    packed: tuple[str, RecurrentClassifier],
    padded: tuple[str, RecurrentClassifier],
    test: Squares,
    directory: Path,
) -> Path:
    """Write padding.png into `directory`: the first of the shortest `test` squares read by the
    packed variant and by its padded twin (each a name and its model); its path."""
    numbers = padding_space(packed, padded, test)
    subject = Subject(f"Padding beside packing: {packed[0]} and {padded[0]}", None, numbers)
    return write_padding(subject, Path(directory))
