"""Square sequences on disk: one Parquet row per sequence.

The label belongs to the sequence, not to its points, so a row holds a whole
sequence (see the README's schema):

    seq_id  int64                              position in the generated dataset, increasing
    label   int8                               1 = clockwise, 0 = counter-clockwise
    length  int32                              number of points
    points  list<struct<x0: double, x1: double>>  the points in drawing order

Reading checks the schema and converts to padded arrays without a Python loop
over sequences; values round-trip exactly.
"""

import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import DatasetError
from pipeline.files import atomic_output
from pipeline.squares import Squares, pad_points, unpad_points

POINT = pa.struct([("x0", pa.float64()), ("x1", pa.float64())])
SCHEMA = pa.schema(
    [
        ("seq_id", pa.int64()),
        ("label", pa.int8()),
        ("length", pa.int32()),
        ("points", pa.list_(POINT)),
    ]
)


def to_table(squares: Squares) -> pa.Table:
    """The sequences as an Arrow table in SCHEMA, one row per sequence."""
    flat_points = unpad_points(squares.points, squares.lengths)
    offsets = np.concatenate([[0], np.cumsum(squares.lengths)]).astype(np.int32)
    point_array = pa.StructArray.from_arrays(
        # Contiguous copies: pyarrow converts strided NumPy views element by element.
        [pa.array(np.ascontiguousarray(flat_points[:, axis])) for axis in range(2)],
        fields=list(POINT),
    )
    columns = [
        pa.array(squares.seq_ids, pa.int64()),
        pa.array(squares.labels, pa.int8()),
        pa.array(squares.lengths, pa.int32()),
        pa.ListArray.from_arrays(pa.array(offsets), point_array),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


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
    _check_schema(table, source)
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
    if not np.isin(labels, (0, 1)).all():
        raise DatasetError(f"{source}: column 'label' must hold only 0 and 1")
    if (np.diff(seq_ids) <= 0).any():
        raise DatasetError(f"{source}: column 'seq_id' must be strictly increasing")

    flat = points.flatten()
    flat_points = np.stack([flat.field("x0").to_numpy(), flat.field("x1").to_numpy()], axis=1)
    # Points become float32 for training: anything beyond its range is as bad as NaN.
    bad = ~(np.abs(flat_points) <= np.finfo(np.float32).max).all(axis=1)
    if bad.any():
        row = int(np.searchsorted(np.cumsum(lengths), np.flatnonzero(bad)[0], side="right"))
        raise DatasetError(f"{source}: row {row} has a point that is NaN, infinite or too large")
    max_length = int(lengths.max()) if len(lengths) else 0
    return Squares(seq_ids, pad_points(flat_points, lengths, max_length), lengths, labels)


def _check_schema(table: pa.Table, source: str) -> None:
    expected = ", ".join(f"{field.name} ({field.type})" for field in SCHEMA)
    if sorted(table.column_names) != sorted(SCHEMA.names):
        found = ", ".join(table.column_names) or "none"
        raise DatasetError(f"{source}: expected columns {expected}; found {found}")
    for field in SCHEMA:
        column = table.column(field.name)
        if not column.type.equals(field.type):
            raise DatasetError(
                f"{source}: column '{field.name}' must be {field.type}, found {column.type}"
            )
        if column.null_count:
            raise DatasetError(f"{source}: column '{field.name}' has missing values")
    flat = table.column("points").combine_chunks().flatten()
    if flat.null_count or any(flat.field(name).null_count for name in ("x0", "x1")):
        raise DatasetError(f"{source}: column 'points' has missing values")
