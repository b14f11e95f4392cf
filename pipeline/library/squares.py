"""Noisy squares drawn corner by corner: the chapter's sequence dataset, and its Parquet form.

A square is four corners visited in order. Where the drawing starts and which
way it turns are random; the label belongs to the whole sequence: 1 when the
square is drawn clockwise, 0 when counter-clockwise. Order is the whole signal:
the same four points, read in another order, can mean the other label.

On disk, one Parquet row holds one whole sequence, because the label belongs to the
sequence, not to its points (see docs/data.md). Every kind of data (the digits of
pipeline/library/digits.py too) is written and read here:

    seq_id  int64                              position in the generated dataset, increasing
    label   int8                               the class: squares 1 = clockwise, 0 = counter-
    length  int32                              number of points
    points  list<struct<x0: double, ..., x{F-1}: double>>  the points in reading order

A point has F features, x0 to x{F-1} (squares: x, y). A file of another kind than squares
names its classes and what it is in the schema's metadata (`pipeline.classes`, a JSON list,
and `pipeline.<key>` for each entry of `Squares.about`); a file without them is of squares,
whose files keep the bytes they had before other kinds existed. Reading checks the schema
and converts to padded arrays without a Python loop over sequences; values round-trip
exactly.
"""

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.library.errors import DatasetError
from pipeline.library.files import atomic_output
from pipeline.library.settings import Shape

#: The corners A, B, C, D of the noise-free square, in clockwise order.
CORNERS = np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]])
CORNER_NAMES = ("A", "B", "C", "D")

#: What each label means, for a reader; the index is the label (0 or 1).
LABEL_NAMES = ("counter-clockwise", "clockwise")


def metric_key(class_name: str, count: str) -> str:
    """The name of a class's `count` ("correct" or "total") in the test metrics, in MLflow:
    test_counter_clockwise_correct, test_7_total."""
    return f"test_{class_name.replace('-', '_')}_{count}"


#: Every sequence has at most this many points: one per corner.
MAX_LENGTH = len(CORNERS)


