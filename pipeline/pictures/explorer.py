"""The explorer: one offline page where a learner draws a square and watches every variant read it.

The chapter's deepest idea is that the hidden state is the sequence's representation; the
static pictures show it for the test squares. The explorer answers the next question, "and
what about this square?" (drawn badly, started elsewhere, one point missing): the page runs
each trained variant's forward pass itself, in plain JavaScript written from the cells'
equations (the explorer*.js files beside this module), on the points the learner places, and
draws the hidden state after each step over the decision boundary in the static pictures' own
plane and scales. The page fetches nothing: its scripts, style and data (every variant's
trained weights, its plane, the noise-free squares, the report's colours and labels) are
inlined.

Its bytes are deterministic: the data is stable JSON whose floats are the exact float32
weights written as the shortest decimal that reads back to the same double. The page computes
with them in float32, rounding each operation where the model's arithmetic does
(explorer_numbers.js): its numbers are the model's, to the last bit or two of float32.
"""

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from torch import Tensor, nn

from pipeline.library.cells import CellWeights
from pipeline.library.models import ConvClassifier, RecurrentClassifier
from pipeline.library.squares import (
    CORNER_NAMES,
    CORNERS,
    LABEL_NAMES,
    NOISE_FREE,
    Squares,
    corner_order,
)
from pipeline.pictures.from_weights import (
    boundary_over,
    decision_plane,
    edge_features,
    unroll_test_squares,
)
from pipeline.pictures.hidden_states import PROBABILITY_ALPHA, PROBABILITY_CMAP, PROBABILITY_LEVELS
from pipeline.pictures.shared import LABEL_COLOURS, plain

#: The page's scripts, in the order they run (each uses those before it), and its style: files
#: beside this module, read and inlined.
SCRIPTS = tuple(
    Path(__file__).with_name(f"{name}.js")
    for name in ("explorer_numbers", "explorer_drawing", "explorer_inside", "explorer")
)
STYLESHEET = Path(__file__).with_name("explorer.css")
#: The drawing plane spans [-INPUT_LIMIT, INPUT_LIMIT]^2: the corners at +-1 and room around.
INPUT_LIMIT = 2.0
#: How far the conv1d responses' axis reaches past the largest test response.
RESPONSE_MARGIN = 1.1
#: The noise the datasets are drawn with by default: the page's noise slider starts there.
DEFAULT_NOISE = 0.1
TITLE = "Draw a square, watch the hidden state"
INTRO = (
    "Place two to four points on the plane, or pick one of the eight noise-free squares and "
    "add noise, and watch each trained variant read them: its P(clockwise), and, step by "
    "step, where its hidden state goes over the classifier's decision boundary (in the same "
    "plane and scales as the report's pictures) and what its gates let through. The page "
    "runs every variant's trained weights itself, with nothing fetched."
)


@dataclass(frozen=True)
class Trained:
    """One trained variant as the explorer shows it: its name, its architecture in words, its
    test accuracy (the report's), the model, and its test split (for its plane and scales)."""

    name: str
    description: str
    accuracy: float
    model: nn.Module
    test: Squares


def _floats(values: Tensor | np.ndarray) -> list:
    """Nested lists of Python floats, each exactly the (float32 or float64) value given: the
    JSON then holds the shortest decimal that reads back as that very number."""
    return torch.as_tensor(values).detach().double().tolist()


def plane_data(model: RecurrentClassifier, test: Squares) -> dict:
    """The plane the static pictures draw the hidden space in (fitted on the test squares'
    states as plot@ fits it), and the view of it they show."""
    runs, real = unroll_test_squares(model, test)
    plane = decision_plane(model, runs[-1].outputs.numpy()[real])
    return {
        "mean": _floats(plane.mean),
        "components": _floats(plane.components),
        "axes": [plain(label) for label in plane.axis_labels],
        "projected": plane.explained is not None,
        "limit": boundary_over(model.classifier, plane).limit,
    }


