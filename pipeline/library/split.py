"""Stratified train/validation/test split.

Each class is split on its own, so every part keeps the dataset's balance of
clockwise and counter-clockwise squares. The rounding rule (in the README):
a class of c rows gives floor(val * c) rows to validation, floor(test * c) to
test, and the rest to training.
"""

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitIndices:
    """Row indices of each part, ascending, disjoint, covering every row."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def parts(self) -> dict[str, np.ndarray]:
        """The parts by name, in PARTS order."""
        return {"train": self.train, "val": self.val, "test": self.test}


def part_sizes(class_size: int, val: float, test: float) -> tuple[int, int, int]:
    """(train, val, test) sizes for one class of `class_size` rows.

    The products are exact on the decimal written in params.yaml: in floating
    point 0.29 * 100 is 28.999999999999996, which would floor to 28.
    """
    n_val = math.floor(Fraction(repr(val)) * class_size)
    n_test = math.floor(Fraction(repr(test)) * class_size)
    return class_size - n_val - n_test, n_val, n_test


def stratified_split(labels: np.ndarray, val: float, test: float, seed: int) -> SplitIndices:
    """Split rows by label into train/val/test; the same seed gives the same split.

    Within each class (in label order) the rows are shuffled by one generator
    seeded with `seed`, then cut into test, validation and training in turn.
    """
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[np.ndarray]] = {part: [] for part in PARTS}
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_train, n_val, _ = part_sizes(len(rows), val, test)
        chosen["train"].append(rows[:n_train])
        chosen["val"].append(rows[n_train : n_train + n_val])
        chosen["test"].append(rows[n_train + n_val :])
    return SplitIndices(
        **{part: np.sort(np.concatenate(chosen[part] or [np.empty(0, np.int64)])) for part in PARTS}
    )