@dataclass(frozen=True)
class Squares:
    """A batch of labelled sequences (squares, or any kind) as padded arrays.

    seq_ids: (N,) int64, each sequence's position in the generated dataset.
    points: (N, L, F) float64, zero beyond each sequence's length (squares: L = 4, F = 2).
    lengths: (N,) int64, the number of real points of each sequence.
    labels: (N,) int64, the index of each sequence's class in `classes`.
    classes: each class's name (squares: LABEL_NAMES).
    about: what the data is, beyond squares (digits: kind, order, seed), kept in the file.
    """

    seq_ids: np.ndarray
    points: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...] = LABEL_NAMES
    about: Mapping[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def kind(self) -> str:
        """The kind of data: "squares" unless `about` says otherwise."""
        return self.about.get("kind", "squares")

    def take(self, indices: np.ndarray) -> "Squares":
        """The sequences at `indices`, in that order."""
        return Squares(
            self.seq_ids[indices],
            self.points[indices],
            self.lengths[indices],
            self.labels[indices],
            self.classes,
            self.about,
        )


def extent(squares: Squares) -> dict[str, Any]:
    """The lengths, features, coordinates' reach and classes of a set of sequences: what a
    model trained on them has seen (the logged model refuses sequences far outside it)."""
    return {
        "min_length": int(squares.lengths.min()),
        "max_length": int(squares.lengths.max()),
        "n_features": int(squares.points.shape[2]),
        "max_abs_coordinate": math.ceil(float(np.abs(squares.points).max()) * 100) / 100,
        "classes": list(squares.classes),
    }


def shape_of(squares: Squares) -> Shape:
    """The shape of the data a model of `squares` reads: features per point, the longest
    sequence's steps, the classes."""
    return Shape(squares.points.shape[2], squares.points.shape[1], len(squares.classes))


def step_mask(lengths: np.ndarray, max_length: int) -> np.ndarray:
    """(N, max_length) boolean mask, True at each sequence's real (unpadded) steps."""
    return np.arange(max_length) < lengths[:, None]


def pad_points(flat_points: np.ndarray, lengths: np.ndarray, max_length: int) -> np.ndarray:
    """Scatter (P, F) points, sequence after sequence, into a zero-padded (N, L, F) array."""
    features = flat_points.shape[1]
    if (lengths == max_length).all():  # nothing to pad
        return flat_points.reshape(len(lengths), max_length, features)
    real = step_mask(lengths, max_length).ravel()
    padded = np.zeros((len(lengths) * max_length, features))
    for axis in range(features):  # one feature at a time: 1-D masked writes are fast
        padded[:, axis][real] = flat_points[:, axis]
    return padded.reshape(len(lengths), max_length, features)


def unpad_points(points: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The real points of (N, L, F) `points`, sequence after sequence: (P, F)."""
    real = step_mask(lengths, points.shape[1]).ravel()
    features = points.shape[2]
    return np.stack([points[:, :, axis].ravel()[real] for axis in range(features)], axis=1)


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
    return Squares(
        squares.seq_ids, points, squares.lengths, squares.labels, squares.classes, squares.about
    )


# ---------------------------------------------------------------------------
# On disk: one Parquet row per sequence.

#: Metadata keys of a file that is not of squares: its classes, and what it is.
CLASSES_KEY, ABOUT_PREFIX = b"pipeline.classes", "pipeline."


def point_type(features: int) -> pa.DataType:
    """A point of `features` numbers, x0 to x{features - 1}."""
    return pa.struct([(f"x{axis}", pa.float64()) for axis in range(features)])


def schema(features: int) -> pa.Schema:
    """The columns of a file whose points have `features` numbers each."""
    return pa.schema(
        [
            ("seq_id", pa.int64()),
            ("label", pa.int8()),
            ("length", pa.int32()),
            ("points", pa.list_(point_type(features))),
        ]
    )


#: The squares' points: (x, y).
POINT = point_type(2)
SCHEMA = schema(2)
#: Labels are int8 on disk.
MAX_CLASSES = 128


def to_table(squares: Squares) -> pa.Table:
    """The sequences as an Arrow table, one row per sequence; a file not of squares carries
    its classes and `about` in the schema's metadata."""
    features = squares.points.shape[2]
    flat_points = unpad_points(squares.points, squares.lengths)
    offsets = np.concatenate([[0], np.cumsum(squares.lengths)]).astype(np.int32)
    columns_schema = schema(features)
    point_array = pa.StructArray.from_arrays(
        # Contiguous copies: pyarrow converts strided NumPy views element by element.
        [pa.array(np.ascontiguousarray(flat_points[:, axis])) for axis in range(features)],
        fields=list(point_type(features)),
    )
    columns = [
        pa.array(squares.seq_ids, pa.int64()),
        pa.array(squares.labels, pa.int8()),
        pa.array(squares.lengths, pa.int32()),
        pa.ListArray.from_arrays(pa.array(offsets), point_array),
    ]
    if squares.about or squares.classes != LABEL_NAMES:
        metadata = {CLASSES_KEY: json.dumps(list(squares.classes)).encode()}
        for key, value in squares.about.items():
            metadata[f"{ABOUT_PREFIX}{key}".encode()] = value.encode()
        columns_schema = columns_schema.with_metadata(metadata)
    return pa.Table.from_arrays(columns, schema=columns_schema)


def write_squares(squares: Squares, path: Path | str) -> None:
    """Write the sequences to a Parquet file, atomically; OSError naming `path` if it fails."""
    try:
        with atomic_output(path) as temporary:
            pq.write_table(to_table(squares), temporary)
    except OSError as error:  # Arrow's messages name no file; the errno is in their text
        found = re.search(r"\[errno (\d+)\]", str(error))
        code = int(found.group(1)) if found else error.errno
        reason = os.strerror(code) if code else str(error).splitlines()[0]
        raise OSError(code, reason, str(path)) from None


def read_squares(path: Path | str) -> Squares:
    """Read and check a Parquet file of sequences; raise DatasetError naming the file."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (pa.ArrowException, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DatasetError(f"{path}: not a readable Parquet file ({reason})") from None
    return from_table(table, source=str(path))


def count_rows(path: Path | str) -> int:
    """The number of sequences in a Parquet file, from its footer alone."""
    try:
        return pq.read_metadata(path).num_rows
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (pa.ArrowException, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DatasetError(f"{path}: not a readable Parquet file ({reason})") from None


def from_table(table: pa.Table, source: str) -> Squares:
    """Check `table` against SCHEMA and convert it to padded arrays.

    `source` names where the table came from, for the error message.
    """
    features = _check_schema(table, source)
    classes, about = _described(table.schema.metadata or {}, source)
    points = table.column("points").combine_chunks()
    lengths = np.diff(points.offsets.to_numpy()).astype(np.int64)
    declared = table.column("length").to_numpy().astype(np.int64)
    labels = table.column("label").to_numpy().astype(np.int64)
    seq_ids = table.column("seq_id").to_numpy()

    if len(lengths) == 0:
        raise DatasetError(f"{source}: has no rows")
    if not np.array_equal(lengths, declared):
        row = int(np.flatnonzero(lengths != declared)[0])
        raise DatasetError(
            f"{source}: row {row} has length {declared[row]} but {lengths[row]} points"
        )
    if len(lengths) and lengths.min() < 1:
        raise DatasetError(f"{source}: row {int(np.argmin(lengths))} has no points")
    if not ((labels >= 0) & (labels < len(classes))).all():
        allowed = "0 and 1" if len(classes) == 2 else f"0 to {len(classes) - 1}"
        raise DatasetError(f"{source}: column 'label' must hold only {allowed}")
    if (np.diff(seq_ids) <= 0).any():
        raise DatasetError(f"{source}: column 'seq_id' must be strictly increasing")

    flat = points.flatten()
    flat_points = np.stack(
        [flat.field(f"x{axis}").to_numpy() for axis in range(features)], axis=1
    ).reshape(-1, features)
    # Points become float32 for training: anything beyond its range is as bad as NaN.
    bad = ~(np.abs(flat_points) <= np.finfo(np.float32).max).all(axis=1)
    if bad.any():
        row = int(np.searchsorted(np.cumsum(lengths), np.flatnonzero(bad)[0], side="right"))
        raise DatasetError(f"{source}: row {row} has a point that is NaN, infinite or too large")
    max_length = int(lengths.max()) if len(lengths) else 0
    padded = pad_points(flat_points, lengths, max_length)
    return Squares(seq_ids, padded, lengths, labels, classes, about)


def _described(metadata: Mapping[bytes, bytes], source: str) -> tuple[tuple[str, ...], dict]:
    """The classes and `about` a file's metadata declares; the squares' without any."""
    about = {
        key.decode()[len(ABOUT_PREFIX) :]: value.decode()
        for key, value in metadata.items()
        if key.startswith(ABOUT_PREFIX.encode()) and key != CLASSES_KEY
    }
    if CLASSES_KEY not in metadata:
        return LABEL_NAMES, about
    try:
        classes = json.loads(metadata[CLASSES_KEY])
    except (json.JSONDecodeError, UnicodeDecodeError):
        classes = None
    if (
        not isinstance(classes, list)
        or not 2 <= len(classes) <= MAX_CLASSES
        or not all(isinstance(name, str) for name in classes)
    ):
        raise DatasetError(
            f"{source}: metadata {CLASSES_KEY.decode()} must be a JSON list of 2 to "
            f"{MAX_CLASSES} class names"
        )
    return tuple(classes), about


def _check_schema(table: pa.Table, source: str) -> int:
    """Check the columns against `schema(F)`; F, the features per point."""
    points_type = table.schema.field("points").type if "points" in table.column_names else None
    features = 2
    if (
        isinstance(points_type, pa.ListType)
        and isinstance(points_type.value_type, pa.StructType)
        and points_type.value_type.num_fields >= 1
    ):
        features = points_type.value_type.num_fields
    expected_schema = schema(features)
    expected = ", ".join(f"{field.name} ({field.type})" for field in expected_schema)
    if sorted(table.column_names) != sorted(expected_schema.names):
        found = ", ".join(table.column_names) or "none"
        raise DatasetError(f"{source}: expected columns {expected}; found {found}")
    for column_field in expected_schema:
        name, column = column_field.name, table.column(column_field.name)
        if not column.type.equals(column_field.type):
            raise DatasetError(
                f"{source}: column '{name}' must be {column_field.type}, found {column.type}"
            )
        if column.null_count:
            raise DatasetError(f"{source}: column '{name}' has missing values")
    flat = table.column("points").combine_chunks().flatten()
    names = [f"x{axis}" for axis in range(features)]
    if flat.null_count or any(flat.field(name).null_count for name in names):
        raise DatasetError(f"{source}: column 'points' has missing values")
    return features