def recurrent_data(model: RecurrentClassifier, test: Squares) -> dict:
    """Every cell's weights, per layer and direction (torch's gate order), the classifier, and
    the plane of the static pictures, fitted on `test` as plot@ fits it."""
    recurrent = model.recurrent
    directions = (False, True) if recurrent.bidirectional else (False,)
    layers = []
    for layer in range(recurrent.num_layers):
        cells = [CellWeights.from_layer(recurrent, layer, reverse) for reverse in directions]
        layers.append(
            [
                {
                    "weight_ih": _floats(cell.weight_ih),
                    "weight_hh": _floats(cell.weight_hh),
                    "bias_ih": _floats(cell.bias_ih),
                    "bias_hh": _floats(cell.bias_hh),
                }
                for cell in cells
            ]
        )
    return {
        "arch": CellWeights.from_layer(recurrent).kind,
        "hidden": recurrent.hidden_size,
        "layers": layers,
        "plane": plane_data(model, test),
    }


def conv_data(model: ConvClassifier, test: Squares) -> dict:
    """The filters (C, F, 2) and their biases, the length the classifier reads, and the scale of
    the test squares' filter responses (ReLU of each filter on each pair of points)."""
    largest = float(edge_features(model, test.points).max())
    return {
        "arch": "conv1d",
        "length": model.sequence_length,
        "conv": {"weight": _floats(model.conv.weight), "bias": _floats(model.conv.bias)},
        # A filter silent on every test square still gets an axis to draw on.
        "scale": RESPONSE_MARGIN * largest if largest > 0 else 1.0,
    }


def variant_data(variant: Trained) -> dict:
    """What the page needs of one variant: its weights, plane or scale, and how it is named."""
    model = variant.model
    if isinstance(model, RecurrentClassifier):
        numbers = recurrent_data(model, variant.test)
    elif isinstance(model, ConvClassifier):
        numbers = conv_data(model, variant.test)
    else:
        raise TypeError(f"{variant.name}: no explorer for a {type(model).__name__}")
    classifier = model.classifier
    return {
        "name": variant.name,
        "description": variant.description,
        "accuracy": variant.accuracy,
        "lengths": sorted({int(length) for length in variant.test.lengths}),
        "classifier": {
            "weight": _floats(classifier.weight[0]),
            "bias": float(classifier.bias.detach()[0]),
        },
        **numbers,
    }


def noise_free_squares() -> list[dict]:
    """The eight noise-free squares, named by their corners in reading order (ABCD), with their
    label, in NOISE_FREE's order (start-major, counter-clockwise first)."""
    squares = []
    for start in range(len(CORNER_NAMES)):
        for direction in (0, 1):
            order = corner_order(np.array([start]), np.array([direction]))[0]
            squares.append(
                {
                    "name": "".join(CORNER_NAMES[index] for index in order),
                    "label": direction,
                    "points": NOISE_FREE[start, direction].tolist(),
                }
            )
    return squares


def explorer_data(variants: Sequence[Trained]) -> dict:
    """Everything the page shows, in the order given (the report's): JSON-ready."""
    colormap = matplotlib.colormaps[PROBABILITY_CMAP]
    # contourf colours each band by the colormap at its middle.
    middles = (PROBABILITY_LEVELS[:-1] + PROBABILITY_LEVELS[1:]) / 2
    bands = [matplotlib.colors.to_hex(colormap(middle)) for middle in middles]
    return {
        "labels": list(LABEL_NAMES),
        "colours": list(LABEL_COLOURS),
        "bands": bands,
        "bandAlpha": PROBABILITY_ALPHA,
        "corners": {"names": list(CORNER_NAMES), "points": CORNERS.tolist()},
        "squares": noise_free_squares(),
        "inputLimit": INPUT_LIMIT,
        "noise": DEFAULT_NOISE,
        "variants": [variant_data(variant) for variant in variants],
    }


def page_json(data: dict) -> str:
    """`data` as stable JSON safe inside a <script> element (no "<" to close it early)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")


def render_explorer(data: dict) -> str:
    """The explorer as one self-contained HTML page: its style, data and script inlined."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(TITLE)}</title>",
            f"<style>\n{STYLESHEET.read_text()}</style></head><body>",
            '<header><p class="back"><a href="index.html">&larr; the report</a></p>',
            f"<h1>{html.escape(TITLE)}</h1><p>{html.escape(INTRO)}</p></header>",
            '<main id="explorer"><noscript>The explorer draws with JavaScript: allow scripts '
            "for this page to use it.</noscript></main>",
            f'<script type="application/json" id="explorer-data">{page_json(data)}</script>',
            *(f"<script>\n{script.read_text()}</script>" for script in SCRIPTS),
            "</body></html>",
        ]
    )
