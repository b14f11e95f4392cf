"""One short square read by a packed variant and by its padded twin, as numbers ready to draw.

Packing hands a recurrent layer each sequence's real points only; padding without packing
hands it the whole padded array, so after a short square's last point its hidden state goes
on reading zeros, and the classifier reads it at the padded end. A `PaddingSpace` holds,
for one short test square, the last layer's hidden state after each step each variant reads,
per direction, in the planes the journeys are drawn in, and each variant's test accuracy.
`pipeline.pictures.from_weights.padding_space` computes it; nothing here needs torch.
"""

from dataclasses import dataclass

import numpy as np

from pipeline.library.settings import ModelParams
from pipeline.pictures.planes import Plane


def padding_pairs(models: dict[str, ModelParams]) -> list[tuple[str, str]]:
    """(packed variant, its padded twin) pairs, in params.yaml's order: the twin has every
    setting of the packed recurrent variant, dataset included, but `packed: false`.

    params.yaml refuses `packed` on fixed-length datasets, so their squares vary in length.
    """
    return [
        (name, twin)
        for name, model in models.items()
        if model.packed
        for twin, candidate in models.items()
        if candidate.model_dump() == model.model_dump() | {"packed": False}
    ]


@dataclass(frozen=True)
class DirectionTrace:
    """One direction of one variant reading the square, step by step in its reading order.

    name: "forward" or "backward"; plane: the direction's plane (fitted, as the journeys',
    on every test sequence's states at its real steps); states: (S + 1, 2) the hidden state
    in that plane, h_0 = 0 first, then after each of the S steps read; steps: (S,) the time
    step each one read (backward: from the end back); padding: (S,) True where that step was
    a padded zero; read: the index in `states` of the state the classifier reads.
    """

    name: str
    plane: Plane
    states: np.ndarray
    steps: np.ndarray
    padding: np.ndarray
    read: int

    @property
    def moved_by_padding(self) -> float:
        """How far, in the plane, the steps that read padded zeros moved the state in all."""
        moves = np.linalg.norm(np.diff(self.states, axis=0), axis=1)  # (S,) each step's move
        return float(moves[self.padding].sum())


@dataclass(frozen=True)
class VariantTrace:
    """One variant on the square and on the test split.

    probability: its P(clockwise) for the square; accuracy: on the whole test split;
    short_accuracy: on the test squares shorter than the longest.
    """

    name: str
    packed: bool
    directions: tuple[DirectionTrace, ...]
    probability: float
    accuracy: float
    short_accuracy: float


@dataclass(frozen=True)
class PaddingSpace:
    """A short test square (seq_id, label, points (length, 2)) padded to `padded_length`,
    read by the packed variant and by the padded one (`variants`, in that order); how many
    test squares there are and how many of them are short."""

    seq_id: int
    label: int
    points: np.ndarray
    padded_length: int
    test_count: int
    short_count: int
    variants: tuple[VariantTrace, VariantTrace]

    @property
    def length(self) -> int:
        return len(self.points)
