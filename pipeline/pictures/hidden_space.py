"""The hidden space of a trained recurrent classifier, as numbers ready to draw.

The hidden state is the representation of a sequence: a `HiddenSpace` holds where the test
sequences' hidden states lie after each step, where the classifier's decision boundary runs
through that space, where the noise-free squares end up, where the first layer's input
transform puts the corners, and how each operation of the cell moves the whole hidden plane
(the journeys, `pipeline.pictures.journeys`). `pipeline.pictures.from_weights` computes it
from the trained weights; the pictures only read it, so nothing here needs torch.
"""

from dataclasses import dataclass

import numpy as np

from pipeline.library.squares import NOISE_FREE
from pipeline.pictures.journeys import DirectionJourneys
from pipeline.pictures.planes import Boundary, Plane

#: The gate blocks of W_ih x + b_ih, in torch's stacking order, named for a reader.
INPUT_BLOCKS = {
    "rnn": ("$t_x$",),
    "gru": ("reset $r$", "update $z$", "candidate $n$"),
    "lstm": ("input $i$", "forget $f$", "candidate $g$", "output $o$"),
}
#: The clockwise noise-free square read from corner A: A, B, C, D.
CLOCKWISE_FROM_A = NOISE_FREE[0, 1]


@dataclass(frozen=True)
class HiddenSpace:
    """Everything the pictures of a recurrent variant draw, computed once, before drawing.

    kind: "rnn", "gru" or "lstm"; layers: how many are stacked; directions: "forward", then
    "backward" when bidirectional. labels, lengths: (N,) the test sequences'.
    states: (N, L, D) the last layer's output after each step of each test sequence (D is
    H, or 2 * H side by side when bidirectional); real: (N, L) True at real steps;
    plane: where states are drawn, holding the classifier's direction so the boundary is exact;
    boundary: the classifier's P(clockwise) over that plane's view;
    noise_free_states: (8, D) the final states of NOISE_FREE, in its (start, direction) order;
    input_planes: per direction, the first layer's plane, where the corners are transformed;
    input_corners: per direction, per block of INPUT_BLOCKS[kind], the corners
    CLOCKWISE_FROM_A (4, 2) mapped by that block of W_ih x + b_ih, in the direction's plane;
    journeys: per direction, the last layer's journey through each of JOURNEY_SQUARES.
    """

    kind: str
    layers: int
    directions: tuple[str, ...]
    labels: np.ndarray
    lengths: np.ndarray
    states: np.ndarray
    real: np.ndarray
    plane: Plane
    boundary: Boundary
    noise_free_states: np.ndarray
    input_planes: tuple[Plane, ...]
    input_corners: tuple[tuple[np.ndarray, ...], ...]
    journeys: tuple[DirectionJourneys, ...]

    @property
    def bidirectional(self) -> bool:
        return len(self.directions) == 2
