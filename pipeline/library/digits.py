"""scikit-learn's 8x8 greyscale digits, read as sequences: order gives an image its meaning.

An RNN reads a 2-D image as an ordered 1-D sequence. How the image is flattened is the
reading order (`datasets.<name>.order`):

    rows             8 steps of 8 pixels: the image top to bottom, one row per step
    pixels           64 steps of 1 pixel: row after row, left to right
    pixels_permuted  64 steps of 1 pixel, in one seeded permutation shared by every image
    pixels_shuffled  64 steps of 1 pixel, in a new seeded order for each image

The images ship inside scikit-learn (no download). Each becomes one row of the same Parquet
contract as the squares (pipeline/library/squares.py): `label` its digit, `length` its steps,
the points its pixels in reading order, `seq_id` its index in `load_digits()`; the file's
metadata names the classes "0" to "9" and the kind, order and seed.
"""

import numpy as np

from pipeline.library.settings import DIGIT_CLASSES, DIGIT_SIDE, DIGITS_COUNT, READING_ORDERS
from pipeline.library.squares import Squares

#: The digits' pixels are integers 0 to 16 (counts of 4x4 blocks of the scanned 32x32 image).
MAX_INTENSITY = 16
CLASS_NAMES = tuple(str(digit) for digit in range(DIGIT_CLASSES))


def load_images() -> tuple[np.ndarray, np.ndarray]:
    """The images (N, 8, 8) float64 scaled to [0, 1], and their digits (N,) int64.

    Scaled because the recurrent cells squash their inputs through tanh and sigmoid: raw
    intensities of up to 16, times the initial weights, would start the gates saturated,
    where gradients vanish; in [0, 1] the inputs sit where the squares' corners (about ±1)
    do, and Adam's learning rate means the same on both kinds of data. /16 is exact in
    binary, so the scaled pixels are exact too.
    """
    from sklearn.datasets import load_digits  # heavy: imported only where digits are made

    digits = load_digits()
    images = digits.images.astype(np.float64) / MAX_INTENSITY
    return images, digits.target.astype(np.int64)


def reading_order(order: str, seed: int, count: int) -> np.ndarray:
    """Which pixel (index into the flattened 64) each image reads at each step: (count, 64).

    `rows` and `pixels` read left to right, top to bottom; `pixels_permuted` one permutation
    drawn from a generator seeded with `seed`, for every image; `pixels_shuffled` a new
    permutation per image from the same generator.
    """
    if order not in READING_ORDERS:
        raise ValueError(f"order must be one of {', '.join(READING_ORDERS)}, got {order!r}")
    steps = DIGIT_SIDE * DIGIT_SIDE
    rng = np.random.default_rng(seed)
    if order == "pixels_permuted":
        return np.tile(rng.permutation(steps), (count, 1))
    if order == "pixels_shuffled":
        return np.argsort(rng.random((count, steps)), axis=1, kind="stable")
    return np.tile(np.arange(steps), (count, 1))


def read_as_sequences(images: np.ndarray, order: str, seed: int) -> np.ndarray:
    """Images (N, 8, 8) as the sequences `order` reads: (N, 8, 8) for rows, else (N, 64, 1)."""
    if order == "rows":
        reading_order(order, seed, 0)  # the same check of `order` as every other
        return images.copy()
    flat = images.reshape(len(images), -1)
    read = np.take_along_axis(flat, reading_order(order, seed, len(images)), axis=1)
    return read[:, :, None]


def unread(sequences: np.ndarray, seq_ids: np.ndarray, order: str, seed: int) -> np.ndarray:
    """The images (K, 8, 8) that `order` (seeded by `seed`) read as `sequences` (K, L, F),
    the digits at `seq_ids` of `load_digits()`: every order only moves pixels, so each
    sequence holds its whole image."""
    flat = sequences.reshape(len(sequences), -1)
    orders = reading_order(order, seed, DIGITS_COUNT)[seq_ids]
    images = np.empty_like(flat)
    np.put_along_axis(images, orders, flat, axis=1)
    return images.reshape(len(sequences), DIGIT_SIDE, DIGIT_SIDE)


def generate_digits(order: str, seed: int) -> Squares:
    """Every digit of scikit-learn, read in `order` (seeded by `seed`): the dataset a
    generate stage of kind digits writes."""
    images, labels = load_images()
    if len(images) != DIGITS_COUNT:
        raise ValueError(f"scikit-learn ships {len(images)} digits, not {DIGITS_COUNT}")
    points = read_as_sequences(images, order, seed)
    return Squares(
        seq_ids=np.arange(len(images), dtype=np.int64),
        points=points,
        lengths=np.full(len(images), points.shape[1], dtype=np.int64),
        labels=labels,
        classes=CLASS_NAMES,
        about={"kind": "digits", "order": order, "seed": str(seed)},
    )
