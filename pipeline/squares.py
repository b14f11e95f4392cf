"""Noisy squares drawn corner by corner: the chapter's sequence dataset.

A square is four corners visited in order. Where the drawing starts and which
way it turns are random; the label belongs to the whole sequence: 1 when the
square is drawn clockwise, 0 when counter-clockwise. Order is the whole signal:
the same four points, read in another order, can mean the other label.
"""

from dataclasses import dataclass

import numpy as np

#: The corners A, B, C, D of the noise-free square, in clockwise order.
CORNERS = np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]])
CORNER_NAMES = ("A", "B", "C", "D")

#: What each label means, for a reader; the index is the label (0 or 1).
LABEL_NAMES = ("counter-clockwise", "clockwise")


def metric_key(label: int, count: str) -> str:
    """The name of a label's `count` ("correct" or "total") in the test metrics, in DVC and
    MLflow alike: test_counter_clockwise_correct."""
    return f"test_{LABEL_NAMES[label].replace('-', '_')}_{count}"


#: Every sequence has at most this many points: one per corner.
MAX_LENGTH = len(CORNERS)


@dataclass(frozen=True)
class Squares:
    """A batch of square sequences as padded arrays.

    seq_ids: (N,) int64, each sequence's position in the generated dataset.
    points: (N, L, 2) float64, zero beyond each sequence's length (L = 4 here).
    lengths: (N,) int64, the number of real points of each sequence.
    labels: (N,) int64, 1 = clockwise, 0 = counter-clockwise.
    """

    seq_ids: np.ndarray
    points: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> "Squares":
        """The sequences at `indices`, in that order."""
        return Squares(
            self.seq_ids[indices], self.points[indices], self.lengths[indices], self.labels[indices]
        )


def step_mask(lengths: np.ndarray, max_length: int) -> np.ndarray:
    """(N, max_length) boolean mask, True at each sequence's real (unpadded) steps."""
    return np.arange(max_length) < lengths[:, None]


def pad_points(flat_points: np.ndarray, lengths: np.ndarray, max_length: int) -> np.ndarray:
    """Scatter (P, 2) points, sequence after sequence, into a zero-padded (N, L, 2) array."""
    if (lengths == max_length).all():  # nothing to pad
        return flat_points.reshape(len(lengths), max_length, 2)
    real = step_mask(lengths, max_length).ravel()
    padded = np.zeros((len(lengths) * max_length, 2))
    for axis in range(2):  # one coordinate at a time: 1-D masked writes are fast
        padded[:, axis][real] = flat_points[:, axis]
    return padded.reshape(len(lengths), max_length, 2)


def unpad_points(points: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The real points of (N, L, 2) `points`, sequence after sequence: (P, 2)."""
    real = step_mask(lengths, points.shape[1]).ravel()
    return np.stack([points[:, :, axis].ravel()[real] for axis in range(2)], axis=1)


def corner_order(starts: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Corner indices visited by each square, shape (N, 4).

    Direction 1 visits start, start+1, start+2, start+3 (mod 4): clockwise.
    Direction 0 reverses that list: counter-clockwise.
    """
    clockwise = (starts[:, None] + np.arange(4)) % 4
    return np.where(directions[:, None] == 1, clockwise, clockwise[:, ::-1])


#: The 8 noise-free sequences, (4 starts, 2 directions, 4 steps, 2 coordinates).
NOISE_FREE = CORNERS[corner_order(np.repeat(np.arange(4), 2), np.tile([0, 1], 4))].reshape(
    4, 2, 4, 2
)
#: The same as floats, one row per start * 2 + direction: (8, 4, 2).
_CORNER_SEQUENCES = NOISE_FREE.reshape(8, 4, 2).astype(np.float64)


def generate_squares(n: int, noise: float, seed: int, variable_len: bool) -> Squares:
    """Draw `n` noisy squares, bit for bit the chapter's `generate_sequences`.

    The reference seeds NumPy's legacy generator and draws, in this order:
    the start corners, the lengths (2 to 4, only when `variable_len`), the
    directions, then each square's Gaussian noise in turn. The legacy normal
    stream is one continuous stream, so drawing all squares' noise at once and
    cutting it by length gives the same numbers as drawing square by square.
    """
    rng = np.random.RandomState(seed)
    starts = rng.randint(4, size=n)
    lengths = rng.randint(3, size=n) + 2 if variable_len else np.full(n, MAX_LENGTH)
    directions = rng.randint(2, size=n)
    noise_draws = rng.randn(int(lengths.sum()), 2)
    noise_draws *= noise

    # Corner plus noise, as the reference adds them, for the first `length` corners.
    points = _CORNER_SEQUENCES.take(starts * 2 + directions, axis=0)  # (N, 4, 2)
    points[~step_mask(lengths, MAX_LENGTH)] = 0.0
    points += pad_points(noise_draws, lengths, MAX_LENGTH)
    ids = np.arange(n, dtype=np.int64)
    return Squares(ids, points, lengths.astype(np.int64), directions.astype(np.int64))


def shuffle_points(squares: Squares, seed: int) -> Squares:
    """Permute the real points inside each sequence, keeping its label.

    This is the order ablation: the set of points stays, the order that gives
    them meaning goes. Each sequence gets its own random permutation, drawn
    from a generator of its own so the squares themselves are unchanged;
    padding stays at the end.
    """
    rng = np.random.default_rng(seed)
    keys = rng.random(squares.points.shape[:2])
    keys[~step_mask(squares.lengths, keys.shape[1])] = np.inf  # padding sorts last
    order = np.argsort(keys, axis=1, kind="stable")
    points = np.take_along_axis(squares.points, order[:, :, None], axis=1)
    return Squares(squares.seq_ids, points, squares.lengths, squares.labels)
